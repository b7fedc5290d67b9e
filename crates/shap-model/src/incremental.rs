//! Incremental CPU evaluation of the CNN for explanations.
//!
//! The masked images of one explanation differ from each other only in a few blocks. A
//! convolution output at a position depends only on the 3x3 input window around it, so after
//! a change of the input pixels `D`, the first convolution changes only on `D` dilated by one
//! pixel and the second only on `D` dilated by two; the dense layer is a sum of per-position
//! contributions. [`IncrementalCnn`] keeps the activations of recently evaluated masked images
//! of each explained image (up to 48 per image, for up to 8 images), starts every new image
//! from the one needing the least work (among the few closest by mask, the fewest positions
//! to recompute, since a masker such as inpainting may change pixels outside the mask
//! difference), and recomputes only the positions that can differ. Unchanged rows of
//! activations are shared between kept states, not copied.
//!
//! A second-layer position depends only on the 5x5 window of input pixels around it, and the
//! masked images of one explanation (or of a metric's removals) keep producing the same few
//! windows at each position: a window fully inside a blurred block, a cell removed or not.
//! Most maskers replace each masked pixel by a value of its own that does not depend on the
//! mask (a blurred image, a constant). Each explained image therefore records the first value
//! seen at each masked pixel (its *background*, never changed afterwards), and a window whose
//! pixels are all the original's where kept and the background's where masked is named
//! exactly by its 25 mask bits. Per position the results of the most used such windows are
//! kept ([`WindowCache`]), and a position found there is copied, not computed: the copy is
//! what the kernels would compute from that window. Windows with any other pixel (an inpainted
//! one, say) are computed as before.
//!
//! Results are bit-identical to evaluating from scratch: every position is computed by the
//! same code from the same window whichever reference it starts from, and the dense layer
//! adds the per-position contributions in a fixed order. So outputs never depend on the
//! evaluation history, the batch, or the thread count. They can differ from [`crate::ModelFn`]
//! (which multiplies through `gemm`) by float rounding only (about 1e-7 relative).
//!
//! On x86-64 with AVX2 and FMA (detected at run time) the kernels are explicit 8-lane fused
//! multiply-adds; elsewhere plain Rust. One instance always uses the same kernels.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use shap_explain::{BatchModel, ImageShape, MaskedBatch, ModelError};

use crate::Error;
use crate::adapter::check_batch;
use crate::model::{
    CLASSES, CONV1_OUT, CONV2_OUT, Cnn, CpuWeights, HEIGHT, Head, PIXELS, Params, WIDTH,
    softmax_row,
};

const C1: usize = CONV1_OUT;
const C2: usize = CONV2_OUT;
/// Classes padded to a whole number of 8-lane vectors.
const LANES: usize = 16;
/// u64 words of a packed 784-bit mask.
const MASK_WORDS: usize = PIXELS.div_ceil(64);
/// Reference states kept per explained image.
const STATES_PER_IMAGE: usize = 48;
/// Explained images whose states are kept at once.
const SESSIONS: usize = 8;
/// Candidates (closest by mask) whose exact work is compared.
const SHORTLIST: usize = 4;
/// Windows remembered per position and explained image.
const SLOTS: usize = 16;

/// The weights rearranged for per-position kernels.
struct Weights {
    /// `[tap][c1]`.
    w1: [[f32; C1]; 9],
    b1: [f32; C1],
    /// `[tap][c1][c2]`.
    w2: Vec<[[f32; C2]; C1]>,
    b2: [f32; C2],
    /// `[pos * C2 + c2][class]`, classes zero-padded to `LANES`.
    w3: Vec<[f32; LANES]>,
    b3: [f32; CLASSES],
}

impl Weights {
    /// `w` comes from a [`Cnn`], whose tensors have the shapes of [`crate::TENSORS`].
    fn new(w: &CpuWeights) -> Result<Self, Error> {
        let Params {
            conv1_weight: w1,
            conv1_bias: b1,
            conv2_weight: w2,
            conv2_bias: b2,
            fc_weight: w3,
            fc_bias: b3,
        } = &w.params;
        let mut out = Self {
            w1: [[0.0; C1]; 9],
            b1: [0.0; C1],
            w2: vec![[[0.0; C2]; C1]; 9],
            b2: [0.0; C2],
            w3: vec![[0.0; LANES]; PIXELS * C2],
            b3: [0.0; CLASSES],
        };
        for c in 0..C1 {
            for tap in 0..9 {
                out.w1[tap][c] = w1[c * 9 + tap];
            }
            out.b1[c] = b1[c];
        }
        for co in 0..C2 {
            for ci in 0..C1 {
                for tap in 0..9 {
                    out.w2[tap][ci][co] = w2[(co * C1 + ci) * 9 + tap];
                }
            }
            out.b2[co] = b2[co];
        }
        for class in 0..CLASSES {
            for co in 0..C2 {
                for pos in 0..PIXELS {
                    out.w3[pos * C2 + co][class] = w3[(class * C2 + co) * PIXELS + pos];
                }
            }
            out.b3[class] = b3[class];
        }
        Ok(out)
    }
}

