//! Winograd F(2x2, 3x3) convolutions on AVX-512 (x86_64 only), used by [`crate::avx512`] for
//! the second convolution (32 and 16 channels on 28x28, most of the network's multiply-adds):
//! its forward pass, its input gradient (the same forward code on the output gradient) and its
//! weight gradient ([`WeightGrad`]). How it works, what it changes numerically and what was
//! measured: docs/winograd.md.
//!
//! A 3x3 convolution computes each 2x2 block of outputs from a 4x4 block of inputs. Winograd's
//! algorithm transforms the 4x4 input block (`V = Bt d B`) and the 3x3 kernel (`U = G g Gt`)
//! into 16 values each, multiplies them element by element, sums over input channels, and
//! transforms the 16 sums back into the 2x2 outputs (`Y = At M A`): 16 multiplications per
//! block and channel pair where the direct convolution needs 36. The transforms are additions
//! (and halvings, for the kernel), shared by all channel pairs.
//!
//! Layout: the blocks of one tile row (output rows `2ty` and `2ty + 1`) in the 16 lanes of a
//! vector (so `w <= 32`). The forward pass takes [`R`] tile rows at a time:
//! 1. every input channel's 16 transformed values, built from the input rows split into even
//!    and odd columns (`V`, 16 vectors per input channel and tile row);
//! 2. for each of the 16 values and each group of [`OC`] output channels, `OC x R`
//!    accumulators summed over the input channels with the transformed weight broadcast (`M`);
//! 3. per output channel, the inverse transform, bias, ReLU, and the even and odd output
//!    columns interleaved back into two rows.
//!
//! Every image is computed alone in a fixed order, so results do not depend on threads.

use std::arch::x86_64::{
    __m512, __m512i, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_and_si512,
    _mm512_castps_si512, _mm512_castsi512_ps, _mm512_fmadd_ps, _mm512_i32gather_ps,
    _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_maskz_mov_epi32,
    _mm512_maskz_permutexvar_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_mullo_epi32,
    _mm512_permutex2var_ps, _mm512_reduce_add_ps, _mm512_set1_epi32, _mm512_set1_ps,
    _mm512_setr_epi32, _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_ps,
};

use std::cell::RefCell;

use crate::geometry::ConvGeom;

/// Lanes of one vector, and blocks per tile row.
const L: usize = 16;
/// Transformed values per 4x4 input block.
const E: usize = 16;
/// Tile rows transformed and multiplied together (two, so that each weight broadcast feeds
/// two vectors).
const R: usize = 2;
/// Output channels per block of accumulators (`OC x R` of them).
const OC: usize = 8;

/// Whether [`forward`] handles this geometry: a height that is a multiple of 4 (whole pairs
/// of tile rows), an even width of at most 32 (16 blocks per row), output channels in groups
/// of 16.
pub(crate) fn fits(g: ConvGeom) -> bool {
    g.cin > 0
        && g.cout.is_multiple_of(L)
        && g.cout > 0
        && g.h >= 2
        && g.w >= 2
        && g.h.is_multiple_of(2 * R)
        && g.w.is_multiple_of(2)
        && g.w <= 2 * L
        && g.cout * g.cin * 9 < i32::MAX as usize
}

/// Scratch values [`forward`] needs: the transformed weights, one tile row's transformed
/// inputs and its products.
pub(crate) fn scratch_len(g: ConvGeom) -> usize {
    E * v_stride(g) * L + E * g.cout * R * L
}

/// Where transformed input `e` of channel `ci` and tile row `k` (counted from the first row
/// transformed) is stored: at float `(e * e_stride + ci * ci_stride + k * k_stride) * 16`.
#[derive(Debug, Clone, Copy)]
struct VLayout {
    e_stride: usize,
    ci_stride: usize,
    k_stride: usize,
}

impl VLayout {
    #[inline]
    fn index(self, e: usize, ci: usize, k: usize) -> usize {
        (e * self.e_stride + ci * self.ci_stride + k * self.k_stride) * L
    }
}

/// The forward pass's layout: `R` tile rows of one channel together, then the channels, then
/// `e` (padded, see [`v_stride`]).
fn forward_layout(g: ConvGeom) -> VLayout {
    VLayout {
        e_stride: v_stride(g),
        ci_stride: R,
        k_stride: 1,
    }
}

/// Vectors between the blocks of two transformed values `e` in the transformed inputs: one
/// more than the `cin * R` of a block, so that the 16 vectors one channel writes do not all
/// fall in the same first-level cache set (blocks of a power-of-two size would).
fn v_stride(g: ConvGeom) -> usize {
    g.cin * R + 1
}

