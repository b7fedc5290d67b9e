//! `report.md` and `report.html`: the run laid out like the tutorial, with what a reader needs
//! to understand it: how to read the figures, the tutorial's numbers beside ours, what differs
//! and why, the model summary, sample images and the exact command behind every figure.
//!
//! The report is a list of [`Block`]s rendered twice, as Markdown and as one self-contained HTML
//! page (figures referenced by relative path, no scripts, no network).

use crate::render::{Block, Table, render_html, render_md};
use crate::samples::Sample;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use shap_explain::ExplanationSummary;
use shap_records::{DatasetRecord, EvaluationRecord, History};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

/// Test accuracy the Keras notebook prints after its 10 epochs.
pub const KERAS_TUTORIAL_ACCURACY: f64 = 0.9044;

/// One explanation run (`shap-cli explain --json` summary) and how it was asked for.
#[derive(Clone)]
pub struct Explained {
    /// File stem of its outputs (`<name>.npz`, `.json`, `.png`).
    pub name: String,
    /// `partition` or `permutation`.
    pub algorithm: String,
    /// Masker spec, shap spelling.
    pub masker: String,
    /// `correct` or `wrong`.
    pub group: String,
    /// Evaluation budget per image (`--max-evals`).
    pub max_evals: usize,
    /// The JSON summary written by `shap-cli explain --json`.
    pub summary: ExplanationSummary,
}

impl Explained {
    /// One-line note: images, evaluations, worst efficiency error, time.
    pub fn note(&self) -> String {
        let images = &self.summary.images;
        let evals: u64 = images.iter().map(|i| i.evals as u64).sum();
        let eff = images
            .iter()
            .map(|i| i.efficiency_error)
            .fold(0.0f64, f64::max);
        format!(
            "{} images, {} evaluations, largest efficiency error {}, {} s",
            images.len(),
            fmt_count(evals),
            fmt_sci(eff),
            self.summary.total_seconds.map_or("-".into(), fmt_secs)
        )
    }
}

/// The faithfulness of one explanation (`shap-cli faithfulness --json`).
pub struct Scored {
    /// What was explained: algorithm, masker, group.
    pub label: String,
    /// Its curves figure (file name in the report's folder).
    pub figure: String,
    /// The scores.
    pub scores: shap_explain::FaithfulnessReport,
    /// MuFidelity and ROAD (`shap-cli metrics --json`).
    pub metrics: shap_explain::metrics::MetricsReport,
}

/// Step 10's checks of the first image group's explanations.
pub struct Checks {
    /// `shap-cli compare --json`, with the occlusion and random baselines.
    pub comparison: shap_explain::metrics::compare::ComparisonReport,
    /// `shap-cli sanity --json` of each explanation.
    pub sanity: Vec<Sane>,
}

/// One explanation's sanity check.
pub struct Sane {
    /// What was explained: algorithm, masker, group.
    pub label: String,
    /// Stem of its outputs: `<stem>.json`, `<stem>.png` (maps), `<stem>_curves.png`.
    pub stem: String,
    /// The check.
    pub report: shap_explain::metrics::sanity::SanityReport,
}

impl Scored {
    /// The four numbers the trust table compares, each oriented so that larger is better:
    /// random minus deletion AUC, insertion minus random AUC, MuFidelity, ROAD gap.
    fn trust(&self) -> [f64; 4] {
        let m = self.scores.mean;
        let mu = self
            .metrics
            .mufidelity
            .as_ref()
            .map_or(f64::NAN, |r| r.pearson);
        let road = self.metrics.road.as_ref().map_or(f64::NAN, |r| r.gap);
        [
            m.random_deletion_auc - m.deletion_auc,
            m.insertion_auc - m.random_insertion_auc,
            mu,
            road,
        ]
    }
}

/// Everything the report shows.
pub struct Report {
    preset: String,
    quick: bool,
    seed: u64,
    /// `shap-cli data --json`.
    pub data: Option<DatasetRecord>,
    /// The first training images, written as PNGs beside the report.
    pub samples: Vec<Sample>,
    /// Why there are no sample images, when there are none.
    pub samples_note: Option<String>,
    /// The training history (`shap-cli train --history`).
    pub history: Option<History>,
    /// `shap-cli evaluate --json`.
    pub evaluation: Option<EvaluationRecord>,
    /// Every explanation run, in order.
    pub explanations: Vec<Explained>,
    /// `shap-cli summary --json` of the first test images.
    pub class_summary: Option<shap_explain::ClassSummary>,
    /// The faithfulness of each explanation, in order.
    pub faithfulness: Vec<Scored>,
    /// The comparison and sanity checks of the first image group.
    pub checks: Option<Checks>,
    /// The `shap-cli` command line that made each figure, by figure file name.
    pub commands: BTreeMap<String, String>,
    /// Step name, time, note.
    pub steps: Vec<(String, Duration, String)>,
}

impl Report {
    /// An empty report for one run.
    pub fn new(preset: &str, quick: bool, seed: u64) -> Self {
        Self {
            preset: preset.into(),
            quick,
            seed,
            data: None,
            samples: Vec::new(),
            samples_note: None,
            history: None,
            evaluation: None,
            explanations: Vec::new(),
            class_summary: None,
            faithfulness: Vec::new(),
            checks: None,
            commands: BTreeMap::new(),
            steps: Vec::new(),
        }
    }

