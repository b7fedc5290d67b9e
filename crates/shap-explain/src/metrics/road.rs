//! ROAD, Remove And Debias (Rong et al. 2022): the output as the most (MoRF) or least (LeRF)
//! relevant pixels are removed and filled by noisy linear imputation (docs/metrics.md).

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    Changed, Subject, checked_outputs, eval_images, mean_over, nothing_scored, rng, subject,
};
use crate::Target;
use crate::faithfulness::{check_scorable, order_by};
use crate::{BatchModel, ConfigError, ExplainError, Explanation, ImageShape, Progress, Result};
use shap_mask::MaskError;

/// ROAD's settings (defaults: the paper's).
#[derive(Debug, Clone, PartialEq)]
pub struct Road {
    /// Percentages of the pixels removed, increasing, each from 1 to 99.
    pub percentages: Vec<u32>,
    /// Standard deviation of the noise added to imputed values (0: plain linear imputation).
    pub noise: f64,
    /// Seed of the noise (ChaCha8; stream = the image's dataset index, else its position).
    pub seed: u64,
    /// Which classes of each image are scored.
    pub target: Target,
}

impl Default for Road {
    fn default() -> Self {
        Self {
            percentages: (1..=9).map(|r| r * 10).collect(),
            noise: 0.01,
            seed: 0,
            target: Target::Predicted,
        }
    }
}

impl Road {
    /// Check the settings into a scorer.
    pub fn check(self) -> Result<RoadScorer> {
        let bad = |why: String| Err(ConfigError::Metric(format!("ROAD: {why}")).into());
        let p = &self.percentages;
        if p.is_empty() || p.iter().any(|r| !(1..=99).contains(r)) {
            return bad(format!("percentages must be from 1 to 99, got {p:?}"));
        }
        if p.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("percentages must increase, got {p:?}"));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(format!("the noise must be 0 or more, got {}", self.noise));
        }
        Ok(RoadScorer(self))
    }
}

/// The output of one class at each percentage, most and least relevant pixels removed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RoadCurves {
    /// Most relevant first: lower is better.
    pub morf: Vec<f64>,
    /// Least relevant first: higher is better.
    pub lerf: Vec<f64>,
}

/// One scored class of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoadScore {
    /// The model output index.
    pub class: usize,
    /// Its name, as the explanation records it.
    pub name: String,
    /// Its curves.
    #[serde(flatten)]
    pub curves: RoadCurves,
    /// Mean of the MoRF curve.
    pub morf_mean: f64,
    /// Mean of the LeRF curve.
    pub lerf_mean: f64,
    /// `lerf_mean - morf_mean`: larger is better.
    pub gap: f64,
}

/// One image's ROAD scores.
pub type RoadImage = crate::ImageScores<RoadScore>;

/// ROAD of an explanation: what `shap-cli metrics --json` writes under `road`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoadReport {
    /// Which classes were scored.
    pub target: Target,
    /// Percentages of pixels removed.
    pub percentages: Vec<u32>,
    /// The imputation's noise.
    pub noise: f64,
    /// Its seed.
    pub seed: u64,
    /// Per image.
    pub images: Vec<RoadImage>,
    /// The curves averaged over every scored (image, class).
    pub mean_curves: RoadCurves,
    /// Mean MoRF output.
    pub morf_mean: f64,
    /// Mean LeRF output.
    pub lerf_mean: f64,
    /// `lerf_mean - morf_mean`.
    pub gap: f64,
}

/// Checked ROAD settings ([`Road::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RoadScorer(Road);

impl RoadScorer {
    /// The settings it scores with.
    pub fn settings(&self) -> &Road {
        &self.0
    }

