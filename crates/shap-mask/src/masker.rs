//! The masker: apply a [`MaskerSpec`] to one image under many masks.

use rayon::prelude::*;

use crate::blur::{box_blur, check_image, check_kernel};
use crate::inpaint::{InpaintMethod, Inpainter, check_inpaint_shape};
use crate::{ImageShape, MaskError, MaskMode, MaskerSpec};

/// A configured masker: a [`MaskerSpec`] plus a [`MaskMode`].
///
/// Call [`Masker::prepare`] once per explained image, then [`PreparedImage::fill`] or
/// [`PreparedImage::fill_batch`] for its masks.
///
/// ```
/// use shap_mask::{ImageShape, MaskMode, Masker, MaskerSpec};
/// let masker = Masker::new("inpaint_telea".parse::<MaskerSpec>()?, MaskMode::Default);
/// let shape = ImageShape::new(4, 4, 1);
/// let image: Vec<f32> = (0..16).map(|v| v as f32 / 15.0).collect();
/// let prepared = masker.prepare(&image, shape)?;
/// let mut keep = vec![true; 16];
/// keep[5] = false; // hide one pixel
/// let mut out = vec![0.0; 16];
/// prepared.fill(&keep, &mut out)?;
/// assert!(out.iter().zip(&image).enumerate().all(|(j, (o, x))| j == 5 || o == x));
/// # Ok::<(), shap_mask::MaskError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Masker {
    spec: MaskerSpec,
    mode: MaskMode,
}

/// How a [`MaskMode::Default`] inpainting masker maps the float image to 0..255 and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InpaintScale {
    /// The image lies in \[0, 1\] (its maximum is <= 1): `u8 = round(x*255)`, back by `/255`.
    Unit,
    /// Otherwise the image is taken as 0..255: `u8 = round(x)`, back unchanged.
    Byte,
    /// shap-compatible: `u8 = trunc(x)` (NumPy's cast), back unchanged.
    Truncate,
}

#[derive(Debug, Clone)]
enum Prepared {
    Blur { blurred: Vec<f32> },
    Constant(f32),
    Inpaint(InpaintPrep),
}

/// What an inpainting masker prepares once per image.
#[derive(Debug, Clone)]
struct InpaintPrep {
    method: InpaintMethod,
    /// The image as OpenCV's u8 input, interleaved.
    src: Vec<u8>,
    scale: InpaintScale,
    /// Per-channel mean, the fill when every pixel is masked.
    mean: Vec<f32>,
}

/// One image prepared for masking: owns a copy of the image and any per-image state (the
/// blurred image, or the u8 image and channel means for inpainting). `Send + Sync`; share it
/// across threads freely.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    shape: ImageShape,
    mode: MaskMode,
    image: Vec<f32>,
    kind: Prepared,
    clamped: usize,
}

impl Masker {
    /// A masker applying `spec` under `mode`.
    pub fn new(spec: MaskerSpec, mode: MaskMode) -> Self {
        Self { spec, mode }
    }

    /// The masker spec.
    pub fn spec(&self) -> &MaskerSpec {
        &self.spec
    }

    /// The masking mode.
    pub fn mode(&self) -> MaskMode {
        self.mode
    }

