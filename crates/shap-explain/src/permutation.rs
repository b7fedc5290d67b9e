//! The Permutation explainer: antithetic passes over tree-respecting random orders
//! (`docs/permutation-explainer.md`), with our own seeded generator by default.

use std::sync::Mutex;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::antithetic::{Orders, PassJob, PassSettings};
use crate::driver::{assemble, check_inputs, name_fn, prepare_all};
use crate::eval::{Counters, Progress, Setup, gather_rows, run_gathered, run_per_image, silent};
use crate::explanation::{Algorithm, Explanation};
use crate::rng::{NumpyLegacyNormal, numpy_tree_order, seeded_tree_order};
use crate::{BatchModel, ExplainError, ImageMasker, MaskedImages, OutputSelection, Result};
use shap_mask::{ImageShape, PartitionTree};

/// The most order indices [`PermutationExplainer::orders`] returns at once (1 GiB).
pub const MAX_ORDER_INDICES: usize = 1 << 27;

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
/// masks, sent to the model in one call per pass where they fit in 4M floats.
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
    /// Which outputs to explain (resolved on `f(x)`; default: the top 5).
    pub outputs: OutputSelection,
    /// Names of all `K` model outputs; default names are the class indices.
    pub output_names: Option<Vec<String>>,
    /// shap-compatible output: all `K` outputs in class order, named `Output i`, ignoring
    /// `outputs` and `output_names` (as shap 0.51 does).
    pub shap_compat: bool,
    /// Compute the standard error of each value across passes (needs at least 2 passes).
    pub std_errors: bool,
    /// With [`OrderRng::Seeded`], image `i` of a call draws its orders from stream
    /// `first_stream + i` (default 0): a batch split into shards, each explained with the
    /// position of its first image here, gets the orders of the whole batch.
    pub first_stream: u64,
}

