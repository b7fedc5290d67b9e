//! `shap-mask`: the image maskers of `shap.maskers.Image`, reimplemented to match shap 0.51 and
//! OpenCV number for number, plus shap's image partition tree.
//!
//! - [`MaskerSpec`]: `blur(kw,kh)`, `inpaint_telea`, `inpaint_ns`, or a constant, parsed
//!   strictly from shap's spelling.
//! - [`Masker`] / [`PreparedImage`]: apply a spec to one `(H, W, C)` f32 image under boolean
//!   masks (`true` = keep the feature), one at a time or a batch in parallel.
//! - [`box_blur`]: `cv2.blur` exactly (anchor `k/2`, `BORDER_REFLECT_101`, f64 sums).
//! - [`inpaint_u8`]: `cv2.inpaint` (Telea and NS, radius 3), pixel-identical to OpenCV 5.0 (the version tested).
//!   The inpainting algorithm is OpenCV's (credit: the OpenCV project, `modules/photo`, after
//!   A. Telea, "An Image Inpainting Technique Based on the Fast Marching Method", 2004); this is
//!   an independent implementation, described in `docs/maskers.md`.
//! - [`MaskMode`]: the default mode fixes shap's inpainting on \[0,1\] images (work at 0..255
//!   scale, keep unmasked features exactly); [`MaskMode::ShapCompat`] reproduces shap 0.51.
//! - [`npy`]: a minimal `.npy` reader/writer for masks and images.
//! - [`PartitionTree`]: shap's hierarchical image partition.
//!
//! ```
//! use shap_mask::{ImageShape, MaskMode, Masker, MaskerSpec};
//! let shape = ImageShape::new(28, 28, 1);
//! let image = vec![0.5f32; shape.features()];
//! let prepared = Masker::new("blur(28,28)".parse()?, MaskMode::Default).prepare(&image, shape)?;
//! // Two masks back to back: keep everything, hide everything.
//! let mut keeps = vec![true; 784];
//! keeps.extend(vec![false; 784]);
//! let mut out = vec![0.0f32; 2 * 784];
//! prepared.fill_batch(&keeps, &mut out)?;
//! assert_eq!(&out[..784], &image[..]);
//! assert!(out[784..].iter().all(|&v| (v - 0.5).abs() < 1e-6));
//! # Ok::<(), shap_mask::MaskError>(())
//! ```

mod blur;
mod error;
mod inpaint;
mod masker;
pub mod npy;
mod road;
mod shape;
mod spec;
pub mod tree;

pub use blur::box_blur;
pub use error::MaskError;
pub use inpaint::{INPAINT_RADIUS, InpaintMethod, inpaint_u8, inpaint_u8_channels};
pub use masker::{InpaintScale, Masker, PreparedImage};
pub use road::linear_impute;
pub use shape::ImageShape;
pub use spec::{MaskMode, MaskerSpec};
pub use tree::{PartitionTree, TreeError};
