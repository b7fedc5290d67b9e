//! MuFidelity (Bhatt et al. 2020): the correlation between the attribution of random sets of
//! grid cells and the drop in the output when they are removed (docs/metrics.md).

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::stats::{pearson, spearman};
use super::{
    Changed, Subject, checked_outputs, eval_images, mean_over, nothing_scored, rng, subject,
};
use crate::faithfulness::check_scorable;
use crate::{BatchModel, ConfigError, Explanation, ImageShape, Progress, Result, Target};

/// Most samples per image: each is one model row.
pub const MAX_SAMPLES: usize = 100_000;

/// Samples built and evaluated together (their images are held at once).
const ROWS_PER_BLOCK: usize = 64;

/// MuFidelity's settings (defaults: Xplique's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuFidelity {
    /// Cells per side of the grid `G` (at least 2, at most the image's shorter side).
    pub grid: usize,
    /// Share `q` of the `G²` cells each sample removes (`0 < q < 1`).
    pub fraction: f64,
    /// Samples `N` per image (2 to [`MAX_SAMPLES`]).
    pub samples: usize,
    /// The value removed pixels take, in every channel.
    pub baseline: f32,
    /// Seed of the subsets (ChaCha8; stream = the image's dataset index, else its position).
    pub seed: u64,
    /// Which classes of each image are scored.
    pub target: Target,
}

impl Default for MuFidelity {
    fn default() -> Self {
        Self {
            grid: 9,
            fraction: 0.2,
            samples: 200,
            baseline: 0.0,
            seed: 0,
            target: Target::Predicted,
        }
    }
}

impl MuFidelity {
    /// Check the settings into a scorer (the grid is checked against an image when scored).
    pub fn check(self) -> Result<MuFidelityScorer> {
        let bad = |why: String| Err(ConfigError::Metric(format!("MuFidelity: {why}")).into());
        if self.grid < 2 {
            return bad(format!(
                "the grid needs at least 2 cells a side, got {}",
                self.grid
            ));
        }
        if !(self.fraction > 0.0 && self.fraction < 1.0) {
            return bad(format!(
                "the share of cells removed must be between 0 and 1, got {}",
                self.fraction
            ));
        }
        if !(2..=MAX_SAMPLES).contains(&self.samples) {
            return bad(format!(
                "samples must be from 2 to {MAX_SAMPLES}, got {}",
                self.samples
            ));
        }
        if !self.baseline.is_finite() {
            return bad(format!("the baseline {} is not finite", self.baseline));
        }
        Ok(MuFidelityScorer(self))
    }
}

/// One image's samples for one class: what was removed, what it cost, and their correlations.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// Per sample, the attribution of the removed pixels.
    pub attr: Vec<f64>,
    /// Per sample, the output with nothing removed minus the output with the subset removed.
    pub drop: Vec<f64>,
    /// Pearson's correlation of `attr` and `drop` (0 when either is constant).
    pub pearson: f64,
    /// Spearman's correlation (0 when either is constant).
    pub spearman: f64,
}

/// One scored class of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MuFidelityScore {
    /// The model output index.
    pub class: usize,
    /// Its name, as the explanation records it.
    pub name: String,
    /// Pearson's correlation (the paper's MuFidelity).
    pub pearson: f64,
    /// Spearman's correlation (what Xplique reports).
    pub spearman: f64,
}

/// One image's MuFidelity scores.
pub type MuFidelityImage = crate::ImageScores<MuFidelityScore>;

/// MuFidelity of an explanation: what `shap-cli metrics --json` writes under `mufidelity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MuFidelityReport {
    /// Which classes were scored.
    pub target: Target,
    /// Grid cells per side.
    pub grid: usize,
    /// Share of cells removed.
    pub fraction: f64,
    /// Cells removed per sample.
    pub subset: usize,
    /// Samples per image.
    pub samples: usize,
    /// The removed pixels' value.
    pub baseline: f32,
    /// Seed of the subsets.
    pub seed: u64,
    /// Per image.
    pub images: Vec<MuFidelityImage>,
    /// Pearson's correlation, mean over every scored (image, class).
    pub pearson: f64,
    /// Spearman's correlation, mean over every scored (image, class).
    pub spearman: f64,
}

