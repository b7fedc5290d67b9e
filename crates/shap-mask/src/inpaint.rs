//! OpenCV's fast-marching inpainting (`cv2.inpaint`, `INPAINT_TELEA` and `INPAINT_NS`, radius 3),
//! reimplemented to be pixel-identical to OpenCV 5.0 (the version tested) on u8 images.
//!
//! The algorithm is OpenCV's (Telea 2004, as implemented in OpenCV's `photo` module; the "NS"
//! flavour is OpenCV's own weighting of the same single pass, not a Navier-Stokes solver). This is
//! an independent implementation, described in `docs/maskers.md#opencv-inpainting-inpaint_telea-and-inpaint_ns`:
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
//!
//! Implementation notes (speed): the extended grid is stored with two more cells of padding on
//! every side (`PAD = 3` in all), so every radius-3 neighbour of an image pixel is a valid index
//! and the neighbourhood loop needs no bounds tests: padding and frame cells carry the state
//! `FRAME`, which counts as known for the eikonal update and the gradients (as OpenCV's frame
//! does) but is excluded from the value sums (as OpenCV's `1 <= k <= H` test does). The cached
//! per-pixel image gradients are refreshed through a precomputed list of the cells whose
//! gradient reads each pixel, and the band cells (all at T = 0, popped first in row-major
//! order) are queued in a plain FIFO instead of the heap.
//!
//! Tried and not kept: an AVX2 version of the value sums (all 28 neighbours weighted in
//! vectors, one per window row, from per-quantity planes, then added in OpenCV's order). It
//! was bit-identical but ran only 5-11% fewer instructions (callgrind) and about 10% less time:
//! the scalar loop visits only the neighbours that count (about 19 of 28 with half the pixels
//! hidden), so the vectors redo most of what they save.

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
/// The one-cell frame of OpenCV's extended grid and our extra padding: known (`!= INSIDE`) for
/// the eikonal update and the gradients, but never a neighbour in the value sums.
const FRAME: u8 = 4;
const FAR: f32 = 1.0e6;
/// Grid cells around the image on each side: OpenCV's one-cell frame plus two more, so that all
/// radius-3 neighbours of an image pixel are inside the grid.
const PAD: usize = INPAINT_RADIUS;

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

/// Min-queue on `(T, insertion order)` for times `T >= 0`. Entries with `T == 0` are smaller
/// than every other entry and FIFO among themselves, so they live in a plain FIFO that is always
/// drained first; the others go to a heap keyed by one `u64` (the f32 bits of T, then a 32-bit
/// insertion counter that also indexes the pushed cells).
#[derive(Debug, Default)]
struct Queue {
    zeros: Vec<u32>,
    zero_head: usize,
    heap: BinaryHeap<Reverse<u64>>,
    cells: Vec<u32>,
}

impl Queue {
    fn clear(&mut self) {
        self.zeros.clear();
        self.zero_head = 0;
        self.heap.clear();
        self.cells.clear();
    }

    fn push(&mut self, cell: usize, t: f32) {
        debug_assert!(t >= 0.0);
        if t == 0.0 {
            // Also catches -0.0.
            self.zeros.push(cell as u32);
            return;
        }
        // A positive f32's bit pattern orders like its value.
        let n = self.cells.len() as u64;
        self.heap.push(Reverse((u64::from(t.to_bits()) << 32) | n));
        self.cells.push(cell as u32);
    }

    fn pop(&mut self) -> Option<usize> {
        if let Some(&c) = self.zeros.get(self.zero_head) {
            self.zero_head += 1;
            return Some(c as usize);
        }
        let Reverse(k) = self.heap.pop()?;
        self.cells
            .get((k & 0xFFFF_FFFF) as usize)
            .map(|&c| c as usize)
    }
}

/// The radius-3 disk without its centre, as bits `(dk + 3) * 7 + (dl + 3)` of a 7x7 window.
const DISK: u64 = {
    let mut m = 0u64;
    let mut q = 0;
    while q < OFFSETS.len() {
        let (dk, dl) = OFFSETS[q];
        m |= 1 << ((dk + 3) as u32 * 7 + (dl + 3) as u32);
        q += 1;
    }
    m
};