/// `out = act(conv3x3(x, weight) + bias)` for one image: `x` is `(cin, h, w)`, `weight`
/// `[cout, cin, 3, 3]`, `bias` `[cout]`, `out` `(cout, h, w)`; `act` is ReLU when `relu`.
/// Needs [`fits`], AVX-512F and `scratch` of [`scratch_len`] values.
pub(crate) fn forward(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    assert!(fits(g), "winograd::forward: geometry {g:?}");
    assert!(x.len() >= g.in_len(), "winograd::forward: input too short");
    assert!(
        weight.len() >= g.weight_len(),
        "winograd::forward: weight too short"
    );
    assert!(bias.len() >= g.cout, "winograd::forward: bias too short");
    assert!(
        out.len() >= g.out_len(),
        "winograd::forward: output too short"
    );
    assert!(
        scratch.len() >= scratch_len(g),
        "winograd::forward: scratch too short"
    );
    assert!(crate::avx512::available(), "winograd::forward: no AVX-512");
    let (v, m) = scratch.split_at_mut(E * v_stride(g) * L);
    with_kernel(g, weight, |u| {
        // SAFETY: avx512f was checked above; every length was asserted against the geometry,
        // and each helper reads and writes only within the bounds its comment states.
        unsafe {
            // R tile rows at a time, so that their transformed inputs stay in cache.
            for ty0 in (0..g.h / 2).step_by(R) {
                transform_inputs(g, x, (ty0, R), forward_layout(g), v);
                multiply(g, u, v, m);
                transform_outputs(g, m, bias, relu, ty0, out);
            }
        }
    });
}

/// Whether `a` and `b` (of equal length) hold the same bits, in blocks without an early exit
/// inside a block, so that the comparison vectorises.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.chunks(64).zip(b.chunks(64)).all(|(x, y)| {
        x.iter()
            .zip(y)
            .fold(0u32, |d, (p, q)| d | (p.to_bits() ^ q.to_bits()))
            == 0
    })
}

thread_local! {
    /// The last kernel transformed on this thread: its geometry, the weights it came from,
    /// and `U` (`16 * cin * cout` values).
    static KERNEL: RefCell<(Option<ConvGeom>, Vec<f32>, Vec<f32>)> =
        const { RefCell::new((None, Vec::new(), Vec::new())) };
}

/// Run `f` with the transformed kernel of `weight` (`[cout, cin, 3, 3]`), transforming it only
/// when it differs from the last one transformed on this thread: a batch's images all use
/// the same weights. Weights are compared bit for bit, so a cached kernel is always exactly
/// the one `weight` gives.
fn with_kernel<R>(g: ConvGeom, weight: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    let weight = &weight[..g.weight_len()];
    KERNEL.with(|k| {
        let mut k = k.borrow_mut();
        let (geom, raw, u) = &mut *k;
        let same = *geom == Some(g) && raw.len() == weight.len() && same_bits(raw, weight);
        if !same {
            // Forget the old kernel first, and record the new one only once it is complete.
            *geom = None;
            u.clear();
            u.resize(E * g.cin * g.cout, 0.0);
            // SAFETY: avx512f is checked by every caller (`forward`); `u` has the length
            // `transform_weights` writes and `weight` `cout * cin * 9` values.
            unsafe { transform_weights(g, weight, u) };
            raw.clear();
            raw.extend_from_slice(weight);
            *geom = Some(g);
        }
        f(u)
    })
}

/// `u[(e * cin + ci) * cout + co] = (G g Gt)[e]` for the kernel `g = weight[co][ci]`, with
/// `G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]`; 16 output channels per
/// vector (gathered).
#[target_feature(enable = "avx512f")]
unsafe fn transform_weights(g: ConvGeom, weight: &[f32], u: &mut [f32]) {
    let (cin, cout) = (g.cin, g.cout);
    let stride = (cin * 9) as i32;
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let index: __m512i = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(stride));
    let half = _mm512_set1_ps(0.5);
    for co0 in (0..cout).step_by(L) {
        for ci in 0..cin {
            // SAFETY: lane `k` reads `((co0 + k) * cin + ci) * 9 + t < cout * cin * 9`.
            let base = unsafe { weight.as_ptr().add((co0 * cin + ci) * 9) };
            let mut tap = [_mm512_setzero_ps(); 9];
            for (t, v) in tap.iter_mut().enumerate() {
                *v = unsafe { _mm512_i32gather_ps::<4>(index, base.add(t)) };
            }
            // Rows of G g (4 x 3).
            let mut gg = [[_mm512_setzero_ps(); 3]; 4];
            for l in 0..3 {
                let (a, b, c) = (tap[l], tap[3 + l], tap[6 + l]);
                gg[0][l] = a;
                gg[1][l] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), c));
                gg[2][l] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), c));
                gg[3][l] = c;
            }
            for (i, row) in gg.iter().enumerate() {
                let [a, b, c] = *row;
                let cols = [
                    a,
                    _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(a, b), c)),
                    _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(a, b), c)),
                    c,
                ];
                for (j, &col) in cols.iter().enumerate() {
                    let e = i * 4 + j;
                    // SAFETY: `(e * cin + ci) * cout + co0 + 15 < 16 * cin * cout`.
                    unsafe {
                        _mm512_storeu_ps(u.as_mut_ptr().add((e * cin + ci) * cout + co0), col)
                    };
                }
            }
        }
    }
}

