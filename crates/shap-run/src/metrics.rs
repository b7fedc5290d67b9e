//! Scoring a saved explanation with MuFidelity and ROAD (docs/metrics.md): the run behind
//! `shap-cli metrics`.

use std::path::PathBuf;

use shap_explain::metrics::MetricsReport;
use shap_explain::{MuFidelity, Road};

use crate::error::{Context, Result, refuse};
use crate::faithfulness::{load, read};
use crate::{Options, Reporter};

/// A metrics run: which explanation, its model, and which metrics with which settings.
#[derive(Debug, Clone)]
pub struct MetricsRun {
    /// The model the explanation was made with.
    pub model: PathBuf,
    /// The explanation (`.npz`).
    pub npz: PathBuf,
    /// How to load and run the model (a tutorial checkpoint with no head asked for runs with
    /// the head the explanation records).
    pub options: Options,
    /// MuFidelity, when asked for.
    pub mufidelity: Option<MuFidelity>,
    /// ROAD, when asked for.
    pub road: Option<Road>,
}

/// Score the explanation: every setting is checked and the files read before the model runs.
pub fn metrics(run: &MetricsRun, reporter: &dyn Reporter) -> Result<MetricsReport> {
    if run.mufidelity.is_none() && run.road.is_none() {
        refuse!("no metric asked for");
    }
    let mufidelity = run.mufidelity.map(|m| m.check()).transpose()?;
    let road = run.road.clone().map(|r| r.check()).transpose()?;
    let (e, recorded) = read(&run.npz)?;
    let net = load(
        &run.model,
        &run.npz,
        &run.options,
        &e,
        recorded.as_ref(),
        reporter,
    )?;
    let scoring = || format!("scoring {}", run.npz.display());
    let metrics = usize::from(mufidelity.is_some()) + usize::from(road.is_some());
    reporter.start(metrics * e.num_images);
    let mufidelity = mufidelity
        .map(|m| m.score(net.model(), &e, reporter))
        .transpose()
        .with_context(scoring);
    let road = match mufidelity {
        Ok(_) => road
            .map(|r| r.score(net.model(), &e, reporter))
            .transpose()
            .with_context(scoring),
        Err(_) => Ok(None),
    };
    reporter.finish();
    Ok(MetricsReport {
        mufidelity: mufidelity?,
        road: road?,
    })
}
