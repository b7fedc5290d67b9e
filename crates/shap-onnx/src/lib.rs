//! `shap-onnx`: ONNX image classifiers as [`shap_explain::BatchModel`]s, on one of two
//! engines:
//!
//! - [`OrtClassifier`]: onnxruntime, through the `ort` crate with the library loaded at run
//!   time ([`runtime`]: `--onnxruntime PATH`, `ORT_DYLIB_PATH`, or the `onnxruntime` Python
//!   package); nothing is downloaded or linked at build time.
//! - [`TractClassifier`]: [tract](https://github.com/sonos/tract), pure Rust, nothing to
//!   install; planned for fixed batch sizes.
//!
//! [`OnnxFile::open`] reads and checks a model once for either engine: one image input,
//! `(N, C, H, W)` or `(N, H, W, C)`, with 1 or 3 channels, and external data (the weights
//! `torch.onnx.export` writes beside the model) only inside the model's own folder. The layout
//! is read from the input shape (the dimension after the batch being 1 or 3 means NCHW,
//! otherwise NHWC) unless given. Each engine checks that the output is `(N, K)`.
//!
//! [`recognize_tutorial`] finds the tutorial CNN's weights in a graph of exactly that network,
//! so that a front end can run it on `shap-model`'s own kernels instead.
//!
//! Masked images arrive in pixel space and (H, W, C) order; the engines normalise them
//! ([`Normalize`](shap_explain::Normalize), torchvision style), arrange them in the model's
//! layout, run the model and apply a softmax when asked. docs/onnx-engines.md says more.
//!
//! ```no_run
//! use shap_explain::{ConstantMasker, ExplainerConfig};
//! use shap_onnx::TractClassifier;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = TractClassifier::load("model.onnx".as_ref(), None)?;
//! let shape = model.image_shape();
//! let image = vec![0.5f32; shape.features()];
//! let explainer = ExplainerConfig::partition().check()?;
//! let e = explainer.explain(&model, &image, shape, &ConstantMasker { value: 0.0 })?;
//! println!("{:?}", e.output_indices);
//! # Ok(()) }
//! ```

mod external;
mod file;
mod ort_engine;
mod prep;
mod randomise;
pub mod runtime;
mod tract_engine;
mod tutorial;

use std::path::PathBuf;

/// The tract version this crate runs (the workspace pins it).
pub const TRACT_VERSION: &str = "0.23.9";

/// Default images per call of the model (tract, and onnxruntime on a GPU).
pub const DEFAULT_MAX_ROWS: usize = 64;

/// Default images per call for onnxruntime on the CPU: measured best overall on real models
/// (docs/onnx-engines.md, "Batch size").
pub const ORT_CPU_ROWS: usize = 16;

