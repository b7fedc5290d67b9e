//! Faithfulness of an explanation: deletion and insertion curves, against random orders
//! (docs/faithfulness.md).
//!
//! A feature is a pixel with all its channels (for grey images, one value): its score for
//! class `c` is the sum of its channels' SHAP values for `c`. Step `s` of `S` hides (deletion)
//! or reveals (insertion, from everything hidden) the first `round(s * P / S)` pixels of an
//! order, through the masker, on the original image; `P = H * W`.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    BatchModel, ConfigError, ExplainError, Explanation, ImageMasker, MaskedBatch, MaskedImages,
    Progress, Result,
};

/// Most random orders a faithfulness baseline may average: each costs `2 (S + 1)` model rows
/// per image, and the baseline's mean settles long before (its standard error falls as
/// `1/sqrt(R)`), so a larger count is a mistake that would run for days.
pub const MAX_RANDOM_ORDERS: usize = 10_000;

/// Which (image, class) pairs of an explanation are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Target {
    /// Each image's predicted class (the model's top class, as recorded; else the explained
    /// class with the largest f(x)), when the explanation has values for it.
    #[default]
    Predicted,
    /// Each image's first explained class (the class asked for with `--classes`, or the top
    /// one of `--top-k`).
    Explained,
    /// Every explained class of every image.
    All,
}

/// [`Target::All`], what reports without a `target` scored.
fn all_classes() -> Target {
    Target::All
}

/// How to score an explanation: steps per curve, random orders, their seed, and which
/// classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faithfulness {
    /// Steps `S` per curve (curves have `S + 1` points); at least 1, at most the pixels.
    pub steps: usize,
    /// Random orders `R` averaged as the baseline; at least 1.
    pub random: usize,
    /// Seed of the random orders (ChaCha8; stream = the image's dataset index when recorded,
    /// else its position in the explanation).
    pub seed: u64,
    /// Which classes of each image are scored.
    pub target: Target,
}

impl Default for Faithfulness {
    fn default() -> Self {
        Self {
            steps: 28,
            random: 10,
            seed: 0,
            target: Target::Predicted,
        }
    }
}

/// Deletion and insertion curves (`S + 1` points each: the model's output for the class at
/// steps `0..=S`), for the explanation's order and averaged over the random orders.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Curves {
    /// Hiding features in the explanation's order.
    pub deletion: Vec<f64>,
    /// Revealing features in the explanation's order, from everything hidden.
    pub insertion: Vec<f64>,
    /// Hiding in random orders (mean over the orders).
    pub random_deletion: Vec<f64>,
    /// Revealing in random orders (mean over the orders).
    pub random_insertion: Vec<f64>,
}

/// The four areas under the curves.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Aucs {
    /// Deletion AUC of the explanation's order (lower is better).
    pub deletion_auc: f64,
    /// Insertion AUC of the explanation's order (higher is better).
    pub insertion_auc: f64,
    /// Deletion AUC of random orders (mean).
    pub random_deletion_auc: f64,
    /// Insertion AUC of random orders (mean).
    pub random_insertion_auc: f64,
}

/// One explained class of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// The model output (class) index.
    pub class: usize,
    /// Its name, as the explanation records it.
    pub name: String,
    /// Its areas under the curves.
    #[serde(flatten)]
    pub aucs: Aucs,
    /// Its curves (not in the JSON: the mean curves are).
    #[serde(skip)]
    pub curves: Curves,
}

/// One image's scores by any measure (`S`: the scores of one class): the same shape for the
/// faithfulness curves, MuFidelity and ROAD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageScores<S> {
    /// Index in its dataset, when recorded.
    pub index: Option<usize>,
    /// Where it came from (`test[12]`, a file name; empty when unknown).
    pub source: String,
    /// One entry per scored class ([`Target`]), in the explanation's order; empty when the
    /// image's predicted class was not explained.
    pub classes: Vec<S>,
}

/// One image's faithfulness scores.
pub type ImageScore = ImageScores<ClassScore>;

/// The faithfulness of an explanation: what `shap-cli faithfulness --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessReport {
    /// Which classes were scored (reports written before `--target` existed scored all).
    #[serde(default = "all_classes")]
    pub target: Target,
    /// The masker used (its shap spelling; the caller fills it in).
    pub masker: String,
    /// Steps per curve.
    pub steps: usize,
    /// Random orders averaged.
    pub random: usize,
    /// Their seed.
    pub seed: u64,
    /// What a feature is (`"pixel"`: all channels of one pixel).
    pub feature: String,
    /// Features per image.
    pub features: usize,
    /// Per image.
    pub images: Vec<ImageScore>,
    /// The four AUCs averaged over every (image, class).
    pub mean: Aucs,
    /// The curves averaged over every (image, class).
    pub mean_curves: Curves,
}

