//! The Permutation explainer: antithetic passes over tree-respecting random orders
//! (`docs/permutation-explainer.md`), with our own seeded generator by default.

use std::sync::Mutex;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::antithetic::{Orders, PassJob, PassSettings};
use crate::driver::{assemble, check_inputs, name_fn};
use crate::eval::{Counters, Progress, Setup, gather_rows, run_gathered, run_per_image, silent};
use crate::explanation::{Algorithm, Explanation};
use crate::rng::{NumpyLegacyNormal, numpy_tree_order, seeded_tree_order};
use crate::{
    BatchModel, Compat, ConfigError, ExplainError, ExplainerConfig, MaskedImages, OutputSelection,
    PermutationBudget, PermutationSettings, Result,
};
use shap_mask::{ImageShape, PartitionTree};

/// The most order indices [`PermutationExplainer::orders`] returns at once (1 GiB).
pub const MAX_ORDER_INDICES: usize = 1 << 27;

/// Where the tree-respecting orders come from (set by [`crate::Compat`] and the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderRng {
    /// ChaCha8 seeded with `seed`, stream = `first_stream` + image index: independent of
    /// threads and batch composition.
    Seeded(u64),
    /// shap-compatible: numba's generator seeded in-jit with `seed` (same stream as NumPy's
    /// legacy `randn`), one continuing stream over images and passes in order.
    NumpyLegacy(u32),
}

/// The checked antithetic Permutation explainer, built by [`crate::ExplainerConfig::check`]
/// and run through [`crate::Explainer`]. Each pass evaluates one tree-respecting order forward
/// (switching features on) and backward (switching them off in the same order): `2M + 1`
/// masks, sent to the model in one call per pass where they fit in 4M floats.
///
/// ```
/// use shap_explain::{ConstantMasker, ExplainerConfig, FnModel, ImageShape, ModelError};
/// let model = FnModel::new(1, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
///     for i in 0..n {
///         let img = &x[i * s.features()..(i + 1) * s.features()];
///         out[i] = img[0] * img[1] + img[2];
///     }
///     Ok::<(), ModelError>(())
/// });
/// let shape = ImageShape::new(2, 2, 1);
/// let e = ExplainerConfig::permutation()
///     .check()
///     .unwrap()
///     .explain(&model, &[1.0, 2.0, 3.0, 4.0], shape, &ConstantMasker { value: 0.0 })
///     .unwrap();
/// // Pairwise interactions are split evenly after one antithetic pass: [1, 1, 3, 0].
/// assert!((e.values[0] - 1.0).abs() < 1e-6 && (e.values[2] - 3.0).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PermutationExplainer {
    pub(crate) config: ExplainerConfig,
    /// Its own settings (the configuration's method).
    settings: PermutationSettings,
    rng: OrderRng,
}

