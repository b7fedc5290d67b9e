//! Linear imputation of removed pixels, as ROAD (Remove And Debias) fills them: each removed
//! pixel becomes the weighted mean of its neighbours in the image, removed ones included, all
//! solved at once (docs/metrics.md, "ROAD").

use crate::blur::check_image;
use crate::{ImageShape, MaskError};

/// The 8 neighbours and their weights: 1/6 for the edge neighbours, 1/12 for the diagonal
/// ones (they sum to 1).
const NEIGHBOURS: [(isize, isize, f64); 8] = [
    (-1, -1, 1.0 / 12.0),
    (-1, 0, 1.0 / 6.0),
    (-1, 1, 1.0 / 12.0),
    (0, -1, 1.0 / 6.0),
    (0, 1, 1.0 / 6.0),
    (1, -1, 1.0 / 12.0),
    (1, 0, 1.0 / 6.0),
    (1, 1, 1.0 / 12.0),
];

/// The conjugate-gradient iterations stop when the residual is below this share of the
/// right-hand side.
const TOLERANCE: f64 = 1e-13;

/// Most entries of the banded Cholesky factor (64 MiB of f64): a system whose band is larger
/// is solved by conjugate gradients instead, in memory proportional to its unknowns.
const MAX_BAND_ENTRIES: usize = 8 << 20;

/// `image` (`H x W x C`) with every pixel whose `keep` entry (one per pixel) is false
/// replaced, in every channel, by the linear imputation of docs/metrics.md; kept values are
/// copied. Returned in f64, the precision of the solve.
///
/// Errors: an image that does not match `shape` or holds a non-finite value, a `keep` of
/// another length than `H * W`, or no kept pixel (nothing to impute from).
pub fn linear_impute(
    image: &[f32],
    shape: ImageShape,
    keep: &[bool],
) -> Result<Vec<f64>, MaskError> {
    check_image(image, shape)?;
    let p = shape.pixels();
    if keep.len() != p {
        return Err(MaskError::MaskLength {
            expected: p,
            actual: keep.len(),
        });
    }
    if !keep.contains(&true) {
        return Err(MaskError::NothingKept);
    }
    let whole = System::new(shape, keep);
    let mut out: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
    // Removed pixels that touch no other removed pixel through a neighbour do not depend on
    // each other: each connected group is solved alone, with a smaller band.
    for group in whole.groups() {
        match group[..] {
            // A pixel with no removed neighbour: the weighted mean of its neighbours.
            [u] => whole.fill_alone(u, image, shape.channels, &mut out),
            _ => whole.part(&group).fill(image, shape.channels, &mut out),
        }
    }
    Ok(out)
}

/// The equations of the removed pixels: `diag[u] x_u - sum w x_v (v removed) = rhs_u`.
struct System {
    /// Pixel index of each unknown.
    unknowns: Vec<usize>,
    /// Sum of the weights of each unknown's neighbours in the image.
    diag: Vec<f64>,
    /// Per unknown, its removed neighbours (unknown index, weight).
    coupled: Vec<Vec<(usize, f64)>>,
    /// Per unknown, its kept neighbours (pixel index, weight).
    known: Vec<Vec<(usize, f64)>>,
}

impl System {
    /// Solve for every channel and write the unknowns into `out` (interleaved channels).
    fn fill(&self, image: &[f32], channels: usize, out: &mut [f64]) {
        let direct = self.band_entries() <= MAX_BAND_ENTRIES;
        let factor = direct.then(|| self.cholesky());
        for ch in 0..channels {
            let rhs = self.rhs(image, channels, ch);
            let solution = match &factor {
                Some(l) => l.solve(&rhs),
                None => self.solve(&rhs),
            };
            for (&px, v) in self.unknowns.iter().zip(solution) {
                out[px * channels + ch] = v;
            }
        }
    }

