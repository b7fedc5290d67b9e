//! OpenCV's fast-marching inpainting (`cv2.inpaint`, `INPAINT_TELEA` and `INPAINT_NS`, radius 3),
//! reimplemented to be pixel-identical to OpenCV >= 4.10 (including 5.0) on u8 images.
//!
//! The algorithm is OpenCV's (Telea 2004, as implemented in OpenCV's `photo` module; the "NS"
//! flavour is OpenCV's own weighting of the same single pass, not a Navier-Stokes solver). This is
//! an independent implementation written from the description in `SHAP_SPEC.md` section 2:
//!
//! - the image is embedded in an `(H+2) x (W+2)` grid whose one-cell frame is always known;
//! - a min-priority queue ordered by `(arrival time T as f32, insertion order)` (FIFO among
//!   ties) drives a single inward march from the band of known cells 4-adjacent to the hole;
//! - each hole pixel, when first reached, gets its arrival time from the eikonal update and its
//!   value from a weighted sum over the known or already-filled pixels within radius 3, written
//!   in place so later pixels read earlier fills;
//! - Telea additionally runs an outward march over a 3-cell ring around the hole first, giving
//!   negative arrival times there (used by its level-set weight).
//!
//! Float rounding follows OpenCV: f32 arithmetic where OpenCV uses `float`, f64 where it
//! promotes, and the final `saturate_cast<uchar>` rounds half to even.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::{ImageShape, MaskError};

/// Which of OpenCV's two inpainting weightings to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InpaintMethod {
    /// `cv2.INPAINT_TELEA` (distance, level-set and direction weights plus a gradient term).
    Telea,
    /// `cv2.INPAINT_NS` (`1/(|r|^4+1)` times a directional weight from local variations).
    Ns,
}

/// The inpainting radius shap uses (`cv2.inpaint(..., 3, ...)`); the only one implemented.
pub const INPAINT_RADIUS: usize = 3;

const KNOWN: u8 = 0;
const BAND: u8 = 1;
const INSIDE: u8 = 2;
const CHANGE: u8 = 3;
const FAR: f32 = 1.0e6;

/// Offsets `(dk, dl)` within radius 3, excluding the centre, rows outer and columns inner: the
/// accumulation order OpenCV uses.
const OFFSETS: [(i8, i8); 28] = {
    let mut out = [(0i8, 0i8); 28];
    let mut n = 0;
    let mut dk = -3i8;
    while dk <= 3 {
        let mut dl = -3i8;
        while dl <= 3 {
            if (dk != 0 || dl != 0) && dk * dk + dl * dl <= 9 {
                out[n] = (dk, dl);
                n += 1;
            }
            dl += 1;
        }
        dk += 1;
    }
    out
};

/// Min-queue on `(T, insertion order)`.
#[derive(Debug, Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(u32, u32, u32)>>,
    counter: u32,
}

impl Queue {
    fn clear(&mut self) {
        self.heap.clear();
        self.counter = 0;
    }

    fn push(&mut self, cell: usize, t: f32) {
        // Every pushed time is >= 0 (band cells 0, marched cells >= 1), so the bit pattern of a
        // non-negative f32 orders like the value; -0.0 is mapped to +0.0.
        let key = if t == 0.0 { 0 } else { t.to_bits() };
        self.heap.push(Reverse((key, self.counter, cell as u32)));
        self.counter = self.counter.wrapping_add(1);
    }

    fn pop(&mut self) -> Option<usize> {
        self.heap.pop().map(|Reverse((_, _, cell))| cell as usize)
    }
}

/// Reusable scratch space for inpainting images of one size.
#[derive(Debug, Default)]
pub(crate) struct Inpainter {
    h: usize,
    w: usize,
    /// Extended-grid state: KNOWN / BAND / INSIDE.
    u: Vec<u8>,
    /// Extended-grid arrival times.
    t: Vec<f32>,
    /// Telea's outward-march state.
    ring: Vec<u8>,
    queue: Queue,
    /// Band cells in row-major order.
    band: Vec<usize>,
    plane_in: Vec<u8>,
    plane_out: Vec<u8>,
}