/// Area under a curve of `S + 1` points over `[0, 1]` (trapezoids):
/// `(1/S) * sum_{s<S} (y[s] + y[s+1]) / 2`; 0 for fewer than two points.
pub fn auc(curve: &[f64]) -> f64 {
    let s = curve.len().saturating_sub(1);
    if s == 0 {
        return 0.0;
    }
    curve.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / s as f64
}

/// `round(s * p / steps)`, halves up, in integers.
pub fn features_at(s: usize, p: usize, steps: usize) -> usize {
    (2 * s * p + steps) / (2 * steps.max(1))
}

/// Pixels in descending order of `scores`; ties keep the lower index first.
pub fn order_by(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

impl Faithfulness {
    /// Check the settings (at least one step, 1 to [`MAX_RANDOM_ORDERS`] random orders) into
    /// a scorer. The steps are checked against an explanation's pixels when it is scored.
    pub fn check(self) -> Result<FaithfulnessScorer> {
        if self.steps == 0 {
            return Err(ConfigError::NoSteps.into());
        }
        if self.random == 0 {
            return Err(ConfigError::NoRandomOrders.into());
        }
        if self.random > MAX_RANDOM_ORDERS {
            return Err(ConfigError::TooManyRandomOrders {
                random: self.random,
                limit: MAX_RANDOM_ORDERS,
            }
            .into());
        }
        Ok(FaithfulnessScorer(self))
    }
}

/// Checked faithfulness settings, ready to score explanations ([`Faithfulness::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaithfulnessScorer(Faithfulness);

impl FaithfulnessScorer {
    /// The settings it scores with.
    pub fn settings(&self) -> &Faithfulness {
        &self.0
    }

    /// Score explanation `e` of `model`, masking with `masker` (the one `e` was made with).
    ///
    /// Errors: more `steps` than the explanation's pixels, an empty explanation, non-finite values, a class the model does not have, a model or masker
    /// failure, or a model whose output on an image (through the masker, nothing hidden)
    /// differs from the `f(x)` the explanation recorded (another model, head or
    /// normalisation) by more than 1e-4 relative.
    pub fn score<M, K>(&self, model: &M, e: &Explanation, masker: &K) -> Result<FaithfulnessReport>
    where
        M: BatchModel + ?Sized,
        K: ImageMasker,
    {
        self.score_with_progress(model, e, masker, &crate::eval::silent)
    }

    /// [`FaithfulnessScorer::score`], telling `progress` about each image as it is done (with the
    /// model rows it took: `1 + 2 (S + 1) (k + R)` for `k` scored classes, 1 when none).
    pub fn score_with_progress<M, K>(
        &self,
        model: &M,
        e: &Explanation,
        masker: &K,
        progress: &dyn Progress,
    ) -> Result<FaithfulnessReport>
    where
        M: BatchModel + ?Sized,
        K: ImageMasker,
    {
        self.check(model, e)?;
        let images = (0..e.num_images)
            .into_par_iter()
            .map(|i| {
                let score = self.score_image(model, e, masker, i)?;
                let scored = score.classes.len();
                let orders = if scored == 0 {
                    0
                } else {
                    scored + self.0.random
                };
                progress.image_done(i, 1 + 2 * (self.0.steps + 1) * orders);
                Ok(score)
            })
            .collect::<Result<Vec<ImageScore>>>()?;
        if images.iter().all(|i| i.classes.is_empty()) {
            return Err(ExplainError::Missing(
                "no image's predicted class is among its explained classes: explain them with \
                 --top-k, or score another target (explained, all)"
                    .into(),
            ));
        }
        Ok(self.report(e, images))
    }

    fn check<M: BatchModel + ?Sized>(&self, model: &M, e: &Explanation) -> Result<()> {
        let p = e.shape.pixels();
        if self.0.steps > p {
            return Err(ConfigError::Steps {
                steps: self.0.steps,
                pixels: p,
            }
            .into());
        }
        check_scorable(model, e)
    }

    fn score_image<M, K>(
        &self,
        model: &M,
        e: &Explanation,
        masker: &K,
        i: usize,
    ) -> Result<ImageScore>
    where
        M: BatchModel + ?Sized,
        K: ImageMasker,
    {
        let m = e.num_features();
        let original = e.data.get(i * m..(i + 1) * m).unwrap_or(&[]);
        let prepared = masker
            .prepare(original, e.shape)
            .map_err(|err| at_image(err, i))?;
        let run = Run {
            model,
            e,
            prepared: &prepared,
            original,
            steps: self.0.steps,
            image: i,
        };
        run.check_fx()?;
        let k = e.num_outputs;
        let info = e.images.get(i).cloned().unwrap_or_default();
        let outputs = scored_outputs(e, i, self.0.target);
        let wanted: Vec<usize> = outputs
            .iter()
            .map(|&o| e.output_indices[i * k + o])
            .collect();
        let random = if wanted.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.random_curves(&run, &wanted)?
        };
        let classes = outputs
            .iter()
            .enumerate()
            .map(|(col, &o)| {
                let class = e.output_indices[i * k + o];
                let scores = pixel_scores(&e.value_map(i, o), e.shape.channels);
                let (deletion, insertion) = run.curves(&order_by(&scores), &[class])?;
                let curves = Curves {
                    deletion: deletion.into_iter().map(|r| r[0]).collect(),
                    insertion: insertion.into_iter().map(|r| r[0]).collect(),
                    random_deletion: random.0.iter().map(|r| r[col]).collect(),
                    random_insertion: random.1.iter().map(|r| r[col]).collect(),
                };
                Ok(ClassScore {
                    class,
                    name: e
                        .output_names
                        .get(i)
                        .and_then(|n| n.get(o))
                        .cloned()
                        .unwrap_or_default(),
                    aucs: curves.aucs(),
                    curves,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageScore {
            index: info.index,
            source: info.source,
            classes,
        })
    }

    /// The random orders' deletion and insertion curves for `classes` of the image (rows:
    /// steps; columns: `classes`), averaged over the orders.
    fn random_curves<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        run: &Run<'_, M, P>,
        classes: &[usize],
    ) -> Result<(StepOutputs, StepOutputs)> {
        let (i, k) = (run.image, classes.len());
        let stream = run.e.images.get(i).and_then(|x| x.index).unwrap_or(i);
        let mut rng = ChaCha8Rng::seed_from_u64(self.0.seed);
        rng.set_stream(stream as u64);
        let zero = vec![vec![0.0; k]; self.0.steps + 1];
        let (mut del, mut ins) = (zero.clone(), zero);
        let mut order: Vec<usize> = (0..run.e.shape.pixels()).collect();
        for _ in 0..self.0.random {
            order.sort_unstable();
            order.shuffle(&mut rng);
            let (d, n) = run.curves(&order, classes)?;
            add(&mut del, &d);
            add(&mut ins, &n);
        }
        let r = self.0.random as f64;
        for row in del.iter_mut().chain(ins.iter_mut()) {
            row.iter_mut().for_each(|v| *v /= r);
        }
        Ok((del, ins))
    }

    fn report(&self, e: &Explanation, images: Vec<ImageScore>) -> FaithfulnessReport {
        let all: Vec<&ClassScore> = images.iter().flat_map(|i| &i.classes).collect();
        let n = all.len().max(1) as f64;
        let mean_of = |f: &dyn Fn(&Curves) -> &Vec<f64>| -> Vec<f64> {
            (0..=self.0.steps)
                .map(|s| all.iter().map(|c| f(&c.curves)[s]).sum::<f64>() / n)
                .collect()
        };
        let mean_curves = Curves {
            deletion: mean_of(&|c| &c.deletion),
            insertion: mean_of(&|c| &c.insertion),
            random_deletion: mean_of(&|c| &c.random_deletion),
            random_insertion: mean_of(&|c| &c.random_insertion),
        };
        FaithfulnessReport {
            target: self.0.target,
            masker: e.setting("masker").unwrap_or_default().to_string(),
            steps: self.0.steps,
            random: self.0.random,
            seed: self.0.seed,
            feature: "pixel".into(),
            features: e.shape.pixels(),
            images,
            // The AUC is linear in the curve: the AUC of the mean curve is the mean AUC.
            mean: mean_curves.aucs(),
            mean_curves,
        }
    }
}

/// The report as a table: one line per scored (image, class), then the means.
impl std::fmt::Display for FaithfulnessReport {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match self.target {
            Target::Predicted => "predicted classes",
            Target::Explained => "first explained classes",
            Target::All => "explained classes",
        };
        writeln!(
            o,
            "faithfulness of the {target} with masker {}, {} steps over {} pixels, {} random \
             orders (seed {}):",
            self.masker, self.steps, self.features, self.random, self.seed
        )?;
        let row = |o: &mut std::fmt::Formatter<'_>, a: &str, b: &str, x: Aucs| {
            writeln!(
                o,
                "  {a:<14} {b:<14} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
                x.deletion_auc, x.random_deletion_auc, x.insertion_auc, x.random_insertion_auc
            )
        };
        writeln!(
            o,
            "  {:<14} {:<14} {:>9} {:>9} {:>9} {:>9}",
            "image", "class", "deletion", "random", "insertion", "random"
        )?;
        for img in &self.images {
            for c in &img.classes {
                row(o, &img.source, &c.name, c.aucs)?;
            }
        }
        row(o, "mean", "", self.mean)?;
        write!(
            o,
            "  deletion AUC below random and insertion AUC above it: the explanation ranks \
             pixels better than chance"
        )
    }
}

