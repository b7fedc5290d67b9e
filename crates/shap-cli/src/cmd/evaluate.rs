//! `shap-cli evaluate`: accuracy, confusion matrix and classification report of a checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use shap_data::{CLASS_NAMES, FashionMnist};
use shap_io::OutputSpec;
use shap_model::{Head, ModelFn};

use super::common;

/// Flags of `shap-cli evaluate`.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  shap-cli evaluate --model model.safetensors --json eval.json")]
pub struct Args {
    /// Checkpoint written by `shap-cli train` (or converted to the same tensor names).
    #[arg(short, long, value_name = "MODEL.safetensors")]
    pub model: PathBuf,
    /// Outputs stored in the JSON: probabilities (softmax) or logits (default: the
    #[command(flatten)]
    pub head: common::HeadFlags,
    /// Device: cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    pub device: shap_model::DeviceSpec,
    /// Directory holding the Fashion-MNIST IDX files (default: the usual search).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write accuracy, confusion matrix, per-class scores and the first four correct / wrong
    /// test indices as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw the confusion matrix as a heat map (PNG or SVG).
    #[arg(long, value_name = "CONFUSION.png")]
    pub plot: Option<PathBuf>,
    /// Decimal digits in the printed report (scikit-learn's default is 2).
    #[arg(long, default_value_t = 4)]
    pub digits: usize,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Run `shap-cli evaluate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.digits <= shap_model::eval::MAX_DIGITS,
        "--digits must be at most {} (an f64 holds no more), got {}",
        shap_model::eval::MAX_DIGITS,
        args.digits
    );
    common::check_outputs(
        &[
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &[("--model", &args.model)],
    )?;
    let device = args.device.open()?;
    let ckpt = shap_model::load(&args.model, &device)?;
    let head = args.head.chosen().unwrap_or(ckpt.meta.head);
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let model = ModelFn::with_head(&ckpt.cnn, head)?;
    let start = std::time::Instant::now();
    let outputs = predict_with_progress(&model, &data.test.all_f32(), args.quiet)?;
    let seconds = start.elapsed().as_secs_f64();
    let labels = data.test.labels();
    let eval = shap_model::evaluate(&outputs, labels, &CLASS_NAMES)?;
    let (correct, wrong) = shap_model::pick_examples(&eval.predictions, labels, 4);
    if let Some(p) = &args.plot {
        let rows: Vec<Vec<u64>> = eval
            .confusion
            .iter()
            .map(|r| r.iter().map(|&c| c as u64).collect())
            .collect();
        shap_plot::confusion_matrix_plot(&rows, &CLASS_NAMES, p)?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "model": args.model.display().to_string(),
            "meta": ckpt.meta,
            "output": if head == Head::Logits { "logits" } else { "probabilities" },
            "accuracy": eval.accuracy,
            "n": eval.n,
            "confusion": eval.confusion,
            "classes": eval.classes,
            "macro_avg": eval.macro_avg,
            "weighted_avg": eval.weighted_avg,
            "first_correct": correct,
            "first_wrong": wrong,
            "report_text": eval.report(args.digits),
            "confusion_text": eval.confusion_text(),
        });
        shap_io::write_bytes(path, &serde_json::to_vec_pretty(&json)?)?;
    }
    if args.quiet || common::any_stdout(&[args.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| {
        writeln!(
            o,
            "{}: {} test images in {:.2} s ({:.0} img/s)",
            args.model.display(),
            eval.n,
            seconds,
            eval.n as f64 / seconds.max(1e-9)
        )?;
        writeln!(o, "accuracy: {:.4}\n", eval.accuracy)?;
        writeln!(
            o,
            "confusion matrix (rows: true class, columns: predicted):"
        )?;
        writeln!(o, "{}", eval.confusion_text())?;
        writeln!(o, "{}", eval.report(args.digits))?;
        writeln!(o, "first correct: {correct:?}  first wrong: {wrong:?}")
    })
}

/// The model's outputs for `images` (28x28 each), in chunks of 1,000 so that a terminal shows
/// progress; per-image outputs do not depend on the chunking.
fn predict_with_progress(model: &ModelFn, images: &[f32], quiet: bool) -> anyhow::Result<Vec<f32>> {
    const CHUNK: usize = 1000 * 784;
    let bar = common::progress_bar((images.len() / 784) as u64, "test images", quiet);
    let mut outputs = Vec::with_capacity(images.len() / 784 * 10);
    for chunk in images.chunks(CHUNK) {
        outputs.extend(model.predict(chunk)?);
        if let Some(b) = &bar {
            b.inc((chunk.len() / 784) as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(outputs)
}
