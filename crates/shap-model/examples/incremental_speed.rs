//! Full-evaluation throughput of the incremental CNN's kernels against the gemm path.
//!
//! `cargo run --release -p shap-model --example incremental_speed`

use std::time::Instant;

use shap_explain::{BatchModel, ImageShape};
use shap_model::{Cnn, Head, IncrementalCnn, ModelFn};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cnn = Cnn::seeded(0, Head::Softmax, &candle_core::Device::Cpu)?;
    let shape = ImageShape::new(28, 28, 1);
    let n = 512;
    let images: Vec<f32> = (0..n * 784)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let mut out = vec![0f32; n * 10];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    for (name, m) in [
        ("gemm (ModelFn)", &ModelFn::new(&cnn)? as &dyn BatchModel),
        ("direct (IncrementalCnn)", &IncrementalCnn::new(&cnn)?),
    ] {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            pool.install(|| m.eval_batch(&images, n, shape, &mut out))?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:>24}: {:.1} µs per image, one thread",
            best * 1e6 / n as f64
        );
    }
    Ok(())
}
