//! The model-parameter randomisation check of a saved explanation (docs/metrics.md, "Sanity
//! check"): the run behind `shap-cli sanity`. The model's layers are randomised from the
//! output down, one more at each step (the tutorial CNN through its `VarBuilder`, an ONNX
//! model by its initialisers), the images explained again with the recorded settings, and
//! each explanation compared with the original.

use std::path::{Path, PathBuf};

use shap_explain::metrics::sanity::{self, SanityMaps, SanityReport};
use shap_explain::{Explainer, ExplainerConfig, Explanation, Method, Target};
use shap_mask::Masker;
use shap_model::{Cnn, Head};
use shap_onnx::OnnxFile;

use crate::error::{Context, Result, refuse};
use crate::faithfulness::read;
use crate::{Network, Options, Reporter, RunSettings, Silent};

/// A sanity run: which explanation, its model, how many layers and which classes.
#[derive(Debug, Clone)]
pub struct SanityRun {
    /// The model the explanation was made with.
    pub model: PathBuf,
    /// The explanation (`.npz`), which must record the settings it was made with.
    pub npz: PathBuf,
    /// How to load and run the model (a tutorial checkpoint with no head asked for runs with
    /// the head the explanation records).
    pub options: Options,
    /// At most this many steps (layers randomised); `None`: every layer.
    pub layers: Option<usize>,
    /// The seed of the random layers.
    pub seed: u64,
    /// Which classes to compare.
    pub target: Target,
    /// Images shown in the figure's maps (the first ones).
    pub figure_images: usize,
}

/// What a sanity run gives: the report, and the maps of its first images for the figure.
#[derive(Debug, Clone)]
pub struct SanityOutcome {
    /// The report (`--json`).
    pub report: SanityReport,
    /// Per shown image: the image, its first compared class, and its pixel maps (values
    /// summed over channels) before any randomisation and after each step.
    pub maps: Vec<SanityMaps>,
    /// The explanation's image shape.
    pub shape: shap_explain::ImageShape,
}

/// The model whose layers are randomised.
enum Subject {
    Tutorial(Cnn, Head),
    Onnx(Box<OnnxFile>),
}

/// Run the check: the settings and files are read and checked before the model runs.
pub fn sanity(run: &SanityRun, reporter: &dyn Reporter) -> Result<SanityOutcome> {
    let (original, recorded) = read(&run.npz)?;
    let Some(recorded) = recorded else {
        refuse!(
            "{} does not record the settings it was made with: the check explains its images \
             again with them; make it with shap-cli explain",
            run.npz.display()
        );
    };
    let explainer = explainer(&recorded)?;
    let masker = Masker::new(recorded.masker, recorded.compat.mask_mode());
    let net = crate::faithfulness::load(
        &run.model,
        &run.npz,
        &run.options,
        &original,
        Some(&recorded),
        reporter,
    )?;
    let subject = subject(&run.model, &run.options, &recorded)?;
    let layers = subject.layers();
    let steps = run.layers.unwrap_or(layers.len()).min(layers.len());
    if steps == 0 {
        refuse!(
            "{}: the model has no layer to randomise",
            run.model.display()
        );
    }
    drop(net);
    let mut maps = SanityMaps::first(&original, run.target, run.figure_images);
    let cascade = Cascade {
        run,
        subject: &subject,
        explainer: &explainer,
        masker: &masker,
        original: &original,
    };
    reporter.start(steps * original.num_images);
    let done = (1..=steps)
        .map(|top| cascade.step(top, &layers, &mut maps, reporter))
        .collect::<Result<Vec<_>>>();
    reporter.finish();
    Ok(SanityOutcome {
        report: SanityReport::new(run.target, layers, run.seed, done?),
        maps,
        shape: original.shape,
    })
}

/// What every step of the cascade shares.
struct Cascade<'a> {
    run: &'a SanityRun,
    subject: &'a Subject,
    explainer: &'a Explainer,
    masker: &'a Masker,
    original: &'a Explanation,
}

impl Cascade<'_> {
    /// Randomise the first `top` layers, explain again, add the figure's maps and compare.
    fn step(
        &self,
        top: usize,
        layers: &[String],
        maps: &mut [SanityMaps],
        reporter: &dyn Reporter,
    ) -> Result<sanity::SanityStep> {
        let (run, original) = (self.run, self.original);
        let net = self
            .subject
            .randomised(top, run.seed, &run.options)
            .with_context(|| format!("randomising {top} layer(s) of {}", run.model.display()))?;
        let again =
            sanity::explain_again(self.explainer, net.model(), original, self.masker, reporter)
                .with_context(|| format!("explaining with {top} random layer(s)"))?;
        maps.iter_mut().for_each(|m| m.add(&again));
        Ok(sanity::step(
            original,
            &again,
            run.target,
            layers[..top].to_vec(),
        )?)
    }
}

/// The explainer the explanation was made with.
fn explainer(r: &RunSettings) -> Result<Explainer> {
    let method = Method::new(r.algorithm);
    let config = ExplainerConfig {
        method: r.max_evals.map_or(method, |n| method.max_evals(n)),
        compat: r.compat,
        seed: r.seed,
        ..ExplainerConfig::with_method(method)
    };
    Ok(config.check()?)
}

fn subject(model: &Path, o: &Options, recorded: &RunSettings) -> Result<Subject> {
    let is_onnx = model
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("onnx"));
    if is_onnx {
        return Ok(Subject::Onnx(Box::new(OnnxFile::open(model)?)));
    }
    let ckpt = shap_model::load(model, &o.device.open()?)?;
    let head = o.head.unwrap_or(Head::from(recorded.outputs));
    Ok(Subject::Tutorial(ckpt.cnn, head))
}

impl Subject {
    fn layers(&self) -> Vec<String> {
        match self {
            Self::Tutorial(..) => shap_model::LAYERS.iter().map(|s| s.to_string()).collect(),
            Self::Onnx(f) => f.layers(),
        }
    }

    fn randomised(&self, top: usize, seed: u64, o: &Options) -> Result<Network> {
        match self {
            Self::Tutorial(cnn, head) => Network::from_cnn(&cnn.randomised(top, seed)?, *head, o),
            Self::Onnx(f) => Network::from_onnx(f.randomised(top, seed)?, o, &Silent),
        }
    }
}