/// One row of a plane as two vectors, columns `0..16` and `16..32`, zero past the row's `w`
/// values. `avail` is how many values the buffer holds from `row` on: with 32 or more, two
/// plain loads and a lane mask (masked loads are slow on some CPUs); else masked loads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_row(row: *const f32, avail: usize, w: usize) -> (__m512, __m512) {
    let lo_mask = if w >= L { 0xFFFF } else { (1u16 << w) - 1 };
    let hi_mask = if w > L {
        ((1u32 << (w - L)) - 1) as u16
    } else {
        0
    };
    // SAFETY: with `avail >= 32` both plain loads are inside the buffer; otherwise the masks
    // keep the loads within the row's `w <= avail` values.
    unsafe {
        if avail >= 2 * L {
            // A lane-mask AND, not a mask register: the compiler would fold a zeroing move
            // into a masked load.
            (
                keep_lanes(lo_mask, _mm512_loadu_ps(row)),
                keep_lanes(hi_mask, _mm512_loadu_ps(row.add(L))),
            )
        } else {
            (
                _mm512_maskz_loadu_ps(lo_mask, row),
                _mm512_maskz_loadu_ps(hi_mask, row.add(L.min(w))),
            )
        }
    }
}

/// `v` with the lanes not in `mask` zeroed, by an AND with a lane mask rather than a mask
/// register (the compiler would fold a zeroing move into the load, making it a masked load).
#[inline]
#[target_feature(enable = "avx512f")]
fn keep_lanes(mask: u16, v: __m512) -> __m512 {
    let bits = _mm512_maskz_mov_epi32(mask, _mm512_set1_epi32(-1));
    _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), bits))
}

/// Image row `y` of one plane (`h x w` at `plane`, `avail` values readable from `plane` on) as four vectors over the blocks of a tile row: image columns
/// `2 tx - 1`, `2 tx`, `2 tx + 1` and `2 tx + 2` in lane `tx` (zero outside the image).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn row_columns(g: ConvGeom, plane: *const f32, avail: usize, y: usize) -> [__m512; 4] {
    let at = y * g.w;
    // SAFETY: row `y < h` of the plane; `load_row` stays within `avail - at` values.
    let (lo, hi) = unsafe { load_row(plane.add(at), avail - at, g.w) };
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let down = _mm512_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
    let up = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0);
    // Image columns 2tx and 2tx + 1 (zero past the row's end).
    let x_even = _mm512_permutex2var_ps(lo, even, hi);
    let x_odd = _mm512_permutex2var_ps(lo, odd, hi);
    [
        _mm512_maskz_permutexvar_ps(0xFFFE, down, x_odd), // column 2tx - 1 (0 for tx = 0)
        x_even,
        x_odd,
        _mm512_maskz_permutexvar_ps(0x7FFF, up, x_even), // column 2tx + 2 (0 past the end)
    ]
}

