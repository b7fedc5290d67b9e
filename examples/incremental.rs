//! The incremental CNN path against the plain one on explanations of 4 test images (Partition:
//! 500 evals; Permutation: 1600; top-5): time (best of 3), share of the second convolution
//! recomputed, largest difference between the two explanations' values.
//!
//! `cargo run --release --example incremental`

use std::time::Instant;

use shap_toolkit::data::FashionMnist;
use shap_toolkit::explain::{
    BatchModel, ExplainerConfig, Explanation, ImageShape, OutputSelection,
};
use shap_toolkit::model::{Cnn, Head, IncrementalCnn, ModelFn};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let data = FashionMnist::load(None)?;
    let shape = ImageShape::new(28, 28, 1);
    let images = data.test.images_f32(&[0, 1, 2, 3])?;
    let cnn = Cnn::seeded(0, Head::Softmax, &candle_core::Device::Cpu)?;
    let plain = ModelFn::new(&cnn)?;
    let inc = IncrementalCnn::new(&cnn)?;
    let partition = ExplainerConfig {
        outputs: OutputSelection::TopK(5),
        ..ExplainerConfig::partition()
    }
    .check()?;
    let permutation = ExplainerConfig {
        outputs: OutputSelection::TopK(5),
        ..ExplainerConfig::permutation().max_evals(1600)
    }
    .check()?;
    for (explainer, spec) in [
        (&partition, "blur(28,28)"),
        (&partition, "inpaint_telea"),
        (&partition, "inpaint_ns"),
        (&permutation, "blur(28,28)"),
    ] {
        let algo = explainer.algorithm().name();
        let masker = explainer.masker(spec.parse()?);
        let explain = |m: &dyn BatchModel| -> anyhow::Result<Explanation> {
            Ok(explainer.explain(m, &images, shape, &masker)?)
        };
        let run = |m: &dyn BatchModel| -> anyhow::Result<_> {
            let mut best = f64::INFINITY;
            let mut e = None;
            for _ in 0..3 {
                let t = Instant::now();
                e = Some(explain(m)?);
                best = best.min(t.elapsed().as_secs_f64());
            }
            Ok((best, e.ok_or_else(|| anyhow::anyhow!("no run"))?))
        };
        let (tp, ep) = run(&plain)?;
        let before = inc.stats();
        let (ti, ei) = run(&inc)?;
        let after = inc.stats();
        let work = after.since(before);
        let diff = ep
            .values
            .iter()
            .zip(&ei.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{algo:>11} {spec:>13}: plain {tp:.3} s, incremental {ti:.3} s ({:.1}x), conv2 work {:.0}%, \
             max |value diff| {diff:.1e}",
            tp / ti,
            100.0 * work.work_fraction()
        );
    }
    Ok(())
}
