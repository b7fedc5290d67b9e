//! Shared plumbing: input validation, per-image results, assembling an [`Explanation`].

use std::time::Duration;

use rayon::prelude::*;

use crate::eval::Counters;
use crate::explanation::{Algorithm, Explanation, RunStats};
use crate::masking::check_len;
use crate::{BatchModel, ExplainError, ImageMasker, Result};
use shap_mask::ImageShape;

/// What one explained image produces.
pub(crate) struct RowResult {
    /// `(M, k)` values.
    pub values: Vec<f64>,
    /// `(M, k)` standard errors, when computed.
    pub std_errors: Option<Vec<f64>>,
    pub base: Vec<f64>,
    pub fx: Vec<f64>,
    pub outputs: Vec<usize>,
    /// Rows, calls and times, as the schedule counted them.
    pub counters: Counters,
}

/// Validate the batch and the model; returns `n`.
pub(crate) fn check_inputs<M: BatchModel + ?Sized>(
    model: &M,
    images: &[f32],
    shape: ImageShape,
    prepared_len: Option<usize>,
    output_names: Option<&Vec<String>>,
) -> Result<usize> {
    let m = shape.features();
    if m == 0
        || shape
            .height
            .checked_mul(shape.width)
            .and_then(|x| x.checked_mul(shape.channels))
            .is_none()
    {
        return Err(ExplainError::InvalidShape(shape));
    }
    if images.is_empty() {
        return Err(ExplainError::EmptyBatch);
    }
    if !images.len().is_multiple_of(m) {
        return Err(ExplainError::ShapeMismatch {
            what: format!("images of shape {shape}"),
            expected: (images.len() / m + 1) * m,
            got: images.len(),
        });
    }
    let n = images.len() / m;
    if let Some(p) = prepared_len {
        check_len("prepared images", n, p)?;
    }
    let k = model.num_outputs();
    if k == 0 {
        return Err(ExplainError::NoOutputs);
    }
    if let Some(names) = output_names {
        check_len("output_names", k, names.len())?;
    }
    Ok(n)
}

/// Prepare every image with the masker (in parallel, results in image order).
pub(crate) fn prepare_all<K: ImageMasker>(
    masker: &K,
    images: &[f32],
    shape: ImageShape,
) -> Result<Vec<K::Prepared>> {
    let m = shape.features();
    if m == 0 {
        return Err(ExplainError::InvalidShape(shape));
    }
    let res: Vec<Result<K::Prepared>> = images
        .par_chunks(m)
        .enumerate()
        .map(|(i, img)| {
            masker.prepare(img, shape).map_err(|e| match e {
                ExplainError::Mask {
                    image: None,
                    source,
                } => ExplainError::Mask {
                    image: Some(i),
                    source,
                },
                other => other,
            })
        })
        .collect();
    res.into_iter().collect()
}

/// Build the [`Explanation`] from per-image results.
pub(crate) fn assemble(
    algorithm: Algorithm,
    shape: ImageShape,
    images: &[f32],
    rows: Vec<RowResult>,
    names: impl Fn(usize) -> String,
    wall: Duration,
) -> Result<Explanation> {
    let n = rows.len();
    let k = rows.first().map_or(0, |r| r.outputs.len());
    let count = n.saturating_mul(shape.features()).saturating_mul(k);
    let mut values = Vec::new();
    if values.try_reserve_exact(count).is_err() {
        return Err(ExplainError::Memory {
            what: format!("the values of {n} image(s)"),
            hint: String::new(),
            need: crate::memory::Bytes(count.saturating_mul(8) as u64).to_string(),
            budget: "the allocation failed".into(),
        });
    }
    let mut e = Explanation {
        algorithm,
        shape,
        num_images: n,
        num_outputs: k,
        values,
        base_values: Vec::with_capacity(n * k),
        output_indices: Vec::with_capacity(n * k),
        output_names: Vec::with_capacity(n),
        data: images.to_vec(),
        fx: Vec::with_capacity(n * k),
        std_errors: None,
        evals: Vec::with_capacity(n),
        efficiency_errors: Vec::new(),
        image_times: Vec::with_capacity(n),
        stats: RunStats {
            wall_time: wall,
            ..RunStats::default()
        },
        images: Vec::new(),
        settings: crate::Settings::new(),
    };
    let with_se = rows.iter().all(|r| r.std_errors.is_some()) && n > 0;
    let mut se_all = Vec::new();
    for r in rows {
        e.values.extend_from_slice(&r.values);
        if let Some(se) = &r.std_errors {
            se_all.extend_from_slice(se);
        }
        e.base_values.extend_from_slice(&r.base);
        e.fx.extend_from_slice(&r.fx);
        e.output_names
            .push(r.outputs.iter().map(|&o| names(o)).collect());
        e.output_indices.extend_from_slice(&r.outputs);
        let c = r.counters;
        e.evals.push(c.evals);
        e.stats.model_rows += c.evals;
        e.stats.model_calls += c.calls;
        e.stats.model_time += c.model_time;
        e.stats.image_time += c.elapsed;
        e.image_times.push(c.elapsed.as_secs_f64());
    }
    if with_se {
        e.std_errors = Some(se_all);
    }
    e.efficiency_errors = e.compute_efficiency_errors();
    Ok(e)
}

/// Default output naming: the class label when given, else the class index.
pub(crate) fn name_fn(labels: Option<&Vec<String>>) -> impl Fn(usize) -> String + '_ {
    move |o| {
        labels
            .and_then(|l| l.get(o).cloned())
            .unwrap_or_else(|| o.to_string())
    }
}
