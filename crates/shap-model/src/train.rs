//! Adam training with Keras / Flax presets, per-epoch history and a NaN stop.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::Error;
use crate::adam::Adam;
use crate::model::{CLASSES, Cnn, Head, PIXELS};

pub use shap_records::{EpochStats, History, Preset, TrainConfig};

/// Checked training settings ([`Trainer::new`]), ready to train.
#[derive(Debug, Clone, PartialEq)]
pub struct Trainer(TrainConfig);

impl Trainer {
    /// Check training settings (at least one epoch, a batch of at least one image, a positive
    /// finite learning rate and Adam epsilon) into a trainer; nothing is checked again while
    /// training. The settings are a plain record (`shap_records::TrainConfig`), so that the
    /// history a run writes can be read without Candle.
    pub fn new(config: TrainConfig) -> Result<Self, Error> {
        if config.epochs == 0 {
            return Err(Error::Config(
                "epochs must be at least 1 (0 would leave the network untrained)".into(),
            ));
        }
        if config.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if !(config.lr.is_finite() && config.lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be positive, got {}",
                config.lr
            )));
        }
        if !(config.eps.is_finite() && config.eps > 0.0) {
            return Err(Error::Config(format!(
                "Adam epsilon must be positive, got {}",
                config.eps
            )));
        }
        Ok(Trainer(config))
    }

    /// The settings it trains with.
    pub fn config(&self) -> &TrainConfig {
        &self.0
    }

    /// Train `cnn` in place with Adam on `train_set`, evaluating on `test` after each epoch.
    ///
    /// The loss is cross-entropy on the logits (stable log-softmax) whatever the head. Each epoch
    /// visits the examples in an order shuffled by ChaCha8 seeded from `cfg.seed` and the epoch.
    /// `on_event` hears of every batch and every epoch ([`TrainEvent`]). A NaN or infinite batch loss stops with
    /// [`Error::NonFinite`]. On the CPU, a given seed gives bit-identical weights whatever the
    /// thread count.
    pub fn train(
        &self,
        cnn: &Cnn,
        train_set: &Dataset<'_>,
        test: Option<&Dataset<'_>>,
        on_event: impl FnMut(TrainEvent<'_>),
    ) -> Result<History, Error> {
        train(cnn, self, train_set, test, on_event)
    }
}

/// Images (u8, 784 per image) and labels (0..10) of one split, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    images: &'a [u8],
    labels: &'a [u8],
}