    /// [`System::fill`] for the unknown `u` when it is coupled to no other.
    fn fill_alone(&self, u: usize, image: &[f32], channels: usize, out: &mut [f64]) {
        let px = self.unknowns[u];
        for ch in 0..channels {
            out[px * channels + ch] = self.known_sum(u, image, channels, ch) / self.diag[u];
        }
    }

    /// The weighted sum of the kept neighbours of unknown `u` in channel `ch`: its entry of
    /// the right-hand side.
    fn known_sum(&self, u: usize, image: &[f32], channels: usize, ch: usize) -> f64 {
        self.known[u]
            .iter()
            .map(|&(v, w)| w * f64::from(image[v * channels + ch]))
            .sum()
    }

    /// The unknowns in groups connected through coupled neighbours, each in increasing order.
    fn groups(&self) -> Vec<Vec<usize>> {
        let n = self.unknowns.len();
        let mut seen = vec![false; n];
        let mut groups = Vec::new();
        for start in 0..n {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut group = vec![start];
            let mut next = 0;
            while let Some(&u) = group.get(next) {
                next += 1;
                for &(j, _) in &self.coupled[u] {
                    if !seen[j] {
                        seen[j] = true;
                        group.push(j);
                    }
                }
            }
            group.sort_unstable();
            groups.push(group);
        }
        groups
    }

    /// The system of the unknowns `group` (a group of [`System::groups`]) alone.
    fn part(&self, group: &[usize]) -> System {
        let mut local = vec![usize::MAX; self.unknowns.len()];
        for (i, &u) in group.iter().enumerate() {
            local[u] = i;
        }
        System {
            unknowns: group.iter().map(|&u| self.unknowns[u]).collect(),
            diag: group.iter().map(|&u| self.diag[u]).collect(),
            coupled: group
                .iter()
                .map(|&u| {
                    self.coupled[u]
                        .iter()
                        .map(|&(j, w)| (local[j], w))
                        .collect()
                })
                .collect(),
            known: group.iter().map(|&u| self.known[u].clone()).collect(),
        }
    }

    fn new(shape: ImageShape, keep: &[bool]) -> Self {
        let (h, w) = (shape.height, shape.width);
        let unknowns: Vec<usize> = (0..h * w).filter(|&p| !keep[p]).collect();
        let mut var = vec![usize::MAX; h * w];
        for (u, &px) in unknowns.iter().enumerate() {
            var[px] = u;
        }
        let mut s = System {
            diag: vec![0.0; unknowns.len()],
            coupled: vec![Vec::new(); unknowns.len()],
            known: vec![Vec::new(); unknowns.len()],
            unknowns,
        };
        for u in 0..s.unknowns.len() {
            let (y, x) = (s.unknowns[u] / w, s.unknowns[u] % w);
            for &(dy, dx, weight) in &NEIGHBOURS {
                let (Some(ny), Some(nx)) = (y.checked_add_signed(dy), x.checked_add_signed(dx))
                else {
                    continue;
                };
                if ny >= h || nx >= w {
                    continue;
                }
                let v = ny * w + nx;
                s.diag[u] += weight;
                if keep[v] {
                    s.known[u].push((v, weight));
                } else {
                    s.coupled[u].push((var[v], weight));
                }
            }
        }
        s
    }

    /// The right-hand side for channel `ch`: each unknown's kept neighbours, weighted.
    fn rhs(&self, image: &[f32], channels: usize, ch: usize) -> Vec<f64> {
        (0..self.known.len())
            .map(|u| self.known_sum(u, image, channels, ch))
            .collect()
    }