    /// Write `report.md` and `report.html` into `dir` (atomically: temp file + rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let blocks = self.blocks(dir);
        write_atomic(&dir.join("report.md"), &render_md(&blocks))?;
        write_atomic(
            &dir.join("report.html"),
            &render_html(&blocks, &self.title()),
        )?;
        Ok(())
    }

    fn title(&self) -> String {
        format!(
            "SHAP values for image classification: {} tutorial{}",
            self.tutorial(),
            if self.quick { " (quick run)" } else { "" }
        )
    }

    /// Are the explained outputs logits (the explanation's `outputs` setting; else the preset)?
    fn logits(&self) -> bool {
        self.explanations
            .first()
            .and_then(|e| e.summary.settings.get("outputs"))
            .map_or(self.preset == "flax", |o| o == "logits")
    }

    fn tutorial(&self) -> &'static str {
        if self.preset == "flax" {
            "Flax"
        } else {
            "Keras"
        }
    }

    fn blocks(&self, dir: &Path) -> Vec<Block> {
        let mut b = vec![Block::H(1, self.title())];
        b.push(Block::P(format!(
            "Reproduced in Rust with Candle (model) and shap-toolkit (explainers). Preset `{}`, seed {}.{}",
            self.preset,
            self.seed,
            if self.quick {
                " Quick mode: training on a 6,000-image subset for one epoch and two images per explanation; numbers are not the tutorial's."
            } else {
                ""
            }
        )));
        b.push(Block::Toc);
        self.how_to_read(&mut b);
        self.beside_tutorial(&mut b, dir);
        self.data_section(&mut b);
        self.model_section(&mut b, dir);
        self.evaluation_section(&mut b, dir);
        self.explanation_sections(&mut b, dir);
        self.summary_section(&mut b, dir);
        self.faithfulness_section(&mut b, dir);
        self.trust_section(&mut b);
        self.checks_sections(&mut b, dir);
        self.steps_section(&mut b);
        b
    }

    fn how_to_read(&self, b: &mut Vec<Block>) {
        b.push(Block::H(2, "How to read an explanation figure".into()));
        b.push(Block::P(
            "Each explanation figure has one row per explained test image. The first column is the image, titled `true: Coat | pred: Coat (0.93)`: the true class, the class the model predicts and its score for that class. Each further column explains one of the model's outputs (the class named above it), the five highest-scoring classes first, as the tutorial's `shap.Explanation.argsort.flip[:5]` does.".into(),
        ));
        b.push(Block::P(format!(
            "**Red** pixels raised that class's score, **blue** pixels lowered it, and where the faded grey image shows through the pixel made little difference. The colour bar gives the scale in SHAP values, one scale for the whole figure (the strongest 0.1% of values saturate). Values are measured from the **base value**: the model's output when the masker hides every pixel. For each image and class, the values of all pixels sum to **f(x) − base**, the output on the whole image minus the base value; the tables' *efficiency error* is |sum(values) + base − f(x)|, which is rounding only (the tests hold it under 1e-5). {}",
            if self.logits() {
                "Here the explained outputs are logits, so values are in logit units."
            } else {
                "Here the explained outputs are softmax probabilities, so a value of 0.01 moved that class's probability by one percentage point."
            }
        )));
        b.push(Block::P(
            "Under each figure: the exact `shap-cli` command that made it (run in this report's folder; `shap-cli` is `target/release/shap-cli`, or `cargo run --release -p shap-cli --`), and what differs from the tutorial's figure and why.".into(),
        ));
    }

    fn beside_tutorial(&self, b: &mut Vec<Block>, dir: &Path) {
        b.push(Block::H(2, "The tutorial's numbers beside ours".into()));
        let acc = self
            .evaluation
            .as_ref()
            .map_or(f64::NAN, |e| e.scores.accuracy);
        let (tut_acc, tut_setup) = if self.preset == "flax" {
            (
                "not quoted (the Flax notebook's figure is not recorded in this repository)"
                    .to_string(),
                "5 epochs, Adam lr 1e-4, logits head",
            )
        } else {
            (
                fmt_acc(KERAS_TUTORIAL_ACCURACY),
                "10 epochs, Adam lr 1e-3, softmax head",
            )
        };
        let params = model_summary(&dir.join("model.safetensors"))
            .map(|m| fmt_count(m.total()))
            .unwrap_or_else(|e| format!("unknown ({e:#})"));
        let mut t = Table::new(&["quantity", "tutorial", "this run"], &[]);
        t.row(vec!["test accuracy".into(), tut_acc, fmt_acc(acc)]);
        t.row(vec![
            "trainable parameters".into(),
            fmt_count(130_394),
            params,
        ]);
        t.row(vec![
            "training".into(),
            tut_setup.into(),
            self.training_setup(),
        ]);
        b.push(Block::Table(t));
        b.push(Block::P(format!(
            "{}Accuracies differ by a few tenths of a percentage point between runs of either framework: the weights start from a different random state. The explanations below therefore explain a model close to, but not the same as, the tutorial's, and the first wrongly classified test images can differ.",
            if self.quick {
                "This quick run trains on a tenth of the data for one epoch, so its accuracy is well below the tutorial's. "
            } else {
                ""
            }
        )));
    }

    fn training_setup(&self) -> String {
        let Some(h) = &self.history else {
            return String::new();
        };
        let cfg = &h.config;
        format!(
            "{} epoch{}, Adam lr {:e}, {} head, batch {}, {} training images",
            cfg.epochs,
            if cfg.epochs == 1 { "" } else { "s" },
            cfg.lr,
            cfg.head,
            cfg.batch_size,
            fmt_count(h.train_examples as u64)
        )
    }

    fn data_section(&self, b: &mut Vec<Block>) {
        b.push(Block::H(2, "1. Load the data".into()));
        let Some(d) = &self.data else { return };
        b.push(Block::P(format!(
            "Fashion-MNIST found at: {}. {} training and {} test images of 28×28 grey pixels, scaled to [0, 1] as the tutorial does.",
            d.source,
            fmt_count(d.train.count as u64),
            fmt_count(d.test.count as u64)
        )));
        let hist = |split: &shap_records::SplitRecord, i: usize| {
            split
                .histogram
                .get(i)
                .map(|&n| fmt_count(n as u64))
                .unwrap_or_default()
        };
        let mut t = Table::new(
            &["label", "class", "training images", "test images"],
            &[0, 2, 3],
        );
        for (i, c) in d.classes.iter().enumerate() {
            t.row(vec![
                i.to_string(),
                c.clone(),
                hist(&d.train, i),
                hist(&d.test, i),
            ]);
        }
        b.push(Block::Table(t));
        if !self.samples.is_empty() {
            b.push(Block::P(format!(
                "The first {} training images and their labels:",
                self.samples.len()
            )));
        }
        if let Some(note) = &self.samples_note {
            b.push(Block::P(format!("(No sample images: {note}.)")));
        }
        let names = &d.classes;
        let cells = self
            .samples
            .iter()
            .map(|s| {
                let name = names.get(usize::from(s.label)).cloned();
                let caption = format!(
                    "#{} {}",
                    s.index,
                    name.unwrap_or_else(|| s.label.to_string())
                );
                (s.file.clone(), caption)
            })
            .collect();
        b.push(Block::Grid(cells));
    }

    fn model_section(&self, b: &mut Vec<Block>, dir: &Path) {
        b.push(Block::H(2, "2. Build and train the model".into()));
        match model_summary(&dir.join("model.safetensors")) {
            Ok(m) => {
                b.push(Block::P(
                    "The tutorial's CNN, read back from the trained checkpoint `model.safetensors` (as Keras's `model.summary()` shows it; `None` is the batch dimension):".into(),
                ));
                b.push(Block::Table(m.table()));
            }
            Err(e) => b.push(Block::P(format!("(No model summary: {e:#}.)"))),
        }
        if let Some(h) = &self.history {
            b.push(Block::Table(history_table(h)));
        }
        self.figure(b, dir, "training_curves.png", "Training curves");
        b.push(Block::P(
            "**Differs from the tutorial:** Candle instead of TensorFlow or JAX, so the initial weights and the batch order come from a different random generator; the architecture, optimiser, batch size and epochs are the tutorial's.".into(),
        ));
    }

    fn evaluation_section(&self, b: &mut Vec<Block>, dir: &Path) {
        b.push(Block::H(2, "3. Evaluate".into()));
        if let Some(e) = &self.evaluation {
            b.push(Block::P(format!(
                "Test accuracy: **{}** (the {} tutorial: {}).",
                fmt_acc(e.scores.accuracy),
                self.tutorial(),
                if self.preset == "flax" {
                    "not quoted".to_string()
                } else {
                    fmt_acc(KERAS_TUTORIAL_ACCURACY)
                }
            )));
            b.push(Block::P("Classification report:".into()));
            b.push(Block::Pre(e.report_text.clone()));
            b.push(Block::P(
                "Confusion matrix (rows: true class, columns: predicted):".into(),
            ));
            b.push(Block::Pre(e.confusion_text.clone()));
        }
        self.figure(b, dir, "confusion_matrix.png", "Confusion matrix");
    }

    fn explanation_sections(&self, b: &mut Vec<Block>, dir: &Path) {
        let sections = [
            (
                "partition",
                "correct",
                "4. Partition explainer: correct predictions",
            ),
            (
                "partition",
                "wrong",
                "5. Partition explainer: wrong predictions",
            ),
            (
                "permutation",
                "correct",
                "6. Permutation explainer: correct predictions",
            ),
            (
                "permutation",
                "wrong",
                "7. Permutation explainer: wrong predictions",
            ),
        ];
        for (alg, group, heading) in sections {
            b.push(Block::H(2, heading.into()));
            for e in self
                .explanations
                .iter()
                .filter(|e| e.algorithm == alg && e.group == group)
            {
                b.push(Block::H(3, format!("Masker `{}`", e.masker)));
                b.push(Block::P(format!("{}.", e.note())));
                b.push(Block::Table(explained_table(e, self.logits())));
                self.figure(
                    b,
                    dir,
                    &format!("{}.png", e.name),
                    &format!(
                        "{} explainer, {} predictions, masker {}",
                        e.algorithm, e.group, e.masker
                    ),
                );
                b.push(Block::P(format!(
                    "**Differs from the tutorial:** {}",
                    differences(e)
                )));
            }
        }
    }

    fn summary_section(&self, b: &mut Vec<Block>, dir: &Path) {
        let Some(s) = &self.class_summary else { return };
        b.push(Block::H(
            2,
            format!(
                "8. Per-class summary of the first {} test images",
                fmt_count(s.images as u64)
            ),
        ));
        b.push(Block::P(format!(
            "The first {} test images explained with the Partition explainer, `blur(28,28)`, 500 evaluations and the top 5 classes, then grouped by the class the model predicts. Per class, the figure shows the mean image, the mean SHAP map of that class (red: pixels that raise it on average, blue: lower it) and the mean absolute map (where the model looks at all, whichever the direction), one colour scale per row. An image whose top 5 left out its own predicted class would be counted under *without values*, not averaged (docs/outputs-and-explanations.md).",
            fmt_count(s.images as u64)
        )));
        let mut t = Table::new(
            &[
                "class",
                "images predicted",
                "averaged",
                "without values",
                "sum of mean absolute SHAP",
            ],
            &[1, 2, 3, 4],
        );
        for c in &s.classes {
            let total: f64 = c.mean_abs.iter().flatten().sum();
            t.row(vec![
                c.name.clone(),
                fmt_count(c.predicted as u64),
                fmt_count(c.with_values as u64),
                fmt_count(c.without_values as u64),
                if c.mean_abs.is_some() {
                    fmt_shap(total)
                } else {
                    String::new()
                },
            ]);
        }
        b.push(Block::Table(t));
        self.figure(
            b,
            dir,
            "class_summary.png",
            "Mean SHAP and mean |SHAP| per predicted class",
        );
    }

    fn faithfulness_section(&self, b: &mut Vec<Block>, dir: &Path) {
        if self.faithfulness.is_empty() {
            return;
        }
        b.push(Block::H(
            2,
            "9. Faithfulness: deletion and insertion".into(),
        ));
        b.push(Block::P(
            "Each explanation above, scored with `shap-cli faithfulness` (docs/faithfulness.md): per image and its predicted class (`--target predicted`, the default), the pixels are hidden (deletion) or revealed from a fully hidden image (insertion) in the order of their SHAP values, in 28 steps, through the masker the explanation was made with, and the class's score is recorded; the AUC is the mean score along the curve. The same with 10 seeded random orders is the baseline.".into(),
        ));
        b.push(Block::P(
            "**How to read it:** a faithful explanation has a deletion AUC well **below** its random baseline (hiding its top pixels first makes the score fall fastest) and an insertion AUC well **above** it; the further from random, the better the explanation ranks the pixels the model relies on, and AUCs are in the units of the explained outputs.".into(),
        ));
        let mut t = Table::new(
            &[
                "explanation",
                "image × class",
                "deletion AUC",
                "random",
                "insertion AUC",
                "random",
            ],
            &[1, 2, 3, 4, 5],
        );
        for f in &self.faithfulness {
            let m = f.scores.mean;
            let pairs: usize = f.scores.images.iter().map(|i| i.classes.len()).sum();
            t.row(vec![
                f.label.clone(),
                fmt_count(pairs as u64),
                fmt_auc(m.deletion_auc),
                fmt_auc(m.random_deletion_auc),
                fmt_auc(m.insertion_auc),
                fmt_auc(m.random_insertion_auc),
            ]);
        }
        b.push(Block::Table(t));
        for f in &self.faithfulness {
            self.figure(
                b,
                dir,
                &f.figure,
                &format!("Mean curves: {}", f.label.replace('`', "")),
            );
        }
    }

    fn trust_section(&self, b: &mut Vec<Block>) {
        if self.faithfulness.is_empty() {
            return;
        }
        b.push(Block::H(
            2,
            "10. Which explanation should you trust?".into(),
        ));
        b.push(Block::P(
            "Four scores of each explanation, each oriented so that **larger is better**: how far the deletion AUC falls below random and the insertion AUC rises above it (section 9), MuFidelity (the correlation, over 200 random sets of 16 of 81 grid cells, between the attribution removed and the drop in the output; 1 is perfect) and the ROAD gap (the output with the least relevant pixels removed minus with the most relevant removed, 10% to 90%, removed pixels filled by noisy linear imputation). Definitions: docs/metrics.md. Explanations of the same image group explain the same images and can be compared directly.".into(),
        ));
        b.push(trust_table(
            self.faithfulness
                .iter()
                .map(|f| (f.label.clone(), f.trust())),
        ));
        b.push(Block::P(self.trust_verdict()));
    }

    /// Which explanation of the first image group scores best by each measure, from the numbers.
    fn trust_verdict(&self) -> String {
        let group: Vec<&Scored> = match self.explanations.first() {
            Some(first) => self
                .faithfulness
                .iter()
                .zip(&self.explanations)
                .filter(|(_, e)| e.group == first.group)
                .map(|(f, _)| f)
                .collect(),
            None => return String::new(),
        };
        let names = ["deletion", "insertion", "MuFidelity", "ROAD"];
        let best: Vec<String> = names
            .iter()
            .enumerate()
            .filter_map(|(k, name)| {
                let top = group
                    .iter()
                    .filter(|f| f.trust()[k].is_finite())
                    .max_by(|a, b| a.trust()[k].total_cmp(&b.trust()[k]))?;
                Some(format!("{name}: {}", top.label))
            })
            .collect();
        format!(
            "**Best on the same images** ({} explanations of the {} group), by each measure: {}.",
            group.len(),
            self.explanations.first().map_or("", |e| e.group.as_str()),
            best.join("; ")
        )
    }

    /// Section 10's comparison with the baselines, and the sanity check.
    fn checks_sections(&self, b: &mut Vec<Block>, dir: &Path) {
        let Some(c) = &self.checks else {
            return;
        };
        self.comparison_section(b, dir, &c.comparison);
        self.sanity_section(b, dir, &c.sanity);
    }

    fn comparison_section(
        &self,
        b: &mut Vec<Block>,
        dir: &Path,
        c: &shap_explain::metrics::compare::ComparisonReport,
    ) {
        use shap_explain::metrics::compare::TrustScores;
        b.push(Block::H(3, "Against two baselines".into()));
        b.push(Block::P(
            "The same four scores for the explanations of the first group and for two explanations any method should beat: plain occlusion (each square of pixels hidden in turn with the first explanation's masker; its drop spread over the square) and random values. An explanation that does not beat random on a measure tells nothing by that measure. Made by `shap-cli compare`.".into(),
        ));
        b.push(trust_table(
            c.rows.iter().map(|r| (r.name.clone(), r.scores.as_array())),
        ));
        let best: Vec<String> = TrustScores::NAMES
            .iter()
            .zip(&c.best)
            .map(|(n, w)| format!("{n}: {w}"))
            .collect();
        b.push(Block::P(format!(
            "**Best with the baselines**, by each measure: {}. {}",
            best.join("; "),
            beats_random(c)
        )));
        self.figure(
            b,
            dir,
            "comparison.png",
            "Four scores per explanation, larger is better (baselines grey)",
        );
    }

    fn sanity_section(&self, b: &mut Vec<Block>, dir: &Path, sane: &[Sane]) {
        let Some(first) = sane.first() else {
            return;
        };
        b.push(Block::H(
            3,
            "Does the explanation depend on the model? (sanity check)".into(),
        ));
        b.push(Block::P(format!(
            "The model-parameter randomisation test (Adebayo et al. 2018): the network's layers are replaced by freshly initialised ones from the output down ({}), one more at each step, and the same images explained again with the same settings. An explanation that stays the same explains the image, not the model. Similarity to the original: Spearman rank correlation of |values| and of values, and SSIM of |values|; it **passes** when, with every layer random, the rank correlation of values is below {}. Made by `shap-cli sanity`.",
            first.report.layers.join(", "),
            first.report.pass_below
        )));
        let mut t = Table::new(
            &[
                "explanation",
                "rank of abs, all random",
                "rank of signed, all random",
                "SSIM of abs, all random",
                "verdict",
            ],
            &[1, 2, 3],
        );
        for s in sane {
            let m = s.report.steps.last().map(|s| s.mean);
            let f = |x: Option<f64>| x.map_or("-".into(), fmt_auc);
            t.row(vec![
                s.label.clone(),
                f(m.map(|m| m.spearman_abs)),
                f(m.map(|m| m.spearman)),
                f(m.map(|m| m.ssim)),
                if s.report.passes {
                    "passes".into()
                } else {
                    "fails".into()
                },
            ]);
        }
        b.push(Block::Table(t));
        let passed = sane.iter().filter(|s| s.report.passes).count();
        b.push(Block::P(format!(
            "**{passed} of {} explanations pass the sanity check.**",
            sane.len()
        )));
        let label = first.label.replace('`', "");
        self.figure(
            b,
            dir,
            &format!("{}.png", first.stem),
            &format!("Maps as layers are randomised: {label}"),
        );
        self.figure(
            b,
            dir,
            &format!("{}_curves.png", first.stem),
            &format!("Similarity to the original: {label}"),
        );
    }

    fn steps_section(&self, b: &mut Vec<Block>) {
        b.push(Block::H(2, "Step times".into()));
        let mut t = Table::new(&["step", "seconds", "note"], &[1]);
        for (n, d, note) in &self.steps {
            t.row(vec![n.clone(), fmt_secs(d.as_secs_f64()), note.clone()]);
        }
        b.push(Block::Table(t));
        b.push(Block::P(format!(
            "Made by `cargo xtask reproduce{}{}`.",
            if self.preset == "flax" {
                " --preset flax"
            } else {
                ""
            },
            if self.quick { " --quick" } else { "" }
        )));
    }

    /// A figure, with the command that made it.
    fn figure(&self, b: &mut Vec<Block>, dir: &Path, file: &str, caption: &str) {
        if dir.join(file).is_file() {
            b.push(Block::Img(file.into(), caption.into()));
        } else {
            b.push(Block::P(format!("({file} was not produced)")));
        }
        if let Some(cmd) = self.commands.get(file) {
            b.push(Block::Cmd(cmd.clone()));
        }
    }
}

