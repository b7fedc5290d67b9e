//! Fast CPU 3x3 convolution (stride 1, padding 1) fused with bias and ReLU.
//!
//! The kernels work on one image at a time: the image is unfolded (im2col) a few output rows at
//! a time into a buffer small enough to stay in the L2 cache, and multiplied with the weight
//! matrix by a direct call to the `gemm` crate (single-threaded; parallelism comes from rayon
//! over images). Every image is computed independently with fixed-size calls, so results do not
//! depend on the batch size or on the number of threads.
//!
//! The backward pass works on fixed chunks of [`IMAGES_PER_TASK`] images: each chunk
//! accumulates its own weight/bias gradient, and the chunk partials are summed in chunk order.
//! The chunking depends only on the batch size, never on the thread count, so gradients are
//! bit-for-bit reproducible.
//!
//! [`Conv3x3Relu`] wraps the kernels as a Candle [`candle_core::CustomOp3`] with a
//! backward pass, so the rest of the network uses Candle's autograd as usual.
//!
//! On CPUs with AVX-512F the per-image work runs on the direct-convolution kernels of the
//! private `avx512` module instead (chosen once at run time; `SHAP_MODEL_NO_AVX512` forces the
//! path described above). The chunking and the reduction order are the same on both paths, so
//! each path is bit-for-bit reproducible whatever the thread count; the two paths differ from
//! each other in the last bits (another summation order).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Images handled by one backward task (fixed, so the reduction order is fixed).
pub const IMAGES_PER_TASK: usize = 8;

pub use crate::geometry::ConvGeom;

/// `dst[m x n] (+)= lhs[m x k] * rhs[k x n]` with arbitrary `(row, column)` strides,
/// single-threaded (so results never depend on the thread count).
///
/// Every index the call can touch is checked against the slice lengths first, so the unsafe
/// `gemm` call cannot read or write out of bounds.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |r: usize, rs: usize, c: usize, cs: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(
        last(m, dst_rs, n, dst_cs) < dst.len(),
        "gemm dst out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_rs + c * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!(
        last(m, lhs_rs, k, lhs_cs) < lhs.len(),
        "gemm lhs out of bounds"
    );
    assert!(
        last(k, rhs_rs, n, rhs_cs) < rhs.len(),
        "gemm rhs out of bounds"
    );
    // SAFETY: all pointers are derived from live slices and every offset the call can form
    // (row < m, col < n, depth < k with the given strides) was checked to be in bounds above.
    // `dst` is a unique borrow, so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Unfold output rows `r0..r1` of a `(c, h, w)` image into `cols`, laid out
