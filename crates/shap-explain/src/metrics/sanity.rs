//! The model-parameter randomisation check (Adebayo et al. 2018; docs/metrics.md, "Sanity
//! check"): the same images explained again, with the same settings and classes, by the model
//! with its layers replaced by random ones from the output down; an explanation that stays
//! the same explains the image, not the model.
//!
//! This module compares explanations and explains again; which layers a model has and how
//! they are randomised belong to the crate that holds the model (shap-model, shap-onnx).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::stats::{spearman, ssim};
use super::subject;
use crate::eval::silent;
use crate::faithfulness::{ImageScores, scored_outputs};
use crate::{
    BatchModel, ConfigError, ExplainError, Explainer, Explanation, ImageMasker, OutputSelection,
    Progress, Result, Target,
};

/// The signed rank correlation below which, with every layer randomised, an explanation
/// passes the check: it has become a different explanation.
pub const PASS_BELOW: f64 = 0.5;

/// How alike one class's explanation is before and after randomisation, per pixel (values
/// summed over channels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// The model output index.
    pub class: usize,
    /// Its name, as the explanation records it.
    pub name: String,
    /// How alike the maps are.
    #[serde(flatten)]
    pub scores: Similarities,
}

/// How alike two maps are ([`compare_maps`]), or the mean of that over every compared
/// (image, class).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarities {
    /// Spearman's rank correlation of the absolute values.
    pub spearman_abs: f64,
    /// Spearman's rank correlation of the signed values.
    pub spearman: f64,
    /// SSIM of the absolute values, each map divided by its largest (range 1).
    pub ssim: f64,
}

/// One step of the cascade: which layers are random, and how alike the explanations are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityStep {
    /// The randomised layers, from the output down.
    pub randomised: Vec<String>,
    /// Per image, the scored classes' similarities to the original explanation.
    pub images: Vec<ImageScores<Similarity>>,
    /// Their means.
    pub mean: Similarities,
}

/// The check: what `shap-cli sanity --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityReport {
    /// Which classes were compared.
    pub target: Target,
    /// The model's layers that can be randomised, from the output down.
    pub layers: Vec<String>,
    /// The seed of the random layers.
    pub seed: u64,
    /// One step per randomised layer, cumulative.
    pub steps: Vec<SanityStep>,
    /// [`PASS_BELOW`].
    pub pass_below: f64,
    /// Whether the last step's mean signed rank correlation is below `pass_below`.
    pub passes: bool,
}

impl SanityReport {
    /// The report of `steps` (at least one).
    pub fn new(target: Target, layers: Vec<String>, seed: u64, steps: Vec<SanityStep>) -> Self {
        let passes = steps.last().is_some_and(|s| s.mean.spearman < PASS_BELOW);
        Self {
            target,
            layers,
            seed,
            steps,
            pass_below: PASS_BELOW,
            passes,
        }
    }
}

/// The report as a table: one row per step.
impl std::fmt::Display for SanityReport {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            o,
            "Model-parameter randomisation ({} layers)",
            self.layers.len()
        )?;
        writeln!(
            o,
            "  {:<32} {:>10} {:>10} {:>8}",
            "randomised down to", "rank |v|", "rank v", "SSIM"
        )?;
        for s in &self.steps {
            let last = s.randomised.last().map_or("(none)", String::as_str);
            let name: String = last.chars().take(32).collect();
            let m = &s.mean;
            writeln!(
                o,
                "  {name:<32} {:>10.3} {:>10.3} {:>8.3}",
                m.spearman_abs, m.spearman, m.ssim
            )?;
        }
        let verdict = if self.passes { "passes" } else { "fails" };
        write!(
            o,
            "  {verdict}: with every layer random the signed rank correlation is {} the \
             threshold {}",
            if self.passes { "below" } else { "not below" },
            self.pass_below
        )
    }
}

/// Explain `original`'s images again with `model`: the same explainer settings, each image
/// with the classes it was explained for and the random stream of its position, so the model
/// the original was made with gives the original values back.
pub fn explain_again<M, K>(
    explainer: &Explainer,
    model: &M,
    original: &Explanation,
    masker: &K,
    progress: &dyn Progress,
) -> Result<Explanation>
where
    M: BatchModel + ?Sized,
    K: ImageMasker + Sync,
{
    let (m, k) = (original.num_features(), original.num_outputs);
    let parts = (0..original.num_images)
        .into_par_iter()
        .map(|i| {
            let mut config = explainer.starting_at(i as u64).config().clone();
            config.outputs =
                OutputSelection::Indices(original.output_indices[i * k..(i + 1) * k].to_vec());
            let one = config.check()?;
            let image = &original.data[i * m..(i + 1) * m];
            let mut e = one.explain_with_progress(model, image, original.shape, masker, &silent)?;
            e.output_names = vec![original.output_names.get(i).cloned().unwrap_or_default()];
            progress.image_done(i, e.evals.first().copied().unwrap_or(0));
            Ok(e)
        })
        .collect::<Result<Vec<_>>>()?;
    Explanation::concat(parts)
}

