//! The Permutation explainer: antithetic passes over tree-respecting random orders
//! (`SHAP_SPEC.md` section 5), with our own seeded generator by default.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::driver::{RowResult, assemble, check_inputs, name_fn, prepare_all, run_rows};
use crate::eval::Evaluator;
use crate::explanation::{Algorithm, Explanation};
use crate::rng::{NumpyLegacyNormal, numpy_tree_order, seeded_tree_order};
use crate::{BatchModel, ExplainError, ImageMasker, MaskedImages, OutputSelection, Result};
use shap_mask::{ImageShape, PartitionTree};

/// Where the tree-respecting orders come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRng {
    /// ChaCha8 seeded with `seed`, stream = image index: independent of threads and batch
    /// composition.
    Seeded(u64),
    /// shap-compatible: numba's generator seeded in-jit with `seed` (same stream as NumPy's
    /// legacy `randn`), one continuing stream over images and passes in order.
    NumpyLegacy(u32),
}

impl Default for OrderRng {
    fn default() -> Self {
        Self::Seeded(0)
    }
}

/// Antithetic Permutation explainer. Each pass evaluates one tree-respecting order forward
/// (switching features on) and backward (switching them off in the same order): `2M + 1`
/// masks, sent to the model as one batch (split only beyond 4M floats).
///
/// ```
/// use shap_explain::{ConstantMasker, FnModel, ImageShape, ModelError, PermutationExplainer};
/// let model = FnModel::new(1, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
///     for i in 0..n {
///         let img = &x[i * s.features()..(i + 1) * s.features()];
///         out[i] = img[0] * img[1] + img[2];
///     }
///     Ok::<(), ModelError>(())
/// });
/// let shape = ImageShape::new(2, 2, 1);
/// let e = PermutationExplainer::default()
///     .explain(&model, &[1.0, 2.0, 3.0, 4.0], shape, &ConstantMasker { value: 0.0 })
///     .unwrap();
/// // Pairwise interactions are split evenly after one antithetic pass: [1, 1, 3, 0].
/// assert!((e.values[0] - 1.0).abs() < 1e-6 && (e.values[2] - 3.0).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PermutationExplainer {
    /// shap's `max_evals`: `P = max_evals / (2M + 1)` passes (an error when 0). `None`
    /// (default) uses `passes`.
    pub max_evals: Option<usize>,
    /// Number of passes when `max_evals` is `None` (default 10).
    pub passes: usize,
    /// Order generator (default `Seeded(0)`).
    pub rng: OrderRng,
    /// Which outputs to explain (resolved on `f(x)` from the first pass).
    pub outputs: OutputSelection,
    /// Names of all `K` model outputs; default names are the class indices.
    pub output_names: Option<Vec<String>>,
    /// shap-compatible output: all `K` outputs in class order, named `Output i`, ignoring
    /// `outputs` and `output_names` (as shap 0.51 does).
    pub shap_compat: bool,
    /// Compute the standard error of each value across passes (needs at least 2 passes).
    pub std_errors: bool,
}

impl Default for PermutationExplainer {
    fn default() -> Self {
        Self {
            max_evals: None,
            passes: 10,
            rng: OrderRng::default(),
            outputs: OutputSelection::All,
            output_names: None,
            shap_compat: false,
            std_errors: false,
        }
    }
}

impl PermutationExplainer {
    /// shap 0.51-compatible settings: `P = max_evals // (2M+1)` passes, orders from numba's
    /// generator seeded in-jit with `seed`, all `K` outputs named `Output i`.
    pub fn shap_compatible(max_evals: usize, seed: u32) -> Self {
        Self {
            max_evals: Some(max_evals),
            rng: OrderRng::NumpyLegacy(seed),
            shap_compat: true,
            ..Self::default()
        }
    }