/// The eikonal update from cells `a` and `b` (see SHAP_SPEC 2.1).
#[inline]
fn solve(a: usize, b: usize, state: &[u8], t: &[f32]) -> f32 {
    let ta = f64::from(t[a]);
    let tb = f64::from(t[b]);
    let v = if state[a] != INSIDE {
        if state[b] != INSIDE {
            let d = ta - tb;
            if d.abs() >= 1.0 {
                1.0 + ta.min(tb)
            } else {
                (ta + tb + (2.0 - d * d).sqrt()) * 0.5
            }
        } else {
            1.0 + ta
        }
    } else if state[b] != INSIDE {
        1.0 + tb
    } else {
        1.0 + ta.min(tb)
    };
    v as f32
}

#[inline]
fn dist(cell: usize, cols: usize, state: &[u8], t: &[f32]) -> f32 {
    let (up, down, left, right) = (cell - cols, cell + cols, cell - 1, cell + 1);
    solve(up, left, state, t)
        .min(solve(down, left, state, t))
        .min(solve(up, right, state, t))
        .min(solve(down, right, state, t))
}

#[inline]
fn sat_u8(v: f64) -> u8 {
    let r = v.round_ties_even();
    if r <= 0.0 {
        0
    } else if r >= 255.0 {
        255
    } else {
        r as u8
    }
}

impl Inpainter {
    fn resize(&mut self, h: usize, w: usize) {
        self.h = h;
        self.w = w;
        let n = (h + 2) * (w + 2);
        self.u.resize(n, KNOWN);
        self.t.resize(n, FAR);
        self.ring.resize(n, KNOWN);
    }

    /// Inpaint one u8 plane of `h x w` (both >= 2): `out` receives the result. `fill[p]` marks
    /// pixel `p` (row-major) as unknown. Lengths are the caller's responsibility.
    pub(crate) fn inpaint_plane(
        &mut self,
        src: &[u8],
        fill: &[bool],
        h: usize,
        w: usize,
        method: InpaintMethod,
        out: &mut [u8],
    ) {
        self.resize(h, w);
        out.copy_from_slice(src);
        let cols = w + 2;
        self.u.fill(KNOWN);
        self.t.fill(FAR);
        for r in 0..h {
            for c in 0..w {
                if fill[r * w + c] {
                    self.u[(r + 1) * cols + c + 1] = INSIDE;
                }
            }
        }
        // Band: interior known cells 4-adjacent to the hole, row-major.
        self.band.clear();
        for i in 1..=h {
            for j in 1..=w {
                let cell = i * cols + j;
                if self.u[cell] != INSIDE
                    && (self.u[cell - cols] == INSIDE
                        || self.u[cell + cols] == INSIDE
                        || self.u[cell - 1] == INSIDE
                        || self.u[cell + 1] == INSIDE)
                {
                    self.band.push(cell);
                }
            }
        }
        if self.band.is_empty() {
            return;
        }
        self.queue.clear();
        for &cell in &self.band {
            self.t[cell] = 0.0;
            self.queue.push(cell, 0.0);
        }
        if method == InpaintMethod::Telea {
            self.outward_march();
        }
        self.inward_march(method, out);
    }

    /// Telea's outward distance field: negative arrival times on a 3-cell ring around the hole.
    fn outward_march(&mut self) {
        let (h, w) = (self.h, self.w);
        let cols = w + 2;
        let r = INPAINT_RADIUS;
        // Ring: interior cells that are neither hole nor band, within Chebyshev distance r of a
        // hole cell.
        self.ring.fill(KNOWN);
        for i in 1..=h {
            for j in 1..=w {
                if self.u[i * cols + j] != INSIDE {
                    continue;
                }
                for k in i.saturating_sub(r).max(1)..=(i + r).min(h) {
                    for l in j.saturating_sub(r).max(1)..=(j + r).min(w) {
                        self.ring[k * cols + l] = INSIDE;
                    }
                }
            }
        }
        for i in 1..=h {
            for j in 1..=w {
                let cell = i * cols + j;
                if self.u[cell] == INSIDE {
                    self.ring[cell] = KNOWN;
                }
            }
        }
        let mut q2 = Queue::default();
        for &cell in &self.band {
            self.ring[cell] = KNOWN;
            q2.push(cell, 0.0);
        }
        while let Some(cell) = q2.pop() {
            self.ring[cell] = CHANGE;
            for nb in [cell - cols, cell - 1, cell + cols, cell + 1] {
                if self.ring[nb] == INSIDE {
                    let d = dist(nb, cols, &self.ring, &self.t);
                    self.t[nb] = d;
                    self.ring[nb] = BAND;
                    q2.push(nb, d);
                }
            }
        }
        for (t, &s) in self.t.iter_mut().zip(&self.ring) {
            if s == CHANGE {
                *t = -*t;
            }
        }
    }

