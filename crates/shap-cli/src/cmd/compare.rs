//! `shap-cli compare`: several explanations of the same images, an occlusion and a random
//! baseline, scored side by side (docs/metrics.md, "Comparing explanations").

use std::path::PathBuf;

use anyhow::Result;
use shap_explain::{Faithfulness, MuFidelity, Road};
use shap_io::OutputSpec;
use shap_run::CompareRun;

use super::common;
use super::model_flags::ModelFlags;
use super::terminal::Terminal;

/// Flags of `shap-cli compare`.
#[derive(clap::Args)]
#[command(
    after_help = "Each explanation is scored with the masker it records; the \
    baselines with the first one's.\n\nExamples:\n  \
    shap-cli explain -m model.safetensors --correct 20 --masker 'blur(28,28)' --npz blur.npz\n  \
    shap-cli explain -m model.safetensors --correct 20 --masker inpaint_telea --npz telea.npz\n  \
    shap-cli compare -m model.safetensors --npz blur.npz --npz telea.npz --json c.json --plot c.png"
)]
pub struct Args {
    /// The model the explanations were made with (.safetensors or .onnx).
    #[arg(short, long, value_name = "MODEL.safetensors|MODEL.onnx")]
    pub model: PathBuf,
    /// An explanation to compare (`shap-cli explain --npz`); give it once per explanation.
    /// All must explain the same images for the same classes.
    #[arg(long, value_name = "EXPLANATION.npz", required = true)]
    pub npz: Vec<PathBuf>,
    /// Leave out the occlusion and random baselines.
    #[arg(long)]
    pub no_baselines: bool,
    /// Occlusion patch side in pixels (default: the longer image side / 7, rounded up).
    #[arg(long, value_name = "PIXELS")]
    pub patch: Option<usize>,
    /// Which classes to score: each image's predicted class, its first explained class, or
    /// every explained class.
    #[arg(long, value_enum, default_value = "predicted")]
    pub target: shap_explain::Target,
    /// Seed of the random draws (orders, subsets, noise, the random baseline).
    #[arg(long, default_value_t = common::DEFAULT_SEED)]
    pub seed: u64,
    /// Write the comparison as JSON.
    #[arg(long, value_name = "COMPARISON.json")]
    pub json: Option<PathBuf>,
    /// Draw the four scores of every explanation (PNG or SVG).
    #[arg(long, value_name = "COMPARISON.png")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub net: ModelFlags,
}

/// Run `shap-cli compare`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    let mut inputs = vec![("--model", args.model.as_path())];
    inputs.extend(args.npz.iter().map(|p| ("--npz", p.as_path())));
    shap_io::check_outputs(
        &[
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &inputs,
    )?;
    let (seed, target) = (args.seed, args.target);
    let run = CompareRun {
        model: args.model.clone(),
        npzs: args.npz.clone(),
        options: args.net.options(args.net.head.chosen()),
        baselines: !args.no_baselines,
        patch: args.patch,
        faithfulness: Faithfulness {
            seed,
            target,
            ..Faithfulness::default()
        },
        mufidelity: MuFidelity {
            seed,
            target,
            ..MuFidelity::default()
        },
        road: Road {
            seed,
            target,
            ..Road::default()
        },
    };
    let report = shap_run::compare(&run, &Terminal::new(quiet))?;
    if let Some(p) = &args.plot {
        shap_plot::compare_plot(&report, p)?;
    }
    if let Some(j) = &args.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&report)?)?;
    }
    if quiet || common::any_stdout(&[args.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| writeln!(o, "{report}"))
}