    /// Passes per image for `m` features.
    pub fn num_passes(&self, m: usize) -> Result<usize> {
        let per = 2 * m + 1;
        let p = match self.max_evals {
            Some(me) => me / per,
            None => self.passes,
        };
        if p == 0 {
            return Err(ExplainError::MaxEvalsTooSmall {
                algorithm: "permutation",
                max_evals: self.max_evals.unwrap_or(0),
                minimum: per,
            });
        }
        Ok(p)
    }

    /// Generate the orders this explainer uses: `orders[i][p]` is pass `p` of image `i`.
    pub fn orders(&self, n: usize, shape: ImageShape) -> Result<Vec<Vec<Vec<usize>>>> {
        let tree = PartitionTree::new(shape).map_err(|_| ExplainError::InvalidShape(shape))?;
        let p = self.num_passes(shape.features())?;
        Ok(match self.rng {
            OrderRng::Seeded(seed) => (0..n)
                .map(|i| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(i as u64);
                    (0..p).map(|_| seeded_tree_order(&tree, &mut rng)).collect()
                })
                .collect(),
            OrderRng::NumpyLegacy(seed) => {
                let mut rng = NumpyLegacyNormal::new(seed);
                (0..n)
                    .map(|_| (0..p).map(|_| numpy_tree_order(&tree, &mut rng)).collect())
                    .collect()
            }
        })
    }

    /// Explain `images` (`n` images of `shape`, back to back) with `masker`.
    pub fn explain<M: BatchModel + ?Sized, K: ImageMasker>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        masker: &K,
    ) -> Result<Explanation> {
        check_inputs(model, images, shape, None, self.output_names.as_ref())?;
        let prepared = prepare_all(masker, images, shape)?;
        self.explain_prepared(model, images, shape, &prepared)
    }

    /// Explain images already prepared for masking.
    pub fn explain_prepared<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
    ) -> Result<Explanation> {
        let n = check_inputs(
            model,
            images,
            shape,
            Some(prepared.len()),
            self.output_names.as_ref(),
        )?;
        let orders = self.orders(n, shape)?;
        self.explain_with_orders(model, images, shape, prepared, &orders)
    }

    /// Explain with given orders (`orders[i]` = the passes of image `i`, each a permutation of
    /// `0..M`), e.g. orders recorded from shap. `max_evals`/`passes`/`rng` are not used.
    pub fn explain_with_orders<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
        orders: &[Vec<Vec<usize>>],
    ) -> Result<Explanation> {
        let t0 = Instant::now();
        let names = if self.shap_compat {
            None
        } else {
            self.output_names.as_ref()
        };
        let n = check_inputs(model, images, shape, Some(prepared.len()), names)?;
        let m = shape.features();
        if orders.len() != n {
            return Err(ExplainError::ShapeMismatch {
                what: "orders (one list per image)".into(),
                expected: n,
                got: orders.len(),
            });
        }
        for (i, passes) in orders.iter().enumerate() {
            if passes.is_empty() {
                return Err(ExplainError::InvalidConfig(format!(
                    "image {i}: no permutation passes"
                )));
            }
            for order in passes {
                let mut seen = vec![false; m];
                let ok = order.len() == m
                    && order
                        .iter()
                        .all(|&f| f < m && !std::mem::replace(&mut seen[f], true));
                if !ok {
                    return Err(ExplainError::InvalidConfig(format!(
                        "image {i}: an order is not a permutation of 0..{m}"
                    )));
                }
            }
        }
        let outputs = if self.shap_compat {
            OutputSelection::All
        } else {
            self.outputs.clone()
        };
        outputs.validate(model.num_outputs())?;
        let m = shape.features();
        let rows = run_rows(n, true, |i| {
            let original = &images[i * m..(i + 1) * m];
            self.row(
                model,
                &prepared[i],
                original,
                shape,
                i,
                &orders[i],
                &outputs,
            )
        })?;
        let wall = t0.elapsed();
        if self.shap_compat {
            Ok(assemble(
                Algorithm::Permutation,
                shape,
                images,
                rows,
                |o| format!("Output {o}"),
                wall,
            ))
        } else {
            Ok(assemble(
                Algorithm::Permutation,
                shape,
                images,
                rows,
                name_fn(names),
                wall,
            ))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn row<M: BatchModel + ?Sized, P: MaskedImages + ?Sized>(
        &self,
        model: &M,
        prepared: &P,
        original: &[f32],
        shape: ImageShape,
        image: usize,
        passes: &[Vec<usize>],
        outputs: &OutputSelection,
    ) -> Result<RowResult> {
        let m = shape.features();
        let mut ev = Evaluator::new(model, prepared, original, shape, image);
        let k_all = ev.num_outputs();
        let mut acc = vec![0.0f64; m * k_all];
        // Welford statistics of the per-pass estimates, for standard errors.
        let want_se = self.std_errors && passes.len() >= 2;
        let mut mean = if want_se {
            vec![0.0f64; m * k_all]
        } else {
            Vec::new()
        };
        let mut m2 = if want_se {
            vec![0.0f64; m * k_all]
        } else {
            Vec::new()
        };
        let mut pass_est = if want_se {
            vec![0.0f64; m * k_all]
        } else {
            Vec::new()
        };
        let mut base = Vec::new();
        let mut fx = Vec::new();
        for (p, order) in passes.iter().enumerate() {
            let y = ev.eval_rows(2 * m + 1, |r, row| {
                let on = if r <= m { &order[..r] } else { &order[r - m..] };
                for &f in on {
                    row[f] = true;
                }
            })?;
            let yr = |r: usize| &y[r * k_all..(r + 1) * k_all];
            for (t, &f) in order.iter().enumerate() {
                let (a, b) = (yr(t + 1), yr(t));
                for o in 0..k_all {
                    acc[f * k_all + o] += a[o] - b[o];
                }
            }
            for (t, &f) in order.iter().enumerate() {
                let (a, b) = (yr(m + t), yr(m + t + 1));
                for o in 0..k_all {
                    acc[f * k_all + o] += a[o] - b[o];
                }
            }
            if want_se {
                for (t, &f) in order.iter().enumerate() {
                    for o in 0..k_all {
                        let fwd = yr(t + 1)[o] - yr(t)[o];
                        let bwd = yr(m + t)[o] - yr(m + t + 1)[o];
                        pass_est[f * k_all + o] = (fwd + bwd) / 2.0;
                    }
                }
                let cnt = (p + 1) as f64;
                for ((x, mu), s) in pass_est.iter().zip(mean.iter_mut()).zip(m2.iter_mut()) {
                    let d = x - *mu;
                    *mu += d / cnt;
                    *s += d * (x - *mu);
                }
            }
            base = yr(0).to_vec();
            fx = yr(m).to_vec();
        }
        let sel = outputs.resolve(&fx)?;
        let k = sel.len();
        let denom = (2 * passes.len()) as f64;
        let mut values = Vec::with_capacity(m * k);
        for f in 0..m {
            for &o in &sel {
                values.push(acc[f * k_all + o] / denom);
            }
        }
        let std_errors = want_se.then(|| {
            let pc = passes.len() as f64;
            let mut se = Vec::with_capacity(m * k);
            for f in 0..m {
                for &o in &sel {
                    se.push((m2[f * k_all + o] / (pc - 1.0)).max(0.0).sqrt() / pc.sqrt());
                }
            }
            se
        });
        Ok(RowResult {
            values,
            std_errors,
            base: sel.iter().map(|&o| base[o]).collect(),
            fx: sel.iter().map(|&o| fx[o]).collect(),
            outputs: sel,
            evals: ev.evals,
            calls: ev.calls,
            model_time: ev.model_time,
            elapsed: std::time::Duration::ZERO,
        })
    }
}