impl Curves {
    /// The areas under the four curves ([`auc`]).
    pub fn aucs(&self) -> Aucs {
        Aucs {
            deletion_auc: auc(&self.deletion),
            insertion_auc: auc(&self.insertion),
            random_deletion_auc: auc(&self.random_deletion),
            random_insertion_auc: auc(&self.random_insertion),
        }
    }
}

/// Per step of a curve, the model's outputs for the requested classes.
type StepOutputs = Vec<Vec<f64>>;

/// One image's masking and model calls.
struct Run<'a, M: ?Sized, P> {
    model: &'a M,
    e: &'a Explanation,
    prepared: &'a P,
    original: &'a [f32],
    steps: usize,
    image: usize,
}

impl<M: BatchModel + ?Sized, P: MaskedImages> Run<'_, M, P> {
    /// Deletion and insertion curves of one pixel order: per step, the model's outputs for
    /// `classes`. One model call per curve pair (split by the model's `batch_rows`).
    fn curves(&self, order: &[usize], classes: &[usize]) -> Result<(StepOutputs, StepOutputs)> {
        let (shape, s) = (self.e.shape, self.steps);
        let (m, c, p) = (shape.features(), shape.channels, shape.pixels());
        let rows = 2 * (s + 1);
        let mut keeps = vec![false; rows * m];
        for step in 0..=s {
            let first = &order[..features_at(step, p, s)];
            let del = &mut keeps[step * m..(step + 1) * m];
            del.fill(true);
            first
                .iter()
                .for_each(|&px| del[px * c..(px + 1) * c].fill(false));
            let ins = &mut keeps[(s + 1 + step) * m..(s + 2 + step) * m];
            first
                .iter()
                .for_each(|&px| ins[px * c..(px + 1) * c].fill(true));
        }
        let out = self.eval(&keeps, rows)?;
        let k = self.model.num_outputs();
        let pick = |r: usize| {
            classes
                .iter()
                .map(|&cl| f64::from(out[r * k + cl]))
                .collect()
        };
        Ok((
            (0..=s).map(pick).collect(),
            (s + 1..rows).map(pick).collect(),
        ))
    }

    /// Mask and evaluate `rows` masks, in calls of the model's `batch_rows` (all at once when
    /// it has none); non-finite outputs are errors.
    fn eval(&self, keeps: &[bool], rows: usize) -> Result<Vec<f32>> {
        let m = self.e.shape.features();
        let mut images = vec![0.0f32; rows * m];
        self.prepared
            .fill_batch(keeps, &mut images)
            .map_err(|err| at_image(err, self.image))?;
        let changed = Changed {
            original: self.original,
            keeps,
            images: &images,
            n: rows,
        };
        eval_images(self.model, changed, self.e.shape, self.image)
    }

    /// The model's output with nothing hidden must be the `f(x)` the explanation recorded,
    /// for every explained class (checked before the curves, in one model row).
    fn check_fx(&self) -> Result<()> {
        let out = self.eval(&vec![true; self.e.shape.features()], 1)?;
        check_recorded_fx(self.e, self.image, &out)
    }
}

