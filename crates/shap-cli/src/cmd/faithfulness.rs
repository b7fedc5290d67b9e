//! `shap-cli faithfulness`: deletion and insertion curves of a saved explanation against
//! random orders (docs/faithfulness.md).

use std::path::PathBuf;

use anyhow::Result;
use shap_explain::{Faithfulness, FaithfulnessReport, Target};
use shap_io::OutputSpec;
use shap_mask::MaskerSpec;
use shap_run::FaithfulnessRun;

use super::common;
use super::model_flags::ModelFlags;
use super::terminal::Terminal;

/// Flags of `shap-cli faithfulness`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --correct 20 --npz blur.npz\n  \
    shap-cli faithfulness --model model.safetensors --npz blur.npz --json faith.json --plot curves.png")]
pub struct Args {
    /// The model the explanation was made with (.safetensors or .onnx, loaded as `explain`
    /// loads it; give the same --head/--mean/--std/--softmax).
    #[arg(short, long, value_name = "MODEL.safetensors|MODEL.onnx")]
    pub model: PathBuf,
    /// The explanation (`shap-cli explain --npz`).
    #[arg(long, value_name = "EXPLANATION.npz")]
    pub npz: PathBuf,
    /// Steps per curve: step s hides (or reveals) the first round(s*P/S) of the P pixels.
    #[arg(long, default_value_t = 28, value_name = "S")]
    pub steps: usize,
    /// Random orders averaged as the baseline.
    #[arg(long, default_value_t = 10, value_name = "R")]
    pub random: usize,
    /// Seed of the random orders.
    #[arg(long, default_value_t = super::common::DEFAULT_SEED)]
    pub seed: u64,
    /// Which classes to score: each image's predicted class, its first explained class, or
    /// every explained class.
    #[arg(long, value_enum, default_value = "predicted")]
    pub target: Target,
    /// Masker, shap spelling (default: the one the explanation records).
    #[arg(long, allow_hyphen_values = true)]
    pub masker: Option<MaskerSpec>,
    /// Write the scores: per image and class the four AUCs, their means, the mean curves.
    #[arg(long, value_name = "FAITH.json")]
    pub json: Option<PathBuf>,
    /// Draw the mean curves, explanation against random (PNG or SVG).
    #[arg(long, value_name = "CURVES.png")]
    pub plot: Option<PathBuf>,
    /// How to load and run the model: as `explain` (give the same --head/--mean/--std/--softmax).
    #[command(flatten)]
    pub net: ModelFlags,
}

/// Run `shap-cli faithfulness`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    shap_io::check_outputs(
        &[
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &[("--model", &args.model), ("--npz", &args.npz)],
    )?;
    let run = FaithfulnessRun {
        model: args.model.clone(),
        npz: args.npz.clone(),
        options: args.net.options(args.net.head.chosen()),
        masker: args.masker,
        scoring: Faithfulness {
            steps: args.steps,
            random: args.random,
            seed: args.seed,
            target: args.target,
        },
    };
    let report = shap_run::faithfulness(&run, &Terminal::new(quiet))?;
    if let Some(p) = &args.plot {
        shap_plot::faithfulness_plot(&report.mean_curves, p)?;
    }
    if let Some(j) = &args.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&report)?)?;
    }
    if quiet || common::any_stdout(&[args.json.as_deref()]) {
        return Ok(());
    }
    print(&report)
}

fn print(r: &FaithfulnessReport) -> Result<()> {
    let m = r.mean;
    common::print(|o| {
        writeln!(
            o,
            "faithfulness of the {} with masker {}, {} steps over {} pixels, {} random orders \
             (seed {}):",
            match r.target {
                Target::Predicted => "predicted classes",
                Target::Explained => "first explained classes",
                Target::All => "explained classes",
            },
            r.masker,
            r.steps,
            r.features,
            r.random,
            r.seed
        )?;
        writeln!(
            o,
            "  {:<14} {:<14} {:>9} {:>9} {:>9} {:>9}",
            "image", "class", "deletion", "random", "insertion", "random"
        )?;
        for img in &r.images {
            for c in &img.classes {
                let a = c.aucs;
                writeln!(
                    o,
                    "  {:<14} {:<14} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
                    img.source,
                    c.name,
                    a.deletion_auc,
                    a.random_deletion_auc,
                    a.insertion_auc,
                    a.random_insertion_auc
                )?;
            }
        }
        writeln!(
            o,
            "  {:<29} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            "mean", m.deletion_auc, m.random_deletion_auc, m.insertion_auc, m.random_insertion_auc
        )?;
        writeln!(
            o,
            "  deletion AUC below random and insertion AUC above it: the explanation ranks pixels better than chance"
        )
    })
}