/// The transformed inputs `Bt d B` of tile rows `ty0 .. ty0 + R` for every input channel into
/// `v[(e * cin + ci) * R + k]` (vectors; `k` the tile row), with `Bt = [[1, 0, -1, 0],
/// [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`: image rows `2 ty0 - 1` to `2 ty0 + 2 R`, zero
/// outside the image.
#[target_feature(enable = "avx512f")]
unsafe fn transform_inputs(
    g: ConvGeom,
    x: &[f32],
    (ty0, rows): (usize, usize),
    at: VLayout,
    v: &mut [f32],
) {
    let hw = g.hw();
    let cin = g.cin;
    // Every store below is at `at.index(e, ci, k)` with `e < 16`, `ci < cin`, `k < rows`, and
    // the index grows with each of them.
    assert!(
        rows > 0 && at.index(E - 1, cin - 1, rows - 1) + L <= v.len(),
        "winograd: transformed inputs too short"
    );
    for ci in 0..cin {
        // SAFETY: plane `ci < cin` of `x` (`forward` and `WeightGrad::image` checked `x` holds
        // `cin * h * w` values); `row_columns` reads rows `0..h` of it, within the `avail`
        // values from the plane's start to the end of `x`.
        let plane = unsafe { x.as_ptr().add(ci * hw) };
        let avail = x.len() - ci * hw;
        // The next plane's rows of these tile rows, so that they arrive in the first-level
        // cache while this plane is transformed (the hardware prefetchers do not follow 32
        // planes at once).
        if ci + 1 < cin {
            let from = (ci + 1) * hw + (2 * ty0).saturating_sub(1) * g.w;
            let to = ((ci + 1) * hw + (2 * (ty0 + rows) + 1).min(g.h) * g.w).min(x.len());
            for at in (from..to).step_by(L) {
                // SAFETY: a prefetch of an address inside `x`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(x.as_ptr().add(at).cast()) };
            }
        }
        // Image rows 2ty - 1 .. 2ty + 2 of tile row ty, rolled down two rows per tile row
        // (row -1 and row h are zero). No closures here: they would be compiled without
        // AVX-512 and not inlined.
        let zero = [_mm512_setzero_ps(); 4];
        let mut d = [zero; 4];
        for (r, dr) in d.iter_mut().enumerate().skip(2) {
            let y = 2 * ty0 + r - 2;
            if y >= 1 && y <= g.h {
                *dr = unsafe { row_columns(g, plane, avail, y - 1) };
            }
        }
        for k in 0..rows {
            d[0] = d[2];
            d[1] = d[3];
            for (r, dr) in d.iter_mut().enumerate().skip(2) {
                let y = 2 * (ty0 + k) + r;
                *dr = if y <= g.h {
                    unsafe { row_columns(g, plane, avail, y - 1) }
                } else {
                    zero
                };
            }
            for i in 0..4 {
                // Row i of Bt d (a vector per column kind), then of (Bt d) B.
                let mut t = [_mm512_setzero_ps(); 4];
                for (c, tc) in t.iter_mut().enumerate() {
                    *tc = match i {
                        0 => _mm512_sub_ps(d[0][c], d[2][c]),
                        1 => _mm512_add_ps(d[1][c], d[2][c]),
                        2 => _mm512_sub_ps(d[2][c], d[1][c]),
                        _ => _mm512_sub_ps(d[1][c], d[3][c]),
                    };
                }
                let out = [
                    _mm512_sub_ps(t[0], t[2]),
                    _mm512_add_ps(t[1], t[2]),
                    _mm512_sub_ps(t[2], t[1]),
                    _mm512_sub_ps(t[1], t[3]),
                ];
                for (j, &val) in out.iter().enumerate() {
                    let at = at.index(i * 4 + j, ci, k);
                    // SAFETY: below the bound asserted at the top.
                    unsafe { _mm512_storeu_ps(v.as_mut_ptr().add(at), val) };
                }
            }
        }
    }
}

/// `m[(co * 16 + e) * R + k]` (vectors) = `sum_ci u[e][ci][co] * v[(e * cin + ci) * R + k]`,
/// in input-channel order: `OC x R` accumulators, each weight broadcast feeding `R` of them.
#[target_feature(enable = "avx512f")]
unsafe fn multiply(g: ConvGeom, u: &[f32], v: &[f32], m: &mut [f32]) {
    let (cin, cout) = (g.cin, g.cout);
    let (up, vp, mp) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
    for e in 0..E {
        for co0 in (0..cout).step_by(OC) {
            let mut acc = [[_mm512_setzero_ps(); R]; OC];
            for ci in 0..cin {
                // SAFETY: `(e * v_stride + ci * R + k) * 16 + 15 < 16 * v_stride * 16` and
                // `(e * cin + ci) * cout + co0 + OC - 1 < 16 * cin * cout`.
                let mut vv = [_mm512_setzero_ps(); R];
                for (k, x) in vv.iter_mut().enumerate() {
                    *x = unsafe { _mm512_loadu_ps(vp.add((e * v_stride(g) + ci * R + k) * L)) };
                }
                let w = unsafe { up.add((e * cin + ci) * cout + co0) };
                for (r, a) in acc.iter_mut().enumerate() {
                    let wr = _mm512_set1_ps(unsafe { *w.add(r) });
                    for (ak, &x) in a.iter_mut().zip(&vv) {
                        *ak = _mm512_fmadd_ps(wr, x, *ak);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                for (k, &ak) in a.iter().enumerate() {
                    // SAFETY: `((co0 + r) * 16 + e) * R + k) * 16 + 15 < cout * 16 * R * 16`.
                    unsafe { _mm512_storeu_ps(mp.add((((co0 + r) * E + e) * R + k) * L), ak) };
                }
            }
        }
    }
}

/// Output rows `2 ty0` to `2 ty0 + 2 R - 1` of every channel from the products: `At M A`
/// with `At = [[1, 1, 1, 0], [0, 1, -1, -1]]`, plus the bias, ReLU, and the even and odd
/// columns interleaved.
#[target_feature(enable = "avx512f")]
unsafe fn transform_outputs(
    g: ConvGeom,
    m: &[f32],
    bias: &[f32],
    relu: bool,
    ty0: usize,
    out: &mut [f32],
) {
    for (co, &b) in bias.iter().enumerate().take(g.cout) {
        for k in 0..R {
            let mut mv = [_mm512_setzero_ps(); E];
            for (e, v) in mv.iter_mut().enumerate() {
                // SAFETY: `((co * 16 + e) * R + k) * 16 + 15 < cout * 16 * R * 16`.
                *v = unsafe { _mm512_loadu_ps(m.as_ptr().add(((co * E + e) * R + k) * L)) };
            }
            // SAFETY: rows `2 (ty0 + k)` and the next of plane `co`, inside `out` as `forward`
            // checked (`ty0 + k < h / 2`).
            unsafe { store_block_row(g, &mv, b, relu, out, co * g.hw() + 2 * (ty0 + k) * g.w) };
        }
    }
}

/// The two output rows (starting at `out[at]`, `w` values each) of one channel and tile row
/// from its 16 product vectors `mv`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_block_row(
    g: ConvGeom,
    mv: &[__m512; E],
    bias: f32,
    relu: bool,
    out: &mut [f32],
    at: usize,
) {
    let w = g.w;
    let lo_mask = if w >= L { 0xFFFF } else { (1u16 << w) - 1 };
    let hi_mask = if w > L {
        ((1u32 << (w - L)) - 1) as u16
    } else {
        0
    };
    let first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    let zero = _mm512_setzero_ps();
    let b = _mm512_set1_ps(bias);
    // Rows of At M (2 x 4).
    let mut t = [[zero; 4]; 2];
    for j in 0..4 {
        t[0][j] = _mm512_add_ps(_mm512_add_ps(mv[j], mv[4 + j]), mv[8 + j]);
        t[1][j] = _mm512_sub_ps(_mm512_sub_ps(mv[4 + j], mv[8 + j]), mv[12 + j]);
    }
    for (a, r) in t.iter().enumerate() {
        let y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]), b);
        let y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]), b);
        let (y0, y1) = if relu {
            (_mm512_max_ps(y0, zero), _mm512_max_ps(y1, zero))
        } else {
            (y0, y1)
        };
        // SAFETY: row `a` of the two starts at `at + a * w`, inside `out` as the caller
        // guarantees; the masks keep both stores within its `w` values.
        unsafe {
            let row = out.as_mut_ptr().add(at + a * w);
            _mm512_mask_storeu_ps(row, lo_mask, _mm512_permutex2var_ps(y0, first, y1));
            _mm512_mask_storeu_ps(
                row.add(L.min(w)),
                hi_mask,
                _mm512_permutex2var_ps(y0, second, y1),
            );
        }
    }
}

