//! The one entry point, like `shap.Explainer`: a checked configuration that runs the algorithm
//! it names.

use crate::driver::{check_inputs, prepare_all};
use crate::eval::silent;
use crate::partition::PartitionExplainer;
use crate::permutation::PermutationExplainer;
use crate::{
    Algorithm, BatchModel, ExplainerConfig, Explanation, ImageMasker, MaskedImages, Progress,
    Result,
};
use shap_mask::{ImageShape, Masker, MaskerSpec};

/// A checked explainer (built by [`ExplainerConfig::check`]): Partition or Permutation, with
/// every setting valid. [`Explainer::explain`] and its variants run whichever it is; match on
/// it for what only one algorithm has ([`PartitionExplainer::exact_evals`],
/// [`PermutationExplainer::orders`], [`PermutationExplainer::explain_with_orders`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Explainer {
    /// Owen values over shap's image partition tree (`docs/partition-explainer.md`).
    Partition(PartitionExplainer),
    /// Antithetic passes over tree-respecting orders (`docs/permutation-explainer.md`).
    Permutation(PermutationExplainer),
}

impl Explainer {
    /// The configuration it was built from.
    pub fn config(&self) -> &ExplainerConfig {
        match self {
            Self::Partition(p) => p.config(),
            Self::Permutation(p) => p.config(),
        }
    }

    /// The Partition explainer, if it is one.
    pub fn as_partition(&self) -> Option<&PartitionExplainer> {
        match self {
            Self::Partition(p) => Some(p),
            Self::Permutation(_) => None,
        }
    }

    /// The Permutation explainer, if it is one.
    pub fn as_permutation(&self) -> Option<&PermutationExplainer> {
        match self {
            Self::Permutation(p) => Some(p),
            Self::Partition(_) => None,
        }
    }

    /// Which algorithm it runs.
    pub fn algorithm(&self) -> Algorithm {
        self.config().algorithm()
    }

    /// The same explainer for a batch whose first image sits at `first_stream` in a larger
    /// one ([`ExplainerConfig::first_stream`]): a chunk or shard draws the orders the whole
    /// batch would give its images. Nothing else changes, so nothing is checked again.
    pub fn starting_at(&self, first_stream: u64) -> Self {
        let mut e = self.clone();
        match &mut e {
            Self::Partition(p) => p.config.first_stream = first_stream,
            Self::Permutation(p) => p.config.first_stream = first_stream,
        }
        e
    }

    /// The masker for `spec` in this explainer's compat mode ([`crate::Compat::mask_mode`]).
    pub fn masker(&self, spec: MaskerSpec) -> Masker {
        Masker::new(spec, self.config().compat.mask_mode())
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
        check_inputs(
            model,
            images,
            shape,
            None,
            self.config().output_names.as_ref(),
        )?;
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
        match self {
            Self::Partition(p) => p.run(model, images, shape, prepared, progress),
            Self::Permutation(p) => p.run(model, images, shape, prepared, progress),
        }
    }
}
