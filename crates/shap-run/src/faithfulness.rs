//! Scoring a saved explanation's faithfulness with the model it was made with: the run behind
//! `shap-cli faithfulness` (the curves themselves are `shap_explain::faithfulness`).

use std::path::{Path, PathBuf};

use shap_explain::{Explanation, Faithfulness, FaithfulnessReport};
use shap_mask::{Masker, MaskerSpec};
use shap_model::Head;

use crate::error::{Context, Result, refuse};
use crate::{Network, Options, Reporter, RunSettings};

/// A faithfulness run: which explanation, its model, and how to score.
#[derive(Debug, Clone)]
pub struct FaithfulnessRun {
    /// The model the explanation was made with.
    pub model: PathBuf,
    /// The explanation (`.npz`).
    pub npz: PathBuf,
    /// How to load and run the model. A tutorial checkpoint with no head asked for
    /// (`options.head` is `None`) runs with the head the explanation records.
    pub options: Options,
    /// The masker (default: the one the explanation records, in its compatibility mode).
    pub masker: Option<MaskerSpec>,
    /// Steps, random orders, seed and target.
    pub scoring: Faithfulness,
}

/// Score the explanation: the settings are checked and the files read before the model runs;
/// images whose target class was not explained are reported (not scored).
pub fn faithfulness(run: &FaithfulnessRun, reporter: &dyn Reporter) -> Result<FaithfulnessReport> {
    let scorer = run.scoring.check().with_context(|| {
        format!(
            "--steps {} --random {}",
            run.scoring.steps, run.scoring.random
        )
    })?;
    let (e, recorded) = read(&run.npz)?;
    let (masker, spec) = masker(&run.npz, run.masker, recorded.as_ref())?;
    let net = load(
        &run.model,
        &run.npz,
        &run.options,
        &e,
        recorded.as_ref(),
        reporter,
    )?;
    reporter.start(e.num_images);
    let report = scorer.score_with_progress(net.model(), &e, &masker, reporter);
    reporter.finish();
    let mut report = report.with_context(|| format!("scoring {}", run.npz.display()))?;
    report.masker = spec.to_string();
    let unscored = report
        .images
        .iter()
        .filter(|i| i.classes.is_empty())
        .count();
    if unscored > 0 {
        reporter.detail(&format!(
            "{unscored} of {} images have no values for their predicted class (not scored): \
             explain them with a larger --top-k, or score --target explained or all",
            report.images.len()
        ));
    }
    Ok(report)
}

/// The masker the explanation `npz` was made with (its recorded spec and compatibility mode),
/// or the one `asked` for in the recorded mode.
pub(crate) fn masker(
    npz: &Path,
    asked: Option<MaskerSpec>,
    recorded: Option<&RunSettings>,
) -> Result<(Masker, MaskerSpec)> {
    let spec = match (asked, recorded) {
        (Some(m), _) => m,
        (None, Some(r)) => r.masker,
        (None, None) => refuse!(
            "{} does not record the masker it was made with: give --masker",
            npz.display()
        ),
    };
    // The one mapping from a run's compatibility mode to its masker's (`Compat::mask_mode`).
    let compat = recorded.map(|r| r.compat).unwrap_or_default();
    Ok((Masker::new(spec, compat.mask_mode()), spec))
}

/// A saved explanation with images, and the settings it records (when it records ours).
pub(crate) fn read(npz: &Path) -> Result<(Explanation, Option<RunSettings>)> {
    let e = Explanation::load_npz(npz)?;
    if e.num_images == 0 {
        refuse!("{}: the explanation holds no images", npz.display());
    }
    let recorded = RunSettings::from_record(&e.settings).ok();
    Ok((e, recorded))
}

/// The model an explanation is scored with, loaded with `options` and, for a tutorial
/// checkpoint with no head asked for, the head the explanation records; it must take the
/// explanation's images.
pub(crate) fn load(
    model: &Path,
    npz: &Path,
    options: &Options,
    e: &Explanation,
    recorded: Option<&RunSettings>,
    reporter: &dyn Reporter,
) -> Result<Network> {
    let is_onnx = model
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("onnx"));
    let head = recorded.filter(|_| !is_onnx).map(|r| Head::from(r.outputs));
    let options = Options {
        head: options.head.or(head),
        ..options.clone()
    };
    let net = Network::load(model, &options, reporter)?;
    if net.shape() != e.shape {
        refuse!(
            "{} explains {} images; the model takes {} images: score an explanation with the \
             model it was made with",
            npz.display(),
            e.shape,
            net.shape()
        );
    }
    Ok(net)
}
