//! One configuration for both explainers (`docs/configuration.md`): the algorithm, its budget,
//! shap compatibility, the seed and the outputs, checked once by [`ExplainerConfig::check`]
//! into an [`Explainer`], which cannot hold an invalid setting.

use std::fmt;

use shap_mask::MaskMode;

use crate::explainer::Explainer;
use crate::partition::PartitionExplainer;
use crate::permutation::PermutationExplainer;
use crate::{Algorithm, ConfigError, ExplainError, OutputSelection, Result};

/// Whether to reproduce shap bit for bit or do what we think is right
/// (`docs/configuration.md#compat`). The one switch for shap compatibility: it sets the
/// Partition tie-break, the Permutation order generator and output layout, and, through
/// [`Explainer::masker`] or [`Compat::mask_mode`], the masker's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compat {
    /// Our defaults: Partition breaks equal priorities first in, first out; Permutation draws
    /// its orders from ChaCha8 seeded with `seed`, one stream per image, and explains the
    /// outputs asked for under the names given; inpainting works at 0..255 scale and keeps the
    /// unmasked pixels exactly.
    #[default]
    Default,
    /// shap 0.51 exactly: Partition breaks ties with NumPy's legacy `randn` seeded like
    /// `np.random.seed(seed)` before the call; Permutation draws its orders from numba's
    /// generator seeded in-jit with `seed` and returns all outputs in class order, named
    /// `Output i` (ignoring `outputs` and `output_names`, as shap does); inpainting truncates
    /// the image to u8. `seed` must fit in 32 bits. Images are explained one after another
    /// (the random stream runs through them in order).
    Shap,
    /// [`Compat::Shap`] with shap 0.40's Partition budget rule (the tutorials' version):
    /// `max_evals / 2 - 2` evaluations after the first two, whole steps, so about half of what
    /// shap 0.51 spends. Partition only.
    ShapV040,
}

impl Compat {
    /// Whether this reproduces shap (either version).
    pub fn is_shap(self) -> bool {
        !matches!(self, Self::Default)
    }

    /// The masker mode that goes with it (`shap_mask::Masker::new(spec, compat.mask_mode())`).
    pub fn mask_mode(self) -> MaskMode {
        if self.is_shap() {
            MaskMode::ShapCompat
        } else {
            MaskMode::Default
        }
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Shap => "shap",
            Self::ShapV040 => "shap-0.40",
        })
    }
}

/// How many model evaluations the Partition explainer may spend per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionBudget {
    /// shap's `max_evals`: model evaluations per image, `f(all hidden)` and `f(x)` included;
    /// `max_evals - 2` go to the expansions (at least 2; 4 with [`Compat::ShapV040`]).
    MaxEvals(usize),
    /// Expand the whole tree for exact Owen values (with the default `fixed_context`), at a
    /// cost of [`PartitionExplainer::exact_evals`] evaluations per image: 2,732 for 8x8,
    /// 461,484 for 28x28, so mostly for small images and tests.
    Exact,
}

impl Default for PartitionBudget {
    /// shap's 500 evaluations.
    fn default() -> Self {
        Self::MaxEvals(500)
    }
}

/// How many model evaluations the Permutation explainer may spend per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermutationBudget {
    /// shap's `max_evals`: `max_evals / (2M + 1)` passes over images of `M` features (at
    /// least one: checked when the images are seen).
    MaxEvals(usize),
    /// This many antithetic passes of `2M + 1` evaluations each, whatever the image size (at
    /// least 1).
    Passes(usize),
}

impl Default for PermutationBudget {
    /// 10 passes (shap's default of 500 evaluations is too small for one pass over a 28x28
    /// image).
    fn default() -> Self {
        Self::Passes(10)
    }
}

impl fmt::Display for PartitionBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxEvals(n) => write!(f, "max_evals={n}"),
            Self::Exact => f.write_str("exact"),
        }
    }
}

impl fmt::Display for PermutationBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxEvals(n) => write!(f, "max_evals={n}"),
            Self::Passes(p) => write!(f, "{p} passes"),
        }
    }
}

/// The Partition explainer's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionSettings {
    /// Evaluations per image (default: shap's 500).
    pub budget: PartitionBudget,
    /// Masks per Owen step (shap's `batch_size`, default 10, at least 2). This is
    /// algorithmic: under a budget it changes which nodes get expanded. The model may receive
    /// the rows of several steps or images in any chunking without changing numbers.
    pub batch_size: usize,
    /// shap's `fixed_context` (default `None`, [`FixedContext::Both`]).
    pub fixed_context: FixedContext,
}

