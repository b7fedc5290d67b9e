//! Training records: the settings ([`TrainConfig`]) and what each epoch measured.

use crate::UnknownName;

/// What the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// Softmax probabilities (the Keras tutorial).
    Softmax,
    /// Raw logits (the Flax tutorial).
    Logits,
}

impl Head {
    /// The lowercase name used in checkpoints and on the command line.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Head::Softmax => "softmax",
            Head::Logits => "logits",
        }
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Head {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "softmax" | "probabilities" => Ok(Head::Softmax),
            "logits" => Ok(Head::Logits),
            other => Err(UnknownName {
                what: "output head",
                given: other.to_string(),
                expected: "softmax or logits",
            }),
        }
    }
}

/// Training presets of the two tutorials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Preset {
    /// Keras tutorial: lr 1e-3, batch 256, 10 epochs, softmax head.
    Keras,
    /// Flax tutorial: lr 1e-4, batch 256, 5 epochs, logits head.
    Flax,
}

impl Preset {
    /// Lowercase name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Preset::Keras => "keras",
            Preset::Flax => "flax",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "keras" => Ok(Preset::Keras),
            "flax" => Ok(Preset::Flax),
            o => Err(UnknownName {
                what: "preset",
                given: o.to_string(),
                expected: "keras or flax",
            }),
        }
    }
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Preset the values came from.
    pub preset: Preset,
    /// Epochs.
    pub epochs: usize,
    /// Batch size (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed for initialisation and shuffling.
    pub seed: u64,
    /// Output head of the trained model.
    pub head: Head,
    /// Adam epsilon (Keras: 1e-7).
    pub eps: f64,
}

impl TrainConfig {
    /// The preset's defaults (seed 42).
    pub fn preset(preset: Preset) -> Self {
        let (lr, epochs, head) = match preset {
            Preset::Keras => (1e-3, 10, Head::Softmax),
            Preset::Flax => (1e-4, 5, Head::Logits),
        };
        Self {
            preset,
            epochs,
            batch_size: 256,
            lr,
            seed: 42,
            head,
            eps: 1e-7,
        }
    }
}

/// Statistics of one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch (predictions made before each update).
    pub train_accuracy: f64,
    /// Test cross-entropy after the epoch, when a test set was given.
    pub test_loss: Option<f64>,
    /// Test accuracy after the epoch, when a test set was given.
    pub test_accuracy: Option<f64>,
    /// Seconds spent training (excluding the test evaluation).
    pub train_seconds: f64,
    /// Seconds spent on the test evaluation.
    pub test_seconds: f64,
    /// Total seconds of the epoch (training plus test evaluation).
    pub seconds: f64,
    /// Training throughput, images per second.
    pub images_per_second: f64,
}

impl std::fmt::Display for EpochStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {}: loss {:.4} accuracy {:.4}",
            self.epoch, self.train_loss, self.train_accuracy
        )?;
        if let (Some(l), Some(a)) = (self.test_loss, self.test_accuracy) {
            write!(f, " | test loss {l:.4} accuracy {a:.4}")?;
        }
        write!(
            f,
            " | {:.1} s ({:.0} img/s)",
            self.train_seconds, self.images_per_second
        )
    }
}

/// The training history: configuration plus one entry per epoch (JSON-serialisable).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// The configuration used.
    pub config: TrainConfig,
    /// Number of training examples.
    pub train_examples: usize,
    /// Per-epoch statistics.
    pub epochs: Vec<EpochStats>,
}

/// Metadata stored alongside the weights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    /// Training preset name (`keras`, `flax`, or `unknown`).
    pub preset: String,
    /// Output head.
    pub head: Head,
    /// Seed used for initialisation and shuffling.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
}

impl Default for CheckpointMeta {
    fn default() -> Self {
        Self {
            preset: "unknown".into(),
            head: Head::Softmax,
            seed: 0,
            epochs: 0,
        }
    }
}