    /// Validate `image` (`(H, W, C)` row-major, channels last) and precompute everything that
    /// does not depend on the mask: the blurred image for `blur`, the u8 image and per-channel
    /// means for the inpainting maskers.
    ///
    /// Errors: an empty shape, a buffer length other than `H*W*C`, non-finite values, a blur
    /// kernel that is zero or larger than `2*side-1`, a non-finite constant, an inpainting
    /// image smaller than 2x2, or (shap-compatible inpainting only) a channel count other than
    /// 1 or 3.
    pub fn prepare(&self, image: &[f32], shape: ImageShape) -> Result<PreparedImage, MaskError> {
        check_image(image, shape)?;
        let mut clamped = 0;
        let kind = match self.spec {
            MaskerSpec::Blur { kw, kh } => {
                check_kernel(shape, kw, kh)?;
                Prepared::Blur {
                    blurred: box_blur(image, shape, kw, kh)?,
                }
            }
            MaskerSpec::Constant(v) => {
                if !v.is_finite() {
                    return Err(MaskError::NonFiniteConstant { value: v });
                }
                Prepared::Constant(v)
            }
            MaskerSpec::InpaintTelea | MaskerSpec::InpaintNs => {
                let method = if self.spec == MaskerSpec::InpaintTelea {
                    InpaintMethod::Telea
                } else {
                    InpaintMethod::Ns
                };
                check_inpaint_shape(shape)?;
                if self.mode == MaskMode::ShapCompat && !matches!(shape.channels, 1 | 3) {
                    return Err(MaskError::UnsupportedChannels { shape });
                }
                let (src, scale) = match self.mode {
                    MaskMode::ShapCompat => {
                        // NumPy's float -> uint8 cast truncates toward zero; values outside
                        // [0, 256) are undefined there and saturate here.
                        let src: Vec<u8> = image.iter().map(|&x| x as u8).collect();
                        clamped = image
                            .iter()
                            .filter(|&&x| !(0.0..256.0).contains(&x))
                            .count();
                        (src, InpaintScale::Truncate)
                    }
                    MaskMode::Default => {
                        let max = image.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let (scale, factor) = if max <= 1.0 {
                            (InpaintScale::Unit, 255.0f32)
                        } else {
                            (InpaintScale::Byte, 1.0)
                        };
                        let src: Vec<u8> = image
                            .iter()
                            .map(|&x| {
                                let v = (x * factor).round_ties_even();
                                if !(0.0..=255.0).contains(&v) {
                                    clamped += 1;
                                }
                                v.clamp(0.0, 255.0) as u8
                            })
                            .collect();
                        (src, scale)
                    }
                };
                let (p, ch) = (shape.pixels(), shape.channels);
                let mean = (0..ch)
                    .map(|k| {
                        let s: f64 = image
                            .iter()
                            .skip(k)
                            .step_by(ch)
                            .map(|&x| f64::from(x))
                            .sum();
                        (s / p as f64) as f32
                    })
                    .collect();
                Prepared::Inpaint(InpaintPrep {
                    method,
                    src,
                    scale,
                    mean,
                })
            }
        };
        Ok(PreparedImage {
            shape,
            mode: self.mode,
            image: image.to_vec(),
            kind,
            clamped,
        })
    }
}

impl PreparedImage {
    /// The image shape.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// The mode this image was prepared under.
    pub fn mode(&self) -> MaskMode {
        self.mode
    }

    /// The original image.
    pub fn image(&self) -> &[f32] {
        &self.image
    }

    /// For inpainting maskers, how the float image is mapped to u8 and back.
    pub fn inpaint_scale(&self) -> Option<InpaintScale> {
        match &self.kind {
            Prepared::Inpaint(prep) => Some(prep.scale),
            _ => None,
        }
    }

    /// For inpainting maskers, how many image values fell outside the u8 range of the chosen
    /// scale and were clamped (default mode: outside \[0,1\] for [`InpaintScale::Unit`], outside
    /// \[0,255\] for [`InpaintScale::Byte`]; shap-compatible mode: outside [0,256), where NumPy's
    /// cast is undefined). Non-zero means the image is not in a range the inpainting expects:
    /// callers should warn.
    pub fn clamped_values(&self) -> usize {
        self.clamped
    }

    /// The blurred image (blur maskers only).
    pub fn blurred(&self) -> Option<&[f32]> {
        match &self.kind {
            Prepared::Blur { blurred } => Some(blurred),
            _ => None,
        }
    }

    /// Write the masked image for one mask into `out`.
    ///
    /// `keep.len()` and `out.len()` must both be `M = H*W*C`; `keep[j] == true` keeps feature
    /// `j`. Hidden features take the blurred value, the constant, or the inpainted value:
    /// - inpainting fills a pixel if **any** of its channels is hidden;
    /// - if every pixel is to be filled, hidden features take the per-channel mean of the image
    ///   (shap does the same instead of calling OpenCV);
    /// - default mode keeps every kept feature exactly; shap-compatible mode replaces the whole
    ///   image with the u8 result (or the mean image), as shap 0.51 does.
    pub fn fill(&self, keep: &[bool], out: &mut [f32]) -> Result<(), MaskError> {
        let m = self.image.len();
        if keep.len() != m {
            return Err(MaskError::MaskLength {
                expected: m,
                actual: keep.len(),
            });
        }
        if out.len() != m {
            return Err(MaskError::ImageLength {
                shape: self.shape,
                expected: m,
                actual: out.len(),
            });
        }
        with_scratch(|scratch| self.fill_one(keep, out, scratch));
        Ok(())
    }

