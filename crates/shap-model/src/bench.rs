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
    (0..n * PIXELS).map(|i| ((i * 2_654_435_761usize) % 256) as f32 / 255.0).collect()
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
    Ok(Throughput::new(batch * reps, t.elapsed().as_secs_f64(), FORWARD_FLOPS))
}

/// Time `steps` Adam training steps at `batch` images (synthetic data, CPU).
pub fn measure_train_step(batch: usize, steps: usize) -> Result<Throughput, Error> {
    let dev = Device::Cpu;
    let cnn = Cnn::new(0, Head::Softmax, &dev)?;
    let params = ParamsAdamW { lr: 1e-3, eps: 1e-7, weight_decay: 0.0, ..Default::default() };
    let mut opt = AdamW::new(cnn.vars(), params)?;
    let x = Tensor::from_vec(synthetic_images(batch), (batch, 1, 28, 28), &dev)?;
    let y = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(), batch, &dev)?;
    let mut step = || -> Result<(), Error> {
        let loss = candle_nn::loss::cross_entropy(&cnn.logits(&x)?, &y)?;
        opt.step(&loss.backward()?)?;
        Ok(())
    };
    step()?;
    let t = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    Ok(Throughput::new(batch * steps, t.elapsed().as_secs_f64(), TRAIN_FLOPS))
}

/// Time one full training epoch (batch 256, Keras preset) on `train`, without test evaluation.
pub fn measure_epoch(train_set: &Dataset<'_>) -> Result<Throughput, Error> {
    let cfg = TrainConfig { epochs: 1, ..TrainConfig::preset(crate::Preset::Keras) };
    let cnn = Cnn::new(cfg.seed, cfg.head, &Device::Cpu)?;
    let t = Instant::now();
    train(&cnn, &cfg, train_set, None, |_| {})?;
    Ok(Throughput::new(train_set.len(), t.elapsed().as_secs_f64(), TRAIN_FLOPS))
}