impl Default for PartitionSettings {
    fn default() -> Self {
        Self {
            budget: PartitionBudget::default(),
            batch_size: 10,
            fixed_context: FixedContext::Both,
        }
    }
}

/// The Permutation explainer's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermutationSettings {
    /// Evaluations per image (default: 10 passes).
    pub budget: PermutationBudget,
    /// Compute the standard error of each value across passes (with at least two passes).
    pub std_errors: bool,
}

/// The algorithm and the settings that belong to it alone: a setting of one algorithm cannot
/// be given to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Owen values over shap's image partition tree.
    Partition(PartitionSettings),
    /// Antithetic passes over tree-respecting orders.
    Permutation(PermutationSettings),
}

impl Method {
    /// The defaults of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Partition => Self::Partition(PartitionSettings::default()),
            Algorithm::Permutation => Self::Permutation(PermutationSettings::default()),
        }
    }

    /// Which algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Partition(_) => Algorithm::Partition,
            Self::Permutation(_) => Algorithm::Permutation,
        }
    }

    /// shap's `max_evals`, which both algorithms take, as the budget.
    pub fn max_evals(self, n: usize) -> Self {
        match self {
            Self::Partition(p) => Self::Partition(PartitionSettings {
                budget: PartitionBudget::MaxEvals(n),
                ..p
            }),
            Self::Permutation(p) => Self::Permutation(PermutationSettings {
                budget: PermutationBudget::MaxEvals(n),
                ..p
            }),
        }
    }

    /// The budget in words (`max_evals=500`, `10 passes`, `exact`).
    pub fn budget(&self) -> String {
        match self {
            Self::Partition(p) => p.budget.to_string(),
            Self::Permutation(p) => p.budget.to_string(),
        }
    }

    /// shap's `max_evals`, when the budget is given that way.
    pub fn max_evals_given(&self) -> Option<usize> {
        match self {
            Self::Partition(PartitionSettings {
                budget: PartitionBudget::MaxEvals(n),
                ..
            })
            | Self::Permutation(PermutationSettings {
                budget: PermutationBudget::MaxEvals(n),
                ..
            }) => Some(*n),
            _ => None,
        }
    }
}

impl From<PartitionSettings> for Method {
    fn from(p: PartitionSettings) -> Self {
        Self::Partition(p)
    }
}

impl From<PermutationSettings> for Method {
    fn from(p: PermutationSettings) -> Self {
        Self::Permutation(p)
    }
}

/// shap's `fixed_context` argument (Partition only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FixedContext {
    /// `None` (shap's default): each child is explained with its sibling absent and present,
    /// weights halve at every level (true Owen values when fully expanded).
    #[default]
    Both,
    /// `fixed_context=0`: only "sibling absent" children are expanded.
    Absent,
    /// `fixed_context=1`: only "sibling present" children are expanded.
    Present,
}

/// Everything that configures an explanation, in shap's vocabulary: what `shap.Explainer(model,
/// masker, algorithm=..., seed=..., output_names=...)` and its call's `max_evals`,
/// `batch_size`, `outputs` and `fixed_context` say. The algorithm and what belongs to it alone
/// (its budget, Partition's `batch_size` and `fixed_context`, Permutation's `std_errors`) are
/// one [`Method`], so a setting of one algorithm cannot reach the other.
///
/// Build it with [`ExplainerConfig::partition`], [`ExplainerConfig::permutation`] or
/// [`ExplainerConfig::new`] and struct-update syntax, then [`ExplainerConfig::check`] it into an
/// [`Explainer`]: the values are checked there, once, before any image is seen.
///
/// ```
/// use shap_explain::{Compat, ExplainerConfig, ExplainError, OutputSelection};
/// let explainer = ExplainerConfig {
///     outputs: OutputSelection::TopK(3),
///     seed: 7,
///     ..ExplainerConfig::permutation().max_evals(1600)
/// }
/// .check()?;
/// assert_eq!(explainer.config().method.max_evals_given(), Some(1600));
/// // shap 0.51 takes 32-bit seeds: refused when built, not when explaining.
/// let bad = ExplainerConfig { compat: Compat::Shap, seed: 1 << 40, ..ExplainerConfig::partition() };
/// assert!(matches!(bad.check(), Err(ExplainError::InvalidConfig(_))));
/// # Ok::<(), ExplainError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainerConfig {
    /// Partition or Permutation, with the settings that belong to it.
    pub method: Method,
    /// shap compatibility (default: ours).
    pub compat: Compat,
    /// The seed: Permutation orders, and the Partition tie-break with [`Compat::Shap`] (the
    /// default Partition uses no random numbers). Default 0.
    pub seed: u64,
    /// Which outputs to explain, resolved per image on `f(x)` as produced by the masker
    /// (default: the top 5). Memory and time grow with the number selected.
    pub outputs: OutputSelection,
    /// Names of all `K` model outputs (class labels); default names are the class indices.
    pub output_names: Option<Vec<String>>,
    /// The position of the call's first image in a larger batch (default 0). Permutation with
    /// [`Compat::Default`] draws the orders of image `i` of a call from stream
    /// `first_stream + i`, so a batch split into shards, each explained with the position of its
    /// first image here, gets the orders of the whole batch. Partition draws nothing per image
    /// and does not use it.
    pub first_stream: u64,
}