/// Offsets by window bit (64 entries, so a 6-bit index needs no bounds check).
#[derive(Debug, Clone, Copy)]
struct OffBits([Offset; 64]);

impl Default for OffBits {
    fn default() -> Self {
        Self([Offset::default(); 64])
    }
}

/// Per-offset constants of the radius-3 neighbourhood for one grid width.
#[derive(Debug, Clone, Copy, Default)]
struct Offset {
    /// `dk * cols + dl`.
    flat: isize,
    rx: f32,
    ry: f32,
    rl: f32,
    /// Telea's `f32(1 / (rl * sqrt(rl)))`.
    dst_telea: f32,
    /// NS's `1 / (rl*rl + 1)`.
    dst_ns: f32,
}

/// Where OpenCV's gradient formulas read for one image cell: the cell itself and, as grid
/// indices, its clamped `(km, lm)`, `(km, lp)` and `(kp, lm)` (all equal to the cell away from
/// the first/last row and column).
#[derive(Debug, Clone, Copy, Default)]
struct Geom {
    cell: u32,
    base: u32,
    lp: u32,
    kp: u32,
}

/// Per-cell data read by the value sums, packed so one neighbour is one 16-byte load: `aux`
/// (Telea: the arrival time T; NS: `gx*gx + gy*gy` in f32, as OpenCV computes it), the pixel
/// value, and the cached image gradient as the value formulas use it (Telea: `(gradI.x,
/// gradI.y)`; NS: `(-vertical variation, horizontal variation)`). Kept up to date for every
/// known image cell as pixels are filled.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
struct Px {
    aux: f32,
    v: f32,
    gx: f32,
    gy: f32,
}

/// Reusable scratch space for inpainting images of one size.
#[derive(Debug, Default)]
pub(crate) struct Inpainter {
    h: usize,
    w: usize,
    /// Grid width `w + 2*PAD`.
    cols: usize,
    /// Grid state: KNOWN / BAND / INSIDE inside the image, FRAME outside.
    u: Vec<u8>,
    /// Grid arrival times.
    t: Vec<f32>,
    /// Telea's outward-march state.
    ring: Vec<u8>,
    /// The image being filled, on the grid (frame and padding unused).
    oe: Vec<i32>,
    /// Packed per-cell data for the value sums.
    px: Vec<Px>,
    /// Image cells within Chebyshev distance 3 of the hole (1), else 0.
    near: Vec<u8>,
    /// Row-dilation scratch for `near` (0 outside the image).
    rowdil: Vec<u8>,
    /// Column counts for the ring's dilation.
    colcount: Vec<u32>,
    /// OpenCV's clamped gradient rows, per extended row `k` in `1..=h`:
    /// `((km - k) * cols, (kp - km) * cols)` as signed grid deltas.
    rdelta: Vec<(isize, isize)>,
    /// Per extended column `l`: `(lm - l, lp - lm)`.
    cdelta: Vec<(isize, isize)>,
    /// The 28 radius-3 offsets indexed by their bit `(dk + 3) * 7 + (dl + 3)` in a 7x7 window
    /// mask (entries off the disk unused).
    offbits: OffBits,
    /// Bitmap of the cells that count in the value sums (image pixels not INSIDE): grid row
    /// `r` is `wpr` words, grid column `j` is bit `j` of the row.
    bits: Vec<u64>,
    /// Words per grid row in `bits` (one spare so a 7-bit window can straddle two words).
    wpr: usize,
    /// Per grid cell `(r, j)`: its bit index `r * wpr * 64 + j` in `bits` (saves a division
    /// per filled pixel).
    cell_bit: Vec<usize>,
    /// Gradient read positions per image pixel (row-major).
    geom: Vec<Geom>,
    /// For grid cell `c`, `deps[dep_start[c]..dep_start[c + 1]]` are the image pixels (indices
    /// into `geom`) whose gradient reads cell `c`'s value or state (including `c` itself).
    dep_start: Vec<u32>,
    deps: Vec<u32>,
    queue: Queue,
    queue2: Queue,
    /// Band cells in row-major order.
    band: Vec<usize>,
    plane_in: Vec<u8>,
    plane_out: Vec<u8>,
}

