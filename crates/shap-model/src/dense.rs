//! The dense layer's three products for the CPU training step and inference: logits
//! `a * w^T`, the weight gradient `dl^T * a` by column blocks and the input gradient `dl * w`,
//! with `a` `(n, flat)`, `w` `(K, flat)` and `dl` `(n, K)` for `K` = [`CLASSES`] outputs.
//!
//! With AVX-512 (run-time dispatch, see [`crate::avx512`]) each product is one pass over the
//! long `flat` dimension in 16-lane vectors, `K` accumulators at a time; otherwise a `gemm`
//! call. The `gemm` shapes here are skinny (`n = 10`), which `gemm` handles poorly: the three
//! products took about 20% of a training step's CPU time on the 2-core machine of
//! `avx512.rs`'s notes. Each output value is computed by one task in a fixed order, so results
//! do not depend on the thread count.

use crate::conv::matmul;
use crate::geometry::CLASSES;

const K: usize = CLASSES;

/// `out (m x K) = a (m x flat) * w^T`, `w` being `(K, flat)`.
pub(crate) fn logits(a: &[f32], w: &[f32], flat: usize, out: &mut [f32]) {
    let m = out.len() / K;
    #[cfg(target_arch = "x86_64")]
    if fast(flat) {
        return simd::logits(a, w, flat, out);
    }
    matmul((m, K, flat), out, (K, 1), false, a, (flat, 1), w, (1, flat));
}

/// `part (K x nc) = dl^T (K x n) * a[:, c0..c0 + nc]`, `a` being `(n, flat)`, `dl` `(n, K)`.
pub(crate) fn weight_grad(dl: &[f32], a: &[f32], flat: usize, c0: usize, part: &mut [f32]) {
    let (n, nc) = (dl.len() / K, part.len() / K);
    #[cfg(target_arch = "x86_64")]
    if fast(flat) && nc.is_multiple_of(16) && c0.is_multiple_of(16) {
        return simd::weight_grad(dl, a, flat, c0, part);
    }
    matmul(
        (K, nc, n),
        part,
        (nc, 1),
        false,
        dl,
        (1, K),
        &a[c0..],
        (flat, 1),
    );
}

/// `d (m x flat) = dl (m x K) * w`, `w` being `(K, flat)`.
pub(crate) fn input_grad(dl: &[f32], w: &[f32], flat: usize, d: &mut [f32]) {
    let m = d.len() / flat.max(1);
    #[cfg(target_arch = "x86_64")]
    if fast(flat) {
        return simd::input_grad(dl, w, flat, d);
    }
    matmul((m, flat, K), d, (flat, 1), false, dl, (K, 1), w, (flat, 1));
}

