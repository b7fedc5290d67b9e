//! `shap-model`: the Fashion-MNIST tutorial CNN in Candle, with fast CPU convolutions.
//!
//! - [`Cnn`]: `Conv2d(1->32, 3x3, pad 1) + ReLU`, `Conv2d(32->16, 3x3, pad 1) + ReLU`,
//!   flatten (C, H, W), `Linear(12544 -> 10)`; 130,394 parameters; softmax or logits [`Head`].
//!   A [`candle_nn::Module`] built from a [`candle_nn::VarBuilder`] (a `VarMap` to train, a
//!   safetensors file to run), or seeded ([`Cnn::seeded`]: Glorot-uniform from ChaCha8, the
//!   same weights on every machine). On the CPU the convolutions run as a fused im2col +
//!   `gemm` Candle custom op; on CUDA/Metal (Cargo features `cuda` / `metal`) as Candle's
//!   stock `conv2d`.
//! - [`Trainer::train`]: Adam (Keras epsilon 1e-7, no weight decay), cross-entropy on logits,
//!   `keras` / `flax` [`Preset`]s, per-epoch [`EpochStats`], NaN/inf stop, deterministic per seed.
//!   On the CPU each step runs hand-written forward/backward passes over the same kernels
//!   ([`Cnn::cpu_loss_and_grads`], tested against Candle's autograd) and feeds Candle's AdamW;
//!   on GPUs it uses Candle's autograd.
//! - [`checkpoint`]: safetensors save (atomic) / load (strict: missing, extra and mis-shaped
//!   tensors are errors naming the tensor and both shapes).
//! - [`eval`]: accuracy, confusion matrix, scikit-learn style classification report.
//! - [`ModelFn`]: the network as a [`shap_explain::BatchModel`] for the explainers.
//! - [`CandleClassifier`]: any Candle image classifier (a `candle_nn::Module` or a closure) as
//!   a [`shap_explain::BatchModel`]: layout, normalisation, softmax, device, rows per call.
//! - [`IncrementalCnn`]: the same network on the CPU, evaluating the masked images of an
//!   explanation incrementally (only what each changed block reaches is recomputed), bit-identical
//!   to its own full evaluation.
//!
//! ```
//! use shap_model::{Cnn, Head, ModelFn};
//! use shap_explain::{BatchModel, ImageShape};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cnn = Cnn::seeded(42, Head::Softmax, &candle_core::Device::Cpu)?;
//! assert_eq!(cnn.num_parameters(), 130_394);
//! let model = ModelFn::new(&cnn)?;
//! let images = vec![0.5f32; 2 * 784];
//! let mut out = vec![0f32; 2 * 10];
//! model.eval_batch(&images, 2, ImageShape::new(28, 28, 1), &mut out)?;
//! assert!((out[..10].iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! # Ok(()) }
//! ```

mod adam;
mod adapter;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod checkpoint;
pub mod classifier;
mod conv;
#[cfg(test)]
mod conv_tests;
mod dense;
pub mod eval;
mod geometry;
pub mod incremental;
mod model;
mod train;
#[cfg(target_arch = "x86_64")]
mod winograd;

pub use adapter::{DEFAULT_CHUNK, ModelFn};
pub use checkpoint::{Checkpoint, CheckpointMeta, load, save};
pub use classifier::{CandleClassifier, ClassifierBuilder, DEFAULT_MAX_ROWS};
pub use eval::{ClassReport, Evaluation, evaluate, pick_examples};
pub use incremental::{IncrementalCnn, IncrementalStats};
pub use model::{
    CLASSES, Cnn, CpuGrads, DeviceSpec, FORWARD_FLOPS, Head, LAYERS, PARAMETERS, TENSORS,
    TRAIN_FLOPS, device,
};
pub use train::{Dataset, EpochStats, History, Preset, TrainConfig, TrainEvent, Trainer};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file refused by `shap-io` (too large, not writable, ...); its OS errors become
    /// [`Error::Io`].
    #[error(transparent)]
    Output(shap_io::IoError),
    /// An error from Candle.
    #[error("a Candle operation failed")]
    Candle(#[from] candle_core::Error),
    /// Explaining failed ([`CandleClassifier::explain`]).
    #[error("explaining failed")]
    Explain(#[from] shap_explain::ExplainError),
    /// The requested device is unknown or not compiled in.
    #[error("device: {0}")]
    Device(String),
    /// A compiled-in GPU device failed to open.
    #[error("device: cannot open {device}")]
    OpenDevice {
        /// The device, e.g. `cuda:0`.
        device: String,
        /// Candle's error.
        #[source]
        source: candle_core::Error,
    },
    /// An invalid parameter or configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Input buffers of the wrong size or shape.
    #[error("invalid input: {0}")]
    Input(String),
    /// A tensor has the wrong shape.
    #[error("tensor {name}: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape that was found.
        found: Vec<usize>,
    },
    /// A checkpoint lacks a tensor the model needs.
    #[error("checkpoint {path}: missing tensor {name} (expected shape {expected:?})")]
    MissingTensor {
        /// Checkpoint file.
        path: std::path::PathBuf,
        /// Tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
    },
    /// A checkpoint holds a tensor the model does not have.
    #[error("checkpoint {path}: unexpected tensor {name} with shape {found:?}")]
    ExtraTensor {
        /// Checkpoint file.
        path: std::path::PathBuf,
        /// Tensor name.
        name: String,
        /// Its shape.
        found: Vec<usize>,
    },
    /// A checkpoint tensor has the wrong shape or dtype.
    #[error(
        "checkpoint {path}: tensor {name} has shape {found:?} {dtype}, expected {expected:?} F32"
    )]
    TensorMismatch {
        /// Checkpoint file.
        path: std::path::PathBuf,
        /// Tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
        /// Dtype in the file.
        dtype: String,
    },
    /// A checkpoint file is not valid safetensors.
    #[error("checkpoint {path}: not a valid safetensors file")]
    Safetensors {
        /// Checkpoint file.
        path: std::path::PathBuf,
        /// The parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A checkpoint has bad metadata or non-finite values.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// Checkpoint file.
        path: std::path::PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// File I/O failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Training produced a NaN or infinite loss.
    #[error("training diverged: loss {loss} at epoch {epoch}, batch {batch}")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The loss value.
        loss: f32,
    },
}

impl From<shap_io::IoError> for Error {
    fn from(e: shap_io::IoError) -> Self {
        match e {
            shap_io::IoError::Os { path, source, .. } => Self::Io { path, source },
            other => Self::Output(other),
        }
    }
}

impl Error {
    /// As a Candle error (for [`candle_nn::Module::forward`]): Candle's own errors unchanged,
    /// ours wrapped with their message and cause.
    pub(crate) fn into_candle(self) -> candle_core::Error {
        match self {
            Self::Candle(e) => e,
            other => candle_core::Error::wrap(other),
        }
    }
}