/// An engine's error as a standard error, kept as a cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The largest model file read (protobuf itself stops at 2 GiB).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Why an ONNX model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read (missing, a directory, larger than [`MAX_MODEL_BYTES`]...).
    #[error("cannot read the model")]
    Read(#[source] shap_io::IoError),
    /// The file could not be read or is not a valid ONNX model.
    #[error("{}: not a readable ONNX model", path.display())]
    Parse {
        /// The model file.
        path: PathBuf,
        /// tract's reason.
        #[source]
        source: Cause,
    },
    /// The model does not have exactly one input.
    #[error("{}: the model has {count} inputs; an image classifier has one", path.display())]
    Inputs {
        /// The model file.
        path: PathBuf,
        /// Number of inputs.
        count: usize,
    },
    /// The input is not a batch of images.
    #[error(
        "{}: the input has shape {shape}; expected a batch of images (N, C, H, W) or (N, H, W, C) with 1 or 3 channels",
        path.display()
    )]
    NotImage {
        /// The model file.
        path: PathBuf,
        /// The input shape as the model declares it.
        shape: String,
    },
    /// tract cannot prepare the model (an operator it does not support, a type mismatch...).
    #[error("{}: the model cannot be prepared for running", path.display())]
    Prepare {
        /// The model file.
        path: PathBuf,
        /// tract's reason (names the operator, when one is unsupported).
        #[source]
        source: Cause,
    },
    /// The model's output is not `(N, K)`.
    #[error("{}: the output has shape {shape} for {n} image(s); expected ({n}, K)", path.display())]
    Output {
        /// The model file.
        path: PathBuf,
        /// The output shape.
        shape: String,
        /// Images in the probe.
        n: usize,
    },
    /// A setting does not fit the model (normalisation for another channel count...).
    #[error("invalid setting")]
    Config(#[source] shap_explain::ExplainError),
    /// Running the model failed.
    #[error("running the model failed")]
    Run(#[source] Cause),
    /// A buffer for the model's input or output could not be allocated.
    #[error("{}: not enough memory for the model's input", path.display())]
    Memory {
        /// The model file.
        path: PathBuf,
        /// The failed allocation.
        #[source]
        source: Box<shap_explain::ExplainError>,
    },
    /// A tensor's external data is refused (outside the model's folder, not a regular file,
    /// shorter than declared...).
    #[error("{}: tensor {tensor:?}: external data refused: {reason}", path.display())]
    External {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// An image's outputs depend on the other images of its batch (a softmax over the batch
    /// axis, batch normalisation in training mode): masked images evaluated together would
    /// change each other's values.
    #[error(
        "{}: an image's outputs change with the other images in its batch ({detail}): explaining it would mix images; export the model in inference mode with per-image outputs",
        path.display()
    )]
    BatchDependent {
        /// The model file.
        path: PathBuf,
        /// What differed.
        detail: String,
    },
    /// Layers to randomise that the model does not have (the sanity check).
    #[error("{}: the model has {layers} layers to randomise, not {asked}", path.display())]
    Layers {
        /// The model file.
        path: PathBuf,
        /// How many it has.
        layers: usize,
        /// How many were asked for.
        asked: usize,
    },
    /// The onnxruntime library cannot be found or used.
    #[error("onnxruntime library{}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Runtime {
        /// The library file, when one was found.
        path: Option<PathBuf>,
        /// Why it cannot be used.
        #[source]
        source: Cause,
    },
}

/// Run `f`, turning a panic inside `engine` into an error that carries the panic's message.
pub(crate) fn guarded<T>(engine: &str, f: impl FnOnce() -> T) -> Result<T, Cause> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("{engine} failed internally on this model: {what}").into()
    })
}

/// Refuse a model whose outputs for an image depend on the other images of its batch: the
/// first row of a call holding a blank image and a grey ramp must equal the blank image's
/// outputs alone (to 1e-4, relative; engines round a little differently per batch size).
pub(crate) fn check_rows_independent(
    model: &dyn shap_explain::BatchModel,
    shape: shap_explain::ImageShape,
    path: &std::path::Path,
) -> Result<(), OnnxError> {
    let (m, k) = (shape.features(), model.num_outputs());
    let mut x = zeros(m.saturating_mul(2), path)?;
    for (i, v) in x[m..].iter_mut().enumerate() {
        *v = (i % 256) as f32 / 255.0;
    }
    let (mut alone, mut both) = (vec![0.0f32; k], vec![0.0f32; 2 * k]);
    model
        .eval_batch(&x[..m], 1, shape, &mut alone)
        .and_then(|()| model.eval_batch(&x, 2, shape, &mut both))
        .map_err(|e| OnnxError::Run(Box::new(e)))?;
    for (j, (a, b)) in alone.iter().zip(&both[..k]).enumerate() {
        // NaN or infinity in both is no batch dependence (a model may compute NaN on a blank
        // image, as per-image standardisation does); the explanation refuses it where it
        // reaches a result, naming the image.
        let same_non_finite =
            !a.is_finite() && (a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan());
        let close = same_non_finite || (a - b).abs() <= 1e-4 * a.abs().max(1.0);
        if !close {
            return Err(OnnxError::BatchDependent {
                path: path.to_path_buf(),
                detail: format!("output {j} of a blank image is {a} alone and {b} beside another"),
            });
        }
    }
    Ok(())
}

/// `n` zeros for a model input or output, or [`OnnxError::Memory`] (never an abort).
pub(crate) fn zeros(n: usize, path: &std::path::Path) -> Result<Vec<f32>, OnnxError> {
    shap_explain::memory::filled(n, 0.0f32, "an image").map_err(|source| OnnxError::Memory {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

pub use external::MAX_EXTERNAL_BYTES;
pub use file::OnnxFile;
pub use ort_engine::{OrtClassifier, OrtDevice, OrtThreads};
pub use runtime::{LibrarySource, OrtLibrary};
pub use tract_engine::TractClassifier;
pub use tutorial::{TutorialWeights, recognize_tutorial};