#[cfg(target_arch = "x86_64")]
fn fast(flat: usize) -> bool {
    flat.is_multiple_of(16) && flat > 0 && crate::avx512::available()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The AVX-512 products. Every function checks its slice lengths before the unsafe loop.
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_reduce_add_ps,
        _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };

    use super::K;

    const L: usize = 16;

    pub(super) fn logits(a: &[f32], w: &[f32], flat: usize, out: &mut [f32]) {
        let m = out.len() / K;
        assert!(a.len() >= m * flat && w.len() >= K * flat && flat.is_multiple_of(L));
        assert!(crate::avx512::available());
        // SAFETY: avx512f checked; reads below `m * flat` of `a` and `K * flat` of `w`.
        unsafe { logits_avx512(a, w, flat, out) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn logits_avx512(a: &[f32], w: &[f32], flat: usize, out: &mut [f32]) {
        for (i, o) in out.chunks_exact_mut(K).enumerate() {
            let mut acc = [_mm512_setzero_ps(); K];
            for c in (0..flat).step_by(L) {
                // SAFETY: `i * flat + c + 15 < m * flat`, `k * flat + c + 15 < K * flat`.
                let x = unsafe { _mm512_loadu_ps(a.as_ptr().add(i * flat + c)) };
                for (k, acc) in acc.iter_mut().enumerate() {
                    let wv = unsafe { _mm512_loadu_ps(w.as_ptr().add(k * flat + c)) };
                    *acc = _mm512_fmadd_ps(x, wv, *acc);
                }
            }
            for (o, acc) in o.iter_mut().zip(acc) {
                *o = _mm512_reduce_add_ps(acc);
            }
        }
    }

    pub(super) fn weight_grad(dl: &[f32], a: &[f32], flat: usize, c0: usize, part: &mut [f32]) {
        let (n, nc) = (dl.len() / K, part.len() / K);
        assert!(nc.is_multiple_of(L) && c0 + nc <= flat && a.len() >= n * flat);
        assert!(crate::avx512::available());
        // SAFETY: avx512f checked; reads of `a` at `i * flat + c0 + c + 15 < n * flat`.
        unsafe { weight_grad_avx512(dl, a, flat, c0, part) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn weight_grad_avx512(dl: &[f32], a: &[f32], flat: usize, c0: usize, part: &mut [f32]) {
        let nc = part.len() / K;
        for c in (0..nc).step_by(L) {
            let mut acc = [_mm512_setzero_ps(); K];
            for (i, d) in dl.chunks_exact(K).enumerate() {
                // SAFETY: within the bounds checked by `weight_grad`.
                let x = unsafe { _mm512_loadu_ps(a.as_ptr().add(i * flat + c0 + c)) };
                for (acc, &dk) in acc.iter_mut().zip(d) {
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(dk), x, *acc);
                }
            }
            for (k, acc) in acc.iter().enumerate() {
                let dst = &mut part[k * nc + c..k * nc + c + L];
                // SAFETY: `dst` holds exactly 16 values.
                unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *acc) };
            }
        }
    }

    pub(super) fn input_grad(dl: &[f32], w: &[f32], flat: usize, d: &mut [f32]) {
        let m = d.len() / flat;
        assert!(dl.len() >= m * K && w.len() >= K * flat && flat.is_multiple_of(L));
        assert!(crate::avx512::available());
        // SAFETY: avx512f checked; reads of `w` below `K * flat`.
        unsafe { input_grad_avx512(dl, w, flat, d) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn input_grad_avx512(dl: &[f32], w: &[f32], flat: usize, d: &mut [f32]) {
        for (row, dk) in d.chunks_exact_mut(flat).zip(dl.chunks_exact(K)) {
            let g: [__m512; K] = std::array::from_fn(|k| _mm512_set1_ps(dk[k]));
            for c in (0..flat).step_by(L) {
                // SAFETY: `k * flat + c + 15 < K * flat`; `row` holds `flat` values.
                let wv = |k: usize| unsafe { _mm512_loadu_ps(w.as_ptr().add(k * flat + c)) };
                let mut acc = _mm512_mul_ps(g[0], wv(0));
                for (k, gk) in g.iter().enumerate().skip(1) {
                    acc = _mm512_fmadd_ps(*gk, wv(k), acc);
                }
                unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(c), acc) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2001)
            .map(|v| v as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// The AVX-512 products against `gemm` (another summation order: the tolerance is
    /// 2e-6 times the number of terms, each a product of values in [-1, 1]).
    #[test]
    fn avx512_products_match_gemm() {
        if !crate::avx512::available() {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        let (n, flat) = (5, 12544);
        let (a, w, dl) = (data(n * flat, 1), data(K * flat, 2), data(n * K, 3));
        let mut ours = vec![0f32; n * K];
        logits(&a, &w, flat, &mut ours);
        let mut theirs = vec![0f32; n * K];
        matmul(
            (n, K, flat),
            &mut theirs,
            (K, 1),
            false,
            &a,
            (flat, 1),
            &w,
            (1, flat),
        );
        assert!(worst(&ours, &theirs) <= 2e-6 * flat as f32, "logits");
        let (c0, nc) = (1568, 1568);
        let mut ours = vec![0f32; K * nc];
        weight_grad(&dl, &a, flat, c0, &mut ours);
        let mut theirs = vec![0f32; K * nc];
        matmul(
            (K, nc, n),
            &mut theirs,
            (nc, 1),
            false,
            &dl,
            (1, K),
            &a[c0..],
            (flat, 1),
        );
        assert!(worst(&ours, &theirs) <= 2e-6 * n as f32, "weight gradient");
        let mut ours = vec![0f32; n * flat];
        input_grad(&dl, &w, flat, &mut ours);
        let mut theirs = vec![0f32; n * flat];
        matmul(
            (n, flat, K),
            &mut theirs,
            (flat, 1),
            false,
            &dl,
            (K, 1),
            &w,
            (flat, 1),
        );
        assert!(worst(&ours, &theirs) <= 2e-6 * K as f32, "input gradient");
        assert!(ours.iter().any(|&v| v != 0.0));
    }
}