    /// Write `n` masked images for `n` masks stored back to back (`keeps.len() == n*M`) into
    /// `out` (`n*M` values), in parallel with rayon. Each image is computed independently, so
    /// the result does not depend on the number of threads.
    pub fn fill_batch(&self, keeps: &[bool], out: &mut [f32]) -> Result<(), MaskError> {
        let m = self.image.len();
        if !keeps.len().is_multiple_of(m) || out.len() != keeps.len() {
            return Err(MaskError::BatchLength {
                keeps: keeps.len(),
                out: out.len(),
                features: m,
            });
        }
        // Images per rayon task (fixed, so results never depend on scheduling): inpainting
        // costs ~100 us per image, so one image per task balances best; blur and constant are
        // memory-bound copies, so large chunks keep the task overhead negligible.
        let per_task = match self.kind {
            Prepared::Inpaint(_) => 1,
            _ => (1 << 20) / (4 * m).max(1),
        }
        .clamp(1, 4096);
        out.par_chunks_mut(m * per_task)
            .zip(keeps.par_chunks(m * per_task))
            .for_each(|(o, k)| {
                // The thread's scratch, kept across calls: a fresh inpainter would rebuild its
                // per-size tables, which costs as much as several inpaints.
                with_scratch(|scratch| {
                    for (oi, ki) in o.chunks_exact_mut(m).zip(k.chunks_exact(m)) {
                        self.fill_one(ki, oi, scratch);
                    }
                });
            });
        Ok(())
    }

    /// The masked image for one mask, as a new vector (convenience over [`PreparedImage::fill`]).
    pub fn masked(&self, keep: &[bool]) -> Result<Vec<f32>, MaskError> {
        let mut out = vec![0.0; self.image.len()];
        self.fill(keep, &mut out)?;
        Ok(out)
    }

    fn fill_one(&self, keep: &[bool], out: &mut [f32], scratch: &mut Scratch) {
        let x = &self.image;
        match &self.kind {
            Prepared::Blur { blurred } => {
                for (((o, &k), &xv), &b) in out.iter_mut().zip(keep).zip(x).zip(blurred) {
                    *o = if k { xv } else { b };
                }
            }
            Prepared::Constant(v) => {
                for ((o, &k), &xv) in out.iter_mut().zip(keep).zip(x) {
                    *o = if k { xv } else { *v };
                }
            }
            Prepared::Inpaint(prep) => self.fill_inpaint(prep, keep, out, scratch),
        }
    }

    fn fill_inpaint(
        &self,
        prep: &InpaintPrep,
        keep: &[bool],
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let InpaintPrep {
            method,
            src,
            scale,
            mean,
        } = prep;
        let (method, scale) = (*method, *scale);
        let x = &self.image;
        let ch = self.shape.channels;
        let compat = self.mode == MaskMode::ShapCompat;
        scratch.fill.clear();
        scratch
            .fill
            .extend(keep.chunks_exact(ch).map(|px| px.iter().any(|&k| !k)));
        let n_fill = scratch.fill.iter().filter(|&&f| f).count();
        if n_fill == scratch.fill.len() {
            // Everything to be filled: the per-channel mean image, without OpenCV.
            for (j, ((o, &k), &xv)) in out.iter_mut().zip(keep).zip(x).enumerate() {
                *o = if k && !compat { xv } else { mean[j % ch] };
            }
            return;
        }
        scratch.res.resize(src.len(), 0);
        if n_fill == 0 {
            scratch.res.copy_from_slice(src);
        } else {
            scratch.inpainter.inpaint_interleaved(
                src,
                &scratch.fill,
                self.shape,
                method,
                &mut scratch.res,
            );
        }
        let back = |v: u8| match scale {
            InpaintScale::Unit => f32::from(v) / 255.0,
            InpaintScale::Byte | InpaintScale::Truncate => f32::from(v),
        };
        for (((o, &k), &xv), &r) in out.iter_mut().zip(keep).zip(x).zip(&scratch.res) {
            *o = if k && !compat { xv } else { back(r) };
        }
    }
}

thread_local! {
    /// Scratch buffers reused by [`PreparedImage::fill`] and [`PreparedImage::fill_batch`] on
    /// each thread.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Run `f` with this thread's scratch buffers (fresh ones if they are already borrowed, which
/// only re-entrancy can cause).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Per-thread scratch buffers for masking.
#[derive(Debug, Default)]
struct Scratch {
    fill: Vec<bool>,
    res: Vec<u8>,
    inpainter: Inpainter,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn prepared_image_is_send_and_sync() {
        assert_send_sync::<PreparedImage>();
        assert_send_sync::<Masker>();
    }
}