/// Whether [`WeightGrad`] handles layer `g`: even sides, at most 16 blocks per row, channels
/// in groups of 4.
pub(crate) fn weight_grad_fits(g: ConvGeom) -> bool {
    g.cin.is_multiple_of(4)
        && g.cout.is_multiple_of(4)
        && g.cin > 0
        && g.cout > 0
        && g.h >= 2
        && g.w >= 2
        && g.h.is_multiple_of(2)
        && g.w.is_multiple_of(2)
        && g.w <= 2 * L
}

/// The weight gradient of a chunk of images through the same transforms (docs/winograd.md):
/// `dW = Gt P G` with `P = sum over blocks and images of V ⊙ (A dY At)`, where `V` is a
/// transformed input block and `dY` the 2x2 output gradient of the block. `P` is summed per
/// lane (block column) over the chunk, and reduced by [`WeightGrad::finish`].
pub(crate) struct WeightGrad {
    g: ConvGeom,
    /// `[e][ci][co]` vectors of per-lane sums.
    acc: Vec<f32>,
    /// One image's transformed inputs ([`WeightGrad::v_layout`]).
    v: Vec<f32>,
    /// One image's transformed output gradients, `[e][ty][co]` vectors, `e` blocks padded.
    gt: Vec<f32>,
}

impl WeightGrad {
    /// Zeroed sums for layer `g`. Needs [`weight_grad_fits`] and AVX-512F.
    pub(crate) fn new(g: ConvGeom) -> Self {
        assert!(weight_grad_fits(g), "WeightGrad: geometry {g:?}");
        assert!(crate::avx512::available(), "WeightGrad: no AVX-512");
        let rows = g.h / 2;
        Self {
            g,
            acc: vec![0f32; E * g.cin * g.cout * L],
            v: vec![0f32; E * (rows * g.cin + 1) * L],
            gt: vec![0f32; E * (rows * g.cout + 1) * L],
        }
    }

    /// `[e][ty][ci]`, `e` blocks one vector longer than needed (cache sets, as [`v_stride`]).
    fn v_layout(&self) -> VLayout {
        VLayout {
            e_stride: (self.g.h / 2) * self.g.cin + 1,
            ci_stride: 1,
            k_stride: self.g.cin,
        }
    }