fn history_table(h: &History) -> Table {
    let mut t = Table::new(
        &[
            "epoch",
            "training loss",
            "training accuracy",
            "test loss",
            "test accuracy",
            "seconds",
        ],
        &[0, 1, 2, 3, 4, 5],
    );
    for e in &h.epochs {
        t.row(vec![
            e.epoch.to_string(),
            fmt_loss(e.train_loss),
            fmt_acc(e.train_accuracy),
            fmt_loss(e.test_loss.unwrap_or(f64::NAN)),
            fmt_acc(e.test_accuracy.unwrap_or(f64::NAN)),
            fmt_secs(e.train_seconds),
        ]);
    }
    t
}

/// One row per explained image; `logits`: the score column holds logits, not probabilities.
fn explained_table(e: &Explained, logits: bool) -> Table {
    let mut t = Table::new(
        &[
            "test image",
            "true",
            "predicted",
            if logits { "logit" } else { "probability" },
            "explained classes",
            "evaluations",
            "efficiency error",
            "seconds",
        ],
        &[0, 3, 5, 6, 7],
    );
    for i in &e.summary.images {
        t.row(vec![
            i.index.map(|x| x.to_string()).unwrap_or_default(),
            i.true_name.clone().unwrap_or_default(),
            i.predicted_name.clone().unwrap_or_default(),
            fmt_prob(i.probability.unwrap_or(f64::NAN)),
            i.class_names.join(", "),
            fmt_count(i.evals as u64),
            fmt_sci(i.efficiency_error),
            i.seconds.map_or("-".into(), fmt_secs),
        ]);
    }
    t
}

