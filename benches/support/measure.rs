//! Plain measurement helpers shared by the benches and the example binaries that time the
//! tutorial CNN (`benches/model.rs`, `examples/bench_table.rs`, `examples/epoch_time.rs`,
//! `examples/speed.rs`), included with `#[path = ...] mod measure;`. Not part of any library.
#![allow(dead_code)]

use std::time::Instant;

use candle_core::Device;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use shap_toolkit::explain::{BatchModel, ImageShape};
use shap_toolkit::model::{
    Cnn, Dataset, FORWARD_FLOPS, Head, ModelFn, Preset, TRAIN_FLOPS, TrainConfig, Trainer,
};

/// Pixels of one 28x28 image.
const PIXELS: usize = 784;

/// A throughput measurement.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Throughput {
    /// Images processed.
    pub images: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Images per second.
    pub images_per_second: f64,
    /// Attained GFLOP/s, using [`FORWARD_FLOPS`] or [`TRAIN_FLOPS`] per image.
    pub gflops: f64,
}

impl Throughput {
    fn new(images: usize, seconds: f64, flops_per_image: u64) -> Self {
        let s = seconds.max(1e-12);
        Self {
            images,
            seconds,
            images_per_second: images as f64 / s,
            gflops: images as f64 * flops_per_image as f64 / s / 1e9,
        }
    }
}

/// Deterministic pseudo-images for benchmarks (values in `[0, 1]`).
pub fn synthetic_images(n: usize) -> Vec<f32> {
    (0..n * PIXELS)
        .map(|i| ((i * 2_654_435_761usize) % 256) as f32 / 255.0)
        .collect()
}

/// The CPU inference path (`ModelFn`, one call per batch of up to 512 images) evaluating
/// the images into `out`.
pub fn forward(model: &ModelFn, images: &[f32], out: &mut [f32]) -> anyhow::Result<()> {
    let n = images.len() / PIXELS;
    Ok(model.eval_batch(images, n, ImageShape::new(28, 28, 1), out)?)
}

/// Forward throughput of the CPU inference path at `batch` images per call, over `reps` calls.
pub fn measure_forward(cnn: &Cnn, batch: usize, reps: usize) -> anyhow::Result<Throughput> {
    let model = ModelFn::new(cnn)?.with_chunk(batch.max(1));
    let x = synthetic_images(batch);
    let mut out = vec![0f32; batch * 10];
    forward(&model, &x, &mut out)?;
    let t = Instant::now();
    for _ in 0..reps {
        forward(&model, &x, &mut out)?;
    }
    Ok(Throughput::new(
        batch * reps,
        t.elapsed().as_secs_f64(),
        FORWARD_FLOPS,
    ))
}

/// One Adam training step on a fixed synthetic batch (CPU), for benchmarks.
pub struct TrainStep {
    cnn: Cnn,
    opt: AdamW,
    x: Vec<f32>,
    y: Vec<u32>,
}

impl TrainStep {
    /// A fresh network and optimiser with a synthetic batch of `batch` images.
    pub fn new(batch: usize) -> anyhow::Result<Self> {
        let cnn = Cnn::seeded(0, Head::Softmax, &Device::Cpu)?;
        let params = ParamsAdamW {
            lr: 1e-3,
            eps: 1e-7,
            weight_decay: 0.0,
            ..Default::default()
        };
        let opt = AdamW::new(cnn.vars(), params)?;
        let x = synthetic_images(batch);
        let y = (0..batch as u32).map(|i| i % 10).collect();
        Ok(Self { cnn, opt, x, y })
    }

    /// Forward, backward and Adam update as `train` does on the CPU; returns the loss.
    pub fn step(&mut self) -> anyhow::Result<f32> {
        let g = self.cnn.cpu_loss_and_grads(&self.x, &self.y)?;
        self.opt.step(&g.grads)?;
        Ok(g.loss)
    }
}

/// Time `steps` Adam training steps at `batch` images (synthetic data, CPU).
pub fn measure_train_step(batch: usize, steps: usize) -> anyhow::Result<Throughput> {
    let mut s = TrainStep::new(batch)?;
    s.step()?;
    let t = Instant::now();
    for _ in 0..steps {
        s.step()?;
    }
    Ok(Throughput::new(
        batch * steps,
        t.elapsed().as_secs_f64(),
        TRAIN_FLOPS,
    ))
}

/// Time one full training epoch (batch 256, Keras preset) on `train_set`, without test
/// evaluation.
pub fn measure_epoch(train_set: &Dataset<'_>) -> anyhow::Result<Throughput> {
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::preset(Preset::Keras)
    };
    let cnn = Cnn::seeded(cfg.seed, cfg.head, &Device::Cpu)?;
    let t = Instant::now();
    Trainer::new(cfg.clone())?.train(&cnn, train_set, None, |_| {})?;
    Ok(Throughput::new(
        train_set.len(),
        t.elapsed().as_secs_f64(),
        TRAIN_FLOPS,
    ))
}

/// User + system CPU seconds of this process so far, all threads (Linux `/proc/self/stat`;
/// 0 elsewhere): beside wall-clock, what the machine spent.
#[allow(dead_code)] // Each example uses its own subset of this module.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with ')'): utime and stime are 12 and 13,
    // in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