impl<'a> Dataset<'a> {
    /// Check that `images` holds `labels.len()` 28x28 images and every label is below 10.
    pub fn new(images: &'a [u8], labels: &'a [u8]) -> Result<Self, Error> {
        if images.len() != labels.len() * PIXELS {
            return Err(Error::Input(format!(
                "{} image bytes for {} labels (need 784 per label)",
                images.len(),
                labels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
            return Err(Error::Input(format!(
                "label {} at index {i} is not below 10",
                labels[i]
            )));
        }
        Ok(Self { images, labels })
    }

    /// The first `n` examples (all of them when `n` is larger).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            images: &self.images[..n * PIXELS],
            labels: &self.labels[..n],
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Labels.
    pub fn labels(&self) -> &'a [u8] {
        self.labels
    }

    /// All images scaled to `[0, 1]` (`x / 255`).
    pub fn images_f32(&self) -> Vec<f32> {
        self.images.iter().map(|&v| f32::from(v) / 255.0).collect()
    }

    fn gather(&self, idx: &[usize]) -> (Vec<f32>, Vec<u32>) {
        let mut x = Vec::with_capacity(idx.len() * PIXELS);
        for &i in idx {
            x.extend(
                self.images[i * PIXELS..(i + 1) * PIXELS]
                    .iter()
                    .map(|&v| f32::from(v) / 255.0),
            );
        }
        (x, idx.iter().map(|&i| u32::from(self.labels[i])).collect())
    }
}

/// Mean cross-entropy and accuracy of logits `(n, 10)` against `labels`, in f64.
pub(crate) fn loss_and_accuracy(logits: &[f32], labels: &[u8]) -> (f64, f64) {
    let n = labels.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mut loss = 0f64;
    let mut correct = 0usize;
    for (row, &y) in logits.chunks_exact(CLASSES).zip(labels) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
        loss += lse - row[y as usize] as f64;
        if argmax(row) == y as usize {
            correct += 1;
        }
    }
    (loss / n as f64, correct as f64 / n as f64)
}

/// Index of the largest value (first one on ties).
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
/// What [`Trainer::train`] reports as it goes, for a caller to show progress (the library draws
/// nothing).
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// Batch `batch` (from 1) of the `batches` of epoch `epoch` is done.
    Batch {
        /// The epoch, from 1.
        epoch: usize,
        /// The batch, from 1.
        batch: usize,
        /// Batches in an epoch.
        batches: usize,
    },
    /// An epoch is done, with its statistics.
    Epoch(&'a EpochStats),
}

/// [`Trainer::train`].
fn train(
    cnn: &Cnn,
    trainer: &Trainer,
    train: &Dataset<'_>,
    test: Option<&Dataset<'_>>,
    mut on_event: impl FnMut(TrainEvent<'_>),
) -> Result<History, Error> {
    let cfg = trainer.config();
    if train.is_empty() {
        return Err(Error::Config("the training set is empty".into()));
    }
    let params = ParamsAdamW {
        lr: cfg.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: cfg.eps,
        weight_decay: 0.0,
    };
    let dev: Device = cnn.device().clone();
    // On the CPU a plain-Vec Adam with the same arithmetic (crate::adam); elsewhere candle's.
    let mut opt = AdamW::new(if dev.is_cpu() { Vec::new() } else { cnn.vars() }, params)?;
    let mut cpu_adam = if dev.is_cpu() {
        Some(Adam::new(cnn, cfg.lr, cfg.eps)?)
    } else {
        None
    };
    let test_images = test.map(|t| t.images_f32());
    let mut history = History {
        config: cfg.clone(),
        train_examples: train.len(),
        epochs: Vec::new(),
    };
    let n_batches = train.len().div_ceil(cfg.batch_size);
    let mut buffers = crate::model::StepBuffers::default();
    for epoch in 1..=cfg.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch)));
        let start = Instant::now();
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        for (b, idx) in order.chunks(cfg.batch_size).enumerate() {
            let (x, y) = train.gather(idx);
            let m = idx.len();
            let (lv, lg) = if dev.is_cpu() {
                let g = cnn.cpu_loss_and_grads_with(&x, &y, &mut buffers)?;
                if !g.loss.is_finite() {
                    return Err(Error::NonFinite {
                        epoch,
                        batch: b + 1,
                        loss: g.loss,
                    });
                }
                if let Some(adam) = cpu_adam.as_mut() {
                    adam.step(cnn, &g.grads)?;
                }
                (g.loss, g.logits)
            } else {
                let x = Tensor::from_vec(x, (m, 1, 28, 28), &dev)?;
                let yt = Tensor::from_vec(y.clone(), m, &dev)?;
                let logits = cnn.logits(&x)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &yt)?;
                let lv = loss.to_scalar::<f32>()?;
                if !lv.is_finite() {
                    return Err(Error::NonFinite {
                        epoch,
                        batch: b + 1,
                        loss: lv,
                    });
                }
                opt.step(&loss.backward()?)?;
                (lv, logits.flatten_all()?.to_vec1::<f32>()?)
            };
            loss_sum += f64::from(lv) * m as f64;
            correct += lg
                .chunks_exact(CLASSES)
                .zip(&y)
                .filter(|(row, l)| argmax(row) == **l as usize)
                .count();
            on_event(TrainEvent::Batch {
                epoch,
                batch: b + 1,
                batches: n_batches,
            });
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let (test_loss, test_accuracy) = match (test, &test_images) {
            (Some(t), Some(xs)) => {
                let logits = cnn.predict(xs, Head::Logits, 512)?;
                let (l, a) = loss_and_accuracy(&logits, t.labels());
                (Some(l), Some(a))
            }
            _ => (None, None),
        };
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            train_accuracy: correct as f64 / train.len() as f64,
            test_loss,
            test_accuracy,
            train_seconds,
            test_seconds: t1.elapsed().as_secs_f64(),
            seconds: start.elapsed().as_secs_f64(),
            images_per_second: train.len() as f64 / train_seconds.max(1e-9),
        };
        on_event(TrainEvent::Epoch(&stats));
        history.epochs.push(stats);
    }
    Ok(history)
}
