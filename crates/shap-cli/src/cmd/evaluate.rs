//! `shap-cli evaluate`: accuracy, confusion matrix and classification report of a checkpoint.

use std::path::PathBuf;

use shap_data::CLASS_NAMES;
use shap_io::OutputSpec;
use shap_run::EvaluateRun;

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
}

/// Run `shap-cli evaluate`.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    shap_io::check_outputs(
        &[
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &[("--model", &args.model)],
    )?;
    let run = EvaluateRun {
        model: args.model.clone(),
        head: args.head.chosen(),
        device: args.device,
        data_dir: args.data_dir.clone(),
        digits: args.digits,
    };
    let mut bar = None;
    let evaluated = shap_run::evaluate(&run, |done, total| {
        let b = bar.get_or_insert_with(|| common::progress_bar(total as u64, "test images", quiet));
        b.iter().for_each(|b| b.set_position(done as u64));
    });
    bar.flatten().iter().for_each(|b| b.finish_and_clear());
    let (e, seconds) = evaluated?;
    if let Some(p) = &args.plot {
        let rows: Vec<Vec<u64>> = e
            .scores
            .confusion
            .iter()
            .map(|r| r.iter().map(|&c| c as u64).collect())
            .collect();
        shap_plot::confusion_matrix_plot(&rows, &CLASS_NAMES, p)?;
    }
    if let Some(path) = &args.json {
        shap_io::write_bytes(path, &serde_json::to_vec_pretty(&e)?)?;
    }
    if quiet || common::any_stdout(&[args.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| {
        writeln!(
            o,
            "{}: {} test images in {seconds:.2} s ({:.0} img/s)",
            args.model.display(),
            e.scores.n,
            e.scores.n as f64 / seconds.max(1e-9)
        )?;
        writeln!(o, "accuracy: {:.4}\n", e.scores.accuracy)?;
        writeln!(
            o,
            "confusion matrix (rows: true class, columns: predicted):"
        )?;
        writeln!(o, "{}", e.confusion_text)?;
        writeln!(o, "{}", e.report_text)?;
        writeln!(
            o,
            "first correct: {:?}  first wrong: {:?}",
            e.first_correct, e.first_wrong
        )
    })
}