impl Default for PermutationExplainer {
    fn default() -> Self {
        Self {
            max_evals: None,
            passes: 10,
            rng: OrderRng::default(),
            outputs: OutputSelection::default(),
            output_names: None,
            shap_compat: false,
            std_errors: false,
            first_stream: 0,
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
        // All orders at once is n * p * M indices: refuse what cannot be held (the explainers
        // themselves draw one pass at a time and need none of this).
        let total = n
            .checked_mul(p)
            .and_then(|x| x.checked_mul(shape.features()));
        if total.is_none_or(|t| t > MAX_ORDER_INDICES) {
            return Err(ExplainError::InvalidConfig(format!(
                "{n} images x {p} passes x {} features is more than {MAX_ORDER_INDICES} order \
                 indices to hold at once",
                shape.features()
            )));
        }
        Ok(match self.rng {
            OrderRng::Seeded(seed) => (0..n)
                .map(|i| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(self.first_stream.wrapping_add(i as u64));
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
        self.explain_with_progress(model, images, shape, masker, &silent)
    }

    /// [`Self::explain`], telling `progress` about each image as soon as it is done.
    pub fn explain_with_progress<M: BatchModel + ?Sized, K: ImageMasker>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        masker: &K,
        progress: &dyn Progress,
    ) -> Result<Explanation> {
        check_inputs(model, images, shape, None, self.output_names.as_ref())?;
        let prepared = prepare_all(masker, images, shape)?;
        self.run(model, images, shape, &prepared, progress)
    }

    /// Explain images already prepared for masking.
    pub fn explain_prepared<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
    ) -> Result<Explanation> {
        self.run(model, images, shape, prepared, &silent)
    }

    fn run<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
        progress: &dyn Progress,
    ) -> Result<Explanation> {
        let t0 = Instant::now();
        let n = check_inputs(model, images, shape, Some(prepared.len()), self.names())?;
        let tree = PartitionTree::new(shape).map_err(|_| ExplainError::InvalidShape(shape))?;
        let passes = self.num_passes(shape.features())?;
        let outputs = self.selection();
        outputs.validate(model.num_outputs())?;
        let settings = self.settings(&tree, passes, &outputs, model.num_outputs());
        let setup = Setup {
            model,
            prepared,
            images,
            shape,
            progress,
        };
        let numpy_seed = match self.rng {
            OrderRng::NumpyLegacy(seed) => seed,
            OrderRng::Seeded(_) => 0,
        };
        let numpy = Mutex::new(NumpyLegacyNormal::new(numpy_seed));
        let jobs = match self.rng {
            // One stream over images and passes in order: one image at a time.
            OrderRng::NumpyLegacy(_) => {
                let make = |_| Ok(PassJob::new(&settings, Orders::Numpy(&numpy)));
                run_per_image(&setup, n, false, make)?
            }
            OrderRng::Seeded(seed) => {
                let make = |i: usize| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(self.first_stream.wrapping_add(i as u64));
                    Ok(PassJob::new(&settings, Orders::Seeded(Box::new(rng))))
                };
                match gather_rows(model) {
                    Some(rows) => {
                        let per_image = (2 * shape.features() + 1).min(settings.chunk());
                        let group = (rows / per_image).max(1);
                        run_gathered(&setup, n, group, rows, make)?
                    }
                    None => run_per_image(&setup, n, true, make)?,
                }
            }
        };
        self.assemble(shape, images, jobs, t0)
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
        let n = check_inputs(model, images, shape, Some(prepared.len()), self.names())?;
        check_orders(orders, n, shape.features())?;
        let tree = PartitionTree::new(shape).map_err(|_| ExplainError::InvalidShape(shape))?;
        let outputs = self.selection();
        outputs.validate(model.num_outputs())?;
        let setup = Setup {
            model,
            prepared,
            images,
            shape,
            progress: &silent,
        };
        // Each image may have its own number of passes.
        let settings: Vec<PassSettings> = orders
            .iter()
            .map(|o| self.settings(&tree, o.len(), &outputs, model.num_outputs()))
            .collect();
        let jobs = run_per_image(&setup, n, true, |i| {
            Ok(PassJob::new(&settings[i], Orders::Given(&orders[i])))
        })?;
        self.assemble(shape, images, jobs, t0)
    }

    /// Output names as configured (none in shap-compatible mode).
    fn names(&self) -> Option<&Vec<String>> {
        if self.shap_compat {
            None
        } else {
            self.output_names.as_ref()
        }
    }

    /// The outputs to explain: all of them in shap-compatible mode.
    fn selection(&self) -> OutputSelection {
        if self.shap_compat {
            OutputSelection::All
        } else {
            self.outputs.clone()
        }
    }

    fn settings<'a>(
        &self,
        tree: &'a PartitionTree,
        passes: usize,
        outputs: &'a OutputSelection,
        k_all: usize,
    ) -> PassSettings<'a> {
        PassSettings {
            tree,
            passes,
            outputs,
            std_errors: self.std_errors,
            k_all,
        }
    }

    fn assemble(
        &self,
        shape: ImageShape,
        images: &[f32],
        jobs: Vec<(PassJob<'_>, Counters)>,
        t0: Instant,
    ) -> Result<Explanation> {
        let rows = jobs
            .into_iter()
            .map(|(job, c)| job.finish(c))
            .collect::<Result<Vec<_>>>()?;
        let wall = t0.elapsed();
        Ok(if self.shap_compat {
            assemble(
                Algorithm::Permutation,
                shape,
                images,
                rows,
                |o| format!("Output {o}"),
                wall,
            )
        } else {
            assemble(
                Algorithm::Permutation,
                shape,
                images,
                rows,
                name_fn(self.names()),
                wall,
            )
        })
    }
}

/// Check that `orders` has one non-empty list of permutations of `0..m` per image.
fn check_orders(orders: &[Vec<Vec<usize>>], n: usize, m: usize) -> Result<()> {
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
    Ok(())
}
