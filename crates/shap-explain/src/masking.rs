//! The masking interface the explainers use, and simple built-in maskers.
//!
//! The explainers are generic over [`ImageMasker`] / [`MaskedImages`] so that they do not
//! depend on a particular masker implementation. `shap_mask::Masker` implements them (blur,
//! OpenCV inpainting, constant); [`BackgroundMasker`] and [`ConstantMasker`] cover
//! per-feature and constant backgrounds (a blur masker is a background masker whose
//! background is the blurred image).

use crate::{ExplainError, Result};
use shap_mask::{ImageShape, MaskError};

/// One explained image, ready to be masked many times.
///
/// `keeps` holds `n` masks of `M = shape.features()` bools back to back (`true` = keep the
/// original value); `out` receives the `n` masked images (each `M` f32 in (H, W, C) order).
pub trait MaskedImages: Sync {
    /// Fill `keeps.len() / M` masked images into `out` (`out.len() == keeps.len()`).
    fn fill_batch(&self, keeps: &[bool], out: &mut [f32]) -> Result<()>;
}

/// Something that prepares images for masking (computes a blur once per image, and so on).
pub trait ImageMasker: Sync {
    /// The prepared form of one image.
    type Prepared: MaskedImages + Send;
    /// Prepare `image` (`shape.features()` values, (H, W, C) order).
    fn prepare(&self, image: &[f32], shape: ImageShape) -> Result<Self::Prepared>;
}

/// An image with a per-feature replacement background: hidden feature `j` becomes
/// `background[j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundImage {
    image: Vec<f32>,
    background: Vec<f32>,
}

impl BackgroundImage {
    /// Pair an image with its background (same length, finite values).
    pub fn new(image: Vec<f32>, background: Vec<f32>) -> Result<Self> {
        if image.len() != background.len() {
            return Err(ExplainError::ShapeMismatch {
                what: "background".into(),
                expected: image.len(),
                got: background.len(),
            });
        }
        let pixels = image.iter().chain(&background);
        if let Some((i, &value)) = pixels.enumerate().find(|(_, v)| !v.is_finite()) {
            // The index within the image, or within the background after it.
            let index = if i < image.len() { i } else { i - image.len() };
            return Err(ExplainError::Mask {
                image: None,
                source: MaskError::NonFinite { index, value },
            });
        }
        Ok(Self { image, background })
    }

    /// The original image.
    pub fn image(&self) -> &[f32] {
        &self.image
    }

    /// The background.
    pub fn background(&self) -> &[f32] {
        &self.background
    }
}

impl MaskedImages for BackgroundImage {
    fn fill_batch(&self, keeps: &[bool], out: &mut [f32]) -> Result<()> {
        let m = self.image.len();
        if m == 0 || !keeps.len().is_multiple_of(m) || out.len() != keeps.len() {
            return Err(ExplainError::ShapeMismatch {
                what: "masked image batch".into(),
                expected: keeps.len(),
                got: out.len(),
            });
        }
        let (img, bg) = (&self.image[..m], &self.background[..m]);
        for (krow, orow) in keeps.chunks_exact(m).zip(out.chunks_exact_mut(m)) {
            let (krow, orow) = (&krow[..m], &mut orow[..m]);
            // Branch-free select (vectorises): all-ones bits where the feature is kept.
            for j in 0..m {
                let keep = 0u32.wrapping_sub(u32::from(krow[j]));
                orow[j] = f32::from_bits((img[j].to_bits() & keep) | (bg[j].to_bits() & !keep));
            }
        }
        Ok(())
    }
}

/// Hidden features take one constant value (`shap.maskers.Image(value, shape)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstantMasker {
    /// The replacement value.
    pub value: f32,
}

impl ImageMasker for ConstantMasker {
    type Prepared = BackgroundImage;
    fn prepare(&self, image: &[f32], shape: ImageShape) -> Result<BackgroundImage> {
        check_len("image", shape.features(), image.len())?;
        BackgroundImage::new(image.to_vec(), vec![self.value; image.len()])
    }
}

/// Hidden features take the matching value of one fixed background image
/// (`shap.maskers.Image(background_array)`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundMasker {
    /// The background, `M` values.
    pub background: Vec<f32>,
}

impl ImageMasker for BackgroundMasker {
    type Prepared = BackgroundImage;
    fn prepare(&self, image: &[f32], shape: ImageShape) -> Result<BackgroundImage> {
        check_len("image", shape.features(), image.len())?;
        BackgroundImage::new(image.to_vec(), self.background.clone())
    }
}

pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(ExplainError::ShapeMismatch {
            what: what.into(),
            expected,
            got,
        })
    }
}

impl MaskedImages for shap_mask::PreparedImage {
    fn fill_batch(&self, keeps: &[bool], out: &mut [f32]) -> Result<()> {
        shap_mask::PreparedImage::fill_batch(self, keeps, out).map_err(|source| {
            ExplainError::Mask {
                image: None,
                source,
            }
        })
    }
}

/// `shap_mask::Masker` (blur, OpenCV inpainting, constant; default or shap-compatible mode)
/// prepares each image once (the blur, the u8 image for inpainting).
impl ImageMasker for shap_mask::Masker {
    type Prepared = shap_mask::PreparedImage;
    fn prepare(&self, image: &[f32], shape: ImageShape) -> Result<shap_mask::PreparedImage> {
        shap_mask::Masker::prepare(self, image, shape).map_err(|source| ExplainError::Mask {
            image: None,
            source,
        })
    }
}