impl ExplainerConfig {
    /// The defaults of `algorithm`: its default budget, our compat mode, seed 0, the top 5
    /// outputs, shap's batch size of 10 and `fixed_context=None`.
    pub fn new(algorithm: Algorithm) -> Self {
        Self::with_method(Method::new(algorithm))
    }

    /// `method`, with every other setting at its default.
    pub fn with_method(method: impl Into<Method>) -> Self {
        Self {
            method: method.into(),
            compat: Compat::Default,
            seed: 0,
            outputs: OutputSelection::default(),
            output_names: None,
            first_stream: 0,
        }
    }

    /// `new(Algorithm::Partition)`.
    pub fn partition() -> Self {
        Self::new(Algorithm::Partition)
    }

    /// `new(Algorithm::Permutation)`.
    pub fn permutation() -> Self {
        Self::new(Algorithm::Permutation)
    }

    /// shap 0.51's settings for `algorithm`: [`Compat::Shap`], `max_evals` and `seed`, all
    /// else at shap's defaults.
    pub fn shap(algorithm: Algorithm, max_evals: usize, seed: u32) -> Self {
        Self {
            compat: Compat::Shap,
            seed: u64::from(seed),
            ..Self::new(algorithm).max_evals(max_evals)
        }
    }

    /// The same configuration with shap's `max_evals` as the budget (both algorithms take it).
    pub fn max_evals(mut self, n: usize) -> Self {
        self.method = self.method.max_evals(n);
        self
    }

    /// Which algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.method.algorithm()
    }

    /// Check every setting and build the explainer. Errors: [`ExplainError::MaxEvalsTooSmall`]
    /// for a budget below the algorithm's minimum, [`ExplainError::InvalidOutputs`] for an
    /// empty selection, [`ExplainError::InvalidConfig`] for the rest.
    pub fn check(self) -> Result<Explainer> {
        self.outputs.check_not_empty()?;
        match self.method {
            Method::Partition(p) => PartitionExplainer::new(self, p).map(Explainer::Partition),
            Method::Permutation(p) => {
                PermutationExplainer::new(self, p).map(Explainer::Permutation)
            }
        }
    }

    /// The `np.random.seed` value of shap-compatible mode, `None` in our default mode.
    pub(crate) fn numpy_seed(&self) -> Result<Option<u32>> {
        if !self.compat.is_shap() {
            return Ok(None);
        }
        match u32::try_from(self.seed) {
            Ok(seed) => Ok(Some(seed)),
            Err(_) => Err(ConfigError::SeedTooLarge(self.seed).into()),
        }
    }

    /// [`ExplainError::MaxEvalsTooSmall`] for this algorithm.
    pub(crate) fn too_small(&self, max_evals: usize, minimum: usize) -> ExplainError {
        ExplainError::MaxEvalsTooSmall {
            algorithm: self.algorithm(),
            max_evals,
            minimum,
        }
    }
}

impl Default for ExplainerConfig {
    /// [`ExplainerConfig::partition`]: shap's `Explainer` picks Partition for image maskers.
    fn default() -> Self {
        Self::partition()
    }
}