/// First-layer activations, row by row: rows are shared (copy on write) between states.
type A1 = [Arc<[[f32; C1]; WIDTH]>; HEIGHT];
/// Per-position logit contributions, row by row, shared likewise.
type Part = [Arc<[[f32; LANES]; WIDTH]>; HEIGHT];

/// One evaluated image: its input, first-layer activations and dense-layer contributions.
struct State {
    x: Vec<f32>,
    /// `[y][x][c1]`, rows shared between states until one changes them.
    a1: A1,
    /// `[y][x][class]`: each position's share of the logits (before the bias), rows shared.
    part: Part,
    /// The mask that produced `x`, packed (bit set = kept); all ones when unknown.
    keep: [u64; MASK_WORDS],
    /// When this state was last used as a reference (for eviction).
    used: AtomicU64,
}

impl State {
    /// A copy of this state's activations, to be updated into the state of an image whose
    /// changes reach the positions `(d1, d2)` (see [`reach`]). The rows that will change are
    /// copied, the others shared: sharing a row that is then changed would touch its reference
    /// count twice, and other threads starting from the same state use the same counts.
    fn start(&self, (d1, d2): &Reach) -> Self {
        Self {
            x: self.x.clone(),
            a1: std::array::from_fn(|y| own_if(d1[y] != 0, &self.a1[y])),
            part: std::array::from_fn(|y| own_if(d2[y] != 0, &self.part[y])),
            keep: self.keep,
            used: AtomicU64::new(0),
        }
    }

    fn empty() -> Self {
        Self {
            x: vec![0.0; PIXELS],
            a1: std::array::from_fn(|_| Arc::new([[0.0; C1]; WIDTH])),
            part: std::array::from_fn(|_| Arc::new([[0.0; LANES]; WIDTH])),
            keep: [u64::MAX; MASK_WORDS],
            used: AtomicU64::new(0),
        }
    }
}

/// A row of activations of a new state: a copy of `row` when it will change, else shared.
fn own_if<T: Copy>(change: bool, row: &Arc<T>) -> Arc<T> {
    if !change {
        return Arc::clone(row);
    }
    // Written in place: `Arc::new(**row)` would copy the row twice, through the stack.
    let mut copy = Arc::<T>::new_uninit();
    match Arc::get_mut(&mut copy) {
        Some(slot) => {
            slot.write(**row);
            // SAFETY: the value was written just above.
            unsafe { copy.assume_init() }
        }
        // A new `Arc` is never shared; this branch only keeps the code free of panics.
        None => Arc::new(**row),
    }
}

/// Rows of 28 bits: a set of positions.
type Rows = [u32; HEIGHT];
const ROW_MASK: u32 = (1 << WIDTH) - 1;

/// `rows` dilated by a 3x3 square, clipped to the image.
fn dilate(rows: &Rows) -> Rows {
    let h: Rows = std::array::from_fn(|y| (rows[y] | (rows[y] << 1) | (rows[y] >> 1)) & ROW_MASK);
    std::array::from_fn(|y| {
        let up = if y > 0 { h[y - 1] } else { 0 };
        let down = h.get(y + 1).copied().unwrap_or(0);
        h[y] | up | down
    })
}

/// The mask bits of the 5x5 window around `(y, x)` (bit `5 * ky + kx`; outside the image
/// 0), or `None` when a pixel of the window is neither the original's nor the background's.
fn pattern(kept: &Rows, odd: &Rows, y: usize, x: usize) -> Option<u32> {
    let mut key = 0u32;
    for k in 0..5 {
        let Some(r) = (y + k).checked_sub(2).filter(|&r| r < HEIGHT) else {
            continue;
        };
        // Columns x - 2 ..= x + 2, shifted so that x - 2 < 0 reads zeros.
        let take = |row: u32| ((u64::from(row) << 2) >> x) as u32 & 0b11111;
        if take(odd[r]) != 0 {
            return None;
        }
        key |= take(kept[r]) << (5 * k);
    }
    Some(key)
}

/// Remembered windows of one row of positions, in flat arrays (a lookup reads the line of a
/// position's keys, then the line of the result it finds).
struct RowTable {
    len: [u8; WIDTH],
    keys: [[u32; SLOTS]; WIDTH],
    hits: [[u32; SLOTS]; WIDTH],
    parts: [[[f32; LANES]; SLOTS]; WIDTH],
}

/// Lookups of a row after which it stops looking when few are found (windows that rarely
/// repeat, as with scattered removals in random orders, would only cost time).
const TRIAL_LOOKUPS: u32 = 2048;

/// Remembered windows of one row of positions (allocated when the row is first used), and how
/// often looking has paid.
#[derive(Default)]
struct RowCache {
    table: Option<Box<RowTable>>,
    looked: u32,
    found: u32,
}

impl RowCache {
    /// Whether this row still looks windows up: always during its trial, then only if at
    /// least one lookup in eight found its window.
    fn looking(&self) -> bool {
        self.looked < TRIAL_LOOKUPS || self.found >= self.looked / 8
    }

