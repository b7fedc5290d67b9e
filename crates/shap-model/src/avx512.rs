//! AVX-512 kernels for the 3x3 convolutions (x86_64 only, chosen at run time by
//! [`crate::conv`] when the CPU has `avx512f`; the AVX2 `gemm` and portable paths stay for
//! every other CPU).
//!
//! Direct convolutions on a padded grid instead of im2col + GEMM. Every channel plane is
//! stored zero-padded as rows of `pw = w + 2` values (image pixel `(y, x)` at
//! `(y + 1) * pw + x + 1`), so output position `p = y * pw + x` of the "wide" output grid
//! (two junk columns per row, dropped when copying out) reads its nine taps at `p + off(t)`,
//! `off(t) = ky * pw + kx`: every tap is a plain offset, no unfolded buffer, no bounds tests.
//! Output positions are processed in tiles of 48 (three 16-lane vectors) and output channels
//! in groups of 8, so a tile keeps 24 accumulators in registers and every tap costs three
//! vector loads and eight FMAs with the weight broadcast from memory.
//!
//! - Forward ([`forward_image`]): bias-initialised accumulators, `ci`-major then tap order,
//!   ReLU at the store.
//! - Input gradient ([`backward_task`]): the same kernel on the ReLU-masked output gradient
//!   with the flipped, transposed weights.
//! - Weight gradient, `cin` a multiple of 32 (conv2): `dW[t][co][ci] += sum_p g[co][p] *
//!   x[p + off(t)][ci]` with the input channels-last, so `ci` fills two vectors; 4 output
//!   channels x 3 taps of a kernel row x 2 vectors = 24 accumulators over all positions.
//! - Weight gradient, `cin == 1` (conv1): vectors along the positions, 2 output channels x 9
//!   taps = 18 accumulators, reduced horizontally per image.
//!
//! Each image is computed alone with a fixed operation order, and the backward pass keeps the
//! fixed chunks of [`crate::conv::IMAGES_PER_TASK`] images summed in chunk order, so results
//! are bit-identical whatever the thread count. They differ from the `gemm` path's in the last
//! bits (another summation order): the tests bound the difference.
//!
//! Implementation notes (speed). Measured with a per-phase timing harness over this crate's
//! kernels (`epoch_profile`, an example written for this work and removed when the kernels
//! became crate-private; its figures are kept here) (batch 256, 2 rayon threads) on a 2-core Sapphire Rapids-class Xeon (AVX-512
//! F/BW/DQ/VL/VNNI/BF16/FP16) shared with five other build-and-test jobs: wall-clock times
//! moved by up to 5x between minutes, so the figures below are CPU milliseconds per batch
//! (all threads), compared only within one run of alternating processes
//! (`SHAP_MODEL_NO_AVX512=1` for the other path).
//!
//! - Where a step went before this work (`gemm` AVX2 path, CPU ms): conv1 forward 9, conv2
//!   forward 31-34, conv2 weight gradient 32-33, conv2 input gradient 26-28, conv1 weight
//!   gradient 15-17, the dense layer, softmax and buffers ~20 (page faults included), candle's
//!   AdamW 10-12. About 140 in all.
//! - Direct AVX-512 convolutions (this module): conv2 forward 16-20, weight gradient 22-27,
//!   input gradient 16-19 (1.5-1.7x, 1.3x, 1.5x), conv1 forward 6-9, conv1 weight gradient
//!   8-9. The inner loops compile to 24 register accumulators, one broadcast and three FMAs per
//!   weight; conv2 forward runs at about 85% of two 512-bit FMAs per cycle at 2 GHz. The junk
//!   columns of the wide grid and the round-up to whole tiles cost 10% of the FMAs (864
//!   positions computed for 784).
//! - The dense layer's three products (`crate::dense`) in AVX-512 instead of `gemm` with
//!   10-wide shapes: a few ms.
//! - The bias gradient summed in vectors: a scalar running sum over each plane is a chain of
//!   dependent adds (4 cycles each), which made conv1's backward cost 8.2 ms; 4.5-5.5 after.
//! - Page faults: mimalloc returns freed memory to the OS after 10 ms, so the ~77 MB of
//!   activations and gradients were faulted in again every step; `MIMALLOC_PURGE_DELAY=-1`
//!   took the step from 94-112 to 83-85 ms. The training loop now keeps its buffers
//!   (`model::StepBuffers`) instead of depending on an allocator setting.
//! - candle-nn's AdamW builds about twenty tensors per parameter per step: 10-12 ms. The
//!   plain-`Vec` Adam (`crate::adam`, the same arithmetic, bit-identical) takes well under 1.
//! - conv2's backward feeding conv1's image by image (`conv::backward_pair`), so each image's
//!   input gradient is used while in cache: epoch CPU time 3.0 -> 2.8-2.9 s per 10,000 images.
//! - With all of the above, one training epoch on 60,000 images costs about 17 CPU seconds,
//!   against 15-21 for TF-Keras's second epoch measured in the same runs (its CPU time also
//!   moves with the load): about parity, not the 1.25x goal. What is left is mostly the
//!   FMAs themselves (conv2's three products are 5.5 GFLOP per batch); a further step would
//!   need fewer multiplications (Winograd F(2,3) for the 3x3 convolutions), not faster ones.
//! - That step: conv2's forward pass, input gradient and weight gradient now run through
//!   [`crate::winograd`] (16 multiplications per 2x2 block and channel pair instead of 36).
//!   Training epoch CPU time 12.2 -> 9.7 s on an AMD EPYC (2026-12-08); the kernels here stay
//!   for conv1 and for shapes Winograd does not take. Measurements and what did not work:
//!   docs/winograd.md.
//!
//! Tried and not kept:
//! - `gemm`'s own AVX-512 kernels (its `x86-v4` feature, runtime-dispatched through `pulp`): in
//!   one alternating run conv2 forward took 23-27 ms against 16-17 here, its input gradient
//!   23-24 against 16-19, the weight gradient 24 against 23, the whole step 94-96 against
//!   73-81 ms. Slower for these shapes, and it rebuilds candle-core.
//! - `IncrementalCnn`'s per-position kernels on 16 lanes, with the AVX2 kernels' arithmetic (so
//!   bit-identical to them: one 16-lane accumulator where AVX2 has two 8-lane halves). Slower:
//!   298-383 against 232-344 µs per full image on one thread (`incremental_speed` example, four
//!   alternating pairs, each pair slower): halving the vectors also halves the independent
//!   accumulator chains (four for a pair of positions), and the FMA latency then bounds the
//!   loop. Keeping 8 chains would mean 4 positions at a time or another summation order (no
//!   longer bit-identical to the AVX2 kernels); not done.

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_reduce_add_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use std::cell::RefCell;