    fn inward_march(&mut self, method: InpaintMethod, out: &mut [u8]) {
        let (h, w) = (self.h, self.w);
        let cols = w + 2;
        while let Some(cell) = self.queue.pop() {
            self.u[cell] = KNOWN;
            for nb in [cell - cols, cell - 1, cell + cols, cell + 1] {
                if self.u[nb] != INSIDE {
                    continue;
                }
                let d = dist(nb, cols, &self.u, &self.t);
                self.t[nb] = d;
                let (i, j) = (nb / cols, nb % cols);
                let v = match method {
                    InpaintMethod::Telea => self.telea_value(i, j, out),
                    InpaintMethod::Ns => self.ns_value(i, j, out),
                };
                out[(i - 1) * w + (j - 1)] = v;
                self.u[nb] = BAND;
                self.queue.push(nb, d);
            }
        }
        debug_assert!(h > 0);
    }

    /// Clamped image row/column indices used by OpenCV's gradient reads: `(km, kp)` for
    /// extended index `k` in `1..=n`.
    #[inline]
    fn clamp_pair(k: usize, n: usize) -> (usize, usize) {
        let km = if k == 1 { 1 } else { k - 1 };
        let kp = if k == n { k - 2 } else { k - 1 };
        (km, kp)
    }

    fn telea_value(&self, i: usize, j: usize, out: &[u8]) -> u8 {
        let (h, w) = (self.h, self.w);
        let cols = w + 2;
        let (u, t) = (&self.u, &self.t);
        let c = i * cols + j;
        let tij = t[c];
        let known = |cell: usize| u[cell] != INSIDE;
        let gtx = if known(c + 1) {
            if known(c - 1) {
                (t[c + 1] - t[c - 1]) * 0.5
            } else {
                t[c + 1] - tij
            }
        } else if known(c - 1) {
            tij - t[c - 1]
        } else {
            0.0
        };
        let gty = if known(c + cols) {
            if known(c - cols) {
                (t[c + cols] - t[c - cols]) * 0.5
            } else {
                t[c + cols] - tij
            }
        } else if known(c - cols) {
            tij - t[c - cols]
        } else {
            0.0
        };
        let o = |r: usize, col: usize| i32::from(out[r * w + col]);
        let (mut ia, mut jx, mut jy, mut s) = (0.0f32, 0.0f32, 0.0f32, 1.0e-20f32);
        for &(dk, dl) in &OFFSETS {
            let k = i as isize + isize::from(dk);
            let l = j as isize + isize::from(dl);
            if k < 1 || l < 1 || k > h as isize || l > w as isize {
                continue;
            }
            let (k, l) = (k as usize, l as usize);
            let kl = k * cols + l;
            if !known(kl) {
                continue;
            }
            let (km, kp) = Self::clamp_pair(k, h);
            let (lm, lp) = Self::clamp_pair(l, w);
            let ry = -f32::from(dk);
            let rx = -f32::from(dl);
            let rl = rx * rx + ry * ry;
            let rl64 = f64::from(rl);
            let dst = (1.0 / (rl64 * rl64.sqrt())) as f32;
            let lev = (1.0 / (1.0 + f64::from((t[kl] - tij).abs()))) as f32;
            let mut dir = rx * gtx + ry * gty;
            if f64::from(dir.abs()) <= 0.01 {
                dir = 1.0e-6;
            }
            let wgt = (dst * lev * dir).abs();
            let gix = if known(kl + 1) {
                if known(kl - 1) {
                    (o(km, lp + 1) - o(km, lm - 1)) as f32 * 2.0
                } else {
                    (o(km, lp + 1) - o(km, lm)) as f32
                }
            } else if known(kl - 1) {
                (o(km, lp) - o(km, lm - 1)) as f32
            } else {
                0.0
            };
            let giy = if known(kl + cols) {
                if known(kl - cols) {
                    (o(kp + 1, lm) - o(km - 1, lm)) as f32 * 2.0
                } else {
                    (o(kp + 1, lm) - o(km, lm)) as f32
                }
            } else if known(kl - cols) {
                (o(kp, lm) - o(km - 1, lm)) as f32
            } else {
                0.0
            };
            let v = f32::from(out[(k - 1) * w + (l - 1)]);
            ia += wgt * v;
            jx -= wgt * (gix * rx);
            jy -= wgt * (giy * ry);
            s += wgt;
        }
        let nrm = (jx * jx + jy * jy).sqrt();
        let sat = ia / s + (jx + jy) / (nrm + 1.0e-20);
        sat_u8(f64::from(sat) + 0.5)
    }