    /// Add one image: input `x` and ReLU-masked output gradient `gy`, both packed planes.
    pub(crate) fn image(&mut self, x: &[f32], gy: &[f32]) {
        let g = self.g;
        assert!(x.len() >= g.in_len(), "WeightGrad::image: input too short");
        assert!(
            gy.len() >= g.out_len(),
            "WeightGrad::image: gradient too short"
        );
        let layout = self.v_layout();
        // SAFETY: avx512f was checked in `new`; every buffer has the length `new` gave it for
        // `g`, the inputs were checked above, and each helper stays within the bounds its
        // comment states.
        unsafe {
            transform_inputs(g, x, (0, g.h / 2), layout, &mut self.v);
            transform_gradients(g, gy, &mut self.gt);
            accumulate(g, (&self.v, layout), &self.gt, &mut self.acc);
        }
    }

    /// Add the chunk's gradient into `dwt` (laid out `(tap, cout, cin)`) and zero the sums.
    pub(crate) fn finish(&mut self, dwt: &mut [f32]) {
        let (cin, cout) = (self.g.cin, self.g.cout);
        assert!(
            dwt.len() >= 9 * cin * cout,
            "WeightGrad::finish: dwt too short"
        );
        // Gt = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]].
        const GT: [[f32; 4]; 3] = [
            [1.0, 0.5, 0.5, 0.0],
            [0.0, 0.5, -0.5, 0.0],
            [0.0, 0.5, 0.5, 1.0],
        ];
        for ci in 0..cin {
            for co in 0..cout {
                let mut p = [0f32; E];
                for (e, pe) in p.iter_mut().enumerate() {
                    let at = ((e * cin + ci) * cout + co) * L;
                    // SAFETY: avx512f was checked in `new`; 16 values of `acc`.
                    *pe = unsafe { lane_sum(&self.acc[at..at + L]) };
                }
                for (t, &(k, l)) in TAPS.iter().enumerate() {
                    let mut sum = 0f32;
                    for i in 0..4 {
                        for j in 0..4 {
                            sum += GT[k][i] * p[i * 4 + j] * GT[l][j];
                        }
                    }
                    dwt[(t * cout + co) * cin + ci] += sum;
                }
            }
        }
        self.acc.fill(0.0);
    }
}

/// The sum of the 16 values of `v` (a fixed order: halves added pairwise).
#[target_feature(enable = "avx512f")]
unsafe fn lane_sum(v: &[f32]) -> f32 {
    assert!(v.len() >= L, "lane_sum: 16 values");
    // SAFETY: 16 values, asserted above.
    _mm512_reduce_add_ps(unsafe { _mm512_loadu_ps(v.as_ptr()) })
}

/// Kernel taps `(row, column)` in tap order.
const TAPS: [(usize, usize); 9] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (1, 0),
    (1, 1),
    (1, 2),
    (2, 0),
    (2, 1),
    (2, 2),
];

/// The transformed output gradients `A dY At` of every tile row into vector
/// `e * (rows * cout + 1) + ty * cout + co` of `gt`, with `A = [[1, 0], [1, 1], [1, -1],
/// [0, -1]]`: the 2x2 gradient of block `tx` (rows `2 ty`, `2 ty + 1`; columns `2 tx`,
/// `2 tx + 1`) in lane `tx`, zero in lanes past the row's blocks.
#[target_feature(enable = "avx512f")]
unsafe fn transform_gradients(g: ConvGeom, gy: &[f32], gt: &mut [f32]) {
    let (hw, rows) = (g.hw(), g.h / 2);
    let e_stride = rows * g.cout + 1;
    assert!(
        ((E - 1) * e_stride + rows * g.cout) * L <= gt.len(),
        "winograd: transformed gradients too short"
    );
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let zero = _mm512_setzero_ps();
    for co in 0..g.cout {
        for ty in 0..rows {
            // [row a][column parity b] of every block.
            let mut d = [[zero; 2]; 2];
            for (a, da) in d.iter_mut().enumerate() {
                let at = co * hw + (2 * ty + a) * g.w;
                // SAFETY: row `2 ty + a < h` of plane `co < cout`, inside `gy` as `image`
                // checked; `load_row` stays within `gy.len() - at` values.
                let (lo, hi) = unsafe { load_row(gy.as_ptr().add(at), gy.len() - at, g.w) };
                *da = [
                    _mm512_permutex2var_ps(lo, even, hi),
                    _mm512_permutex2var_ps(lo, odd, hi),
                ];
            }
            let r0 = a_comb(d[0][0], d[1][0]);
            let r1 = a_comb(d[0][1], d[1][1]);
            for i in 0..4 {
                for (j, &val) in a_comb(r0[i], r1[i]).iter().enumerate() {
                    let at = ((i * 4 + j) * e_stride + ty * g.cout + co) * L;
                    // SAFETY: below the bound asserted at the top.
                    unsafe { _mm512_storeu_ps(gt.as_mut_ptr().add(at), val) };
                }
            }
        }
    }
}

