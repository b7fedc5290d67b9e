//! shap-mask: maskers (blur, OpenCV inpainting, constant) and shap's image partition tree.
//! (Skeleton: filled by the masker issue.)

mod shape;
pub mod tree;

pub use shape::ImageShape;
pub use tree::PartitionTree;
