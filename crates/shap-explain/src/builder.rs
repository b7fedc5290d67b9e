//! The short way to an explainer: name the algorithm and the masker, set what differs from
//! the defaults, build once (every setting checked there), explain many times.
//!
//! ```
//! use shap_explain::{Explainer, FnModel, ImageShape, ModelError};
//! // A toy model: output 0 is the image's mean, output 1 its negation.
//! let model = FnModel::new(2, |x: &[f32], n, s: ImageShape, out: &mut [f32]| {
//!     for (img, o) in x.chunks(s.features()).zip(out.chunks_mut(2)).take(n) {
//!         let mean = img.iter().sum::<f32>() / img.len() as f32;
//!         o.copy_from_slice(&[mean, -mean]);
//!     }
//!     Ok::<(), ModelError>(())
//! });
//! let shape = ImageShape::new(8, 8, 1);
//! let explainer = Explainer::partition("blur(3,3)").max_evals(200).top_k(1).build()?;
//! let e = explainer.explain(&model, &vec![0.5; 64], shape)?;
//! assert_eq!(e.output_indices, [0]);
//! # Ok::<(), shap_explain::ExplainError>(())
//! ```

use shap_mask::{Masker, MaskerSpec};

use crate::{
    Algorithm, BatchModel, Compat, Explainer, ExplainerConfig, Explanation, OutputSelection, Result,
};

/// Settings of an explainer and its masker, checked by [`ExplainerBuilder::build`]; start
/// from [`Explainer::partition`] or [`Explainer::permutation`].
#[derive(Debug, Clone, PartialEq)]
#[must_use = "an ExplainerBuilder does nothing until it is built"]
pub struct ExplainerBuilder {
    config: ExplainerConfig,
    masker: String,
}

impl Explainer {
    /// A Partition explainer hiding features with `masker` (shap's spelling: `blur(128,128)`,
    /// `inpaint_telea`, `inpaint_ns`, or a number), with every other setting at its default.
    pub fn partition(masker: &str) -> ExplainerBuilder {
        ExplainerBuilder::new(Algorithm::Partition, masker)
    }

    /// A Permutation explainer hiding features with `masker`, as [`Explainer::partition`].
    pub fn permutation(masker: &str) -> ExplainerBuilder {
        ExplainerBuilder::new(Algorithm::Permutation, masker)
    }
}

impl ExplainerBuilder {
    fn new(algorithm: Algorithm, masker: &str) -> Self {
        Self {
            config: ExplainerConfig::new(algorithm),
            masker: masker.to_string(),
        }
    }

    /// At most `n` model evaluations per image (shap's `max_evals`).
    pub fn max_evals(mut self, n: usize) -> Self {
        self.config.method = self.config.method.max_evals(n);
        self
    }

    /// Explain each image's `k` highest outputs (the default is 5).
    pub fn top_k(mut self, k: usize) -> Self {
        self.config.outputs = OutputSelection::TopK(k);
        self
    }

    /// Explain these outputs of every image.
    pub fn classes(mut self, classes: impl Into<Vec<usize>>) -> Self {
        self.config.outputs = OutputSelection::Indices(classes.into());
        self
    }

    /// Explain every output.
    pub fn all_classes(mut self) -> Self {
        self.config.outputs = OutputSelection::All;
        self
    }

    /// Names of the model's outputs (class labels), one per output.
    pub fn output_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.config.output_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The seed of Permutation's orders (and of shap's tie-break with [`Self::shap_compat`]).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Reproduce shap 0.51's numbers ([`Compat::Shap`]).
    pub fn shap_compat(mut self) -> Self {
        self.config.compat = Compat::Shap;
        self
    }

    /// Any other setting, on the configuration itself.
    pub fn configure(mut self, f: impl FnOnce(&mut ExplainerConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Check every setting and the masker's spelling, and build.
    pub fn build(self) -> Result<MaskedExplainer> {
        let spec: MaskerSpec = self
            .masker
            .parse()
            .map_err(|source| crate::ExplainError::Mask {
                image: None,
                source,
            })?;
        let explainer = self.config.check()?;
        let masker = explainer.masker(spec);
        Ok(MaskedExplainer { explainer, masker })
    }
}

/// An explainer with its masker, ready to explain ([`ExplainerBuilder::build`]).
#[derive(Debug, Clone)]
pub struct MaskedExplainer {
    explainer: Explainer,
    masker: Masker,
}

impl MaskedExplainer {
    /// Explain `images` (`n` images of `shape` back to back, (H, W, C) order, values as the
    /// masker expects them: [0, 1] for the inpainting maskers).
    pub fn explain<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        images: &[f32],
        shape: shap_mask::ImageShape,
    ) -> Result<Explanation> {
        self.explainer.explain(model, images, shape, &self.masker)
    }

    /// The explainer (its configuration, and `explain` with another masker).
    pub fn explainer(&self) -> &Explainer {
        &self.explainer
    }

    /// The masker.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }
}
