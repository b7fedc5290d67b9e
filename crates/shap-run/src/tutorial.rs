//! Training and evaluating the tutorial CNN on Fashion-MNIST: the runs behind `shap-cli train`
//! and `shap-cli evaluate`, with the records they write (`shap_records`).

use std::path::{Path, PathBuf};

use shap_data::{CLASS_NAMES, FashionMnist};
use shap_model::{Cnn, Dataset, DeviceSpec, Head, ModelFn, TrainConfig, TrainEvent, Trainer};
use shap_records::{CheckpointMeta, EvaluationRecord, History, Outputs};

use crate::error::{Context, Result, refuse};

/// A training run: the settings, and where the data comes from.
#[derive(Debug, Clone)]
pub struct TrainRun {
    /// The settings (a preset with changes); checked when the run starts.
    pub config: TrainConfig,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    /// Where to train.
    pub device: DeviceSpec,
    /// The folder of the Fashion-MNIST files (else the usual search).
    pub data_dir: Option<PathBuf>,
}

/// What a training run reports as it goes.
#[derive(Debug)]
pub enum TrainStep<'a> {
    /// The data and the network are ready: training `parameters` on `images` images starts.
    Started {
        /// Trainable parameters of the network.
        parameters: usize,
        /// Training images.
        images: usize,
    },
    /// A batch or an epoch finished.
    Progress(TrainEvent<'a>),
}

/// A trained network with its history and the metadata its checkpoint records.
#[derive(Debug)]
pub struct Trained {
    /// The network.
    pub cnn: Cnn,
    /// The settings and what each epoch measured.
    pub history: History,
    /// What the checkpoint records beside the weights.
    pub meta: CheckpointMeta,
}

impl Trained {
    /// Write the checkpoint (safetensors, atomically) and, when asked, the history as JSON.
    pub fn save(&self, checkpoint: &Path, history: Option<&Path>) -> Result<()> {
        shap_model::save(&self.cnn, &self.meta, checkpoint)?;
        if let Some(h) = history {
            shap_io::write_bytes(h, &serde_json::to_vec_pretty(&self.history)?)?;
        }
        Ok(())
    }
}

/// Train the tutorial CNN as `run` says, telling `on_step` of the start, every batch and every
/// epoch. The settings are checked before the data is read.
pub fn train(run: &TrainRun, mut on_step: impl FnMut(TrainStep<'_>)) -> Result<Trained> {
    if run.limit == Some(0) {
        refuse!("--limit must be at least 1");
    }
    let cfg = &run.config;
    let trainer = Trainer::new(cfg.clone()).with_context(|| {
        format!(
            "--epochs {} --batch-size {} --lr {}",
            cfg.epochs, cfg.batch_size, cfg.lr
        )
    })?;
    let device = run.device.open()?;
    let data = FashionMnist::load(run.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let full = Dataset::new(data.train.images(), data.train.labels())?;
    let train_set = match run.limit {
        Some(n) => full.take(n),
        None => full,
    };
    let test = Dataset::new(data.test.images(), data.test.labels())?;
    let cnn = Cnn::seeded(cfg.seed, cfg.head, &device)?;
    on_step(TrainStep::Started {
        parameters: cnn.num_parameters(),
        images: train_set.len(),
    });
    let history = trainer.train(&cnn, &train_set, Some(&test), |e| {
        on_step(TrainStep::Progress(e))
    })?;
    let meta = CheckpointMeta {
        preset: cfg.preset.as_str().to_string(),
        head: cfg.head,
        seed: cfg.seed,
        epochs: cfg.epochs,
    };
    Ok(Trained { cnn, history, meta })
}

/// An evaluation of a tutorial checkpoint on the test set.
#[derive(Debug, Clone)]
pub struct EvaluateRun {
    /// The checkpoint.
    pub model: PathBuf,
    /// The head to evaluate (default: the checkpoint's own).
    pub head: Option<Head>,
    /// Where to run it.
    pub device: DeviceSpec,
    /// The folder of the Fashion-MNIST files (else the usual search).
    pub data_dir: Option<PathBuf>,
    /// Decimal digits of the classification report's text.
    pub digits: usize,
}

/// Test images of an evaluation per model call (so that a front end can show progress; the
/// outputs do not depend on it).
const EVALUATION_CHUNK: usize = 1000;

/// Evaluate a checkpoint on the test set: accuracy, confusion matrix, per-class scores and the
/// first four correct and wrong test images, as the record `shap-cli evaluate --json` writes.
/// `on_images(done, total)` hears of each chunk of test images; the second value returned is
/// the seconds spent in the model.
pub fn evaluate(
    run: &EvaluateRun,
    mut on_images: impl FnMut(usize, usize),
) -> Result<(EvaluationRecord, f64)> {
    if run.digits > shap_model::eval::MAX_DIGITS {
        refuse!(
            "--digits must be at most {} (an f64 holds no more), got {}",
            shap_model::eval::MAX_DIGITS,
            run.digits
        );
    }
    let device = run.device.open()?;
    let ckpt = shap_model::load(&run.model, &device)?;
    let head = run.head.unwrap_or(ckpt.meta.head);
    let data = FashionMnist::load(run.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let model = ModelFn::with_head(&ckpt.cnn, head)?;
    let images = data.test.all_f32();
    let pixels = data.test.rows() * data.test.cols();
    let total = images.len() / pixels.max(1);
    let start = std::time::Instant::now();
    let mut outputs = Vec::with_capacity(total * shap_model::CLASSES);
    for chunk in images.chunks(EVALUATION_CHUNK * pixels.max(1)) {
        outputs.extend(model.predict(chunk)?);
        on_images(outputs.len() / shap_model::CLASSES, total);
    }
    let seconds = start.elapsed().as_secs_f64();
    let labels = data.test.labels();
    let eval = shap_model::evaluate(&outputs, labels, &CLASS_NAMES)?;
    let (first_correct, first_wrong) = shap_model::pick_examples(&eval.predictions, labels, 4);
    let record = EvaluationRecord {
        model: run.model.display().to_string(),
        meta: ckpt.meta,
        output: Outputs::from(head),
        report_text: eval.scores.report(run.digits),
        confusion_text: eval.scores.confusion_text(),
        scores: eval.scores,
        first_correct,
        first_wrong,
    };
    Ok((record, seconds))
}