    fn ns_value(&self, i: usize, j: usize, out: &[u8]) -> u8 {
        let (h, w) = (self.h, self.w);
        let cols = w + 2;
        let u = &self.u;
        let known = |cell: usize| u[cell] != INSIDE;
        let o = |r: usize, col: usize| i32::from(out[r * w + col]);
        let (mut ia, mut s) = (0.0f32, 1.0e-20f32);
        for &(dk, dl) in &OFFSETS {
            let k = i as isize + isize::from(dk);
            let l = j as isize + isize::from(dl);
            if k < 1 || l < 1 || k > h as isize || l > w as isize {
                continue;
            }
            let (k, l) = (k as usize, l as usize);
            let kl = k * cols + l;
            if !known(kl) {
                continue;
            }
            let (km, kp) = Self::clamp_pair(k, h);
            let (lm, lp) = Self::clamp_pair(l, w);
            let ry = -f32::from(dk);
            let rx = -f32::from(dl);
            let rl = rx * rx + ry * ry;
            let dst = 1.0f32 / (rl * rl + 1.0);
            let gx = if known(kl + cols) {
                if known(kl - cols) {
                    ((o(kp + 1, lm) - o(kp, lm)).abs() + (o(kp, lm) - o(km - 1, lm)).abs()) as f32
                } else {
                    (o(kp + 1, lm) - o(kp, lm)).abs() as f32 * 2.0
                }
            } else if known(kl - cols) {
                (o(kp, lm) - o(km - 1, lm)).abs() as f32 * 2.0
            } else {
                0.0
            };
            let gy = if known(kl + 1) {
                if known(kl - 1) {
                    ((o(km, lp + 1) - o(km, lm)).abs() + (o(km, lm) - o(km, lm - 1)).abs()) as f32
                } else {
                    (o(km, lp + 1) - o(km, lm)).abs() as f32 * 2.0
                }
            } else if known(kl - 1) {
                (o(km, lm) - o(km, lm - 1)).abs() as f32 * 2.0
            } else {
                0.0
            };
            let gx = -gx;
            let dot = rx * gx + ry * gy;
            let dir = if f64::from(dot.abs()) <= 0.01 {
                1.0e-6f32
            } else {
                (f64::from(dot).abs() / (f64::from(rl) * f64::from(gx * gx + gy * gy)).sqrt())
                    as f32
            };
            let wgt = dst * dir;
            ia += wgt * f32::from(out[(k - 1) * w + (l - 1)]);
            s += wgt;
        }
        sat_u8(f64::from(ia) / f64::from(s))
    }