use crate::geometry::ConvGeom;
use crate::winograd;

/// Lanes of one vector.
const L: usize = 16;
/// Output positions per tile (three vectors).
const TILE: usize = 3 * L;
/// Output channels per tile of the direct convolution.
const MR: usize = 8;
/// Output channels per block of the channels-last weight gradient.
const DW_CO: usize = 4;
/// Input channels per block of the channels-last weight gradient (two vectors).
const DW_CI: usize = 2 * L;

/// Environment variable that turns the AVX-512 kernels off (any value), for comparing
/// paths on one machine or reproducing the results of a CPU without AVX-512.
pub(crate) const DISABLE_VAR: &str = "SHAP_MODEL_NO_AVX512";

/// Whether this CPU runs the AVX-512 kernels (and [`DISABLE_VAR`] is unset); read once.
pub(crate) fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f") && std::env::var_os(DISABLE_VAR).is_none()
    })
}

/// The padded-grid layout of one image's planes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    h: usize,
    w: usize,
    /// Padded row length.
    pw: usize,
    /// Output positions computed per plane (`h * pw` rounded up to a tile).
    np: usize,
    /// Stride between padded input planes (room for every tap of every computed position).
    cs: usize,
}

impl Grid {
    pub(crate) fn new(g: ConvGeom) -> Self {
        let pw = g.w + 2;
        let np = (g.h * pw).div_ceil(TILE) * TILE;
        Self {
            h: g.h,
            w: g.w,
            pw,
            np,
            cs: np + 2 * pw + 2,
        }
    }

    fn offsets(&self) -> [usize; 9] {
        std::array::from_fn(|t| (t / 3) * self.pw + t % 3)
    }

    /// Write `c` planes of `x` (`(c, h, w)`) zero-padded into `dst` (every value rewritten).
    fn pad(&self, x: &[f32], c: usize, dst: &mut [f32]) {
        let (pw, w, hw) = (self.pw, self.w, self.h * self.w);
        for (src, d) in x
            .chunks_exact(hw)
            .zip(dst.chunks_exact_mut(self.cs))
            .take(c)
        {
            d[..pw + 1].fill(0.0);
            for (y, row) in src.chunks_exact(w).enumerate() {
                let at = (y + 1) * pw + 1;
                d[at..at + w].copy_from_slice(row);
                d[at + w..at + pw].fill(0.0);
            }
            d[(self.h + 1) * pw + 1..].fill(0.0);
        }
    }

    /// Copy `c` wide output planes (`np` values each) into `(c, h, w)`.
    fn unpad(&self, src: &[f32], c: usize, out: &mut [f32]) {
        let hw = self.h * self.w;
        for (s, o) in src
            .chunks_exact(self.np)
            .zip(out.chunks_exact_mut(hw))
            .take(c)
        {
            for (y, row) in o.chunks_exact_mut(self.w).enumerate() {
                row.copy_from_slice(&s[y * self.pw..y * self.pw + self.w]);
            }
        }
    }
}

