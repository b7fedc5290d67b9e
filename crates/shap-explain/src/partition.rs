//! The Partition explainer: Owen values over shap's image partition tree, with shap >= 0.41
//! semantics (`docs/partition-explainer.md`).

use std::sync::Mutex;
use std::time::Instant;

use crate::driver::{assemble, check_inputs, name_fn, prepare_all};
use crate::eval::{Progress, Setup, gather_rows, run_gathered, run_per_image, silent};
use crate::explanation::{Algorithm, Explanation};
use crate::owen::{OwenJob, OwenSettings, Ties};
use crate::rng::NumpyLegacyNormal;
use crate::{BatchModel, ExplainError, ImageMasker, MaskedImages, OutputSelection, Result};
use shap_mask::{ImageShape, PartitionTree};

/// shap's `fixed_context` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// How equal priorities are ordered in the expansion queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TieBreak {
    /// Deterministic: first pushed, first expanded (independent of threads and model batching).
    #[default]
    Fifo,
    /// shap-compatible: a draw from NumPy's legacy global generator seeded with
    /// `np.random.seed(seed)` right before the explainer call (`docs/numpy-legacy-rng.md`).
    /// The stream continues across images, so images are explained one after another.
    NumpyLegacy {
        /// The `np.random.seed` value.
        seed: u32,
    },
}

/// The evaluation budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// shap's `max_evals` (total model evaluations including `f(all hidden)` and `f(x)`).
    MaxEvals(usize),
    /// Expand the whole tree: exact Owen values (for fixed context `Both`), at a cost of
    /// [`PartitionExplainer::exact_evals`] evaluations per image: 2,732 for 8x8, 461,484 for
    /// 28x28 (minutes per image with a CNN), so mostly for small images and tests.
    Exact,
}

impl Default for Budget {
    fn default() -> Self {
        Self::MaxEvals(500)
    }
}

/// Partition (Owen value) explainer. Construct with [`PartitionExplainer::default`] and set
/// the public fields; defaults match shap's (500 evaluations, algorithmic batch of 10 masks,
/// `fixed_context=None`) and the tutorial's top-5 outputs.
///
/// ```
/// use shap_explain::{ConstantMasker, FnModel, ImageShape, ModelError, OutputSelection, PartitionExplainer};
/// // A linear model on a 4x4 image with two outputs.
/// let model = FnModel::new(2, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
///     for i in 0..n {
///         let img = &x[i * s.features()..(i + 1) * s.features()];
///         out[2 * i] = img.iter().sum();
///         out[2 * i + 1] = img[0] - img[15];
///     }
///     Ok::<(), ModelError>(())
/// });
/// let shape = ImageShape::new(4, 4, 1);
/// let images: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
/// let mut explainer = PartitionExplainer::default();
/// explainer.outputs = OutputSelection::TopK(1);
/// let e = explainer.explain(&model, &images, shape, &ConstantMasker { value: 0.0 }).unwrap();
/// assert_eq!(e.output_indices, vec![0]);
/// assert!(e.max_efficiency_error() < 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionExplainer {
    /// Evaluation budget (default `MaxEvals(500)`).
    pub budget: Budget,
    /// Masks per Owen step (shap's `batch_size`, default 10). This is algorithmic: under a
    /// budget it changes which nodes get expanded. The model may receive the rows of several
    /// steps/images in any chunking without changing numbers.
    pub batch_size: usize,
    /// shap's `fixed_context`.
    pub fixed_context: FixedContext,
    /// Tie-breaking of equal priorities.
    pub tie_break: TieBreak,
    /// Which outputs to explain (resolved per image on `f(x)` as produced by the masker;
    /// default: the top 5). Memory and time grow with the number selected.
    pub outputs: OutputSelection,
    /// Names of all `K` model outputs (class labels); default names are the class indices.
    pub output_names: Option<Vec<String>>,
    /// Reproduce shap v0.40's budget rule (`max_evals // 2 - 2`, whole batches).
    pub v040_budget: bool,
}

impl Default for PartitionExplainer {
    fn default() -> Self {
        Self {
            budget: Budget::default(),
            batch_size: 10,
            fixed_context: FixedContext::Both,
            tie_break: TieBreak::Fifo,
            outputs: OutputSelection::default(),
            output_names: None,
            v040_budget: false,
        }
    }
}

impl PartitionExplainer {
    /// shap 0.51-compatible settings: NumPy-legacy tie-break seeded like `np.random.seed(seed)`
    /// before the call, `max_evals`, all other settings at shap's defaults.
    pub fn shap_compatible(max_evals: usize, seed: u32) -> Self {
        Self {
            budget: Budget::MaxEvals(max_evals),
            tie_break: TieBreak::NumpyLegacy { seed },
            ..Self::default()
        }
    }

