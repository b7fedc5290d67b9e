//! shap-explain: model-agnostic SHAP explainers (Partition / Owen values, antithetic
//! Permutation) over plain f32 buffers. No Candle dependency.
//! (Skeleton: filled by the explainer issue.)

mod model;

pub use model::{BatchModel, FnModel, ModelError};
pub use shap_mask::ImageShape;
