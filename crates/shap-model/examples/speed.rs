//! Quick speed probe on synthetic data: forward throughput and training-step throughput.
//!
//! `cargo run --release -p shap-model --example speed`

use shap_model::{Cnn, Head, bench};

#[global_allocator]
static GLOBAL: shap_model::bench::FastAllocator = shap_model::bench::FastAllocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cnn = Cnn::new(0, Head::Softmax, &candle_core::Device::Cpu)?;
    for (batch, reps) in [(1usize, 500usize), (64, 20), (512, 6)] {
        let t = bench::measure_forward(&cnn, batch, reps)?;
        println!(
            "forward batch {batch:>3}: {:>7.0} img/s, {:>5.1} GFLOP/s",
            t.images_per_second, t.gflops
        );
    }
    let t = bench::measure_train_step(256, 8)?;
    println!(
        "train step batch 256: {:>7.0} img/s, {:>5.1} GFLOP/s, epoch estimate {:.1} s",
        t.images_per_second,
        t.gflops,
        60_000.0 / t.images_per_second
    );
    Ok(())
}