    fn get(&mut self, x: usize, key: u32) -> Option<[f32; LANES]> {
        self.looked = self.looked.saturating_add(1);
        let t = self.table.as_mut()?;
        let i = t.keys[x][..usize::from(t.len[x])]
            .iter()
            .position(|&k| k == key)?;
        t.hits[x][i] = t.hits[x][i].saturating_add(1);
        self.found = self.found.saturating_add(1);
        Some(t.parts[x][i])
    }

    /// Remember `part` for the window `key`; a full position forgets its least used window.
    fn put(&mut self, x: usize, key: u32, part: [f32; LANES]) {
        let t = self.table.get_or_insert_with(|| {
            Box::new(RowTable {
                len: [0; WIDTH],
                keys: [[0; SLOTS]; WIDTH],
                hits: [[0; SLOTS]; WIDTH],
                parts: [[[0.0; LANES]; SLOTS]; WIDTH],
            })
        });
        let len = usize::from(t.len[x]);
        if t.keys[x][..len].contains(&key) {
            return;
        }
        let i = if len < SLOTS {
            t.len[x] += 1;
            len
        } else {
            (0..SLOTS).min_by_key(|&i| t.hits[x][i]).unwrap_or(0)
        };
        (t.keys[x][i], t.hits[x][i], t.parts[x][i]) = (key, 0, part);
    }
}

/// An explained image's background (the first value seen at each masked pixel, set once) and,
/// per position, the results of the windows seen most often. Each row has its own lock, so
/// threads evaluating the same image rarely wait for each other. What it holds never changes a
/// result, only whether it is computed or copied.
struct WindowCache {
    /// Per pixel: 0 while unset, else `1 << 32 | bits`.
    background: Vec<AtomicU64>,
    rows: Vec<Mutex<RowCache>>,
}

impl WindowCache {
    fn new() -> Self {
        Self {
            background: (0..PIXELS).map(|_| AtomicU64::new(0)).collect(),
            rows: (0..HEIGHT).map(|_| Mutex::default()).collect(),
        }
    }

    fn row(&self, y: usize) -> std::sync::MutexGuard<'_, RowCache> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.rows[y]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept pixels of a masked image and those that are neither the original's (where
    /// kept) nor the background's (where masked), setting the background where it is unset.
    fn classify(&self, original: &[f32], keeps: &[bool], img: &[f32]) -> (Rows, Rows) {
        let (mut kept, mut odd): (Rows, Rows) = ([0; HEIGHT], [0; HEIGHT]);
        for (p, ((&o, &k), &v)) in original.iter().zip(keeps).zip(img).enumerate() {
            let (y, x) = (p / WIDTH, p % WIDTH);
            let fits = if k {
                o.to_bits() == v.to_bits()
            } else {
                let mine = 1 << 32 | u64::from(v.to_bits());
                let bg = &self.background[p];
                match bg.load(Ordering::Relaxed) {
                    0 => match bg.compare_exchange(0, mine, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => true,
                        Err(set) => set == mine,
                    },
                    set => set == mine,
                }
            };
            kept[y] |= u32::from(k) << x;
            odd[y] |= u32::from(!fits) << x;
        }
        (kept, odd)
    }
}

/// A masked image's view of its explained image's [`WindowCache`].
struct Lookup<'a> {
    cache: &'a WindowCache,
    kept: Rows,
    odd: Rows,
}

/// Per-position kernels. Each computes one position from its input window alone, always in
/// the same order, which is what makes incremental and full evaluation agree bit for bit.
trait PosKernel {
    /// First convolution + ReLU at `(y, x)` of image `img`.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    unsafe fn conv1(w: &Weights, img: &[f32], y: usize, x: usize) -> [f32; C1];

    /// Second convolution + ReLU at `(y, x)`, times the dense weights of that position.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    unsafe fn conv2(w: &Weights, a1: &A1, y: usize, x: usize) -> [f32; LANES];

    /// [`PosKernel::conv2`] at `(y, x)` and `(y, x + 1)` (`x + 1 < WIDTH`), bit-identical.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    unsafe fn conv2_pair(w: &Weights, a1: &A1, y: usize, x: usize) -> [[f32; LANES]; 2] {
        // SAFETY: forwarded from the caller.
        unsafe { [Self::conv2(w, a1, y, x), Self::conv2(w, a1, y, x + 1)] }
    }
}

/// The in-image rows `iy` of a 3x3 window centred on row `y` (columns likewise), with the
/// kernel row `ky` they meet.
#[inline(always)]
fn taps(y: usize, n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..3).filter_map(move |k| Some((k, (y + k).checked_sub(1).filter(|&v| v < n)?)))
}

/// Plain Rust kernels (any CPU).
struct Portable;

impl PosKernel for Portable {
    unsafe fn conv1(w: &Weights, img: &[f32], y: usize, x: usize) -> [f32; C1] {
        let mut acc = w.b1;
        for (ky, iy) in taps(y, HEIGHT) {
            for (kx, ix) in taps(x, WIDTH) {
                let v = img[iy * WIDTH + ix];
                for (a, wt) in acc.iter_mut().zip(&w.w1[ky * 3 + kx]) {
                    *a += v * wt;
                }
            }
        }
        acc.map(|v| v.max(0.0))
    }