impl PermutationExplainer {
    /// Check `settings`, the Permutation method of `config`.
    pub(crate) fn new(config: ExplainerConfig, settings: PermutationSettings) -> Result<Self> {
        match settings.budget {
            PermutationBudget::Passes(0) => return Err(ConfigError::ZeroPasses.into()),
            // One pass over a single-feature image: the size-dependent check is at explain.
            PermutationBudget::MaxEvals(me) if me < 3 => return Err(config.too_small(me, 3)),
            PermutationBudget::MaxEvals(_) | PermutationBudget::Passes(_) => {}
        }
        if config.compat == Compat::ShapV040 {
            return Err(ConfigError::V040PartitionOnly.into());
        }
        let rng = match config.numpy_seed()? {
            Some(seed) => OrderRng::NumpyLegacy(seed),
            None => OrderRng::Seeded(config.seed),
        };
        Ok(Self {
            config,
            settings,
            rng,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ExplainerConfig {
        &self.config
    }

    /// Its own settings: budget and standard errors.
    pub fn settings(&self) -> &PermutationSettings {
        &self.settings
    }

    /// Passes per image for `m` features: [`PermutationBudget::Passes`], or
    /// `max_evals / (2m + 1)` (an error when 0).
    pub fn num_passes(&self, m: usize) -> Result<usize> {
        let per = 2 * m + 1;
        match self.settings.budget {
            PermutationBudget::MaxEvals(me) if me / per == 0 => Err(self.config.too_small(me, per)),
            PermutationBudget::MaxEvals(me) => Ok(me / per),
            PermutationBudget::Passes(p) => Ok(p),
        }
    }

    /// Generate the orders this explainer uses: `orders[i][p]` is pass `p` of image `i`.
    pub fn orders(&self, n: usize, shape: ImageShape) -> Result<Vec<Vec<Vec<usize>>>> {
        let tree = crate::memory::tree(shape)?;
        let p = self.num_passes(shape.features())?;
        // All orders at once is n * p * M indices: refuse what cannot be held (the explainers
        // themselves draw one pass at a time and need none of this).
        let total = n
            .checked_mul(p)
            .and_then(|x| x.checked_mul(shape.features()));
        if total.is_none_or(|t| t > MAX_ORDER_INDICES) {
            return Err(ConfigError::TooManyOrders {
                images: n,
                passes: p,
                features: shape.features(),
                limit: MAX_ORDER_INDICES,
            }
            .into());
        }
        Ok(match self.rng {
            OrderRng::Seeded(seed) => (0..n)
                .map(|i| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(self.config.first_stream.wrapping_add(i as u64));
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

    /// Explain images prepared for masking (input checks first, then the passes of every
    /// image).
    pub(crate) fn run<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
        progress: &dyn Progress,
    ) -> Result<Explanation> {
        let t0 = Instant::now();
        let n = check_inputs(model, images, shape, Some(prepared.len()), self.names())?;
        let tree = crate::memory::tree(shape)?;
        let passes = self.num_passes(shape.features())?;
        let outputs = self.selection();
        outputs.validate(model.num_outputs())?;
        let settings = self.pass_settings(&tree, passes, &outputs, model.num_outputs());
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
                    rng.set_stream(self.config.first_stream.wrapping_add(i as u64));
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
    /// `0..M`), e.g. orders recorded from shap. The budget and the seed are not used.
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
        let tree = crate::memory::tree(shape)?;
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
            .map(|o| self.pass_settings(&tree, o.len(), &outputs, model.num_outputs()))
            .collect();
        let jobs = run_per_image(&setup, n, true, |i| {
            Ok(PassJob::new(&settings[i], Orders::Given(&orders[i])))
        })?;
        self.assemble(shape, images, jobs, t0)
    }

    /// Output names as configured (none in shap-compatible mode).
    fn names(&self) -> Option<&Vec<String>> {
        if self.config.compat.is_shap() {
            None
        } else {
            self.config.output_names.as_ref()
        }
    }

    /// The outputs to explain: all of them in shap-compatible mode.
    fn selection(&self) -> OutputSelection {
        if self.config.compat.is_shap() {
            OutputSelection::All
        } else {
            self.config.outputs.clone()
        }
    }

    fn pass_settings<'a>(
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
            std_errors: self.settings.std_errors,
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
            .map(|(job, counters)| job.finish(counters))
            .collect();
        let wall = t0.elapsed();
        if self.config.compat.is_shap() {
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
        }
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
            return Err(ConfigError::BadOrders {
                image: i,
                reason: "no permutation passes".into(),
            }
            .into());
        }
        for order in passes {
            let mut seen = vec![false; m];
            let ok = order.len() == m
                && order
                    .iter()
                    .all(|&f| f < m && !std::mem::replace(&mut seen[f], true));
            if !ok {
                return Err(ConfigError::BadOrders {
                    image: i,
                    reason: format!("an order is not a permutation of 0..{m}"),
                }
                .into());
            }
        }
    }
    Ok(())
}