/// Whether [`forward_image`] handles this geometry.
pub(crate) fn forward_fits(g: ConvGeom) -> bool {
    g.cout.is_multiple_of(MR) && g.cin > 0
}

/// Whether [`backward_task`] handles this geometry (and the input gradient when asked).
pub(crate) fn backward_fits(g: ConvGeom, need_dx: bool) -> bool {
    let dw = (g.cin.is_multiple_of(DW_CI) && g.cout.is_multiple_of(DW_CO))
        || (g.cin == 1 && g.cout.is_multiple_of(2));
    dw && g.cin > 0 && (!need_dx || g.cin.is_multiple_of(MR))
}

/// Scratch values [`forward_image`] needs.
pub(crate) fn forward_scratch_len(g: ConvGeom) -> usize {
    let grid = Grid::new(g);
    with_winograd_scratch(g, g.cin * grid.cs + g.cout * grid.np)
}

/// `direct` scratch values, or what [`winograd::forward`] needs for `g` if it runs and needs
/// more.
fn with_winograd_scratch(g: ConvGeom, direct: usize) -> usize {
    if use_winograd(g) {
        direct.max(winograd::scratch_len(g))
    } else {
        direct
    }
}

/// Below this many input channels the direct kernel is kept: the Winograd transforms cost
/// about as much as the multiplications they save (docs/winograd.md).
const WINOGRAD_MIN_CIN: usize = 16;

/// Whether the forward pass of `g` runs through [`winograd`].
fn use_winograd(g: ConvGeom) -> bool {
    g.cin >= WINOGRAD_MIN_CIN && winograd::fits(g) && winograd_on()
}

/// Environment variable that keeps the direct kernels where Winograd would run (any value),
/// for comparing the two on one machine.
pub(crate) const NO_WINOGRAD_VAR: &str = "SHAP_MODEL_NO_WINOGRAD";

/// Whether [`NO_WINOGRAD_VAR`] is unset; read once.
fn winograd_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(NO_WINOGRAD_VAR).is_none())
}

/// `out[co][p] = act(bias[co] + sum_ci sum_t w[co][ci][t] * xpad[ci][p + off(t)])` for every
/// `p < np`, where `act` is ReLU or nothing. `xpad` holds `cin` planes of stride `grid.cs`.
fn direct_conv(
    grid: Grid,
    (cin, cout): (usize, usize),
    xpad: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    assert!(
        cout.is_multiple_of(MR) && cin > 0,
        "direct_conv: {cout} outputs"
    );
    assert!(xpad.len() >= cin * grid.cs, "direct_conv: input too short");
    assert!(
        weight.len() >= cout * cin * 9,
        "direct_conv: weight too short"
    );
    assert!(out.len() >= cout * grid.np, "direct_conv: output too short");
    assert!(
        bias.is_none_or(|b| b.len() >= cout),
        "direct_conv: bias too short"
    );
    assert!(available(), "direct_conv: no AVX-512");
    // SAFETY: avx512f was checked above. Reads: input `ci * cs + p + off(t)` with
    // `p < np` and `off(t) <= 2 * pw + 2`, so below `cin * cs`; weights below `cout * cin * 9`;
    // bias below `cout`. Writes: `co * np + p < cout * np`. All lengths were asserted.
    unsafe { direct_conv_avx512(grid, (cin, cout), xpad, weight, bias, relu, out) }
}