/// `A [x0, x1]` for `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn a_comb(x0: __m512, x1: __m512) -> [__m512; 4] {
    [
        x0,
        _mm512_add_ps(x0, x1),
        _mm512_sub_ps(x0, x1),
        _mm512_sub_ps(_mm512_setzero_ps(), x1),
    ]
}

/// `acc[e][ci][co] += sum_ty v[e][ty][ci] * gt[e][ty][co]`, lane by lane, in tile-row order;
/// 4 x 4 channel blocks in registers.
#[target_feature(enable = "avx512f")]
unsafe fn accumulate(g: ConvGeom, (v, layout): (&[f32], VLayout), gt: &[f32], acc: &mut [f32]) {
    let (cin, cout, rows) = (g.cin, g.cout, g.h / 2);
    let g_stride = rows * cout + 1;
    assert!(
        v.len() >= layout.index(E - 1, cin - 1, rows - 1) + L
            && gt.len() >= ((E - 1) * g_stride + (rows - 1) * cout + cout) * L
            && acc.len() >= E * cin * cout * L,
        "winograd::accumulate: buffers too short"
    );
    let (vp, gp, ap) = (v.as_ptr(), gt.as_ptr(), acc.as_mut_ptr());
    for e in 0..E {
        for ci0 in (0..cin).step_by(4) {
            for co0 in (0..cout).step_by(4) {
                // SAFETY (whole block): every index is below the lengths asserted above.
                let at = |ci: usize, co: usize| ((e * cin + ci) * cout + co) * L;
                let mut a = [[_mm512_setzero_ps(); 4]; 4];
                for (i, ai) in a.iter_mut().enumerate() {
                    for (j, aij) in ai.iter_mut().enumerate() {
                        *aij = unsafe { _mm512_loadu_ps(ap.add(at(ci0 + i, co0 + j))) };
                    }
                }
                for ty in 0..rows {
                    let mut xv = [_mm512_setzero_ps(); 4];
                    for (i, x) in xv.iter_mut().enumerate() {
                        *x = unsafe { _mm512_loadu_ps(vp.add(layout.index(e, ci0 + i, ty))) };
                    }
                    let mut gv = [_mm512_setzero_ps(); 4];
                    for (j, y) in gv.iter_mut().enumerate() {
                        *y = unsafe {
                            _mm512_loadu_ps(gp.add((e * g_stride + ty * cout + co0 + j) * L))
                        };
                    }
                    for (ai, &x) in a.iter_mut().zip(&xv) {
                        for (aij, &y) in ai.iter_mut().zip(&gv) {
                            *aij = _mm512_fmadd_ps(x, y, *aij);
                        }
                    }
                }
                for (i, ai) in a.iter().enumerate() {
                    for (j, &aij) in ai.iter().enumerate() {
                        unsafe { _mm512_storeu_ps(ap.add(at(ci0 + i, co0 + j)), aij) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The Winograd kernels against the portable (im2col + `gemm`) ones. Winograd's transforms
    //! add and subtract up to 9 products per output before the sums, so rounding can move a
    //! value by a few units of the sum of the absolute terms; the bound below is 1e-6 of that
    //! sum (measured worst: see docs/winograd.md).
    use super::*;
    use crate::avx512::tests::{data, portable_forward};
    use crate::conv;

    /// The largest `|a - b|` over `scale`, after checking both are the same length and not
    /// all zero.
    fn worst(a: &[f32], b: &[f32], scale: f32) -> f32 {
        assert_eq!(a.len(), b.len());
        assert!(a.iter().any(|v| *v != 0.0), "all zero");
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
            / scale
    }

    /// Geometries that exercise every width class (one vector of blocks or two halves, the
    /// narrowest and widest rows), heights of one and several row pairs, and channel counts.
    fn geometries() -> Vec<ConvGeom> {
        let mut out = Vec::new();
        for (cin, cout) in [(16, 16), (32, 16), (16, 32), (48, 32)] {
            for (h, w) in [(4, 2), (4, 6), (8, 16), (12, 18), (28, 28), (4, 32)] {
                out.push(ConvGeom { cin, cout, h, w });
            }
        }
        out
    }

    #[test]
    fn forward_matches_the_portable_kernel() {
        if !crate::avx512::available() {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        for g in geometries() {
            assert!(fits(g), "{g:?}");
            let x = data(g.in_len(), 1);
            let w = data(g.weight_len(), 2);
            let b = data(g.cout, 3);
            for relu in [true, false] {
                let mut ours = vec![0f32; g.out_len()];
                let mut scratch = vec![0f32; scratch_len(g)];
                forward(g, &x, &w, &b, relu, &mut ours, &mut scratch);
                let theirs = portable_forward(g, (&x, &w, &b), relu);
                // Every term is a product of values in [-1, 1]: at most cin * 9 + 1 of them.
                let e = worst(&ours, &theirs, (g.cin * 9 + 1) as f32);
                assert!(e <= 1e-6, "{g:?} relu {relu}: worst {e}");
            }
        }
    }

    /// The kernel cached per thread follows weights changed in place (as training changes
    /// them), and is not confused with another geometry's.
    #[test]
    fn cached_kernels_follow_the_weights() {
        if !crate::avx512::available() {
            return;
        }
        let g = ConvGeom {
            cin: 16,
            cout: 16,
            h: 4,
            w: 6,
        };
        let other = ConvGeom {
            cin: 16,
            cout: 32,
            h: 4,
            w: 6,
        };
        let x = data(g.in_len(), 4);
        let b = vec![0f32; other.cout];
        let mut w = data(other.weight_len(), 5);
        let run = |g: ConvGeom, w: &[f32]| {
            let mut out = vec![0f32; g.out_len()];
            let mut scratch = vec![0f32; scratch_len(g)];
            forward(g, &x, w, &b, false, &mut out, &mut scratch);
            out
        };
        let first = run(g, &w);
        assert_eq!(run(g, &w), first, "same weights, same result");
        // The wider layer's first 16 output channels have the same weights (its weights'
        // prefix), so they give the same planes; then back to the first geometry.
        let wide = run(other, &w);
        assert_eq!(wide[..g.out_len()], first[..]);
        assert_ne!(wide[g.out_len()..], first[..]);
        assert_eq!(run(g, &w), first, "back from another geometry");
        w[7] += 0.5;
        let changed = run(g, &w);
        assert_ne!(changed, first);
        // A fresh thread has no cached kernel: the same result from scratch.
        let fresh = std::thread::scope(|s| s.spawn(|| run(g, &w)).join());
        assert_eq!(fresh.ok(), Some(changed));
    }

    #[test]
    fn weight_gradient_matches_the_portable_kernel() {
        if !crate::avx512::available() {
            return;
        }
        for g in geometries().into_iter().filter(|g| weight_grad_fits(*g)) {
            let n = 5;
            let x = data(n * g.in_len(), 6);
            let w = data(g.weight_len(), 7);
            let y = data(n * g.out_len(), 8);
            let gy = data(n * g.out_len(), 9);
            // The portable kernels alone, and the whole dispatching batch function.
            let theirs = conv::backward_batch_portable(g, &x, &w, &y, &gy, true, false);
            let mut wg = WeightGrad::new(g);
            let mut masked = vec![0f32; g.out_len()];
            for i in 0..n {
                let span = i * g.out_len()..(i + 1) * g.out_len();
                for ((m, &yv), &gv) in masked.iter_mut().zip(&y[span.clone()]).zip(&gy[span]) {
                    *m = if yv > 0.0 { gv } else { 0.0 };
                }
                wg.image(&x[i * g.in_len()..(i + 1) * g.in_len()], &masked);
            }
            let mut dwt = vec![0f32; g.weight_len()];
            wg.finish(&mut dwt);
            // (tap, cout, cin) to [cout, cin, 3, 3].
            let mut ours = vec![0f32; g.weight_len()];
            for t in 0..9 {
                for co in 0..g.cout {
                    for ci in 0..g.cin {
                        ours[(co * g.cin + ci) * 9 + t] = dwt[(t * g.cout + co) * g.cin + ci];
                    }
                }
            }
            // dW sums n * h * w products of values in [-1, 1].
            let e = worst(&ours, &theirs.dw, (n * g.hw()) as f32);
            assert!(e <= 1e-6, "{g:?}: worst {e}");
            assert!(wg.acc.iter().all(|&v| v == 0.0), "finish empties the sums");
        }
    }

    /// The two-layer training backward pass, through the per-thread scratch, gives the same
    /// bits on 1 and 3 threads, and again when the scratch is reused.
    #[test]
    fn pair_backward_is_independent_of_threads_and_reuse() {
        let g1 = ConvGeom {
            cin: 1,
            cout: 32,
            h: 28,
            w: 28,
        };
        let g2 = ConvGeom {
            cin: 32,
            cout: 16,
            h: 28,
            w: 28,
        };
        let n = 19;
        let x = data(n * g1.in_len(), 10);
        let w2 = data(g2.weight_len(), 11);
        let a1 = data(n * g1.out_len(), 12);
        let a2 = data(n * g2.out_len(), 13);
        let ga2 = data(n * g2.out_len(), 14);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let pool = pool.expect("thread pool");
            pool.install(|| {
                let mut da1 = vec![0f32; a1.len()];
                let grads = conv::backward_pair((g1, g2), (&x, &a1, &a2, &ga2), &w2, &mut da1);
                (grads, da1)
            })
        };
        let one = run(1);
        assert_eq!(run(3), one);
        assert_eq!(run(1), one);
        assert!(one.0[1].0.iter().any(|&v| v != 0.0));
    }
}
