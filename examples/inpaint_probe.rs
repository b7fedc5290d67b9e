//! Times a Partition explanation of test images 0-3 with the CLI's settings (500 evals, top 5)
//! through the full network or the incremental path, to compare the two for a masker (the
//! question `--eval auto` answers for inpainting; see docs/own-model.md). `--repeats` runs
//! (default 5) after a warm-up run, each on a fresh model state; prints the fastest wall-clock
//! and CPU seconds with rayon's threads, then on one thread. Profile it with `perf record`.
//!
//! `cargo run --release --example inpaint_probe -- --model M.safetensors [--masker SPEC]
//! [--eval full|incremental] [--repeats N]` (default masker `inpaint_telea`, default path
//! incremental)

use std::time::Instant;

use shap_toolkit::data::FashionMnist;
use shap_toolkit::explain::{BatchModel, ExplainerConfig, ImageShape, OutputSelection};
use shap_toolkit::model::{IncrementalCnn, ModelFn};

#[path = "../benches/support/measure.rs"]
mod measure;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn main() -> anyhow::Result<()> {
    let model = arg("--model").ok_or_else(|| anyhow::anyhow!("--model M.safetensors"))?;
    let spec = arg("--masker").unwrap_or_else(|| "inpaint_telea".into());
    let repeats: usize = arg("--repeats")
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5);
    let full = match arg("--eval").as_deref() {
        None | Some("incremental") => false,
        Some("full") => true,
        Some(other) => anyhow::bail!("--eval {other}: expected full or incremental"),
    };
    let data = FashionMnist::load(None)?;
    let images = data.test.images_f32(&[0, 1, 2, 3])?;
    let shape = ImageShape::new(28, 28, 1);
    let cnn = shap_toolkit::model::load(model.as_ref(), &candle_core::Device::Cpu)?.cnn;
    let explainer = ExplainerConfig {
        outputs: OutputSelection::TopK(5),
        ..ExplainerConfig::partition()
    }
    .check()?;
    let masker = explainer.masker(spec.parse()?);
    let run = |threads: usize| -> anyhow::Result<(f64, f64)> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
        for run in 0..=repeats {
            let inc = IncrementalCnn::new(&cnn)?;
            let plain = ModelFn::new(&cnn)?;
            let m: &dyn BatchModel = if full { &plain } else { &inc };
            let (t, c) = (Instant::now(), measure::cpu_seconds());
            pool.install(|| explainer.explain(m, &images, shape, &masker))?;
            if run > 0 {
                wall = wall.min(t.elapsed().as_secs_f64());
                cpu = cpu.min(measure::cpu_seconds() - c);
            }
        }
        Ok((wall, cpu))
    };
    for threads in [2, 1] {
        let (w, c) = run(threads)?;
        println!("{spec}, {threads} thread(s): wall {w:.3} s, cpu {c:.3} s");
    }
    Ok(())
}