/// Checked MuFidelity settings ([`MuFidelity::check`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuFidelityScorer(MuFidelity);

impl MuFidelityScorer {
    /// The settings it scores with.
    pub fn settings(&self) -> &MuFidelity {
        &self.0
    }

    /// Cells removed per sample: `round(q G²)`, halves up, kept within `1..G²`.
    pub fn subset_size(&self) -> usize {
        let cells = self.0.grid * self.0.grid;
        ((self.0.fraction * cells as f64 + 0.5).floor() as usize).clamp(1, cells - 1)
    }

    /// Score explanation `e` of `model`, telling `progress` of each image (with its model
    /// rows, `N + 1`).
    pub fn score<M>(
        &self,
        model: &M,
        e: &Explanation,
        progress: &dyn Progress,
    ) -> Result<MuFidelityReport>
    where
        M: BatchModel + ?Sized,
    {
        check_scorable(model, e)?;
        self.check_grid(e.shape)?;
        let images = (0..e.num_images)
            .into_par_iter()
            .map(|i| {
                let s = subject(e, i, self.0.target);
                let scored = self.score_image(model, e, &s)?;
                progress.image_done(i, self.0.samples + 1);
                Ok(MuFidelityImage {
                    index: s.index,
                    source: s.source,
                    classes: scored,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if images.iter().all(|i| i.classes.is_empty()) {
            return Err(nothing_scored());
        }
        let classes: Vec<Vec<MuFidelityScore>> = images.iter().map(|i| i.classes.clone()).collect();
        Ok(MuFidelityReport {
            target: self.0.target,
            grid: self.0.grid,
            fraction: self.0.fraction,
            subset: self.subset_size(),
            samples: self.0.samples,
            baseline: self.0.baseline,
            seed: self.0.seed,
            pearson: mean_over(&classes, |c| c.pearson),
            spearman: mean_over(&classes, |c| c.spearman),
            images,
        })
    }

    /// The samples of one image and class for the given `subsets` (cell indices `gy G + gx`):
    /// the core of the metric, for checking it against another implementation. `phi` holds
    /// one attribution per pixel.
    pub fn samples<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        image: &[f32],
        shape: ImageShape,
        class: usize,
        phi: &[f64],
        subsets: &[Vec<usize>],
    ) -> Result<Samples> {
        self.check_grid(shape)?;
        let rows = self.removals(model, image, shape, subsets, 0)?;
        Ok(self.correlate(&rows, model.num_outputs(), class, phi, shape, subsets))
    }

    fn check_grid(&self, shape: ImageShape) -> Result<()> {
        let side = shape.height.min(shape.width);
        if self.0.grid > side {
            return Err(ConfigError::Metric(format!(
                "MuFidelity: a grid of {} cells a side is finer than the {side}-pixel side of \
                 the image",
                self.0.grid
            ))
            .into());
        }
        Ok(())
    }

    fn score_image<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        e: &Explanation,
        s: &Subject<'_>,
    ) -> Result<Vec<MuFidelityScore>> {
        if s.classes.is_empty() {
            return Ok(Vec::new());
        }
        checked_outputs(model, e, s)?;
        let subsets = self.draw(s.stream);
        let rows = self.removals(model, s.image, e.shape, &subsets, s.position)?;
        let k = model.num_outputs();
        Ok(s.classes
            .iter()
            .map(|c| {
                let r = self.correlate(&rows, k, c.class, &c.phi, e.shape, &subsets);
                MuFidelityScore {
                    class: c.class,
                    name: c.name.clone(),
                    pearson: r.pearson,
                    spearman: r.spearman,
                }
            })
            .collect())
    }

    /// `N` subsets of [`Self::subset_size`] distinct cells, by a partial Fisher-Yates shuffle.
    fn draw(&self, stream: u64) -> Vec<Vec<usize>> {
        let cells = self.0.grid * self.0.grid;
        let s = self.subset_size();
        let mut rng = rng(self.0.seed, stream);
        let mut order: Vec<usize> = (0..cells).collect();
        (0..self.0.samples)
            .map(|_| {
                order.sort_unstable();
                for j in 0..s {
                    let r = rng.random_range(j..cells);
                    order.swap(j, r);
                }
                order[..s].to_vec()
            })
            .collect()
    }

    /// The model's outputs on the image (row 0) and with each subset removed (rows `1..`).
    fn removals<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        image: &[f32],
        shape: ImageShape,
        subsets: &[Vec<usize>],
        position: usize,
    ) -> Result<Vec<f32>> {
        let (m, c) = (shape.features(), shape.channels);
        let cell = self.cells(shape);
        let keep_all = vec![true; m];
        let unchanged = Changed {
            original: image,
            keeps: &keep_all,
            images: image,
            n: 1,
        };
        let mut out = eval_images(model, unchanged, shape, position)?;
        // Built and evaluated a block of samples at a time, so that memory does not grow
        // with the samples (outputs do not depend on how rows are grouped).
        for block in subsets.chunks(ROWS_PER_BLOCK) {
            let mut images = Vec::with_capacity(block.len() * m);
            let mut keeps = vec![true; block.len() * m];
            for (t, subset) in block.iter().enumerate() {
                let inside = self.membership(subset);
                images.extend_from_slice(image);
                let removed = &mut images[t * m..];
                let keep = &mut keeps[t * m..(t + 1) * m];
                for (p, &cp) in cell.iter().enumerate() {
                    if inside[cp] {
                        removed[p * c..(p + 1) * c].fill(self.0.baseline);
                        keep[p * c..(p + 1) * c].fill(false);
                    }
                }
            }
            let changed = Changed {
                original: image,
                keeps: &keeps,
                images: &images,
                n: block.len(),
            };
            out.extend(eval_images(model, changed, shape, position)?);
        }
        Ok(out)
    }

    /// Which cells `subset` holds (cell indices outside the grid are ignored).
    fn membership(&self, subset: &[usize]) -> Vec<bool> {
        let mut inside = vec![false; self.0.grid * self.0.grid];
        for &c in subset {
            if let Some(b) = inside.get_mut(c) {
                *b = true;
            }
        }
        inside
    }

    /// The cell of each pixel.
    fn cells(&self, shape: ImageShape) -> Vec<usize> {
        let (h, w, g) = (shape.height, shape.width, self.0.grid);
        (0..h * w)
            .map(|p| (p / w * g / h) * g + (p % w * g / w))
            .collect()
    }

    fn correlate(
        &self,
        rows: &[f32],
        k: usize,
        class: usize,
        phi: &[f64],
        shape: ImageShape,
        subsets: &[Vec<usize>],
    ) -> Samples {
        let cell = self.cells(shape);
        let base = f64::from(rows[class]);
        let attr: Vec<f64> = subsets
            .iter()
            .map(|subset| {
                let inside = self.membership(subset);
                (0..cell.len())
                    .filter(|&p| inside[cell[p]])
                    .map(|p| phi[p])
                    .sum()
            })
            .collect();
        let drop: Vec<f64> = (1..=subsets.len())
            .map(|t| base - f64::from(rows[t * k + class]))
            .collect();
        Samples {
            pearson: pearson(&attr, &drop),
            spearman: spearman(&attr, &drop),
            attr,
            drop,
        }
    }
}

/// The report as a table: one line per scored (image, class), then the means.
impl std::fmt::Display for MuFidelityReport {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            o,
            "MuFidelity: {} samples of {} of {}x{} cells removed (baseline {}):",
            self.samples, self.subset, self.grid, self.grid, self.baseline
        )?;
        write!(
            o,
            "  {:<14} {:<14} {:>8} {:>8}",
            "image", "class", "pearson", "spearman"
        )?;
        for img in &self.images {
            for c in &img.classes {
                let (a, b) = (&img.source, &c.name);
                write!(
                    o,
                    "\n  {a:<14} {b:<14} {:>8.4} {:>8.4}",
                    c.pearson, c.spearman
                )?;
            }
        }
        write!(
            o,
            "\n  {:<29} {:>8.4} {:>8.4}",
            "mean", self.pearson, self.spearman
        )
    }
}