/// How alike `other` is to `original` (the same images and classes), for the classes `target`
/// scores.
pub fn similarity(
    original: &Explanation,
    other: &Explanation,
    target: Target,
) -> Result<Vec<ImageScores<Similarity>>> {
    let same = original.num_images == other.num_images
        && original.shape == other.shape
        && original.output_indices == other.output_indices;
    if !same {
        return Err(ConfigError::Metric(
            "the explanations to compare differ in their images, shape or classes".into(),
        )
        .into());
    }
    let (h, w) = (original.shape.height, original.shape.width);
    (0..original.num_images)
        .map(|i| {
            let s = subject(original, i, target);
            let classes = scored_outputs(original, i, target)
                .into_iter()
                .zip(s.classes)
                .map(|(o, c)| {
                    let b = super::pixel_scores(&other.value_map(i, o), other.shape.channels);
                    compare_maps(&c.phi, &b, h, w).map(|scores| Similarity {
                        class: c.class,
                        name: c.name,
                        scores,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ImageScores {
                index: s.index,
                source: s.source,
                classes,
            })
        })
        .collect()
}

/// The columns of image `i` of `e` that `target` compares (positions among its explained
/// classes).
pub fn compared_columns(e: &Explanation, i: usize, target: Target) -> Vec<usize> {
    scored_outputs(e, i, target)
}

/// How alike two `h x w` maps are: rank correlations of their absolute and signed values, and
/// SSIM of their absolute values each divided by its largest. Errors: maps smaller than 3 x 3
/// pixels (no SSIM window fits) or of another length.
pub fn compare_maps(a: &[f64], b: &[f64], h: usize, w: usize) -> Result<Similarities> {
    let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let bad = |why: String| Err(ExplainError::from(ConfigError::Metric(why)));
    if a.len() != h * w || b.len() != h * w {
        return bad(format!(
            "maps of {} and {} values are not both {h} x {w}",
            a.len(),
            b.len()
        ));
    }
    let (aa, ab) = (abs(a), abs(b));
    let Some(ssim) = ssim(&unit_max(&aa), &unit_max(&ab), h, w, 1.0) else {
        return bad(format!(
            "SSIM needs images of at least 3 x 3 pixels; these are {h} x {w}"
        ));
    };
    Ok(Similarities {
        spearman_abs: spearman(&aa, &ab),
        spearman: spearman(a, b),
        ssim,
    })
}

/// `v` divided by its largest value (all zeros stay zeros).
fn unit_max(v: &[f64]) -> Vec<f64> {
    let max = v.iter().copied().fold(0.0, f64::max);
    if max > 0.0 {
        v.iter().map(|x| x / max).collect()
    } else {
        v.to_vec()
    }
}

/// The step with `randomised` layers random, from its explanation.
pub fn step(
    original: &Explanation,
    other: &Explanation,
    target: Target,
    randomised: Vec<String>,
) -> Result<SanityStep> {
    let images = similarity(original, other, target)?;
    if images.iter().all(|i| i.classes.is_empty()) {
        return Err(super::nothing_scored());
    }
    let all: Vec<Vec<&Similarity>> = images.iter().map(|i| i.classes.iter().collect()).collect();
    let mean = Similarities {
        spearman_abs: super::mean_over(&all, |c| c.scores.spearman_abs),
        spearman: super::mean_over(&all, |c| c.scores.spearman),
        ssim: super::mean_over(&all, |c| c.scores.ssim),
    };
    Ok(SanityStep {
        randomised,
        images,
        mean,
    })
}

/// One image's maps across the cascade, for the figure.
#[derive(Debug, Clone, PartialEq)]
pub struct SanityMaps {
    /// The image, `H x W x C`.
    pub image: Vec<f32>,
    /// The compared class's name.
    pub class: String,
    /// Its position in the explanation: image, and column among the image's classes.
    at: (usize, usize),
    /// The pixel maps (values summed over channels): the original first, then one per step.
    pub maps: Vec<Vec<f64>>,
}

impl SanityMaps {
    /// The first `n` images of `e` with a compared class, with their original maps.
    pub fn first(e: &Explanation, target: Target, n: usize) -> Vec<Self> {
        let m = e.num_features();
        (0..e.num_images)
            .filter_map(|i| compared_columns(e, i, target).first().map(|&o| (i, o)))
            .take(n)
            .map(|(i, o)| Self {
                image: e.data[i * m..(i + 1) * m].to_vec(),
                class: e
                    .output_names
                    .get(i)
                    .and_then(|n| n.get(o))
                    .cloned()
                    .unwrap_or_default(),
                at: (i, o),
                maps: vec![super::pixel_scores(&e.value_map(i, o), e.shape.channels)],
            })
            .collect()
    }

    /// Add the map of a step's explanation (made by [`explain_again`] from the same one).
    pub fn add(&mut self, e: &Explanation) {
        let (i, o) = self.at;
        self.maps
            .push(super::pixel_scores(&e.value_map(i, o), e.shape.channels));
    }
}