#[target_feature(enable = "avx512f")]
unsafe fn direct_conv_avx512(
    grid: Grid,
    (cin, cout): (usize, usize),
    xpad: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    let offs = grid.offsets();
    let (xp, wp, op) = (xpad.as_ptr(), weight.as_ptr(), out.as_mut_ptr());
    let zero = _mm512_setzero_ps();
    for co0 in (0..cout).step_by(MR) {
        let init: [__m512; MR] = std::array::from_fn(|r| match bias {
            Some(b) => _mm512_set1_ps(b[co0 + r]),
            None => zero,
        });
        for p0 in (0..grid.np).step_by(TILE) {
            let mut acc = [[zero; 3]; MR];
            for (a, i) in acc.iter_mut().zip(init) {
                *a = [i; 3];
            }
            for ci in 0..cin {
                // SAFETY (whole block): offsets within the bounds stated by `direct_conv`.
                let xc = unsafe { xp.add(ci * grid.cs + p0) };
                let wc = unsafe { wp.add(co0 * cin * 9 + ci * 9) };
                for (t, &off) in offs.iter().enumerate() {
                    let v: [__m512; 3] =
                        std::array::from_fn(|j| unsafe { _mm512_loadu_ps(xc.add(off + j * L)) });
                    for (r, a) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(unsafe { *wc.add(r * cin * 9 + t) });
                        for (aj, vj) in a.iter_mut().zip(v) {
                            *aj = _mm512_fmadd_ps(wv, vj, *aj);
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                for (j, &aj) in a.iter().enumerate() {
                    let v = if relu { _mm512_max_ps(aj, zero) } else { aj };
                    // SAFETY: `(co0 + r) * np + p0 + j * L + 15 < cout * np`.
                    unsafe { _mm512_storeu_ps(op.add((co0 + r) * grid.np + p0 + j * L), v) };
                }
            }
        }
    }
}

/// Forward one image: `out = relu(conv3x3(x, w) + b)` (ReLU skipped when `relu` is false),
/// with `scratch` of at least [`forward_scratch_len`] values. Needs [`forward_fits`].
pub(crate) fn forward_image(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    if use_winograd(g) {
        return winograd::forward(g, x, weight, bias, relu, out, scratch);
    }
    let grid = Grid::new(g);
    let (xpad, wide) = scratch.split_at_mut(g.cin * grid.cs);
    grid.pad(x, g.cin, xpad);
    direct_conv(grid, (g.cin, g.cout), xpad, weight, Some(bias), relu, wide);
    grid.unpad(wide, g.cout, out);
}

/// Channels-last weight gradient of one image, accumulated into `dwt` laid out
/// `(tap, cout, cin)`: `dwt[t][co][ci] += sum_{p < h*pw} gw[co][p] * xt[(p + off(t)) * cin + ci]`
/// where `gw` holds `cout` planes of stride `gs` (zero on the junk columns) and `xt` is the
/// padded input channels-last.
fn weight_grad_cl(grid: Grid, g: ConvGeom, xt: &[f32], gw: &[f32], gs: usize, dwt: &mut [f32]) {
    let n = grid.h * grid.pw;
    assert!(
        g.cin.is_multiple_of(DW_CI) && g.cout.is_multiple_of(DW_CO),
        "weight_grad_cl: geometry"
    );
    assert!(
        xt.len() >= (n + 2 * grid.pw + 2) * g.cin,
        "weight_grad_cl: input too short"
    );
    assert!(
        gw.len() >= (g.cout - 1) * gs + n,
        "weight_grad_cl: gradient too short"
    );
    assert!(
        dwt.len() >= g.weight_len(),
        "weight_grad_cl: output too short"
    );
    assert!(available(), "weight_grad_cl: no AVX-512");
    // SAFETY: avx512f checked; reads of `xt` below `(n - 1 + 2 * pw + 2) * cin + cin`, of `gw`
    // below `(cout - 1) * gs + n`, reads and writes of `dwt` below `9 * cout * cin`: asserted.
    unsafe { weight_grad_cl_avx512(grid, g, xt, gw, gs, dwt) }
}

#[target_feature(enable = "avx512f")]
unsafe fn weight_grad_cl_avx512(
    grid: Grid,
    g: ConvGeom,
    xt: &[f32],
    gw: &[f32],
    gs: usize,
    dwt: &mut [f32],
) {
    let (cin, cout, pw) = (g.cin, g.cout, grid.pw);
    let n = grid.h * pw;
    let (xp, gp, dp) = (xt.as_ptr(), gw.as_ptr(), dwt.as_mut_ptr());
    // SAFETY (whole function): offsets within the bounds stated by `weight_grad_cl`.
    let at = |t: usize, co: usize, ci: usize| (t * cout + co) * cin + ci;
    for ky in 0..3 {
        for co0 in (0..cout).step_by(DW_CO) {
            for ci0 in (0..cin).step_by(DW_CI) {
                let mut acc: [[[__m512; 2]; 3]; DW_CO] = std::array::from_fn(|r| {
                    std::array::from_fn(|kx| {
                        std::array::from_fn(|j| unsafe {
                            _mm512_loadu_ps(dp.add(at(ky * 3 + kx, co0 + r, ci0 + j * L)))
                        })
                    })
                });
                for p in 0..n {
                    let xr = unsafe { xp.add((p + ky * pw) * cin + ci0) };
                    let v: [[__m512; 2]; 3] = std::array::from_fn(|kx| {
                        std::array::from_fn(|j| unsafe {
                            _mm512_loadu_ps(xr.add(kx * cin + j * L))
                        })
                    });
                    for (r, a) in acc.iter_mut().enumerate() {
                        let gv = _mm512_set1_ps(unsafe { *gp.add((co0 + r) * gs + p) });
                        for (ak, vk) in a.iter_mut().zip(v) {
                            for (aj, vj) in ak.iter_mut().zip(vk) {
                                *aj = _mm512_fmadd_ps(gv, vj, *aj);
                            }
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    for (kx, ak) in a.iter().enumerate() {
                        for (j, &aj) in ak.iter().enumerate() {
                            let i = at(ky * 3 + kx, co0 + r, ci0 + j * L);
                            unsafe { _mm512_storeu_ps(dp.add(i), aj) };
                        }
                    }
                }
            }
        }
    }
}

/// Weight gradient of one single-channel image, accumulated into `dwt[t * cout + co]`:
/// `sum_{p < np} gw[co][p] * xpad[p + off(t)]`, `gw` with plane stride `gs`, zero wherever
/// the position is not an image pixel.
fn weight_grad_1ch(grid: Grid, cout: usize, xpad: &[f32], gw: &[f32], gs: usize, dwt: &mut [f32]) {
    assert!(
        cout.is_multiple_of(2) && cout > 0,
        "weight_grad_1ch: {cout} outputs"
    );
    assert!(xpad.len() >= grid.cs, "weight_grad_1ch: input too short");
    assert!(
        gw.len() >= (cout - 1) * gs + grid.np,
        "weight_grad_1ch: gradient too short"
    );
    assert!(dwt.len() >= 9 * cout, "weight_grad_1ch: output too short");
    assert!(available(), "weight_grad_1ch: no AVX-512");
    // SAFETY: avx512f checked; reads of `xpad` below `np + 2 * pw + 2 = cs`, of `gw` below
    // `(cout - 1) * gs + np`: asserted; `dwt` is indexed safely.
    unsafe { weight_grad_1ch_avx512(grid, cout, xpad, gw, gs, dwt) }
}

#[target_feature(enable = "avx512f")]
unsafe fn weight_grad_1ch_avx512(
    grid: Grid,
    cout: usize,
    xpad: &[f32],
    gw: &[f32],
    gs: usize,
    dwt: &mut [f32],
) {
    let offs = grid.offsets();
    let (xp, gp) = (xpad.as_ptr(), gw.as_ptr());
    for co0 in (0..cout).step_by(2) {
        let mut acc = [[_mm512_setzero_ps(); 9]; 2];
        for p in (0..grid.np).step_by(L) {
            // SAFETY: within the bounds stated by `weight_grad_1ch`.
            let gv: [__m512; 2] =
                std::array::from_fn(|r| unsafe { _mm512_loadu_ps(gp.add((co0 + r) * gs + p)) });
            for (t, &off) in offs.iter().enumerate() {
                let v = unsafe { _mm512_loadu_ps(xp.add(p + off)) };
                for (a, &gr) in acc.iter_mut().zip(&gv) {
                    a[t] = _mm512_fmadd_ps(gr, v, a[t]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            for (t, &v) in a.iter().enumerate() {
                dwt[t * cout + co0 + r] += _mm512_reduce_add_ps(v);
            }
        }
    }
}

/// `db[c] += sum_{p < np} gw[c * cs + p]` for `c < channels`, in 16 lanes with four
/// accumulators (a fixed order; a scalar running sum is one long dependency chain).
fn plane_sums(grid: Grid, channels: usize, gw: &[f32], db: &mut [f32]) {
    assert!(grid.np.is_multiple_of(L), "plane_sums: np");
    assert!(channels == 0 || gw.len() >= (channels - 1) * grid.cs + grid.np);
    assert!(
        db.len() >= channels && available(),
        "plane_sums: db / AVX-512"
    );
    // SAFETY: avx512f checked; reads below `(channels - 1) * cs + np`, asserted.
    unsafe { plane_sums_avx512(grid, channels, gw, db) }
}

#[target_feature(enable = "avx512f")]
unsafe fn plane_sums_avx512(grid: Grid, channels: usize, gw: &[f32], db: &mut [f32]) {
    for (c, d) in db.iter_mut().enumerate().take(channels) {
        let mut acc = [_mm512_setzero_ps(); 4];
        for (k, p) in (0..grid.np).step_by(L).enumerate() {
            // SAFETY: `c * cs + p + 15 < (channels - 1) * cs + np`.
            let v = unsafe { _mm512_loadu_ps(gw.as_ptr().add(c * grid.cs + p)) };
            acc[k % 4] = _mm512_add_ps(acc[k % 4], v);
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        *d += _mm512_reduce_add_ps(s);
    }
}

/// Copy the `cout` padded gradient planes of `gpad` into packed `(cout, h, w)` planes.
fn pack_planes(g: ConvGeom, grid: Grid, gpad: &[f32], out: &mut [f32]) {
    for (co, plane) in out.chunks_exact_mut(g.hw()).enumerate().take(g.cout) {
        for (r, row) in plane.chunks_exact_mut(g.w).enumerate() {
            let at = co * grid.cs + (r + 1) * grid.pw + 1;
            row.copy_from_slice(&gpad[at..at + g.w]);
        }
    }
}

/// Whether layer `g`'s weight gradient runs through [`winograd::WeightGrad`].
fn use_winograd_weight_grad(g: ConvGeom) -> bool {
    g.cin >= WINOGRAD_MIN_CIN && winograd::weight_grad_fits(g) && winograd_on()
}

/// The input gradient of layer `g` as a convolution: of the output gradient, with the
/// flipped, transposed weights.
fn input_gradient_geom(g: ConvGeom) -> ConvGeom {
    ConvGeom {
        cin: g.cout,
        cout: g.cin,
        ..g
    }
}

/// Scratch values for the input gradient of layer `g`.
fn dx_scratch_len(g: ConvGeom) -> usize {
    with_winograd_scratch(input_gradient_geom(g), g.cin * Grid::new(g).np)
}

/// The backward pass of one layer, one image at a time, with its scratch kept between images.
pub(crate) struct LayerBackward {
    g: ConvGeom,
    grid: Grid,
    /// ReLU-masked output gradient, `cout` padded planes.
    gpad: Vec<f32>,
    /// Padded input: planes (one channel) or channels-last (the rest).
    xin: Vec<f32>,
    /// Wide input gradient, `cin` planes of `np` (or the Winograd scratch).
    dxw: Vec<f32>,
    /// With a Winograd input gradient: its zero bias.
    winograd_dx: Option<Vec<f32>>,
    /// The Winograd weight gradient's sums over the chunk, when it runs.
    wgrad: Option<winograd::WeightGrad>,
    /// The ReLU-masked output gradient as packed planes, for the Winograd kernels (empty
    /// when neither runs).
    gmask: Vec<f32>,
    /// Whether this scratch has room for the input gradient.
    need_dx: bool,
    /// Whether images were added since the last [`LayerBackward::finish`] (the sums are then
    /// not empty, and the scratch must not be reused for another chunk).
    pending: bool,
}

thread_local! {
    /// Each worker thread's scratch for the two-layer backward pass, kept between chunks and
    /// batches: with the Winograd sums it is over a megabyte, and fresh allocations of that
    /// size are faulted in (and zeroed by the kernel) again every time.
    static PAIR: RefCell<Option<[LayerBackward; 2]>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's backward scratch for layers `g1` (no input gradient) and `g2`
/// (with it), made anew when the geometries differ or the last use did not finish. `f` must
/// not run rayon work: a task stolen onto this thread while the scratch is borrowed could
/// ask for it again.
pub(crate) fn with_pair_scratch<R>(
    (g1, g2): (ConvGeom, ConvGeom),
    f: impl FnOnce(&mut LayerBackward, &mut LayerBackward) -> R,
) -> R {
    PAIR.with(|p| {
        let mut p = p.borrow_mut();
        let [a, b] = kept_or_new(
            &mut p,
            |[a, b]| a.reusable_for(g1, false) && b.reusable_for(g2, true),
            || [LayerBackward::new(g1, false), LayerBackward::new(g2, true)],
        );
        f(a, b)
    })
}

thread_local! {
    /// Each worker thread's scratch for one layer's backward pass ([`backward_task`]), kept
    /// for the same reason as [`PAIR`].
    static SINGLE: RefCell<Option<LayerBackward>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's backward scratch for layer `g` (with the input gradient when
/// `need_dx`), made anew when it does not fit or the last use did not finish. As for
/// [`with_pair_scratch`], `f` must not run rayon work.
fn with_layer_scratch<R>(g: ConvGeom, need_dx: bool, f: impl FnOnce(&mut LayerBackward) -> R) -> R {
    SINGLE.with(|l| {
        let mut l = l.borrow_mut();
        f(kept_or_new(
            &mut l,
            |a| a.reusable_for(g, need_dx),
            || LayerBackward::new(g, need_dx),
        ))
    })
}

/// The scratch kept in `slot` when `reusable` says it may serve again, else a new one.
fn kept_or_new<T>(
    slot: &mut Option<T>,
    reusable: impl FnOnce(&T) -> bool,
    new: impl FnOnce() -> T,
) -> &mut T {
    if !slot.as_ref().is_some_and(reusable) {
        *slot = None;
    }
    slot.get_or_insert_with(new)
}

impl LayerBackward {
    /// Scratch for layer `g` (and its input gradient when `need_dx`). Needs [`backward_fits`].
    pub(crate) fn new(g: ConvGeom, need_dx: bool) -> Self {
        let grid = Grid::new(g);
        let xin_len = if g.cin == 1 {
            grid.cs
        } else {
            (grid.np + 2 * grid.pw + 2) * g.cin
        };
        Self {
            g,
            grid,
            gpad: vec![0f32; g.cout * grid.cs],
            xin: vec![0f32; xin_len],
            dxw: vec![0f32; if need_dx { dx_scratch_len(g) } else { 0 }],
            winograd_dx: (need_dx && use_winograd(input_gradient_geom(g)))
                .then(|| vec![0f32; g.cin]),
            wgrad: use_winograd_weight_grad(g).then(|| winograd::WeightGrad::new(g)),
            gmask: Vec::new(),
            need_dx,
            pending: false,
        }
    }

    /// Whether this scratch may serve layer `g` (with the input gradient when `need_dx`) for a
    /// new chunk: same shape, and its last chunk finished.
    fn reusable_for(&self, g: ConvGeom, need_dx: bool) -> bool {
        self.g == g && self.need_dx == need_dx && !self.pending
    }

    /// Add the weight gradient still held in the chunk's sums into `dwt` (`(tap, cout, cin)`);
    /// call once after the chunk's last image.
    pub(crate) fn finish(&mut self, dwt: &mut [f32]) {
        if let Some(w) = &mut self.wgrad {
            w.finish(dwt);
        }
        self.pending = false;
    }

    /// One image: input `xi`, output `yi`, output gradient `gi`; accumulates the weight
    /// gradient (`(tap, cout, cin)`) into `dwt` and the bias gradient into `db`, and writes the
    /// input gradient into `dxi` when `wt` (the flipped, transposed weights) is given. On the
    /// Winograd path the weight gradient is held in the chunk's sums and reaches `dwt` only in
    /// [`LayerBackward::finish`], which must follow the chunk's last image.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn image(
        &mut self,
        (xi, yi, gi): (&[f32], &[f32], &[f32]),
        relu: bool,
        wt: Option<&[f32]>,
        dxi: &mut [f32],
        dwt: &mut [f32],
        db: &mut [f32],
    ) {
        let (g, grid) = (self.g, self.grid);
        let (hw, pw) = (g.hw(), grid.pw);
        self.pending = true;
        // The padded gradient's junk cells stay zero: only image cells are written.
        for co in 0..g.cout {
            for r in 0..g.h {
                let at = co * grid.cs + (r + 1) * pw + 1;
                let dst = &mut self.gpad[at..at + g.w];
                let src = co * hw + r * g.w..co * hw + (r + 1) * g.w;
                for ((d, &yv), &gv) in dst.iter_mut().zip(&yi[src.clone()]).zip(&gi[src]) {
                    *d = if !relu || yv > 0.0 { gv } else { 0.0 };
                }
            }
        }
        // Output position p of the wide grid reads gradient cell p + pw + 1.
        let gw = &self.gpad[pw + 1..];
        plane_sums(grid, g.cout, gw, db);
        if self.wgrad.is_some() || self.winograd_dx.is_some() {
            self.gmask.resize(g.out_len(), 0.0);
            pack_planes(g, grid, &self.gpad, &mut self.gmask);
        }
        if let Some(wg) = &mut self.wgrad {
            wg.image(xi, &self.gmask);
        } else if g.cin == 1 {
            grid.pad(xi, 1, &mut self.xin);
            weight_grad_1ch(grid, g.cout, &self.xin, gw, grid.cs, dwt);
        } else {
            for ci in 0..g.cin {
                for r in 0..g.h {
                    let src = &xi[ci * hw + r * g.w..ci * hw + (r + 1) * g.w];
                    let base = ((r + 1) * pw + 1) * g.cin + ci;
                    for (c, &v) in src.iter().enumerate() {
                        self.xin[base + c * g.cin] = v;
                    }
                }
            }
            weight_grad_cl(grid, g, &self.xin, gw, grid.cs, dwt);
        }
        if let (Some(wt), Some(zero)) = (wt, &self.winograd_dx) {
            let dg = input_gradient_geom(g);
            winograd::forward(dg, &self.gmask, wt, zero, false, dxi, &mut self.dxw);
        } else if let Some(wt) = wt {
            direct_conv(
                grid,
                (g.cout, g.cin),
                &self.gpad,
                wt,
                None,
                false,
                &mut self.dxw,
            );
            grid.unpad(&self.dxw, g.cin, dxi);
        }
    }
}

/// Backward pass of images `i0..i1` (see [`crate::conv::backward_batch`]): the weight gradient
/// (laid out `(tap, cout, cin)`) and bias gradient of the chunk, and the input gradients into
/// `dx_chunk` when `wt` (the flipped, transposed weights) is given. Needs [`backward_fits`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_task(
    g: ConvGeom,
    (x, y, gy): (&[f32], &[f32], &[f32]),
    relu: bool,
    wt: Option<&[f32]>,
    (i0, i1): (usize, usize),
    dx_chunk: &mut [f32],
    dwt: &mut [f32],
    db: &mut [f32],
) {
    with_layer_scratch(g, wt.is_some(), |layer| {
        for i in i0..i1 {
            let yi = &y[i * g.out_len()..(i + 1) * g.out_len()];
            let gi = &gy[i * g.out_len()..(i + 1) * g.out_len()];
            let xi = &x[i * g.in_len()..(i + 1) * g.in_len()];
            let local = i - i0;
            let dxi = match wt {
                Some(_) => &mut dx_chunk[local * g.in_len()..(local + 1) * g.in_len()],
                None => &mut [],
            };
            layer.image((xi, yi, gi), relu, wt, dxi, dwt, db);
        }
        layer.finish(dwt);
    });
}

#[cfg(test)]
pub(crate) mod tests {
    //! Each AVX-512 kernel against the portable (`gemm` / im2col) one. The summation orders
    //! differ, so values are compared with a tolerance relative to the sum of the absolute
    //! terms (what rounding can move), and bit-identity across thread counts is checked on
    //! the whole batch functions that dispatch to these kernels.
    use super::*;
    use crate::conv;

    /// `n` deterministic values in [-1, 1] (the Winograd tests use them too).
    pub(crate) fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (v % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The portable (im2col + `gemm`) forward pass of one image, the reference of the
    /// AVX-512 and Winograd forward tests.
    pub(crate) fn portable_forward(
        g: ConvGeom,
        (x, w, b): (&[f32], &[f32], &[f32]),
        relu: bool,
    ) -> Vec<f32> {
        let mut out = vec![0f32; g.out_len()];
        let mut cols = vec![0f32; conv::forward_scratch_len(g)];
        conv::forward_image_portable(g, x, w, b, relu, &mut out, &mut cols);
        out
    }

    /// `|a - b| <= tol * scale` elementwise.
    fn assert_close(a: &[f32], b: &[f32], scale: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 2e-6 * scale,
            "{what}: worst difference {worst} (scale {scale})"
        );
        assert!(a.iter().any(|v| *v != 0.0), "{what}: all zero");
    }

    const GEOMS: [ConvGeom; 3] = [
        ConvGeom {
            cin: 1,
            cout: 32,
            h: 28,
            w: 28,
        },
        ConvGeom {
            cin: 32,
            cout: 16,
            h: 28,
            w: 28,
        },
        ConvGeom {
            cin: 32,
            cout: 8,
            h: 5,
            w: 7,
        },
    ];

    #[test]
    fn forward_matches_the_portable_kernel() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        for g in GEOMS {
            let x = data(g.in_len(), 1);
            let w = data(g.weight_len(), 2);
            let b = data(g.cout, 3);
            for relu in [true, false] {
                let mut ours = vec![0f32; g.out_len()];
                let mut scratch = vec![0f32; forward_scratch_len(g)];
                forward_image(g, &x, &w, &b, relu, &mut ours, &mut scratch);
                let theirs = portable_forward(g, (&x, &w, &b), relu);
                // Every term is a product of values in [-1, 1]: at most cin * 9 + 1 of them.
                assert_close(&ours, &theirs, (g.cin * 9 + 1) as f32, &format!("{g:?}"));
            }
        }
    }

    /// The fused two-layer backward pass gives the layer-by-layer results bit for bit.
    #[test]
    fn fused_pair_backward_matches_layer_by_layer() {
        let (g1, g2) = (GEOMS[0], GEOMS[1]);
        let n = 19;
        let x = data(n * g1.in_len(), 8);
        let w2 = data(g2.weight_len(), 9);
        let a1 = data(n * g1.out_len(), 10);
        let a2 = data(n * g2.out_len(), 11);
        let ga2 = data(n * g2.out_len(), 12);
        let mut da1 = vec![0f32; a1.len()];
        let fused = conv::backward_pair((g1, g2), (&x, &a1, &a2, &ga2), &w2, &mut da1);
        let second = conv::backward_batch_into(g2, (&a1, &w2, &a2, &ga2), true, Some(&mut da1));
        let first = conv::backward_batch_into(g1, (&x, &[], &a1, &da1), true, None);
        assert_eq!(fused, [first, second]);
        assert!(fused[0].0.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn backward_matches_the_portable_kernels() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        for g in GEOMS {
            let n = 11;
            let x = data(n * g.in_len(), 4);
            let w = data(g.weight_len(), 5);
            let y = data(n * g.out_len(), 6);
            let gy = data(n * g.out_len(), 7);
            let need_dx = g.cin > 1;
            assert!(backward_fits(g, need_dx), "{g:?}");
            let ours = conv::backward_batch(g, &x, &w, &y, &gy, true, need_dx);
            let theirs = conv::backward_batch_portable(g, &x, &w, &y, &gy, true, need_dx);
            let what = format!("{g:?}");
            // dW sums n * h * w products; dX cout * 9; db n * h * w values.
            let pixels = (n * g.hw()) as f32;
            assert_close(&ours.dw, &theirs.dw, pixels, &format!("dw {what}"));
            assert_close(&ours.db, &theirs.db, pixels, &format!("db {what}"));
            if need_dx {
                let (a, b) = (ours.dx.unwrap_or_default(), theirs.dx.unwrap_or_default());
                assert_close(&a, &b, (g.cout * 9) as f32, &format!("dx {what}"));
            }
        }
    }
}
