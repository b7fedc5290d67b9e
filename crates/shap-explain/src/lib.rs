//! shap-explain: model-agnostic SHAP explainers for images, over plain f32 buffers (no Candle).
//!
//! One configuration, one entry point, as in shap (`docs/configuration.md`):
//!
//! - [`ExplainerConfig`]: the [`Method`] (Partition or Permutation with the settings that
//!   belong to it alone: its budget, shap's `max_evals`, Permutation passes or exact Owen
//!   values), [`Compat`] (our defaults, or shap 0.51 bit for bit), the seed, the outputs and
//!   their names. [`ExplainerConfig::check`] checks every setting once and returns
//!   an [`Explainer`]; an invalid explainer cannot exist.
//! - [`Explainer`]: like `shap.Explainer`, runs the algorithm it was built for
//!   ([`PartitionExplainer`]: Owen values over shap's image partition tree with shap >= 0.41
//!   semantics, `docs/partition-explainer.md`; [`PermutationExplainer`]: antithetic passes over
//!   tree-respecting orders, `docs/permutation-explainer.md`).
//! - [`Explanation`]: values `(n, H, W, C, k)` in f64, base values, selected outputs and their
//!   names, `f(x)`, evaluation counts, timing and efficiency errors; saved/loaded as `.npz`
//!   (numpy-loadable) and summarised as JSON.
//! - [`Faithfulness`]: deletion and insertion curves of a saved explanation through its masker,
//!   against seeded random orders (`docs/faithfulness.md`); [`class_summary`]: the mean SHAP
//!   and mean |SHAP| maps per predicted class.
//!
//! Models implement [`BatchModel`] (closures via [`FnModel`]); maskers implement
//! [`ImageMasker`] / [`MaskedImages`] (built in: [`ConstantMasker`], [`BackgroundMasker`];
//! `shap_mask::Masker` for blur and inpainting, [`Explainer::masker`] in the explainer's compat
//! mode). All explainer arithmetic is f64 on the f32 model outputs. Images are explained in
//! parallel with rayon; results never depend on the thread count. [`timing`] measures the
//! explainer's own work against the model's, for benchmarks.
//!
//! ```
//! use shap_explain::{
//!     Compat, ConstantMasker, ExplainerConfig, FnModel, ImageShape, Method, ModelError,
//!     OutputSelection, PartitionBudget, PartitionSettings, PermutationBudget,
//!     PermutationSettings,
//! };
//! let shape = ImageShape::new(2, 2, 1);
//! // Outputs [x0*x1 + x2, x3*x0] (docs/partition-explainer.md#worked-example).
//! let model = FnModel::new(2, |x: &[f32], n: usize, _s: ImageShape, out: &mut [f32]| {
//!     for (img, o) in x.chunks(4).zip(out.chunks_mut(2)).take(n) {
//!         o[0] = img[0] * img[1] + img[2];
//!         o[1] = img[3] * img[0];
//!     }
//!     Ok::<(), ModelError>(())
//! });
//! // One configuration for either algorithm: what `shap.Explainer(model, masker,
//! // algorithm="partition")(x, max_evals=500, outputs=...)` says.
//! let config = ExplainerConfig {
//!     method: Method::Partition(PartitionSettings {
//!         budget: PartitionBudget::MaxEvals(500),
//!         ..PartitionSettings::default()
//!     }),
//!     compat: Compat::Default,
//!     outputs: OutputSelection::All,
//!     ..ExplainerConfig::default()
//! };
//! let explainer = config.clone().check()?;
//! let e = explainer.explain(&model, &[1.0, 2.0, 3.0, 4.0], shape, &ConstantMasker { value: 0.0 })?;
//! // shap's values per feature x output: [[1,2],[1,0],[3,0],[0,2]].
//! assert_eq!(e.values, vec![1.0, 2.0, 1.0, 0.0, 3.0, 0.0, 0.0, 2.0]);
//!
//! // The same call with the other algorithm: only the configuration changes.
//! let passes = PermutationSettings { budget: PermutationBudget::Passes(1), std_errors: false };
//! let permutation = ExplainerConfig { method: Method::Permutation(passes), ..config };
//! let p = permutation.check()?.explain(&model, &[1.0, 2.0, 3.0, 4.0], shape, &ConstantMasker { value: 0.0 })?;
//! // Interactions here are pairwise: one antithetic pass already gives the exact values.
//! assert!(p.values.iter().zip(&e.values).all(|(a, b)| (a - b).abs() < 1e-12));
//!
//! // Values are checked when the explainer is built, not while explaining; a setting of one
//! // algorithm cannot be given to the other at all (Permutation has no `Exact` budget).
//! let bad = ExplainerConfig::permutation().max_evals(2);
//! assert!(bad.check().is_err());
//! # Ok::<(), shap_explain::ExplainError>(())
//! ```

mod antithetic;
mod builder;
mod class_summary;
mod config;
mod driver;
mod error;
mod eval;
mod explainer;
mod explanation;
mod faithfulness;
mod input;
mod join;
mod masking;
pub mod memory;
pub mod metrics;
mod model;
pub mod npz;
mod outputs;
mod owen;
mod partition;
mod permutation;
mod rng;
mod settings;
pub mod timing;

pub use builder::{ExplainerBuilder, MaskedExplainer};
pub use class_summary::{ClassMaps, ClassSummary, class_summary};
pub use config::{
    Compat, ExplainerConfig, FixedContext, Method, PartitionBudget, PartitionSettings,
    PermutationBudget, PermutationSettings,
};
pub use error::{ConfigError, ExplainError, Result};
pub use eval::Progress;
pub use explainer::Explainer;
pub use explanation::{
    Algorithm, Class, Explanation, ExplanationSummary, ImageInfo, ImageSummary, Prediction,
    RunStats,
};
pub use faithfulness::{
    Aucs, ClassScore, Curves, Faithfulness, FaithfulnessReport, FaithfulnessScorer, ImageScore,
    ImageScores, MAX_RANDOM_ORDERS, Target, auc, features_at, order_by,
};
pub use input::{InputLayout, Normalize};
pub use join::{join_npz, npz_settings};
pub use masking::{BackgroundImage, BackgroundMasker, ConstantMasker, ImageMasker, MaskedImages};
pub use metrics::{MuFidelity, MuFidelityReport, MuFidelityScorer, Road, RoadReport, RoadScorer};
pub use model::{BatchModel, FnModel, MaskedBatch, ModelError, in_row_chunks};
pub use outputs::{OutputSelection, top_k};
pub use partition::PartitionExplainer;
pub use permutation::{MAX_ORDER_INDICES, PermutationExplainer};
pub use rng::NumpyLegacyNormal;
pub use settings::{Setting, Settings};
pub use shap_mask::{ImageShape, PartitionTree};