/// The eikonal update from cells `a` and `b` (see docs/maskers.md#the-eikonal-update), without data-dependent
/// branches (the known states are random in a masked image, so branches on them mispredict):
/// every candidate is computed and the right one selected.
#[inline]
fn solve(a: usize, b: usize, state: &[u8], t: &[f32]) -> f32 {
    let ta = f64::from(t[a]);
    let tb = f64::from(t[b]);
    let (ka, kb) = (state[a] != INSIDE, state[b] != INSIDE);
    let d = ta - tb;
    // Both known and |d| < 1: the quadratic's root (the sqrt argument is then positive; in the
    // other cases it is unused, possibly NaN, and never selected).
    let root = (ta + tb + (2.0 - d * d).sqrt()) * 0.5;
    let lo = 1.0 + ta.min(tb);
    let both = if d.abs() >= 1.0 { lo } else { root };
    // One known: 1 + its time; none: 1 + min (OpenCV's formula for that case).
    let v = match (ka, kb) {
        (true, true) => both,
        (true, false) => 1.0 + ta,
        (false, true) => 1.0 + tb,
        (false, false) => lo,
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
    // Round half to even without a libm call (x86-64 baseline has no rounding instruction):
    // once clamped to [-1, 256], adding and subtracting 2^52 rounds a non-negative value to an
    // integer, ties to even; a negative one stays <= 0 and saturates to 0 as before. NaN stays
    // NaN (and becomes 0 below, as `NaN as u8` does).
    const MAGIC: f64 = 4_503_599_627_370_496.0;
    let r = (v.clamp(-1.0, 256.0) + MAGIC) - MAGIC;
    if r <= 0.0 {
        0
    } else if r >= 255.0 {
        255
    } else {
        r as u8
    }
}

/// OpenCV's clamped gradient indices for extended index `k` in `1..=n`, returned as extended
/// indices: `km = k-1` (image) except 1 when `k == 1`; `kp = k-1` except `k-2` when `k == n`.
fn clamp_pair(k: usize, n: usize) -> (usize, usize) {
    let km = if k == 1 { 1 } else { k - 1 };
    let kp = if k == n { k.saturating_sub(2) } else { k - 1 };
    (km + 1, kp + 1)
}

impl Inpainter {
    /// Grid index of extended cell `(i, j)` (`(1, 1)` is the first image pixel).
    #[inline]
    fn idx(&self, i: usize, j: usize) -> usize {
        (i + PAD - 1) * self.cols + (j + PAD - 1)
    }

    fn resize(&mut self, h: usize, w: usize) {
        if self.h == h && self.w == w && !self.geom.is_empty() {
            return;
        }
        self.h = h;
        self.w = w;
        let cols = w + 2 * PAD;
        self.cols = cols;
        let n = (h + 2 * PAD) * cols;
        // Everything outside the image must start (and stays) FRAME / KNOWN / 0: reset fully,
        // since the previous size's image cells may now be padding.
        for (v, fill) in [
            (&mut self.u, FRAME),
            (&mut self.ring, KNOWN),
            (&mut self.rowdil, 0),
            (&mut self.near, 0),
        ] {
            v.clear();
            v.resize(n, fill);
        }
        self.t.resize(n, FAR);
        self.oe.resize(n, 0);
        self.px.resize(n, Px::default());
        let delta = |k: usize, n: usize, scale: isize| {
            if (1..=n).contains(&k) {
                let (km, kp) = clamp_pair(k, n);
                (
                    (km as isize - k as isize) * scale,
                    (kp as isize - km as isize) * scale,
                )
            } else {
                (0, 0)
            }
        };
        self.rdelta = (0..h + 2).map(|k| delta(k, h, cols as isize)).collect();
        self.cdelta = (0..w + 2).map(|l| delta(l, w, 1)).collect();
        for &(dk, dl) in &OFFSETS {
            let (dk, dl) = (isize::from(dk), isize::from(dl));
            let ry = -(dk as f32);
            let rx = -(dl as f32);
            let rl = rx * rx + ry * ry;
            let rl64 = f64::from(rl);
            self.offbits.0[((dk + 3) * 7 + dl + 3) as usize] = Offset {
                flat: dk * cols as isize + dl,
                rx,
                ry,
                rl,
                dst_telea: (1.0 / (rl64 * rl64.sqrt())) as f32,
                dst_ns: 1.0f32 / (rl * rl + 1.0),
            };
        }
        self.wpr = cols / 64 + 2;
        self.bits.clear();
        self.bits.resize((h + 2 * PAD) * self.wpr, 0);
        let wpr = self.wpr;
        self.cell_bit = (0..n).map(|c| (c / cols) * wpr * 64 + c % cols).collect();
        self.build_deps();
    }

    /// The grid cells whose value or state the gradient of `g` reads (both methods).
    fn gradient_reads(g: Geom, cols: usize) -> [usize; 12] {
        let (kl, base, lp, kp) = (
            g.cell as usize,
            g.base as usize,
            g.lp as usize,
            g.kp as usize,
        );
        [
            kl,
            kl + 1,
            kl - 1,
            kl + cols,
            kl - cols,
            base,
            lp,
            lp + 1,
            base - 1,
            kp,
            kp + cols,
            base - cols,
        ]
    }

    /// The gradient read positions of every pixel, and their inverse: for every grid cell, the
    /// pixels whose cached gradient must be recomputed when that cell is filled.
    fn build_deps(&mut self) {
        let (h, w) = (self.h, self.w);
        self.geom.clear();
        for k in 1..=h {
            for l in 1..=w {
                let kl = self.idx(k, l);
                let (rm, dr) = self.rdelta[k];
                let (cm, dc) = self.cdelta[l];
                let base = kl.wrapping_add_signed(rm + cm);
                self.geom.push(Geom {
                    cell: kl as u32,
                    base: base as u32,
                    lp: base.wrapping_add_signed(dc) as u32,
                    kp: base.wrapping_add_signed(dr) as u32,
                });
            }
        }
        // Counting sort into CSR form: count, prefix-sum, fill (pixels ascending per cell).
        let cols = self.cols;
        let distinct = |g: Geom| {
            let mut reads = Self::gradient_reads(g, cols);
            reads.sort_unstable();
            let mut last = usize::MAX;
            reads.map(|r| {
                let new = r != last;
                last = r;
                new.then_some(r)
            })
        };
        let n = self.u.len();
        self.dep_start.clear();
        self.dep_start.resize(n + 1, 0);
        for &g in &self.geom {
            for r in distinct(g).into_iter().flatten() {
                self.dep_start[r + 1] += 1;
            }
        }
        for c in 0..n {
            self.dep_start[c + 1] += self.dep_start[c];
        }
        let mut next: Vec<u32> = self.dep_start[..n].to_vec();
        self.deps.clear();
        self.deps.resize(self.dep_start[n] as usize, 0);
        for (p, &g) in self.geom.iter().enumerate() {
            for r in distinct(g).into_iter().flatten() {
                self.deps[next[r] as usize] = p as u32;
                next[r] += 1;
            }
        }
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
        let cols = self.cols;
        self.t.fill(FAR);
        for r in 0..h {
            let row = (r + PAD) * cols + PAD;
            for c in 0..w {
                self.u[row + c] = if fill[r * w + c] { INSIDE } else { KNOWN };
                self.oe[row + c] = i32::from(src[r * w + c]);
                self.px[row + c].v = f32::from(src[r * w + c]);
            }
        }
        // Known-pixel bits and the band (image cells not in the hole but 4-adjacent to it,
        // row-major), both without data-dependent branches: the fill map is typically random,
        // so branches on it mispredict about half the time.
        self.bits.fill(0);
        self.band.clear();
        self.band.resize(h * w, 0);
        let mut nband = 0;
        for i in 0..h {
            let row = (i + PAD) * cols + PAD;
            // The row's cells are consecutive bits from the first one's.
            let bit0 = self.cell_bit[row];
            let up = &self.u[row - cols..row - cols + w];
            let mid = &self.u[row - 1..row + w + 1];
            let down = &self.u[row + cols..row + cols + w];
            for (j, ((&a, &b), m)) in up.iter().zip(down).zip(mid.windows(3)).enumerate() {
                let known = m[1] != INSIDE;
                let bit = bit0 + j;
                self.bits[bit >> 6] |= u64::from(known) << (bit & 63);
                let next_to_hole =
                    (a == INSIDE) | (b == INSIDE) | (m[0] == INSIDE) | (m[2] == INSIDE);
                // Always written; kept only when it is a band cell (nband <= i * w + j).
                if let Some(slot) = self.band.get_mut(nband) {
                    *slot = row + j;
                }
                nband += usize::from(known & next_to_hole);
            }
        }
        self.band.truncate(nband);
        if self.band.is_empty() {
            return;
        }
        self.queue.clear();
        for &cell in &self.band {
            self.t[cell] = 0.0;
            self.queue.push(cell, 0.0);
        }
        self.mark_near();
        if method == InpaintMethod::Telea {
            self.outward_march();
        }
        self.inward_march(method);
        for r in 0..h {
            let row = (r + PAD) * cols + PAD;
            for (o, &v) in out[r * w..(r + 1) * w]
                .iter_mut()
                .zip(&self.oe[row..row + w])
            {
                *o = v as u8;
            }
        }
    }

    /// Mark in `near` the image cells within Chebyshev distance 3 of a hole cell (hole cells
    /// included): a separable 7x7 dilation with sliding counts. Cells outside the image are
    /// never INSIDE, and `rowdil` is only ever written on image cells (0 elsewhere), so the
    /// windows need no clamping: the PAD = 3 padding plays the role of the image border.
    fn mark_near(&mut self) {
        let (h, w) = (self.h, self.w);
        let cols = self.cols;
        let win = 2 * PAD + 1;
        let hole = |s: u8| u32::from(s == INSIDE);
        for i in 0..h {
            let row = (i + PAD) * cols;
            let u = &self.u[row..row + cols];
            let rowdil = &mut self.rowdil[row..row + cols];
            // Count of hole cells in padded columns j..j+6, the window centred on j+PAD.
            let mut cnt: u32 = u[..win - 1].iter().map(|&s| hole(s)).sum();
            for j in 0..w {
                cnt += hole(u[j + win - 1]);
                rowdil[j + PAD] = u8::from(cnt > 0);
                cnt -= hole(u[j]);
            }
        }
        let mut counts = std::mem::take(&mut self.colcount);
        counts.clear();
        counts.resize(cols, 0);
        for k in 0..win - 1 {
            let row = &self.rowdil[k * cols..(k + 1) * cols];
            for (c, &d) in counts.iter_mut().zip(row) {
                *c += u32::from(d);
            }
        }
        for i in 0..h {
            let (top, bottom) = (i * cols, (i + win - 1) * cols);
            for (j, c) in counts.iter_mut().enumerate() {
                *c += u32::from(self.rowdil[bottom + j]);
            }
            let row = (i + PAD) * cols + PAD;
            for (n, &c) in self.near[row..row + w]
                .iter_mut()
                .zip(&counts[PAD..PAD + w])
            {
                *n = u8::from(c > 0);
            }
            for (j, c) in counts.iter_mut().enumerate() {
                *c -= u32::from(self.rowdil[top + j]);
            }
        }
        self.colcount = counts;
    }

    /// Telea's outward distance field: negative arrival times on a 3-cell ring around the hole
    /// (the cells [`Inpainter::mark_near`] marked that are not in the hole).
    fn outward_march(&mut self) {
        let (h, w) = (self.h, self.w);
        let cols = self.cols;
        for i in 0..h {
            let row = (i + PAD) * cols + PAD;
            for ((r, &s), &n) in self.ring[row..row + w]
                .iter_mut()
                .zip(&self.u[row..row + w])
                .zip(&self.near[row..row + w])
            {
                *r = if s != INSIDE && n != 0 { INSIDE } else { KNOWN };
            }
        }
        let mut q2 = std::mem::take(&mut self.queue2);
        q2.clear();
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
        self.queue2 = q2;
        for (t, &s) in self.t.iter_mut().zip(&self.ring) {
            // Negate visited cells by flipping the sign bit (branch-free, vectorisable).
            *t = f32::from_bits(t.to_bits() ^ (u32::from(s == CHANGE) << 31));
        }
    }

    fn inward_march(&mut self, method: InpaintMethod) {
        let (h, w) = (self.h, self.w);
        let cols = self.cols;
        for i in 1..=h {
            let row = self.idx(i, 1);
            for c in row..row + w {
                self.px[c].aux = self.t[c];
            }
        }
        // Only cells near the hole are ever read by a value sum (every read is within radius
        // 3 of a hole cell). A hole cell's cached gradient is never read before the cell is
        // filled, and filling it recomputes it, so no test on the state is needed.
        for p in 0..self.geom.len() {
            let g = self.geom[p];
            if self.near[g.cell as usize] != 0 {
                self.set_gradient(method, g);
            }
        }
        while let Some(cell) = self.queue.pop() {
            self.u[cell] = KNOWN;
            for nb in [cell - cols, cell - 1, cell + cols, cell + 1] {
                // Frame and padding cells are never INSIDE.
                if self.u[nb] != INSIDE {
                    continue;
                }
                let d = dist(nb, cols, &self.u, &self.t);
                self.t[nb] = d;
                if method == InpaintMethod::Telea {
                    self.px[nb].aux = d;
                }
                let v = match method {
                    InpaintMethod::Telea => self.telea_value(nb),
                    InpaintMethod::Ns => self.ns_value(nb),
                };
                self.oe[nb] = i32::from(v);
                self.px[nb].v = f32::from(v);
                self.u[nb] = BAND;
                self.set_bit(nb);
                self.refresh_gradients(method, nb);
                self.queue.push(nb, d);
            }
        }
    }

    /// Recompute the cached gradients that read grid cell `c` (its value or known state) after
    /// it was filled. Cells still unknown are skipped: their gradient is computed when they are
    /// filled.
    fn refresh_gradients(&mut self, method: InpaintMethod, c: usize) {
        let (lo, hi) = (self.dep_start[c] as usize, self.dep_start[c + 1] as usize);
        for q in lo..hi {
            let g = self.geom[self.deps[q] as usize];
            self.set_gradient(method, g);
        }
    }

    /// Cache the image gradient of the image cell `g.cell` exactly as OpenCV's value formulas
    /// compute it for a neighbour, from the current image and known states, with OpenCV's
    /// clamped reads on the first/last row and column.
    #[inline]
    fn set_gradient(&mut self, method: InpaintMethod, g: Geom) {
        let cols = self.cols;
        let (kl, base, lp, kp) = (
            g.cell as usize,
            g.base as usize,
            g.lp as usize,
            g.kp as usize,
        );
        // Every index below is an image cell or a 4-neighbour of one (`base`, `lp`, `kp` are
        // image cells by construction in `build_deps`), so inside the padded grid, whose
        // arrays all have `(h + 2*PAD) * cols` entries.
        debug_assert!(kl.max(kp).max(lp) + cols < self.u.len() && kl.min(base) >= cols);
        debug_assert!(self.oe.len() == self.u.len() && self.px.len() == self.u.len());
        // SAFETY: in range by the invariant above.
        let known = |cell: usize| i32::from(unsafe { *self.u.get_unchecked(cell) } != INSIDE);
        // SAFETY: in range by the invariant above.
        let v = |cell: usize| unsafe { *self.oe.get_unchecked(cell) };
        // OpenCV picks one of four formulas by which neighbours are known; the 0/1 flags select
        // it arithmetically (no data-dependent branches; all terms are small integers).
        let (kr, kw) = (known(kl + 1), known(kl - 1));
        let (kd, ku) = (known(kl + cols), known(kl - cols));
        let mid = v(base);
        let (gx, gy) = match method {
            InpaintMethod::Telea => {
                // both: (a - b) * 2; right only: a - mid; left only: oe[lp] - b; none: 0.
                let (a, b) = (v(lp + 1), v(base - 1));
                let gix = kr * (1 + kw) * a - kw * (1 + kr) * b - kr * (1 - kw) * mid
                    + kw * (1 - kr) * v(lp);
                let (a, b) = (v(kp + cols), v(base - cols));
                let giy = kd * (1 + ku) * a - ku * (1 + kd) * b - kd * (1 - ku) * mid
                    + ku * (1 - kd) * v(kp);
                (gix as f32, giy as f32)
            }
            InpaintMethod::Ns => {
                // Vertical variation (OpenCV's "gx", negated as OpenCV does): both known:
                // lo + hi; only below: 2 lo; only above: 2 hi; none: 0.
                let lo = (v(kp + cols) - v(kp)).abs();
                let hi = (v(kp) - v(base - cols)).abs();
                let gx = -((kd * (2 - ku) * lo + ku * (2 - kd) * hi) as f32);
                // Horizontal variation ("gy"), the same pattern along the row.
                let right = (v(lp + 1) - mid).abs();
                let left = (mid - v(base - 1)).abs();
                let gy = (kr * (2 - kw) * right + kw * (2 - kr) * left) as f32;
                (gx, gy)
            }
        };
        // SAFETY: `kl` is in range by the invariant above.
        let px = unsafe { self.px.get_unchecked_mut(kl) };
        px.gx = gx;
        px.gy = gy;
        if method == InpaintMethod::Ns {
            px.aux = gx * gx + gy * gy;
        }
    }

    /// Mark grid cell `c` (an image cell) as counting in the value sums.
    #[inline]
    fn set_bit(&mut self, c: usize) {
        let bit = self.cell_bit[c];
        self.bits[bit >> 6] |= 1 << (bit & 63);
    }

    /// The radius-3 neighbours of image cell `c` that count in the value sums (image pixels not
    /// INSIDE), as a mask over bits `(dk + 3) * 7 + (dl + 3)`: ascending bit order is OpenCV's
    /// accumulation order (rows outer, columns inner). Frame and padding cells never count.
    #[inline]
    fn known_mask(&self, c: usize) -> u64 {
        // The bit of the window's top-left corner `(r - 3, j - 3)`; an image cell is at least
        // PAD = 3 from the grid's edges.
        let corner = self.cell_bit[c] - (PAD * self.wpr * 64 + PAD);
        let (word, shift) = (corner >> 6, (corner & 63) as u32);
        let mut m = 0u64;
        for dr in 0..7 {
            let i = word + dr * self.wpr;
            let pair = u128::from(self.bits[i]) | (u128::from(self.bits[i + 1]) << 64);
            m |= (((pair >> shift) as u64) & 0x7F) << (7 * dr);
        }
        m & DISK
    }

    fn telea_value(&self, c: usize) -> u8 {
        let cols = self.cols;
        let (u, t, pxs) = (&self.u, &self.t, &self.px);
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
        let mut mask = self.known_mask(c);
        let (mut ia, mut jx, mut jy, mut s) = (0.0f32, 0.0f32, 0.0f32, 1.0e-20f32);
        while mask != 0 {
            let off = &self.offbits.0[mask.trailing_zeros() as usize & 63];
            mask &= mask - 1;
            // SAFETY: `c` is an image cell (row and column at least PAD = 3 from the grid's
            // edges) and the offset moves at most 3 rows and columns, so the index is inside
            // the grid.
            let px = unsafe { *pxs.get_unchecked(c.wrapping_add_signed(off.flat)) };
            let lev = (1.0 / (1.0 + f64::from((px.aux - tij).abs()))) as f32;
            // OpenCV: `dir` is replaced by 1e-6 when `|dir| <= 0.01` (compared in f64), then
            // `wgt = |dst * lev * dir|`. `0.01f32` is the largest f32 not above 0.01, so the
            // test is exact in f32; and as `dst` and `lev` are positive and rounding is
            // symmetric in sign, `dst * lev * |dir|` is that absolute value bit for bit.
            let adir = (off.rx * gtx + off.ry * gty).abs();
            let adir = if adir <= 0.01f32 { 1.0e-6 } else { adir };
            let wgt = off.dst_telea * lev * adir;
            ia += wgt * px.v;
            jx -= wgt * (px.gx * off.rx);
            jy -= wgt * (px.gy * off.ry);
            s += wgt;
        }
        let nrm = (jx * jx + jy * jy).sqrt();
        let sat = ia / s + (jx + jy) / (nrm + 1.0e-20);
        sat_u8(f64::from(sat) + 0.5)
    }

    fn ns_value(&self, c: usize) -> u8 {
        let pxs = &self.px;
        let mut mask = self.known_mask(c);
        let (mut ia, mut s) = (0.0f32, 1.0e-20f32);
        while mask != 0 {
            let off = &self.offbits.0[mask.trailing_zeros() as usize & 63];
            mask &= mask - 1;
            // SAFETY: `c` is an image cell (row and column at least PAD = 3 from the grid's
            // edges) and the offset moves at most 3 rows and columns, so the index is inside
            // the grid.
            let px = unsafe { *pxs.get_unchecked(c.wrapping_add_signed(off.flat)) };
            // OpenCV computes this cosine in f32 (`float` sqrt and division; the product is an
            // exact integer below 2^24). Its `|dot| <= 0.01` test is in f64, but `dot` is an
            // integer, so comparing with `0.01f32` (just below 0.01) is the same test.
            let dot = off.rx * px.gx + off.ry * px.gy;
            let cos = (dot / (off.rl * px.aux).sqrt()).abs();
            let dir = if dot.abs() <= 0.01f32 { 1.0e-6f32 } else { cos };
            let wgt = off.dst_ns * dir;
            ia += wgt * px.v;
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

thread_local! {
    /// Scratch reused by [`inpaint_u8_channels`] on each thread (its per-size tables are
    /// rebuilt only when the image size changes).
    static INPAINTER: std::cell::RefCell<Inpainter> = std::cell::RefCell::new(Inpainter::default());
}

/// Validate a shape for inpainting: non-empty, the padded grid (`H+6` by `W+6`) under 2^31
/// cells (the queue's 32-bit counters and cell ids), and at least 2x2 pixels. Returns `H*W*C`.
pub(crate) fn check_inpaint_shape(shape: ImageShape) -> Result<usize, MaskError> {
    let grid = shape
        .height
        .checked_add(2 * PAD)
        .zip(shape.width.checked_add(2 * PAD))
        .and_then(|(a, b)| a.checked_mul(b));
    let m = shape
        .height
        .checked_mul(shape.width)
        .and_then(|p| p.checked_mul(shape.channels))
        .filter(|&m| m > 0 && grid.is_some_and(|n| n < (1 << 31)))
        .ok_or(MaskError::EmptyImage { shape })?;
    if shape.height < 2 || shape.width < 2 {
        return Err(MaskError::ImageTooSmall { shape });
    }
    Ok(m)
}

/// `cv2.inpaint(src, fill, 3, method)` on a single-channel u8 image of `height x width`
/// (row-major), pixel-identical to OpenCV 5.0 (the version tested).
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
    INPAINTER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut inpainter) => inpainter.inpaint_interleaved(src, fill, shape, method, &mut out),
        // Only reachable through re-entrancy; fall back to fresh scratch.
        Err(_) => Inpainter::default().inpaint_interleaved(src, fill, shape, method, &mut out),
    });
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
    fn sat_u8_rounds_half_to_even_and_saturates() {
        let reference = |v: f64| {
            let r = v.round_ties_even();
            if r.is_nan() || r <= 0.0 {
                0
            } else if r >= 255.0 {
                255
            } else {
                r as u8
            }
        };
        let mut vals = vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1e300,
            -1e300,
        ];
        for k in -2000..=2800 {
            let x = f64::from(k) * 0.125;
            vals.extend([x, x + 1e-9, x - 1e-9, f64::from(k) + 0.5]);
        }
        for v in vals {
            assert_eq!(sat_u8(v), reference(v), "{v}");
        }
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

    #[test]
    fn reused_scratch_matches_fresh_across_sizes() {
        // One Inpainter serving several sizes in turn (as the per-thread masker scratch does)
        // must give what a fresh one gives.
        let mut shared = Inpainter::default();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for &(h, w) in &[(12, 9), (5, 7), (12, 9), (3, 16), (9, 4), (5, 7)] {
            let src: Vec<u8> = (0..h * w).map(|_| (next() % 256) as u8).collect();
            let fill: Vec<bool> = (0..h * w).map(|_| next() % 3 == 0).collect();
            for method in [InpaintMethod::Telea, InpaintMethod::Ns] {
                let mut a = vec![0u8; h * w];
                let mut b = vec![0u8; h * w];
                shared.inpaint_plane(&src, &fill, h, w, method, &mut a);
                Inpainter::default().inpaint_plane(&src, &fill, h, w, method, &mut b);
                assert_eq!(a, b, "{h}x{w} {method:?}");
            }
        }
    }
}