/// An explanation that `model` can score: images, consistent arrays, classes the model has,
/// finite values.
pub(crate) fn check_scorable<M: BatchModel + ?Sized>(model: &M, e: &Explanation) -> Result<()> {
    if e.num_images == 0 || e.num_outputs == 0 {
        return Err(ExplainError::EmptyBatch);
    }
    e.check_consistent().map_err(ExplainError::Missing)?;
    let k = model.num_outputs();
    if let Some(c) = e.output_indices.iter().find(|&&c| c >= k) {
        return Err(ExplainError::InvalidOutputs(format!(
            "the explanation explains output {c}; the model has {k} outputs"
        )));
    }
    if let Some(v) = e.values.iter().find(|v| !v.is_finite()) {
        return Err(ExplainError::Missing(format!(
            "the explanation holds a non-finite value ({v}): features cannot be ordered"
        )));
    }
    Ok(())
}

/// The outputs (positions among image `i`'s explained classes) that `target` scores; empty
/// when the image's predicted class was not explained.
pub(crate) fn scored_outputs(e: &Explanation, i: usize, target: Target) -> Vec<usize> {
    let k = e.num_outputs;
    match target {
        Target::All => (0..k).collect(),
        Target::Explained => vec![0],
        Target::Predicted => {
            let explained = &e.output_indices[i * k..(i + 1) * k];
            let recorded = e
                .images
                .get(i)
                .and_then(|x| x.predicted.as_ref())
                .map(|p| p.class.index);
            let top = (0..k).max_by(|&a, &b| e.fx[i * k + a].total_cmp(&e.fx[i * k + b]));
            match recorded {
                Some(class) => explained
                    .iter()
                    .position(|&c| c == class)
                    .into_iter()
                    .collect(),
                None => top.into_iter().collect(),
            }
        }
    }
}