    unsafe fn conv2(w: &Weights, a1: &A1, y: usize, x: usize) -> [f32; LANES] {
        let mut acc = w.b2;
        for (ky, iy) in taps(y, HEIGHT) {
            for (kx, ix) in taps(x, WIDTH) {
                for (&v, wt) in a1[iy][ix].iter().zip(&w.w2[ky * 3 + kx]) {
                    for (a, wt) in acc.iter_mut().zip(wt) {
                        *a += v * wt;
                    }
                }
            }
        }
        let pos = y * WIDTH + x;
        let mut part = [0.0f32; LANES];
        for (&v, wt) in acc.iter().zip(&w.w3[pos * C2..(pos + 1) * C2]) {
            let v = v.max(0.0);
            for (p, wt) in part.iter_mut().zip(wt) {
                *p += v * wt;
            }
        }
        part
    }
}

/// AVX2 + FMA kernels. The second convolution runs two neighbouring positions at once where it
/// can (each weight load feeds both: eight independent accumulator chains), with per position
/// the same accumulators (input channels modulo 2, times two 8-lane halves) in the same order.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{A1, C1, C2, HEIGHT, LANES, PosKernel, WIDTH, Weights, taps};
    use std::arch::x86_64::*;

    pub(super) struct Avx2Fma;

    impl PosKernel for Avx2Fma {
        #[inline(always)]
        unsafe fn conv1(w: &Weights, img: &[f32], y: usize, x: usize) -> [f32; C1] {
            // SAFETY: the caller guarantees AVX2 and FMA.
            unsafe { conv1(w, img, y, x) }
        }

        #[inline(always)]
        unsafe fn conv2(w: &Weights, a1: &A1, y: usize, x: usize) -> [f32; LANES] {
            // SAFETY: the caller guarantees AVX2 and FMA.
            unsafe { conv2(w, a1, y, x) }
        }

        #[inline(always)]
        unsafe fn conv2_pair(w: &Weights, a1: &A1, y: usize, x: usize) -> [[f32; LANES]; 2] {
            // SAFETY: the caller guarantees AVX2 and FMA.
            unsafe { conv2_pair(w, a1, y, x) }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn load8(v: &[f32], at: usize) -> __m256 {
        let s = &v[at..at + 8];
        // SAFETY: `s` holds exactly 8 floats; the load is unaligned.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn store8(v: &mut [f32], at: usize, x: __m256) {
        let s = &mut v[at..at + 8];
        // SAFETY: `s` holds exactly 8 floats; the store is unaligned.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), x) }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn conv1(w: &Weights, img: &[f32], y: usize, x: usize) -> [f32; C1] {
        let mut acc: [__m256; 4] = std::array::from_fn(|i| load8(&w.b1, 8 * i));
        for (ky, iy) in taps(y, HEIGHT) {
            for (kx, ix) in taps(x, WIDTH) {
                let v = _mm256_set1_ps(img[iy * WIDTH + ix]);
                let wt = &w.w1[ky * 3 + kx];
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(v, load8(wt, 8 * i), *a);
                }
            }
        }
        let mut out = [0.0f32; C1];
        let zero = _mm256_setzero_ps();
        for (i, a) in acc.iter().enumerate() {
            store8(&mut out, 8 * i, _mm256_max_ps(*a, zero));
        }
        out
    }

    /// The accumulators of one position: input channels modulo 2, times two 8-lane halves.
    type Acc = [__m256; 4];

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn tap(acc: &mut Acc, a: &[f32; C1], t: &[[f32; C2]; C1]) {
        for c2 in 0..C1 / 2 {
            for j in 0..2 {
                let ci = c2 * 2 + j;
                let v = _mm256_set1_ps(a[ci]);
                acc[2 * j] = _mm256_fmadd_ps(v, load8(&t[ci], 0), acc[2 * j]);
                acc[2 * j + 1] = _mm256_fmadd_ps(v, load8(&t[ci], 8), acc[2 * j + 1]);
            }
        }
    }

    /// [`tap`] for two positions at once, sharing the weight loads (the same arithmetic per
    /// position, in the same order).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn tap2(acc: &mut [Acc; 2], a: [&[f32; C1]; 2], t: &[[f32; C2]; C1]) {
        for c2 in 0..C1 / 2 {
            for j in 0..2 {
                let ci = c2 * 2 + j;
                let (lo, hi) = (load8(&t[ci], 0), load8(&t[ci], 8));
                for (acc, a) in acc.iter_mut().zip(a) {
                    let v = _mm256_set1_ps(a[ci]);
                    acc[2 * j] = _mm256_fmadd_ps(v, lo, acc[2 * j]);
                    acc[2 * j + 1] = _mm256_fmadd_ps(v, hi, acc[2 * j + 1]);
                }
            }
        }
    }

    /// Bias, ReLU and the dense weights of position `pos`, from its accumulators.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn finish(w: &Weights, acc: &Acc, pos: usize) -> [f32; LANES] {
        let zero = _mm256_setzero_ps();
        let mut h = [0.0f32; C2];
        for half in 0..2 {
            let s = _mm256_add_ps(acc[half], acc[2 + half]);
            let s = _mm256_add_ps(s, load8(&w.b2, 8 * half));
            store8(&mut h, 8 * half, _mm256_max_ps(s, zero));
        }
        let w3 = &w.w3[pos * C2..(pos + 1) * C2];
        let mut p = [zero; 4];
        for (co, (&v, wt)) in h.iter().zip(w3).enumerate() {
            let v = _mm256_set1_ps(v);
            let k = 2 * (co % 2);
            p[k] = _mm256_fmadd_ps(v, load8(wt, 0), p[k]);
            p[k + 1] = _mm256_fmadd_ps(v, load8(wt, 8), p[k + 1]);
        }
        let mut out = [0.0f32; LANES];
        store8(&mut out, 0, _mm256_add_ps(p[0], p[2]));
        store8(&mut out, 8, _mm256_add_ps(p[1], p[3]));
        out
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn conv2(w: &Weights, a1: &A1, y: usize, x: usize) -> [f32; LANES] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (ky, iy) in taps(y, HEIGHT) {
            for (kx, ix) in taps(x, WIDTH) {
                tap(&mut acc, &a1[iy][ix], &w.w2[ky * 3 + kx]);
            }
        }
        finish(w, &acc, y * WIDTH + x)
    }

    /// [`conv2`] at `(y, x)` and `(y, x + 1)`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn conv2_pair(w: &Weights, a1: &A1, y: usize, x: usize) -> [[f32; LANES]; 2] {
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        for (ky, iy) in taps(y, HEIGHT) {
            let row = &a1[iy][..];
            for kx in 0..3 {
                let t = &w.w2[ky * 3 + kx];
                // Column of the tap for each position, when inside the image.
                let c0 = (x + kx).checked_sub(1).filter(|&v| v < WIDTH);
                let c1 = Some(x + kx).filter(|&v| v < WIDTH);
                match (c0, c1) {
                    (Some(c0), Some(c1)) => tap2(&mut acc, [&row[c0], &row[c1]], t),
                    (Some(c0), None) => tap(&mut acc[0], &row[c0], t),
                    (None, Some(c1)) => tap(&mut acc[1], &row[c1], t),
                    (None, None) => {}
                }
            }
        }
        let pos = y * WIDTH + x;
        [finish(w, &acc[0], pos), finish(w, &acc[1], pos + 1)]
    }

    /// [`super::update`] compiled with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn update(
        w: &Weights,
        reach: &super::Reach,
        look: Option<&super::Lookup<'_>>,
        img: &[f32],
        s: &mut super::State,
    ) -> super::Work {
        // SAFETY: this function's target features are the kernels' requirement.
        unsafe { super::update::<Avx2Fma>(w, reach, look, img, s) }
    }
}