    /// Score explanation `e` of `model`, telling `progress` of each image (with its model
    /// rows, `1 + 2 R` per scored class).
    pub fn score<M>(
        &self,
        model: &M,
        e: &Explanation,
        progress: &dyn Progress,
    ) -> Result<RoadReport>
    where
        M: BatchModel + ?Sized,
    {
        check_scorable(model, e)?;
        let images = (0..e.num_images)
            .into_par_iter()
            .map(|i| {
                let s = subject(e, i, self.0.target);
                let classes = self.score_image(model, e, &s)?;
                let rows = 1 + 2 * self.0.percentages.len() * classes.len();
                progress.image_done(i, rows);
                Ok(RoadImage {
                    index: s.index,
                    source: s.source,
                    classes,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if images.iter().all(|i| i.classes.is_empty()) {
            return Err(nothing_scored());
        }
        Ok(self.report(images))
    }

    /// The curves of one image and class (`phi`: one attribution per pixel), with noise from
    /// `stream`: the core of the metric, for checking it against another implementation.
    pub fn curves<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        image: &[f32],
        shape: ImageShape,
        class: usize,
        phi: &[f64],
        stream: u64,
    ) -> Result<RoadCurves> {
        let out = self.outputs(model, image, shape, phi, stream, 0)?;
        Ok(self.split(&out, model.num_outputs(), class))
    }

    fn score_image<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        e: &Explanation,
        s: &Subject<'_>,
    ) -> Result<Vec<RoadScore>> {
        if s.classes.is_empty() {
            return Ok(Vec::new());
        }
        checked_outputs(model, e, s)?;
        s.classes
            .iter()
            .map(|c| {
                let out = self.outputs(model, s.image, e.shape, &c.phi, s.stream, s.position)?;
                let curves = self.split(&out, model.num_outputs(), c.class);
                let (morf_mean, lerf_mean) = (mean(&curves.morf), mean(&curves.lerf));
                Ok(RoadScore {
                    class: c.class,
                    name: c.name.clone(),
                    curves,
                    morf_mean,
                    lerf_mean,
                    gap: lerf_mean - morf_mean,
                })
            })
            .collect()
    }

    /// The model's outputs on the imputed images ([`Self::imputed`]).
    fn outputs<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        image: &[f32],
        shape: ImageShape,
        phi: &[f64],
        stream: u64,
        position: usize,
    ) -> Result<Vec<f32>> {
        let (images, keeps) = self.imputed(image, shape, phi, stream, position)?;
        let changed = Changed {
            original: image,
            keeps: &keeps,
            images: &images,
            n: 2 * self.0.percentages.len(),
        };
        eval_images(model, changed, shape, position)
    }

    /// Per percentage, the MoRF then the LeRF image, imputed, with noise; and which features
    /// each keeps.
    fn imputed(
        &self,
        image: &[f32],
        shape: ImageShape,
        phi: &[f64],
        stream: u64,
        position: usize,
    ) -> Result<(Vec<f32>, Vec<bool>)> {
        let p = shape.pixels();
        let morf = order_by(phi);
        let negated: Vec<f64> = phi.iter().map(|v| -v).collect();
        let lerf = order_by(&negated);
        let mut rng = rng(self.0.seed, stream);
        let rows = 2 * self.0.percentages.len();
        let mut images = Vec::with_capacity(rows * shape.features());
        let mut keeps = Vec::with_capacity(rows * shape.features());
        for &r in &self.0.percentages {
            let k = (r as usize * p + 50) / 100;
            for order in [&morf, &lerf] {
                let mut keep = vec![true; p];
                order[..k].iter().for_each(|&px| keep[px] = false);
                let filled = shap_mask::linear_impute(image, shape, &keep)
                    .map_err(|source| at(position, source))?;
                images.extend(self.with_noise(&filled, &keep, shape.channels, &mut rng));
                keeps.extend(
                    keep.iter()
                        .flat_map(|&k| std::iter::repeat_n(k, shape.channels)),
                );
            }
        }
        Ok((images, keeps))
    }

    /// `filled` as f32, with noise added to the removed pixels (pixel order, then channel).
    fn with_noise(
        &self,
        filled: &[f64],
        keep: &[bool],
        channels: usize,
        rng: &mut impl Rng,
    ) -> Vec<f32> {
        let mut out = filled.to_vec();
        if self.0.noise > 0.0 {
            for (px, _) in keep.iter().enumerate().filter(|(_, k)| !**k) {
                for v in &mut out[px * channels..(px + 1) * channels] {
                    *v += self.0.noise * standard_normal(rng);
                }
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    /// Split outputs (rows: percentage-major, MoRF then LeRF) into the class's curves.
    fn split(&self, out: &[f32], k: usize, class: usize) -> RoadCurves {
        let value = |row: usize| f64::from(out[row * k + class]);
        let n = self.0.percentages.len();
        RoadCurves {
            morf: (0..n).map(|j| value(2 * j)).collect(),
            lerf: (0..n).map(|j| value(2 * j + 1)).collect(),
        }
    }

    fn report(&self, images: Vec<RoadImage>) -> RoadReport {
        let classes: Vec<Vec<RoadScore>> = images.iter().map(|i| i.classes.clone()).collect();
        let n = self.0.percentages.len();
        let curve = |f: &dyn Fn(&RoadScore) -> &Vec<f64>| -> Vec<f64> {
            (0..n).map(|j| mean_over(&classes, |c| f(c)[j])).collect()
        };
        let mean_curves = RoadCurves {
            morf: curve(&|c| &c.curves.morf),
            lerf: curve(&|c| &c.curves.lerf),
        };
        let (morf_mean, lerf_mean) = (
            mean_over(&classes, |c| c.morf_mean),
            mean_over(&classes, |c| c.lerf_mean),
        );
        RoadReport {
            target: self.0.target,
            percentages: self.0.percentages.clone(),
            noise: self.0.noise,
            seed: self.0.seed,
            images,
            mean_curves,
            morf_mean,
            lerf_mean,
            gap: lerf_mean - morf_mean,
        }
    }
}

/// The report as a table: one line per scored (image, class), then the means.
impl std::fmt::Display for RoadReport {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shares: Vec<String> = self.percentages.iter().map(u32::to_string).collect();
        writeln!(
            o,
            "ROAD: {}% of pixels removed, noisy linear imputation (noise {}):",
            shares.join("/"),
            self.noise
        )?;
        let head = ("image", "class", "MoRF", "LeRF", "gap");
        write!(
            o,
            "  {:<14} {:<14} {:>8} {:>8} {:>8}",
            head.0, head.1, head.2, head.3, head.4
        )?;
        for img in &self.images {
            for c in &img.classes {
                let (a, b) = (&img.source, &c.name);
                let (m, l, g) = (c.morf_mean, c.lerf_mean, c.gap);
                write!(o, "\n  {a:<14} {b:<14} {m:>8.4} {l:>8.4} {g:>8.4}")?;
            }
        }
        let (m, l, g) = (self.morf_mean, self.lerf_mean, self.gap);
        write!(o, "\n  {:<29} {m:>8.4} {l:>8.4} {g:>8.4}", "mean")
    }
}

/// A standard normal draw (Box-Muller, the cosine half).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// An imputation error, with the image it happened on.
fn at(image: usize, source: MaskError) -> ExplainError {
    ExplainError::Mask {
        image: Some(image),
        source,
    }
}