    /// `M v`.
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        for (u, o) in out.iter_mut().enumerate() {
            let coupled: f64 = self.coupled[u].iter().map(|&(j, w)| w * v[j]).sum();
            *o = self.diag[u] * v[u] - coupled;
        }
    }

    /// The lower bandwidth of `M` in the unknowns' order (row by row, so at most `W + 1`).
    fn bandwidth(&self) -> usize {
        self.coupled
            .iter()
            .enumerate()
            .flat_map(|(u, c)| c.iter().map(move |&(j, _)| u.saturating_sub(j)))
            .max()
            .unwrap_or(0)
    }

    /// Entries of the banded factor: unknowns times (bandwidth + 1).
    fn band_entries(&self) -> usize {
        self.unknowns.len().saturating_mul(self.bandwidth() + 1)
    }

    /// The Cholesky factor `L` of `M = L Lᵀ`, stored by band: exact in exact arithmetic, and
    /// `n b²/2` multiply-adds for `n` unknowns and bandwidth `b`.
    fn cholesky(&self) -> Banded {
        let (n, b) = (self.unknowns.len(), self.bandwidth());
        let mut l = Banded {
            n,
            b,
            band: vec![0.0; n * (b + 1)],
        };
        for u in 0..n {
            *l.at(u, u) = self.diag[u];
            for &(j, w) in &self.coupled[u] {
                if j < u {
                    *l.at(u, j) = -w;
                }
            }
        }
        // Column by column: finish column j, then take its outer product from the rows below
        // (each row's update is one contiguous run, with no chain between rows).
        let mut col = vec![0.0; b];
        for j in 0..n {
            let d = l.get(j, j).sqrt();
            *l.at(j, j) = d;
            let below = (j + b).min(n - 1) - j;
            for (t, c) in col[..below].iter_mut().enumerate() {
                let v = l.get(j + 1 + t, j) / d;
                *l.at(j + 1 + t, j) = v;
                *c = v;
            }
            for t in 0..below {
                let i = j + 1 + t;
                let li = col[t];
                for (r, c) in l.row_mut(i, j + 1..i + 1).iter_mut().zip(&col[..=t]) {
                    *r -= li * c;
                }
            }
        }
        l
    }

    /// Solve `M x = rhs` by conjugate gradients with the diagonal as preconditioner (`M` is
    /// symmetric, and positive definite when a pixel is kept).
    fn solve(&self, rhs: &[f64]) -> Vec<f64> {
        let n = rhs.len();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut x = vec![0.0; n];
        let mut r = rhs.to_vec();
        let stop = TOLERANCE * norm(rhs);
        let mut z: Vec<f64> = r.iter().zip(&self.diag).map(|(r, d)| r / d).collect();
        let mut p = z.clone();
        let mut rz = dot(&r, &z);
        let mut mp = vec![0.0; n];
        for _ in 0..(10 * n + 100) {
            if norm(&r) <= stop {
                break;
            }
            self.apply(&p, &mut mp);
            let alpha = rz / dot(&p, &mp);
            x.iter_mut().zip(&p).for_each(|(x, p)| *x += alpha * p);
            r.iter_mut().zip(&mp).for_each(|(r, mp)| *r -= alpha * mp);
            z = r.iter().zip(&self.diag).map(|(r, d)| r / d).collect();
            let rz_next = dot(&r, &z);
            let beta = rz_next / rz;
            rz = rz_next;
            p.iter_mut().zip(&z).for_each(|(p, z)| *p = z + beta * *p);
        }
        x
    }
}

/// `Σ a_k b_k`, in four independent sums so that the loop vectorises.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// A lower-triangular band matrix: row `i` holds columns `i - b ..= i`.
struct Banded {
    n: usize,
    b: usize,
    band: Vec<f64>,
}

impl Banded {
    fn get(&self, i: usize, j: usize) -> f64 {
        self.band[i * (self.b + 1) + self.b + j - i]
    }

    fn at(&mut self, i: usize, j: usize) -> &mut f64 {
        &mut self.band[i * (self.b + 1) + self.b + j - i]
    }

    /// Row `i`'s entries in `columns` (all within its band).
    fn row(&self, i: usize, columns: std::ops::Range<usize>) -> &[f64] {
        let base = i * (self.b + 1) + self.b - i;
        &self.band[base + columns.start..base + columns.end]
    }