/// What differs from the tutorial's figure for this explanation, and why.
fn differences(e: &Explained) -> String {
    let mut d = Vec::new();
    if e.masker.starts_with("inpaint") {
        d.push("the tutorial's shap truncates the [0, 1] float image to 8-bit before `cv2.inpaint`, which keeps only pixels exactly equal to 1.0 and turns every other pixel black, and it replaces every pixel, kept ones included: its inpainting figure explains the model on a nearly black 0/1 image, and even with nothing hidden the model does not see the real image. We inpaint at 0..255 scale and keep every unmasked pixel exactly, so hidden regions are filled from the real image and f(x) is the model's output on the image itself (`--shap-compat` reproduces shap's masker exactly; docs/maskers.md).");
    }
    if e.algorithm == "partition" {
        d.push("shap breaks ties between equally important partitions with NumPy's global random generator, so the tutorial's figure changes from run to run; we break them first in, first out, so this figure is the same every run (`--shap-compat --seed N` emulates NumPy's generator).");
    } else {
        d.push(if e.max_evals < 2 * (2 * 784 + 1) {
            "1,600 evaluations for 784 pixels is a single antithetic permutation pass (one pass needs 2 × 784 + 1 = 1,569), so each value is one sample: the map is speckled and noisy in the tutorial too. Our orders come from a seeded ChaCha8 stream, shap's from numba's, so the speckle differs; a larger `--max-evals` averages more passes and smooths it. shap also explains all ten classes here, in class order; we explain the same top five as the Partition figures."
        } else {
            "the permutation orders come from a seeded ChaCha8 stream, shap's from numba's, so individual values differ by sampling noise."
        });
    }
    d.push("Every cell is titled with its own row's classes (shap titles only the first row) and the grey underlay is aligned with the values (shap's is half a pixel off).");
    d.join(" ")
}