    /// Model evaluations per image for [`Budget::Exact`]: `2 + 2 * (number of expansions)`,
    /// where a node at depth `d` is expanded in `2^d` contexts (fixed context `Both`) or once.
    /// Saturates at `usize::MAX`.
    pub fn exact_evals(&self, tree: &PartitionTree) -> usize {
        let mut total: usize = 2;
        for node in tree.num_features()..tree.num_nodes() {
            let contexts = match self.fixed_context {
                FixedContext::Both => 1usize
                    .checked_shl(tree.depth(node) as u32)
                    .unwrap_or(usize::MAX),
                _ => 1,
            };
            total = total.saturating_add(contexts.saturating_mul(2));
        }
        total
    }

    fn owen_budget(&self) -> Result<usize> {
        match self.budget {
            Budget::Exact => Ok(usize::MAX),
            Budget::MaxEvals(me) => {
                let minimum = if self.v040_budget { 4 } else { 2 };
                if me < minimum {
                    return Err(ExplainError::MaxEvalsTooSmall {
                        algorithm: "partition",
                        max_evals: me,
                        minimum,
                    });
                }
                Ok(if self.v040_budget { me / 2 - 2 } else { me - 2 })
            }
        }
    }

    /// Explain `images` (`n` images of `shape`, back to back) with `masker`.
    pub fn explain<M: BatchModel + ?Sized, K: ImageMasker>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        masker: &K,
    ) -> Result<Explanation> {
        self.explain_with_progress(model, images, shape, masker, &silent)
    }

    /// [`Self::explain`], telling `progress` about each image as soon as it is done.
    pub fn explain_with_progress<M: BatchModel + ?Sized, K: ImageMasker>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        masker: &K,
        progress: &dyn Progress,
    ) -> Result<Explanation> {
        check_inputs(model, images, shape, None, self.output_names.as_ref())?;
        let prepared = prepare_all(masker, images, shape)?;
        self.run(model, images, shape, &prepared, progress)
    }

    /// Explain images already prepared for masking (`prepared[i]` belongs to image `i`).
    pub fn explain_prepared<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
    ) -> Result<Explanation> {
        self.run(model, images, shape, prepared, &silent)
    }

    fn run<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
        progress: &dyn Progress,
    ) -> Result<Explanation> {
        let t0 = Instant::now();
        let n = check_inputs(
            model,
            images,
            shape,
            Some(prepared.len()),
            self.output_names.as_ref(),
        )?;
        if self.batch_size < 2 {
            return Err(ExplainError::InvalidConfig(format!(
                "partition batch_size must be at least 2 (one node = 2 masks), got {}",
                self.batch_size
            )));
        }
        self.outputs.validate(model.num_outputs())?;
        let budget = self.owen_budget()?;
        let tree = PartitionTree::new(shape).map_err(|_| ExplainError::InvalidShape(shape))?;
        let settings = OwenSettings {
            tree: &tree,
            budget,
            batch_size: self.batch_size,
            fixed_context: self.fixed_context,
            v040_budget: self.v040_budget,
            outputs: &self.outputs,
            k_all: model.num_outputs(),
        };
        let setup = Setup {
            model,
            prepared,
            images,
            shape,
            progress,
        };
        let numpy = match self.tie_break {
            TieBreak::NumpyLegacy { seed } => Some(Mutex::new(NumpyLegacyNormal::new(seed))),
            TieBreak::Fifo => None,
        };
        let jobs = match &numpy {
            None => {
                let make = |_| Ok(OwenJob::new(&settings, Ties::Fifo));
                match gather_rows(model) {
                    // Each image's next step (up to batch_size masks) shares calls.
                    Some(rows) => {
                        let group = (rows / self.batch_size).max(1);
                        run_gathered(&setup, n, group, rows, make)?
                    }
                    None => run_per_image(&setup, n, true, make)?,
                }
            }
            // One generator stream over the images in order: one image at a time.
            Some(rng) => run_per_image(&setup, n, false, |_| {
                Ok(OwenJob::new(&settings, Ties::Numpy(rng)))
            })?,
        };
        let rows = jobs
            .into_iter()
            .map(|(job, c)| job.finish(c))
            .collect::<Result<Vec<_>>>()?;
        let names = name_fn(self.output_names.as_ref());
        Ok(assemble(
            Algorithm::Partition,
            shape,
            images,
            rows,
            names,
            t0.elapsed(),
        ))
    }
}
