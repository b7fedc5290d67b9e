//! The Partition explainer: Owen values over shap's image partition tree, with shap >= 0.41
//! semantics (`docs/partition-explainer.md`).

use std::sync::Mutex;
use std::time::Instant;

use crate::driver::{assemble, check_inputs, name_fn};
use crate::eval::{Counters, Progress, Setup, gather_rows, run_gathered, run_per_image};
use crate::explanation::{Algorithm, Explanation};
use crate::owen::{OwenJob, OwenSettings, Ties};
use crate::rng::NumpyLegacyNormal;
use crate::{
    BatchModel, Compat, ConfigError, ExplainerConfig, MaskedImages, PartitionBudget,
    PartitionSettings, Result,
};
use shap_mask::{ImageShape, PartitionTree};

/// The checked Partition (Owen value) explainer, built by [`crate::ExplainerConfig::check`]
/// and run through [`crate::Explainer`]. Defaults match shap's (500 evaluations, algorithmic
/// batch of 10 masks, `fixed_context=None`) and the tutorial's top-5 outputs.
///
/// ```
/// use shap_explain::{ConstantMasker, ExplainerConfig, FnModel, ImageShape, ModelError, OutputSelection};
/// // A linear model on a 4x4 image with two outputs.
/// let model = FnModel::new(2, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
///     for i in 0..n {
///         let img = &x[i * s.features()..(i + 1) * s.features()];
///         out[2 * i] = img.iter().sum();
///         out[2 * i + 1] = img[0] - img[15];
///     }
///     Ok::<(), ModelError>(())
/// });
/// let shape = ImageShape::new(4, 4, 1);
/// let images: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
/// let explainer = ExplainerConfig { outputs: OutputSelection::TopK(1), ..ExplainerConfig::partition() }
///     .check()
///     .unwrap();
/// let e = explainer.explain(&model, &images, shape, &ConstantMasker { value: 0.0 }).unwrap();
/// assert_eq!(e.output_indices, vec![0]);
/// assert!(e.max_efficiency_error() < 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionExplainer {
    pub(crate) config: ExplainerConfig,
    /// Its own settings (the configuration's method).
    settings: PartitionSettings,
    /// Evaluations the Owen loop may spend after `f00` and `f11` (`usize::MAX`: exact).
    owen_budget: usize,
    /// shap's tie-break generator seed (`Compat::Shap`), or first in, first out.
    numpy_seed: Option<u32>,
}

impl PartitionExplainer {
    /// Check `settings`, the Partition method of `config`.
    pub(crate) fn new(config: ExplainerConfig, settings: PartitionSettings) -> Result<Self> {
        if settings.batch_size < 2 {
            return Err(ConfigError::BatchSize(settings.batch_size).into());
        }
        let v040 = config.compat == Compat::ShapV040;
        let owen_budget = match settings.budget {
            PartitionBudget::Exact => usize::MAX,
            PartitionBudget::MaxEvals(me) => {
                let minimum = if v040 { 4 } else { 2 };
                if me < minimum {
                    return Err(config.too_small(me, minimum));
                }
                if v040 { me / 2 - 2 } else { me - 2 }
            }
        };
        let numpy_seed = config.numpy_seed()?;
        Ok(Self {
            config,
            settings,
            owen_budget,
            numpy_seed,
        })
    }

    /// Its own settings: budget, batch size, fixed context.
    pub fn settings(&self) -> &PartitionSettings {
        &self.settings
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ExplainerConfig {
        &self.config
    }

    /// Model evaluations per image for [`PartitionBudget::Exact`]: `2 + 2 * (number of expansions)`,
    /// where a node at depth `d` is expanded in `2^d` contexts (fixed context `Both`) or once.
    /// Saturates at `usize::MAX`.
    pub fn exact_evals(&self, tree: &PartitionTree) -> usize {
        let mut total: usize = 2;
        for node in tree.num_features()..tree.num_nodes() {
            let contexts = match self.settings.fixed_context {
                crate::FixedContext::Both => 1usize
                    .checked_shl(tree.depth(node) as u32)
                    .unwrap_or(usize::MAX),
                _ => 1,
            };
            total = total.saturating_add(contexts.saturating_mul(2));
        }
        total
    }

    /// Explain images prepared for masking (input checks first, then the Owen recursion of
    /// every image).
    pub(crate) fn run<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
        progress: &dyn Progress,
    ) -> Result<Explanation> {
        let t0 = Instant::now();
        let c = &self.config;
        let n = check_inputs(
            model,
            images,
            shape,
            Some(prepared.len()),
            c.output_names.as_ref(),
        )?;
        c.outputs.validate(model.num_outputs())?;
        let tree = crate::memory::tree(shape)?;
        let settings = OwenSettings {
            tree: &tree,
            budget: self.owen_budget,
            batch_size: self.settings.batch_size,
            fixed_context: self.settings.fixed_context,
            v040_budget: c.compat == Compat::ShapV040,
            outputs: &c.outputs,
            k_all: model.num_outputs(),
        };
        let setup = Setup {
            model,
            prepared,
            images,
            shape,
            progress,
        };
        let numpy = self
            .numpy_seed
            .map(|seed| Mutex::new(NumpyLegacyNormal::new(seed)));
        let jobs = self.schedule(&setup, n, &settings, numpy.as_ref())?;
        let rows = jobs
            .into_iter()
            .map(|(job, counters)| job.finish(counters))
            .collect();
        let names = name_fn(c.output_names.as_ref());
        assemble(
            Algorithm::Partition,
            shape,
            images,
            rows,
            names,
            t0.elapsed(),
        )
    }

    /// Run the Owen recursion of images `0..n`: gathered across images when the model asks
    /// for it, else image by image in parallel; one image after another when they share
    /// shap's tie-break stream (`numpy`).
    fn schedule<'a, M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        setup: &Setup<'_, M, P>,
        n: usize,
        settings: &'a OwenSettings<'a>,
        numpy: Option<&'a Mutex<NumpyLegacyNormal>>,
    ) -> Result<Vec<(OwenJob<'a>, Counters)>> {
        if let Some(rng) = numpy {
            return run_per_image(setup, n, false, |_| {
                Ok(OwenJob::new(settings, Ties::Numpy(rng)))
            });
        }
        let make = |_| Ok(OwenJob::new(settings, Ties::Fifo));
        match gather_rows(setup.model) {
            // Each image's next step (up to batch_size masks) shares calls.
            Some(rows) => {
                let group = (rows / self.settings.batch_size).max(1);
                run_gathered(setup, n, group, rows, make)
            }
            None => run_per_image(setup, n, true, make),
        }
    }
}