/// The layers of the tutorial CNN, read from a checkpoint's safetensors header.
pub struct ModelSummary {
    rows: Vec<(String, String, String, u64)>,
}

impl ModelSummary {
    /// Total parameter count.
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.3).sum()
    }

    fn table(&self) -> Table {
        let mut t = Table::new(&["layer (type)", "output shape", "parameters"], &[2]);
        for (name, kind, shape, params) in &self.rows {
            t.row(vec![
                format!("{name} ({kind})"),
                shape.clone(),
                fmt_count(*params),
            ]);
        }
        t.row(vec![
            "**total**".into(),
            String::new(),
            format!("**{}**", fmt_count(self.total())),
        ]);
        t
    }
}

/// Read the safetensors header of the tutorial CNN's checkpoint and lay it out like Keras's
/// `model.summary()` (28×28 inputs, `same` padding).
pub fn model_summary(path: &Path) -> Result<ModelSummary> {
    let header = safetensors_header(path)?;
    let shape = |name: &str| -> Result<Vec<u64>> {
        header
            .get(name)
            .and_then(|t| t.get("shape"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .with_context(|| format!("{} has no tensor {name}", path.display()))
    };
    let count = |name: &str| -> Result<u64> { Ok(shape(name)?.iter().product()) };
    let c1 = shape("conv1.weight")?;
    let c2 = shape("conv2.weight")?;
    let fc = shape("fc.weight")?;
    let (Some(&c1_out), Some(&c2_out), [classes, flat]) = (c1.first(), c2.first(), fc.as_slice())
    else {
        bail!("unexpected tensor shapes in {}", path.display());
    };
    let head = header
        .get("__metadata__")
        .and_then(|m| m.get("head"))
        .and_then(Value::as_str)
        .unwrap_or("softmax");
    let conv = |n: u64| format!("Conv2D {n}, 3×3, same, ReLU");
    let rows = vec![
        (
            "conv1".into(),
            conv(c1_out),
            format!("(None, 28, 28, {c1_out})"),
            count("conv1.weight")? + count("conv1.bias")?,
        ),
        (
            "conv2".into(),
            conv(c2_out),
            format!("(None, 28, 28, {c2_out})"),
            count("conv2.weight")? + count("conv2.bias")?,
        ),
        (
            "flatten".into(),
            "Flatten".into(),
            format!("(None, {flat})"),
            0,
        ),
        (
            "fc".into(),
            format!("Dense {classes}, {head}"),
            format!("(None, {classes})"),
            count("fc.weight")? + count("fc.bias")?,
        ),
    ];
    Ok(ModelSummary { rows })
}

/// The JSON header of a safetensors file (at most 1 MiB).
fn safetensors_header(path: &Path) -> Result<Value> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .with_context(|| format!("{} is too short for safetensors", path.display()))?;
    let len = u64::from_le_bytes(len);
    if len > 1 << 20 {
        bail!("{} declares a {len}-byte header", path.display());
    }
    let mut text = Vec::new();
    f.take(len).read_to_end(&mut text)?;
    serde_json::from_slice(&text)
        .with_context(|| format!("parsing the header of {}", path.display()))
}

/// Counts: thousands separated by commas (`60,000`).
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn fixed(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        String::new()
    }
}

