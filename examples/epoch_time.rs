//! Time one training epoch (batch 256, Keras preset) on the real Fashion-MNIST training set,
//! then forward throughput at batch 512 / 64 / 1 on synthetic images. `cargo xtask bench` runs
//! it with `--json`, alternating with TF-Keras (`benches/python/keras_train_time.py`), so the
//! two are compared within one run.
//!
//! `cargo run --release --example epoch_time [-- --json] [--limit N]`

use shap_toolkit::data::FashionMnist;
use shap_toolkit::model::{Cnn, Dataset, Head};

#[path = "../benches/support/measure.rs"]
mod measure;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Calls of 512 images for the batch-512 figure (the TF-Keras script predicts as many).
const CALLS_512: usize = 10;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let limit = match args.iter().position(|a| a == "--limit") {
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("--limit needs a number"))?
            .parse()?,
        None => usize::MAX,
    };
    let data = FashionMnist::load(None)?;
    let train = Dataset::new(data.train.images(), data.train.labels())?.take(limit);
    let cpu0 = measure::cpu_seconds();
    let epoch = measure::measure_epoch(&train)?;
    let cpu = measure::cpu_seconds() - cpu0;
    let threads = rayon::current_num_threads();
    let cnn = Cnn::seeded(0, Head::Softmax, &candle_core::Device::Cpu)?;
    let fwd512 = measure::measure_forward(&cnn, 512, CALLS_512)?;
    let fwd64 = measure::measure_forward(&cnn, 64, 40)?;
    let fwd1 = measure::measure_forward(&cnn, 1, 500)?;
    if json {
        let v = serde_json::json!({
            "epoch": epoch,
            "epoch_cpu_seconds": cpu,
            "threads": threads,
            "forward_512": fwd512,
            "forward_64": fwd64,
            "forward_1": fwd1,
        });
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!(
        "train epoch ({} images, batch 256): {:.1} s, {:.0} img/s, {:.1} GFLOP/s",
        train.len(),
        epoch.seconds,
        epoch.images_per_second,
        epoch.gflops,
    );
    println!(
        "  CPU time {cpu:.1} s over {threads} threads: {:.1} s per epoch if the cores were not shared",
        cpu / threads as f64
    );
    for (b, t) in [(512, fwd512), (64, fwd64), (1, fwd1)] {
        println!(
            "forward batch {b:>3}: {:>6.0} img/s, {:>5.1} GFLOP/s",
            t.images_per_second, t.gflops
        );
    }
    Ok(())
}
