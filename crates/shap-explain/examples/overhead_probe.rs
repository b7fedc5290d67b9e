//! Measures the explainers' own cost with a model that does no work (all outputs depend only
//! on the first pixel), single-threaded: the time per evaluated row is pure overhead
//! (masking + bookkeeping).
//!
//! Run: `cargo run --release -p shap-explain --example overhead_probe`

use std::time::Instant;

use shap_explain::{
    BackgroundMasker, ExplainerConfig, FnModel, ImageShape, Method, ModelError, OutputSelection,
    PermutationBudget, PermutationSettings,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shape = ImageShape::new(28, 28, 1);
    let m = shape.features();
    let model = FnModel::new(10, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
        let m = s.features();
        for i in 0..n {
            for k in 0..10 {
                out[i * 10 + k] = x[i * m + (k * 77) % m] * (k as f32 + 1.0) + x[i * m + 400];
            }
        }
        Ok::<(), ModelError>(())
    });
    let images: Vec<f32> = (0..4 * m).map(|i| ((i * 31) % 97) as f32 / 97.0).collect();
    let masker = BackgroundMasker {
        background: vec![0.1; m],
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    pool.install(|| -> Result<(), shap_explain::ExplainError> {
        let explainers = [
            ExplainerConfig {
                outputs: OutputSelection::TopK(5),
                ..ExplainerConfig::partition()
            }
            .check()?,
            ExplainerConfig {
                outputs: OutputSelection::TopK(5),
                method: Method::Permutation(PermutationSettings {
                    budget: PermutationBudget::Passes(1),
                    ..PermutationSettings::default()
                }),
                ..ExplainerConfig::permutation()
            }
            .check()?,
        ];
        for _ in 0..3 {
            for explainer in &explainers {
                let t0 = Instant::now();
                let e = explainer.explain(&model, &images, shape, &masker)?;
                let t = t0.elapsed().as_secs_f64();
                let rows: usize = e.evals.iter().sum();
                println!(
                    "{}: {rows} rows in {:.2} ms = {:.2} us/row overhead (model {:.2} ms)",
                    explainer.algorithm(),
                    t * 1e3,
                    t * 1e6 / rows as f64,
                    e.stats.model_time.as_secs_f64() * 1e3
                );
            }
        }
        Ok(())
    })?;
    Ok(())
}
