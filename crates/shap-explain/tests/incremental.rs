//! The incremental evaluation hook: a model that overrides `BatchModel::eval_masked` gets the
//! masks and the original image beside the masked images, on every call the explainers make,
//! and its explanations equal those of plain `eval_batch`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use shap_explain::{
    BatchModel, ConstantMasker, ExplainerConfig, ImageShape, MaskedBatch, Method, ModelError,
    OutputSelection, PermutationBudget, PermutationSettings,
};

const K: usize = 4;
const BG: f32 = 0.25;

/// `out_k = sum_j x_j W[j,k] + b_k`. `eval_masked` uses the masks instead of the pixels:
/// `f(background) + sum over kept j of (x_j - BG) W[j,k]`, which costs O(kept features), and
/// checks that every masked image is what the masks say.
struct Linear {
    w: Vec<f64>,
    b: [f64; K],
    full_calls: AtomicUsize,
    masked_calls: AtomicUsize,
}

impl Linear {
    fn new(m: usize) -> Self {
        let w = (0..m * K)
            .map(|i| ((i * 2_654_435_761) % 1000) as f64 / 1000.0 - 0.5)
            .collect();
        Self {
            w,
            b: [0.1, -0.2, 0.3, 0.0],
            full_calls: AtomicUsize::new(0),
            masked_calls: AtomicUsize::new(0),
        }
    }
}

impl BatchModel for Linear {
    fn num_outputs(&self) -> usize {
        K
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        self.full_calls.fetch_add(1, Ordering::Relaxed);
        let m = shape.features();
        for (img, o) in images.chunks_exact(m).zip(out.chunks_exact_mut(K)).take(n) {
            for (k, ok) in o.iter_mut().enumerate() {
                let z: f64 = img
                    .iter()
                    .enumerate()
                    .map(|(j, &x)| f64::from(x) * self.w[j * K + k])
                    .sum();
                *ok = (z + self.b[k]) as f32;
            }
        }
        Ok(())
    }

    fn eval_masked(&self, batch: MaskedBatch<'_>, out: &mut [f32]) -> Result<(), ModelError> {
        self.masked_calls.fetch_add(1, Ordering::Relaxed);
        let m = batch.shape.features();
        if batch.original.len() != m
            || batch.keeps.len() != batch.n * m
            || batch.images.len() != batch.n * m
        {
            return Err(ModelError::Shape("inconsistent masked batch".into()));
        }
        let rows = batch
            .keeps
            .chunks_exact(m)
            .zip(batch.images.chunks_exact(m));
        for ((keep, img), o) in rows.zip(out.chunks_exact_mut(K)) {
            for j in 0..m {
                let want = if keep[j] { batch.original[j] } else { BG };
                if img[j] != want {
                    return Err(ModelError::Shape(format!(
                        "feature {j}: mask and image disagree"
                    )));
                }
            }
            for (k, ok) in o.iter_mut().enumerate() {
                let base: f64 = (0..m).map(|j| f64::from(BG) * self.w[j * K + k]).sum();
                let delta: f64 = (0..m)
                    .filter(|&j| keep[j])
                    .map(|j| f64::from(batch.original[j] - BG) * self.w[j * K + k])
                    .sum();
                *ok = (base + delta + self.b[k]) as f32;
            }
        }
        Ok(())
    }
}

/// The same model without the override.
struct Plain(Linear);

impl BatchModel for Plain {
    fn num_outputs(&self) -> usize {
        K
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        self.0.eval_batch(images, n, shape, out)
    }
}

fn images(n: usize, m: usize) -> Vec<f32> {
    (0..n * m)
        .map(|i| ((i * 7919) % 997) as f32 / 997.0)
        .collect()
}

#[test]
fn explainers_call_eval_masked_with_consistent_masks_and_match_eval_batch() {
    let shape = ImageShape::new(6, 5, 1);
    let m = shape.features();
    let x = images(3, m);
    let masker = ConstantMasker { value: BG };
    let inc = Linear::new(m);
    let plain = Plain(Linear::new(m));
    let partition = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::partition().max_evals(200)
    }
    .check()
    .unwrap();
    let permutation = ExplainerConfig {
        outputs: OutputSelection::All,
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(2),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let runs = [
        (
            partition.explain(&inc, &x, shape, &masker).unwrap(),
            partition.explain(&plain, &x, shape, &masker).unwrap(),
        ),
        (
            permutation.explain(&inc, &x, shape, &masker).unwrap(),
            permutation.explain(&plain, &x, shape, &masker).unwrap(),
        ),
    ];
    // Every explainer call went through the override, none through eval_batch.
    assert_eq!(inc.full_calls.load(Ordering::Relaxed), 0);
    assert!(inc.masked_calls.load(Ordering::Relaxed) >= 3 * 2);
    assert!(plain.0.full_calls.load(Ordering::Relaxed) > 0);
    for (a, b) in &runs {
        assert_eq!(a.output_indices, b.output_indices);
        assert_eq!(a.evals, b.evals);
        let scale = b.values.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let diff = a
            .values
            .iter()
            .zip(&b.values)
            .fold(0.0f64, |s, (u, v)| s.max((u - v).abs()));
        // Same model up to the f64 summation order (then rounded to f32).
        assert!(diff <= 1e-6 * scale.max(1.0), "diff {diff}, scale {scale}");
        assert!(a.efficiency_errors.iter().all(|&e| e <= 1e-5));
    }
}
