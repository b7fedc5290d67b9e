//! Correlations of two samples (docs/metrics.md, "MuFidelity") and the structural
//! similarity of two maps (docs/metrics.md, "Sanity check").

/// Pearson's correlation of `a` and `b` (same length); 0 when either is constant or there are
/// fewer than two values (the correlation is undefined there).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a[..n].iter().zip(&b[..n]) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// Spearman's correlation: Pearson's on the ranks, tied values taking their average rank.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// 1-based ranks of `v`, ties averaged.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut out = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share the mean of ranks start+1..=end.
        let rank = (start + end + 1) as f64 / 2.0;
        order[start..end].iter().for_each(|&i| out[i] = rank);
        start = end;
    }
    out
}

/// The widest SSIM window: 7 x 7 pixels, scikit-image's default.
pub const SSIM_WINDOW: usize = 7;

/// The mean structural similarity (Wang et al. 2004) of two `height x width` maps, as
/// scikit-image's `structural_similarity(a, b, data_range=range)` computes it by default: a
/// uniform square window (7 pixels, or the largest odd size that fits a smaller map), sample
/// variances and covariance, `K1 = 0.01`, `K2 = 0.03`, and the mean over the positions whose
/// window lies inside the map. `None` when a map is smaller than 3 x 3 pixels or the lengths
/// do not match.
pub fn ssim(a: &[f64], b: &[f64], height: usize, width: usize, range: f64) -> Option<f64> {
    let side = height.min(width);
    let win = SSIM_WINDOW.min(if side.is_multiple_of(2) {
        side.saturating_sub(1)
    } else {
        side
    });
    if win < 3 || a.len() != height * width || b.len() != a.len() {
        return None;
    }
    let np = (win * win) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let (mut total, mut count) = (0.0, 0usize);
    for top in 0..=height - win {
        for left in 0..=width - win {
            let [ma, mb, aa, bb, ab] = window_means(a, b, width, top, left, win);
            let (va, vb) = (cov_norm * (aa - ma * ma), cov_norm * (bb - mb * mb));
            let vab = cov_norm * (ab - ma * mb);
            let num = (2.0 * ma * mb + c1) * (2.0 * vab + c2);
            total += num / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    Some(total / count as f64)
}

/// Means of a, b, a², b² and ab over the `win x win` window at (`top`, `left`).
fn window_means(
    a: &[f64],
    b: &[f64],
    width: usize,
    top: usize,
    left: usize,
    win: usize,
) -> [f64; 5] {
    let mut s = [0.0; 5];
    for r in top..top + win {
        let row = r * width + left..r * width + left + win;
        for (&x, &y) in a[row.clone()].iter().zip(&b[row]) {
            s[0] += x;
            s[1] += y;
            s[2] += x * x;
            s[3] += y * y;
            s[4] += x * y;
        }
    }
    s.map(|v| v / (win * win) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlations_of_known_samples() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-15);
        assert!((pearson(&a, &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-15);
        assert_eq!(pearson(&a, &[5.0; 4]), 0.0);
        assert!((spearman(&a, &[1.0, 10.0, 100.0, 1000.0]) - 1.0).abs() < 1e-15);
        // scipy.stats.pearsonr([1, 2, 3, 4], [1, 3, 2, 4]) = 0.8
        assert!((pearson(&a, &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-15);
    }

    #[test]
    fn ssim_of_a_map_with_itself_is_one_and_small_maps_have_none() {
        let a: Vec<f64> = (0..64).map(|i| ((i * 7) % 11) as f64 / 10.0).collect();
        assert!((ssim(&a, &a, 8, 8, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let b: Vec<f64> = a.iter().map(|v| 1.0 - v).collect();
        assert!(ssim(&a, &b, 8, 8, 1.0).unwrap() < 0.0);
        assert_eq!(ssim(&a[..4], &a[..4], 2, 2, 1.0), None);
        assert_eq!(ssim(&a, &a[..63], 8, 8, 1.0), None);
        // A 4 x 5 map takes a 3 x 3 window.
        assert!(ssim(&a[..20], &a[..20], 4, 5, 1.0).is_some());
    }
}
