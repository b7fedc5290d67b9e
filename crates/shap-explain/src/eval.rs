//! Masked-model evaluation shared by the explainers: masks -> masked images -> model -> f64.

use std::time::{Duration, Instant};

use crate::{BatchModel, ExplainError, MaskedBatch, MaskedImages, Result};
use shap_mask::ImageShape;

/// At most this many f32 values (rows x features) go to the model in one call; larger requests
/// are split into equal chunks (fixed sizes, so results never depend on thread count).
pub(crate) const MAX_BATCH_FLOATS: usize = 1 << 22;

/// Evaluates masks for one explained image, reusing its buffers.
pub(crate) struct Evaluator<'a, M: BatchModel + ?Sized, P: MaskedImages + ?Sized> {
    model: &'a M,
    prepared: &'a P,
    original: &'a [f32],
    shape: ImageShape,
    m: usize,
    k_all: usize,
    image: usize,
    keeps: Vec<bool>,
    imgs: Vec<f32>,
    out: Vec<f32>,
    /// Rows evaluated so far.
    pub evals: usize,
    /// Model calls so far.
    pub calls: usize,
    /// Time spent inside the model.
    pub model_time: Duration,
}

impl<'a, M: BatchModel + ?Sized, P: MaskedImages + ?Sized> Evaluator<'a, M, P> {
    /// `original` is image number `image`, the one `prepared` masks.
    pub(crate) fn new(
        model: &'a M,
        prepared: &'a P,
        original: &'a [f32],
        shape: ImageShape,
        image: usize,
    ) -> Self {
        Self {
            model,
            prepared,
            original,
            shape,
            m: shape.features(),
            k_all: model.num_outputs(),
            image,
            keeps: Vec::new(),
            imgs: Vec::new(),
            out: Vec::new(),
            evals: 0,
            calls: 0,
            model_time: Duration::ZERO,
        }
    }

    /// Number of model outputs `K`.
    pub(crate) fn num_outputs(&self) -> usize {
        self.k_all
    }

    /// Evaluate `n` masks; `fill(r, row)` writes mask `r` into `row` (all false on entry).
    /// Returns `n * K` f64 outputs, row-major.
    pub(crate) fn eval_rows(
        &mut self,
        n: usize,
        mut fill: impl FnMut(usize, &mut [bool]),
    ) -> Result<Vec<f64>> {
        let m = self.m;
        let k = self.k_all;
        let mut result = Vec::with_capacity(n * k);
        let per_call = (MAX_BATCH_FLOATS / m.max(1)).max(1);
        let mut start = 0;
        while start < n {
            let rows = per_call.min(n - start);
            self.keeps.clear();
            self.keeps.resize(rows * m, false);
            for (r, row) in self.keeps.chunks_exact_mut(m).enumerate() {
                fill(start + r, row);
            }
            // Every value is overwritten by the masker: no need to clear.
            self.imgs.resize(rows * m, 0.0);
            self.prepared
                .fill_batch(&self.keeps, &mut self.imgs[..rows * m])
                .map_err(|e| match e {
                    ExplainError::Mask { reason, .. } => ExplainError::Mask {
                        image: self.image,
                        reason,
                    },
                    other => other,
                })?;
            self.out.resize(rows * k, 0.0);
            let t0 = Instant::now();
            let batch = MaskedBatch {
                original: self.original,
                keeps: &self.keeps,
                images: &self.imgs[..rows * m],
                n: rows,
                shape: self.shape,
            };
            self.model
                .eval_masked(batch, &mut self.out[..rows * k])
                .map_err(|source| ExplainError::Model {
                    image: self.image,
                    source,
                })?;
            self.model_time += t0.elapsed();
            self.calls += 1;
            self.evals += rows;
            let out = &self.out[..rows * k];
            if let Some(j) = out.iter().position(|v| !v.is_finite()) {
                return Err(ExplainError::NonFinite {
                    image: self.image,
                    output: j % k,
                    value: out[j],
                });
            }
            result.extend(out.iter().map(|&v| f64::from(v)));
            start += rows;
        }
        Ok(result)
    }
}
