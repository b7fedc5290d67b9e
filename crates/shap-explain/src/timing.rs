//! Explanation time against pure model time, for benchmark tables (`cargo xtask bench`,
//! `benches/explain.rs`): how much the explainer's own work (tree walk, masking, bookkeeping)
//! adds to the model's.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::driver::check_inputs;
use crate::masking::check_len;
use crate::{BatchModel, ExplainError, Explanation, ImageShape, Result};

/// Pure model time for comparison with an explanation: for every image in parallel (like the
/// explainers), evaluates `rows[i]` copies of image `i` in model calls of `batch_rows` rows,
/// and returns the wall time. With `rows` = an explanation's `evals` and `batch_rows` = its
/// step size (10 for Partition, `2M+1` for Permutation), explanation time / this time is the
/// cost factor of everything the explainer does besides the model.
pub fn time_model_only<M: BatchModel + ?Sized>(
    model: &M,
    images: &[f32],
    shape: ImageShape,
    rows: &[usize],
    batch_rows: usize,
) -> Result<Duration> {
    let n = check_inputs(model, images, shape, None, None)?;
    check_len("rows per image", n, rows.len())?;
    let m = shape.features();
    let k = model.num_outputs();
    let batch_rows = batch_rows.max(1);
    let t0 = Instant::now();
    let res: Vec<Result<()>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let img = &images[i * m..(i + 1) * m];
            let full: Vec<f32> = img.iter().copied().cycle().take(batch_rows * m).collect();
            let mut out = vec![0.0f32; batch_rows * k];
            let mut done = 0;
            while done < rows[i] {
                let r = batch_rows.min(rows[i] - done);
                model
                    .eval_batch(&full[..r * m], r, shape, &mut out[..r * k])
                    .map_err(|source| ExplainError::Model { image: i, source })?;
                done += r;
            }
            Ok(())
        })
        .collect();
    res.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(t0.elapsed())
}

/// Explanation time against pure model time, for benchmark tables (`cargo xtask bench`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingReport {
    /// Images explained.
    pub images: usize,
    /// Model evaluations, all images together.
    pub evals: usize,
    /// Wall time of the explanation.
    pub explain_time: Duration,
    /// Time inside the model during the explanation (summed over images).
    pub model_time_inside: Duration,
    /// Wall time of the same number of model rows, same batching, without the explainer.
    pub model_only_time: Duration,
    /// The explainer's own work as a fraction of the model time inside the explanation
    /// ([`crate::RunStats::overhead_ratio`]).
    pub overhead_ratio: f64,
}

impl TimingReport {
    /// Measure `model` alone for the rows of `explanation` (in steps of `batch_rows`).
    pub fn measure<M: BatchModel + ?Sized>(
        explanation: &Explanation,
        model: &M,
        batch_rows: usize,
    ) -> Result<Self> {
        let model_only_time = time_model_only(
            model,
            &explanation.data,
            explanation.shape,
            &explanation.evals,
            batch_rows,
        )?;
        Ok(Self {
            images: explanation.num_images,
            evals: explanation.evals.iter().sum(),
            explain_time: explanation.stats.wall_time,
            model_time_inside: explanation.stats.model_time,
            model_only_time,
            overhead_ratio: explanation.stats.overhead_ratio(),
        })
    }

    /// Explanation time / pure model time.
    pub fn ratio(&self) -> f64 {
        let m = self.model_only_time.as_secs_f64();
        if m > 0.0 {
            self.explain_time.as_secs_f64() / m
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for TimingReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} images, {} evals: explanation {:.3} s, model alone {:.3} s (ratio {:.2}), \
             explainer overhead {:.1}% of model time",
            self.images,
            self.evals,
            self.explain_time.as_secs_f64(),
            self.model_only_time.as_secs_f64(),
            self.ratio(),
            100.0 * self.overhead_ratio
        )
    }
}
