//! Quick speed probe on synthetic data: forward throughput and training-step throughput.
//!
//! `cargo run --release --example speed`

use shap_toolkit::model::{Cnn, Head};

#[path = "../benches/support/measure.rs"]
mod measure;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cnn = Cnn::seeded(0, Head::Softmax, &candle_core::Device::Cpu)?;
    for (batch, reps) in [(1usize, 500usize), (64, 20), (512, 6)] {
        let t = measure::measure_forward(&cnn, batch, reps)?;
        println!(
            "forward batch {batch:>3}: {:>7.0} img/s, {:>5.1} GFLOP/s",
            t.images_per_second, t.gflops
        );
    }
    let t = measure::measure_train_step(256, 8)?;
    println!(
        "train step batch 256: {:>7.0} img/s, {:>5.1} GFLOP/s, epoch estimate {:.1} s",
        t.images_per_second,
        t.gflops,
        60_000.0 / t.images_per_second
    );
    Ok(())
}