/// The pixels where `a` and `b` differ (bitwise).
fn changed(a: &[f32], b: &[f32]) -> Rows {
    let mut d0: Rows = [0; HEIGHT];
    for (row, (a, b)) in d0
        .iter_mut()
        .zip(a.chunks_exact(WIDTH).zip(b.chunks_exact(WIDTH)))
    {
        for (x, (p, q)) in a.iter().zip(b).enumerate() {
            *row |= u32::from(p.to_bits() != q.to_bits()) << x;
        }
    }
    d0
}

/// The first- and second-layer positions that a change of the input reaches.
type Reach = (Rows, Rows);

/// The [`Reach`] of changing the pixels `d0` (everything for `None`).
fn reach(changes: Option<&Rows>) -> Reach {
    match changes {
        Some(d0) => {
            let d1 = dilate(d0);
            (d1, dilate(&d1))
        }
        None => ([ROW_MASK; HEIGHT], [ROW_MASK; HEIGHT]),
    }
}

/// Second-layer positions to recompute after changing the pixels `d0`.
fn cost(d0: &Rows) -> u32 {
    dilate(&dilate(d0)).iter().map(|r| r.count_ones()).sum()
}

/// Make `s` the state of image `img`, and return how many second-layer positions were
/// computed and how many copied from the window cache. Only the positions in `(d1, d2)` are
/// recomputed: the [`reach`] of the pixels where `img` differs from the image `s` holds, or
/// everything.
///
/// # Safety
/// The CPU must have `K`'s target features.
#[inline(always)]
unsafe fn update<K: PosKernel>(
    w: &Weights,
    (d1, d2): &Reach,
    look: Option<&Lookup<'_>>,
    img: &[f32],
    s: &mut State,
) -> Work {
    s.x.copy_from_slice(img);
    for (y, &row) in d1.iter().enumerate() {
        let mut bits = row;
        if bits == 0 {
            continue;
        }
        let out = Arc::make_mut(&mut s.a1[y]);
        while bits != 0 {
            let x = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // SAFETY: forwarded from the caller.
            out[x] = unsafe { K::conv1(w, img, y, x) };
        }
    }
    let mut work = Work::default();
    for (y, &row) in d2.iter().enumerate() {
        if row == 0 {
            continue;
        }
        let part = Arc::make_mut(&mut s.part[y]);
        let computed = match look {
            None => {
                // SAFETY: forwarded from the caller.
                unsafe { conv2_row::<K>(w, &s.a1, y, row, part) };
                row
            }
            // SAFETY: forwarded from the caller.
            Some(look) => unsafe { cached_row::<K>(w, look, &s.a1, y, row, part) },
        };
        work.computed += u64::from(computed.count_ones());
        work.copied += u64::from((row & !computed).count_ones());
    }
    work
}

