//! Random sources: an exact emulation of NumPy's legacy global generator (for shap
//! compatibility, `docs/numpy-legacy-rng.md`) and the tree-respecting shuffle

use rand::Rng;
use shap_mask::PartitionTree;

/// MT19937 seeded like `np.random.seed(seed)` plus NumPy's legacy `randn` (Marsaglia polar
/// method with one cached value). Produces the same stream as `np.random.randn()` after
/// `np.random.seed(seed)`, and as numba's in-jit generator after an in-jit seed.
#[derive(Debug, Clone)]
pub struct NumpyLegacyNormal {
    mt: Box<[u32; 624]>,
    idx: usize,
    cached: Option<f64>,
}

impl NumpyLegacyNormal {
    /// Seed like `np.random.seed(seed)` (MT19937 `init_genrand`).
    pub fn new(seed: u32) -> Self {
        let mut mt = Box::new([0u32; 624]);
        mt[0] = seed;
        for i in 1..624 {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self {
            mt,
            idx: 624,
            cached: None,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[i] = self.mt[(i + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// A uniform double in [0, 1) with 53 random bits (NumPy's `random_sample`).
    pub fn next_double(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One standard normal draw, identical to NumPy's legacy `np.random.randn()`.
    pub fn randn(&mut self) -> f64 {
        if let Some(v) = self.cached.take() {
            return v;
        }
        loop {
            let x1 = 2.0 * self.next_double() - 1.0;
            let x2 = 2.0 * self.next_double() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 > 0.0 && r2 < 1.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached = Some(f * x1);
                return f * x2;
            }
        }
    }
}

/// A depth-first, tree-respecting random order of the leaves: at every internal node one coin
/// decides which subtree comes first (`left_first(node)` returning true = left first). Every
/// node's leaves end up contiguous; all `2^(M-1)` tree-consistent orders are equally likely
/// when the coin is fair.
pub(crate) fn tree_order(tree: &PartitionTree, mut left_first: impl FnMut() -> bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(tree.num_features());
    let mut stack = vec![tree.root()];
    while let Some(node) = stack.pop() {
        match tree.children(node) {
            None => out.push(node),
            Some((l, r)) => {
                // Pre-order: this node's coin is drawn before any coin of its subtrees.
                if left_first() {
                    stack.push(r);
                    stack.push(l);
                } else {
                    stack.push(l);
                    stack.push(r);
                }
            }
        }
    }
    out
}

/// shap's `partition_tree_shuffle` driven by a NumPy-legacy stream: `randn() < 0` = left first.
pub(crate) fn numpy_tree_order(tree: &PartitionTree, rng: &mut NumpyLegacyNormal) -> Vec<usize> {
    tree_order(tree, || rng.randn() < 0.0)
}

/// Tree shuffle with our own seeded generator.
pub(crate) fn seeded_tree_order<R: Rng>(tree: &PartitionTree, rng: &mut R) -> Vec<usize> {
    tree_order(tree, || rng.random::<bool>())
}