    /// Inpaint an interleaved `(H, W, C)` u8 image, every channel independently with the same
    /// fill map (what OpenCV does for 3-channel images). Lengths are the caller's responsibility.
    pub(crate) fn inpaint_interleaved(
        &mut self,
        src: &[u8],
        fill: &[bool],
        shape: ImageShape,
        method: InpaintMethod,
        out: &mut [u8],
    ) {
        let (h, w, ch) = (shape.height, shape.width, shape.channels);
        if ch == 1 {
            self.inpaint_plane(src, fill, h, w, method, out);
            return;
        }
        let mut plane_in = std::mem::take(&mut self.plane_in);
        let mut plane_out = std::mem::take(&mut self.plane_out);
        plane_in.resize(h * w, 0);
        plane_out.resize(h * w, 0);
        for k in 0..ch {
            for (p, v) in plane_in.iter_mut().enumerate() {
                *v = src[p * ch + k];
            }
            self.inpaint_plane(&plane_in, fill, h, w, method, &mut plane_out);
            for (p, &v) in plane_out.iter().enumerate() {
                out[p * ch + k] = v;
            }
        }
        self.plane_in = plane_in;
        self.plane_out = plane_out;
    }
}

fn check_inpaint_shape(shape: ImageShape) -> Result<usize, MaskError> {
    let m = shape
        .height
        .checked_mul(shape.width)
        .and_then(|p| p.checked_mul(shape.channels))
        .filter(|&m| {
            m > 0
                && (shape.height + 2)
                    .checked_mul(shape.width + 2)
                    .is_some_and(|n| n < u32::MAX as usize)
        })
        .ok_or(MaskError::EmptyImage { shape })?;
    if shape.height < 2 || shape.width < 2 {
        return Err(MaskError::ImageTooSmall { shape });
    }
    Ok(m)
}

/// `cv2.inpaint(src, fill, 3, method)` on a single-channel u8 image of `height x width`
/// (row-major), pixel-identical to OpenCV >= 4.10.
///
/// `fill[p]` is `true` for the pixels to reconstruct (OpenCV's non-zero mask). Pixels not to be
/// filled are returned unchanged; with nothing to fill the result is `src`.
///
/// Errors: lengths that do not match `height * width`, or an image smaller than 2x2.
///
/// ```
/// use shap_mask::{inpaint_u8, InpaintMethod};
/// let src = [10u8, 10, 10, 10, 99, 10, 10, 10, 10];
/// let mut fill = [false; 9];
/// fill[4] = true;
/// let out = inpaint_u8(&src, &fill, 3, 3, InpaintMethod::Ns)?;
/// assert_eq!(out, [10u8; 9]);
/// # Ok::<(), shap_mask::MaskError>(())
/// ```
pub fn inpaint_u8(
    src: &[u8],
    fill: &[bool],
    height: usize,
    width: usize,
    method: InpaintMethod,
) -> Result<Vec<u8>, MaskError> {
    inpaint_u8_channels(src, fill, ImageShape::new(height, width, 1), method)
}

/// `cv2.inpaint` on an interleaved `(H, W, C)` u8 image with one `(H, W)` fill map: every channel
/// is inpainted independently with the same fill order, which is what OpenCV does for its
/// 3-channel images (checked against cv2 5.0). OpenCV itself only accepts C = 1 or 3; other
/// channel counts follow the same per-channel rule.
///
/// Errors: `src.len() != H*W*C`, `fill.len() != H*W`, or an image smaller than 2x2.
pub fn inpaint_u8_channels(
    src: &[u8],
    fill: &[bool],
    shape: ImageShape,
    method: InpaintMethod,
) -> Result<Vec<u8>, MaskError> {
    let m = check_inpaint_shape(shape)?;
    if src.len() != m {
        return Err(MaskError::ImageLength {
            shape,
            expected: m,
            actual: src.len(),
        });
    }
    if fill.len() != shape.pixels() {
        return Err(MaskError::MaskLength {
            expected: shape.pixels(),
            actual: fill.len(),
        });
    }
    let mut out = vec![0u8; m];
    Inpainter::default().inpaint_interleaved(src, fill, shape, method, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_the_28_radius_3_cells_in_row_major_order() {
        assert_eq!(OFFSETS.len(), 28);
        assert_eq!(OFFSETS[0], (-3, 0));
        assert_eq!(OFFSETS[27], (3, 0));
        assert!(OFFSETS.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn queue_is_fifo_among_equal_times() {
        let mut q = Queue::default();
        q.push(5, 1.0);
        q.push(3, 0.0);
        q.push(9, 1.0);
        q.push(1, 0.5);
        let order: Vec<usize> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![3, 1, 5, 9]);
    }
}