/// Second-layer positions of one evaluation.
#[derive(Default, Clone, Copy)]
struct Work {
    computed: u64,
    copied: u64,
}

/// Compute the second-layer positions `bits` of row `y` into `out`.
///
/// # Safety
/// The CPU must have `K`'s target features.
#[inline(always)]
unsafe fn conv2_row<K: PosKernel>(
    w: &Weights,
    a1: &A1,
    y: usize,
    mut bits: u32,
    out: &mut [[f32; LANES]; WIDTH],
) {
    while bits != 0 {
        let x = bits.trailing_zeros() as usize;
        if bits & (2 << x) != 0 {
            // Two neighbours in a row (then x + 1 < WIDTH).
            bits &= !(3 << x);
            // SAFETY: forwarded from the caller.
            [out[x], out[x + 1]] = unsafe { K::conv2_pair(w, a1, y, x) };
        } else {
            bits &= bits - 1;
            // SAFETY: forwarded from the caller.
            out[x] = unsafe { K::conv2(w, a1, y, x) };
        }
    }
}

/// [`conv2_row`], copying the positions whose window the cache remembers; returns the
/// positions computed.
///
/// # Safety
/// The CPU must have `K`'s target features.
#[inline(always)]
unsafe fn cached_row<K: PosKernel>(
    w: &Weights,
    look: &Lookup<'_>,
    a1: &A1,
    y: usize,
    bits: u32,
    out: &mut [[f32; LANES]; WIDTH],
) -> u32 {
    let mut keys = [None; WIDTH];
    let mut missed = 0u32;
    {
        let mut row = look.cache.row(y);
        if !row.looking() {
            drop(row);
            // SAFETY: forwarded from the caller.
            unsafe { conv2_row::<K>(w, a1, y, bits, out) };
            return bits;
        }
        let mut todo = bits;
        while todo != 0 {
            let x = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            keys[x] = pattern(&look.kept, &look.odd, y, x);
            match keys[x].and_then(|key| row.get(x, key)) {
                Some(part) => out[x] = part,
                None => missed |= 1 << x,
            }
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { conv2_row::<K>(w, a1, y, missed, out) };
    let mut row = look.cache.row(y);
    let mut todo = missed;
    while todo != 0 {
        let x = todo.trailing_zeros() as usize;
        todo &= todo - 1;
        if let Some(key) = keys[x] {
            row.put(x, key, out[x]);
        }
    }
    missed
}

/// Logits of a state: the bias plus the per-position contributions, added in position order.
fn logits(w: &Weights, s: &State) -> [f32; CLASSES] {
    let mut sum = [0.0f32; LANES];
    for p in s.part.iter().flat_map(|row| row.iter()) {
        for l in 0..LANES {
            sum[l] += p[l];
        }
    }
    std::array::from_fn(|c| sum[c] + w.b3[c])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    Portable,
}

/// Reference states kept for one explained image.
struct Session {
    original: Vec<f32>,
    states: Vec<Arc<State>>,
    windows: Arc<WindowCache>,
    used: u64,
}

/// How much work the incremental path saved (see [`IncrementalCnn::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncrementalStats {
    /// Images evaluated.
    pub images: u64,
    /// Second-convolution positions computed (a full evaluation computes 784 per image).
    pub positions: u64,
    /// Second-convolution positions that had to change but were copied from the window cache
    /// (see the module docs) instead of computed.
    pub copied: u64,
}

impl IncrementalStats {
    /// The work done since `earlier` (an earlier [`IncrementalCnn::stats`] of the same model).
    pub fn since(self, earlier: IncrementalStats) -> IncrementalStats {
        IncrementalStats {
            images: self.images.saturating_sub(earlier.images),
            positions: self.positions.saturating_sub(earlier.positions),
            copied: self.copied.saturating_sub(earlier.copied),
        }
    }

    /// Fraction of a full evaluation's second-layer work that was done (1.0 = no saving).
    pub fn work_fraction(&self) -> f64 {
        if self.images == 0 {
            return 1.0;
        }
        self.positions as f64 / (self.images as f64 * PIXELS as f64)
    }
}

/// The CNN on the CPU as a [`BatchModel`] whose [`BatchModel::eval_masked`] recomputes only
/// what each masked image changes relative to a recently evaluated one (see the module docs).
///
/// `eval_batch` evaluates from scratch with the same kernels, so the two agree bit for bit.
///
/// ```
/// use shap_model::{Cnn, Head, IncrementalCnn};
/// use shap_explain::{BatchModel, ImageShape, MaskedBatch};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cnn = Cnn::seeded(1, Head::Softmax, &candle_core::Device::Cpu)?;
/// let model = IncrementalCnn::new(&cnn)?;
/// let shape = ImageShape::new(28, 28, 1);
/// let original = vec![0.5f32; 784];
/// // Two masked versions: all kept, then the top-left pixel replaced by 0.
/// let mut keeps = vec![true; 2 * 784];
/// keeps[784] = false;
/// let mut images = original.repeat(2);
/// images[784] = 0.0;
/// let mut fast = vec![0f32; 20];
/// let batch = MaskedBatch { original: &original, keeps: &keeps, images: &images, n: 2, shape };
/// model.eval_masked(batch, &mut fast)?;
/// let mut full = vec![0f32; 20];
/// model.eval_batch(&images, 2, shape, &mut full)?;
/// assert_eq!(fast, full);
/// # Ok(()) }
/// ```
pub struct IncrementalCnn {
    weights: Weights,
    head: Head,
    kernel: Kernel,
    sessions: Mutex<Vec<Session>>,
    clock: AtomicU64,
    images: AtomicU64,
    positions: AtomicU64,
    copied: AtomicU64,
}

impl IncrementalCnn {
    /// Snapshot the weights of `cnn` (on any device), with its head.
    pub fn new(cnn: &Cnn) -> Result<Self, Error> {
        Self::with_head(cnn, cnn.head())
    }

    /// Snapshot the weights of `cnn` (on any device), producing outputs for `head`.
    pub fn with_head(cnn: &Cnn, head: Head) -> Result<Self, Error> {
        let mut w = cnn.cpu_weights()?;
        w.head = head;
        Self::from_weights(&w)
    }

    /// Build from host weights, producing outputs for `weights.head`.
    fn from_weights(weights: &CpuWeights) -> Result<Self, Error> {
        #[cfg(target_arch = "x86_64")]
        let kernel = if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            Kernel::Avx2Fma
        } else {
            Kernel::Portable
        };
        #[cfg(not(target_arch = "x86_64"))]
        let kernel = Kernel::Portable;
        Ok(Self {
            weights: Weights::new(weights)?,
            head: weights.head,
            kernel,
            sessions: Mutex::new(Vec::new()),
            clock: AtomicU64::new(0),
            images: AtomicU64::new(0),
            positions: AtomicU64::new(0),
            copied: AtomicU64::new(0),
        })
    }

    /// Use the plain Rust kernels even where AVX2 and FMA are available (for comparison and
    /// testing; they are several times slower). Drops any kept states.
    pub fn with_portable_kernels(mut self) -> Self {
        self.kernel = Kernel::Portable;
        self.clear();
        self
    }

    /// Whether the AVX2 + FMA kernels are in use.
    pub fn uses_avx2_fma(&self) -> bool {
        self.kernel != Kernel::Portable
    }

    /// The output head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Work done so far by [`BatchModel::eval_masked`] and [`BatchModel::eval_batch`].
    pub fn stats(&self) -> IncrementalStats {
        IncrementalStats {
            images: self.images.load(Ordering::Relaxed),
            positions: self.positions.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
        }
    }

    /// Drop every kept reference state (memory is otherwise bounded by about 60 MB).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// See [`update`]; `look` (into the explained image's cache) serves the second layer.
    fn update(&self, reach: &Reach, look: Option<&Lookup<'_>>, img: &[f32], s: &mut State) -> Work {
        let w = &self.weights;
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2Fma` is chosen only when the CPU reports AVX2 and FMA.
            Kernel::Avx2Fma => unsafe { avx::update(w, reach, look, img, s) },
            // SAFETY: the portable kernels have no requirements.
            Kernel::Portable => unsafe { update::<Portable>(w, reach, look, img, s) },
        }
    }

    fn finish(&self, s: &State, out: &mut [f32]) {
        let l = logits(&self.weights, s);
        out.copy_from_slice(&l);
        if self.head == Head::Softmax {
            softmax_row(out);
        }
    }

    /// The reference states and window cache of `original` (a new session when it has none).
    fn session_states(&self, original: &[f32]) -> (Vec<Arc<State>>, Arc<WindowCache>) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.lock();
        if let Some(s) = sessions.iter_mut().find(|s| s.original == original) {
            s.used = now;
            return (s.states.clone(), Arc::clone(&s.windows));
        }
        if sessions.len() >= SESSIONS
            && let Some(i) = (0..sessions.len()).min_by_key(|&i| sessions[i].used)
        {
            sessions.swap_remove(i);
        }
        let windows = Arc::new(WindowCache::new());
        sessions.push(Session {
            original: original.to_vec(),
            states: Vec::new(),
            windows: Arc::clone(&windows),
            used: now,
        });
        (Vec::new(), windows)
    }

    /// Add `new` states to `original`'s session, keeping the most recently used ones.
    fn keep_states(&self, original: &[f32], new: Vec<Arc<State>>) {
        let mut sessions = self.lock();
        let Some(s) = sessions.iter_mut().find(|s| s.original == original) else {
            return;
        };
        s.states.extend(new);
        if s.states.len() > STATES_PER_IMAGE {
            // Each key read once: other threads explaining the same image bump `used` while
            // we sort, and a key that changes mid-sort breaks the sort's total order.
            s.states
                .sort_by_cached_key(|st| std::cmp::Reverse(st.used.load(Ordering::Relaxed)));
            s.states.truncate(STATES_PER_IMAGE);
        }
    }
}

/// Packed mask bits of one row of `keeps`.
fn pack(keeps: &[bool]) -> [u64; MASK_WORDS] {
    let mut out = [0u64; MASK_WORDS];
    for (i, &k) in keeps.iter().enumerate() {
        out[i / 64] |= u64::from(k) << (i % 64);
    }
    out
}

fn distance(a: &[u64; MASK_WORDS], b: &[u64; MASK_WORDS]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

impl BatchModel for IncrementalCnn {
    fn num_outputs(&self) -> usize {
        CLASSES
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        check_batch(n, shape, images.len(), out.len())?;
        let everything = reach(None);
        out.par_chunks_mut(CLASSES)
            .zip(images.par_chunks(PIXELS))
            .for_each_init(State::empty, |s, (o, x)| {
                let work = self.update(&everything, None, x, s);
                self.positions.fetch_add(work.computed, Ordering::Relaxed);
                self.finish(s, o);
            });
        self.images.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    fn eval_masked(&self, batch: MaskedBatch<'_>, out: &mut [f32]) -> Result<(), ModelError> {
        let n = batch.n;
        check_batch(n, batch.shape, batch.images.len(), out.len())?;
        if batch.original.len() != PIXELS || batch.keeps.len() != n * PIXELS {
            return Err(ModelError::Shape(format!(
                "{n} masks need {} values and the original {PIXELS}, got {} and {}",
                n * PIXELS,
                batch.keeps.len(),
                batch.original.len()
            )));
        }
        let (refs, windows) = self.session_states(batch.original);
        // Chunks run in parallel, each chaining from the closest earlier state; results do not
        // depend on the chunking (see the module docs).
        let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let new: Vec<std::collections::VecDeque<Arc<State>>> = out
            .par_chunks_mut(chunk * CLASSES)
            .zip(batch.images.par_chunks(chunk * PIXELS))
            .zip(batch.keeps.par_chunks(chunk * PIXELS))
            .map(|((o, imgs), keeps)| {
                let mut made: std::collections::VecDeque<Arc<State>> = Default::default();
                let mut work = Work::default();
                for ((o, x), k) in o
                    .chunks_mut(CLASSES)
                    .zip(imgs.chunks(PIXELS))
                    .zip(keeps.chunks(PIXELS))
                {
                    let keep = pack(k);
                    // The few closest by mask, then the one with the least work for this
                    // image (a masker can change pixels outside the mask difference).
                    let mut near: Vec<(u32, &Arc<State>)> = refs
                        .iter()
                        .chain(made.iter())
                        .map(|st| (distance(&st.keep, &keep), st))
                        .collect();
                    near.sort_by_key(|&(d, _)| d);
                    let from = near
                        .iter()
                        .take(SHORTLIST)
                        .map(|&(_, st)| {
                            let d0 = changed(x, &st.x);
                            (cost(&d0), d0, st)
                        })
                        .min_by_key(|&(c, _, _)| c);
                    let (mut s, reached) = match from {
                        Some((_, d0, r)) => {
                            r.used.store(
                                self.clock.fetch_add(1, Ordering::Relaxed),
                                Ordering::Relaxed,
                            );
                            let reached = reach(Some(&d0));
                            (r.start(&reached), reached)
                        }
                        None => (State::empty(), reach(None)),
                    };
                    s.keep = keep;
                    let (kept, odd) = windows.classify(batch.original, k, x);
                    let look = Lookup {
                        cache: &windows,
                        kept,
                        odd,
                    };
                    let done = self.update(&reached, Some(&look), x, &mut s);
                    work.computed += done.computed;
                    work.copied += done.copied;
                    self.finish(&s, o);
                    s.used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed));
                    if made.len() == STATES_PER_IMAGE {
                        made.pop_front();
                    }
                    made.push_back(Arc::new(s));
                }
                self.positions.fetch_add(work.computed, Ordering::Relaxed);
                self.copied.fetch_add(work.copied, Ordering::Relaxed);
                made
            })
            .collect();
        self.images.fetch_add(n as u64, Ordering::Relaxed);
        let mut new: Vec<Arc<State>> = new.into_iter().flatten().collect();
        // Only the last few of a long batch (a permutation pass) can matter later.
        if new.len() > STATES_PER_IMAGE {
            new.drain(..new.len() - STATES_PER_IMAGE);
        }
        self.keep_states(batch.original, new);
        Ok(())
    }
}