/// `(c * 9) x ((r1 - r0) * w)` with row index `ci * 9 + ky * 3 + kx` (zero padding 1).
pub fn im2col(x: &[f32], c: usize, h: usize, w: usize, r0: usize, r1: usize, cols: &mut [f32]) {
    let ncols = (r1 - r0) * w;
    let hw = h * w;
    for ci in 0..c {
        let plane = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[(ci * 9 + ky * 3 + kx) * ncols..][..ncols];
                for (yi, dst) in row.chunks_exact_mut(w).enumerate() {
                    let sy = (r0 + yi + ky) as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    match kx {
                        0 => {
                            dst[0] = 0.0;
                            dst[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => dst.copy_from_slice(src),
                        _ => {
                            dst[..w - 1].copy_from_slice(&src[1..]);
                            dst[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// Dot product with eight independent accumulators combined in a fixed order.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Scratch sizes needed by [`forward_image`].
pub fn forward_scratch_len(g: ConvGeom) -> usize {
    #[cfg(target_arch = "x86_64")]
    if fast_forward(g) {
        return crate::avx512::forward_scratch_len(g).max(g.cols_len(g.cin));
    }
    g.cols_len(g.cin)
}

/// Whether the forward pass of `g` runs on the AVX-512 kernels on this CPU.
fn fast_forward(g: ConvGeom) -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::avx512::available() && crate::avx512::forward_fits(g);
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Whether the backward pass of `g` runs on the AVX-512 kernels on this CPU.
fn fast_backward(g: ConvGeom, need_dx: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::avx512::available() && crate::avx512::backward_fits(g, need_dx);
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Forward one image: `out = relu(conv3x3(x, w) + b)` (ReLU skipped when `relu` is false).
///
/// `x` is `(cin, h, w)`, `weight` `[cout, cin, 3, 3]`, `bias` `[cout]`, `out` `(cout, h, w)`,
/// `cols` at least [`forward_scratch_len`] values.
pub fn forward_image(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
    cols: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if fast_forward(g) {
        return crate::avx512::forward_image(g, x, weight, bias, relu, out, cols);
    }
    forward_image_portable(g, x, weight, bias, relu, out, cols);
}

/// [`forward_image`] through im2col blocks and `gemm` (AVX2/FMA or portable, chosen by `gemm`).
pub(crate) fn forward_image_portable(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
    cols: &mut [f32],
) {
    let hw = g.hw();
    let k = g.cin * 9;
    let rows = g.rows_per_block(g.cin);
    let mut r0 = 0;
    while r0 < g.h {
        let r1 = (r0 + rows).min(g.h);
        let ncols = (r1 - r0) * g.w;
        im2col(x, g.cin, g.h, g.w, r0, r1, cols);
        let off = r0 * g.w;
        matmul(
            (g.cout, ncols, k),
            &mut out[off..],
            (hw, 1),
            false,
            weight,
            (k, 1),
            cols,
            (ncols, 1),
        );
        for (co, &b) in bias.iter().enumerate().take(g.cout) {
            let seg = &mut out[co * hw + off..co * hw + off + ncols];
            if relu {
                for v in seg.iter_mut() {
                    *v = (*v + b).max(0.0);
                }
            } else {
                for v in seg.iter_mut() {
                    *v += b;
                }
            }
        }
        r0 = r1;
    }
}

/// Forward a batch in parallel (rayon over images). `x` is `(n, cin, h, w)`.
pub fn forward_batch(g: ConvGeom, x: &[f32], weight: &[f32], bias: &[f32], relu: bool) -> Vec<f32> {
    let n = x.len() / g.in_len().max(1);
    let mut out = vec![0f32; n * g.out_len()];
    forward_batch_into(g, x, weight, bias, relu, &mut out);
    out
}

/// [`forward_batch`] into `out` (`n * g.out_len()` values, every one overwritten), so that a
/// training loop can reuse its buffers instead of faulting in fresh pages every step.
pub(crate) fn forward_batch_into(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
) {
    out.par_chunks_mut(g.out_len())
        .zip(x.par_chunks(g.in_len()))
        .for_each_init(
            || vec![0f32; forward_scratch_len(g)],
            |cols, (o, xi)| forward_image(g, xi, weight, bias, relu, o, cols),
        );
}

/// Gradients of a fused conv3x3 + bias + ReLU layer.
#[derive(Debug, Clone)]
pub struct ConvGrads {
    /// Gradient of the input, `(n, cin, h, w)`, when requested.
    pub dx: Option<Vec<f32>>,
    /// Gradient of the weight, `[cout, cin, 3, 3]`.
    pub dw: Vec<f32>,
    /// Gradient of the bias, `[cout]`.
    pub db: Vec<f32>,
}

/// The kernel for the input gradient: `wt[ci, co, ky, kx] = w[co, ci, 2 - ky, 2 - kx]`.
fn flip_transpose(g: ConvGeom, weight: &[f32]) -> Vec<f32> {
    let mut wt = vec![0f32; g.weight_len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            for t in 0..9 {
                wt[(ci * g.cout + co) * 9 + t] = weight[(co * g.cin + ci) * 9 + (8 - t)];
            }
        }
    }
    wt
}

/// Below this many input channels the weight gradient uses im2col instead of per-tap GEMMs
/// (per-tap GEMMs with one input channel degenerate into slow matrix-vector products).
const TAP_GEMM_MIN_CIN: usize = 8;

/// Weight gradient of one image as nine GEMMs with a long inner dimension:
/// `dwt[t] (cout x cin) += gw (cout x H(W+2)) * shift_t(xt) (H(W+2) x cin)`, where `xt` is the
/// input transposed to a zero-padded channels-last grid, so that every tap is a plain offset.
fn tap_weight_grad(g: ConvGeom, xi: &[f32], gw: &[f32], xt: &mut [f32], dwt: &mut [f32]) {
    let hw = g.hw();
    let pw = g.w + 2;
    for ci in 0..g.cin {
        for r in 0..g.h {
            let src = &xi[ci * hw + r * g.w..ci * hw + (r + 1) * g.w];
            let base = ((r + 1) * pw + 1) * g.cin + ci;
            for (c, &v) in src.iter().enumerate() {
                xt[base + c * g.cin] = v;
            }
        }
    }
    let kk = g.h * pw;
    for t in 0..9 {
        let off = ((t / 3) * pw + t % 3) * g.cin;
        matmul(
            (g.cout, g.cin, kk),
            &mut dwt[t * g.cout * g.cin..(t + 1) * g.cout * g.cin],
            (g.cin, 1),
            true,
            gw,
            (kk, 1),
            &xt[off..],
            (g.cin, 1),
        );
    }
}

/// Weight gradient of one image through im2col blocks, accumulated into `dwt` laid out
/// (tap, cout, cin) like [`tap_weight_grad`].
fn im2col_weight_grad(g: ConvGeom, xi: &[f32], gp: &[f32], cols: &mut [f32], dwt: &mut [f32]) {
    let hw = g.hw();
    let rows = g.rows_per_block(g.cin);
    let mut r0 = 0;
    while r0 < g.h {
        let r1 = (r0 + rows).min(g.h);
        let ncols = (r1 - r0) * g.w;
        im2col(xi, g.cin, g.h, g.w, r0, r1, cols);
        // dwt[t][co][ci] += <gp[co, block], cols[ci * 9 + t]>: few input channels make GEMM
        // shapes degenerate, so use fixed-order dot products.
        for ci in 0..g.cin {
            for t in 0..9 {
                let c = &cols[(ci * 9 + t) * ncols..(ci * 9 + t + 1) * ncols];
                for co in 0..g.cout {
                    let gb = &gp[co * hw + r0 * g.w..co * hw + r0 * g.w + ncols];
                    dwt[(t * g.cout + co) * g.cin + ci] += dot(gb, c);
                }
            }
        }
        r0 = r1;
    }
}

/// Backward pass of `y = relu(conv3x3(x, w) + b)` (or without ReLU when `relu` is false).
///
/// `x` is the layer input `(n, cin, h, w)`, `y` its output, `gy` the gradient of the output.
/// The input gradient is computed only when `need_dx` is true.
#[allow(clippy::too_many_arguments)]
pub fn backward_batch(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    y: &[f32],
    gy: &[f32],
    relu: bool,
    need_dx: bool,
) -> ConvGrads {
    let mut dx = vec![0f32; if need_dx { x.len() } else { 0 }];
    let fast = fast_backward(g, need_dx);
    let dx_out = need_dx.then_some(dx.as_mut_slice());
    let (dw, db) = backward_batch_with(g, (x, weight, y, gy), relu, dx_out, fast);
    ConvGrads {
        dx: need_dx.then_some(dx),
        dw,
        db,
    }
}

/// [`backward_batch`] writing the input gradient, when `dx` is given, into it (`x.len()`
/// values, every one overwritten); returns the weight and bias gradients.
pub(crate) fn backward_batch_into(
    g: ConvGeom,
    (x, weight, y, gy): (&[f32], &[f32], &[f32], &[f32]),
    relu: bool,
    dx: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let fast = fast_backward(g, dx.is_some());
    backward_batch_with(g, (x, weight, y, gy), relu, dx, fast)
}

/// [`backward_batch`] on the im2col / `gemm` kernels whatever the CPU.
#[cfg(test)]
pub(crate) fn backward_batch_portable(
    g: ConvGeom,
    x: &[f32],
    weight: &[f32],
    y: &[f32],
    gy: &[f32],
    relu: bool,
    need_dx: bool,
) -> ConvGrads {
    let mut dx = vec![0f32; if need_dx { x.len() } else { 0 }];
    let dx_out = need_dx.then_some(dx.as_mut_slice());
    let (dw, db) = backward_batch_with(g, (x, weight, y, gy), relu, dx_out, false);
    ConvGrads {
        dx: need_dx.then_some(dx),
        dw,
        db,
    }
}

/// Weight and bias gradients of two stacked ReLU layers, `a1 = relu(conv(x))` (geometry `g1`,
/// no input gradient) and `a2 = relu(conv(a1))` (`g2`, weights `w2`), from the gradient `ga2`
/// of `a2`: `[(dw1, db1), (dw2, db2)]`. `da1` is scratch for the input gradient of the second
/// layer (`a1.len()` values).
///
/// Bit-identical to [`backward_batch_into`] on the second layer, then the first: the same
/// per-image arithmetic and the same task chunks reduced in the same order. With AVX-512 the
/// two run image by image in one task, so each image's `da1` is used while in cache instead of
/// making a round trip through memory for the whole batch.
pub(crate) fn backward_pair(
    (g1, g2): (ConvGeom, ConvGeom),
    (x, a1, a2, ga2): (&[f32], &[f32], &[f32], &[f32]),
    w2: &[f32],
    da1: &mut [f32],
) -> [(Vec<f32>, Vec<f32>); 2] {
    if !(fast_backward(g2, true) && fast_backward(g1, false)) {
        let second = backward_batch_into(g2, (a1, w2, a2, ga2), true, Some(&mut *da1));
        let first = backward_batch_into(g1, (x, &[], a1, da1), true, None);
        return [first, second];
    }
    #[cfg(target_arch = "x86_64")]
    return backward_pair_fast((g1, g2), (x, a1, a2, ga2), w2);
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the AVX-512 kernels exist only on x86_64")
}

#[cfg(target_arch = "x86_64")]
fn backward_pair_fast(
    (g1, g2): (ConvGeom, ConvGeom),
    (x, a1, a2, ga2): (&[f32], &[f32], &[f32], &[f32]),
    w2: &[f32],
) -> [(Vec<f32>, Vec<f32>); 2] {
    let n = x.len() / g1.in_len().max(1);
    let wt = flip_transpose(g2, w2);
    let partials: Vec<[(Vec<f32>, Vec<f32>); 2]> = (0..n.div_ceil(IMAGES_PER_TASK))
        .into_par_iter()
        .map(|t| {
            crate::avx512::with_pair_scratch((g1, g2), |l1, l2| {
                let mut dwt = [vec![0f32; g1.weight_len()], vec![0f32; g2.weight_len()]];
                let mut db = [vec![0f32; g1.cout], vec![0f32; g2.cout]];
                let mut da1 = vec![0f32; g2.in_len()];
                let (d1, d2) = dwt.split_at_mut(1);
                let (b1, b2) = db.split_at_mut(1);
                for i in t * IMAGES_PER_TASK..((t + 1) * IMAGES_PER_TASK).min(n) {
                    let a1i = &a1[i * g2.in_len()..(i + 1) * g2.in_len()];
                    let a2i = &a2[i * g2.out_len()..(i + 1) * g2.out_len()];
                    let gi = &ga2[i * g2.out_len()..(i + 1) * g2.out_len()];
                    l2.image(
                        (a1i, a2i, gi),
                        true,
                        Some(&wt),
                        &mut da1,
                        &mut d2[0],
                        &mut b2[0],
                    );
                    let xi = &x[i * g1.in_len()..(i + 1) * g1.in_len()];
                    l1.image((xi, a1i, &da1), true, None, &mut [], &mut d1[0], &mut b1[0]);
                }
                l2.finish(&mut d2[0]);
                l1.finish(&mut d1[0]);
                let [b1, b2] = db;
                [(untap(g1, &dwt[0]), b1), (untap(g2, &dwt[1]), b2)]
            })
        })
        .collect();
    let mut out = [
        (vec![0f32; g1.weight_len()], vec![0f32; g1.cout]),
        (vec![0f32; g2.weight_len()], vec![0f32; g2.cout]),
    ];
    for part in &partials {
        for ((dw, db), (pw, pb)) in out.iter_mut().zip(part) {
            for (a, b) in dw.iter_mut().zip(pw) {
                *a += b;
            }
            for (a, b) in db.iter_mut().zip(pb) {
                *a += b;
            }
        }
    }
    out
}

/// The task split and the fixed-order reduction of [`backward_batch`]; `fast` picks the
/// AVX-512 task kernel.
fn backward_batch_with(
    g: ConvGeom,
    (x, weight, y, gy): (&[f32], &[f32], &[f32], &[f32]),
    relu: bool,
    dx: Option<&mut [f32]>,
    fast: bool,
) -> (Vec<f32>, Vec<f32>) {
    let n = x.len() / g.in_len().max(1);
    let need_dx = dx.is_some();
    let wt = if need_dx {
        flip_transpose(g, weight)
    } else {
        Vec::new()
    };
    let tasks = n.div_ceil(IMAGES_PER_TASK);
    let task_len = IMAGES_PER_TASK * g.in_len();
    // One dx chunk per task (empty slices when no input gradient is needed).
    let mut dx_chunks: Vec<&mut [f32]> = match dx {
        Some(dx) => dx[..n * g.in_len()].chunks_mut(task_len).collect(),
        None => (0..tasks).map(|_| <&mut [f32]>::default()).collect(),
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx_chunks
        .par_iter_mut()
        .enumerate()
        .map(|(t, dx_chunk)| {
            let i0 = t * IMAGES_PER_TASK;
            let span = (i0, (i0 + IMAGES_PER_TASK).min(n));
            // Per-tap weight gradient, laid out (tap, cout, cin); permuted at the end.
            let mut dwt = vec![0f32; g.weight_len()];
            let mut db = vec![0f32; g.cout];
            let wt = need_dx.then_some(wt.as_slice());
            let data = (x, y, gy);
            #[cfg(target_arch = "x86_64")]
            if fast {
                crate::avx512::backward_task(g, data, relu, wt, span, dx_chunk, &mut dwt, &mut db);
                return (untap(g, &dwt), db);
            }
            let _ = fast;
            portable_task(g, data, relu, wt, span, dx_chunk, &mut dwt, &mut db);
            (untap(g, &dwt), db)
        })
        .collect();
    let mut dw = vec![0f32; g.weight_len()];
    let mut db = vec![0f32; g.cout];
    for (pw, pb) in &partials {
        for (a, b) in dw.iter_mut().zip(pw) {
            *a += b;
        }
        for (a, b) in db.iter_mut().zip(pb) {
            *a += b;
        }
    }
    (dw, db)
}

/// A `(tap, cout, cin)` weight gradient in the weight's `[cout, cin, 3, 3]` layout.
fn untap(g: ConvGeom, dwt: &[f32]) -> Vec<f32> {
    let mut dw = vec![0f32; g.weight_len()];
    for t in 0..9 {
        for co in 0..g.cout {
            for ci in 0..g.cin {
                dw[(co * g.cin + ci) * 9 + t] = dwt[(t * g.cout + co) * g.cin + ci];
            }
        }
    }
    dw
}

/// The backward pass of images `i0..i1` on im2col / `gemm`: weight gradient `(tap, cout,
/// cin)` and bias gradient accumulated into `dwt` and `db`, input gradients into `dx_chunk`
/// when `wt` (the flipped, transposed weights) is given.
#[allow(clippy::too_many_arguments)]
fn portable_task(
    g: ConvGeom,
    (x, y, gy): (&[f32], &[f32], &[f32]),
    relu: bool,
    wt: Option<&[f32]>,
    (i0, i1): (usize, usize),
    dx_chunk: &mut [f32],
    dwt: &mut [f32],
    db: &mut [f32],
) {
    let hw = g.hw();
    let mut gp = vec![0f32; g.out_len()];
    let pw = g.w + 2;
    // Input transposed to padded (H+3) x (W+2) x cin, channels last.
    let tap = g.cin >= TAP_GEMM_MIN_CIN;
    let mut xt = vec![0f32; if tap { (g.h + 3) * pw * g.cin } else { 0 }];
    // Masked output gradient on the padded-width grid (cout, H, W+2), zero in the two
    // extra columns so they contribute nothing.
    let mut gw = vec![0f32; if tap { g.cout * g.h * pw } else { 0 }];
    let mut cols = vec![0f32; g.cols_len(g.cout).max(g.cols_len(g.cin))];
    let k_x = g.cout * 9;
    for i in i0..i1 {
        let yi = &y[i * g.out_len()..(i + 1) * g.out_len()];
        let gi = &gy[i * g.out_len()..(i + 1) * g.out_len()];
        if relu {
            for ((p, &yv), &gv) in gp.iter_mut().zip(yi).zip(gi) {
                *p = if yv > 0.0 { gv } else { 0.0 };
            }
        } else {
            gp.copy_from_slice(gi);
        }
        for (co, d) in db.iter_mut().enumerate() {
            *d += gp[co * hw..(co + 1) * hw].iter().sum::<f32>();
        }
        let xi = &x[i * g.in_len()..(i + 1) * g.in_len()];
        if tap {
            for co in 0..g.cout {
                for r in 0..g.h {
                    let src = &gp[co * hw + r * g.w..co * hw + (r + 1) * g.w];
                    gw[(co * g.h + r) * pw..(co * g.h + r) * pw + g.w].copy_from_slice(src);
                }
            }
            tap_weight_grad(g, xi, &gw, &mut xt, dwt);
        } else {
            im2col_weight_grad(g, xi, &gp, &mut cols, dwt);
        }
        if let Some(wt) = wt {
            let local = i - i0;
            let dxi = &mut dx_chunk[local * g.in_len()..(local + 1) * g.in_len()];
            let rows = g.rows_per_block(g.cout);
            let mut r0 = 0;
            while r0 < g.h {
                let r1 = (r0 + rows).min(g.h);
                let ncols = (r1 - r0) * g.w;
                im2col(&gp, g.cout, g.h, g.w, r0, r1, &mut cols);
                matmul(
                    (g.cin, ncols, k_x),
                    &mut dxi[r0 * g.w..],
                    (hw, 1),
                    false,
                    wt,
                    (k_x, 1),
                    &cols,
                    (ncols, 1),
                );
                r0 = r1;
            }
        }
    }
}

/// Candle custom op `relu(conv2d(x, w, padding = 1) + b)` for 3x3 kernels on CPU.
///
/// Arguments: `x` `(n, cin, h, w)`, `w` `[cout, cin, 3, 3]`, `b` `[cout]`, all f32.
/// `input_grad: false` skips the input gradient (for the first layer, whose input is data).
#[derive(Debug, Clone, Copy)]
pub struct Conv3x3Relu {
    /// Whether the backward pass computes the gradient of `x`.
    pub input_grad: bool,
    /// Whether to apply the ReLU.
    pub relu: bool,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("conv3x3: {what} must be f32, got {:?}", s.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => data
            .get(a..b)
            .ok_or_else(|| candle_core::Error::Msg(format!("conv3x3: bad layout for {what}"))),
        None => candle_core::bail!("conv3x3: {what} must be contiguous"),
    }
}

fn geom(x: &Shape, w: &Shape, b: &Shape) -> candle_core::Result<ConvGeom> {
    let (_, cin, h, wd) = x.dims4()?;
    let (cout, wcin, kh, kw) = w.dims4()?;
    let bc = b.dims1()?;
    if wcin != cin || kh != 3 || kw != 3 || bc != cout || h == 0 || wd == 0 {
        candle_core::bail!(
            "conv3x3: incompatible shapes x {x:?}, weight {w:?}, bias {b:?} (need [cout, cin, 3, 3], [cout])"
        );
    }
    Ok(ConvGeom {
        cin,
        cout,
        h,
        w: wd,
    })
}

/// Run `f` on the contiguous f32 CPU data of `t`.
fn with_cpu_f32<R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(cpu) => f(f32_slice(cpu, l, what)?),
        _ => candle_core::bail!("conv3x3: {what} is not on the CPU"),
    }
}

impl CustomOp3 for Conv3x3Relu {
    fn name(&self) -> &'static str {
        "conv3x3-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = geom(l1.shape(), l2.shape(), l3.shape())?;
        let x = f32_slice(s1, l1, "input")?;
        let w = f32_slice(s2, l2, "weight")?;
        let b = f32_slice(s3, l3, "bias")?;
        let n = l1.shape().dims()[0];
        let out = forward_batch(g, x, w, b, self.relu);
        Ok((CpuStorage::F32(out), Shape::from((n, g.cout, g.h, g.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = geom(x.shape(), w.shape(), b.shape())?;
        let need_dx = self.input_grad;
        let grads = with_cpu_f32(x, "input", |xs| {
            with_cpu_f32(w, "weight", |ws| {
                with_cpu_f32(res, "output", |ys| {
                    with_cpu_f32(grad_res, "output gradient", |gs| {
                        Ok(backward_batch(g, xs, ws, ys, gs, self.relu, need_dx))
                    })
                })
            })
        })?;
        let dev = x.device();
        let dx = match grads.dx {
            Some(v) => Some(Tensor::from_vec(v, x.shape(), dev)?),
            None => None,
        };
        let dw = Tensor::from_vec(grads.dw, w.shape(), dev)?;
        let db = Tensor::from_vec(grads.db, b.shape(), dev)?;
        Ok((dx, Some(dw), Some(db)))
    }
}
