//! Several explanations of the same images scored side by side, with an occlusion and a
//! random baseline (docs/metrics.md, "Comparing explanations"): the run behind
//! `shap-cli compare`.

use std::path::{Path, PathBuf};

use shap_explain::metrics::baselines;
use shap_explain::metrics::compare::{Compared, ComparisonReport, TrustScores};
use shap_explain::{
    BatchModel, Explanation, Faithfulness, FaithfulnessScorer, MuFidelity, MuFidelityScorer, Road,
    RoadScorer,
};
use shap_mask::Masker;

use crate::error::{Context, Result, refuse};
use crate::faithfulness::{load, masker, read};
use crate::{Options, Reporter};

/// A comparison: which explanations, their model, the baselines and the metrics' settings.
#[derive(Debug, Clone)]
pub struct CompareRun {
    /// The model the explanations were made with.
    pub model: PathBuf,
    /// The explanations (`.npz`), of the same images and classes.
    pub npzs: Vec<PathBuf>,
    /// How to load and run the model.
    pub options: Options,
    /// Add the occlusion and random baselines.
    pub baselines: bool,
    /// The occlusion patch side in pixels (default: [`baselines::default_patch`]).
    pub patch: Option<usize>,
    /// Deletion and insertion curves (its target and seed are the comparison's).
    pub faithfulness: Faithfulness,
    /// MuFidelity.
    pub mufidelity: MuFidelity,
    /// ROAD.
    pub road: Road,
}

/// The scorers, checked before any file is read.
struct Scorers {
    faithfulness: FaithfulnessScorer,
    mufidelity: MuFidelityScorer,
    road: RoadScorer,
}

/// Score every explanation, then the baselines, with the same metrics.
pub fn compare(run: &CompareRun, reporter: &dyn Reporter) -> Result<ComparisonReport> {
    let scorers = Scorers {
        faithfulness: run.faithfulness.check()?,
        mufidelity: run.mufidelity.check()?,
        road: run.road.clone().check()?,
    };
    if run.npzs.is_empty() {
        refuse!("no explanation to compare: give --npz at least once");
    }
    let items = run
        .npzs
        .iter()
        .map(|p| read_item(p))
        .collect::<Result<Vec<_>>>()?;
    let first = &items[0];
    for other in &items[1..] {
        same_images(first, other)?;
    }
    let net = load(
        &run.model,
        &first.path,
        &run.options,
        &first.e,
        first.recorded.as_ref(),
        reporter,
    )?;
    let model = net.model();
    let mut rows = Vec::new();
    reporter.start((items.len() + 2 * usize::from(run.baselines)) * first.e.num_images);
    for (item, name) in items.iter().zip(names(&run.npzs)) {
        rows.push(scorers.score(model, &item.e, &item.masker, name, false, reporter)?);
    }
    if run.baselines {
        let patch = run
            .patch
            .unwrap_or_else(|| baselines::default_patch(first.e.shape.height, first.e.shape.width));
        let occluded = baselines::occlusion(model, &first.e, &first.masker, patch)?;
        let random = baselines::random(&first.e, run.faithfulness.seed);
        for (e, name) in [
            (occluded, format!("occlusion ({patch} px)")),
            (random, "random".to_string()),
        ] {
            rows.push(scorers.score(model, &e, &first.masker, name, true, reporter)?);
        }
    }
    reporter.finish();
    Ok(ComparisonReport::new(run.faithfulness.target, rows))
}

impl Scorers {
    /// One explanation's row: its curves with its own masker, MuFidelity and ROAD.
    fn score(
        &self,
        model: &dyn BatchModel,
        e: &Explanation,
        masker: &Masker,
        name: String,
        baseline: bool,
        reporter: &dyn Reporter,
    ) -> Result<Compared> {
        let scoring = || format!("scoring {name}");
        let f = self
            .faithfulness
            .score_with_progress(model, e, masker, reporter)
            .with_context(scoring)?;
        let silent = &crate::Silent;
        let mu = self
            .mufidelity
            .score(model, e, silent)
            .with_context(scoring)?;
        let road = self.road.score(model, e, silent).with_context(scoring)?;
        Ok(Compared {
            scores: TrustScores::new(&f.mean, mu.pearson, road.gap),
            name,
            baseline,
            aucs: f.mean,
            mufidelity_spearman: mu.spearman,
            road_morf: road.morf_mean,
            road_lerf: road.lerf_mean,
        })
    }
}

/// An explanation read, with its masker.
struct Item {
    path: PathBuf,
    e: Explanation,
    recorded: Option<crate::RunSettings>,
    masker: Masker,
}

fn read_item(path: &Path) -> Result<Item> {
    let (e, recorded) = read(path)?;
    let (masker, _) = masker(path, None, recorded.as_ref())?;
    Ok(Item {
        path: path.to_path_buf(),
        e,
        recorded,
        masker,
    })
}

/// Explanations compared must explain the same images for the same classes.
fn same_images(a: &Item, b: &Item) -> Result<()> {
    let same = a.e.shape == b.e.shape
        && a.e.num_images == b.e.num_images
        && a.e.data == b.e.data
        && a.e.output_indices == b.e.output_indices;
    if !same {
        refuse!(
            "{} and {} do not explain the same images for the same classes: compare \
             explanations of one selection (the same --indices, --correct ... and --top-k)",
            a.path.display(),
            b.path.display()
        );
    }
    Ok(())
}

/// Each file's stem, made unique with its position when two are the same.
fn names(paths: &[PathBuf]) -> Vec<String> {
    let stem = |p: &PathBuf| {
        crate::printable(
            &p.file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default(),
        )
        .into_owned()
    };
    let stems: Vec<String> = paths.iter().map(stem).collect();
    stems
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if stems.iter().filter(|t| *t == s).count() > 1 {
                format!("{s} ({})", i + 1)
            } else {
                s.clone()
            }
        })
        .collect()
}
