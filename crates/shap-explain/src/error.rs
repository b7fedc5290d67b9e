//! The crate's error type.

use std::path::PathBuf;

use crate::ModelError;
use shap_mask::ImageShape;

/// Everything that can go wrong while explaining, saving or loading explanations.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// A file refused by `shap-io` (too large, not writable, ...); its OS errors become
    /// [`ExplainError::Io`].
    #[error(transparent)]
    Output(shap_io::IoError),
    /// No images were given.
    #[error("empty batch: nothing to explain")]
    EmptyBatch,
    /// A buffer does not have the length its shape implies.
    #[error("shape mismatch for {what}: expected {expected} values, got {got}")]
    ShapeMismatch {
        /// Which buffer.
        what: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The image shape has a zero dimension or is too large.
    #[error("invalid image shape {0}")]
    InvalidShape(ImageShape),
    /// The model reported `K = 0` outputs.
    #[error("the model has no outputs")]
    NoOutputs,
    /// The model returned NaN or infinity.
    #[error("model output {output} is not finite ({value}) for image {image}")]
    NonFinite {
        /// Index of the explained image (in the input batch).
        image: usize,
        /// Index of the output (class).
        output: usize,
        /// The offending value.
        value: f32,
    },
    /// An explicit output index is out of range, or the selection is empty.
    #[error("invalid output selection: {0}")]
    InvalidOutputs(String),
    /// The evaluation budget cannot fit the algorithm.
    #[error("max_evals = {max_evals} is too small for {algorithm}: at least {minimum} needed")]
    MaxEvalsTooSmall {
        /// Algorithm name.
        algorithm: &'static str,
        /// The given budget.
        max_evals: usize,
        /// The smallest usable budget.
        minimum: usize,
    },
    /// An invalid configuration value (other than the budget).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The model failed.
    #[error("model failed on image {image}")]
    Model {
        /// Index of the explained image.
        image: usize,
        /// The model's error.
        #[source]
        source: ModelError,
    },
    /// The masker failed.
    #[error("masker failed on image {image}: {reason}")]
    Mask {
        /// Index of the explained image (`usize::MAX` when unknown).
        image: usize,
        /// The masker's message.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `.npz`/`.npy`/JSON file is malformed or unsupported.
    #[error("bad file {path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Shorthand result type.
pub type Result<T, E = ExplainError> = std::result::Result<T, E>;

impl From<shap_io::IoError> for ExplainError {
    fn from(e: shap_io::IoError) -> Self {
        match e {
            shap_io::IoError::Os { path, source, .. } => Self::Io { path, source },
            shap_io::IoError::Format { path, reason } => Self::BadFile { path, reason },
            other => Self::Output(other),
        }
    }
}
