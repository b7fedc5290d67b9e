//! `cv2.blur`: the normalised box filter with OpenCV's default anchor and border.

use crate::{ImageShape, MaskError};

/// Map an index into `[0, n)` the way OpenCV's `BORDER_REFLECT_101` does (`dcb|abcd|cba`).
pub(crate) fn reflect_101(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n <= 1 {
        return 0;
    }
    let mut i = i;
    while i < 0 || i >= n {
        if i < 0 {
            i = -i;
        }
        if i >= n {
            i = 2 * n - 2 - i;
        }
    }
    i as usize
}

/// Check that a kernel is usable on `shape` (both sides >= 1, `kw <= 2W-1`, `kh <= 2H-1`).
pub(crate) fn check_kernel(shape: ImageShape, kw: usize, kh: usize) -> Result<(), MaskError> {
    if kw == 0 || kh == 0 {
        return Err(MaskError::ZeroKernel { kw, kh });
    }
    let max_kw = 2 * shape.width - 1;
    let max_kh = 2 * shape.height - 1;
    if kw > max_kw || kh > max_kh {
        return Err(MaskError::KernelTooLarge {
            kw,
            kh,
            shape,
            max_kw,
            max_kh,
        });
    }
    Ok(())
}

/// Validate an image buffer against its shape: non-empty, right length, all values finite.
pub(crate) fn check_image(image: &[f32], shape: ImageShape) -> Result<usize, MaskError> {
    let m = shape
        .height
        .checked_mul(shape.width)
        .and_then(|p| p.checked_mul(shape.channels))
        .filter(|&m| m > 0 && m <= isize::MAX as usize / 8)
        .ok_or(MaskError::EmptyImage { shape })?;
    if image.len() != m {
        return Err(MaskError::ImageLength {
            shape,
            expected: m,
            actual: image.len(),
        });
    }
    if let Some((index, &value)) = image.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MaskError::NonFinite { index, value });
    }
    Ok(m)
}

/// Box blur exactly like OpenCV's `cv2.blur(image, (kw, kh))` on an f32 image, every channel
/// independently.
///
/// `kw` is the kernel width (columns) and `kh` its height (rows). The window of output `(r, c)`
/// covers rows `r - kh/2 ..= r - kh/2 + kh - 1` and columns `c - kw/2 ..= c - kw/2 + kw - 1`
/// (OpenCV's default anchor), indices outside the image are mirrored with `BORDER_REFLECT_101`,
/// and the window sum is accumulated in f64, scaled by `1/(kw*kh)` and rounded once to f32.
/// The image is `(H, W, C)` row-major with channels last.
///
/// Errors: an empty or mis-sized image, non-finite values, a zero kernel side, or a kernel side
/// larger than `2*side - 1` of the image.
///
/// ```
/// use shap_mask::{box_blur, ImageShape};
/// let img: Vec<f32> = (0..16).map(|v| v as f32).collect();
/// let out = box_blur(&img, ImageShape::new(4, 4, 1), 4, 4)?;
/// assert_eq!(&out[..4], &[5.0, 5.0, 5.5, 6.0]);
/// # Ok::<(), shap_mask::MaskError>(())
/// ```
pub fn box_blur(
    image: &[f32],
    shape: ImageShape,
    kw: usize,
    kh: usize,
) -> Result<Vec<f32>, MaskError> {
    check_image(image, shape)?;
    check_kernel(shape, kw, kh)?;
    let (h, w, ch) = (shape.height, shape.width, shape.channels);
    let (ax, ay) = ((kw / 2) as isize, (kh / 2) as isize);
    // Column indices of each output column's window, and row indices of each output row's window.
    let col_idx: Vec<usize> = (0..w as isize)
        .flat_map(|c| (0..kw as isize).map(move |dx| reflect_101(c - ax + dx, w)))
        .collect();
    let row_idx: Vec<usize> = (0..h as isize)
        .flat_map(|r| (0..kh as isize).map(move |dy| reflect_101(r - ay + dy, h)))
        .collect();
    // Horizontal pass in f64: rowsum[(r*w + c)*ch + k].
    let mut rowsum = vec![0.0f64; h * w * ch];
    for r in 0..h {
        let src = &image[r * w * ch..(r + 1) * w * ch];
        let dst = &mut rowsum[r * w * ch..(r + 1) * w * ch];
        for (c, win) in col_idx.chunks_exact(kw).enumerate() {
            for k in 0..ch {
                dst[c * ch + k] = win.iter().map(|&x| f64::from(src[x * ch + k])).sum();
            }
        }
    }
    // Vertical pass in f64, then scale and round once to f32.
    let scale = 1.0 / (kw as f64 * kh as f64);
    let mut out = vec![0.0f32; h * w * ch];
    for (r, win) in row_idx.chunks_exact(kh).enumerate() {
        let dst = &mut out[r * w * ch..(r + 1) * w * ch];
        for (i, d) in dst.iter_mut().enumerate() {
            let s: f64 = win.iter().map(|&y| rowsum[y * w * ch + i]).sum();
            *d = (s * scale) as f32;
        }
    }
    Ok(out)
}