/// The model's outputs `out` (one row) on image `i` with nothing hidden must be the `f(x)` the
/// explanation recorded, for every explained class.
pub(crate) fn check_recorded_fx(e: &Explanation, i: usize, out: &[f32]) -> Result<()> {
    let k = e.num_outputs;
    for o in 0..k {
        let class = e.output_indices[i * k + o];
        let (got, want) = (f64::from(out[class]), e.fx[i * k + o]);
        // A NaN or infinite record agrees with no model: compare so that it fails.
        let agrees = want.is_finite() && (got - want).abs() <= 1e-4 * want.abs().max(1.0);
        if !agrees {
            let source = e.images.get(i).map_or("", |x| x.source.as_str());
            return Err(ExplainError::Missing(format!(
                "image {i} ({source}), class {class}: the model gives {got:.6} with nothing \
                 hidden, the explanation recorded f(x) = {want:.6}: score it with the model, \
                 head and normalisation it was made with"
            )));
        }
    }
    Ok(())
}

/// Versions of one image with some features changed: the changed images and, per image, which
/// features are as in the original (`true`), for a model that evaluates incrementally.
pub(crate) struct Changed<'a> {
    /// The unchanged image.
    pub original: &'a [f32],
    /// `n` masks back to back, one bool per feature.
    pub keeps: &'a [bool],
    /// The `n` changed images.
    pub images: &'a [f32],
    /// Number of images.
    pub n: usize,
}

/// The model's outputs on changed versions of explanation image `image` (each `shape`), in
/// calls of its `batch_rows` through its masked path; a failure or a non-finite output is an
/// error naming the image.
pub(crate) fn eval_images<M: BatchModel + ?Sized>(
    model: &M,
    c: Changed<'_>,
    shape: crate::ImageShape,
    image: usize,
) -> Result<Vec<f32>> {
    let (m, k, n) = (shape.features(), model.num_outputs(), c.n);
    let mut out = vec![0.0f32; n * k];
    let chunk = model.batch_rows().unwrap_or(n).max(1);
    for start in (0..n).step_by(chunk) {
        let rows = chunk.min(n - start);
        let batch = MaskedBatch {
            original: c.original,
            keeps: &c.keeps[start * m..(start + rows) * m],
            images: &c.images[start * m..(start + rows) * m],
            n: rows,
            shape,
        };
        model
            .eval_masked(batch, &mut out[start * k..(start + rows) * k])
            .map_err(|source| ExplainError::Model { image, source })?;
    }
    if let Some(j) = out.iter().position(|v| !v.is_finite()) {
        return Err(ExplainError::NonFinite {
            image,
            output: j % k,
            value: out[j],
        });
    }
    Ok(out)
}

/// Per-pixel scores: the channels' values summed.
pub(crate) fn pixel_scores(map: &[f64], channels: usize) -> Vec<f64> {
    map.chunks_exact(channels.max(1))
        .map(|px| px.iter().sum())
        .collect()
}

fn add(acc: &mut [Vec<f64>], rows: &[Vec<f64>]) {
    for (a, r) in acc.iter_mut().zip(rows) {
        a.iter_mut().zip(r).for_each(|(a, r)| *a += r);
    }
}

/// A masker error, with the image it happened on.
pub(crate) fn at_image(err: ExplainError, image: usize) -> ExplainError {
    match err {
        ExplainError::Mask { source, .. } => ExplainError::Mask {
            image: Some(image),
            source,
        },
        other => other,
    }
}
