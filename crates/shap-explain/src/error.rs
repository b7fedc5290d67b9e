//! The crate's error type.

use std::path::PathBuf;

use crate::{Algorithm, ModelError};
use shap_mask::{ImageShape, MaskError};

/// Everything that can go wrong while explaining, saving or loading explanations.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// A file refused by `shap-io` (too large, not writable, ...); its OS errors become
    /// [`ExplainError::Io`].
    #[error(transparent)]
    Output(shap_io::IoError),
    /// A run does not fit the memory it may use ([`crate::memory::MemoryPlan::check`]), or a
    /// buffer could not be allocated.
    #[error("not enough memory for {what}: it needs {need}, and {budget}{hint}")]
    Memory {
        /// What was to be done.
        what: String,
        /// What to do about it (empty, or starting with `; `).
        hint: String,
        /// The estimate, with its largest items.
        need: String,
        /// The budget and where it comes from.
        budget: String,
    },
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
    /// The evaluation budget cannot fit the algorithm (for Permutation: one pass over images
    /// of the explained size).
    #[error("max_evals = {max_evals} is too small for {algorithm}: at least {minimum} needed")]
    MaxEvalsTooSmall {
        /// The algorithm.
        algorithm: Algorithm,
        /// The given budget.
        max_evals: usize,
        /// The smallest usable budget.
        minimum: usize,
    },
    /// An invalid configuration value (other than a too small budget), refused by
    /// [`crate::ExplainerConfig::check`] or, for recorded orders, by
    /// [`crate::PermutationExplainer::explain_with_orders`].
    /// The typed value is the error itself, not a cause: printed once, never as a source.
    #[error("invalid configuration: {0}")]
    InvalidConfig(ConfigError),
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
    #[error("masker failed{}", on_image(*image))]
    Mask {
        /// Index of the explained image in the batch, when known (a masker preparing one image
        /// on its own does not know it; the explainers fill it in).
        image: Option<usize>,
        /// The masker's error.
        #[source]
        source: MaskError,
    },
    /// The explanation lacks what a computation needs (predicted classes, finite values...).
    #[error("{0}")]
    Missing(String),
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

fn on_image(image: Option<usize>) -> String {
    image.map(|i| format!(" on image {i}")).unwrap_or_default()
}

/// A setting that cannot be used, found when the explainer is built
/// ([`crate::ExplainerConfig::check`]), before any image is seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `PermutationBudget::Passes(0)`.
    #[error("the Permutation explainer needs at least one pass")]
    ZeroPasses,
    /// Partition's `batch_size` below 2.
    #[error("partition batch_size must be at least 2 (one node = 2 masks), got {0}")]
    BatchSize(usize),
    /// [`crate::Compat::ShapV040`] with the Permutation explainer (shap 0.40's rule is a
    /// Partition budget rule).
    #[error("Compat::ShapV040 (shap 0.40's budget rule) applies to the partition explainer only")]
    V040PartitionOnly,
    /// A shap-compatible seed above `u32::MAX` (`np.random.seed` takes 32 bits).
    #[error("seed {0} does not fit in 32 bits, which shap-compatible mode needs (np.random.seed)")]
    SeedTooLarge(u64),
    /// More permutation orders than [`crate::PermutationExplainer::orders`] returns at once.
    #[error(
        "{images} images x {passes} passes x {features} features is more than {limit} order \
         indices to hold at once"
    )]
    TooManyOrders {
        /// Images asked for.
        images: usize,
        /// Passes per image.
        passes: usize,
        /// Features per image.
        features: usize,
        /// The limit ([`crate::MAX_ORDER_INDICES`]).
        limit: usize,
    },
    /// A preprocessing setting ([`crate::Normalize`], [`crate::InputLayout`]) that cannot be
    /// used.
    #[error("{0}")]
    Preprocessing(String),
    /// Explanations that cannot be joined ([`crate::Explanation::concat`]).
    #[error("part {part} differs from part 0 in {what}")]
    PartsDiffer {
        /// The first part that differs.
        part: usize,
        /// What differs.
        what: &'static str,
    },
    /// Recorded orders that are not one non-empty list of permutations of `0..M` per image.
    #[error("image {image}: {reason}")]
    BadOrders {
        /// The image whose orders are wrong.
        image: usize,
        /// What is wrong.
        reason: String,
    },
    /// A metric setting that cannot be used (MuFidelity, ROAD): the message says which and why.
    #[error("{0}")]
    Metric(String),
    /// Faithfulness curves of zero steps.
    #[error("the curves need at least one step")]
    NoSteps,
    /// Faithfulness steps outside `1..=pixels`.
    #[error("steps must be between 1 and the {pixels} pixels of an image, got {steps}")]
    Steps {
        /// The steps asked for.
        steps: usize,
        /// Pixels per image.
        pixels: usize,
    },
    /// A faithfulness baseline of zero random orders.
    #[error("at least one random order is needed for the baseline")]
    NoRandomOrders,
    /// More faithfulness random orders than [`crate::MAX_RANDOM_ORDERS`].
    #[error(
        "{random} random orders per image is more than the limit of {limit} (each costs \
         2 (steps + 1) model rows per image)"
    )]
    TooManyRandomOrders {
        /// The orders asked for.
        random: usize,
        /// The limit.
        limit: usize,
    },
}

/// Shorthand result type.
pub type Result<T, E = ExplainError> = std::result::Result<T, E>;

impl From<ConfigError> for ExplainError {
    fn from(e: ConfigError) -> Self {
        Self::InvalidConfig(e)
    }
}

impl From<shap_io::IoError> for ExplainError {
    fn from(e: shap_io::IoError) -> Self {
        match e {
            shap_io::IoError::Os { path, source, .. } => Self::Io { path, source },
            shap_io::IoError::Format { path, reason } => Self::BadFile { path, reason },
            other => Self::Output(other),
        }
    }
}