/// Accuracies: four decimals, as the tutorial prints them.
fn fmt_acc(x: f64) -> String {
    fixed(x, 4)
}

/// Losses: four decimals.
fn fmt_loss(x: f64) -> String {
    fixed(x, 4)
}

/// The predicted class's score (a probability, or a logit for the Flax preset): two
/// decimals, as in the figure titles `shap-cli` draws.
fn fmt_prob(x: f64) -> String {
    fixed(x, 2)
}

/// Areas under faithfulness curves: four decimals.
fn fmt_auc(x: f64) -> String {
    fixed(x, 4)
}

/// The four larger-is-better scores of each named explanation, one row each.
fn trust_table(rows: impl Iterator<Item = (String, [f64; 4])>) -> Block {
    let mut t = Table::new(
        &[
            "explanation",
            "random − deletion",
            "insertion − random",
            "MuFidelity",
            "ROAD gap",
        ],
        &[1, 2, 3, 4],
    );
    for (name, scores) in rows {
        let mut row = vec![name];
        row.extend(scores.iter().map(|&x| fmt_auc(x)));
        t.row(row);
    }
    Block::Table(t)
}

/// On how many measures each explanation beats the random baseline, from the comparison.
fn beats_random(c: &shap_explain::metrics::compare::ComparisonReport) -> String {
    let Some(random) = c.rows.iter().find(|r| r.baseline && r.name == "random") else {
        return String::new();
    };
    let r = random.scores.as_array();
    let parts: Vec<String> = c
        .rows
        .iter()
        .filter(|x| !x.baseline)
        .map(|x| {
            let wins = x
                .scores
                .as_array()
                .iter()
                .zip(r)
                .filter(|(a, b)| a > &b)
                .count();
            format!("{} beats random on {wins} of 4", x.name)
        })
        .collect();
    format!("{}.", parts.join("; "))
}

