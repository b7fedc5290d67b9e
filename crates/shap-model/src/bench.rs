//! Plain measurement helpers for benchmark tables (`cargo xtask bench`) and examples.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::Error;
use crate::model::{Cnn, FORWARD_FLOPS, Head, PIXELS, TRAIN_FLOPS};
use crate::train::{Dataset, TrainConfig, train};

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

/// Forward throughput of the CPU inference path at `batch` images per call, over `reps` calls.
pub fn measure_forward(cnn: &Cnn, batch: usize, reps: usize) -> Result<Throughput, Error> {
    let w = cnn.cpu_weights()?;
    let x = synthetic_images(batch);
    let mut out = vec![0f32; batch * 10];
    w.forward(&x, &mut out)?;
    let t = Instant::now();
    for _ in 0..reps {
        w.forward(&x, &mut out)?;
    }
    Ok(Throughput::new(
        batch * reps,
        t.elapsed().as_secs_f64(),
        FORWARD_FLOPS,
    ))
}

/// The allocator the project's binaries use (mimalloc): glibc malloc maps and zeroes fresh
/// pages for every large tensor. Declare it with
/// `#[global_allocator] static A: shap_model::bench::FastAllocator = shap_model::bench::FastAllocator;`.
pub use mimalloc::MiMalloc as FastAllocator;

/// One Adam training step on a fixed synthetic batch (CPU), for benchmarks.
pub struct TrainStep {
    cnn: Cnn,
    opt: AdamW,
    x: Vec<f32>,
    y: Vec<u32>,
}

impl TrainStep {
    /// A fresh network and optimiser with a synthetic batch of `batch` images.
    pub fn new(batch: usize) -> Result<Self, Error> {
        let dev = Device::Cpu;
        let cnn = Cnn::new(0, Head::Softmax, &dev)?;
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

    /// Forward, backward and Adam update as in [`train`]; returns the loss.
    pub fn step(&mut self) -> Result<f32, Error> {
        let g = self.cnn.cpu_loss_and_grads(&self.x, &self.y)?;
        self.opt.step(&self.cnn.grad_store(g.grads)?)?;
        Ok(g.loss)
    }

    /// The same step through Candle's autograd with the fused conv custom op.
    pub fn step_autograd(&mut self) -> Result<f32, Error> {
        let n = self.y.len();
        let x = Tensor::from_slice(&self.x, (n, 1, 28, 28), &Device::Cpu)?;
        let y = Tensor::from_slice(&self.y, n, &Device::Cpu)?;
        let loss = candle_nn::loss::cross_entropy(&self.cnn.logits(&x)?, &y)?;
        self.opt.step(&loss.backward()?)?;
        Ok(loss.to_scalar::<f32>()?)
    }
}

/// Time `steps` Adam training steps at `batch` images (synthetic data, CPU).
pub fn measure_train_step(batch: usize, steps: usize) -> Result<Throughput, Error> {
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

/// Time one full training epoch (batch 256, Keras preset) on `train`, without test evaluation.
pub fn measure_epoch(train_set: &Dataset<'_>) -> Result<Throughput, Error> {
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::preset(crate::Preset::Keras)
    };
    let cnn = Cnn::new(cfg.seed, cfg.head, &Device::Cpu)?;
    let t = Instant::now();
    train(&cnn, &cfg, train_set, None, |_| {})?;
    Ok(Throughput::new(
        train_set.len(),
        t.elapsed().as_secs_f64(),
        TRAIN_FLOPS,
    ))
}