    fn row_mut(&mut self, i: usize, columns: std::ops::Range<usize>) -> &mut [f64] {
        let base = i * (self.b + 1) + self.b - i;
        &mut self.band[base + columns.start..base + columns.end]
    }

    /// Solve `L Lᵀ x = rhs`: forward, then backward substitution.
    fn solve(&self, rhs: &[f64]) -> Vec<f64> {
        let (n, b) = (self.n, self.b);
        let mut y = vec![0.0; n];
        for i in 0..n {
            let from = i.saturating_sub(b);
            let d = dot(self.row(i, from..i), &y[from..i]);
            y[i] = (rhs[i] - d) / self.get(i, i);
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            let dot: f64 = (i + 1..(i + b + 1).min(n))
                .map(|k| self.get(k, i) * x[k])
                .sum();
            x[i] = (y[i] - dot) / self.get(i, i);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_kept_pixel_fills_the_image_with_its_value() {
        let shape = ImageShape::new(4, 5, 2);
        let image: Vec<f32> = (0..40).map(|k| k as f32 / 40.0).collect();
        let mut keep = vec![false; 20];
        keep[7] = true;
        let out = linear_impute(&image, shape, &keep).expect("impute");
        for px in 0..20 {
            for ch in 0..2 {
                let want = f64::from(image[7 * 2 + ch]);
                assert!((out[px * 2 + ch] - want).abs() < 1e-12, "pixel {px}");
            }
        }
    }

    #[test]
    fn each_removed_pixel_is_the_weighted_mean_of_its_neighbours() {
        let shape = ImageShape::new(6, 7, 1);
        let image: Vec<f32> = (0..42).map(|k| ((k * 37) % 11) as f32 / 11.0).collect();
        let keep: Vec<bool> = (0..42).map(|k| (k * 5) % 3 != 0).collect();
        let out = linear_impute(&image, shape, &keep).expect("impute");
        let system = System::new(shape, &keep);
        for (u, &px) in system.unknowns.iter().enumerate() {
            let (y, x) = (px / 7, px % 7);
            let mut sum = 0.0;
            for &(dy, dx, w) in &NEIGHBOURS {
                let (ny, nx) = (y as isize + dy, x as isize + dx);
                if (0..6).contains(&ny) && (0..7).contains(&nx) {
                    sum += w * out[ny as usize * 7 + nx as usize];
                }
            }
            assert!((out[px] - sum / system.diag[u]).abs() < 1e-12, "pixel {px}");
        }
        for (k, &kept) in keep.iter().enumerate() {
            if kept {
                assert_eq!(out[k], f64::from(image[k]));
            }
        }
    }

    #[test]
    fn the_direct_and_the_iterative_solutions_agree() {
        let shape = ImageShape::new(11, 13, 1);
        let image: Vec<f32> = (0..143).map(|k| ((k * 29) % 17) as f32 / 17.0).collect();
        for removed in [1, 3, 5] {
            let keep: Vec<bool> = (0..143).map(|k| (k * 7) % (removed + 1) == 0).collect();
            let system = System::new(shape, &keep);
            let rhs = system.rhs(&image, 1, 0);
            let (direct, iterative) = (system.cholesky().solve(&rhs), system.solve(&rhs));
            for (d, i) in direct.iter().zip(&iterative) {
                assert!((d - i).abs() < 1e-11, "{d} against {i}");
            }
        }
    }

    #[test]
    fn nothing_kept_or_a_wrong_mask_is_refused() {
        let shape = ImageShape::new(2, 2, 1);
        let image = [0.0f32; 4];
        assert!(matches!(
            linear_impute(&image, shape, &[false; 4]),
            Err(MaskError::NothingKept)
        ));
        assert!(matches!(
            linear_impute(&image, shape, &[true; 3]),
            Err(MaskError::MaskLength { .. })
        ));
    }
}