/// Sums of SHAP magnitudes: three decimals.
fn fmt_shap(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        String::new()
    }
}

/// Durations in seconds: two decimals.
fn fmt_secs(x: f64) -> String {
    fixed(x, 2)
}

/// Tiny errors: one significant decimal in scientific notation; exact zero as `0`.
fn fmt_sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_finite() {
        format!("{x:.1e}")
    } else {
        String::new()
    }
}

/// Write `text` to `path` with the workspace's one output writer (`shap_io`: temporary file
/// + rename; devices, FIFOs and symlinks are never replaced).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    Ok(shap_io::write_bytes(path, text.as_bytes())?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(130_394), "130,394");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
    }

    #[test]
    fn one_format_per_quantity() {
        assert_eq!(fmt_acc(0.9), "0.9000");
        assert_eq!(fmt_prob(0.934), "0.93");
        assert_eq!(fmt_secs(1.0), "1.00");
        assert_eq!(fmt_sci(0.0), "0");
        assert_eq!(fmt_sci(1.234e-8), "1.2e-8");
        assert_eq!(fmt_acc(f64::NAN), "");
    }

    /// A report of a made-up run with one sample image and one explanation figure.
    pub(crate) fn fake_report(dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir.join("samples"))?;
        let png = crate::samples::encode_grey_png(2, 2, &[0, 255, 128, 64])?;
        std::fs::write(dir.join("samples/train_0.png"), &png)?;
        std::fs::write(dir.join("partition_correct_blur.png"), &png)?;
        let mut r = Report::new("keras", true, 42);
        r.data = Some(serde_json::from_value(serde_json::json!({
            "source": "directory /d", "source_kind": "directory",
            "classes": ["T-shirt/top", "Trouser"],
            "train": {"count": 60000, "rows": 28, "cols": 28, "histogram": [6000, 6000]},
            "test": {"count": 10000, "rows": 28, "cols": 28, "histogram": [1000, 1000]},
        }))?);
        r.samples = vec![Sample {
            index: 0,
            label: 1,
            file: "samples/train_0.png".into(),
        }];
        let scores = serde_json::json!({"name": "a", "precision": 1.0, "recall": 1.0, "f1": 1.0,
            "support": 1});
        r.evaluation = Some(serde_json::from_value(serde_json::json!({
            "model": "model.safetensors", "output": "probabilities", "accuracy": 0.9, "n": 1,
            "meta": {"preset": "keras", "head": "softmax", "seed": 42, "epochs": 1},
            "confusion": [[1]], "classes": [scores], "macro_avg": scores, "weighted_avg": scores,
            "first_correct": [0], "first_wrong": [], "report_text": "r", "confusion_text": "c"
        }))?);
        r.explanations.push(Explained {
            name: "partition_correct_blur".into(),
            algorithm: "partition".into(),
            masker: "blur(28,28)".into(),
            group: "correct".into(),
            max_evals: 500,
            summary: serde_json::from_value(serde_json::json!({
                "algorithm": "partition", "shape": [28, 28, 1], "num_outputs": 2,
                "settings": {"outputs": "probabilities"}, "total_seconds": 0.5,
                "model_seconds": 0.4, "model_rows": 500, "model_calls": 50,
                "images": [{
                "index": 0, "source": "test[0]", "true_label": 1, "true_name": "Trouser",
                "predicted": 1, "predicted_name": "Trouser", "probability": 0.99,
                "classes": [1, 3], "class_names": ["Trouser", "Dress"],
                "base_values": [0.1, 0.1], "fx": [0.99, 0.0], "evals": 500,
                "efficiency_error": 0.0, "seconds": 0.1, "title": "true: Trouser"}]}))?,
        });
        std::fs::write(dir.join("class_summary.png"), &png)?;
        std::fs::write(dir.join("partition_correct_blur_faithfulness.png"), &png)?;
        r.class_summary = Some(serde_json::from_value(serde_json::json!({
            "shape": [2, 2, 1], "images": 3, "without_values": 1, "classes": [
                {"class": 1, "name": "Trouser", "predicted": 3, "with_values": 2,
                 "without_values": 1, "mean_image": [0.0, 0.0, 0.0, 0.0], "mean": [0.1, -0.2, 0.0, 0.0],
                 "mean_abs": [0.1, 0.2, 0.0, 0.0]}]}))?);
        let curve = serde_json::json!([1.0, 0.5, 0.0]);
        r.faithfulness.push(Scored {
            label: "partition `blur(28,28)`, correct".into(),
            figure: "partition_correct_blur_faithfulness.png".into(),
            scores: serde_json::from_value(serde_json::json!({
                "masker": "blur(28,28)", "steps": 2, "random": 10, "seed": 0, "feature": "pixel",
                "features": 784, "images": [{"index": 0, "source": "test[0]", "classes": [
                    {"class": 1, "name": "Trouser", "deletion_auc": 0.125, "insertion_auc": 0.75,
                     "random_deletion_auc": 0.5, "random_insertion_auc": 0.5}]}],
                "mean": {"deletion_auc": 0.125, "insertion_auc": 0.75,
                         "random_deletion_auc": 0.5, "random_insertion_auc": 0.5},
                "mean_curves": {"deletion": curve, "insertion": curve,
                                "random_deletion": curve, "random_insertion": curve}}))?,
            metrics: serde_json::from_value(serde_json::json!({
                "mufidelity": {"target": "predicted", "grid": 9, "fraction": 0.2, "subset": 16,
                    "samples": 200, "baseline": 0.0, "seed": 42, "images": [],
                    "pearson": 0.625, "spearman": 0.5},
                "road": {"target": "predicted", "percentages": [10, 90], "noise": 0.01,
                    "seed": 42, "images": [], "mean_curves": {"morf": [0.5, 0.25],
                    "lerf": [1.0, 0.75]}, "morf_mean": 0.375, "lerf_mean": 0.875, "gap": 0.5}
            }))?,
        });
        r.checks = Some(fake_checks(dir, &png)?);
        r.commands.insert(
            "partition_correct_blur.png".into(),
            "shap-cli explain --masker 'blur(28,28)' --plot partition_correct_blur.png".into(),
        );
        r.steps.push((
            "finding the data".into(),
            Duration::from_millis(200),
            "x".into(),
        ));
        r.write(dir)
    }

    /// A comparison of one explanation with the random baseline, and its sanity check.
    fn fake_checks(dir: &Path, png: &[u8]) -> Result<Checks> {
        for f in ["comparison.png", "pcb_sanity.png", "pcb_sanity_curves.png"] {
            std::fs::write(dir.join(f), png)?;
        }
        let row = |name: &str, baseline: bool, v: f64| -> Result<serde_json::Value> {
            Ok(serde_json::json!({"name": name, "baseline": baseline,
                "aucs": {"deletion_auc": 0.0, "insertion_auc": v, "random_deletion_auc": v,
                         "random_insertion_auc": 0.0},
                "mufidelity_spearman": v, "road_morf": 0.0, "road_lerf": v,
                "scores": {"deletion_gap": v, "insertion_gap": v, "mufidelity": v, "road_gap": v}}))
        };
        let comparison = shap_explain::metrics::compare::ComparisonReport::new(
            shap_explain::Target::Predicted,
            vec![
                serde_json::from_value(row("partition_correct_blur", false, 0.5)?)?,
                serde_json::from_value(row("random", true, 0.0)?)?,
            ],
        );
        let mean = serde_json::json!({"spearman_abs": 0.25, "spearman": 0.125, "ssim": 0.0625});
        let report = serde_json::from_value(serde_json::json!({
            "target": "predicted", "layers": ["fc", "conv2", "conv1"], "seed": 42,
            "steps": [{"randomised": ["fc"], "images": [], "mean": mean}],
            "pass_below": 0.5, "passes": true}))?;
        Ok(Checks {
            comparison,
            sanity: vec![Sane {
                label: "partition `blur(28,28)`, correct".into(),
                stem: "pcb_sanity".into(),
                report,
            }],
        })
    }

    #[test]
    fn report_teaches() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        fake_report(&dir)?;
        let html = std::fs::read_to_string(dir.join("report.html"))?;
        for needle in [
            "<nav id=\"contents\">",
            "How to read an explanation figure",
            "f(x) − base",
            "0.9044",
            "<img src=\"samples/train_0.png\"",
            "#0 Trouser",
            "shap-cli explain --masker 'blur(28,28)'",
            "<b>Differs from the tutorial:</b> shap breaks ties",
            "<td class=\"n\">6,000</td>",
            "No model summary",
            "8. Per-class summary of the first 3 test images",
            "<td>Trouser</td><td class=\"n\">3</td><td class=\"n\">2</td><td class=\"n\">1</td><td class=\"n\">0.300</td>",
            "<img src=\"class_summary.png\"",
            "9. Faithfulness: deletion and insertion",
            "<b>How to read it:</b>",
            "<td class=\"n\">0.1250</td><td class=\"n\">0.5000</td><td class=\"n\">0.7500</td>",
            "<img src=\"partition_correct_blur_faithfulness.png\"",
            "10. Which explanation should you trust?",
            "<td class=\"n\">0.3750</td><td class=\"n\">0.2500</td><td class=\"n\">0.6250</td><td class=\"n\">0.5000</td>",
            "by each measure: deletion: partition <code>blur(28,28)</code>, correct;",
            "Against two baselines",
            "<td>random</td><td class=\"n\">0.0000</td>",
            "partition_correct_blur beats random on 4 of 4.",
            "<img src=\"comparison.png\"",
            "from the output down (fc, conv2, conv1)",
            "<td class=\"n\">0.2500</td><td class=\"n\">0.1250</td><td class=\"n\">0.0625</td><td>passes</td>",
            "1 of 1 explanations pass the sanity check.",
            "<img src=\"pcb_sanity.png\"",
            "<img src=\"pcb_sanity_curves.png\"",
        ] {
            assert!(html.contains(needle), "report.html lacks {needle:?}");
        }
        assert!(
            std::fs::read_to_string(dir.join("report.md"))?.contains("```sh\nshap-cli explain")
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn model_summary_matches_keras() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let header = serde_json::json!({
            "__metadata__": {"head": "softmax"},
            "conv1.weight": {"dtype": "F32", "shape": [32, 1, 3, 3], "data_offsets": [0, 0]},
            "conv1.bias": {"dtype": "F32", "shape": [32], "data_offsets": [0, 0]},
            "conv2.weight": {"dtype": "F32", "shape": [16, 32, 3, 3], "data_offsets": [0, 0]},
            "conv2.bias": {"dtype": "F32", "shape": [16], "data_offsets": [0, 0]},
            "fc.weight": {"dtype": "F32", "shape": [10, 12544], "data_offsets": [0, 0]},
            "fc.bias": {"dtype": "F32", "shape": [10], "data_offsets": [0, 0]},
        })
        .to_string();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        let path = dir.join("m.safetensors");
        std::fs::write(&path, bytes)?;
        let m = model_summary(&path)?;
        let params: Vec<u64> = m.rows.iter().map(|r| r.3).collect();
        assert_eq!(params, vec![320, 4624, 0, 125_450]);
        assert_eq!(m.total(), 130_394);
        assert_eq!(m.rows[2].2, "(None, 12544)");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
