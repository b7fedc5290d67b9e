//! `shap-cli faithfulness`: deletion and insertion curves of a saved explanation against
//! random orders (docs/faithfulness.md).

use std::path::PathBuf;

use anyhow::Result;
use shap_explain::Faithfulness;
use shap_io::OutputSpec;
use shap_mask::MaskerSpec;
use shap_run::FaithfulnessRun;

use super::common;
use super::model_flags::ScoredFlags;
use super::terminal::Terminal;

/// Flags of `shap-cli faithfulness`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --correct 20 --npz blur.npz\n  \
    shap-cli faithfulness --model model.safetensors --npz blur.npz --json faith.json --plot curves.png")]
pub struct Args {
    /// Steps per curve: step s hides (or reveals) the first round(s*P/S) of the P pixels.
    #[arg(long, default_value_t = 28, value_name = "S")]
    pub steps: usize,
    /// Random orders averaged as the baseline.
    #[arg(long, default_value_t = 10, value_name = "R")]
    pub random: usize,
    /// Masker, shap spelling (default: the one the explanation records).
    #[arg(long, allow_hyphen_values = true)]
    pub masker: Option<MaskerSpec>,
    /// Draw the mean curves, explanation against random (PNG or SVG).
    #[arg(long, value_name = "CURVES.png")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub scored: ScoredFlags,
}

/// Run `shap-cli faithfulness`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    let plot = args.plot.as_deref();
    args.scored
        .check_outputs(&[(plot, OutputSpec::file("--plot", common::FIGURE))])?;
    let run = FaithfulnessRun {
        model: args.scored.model.clone(),
        npz: args.scored.npz.clone(),
        options: args.scored.net.options(args.scored.net.head.chosen()),
        masker: args.masker,
        scoring: Faithfulness {
            steps: args.steps,
            random: args.random,
            seed: args.scored.seed,
            target: args.scored.target,
        },
    };
    let report = shap_run::faithfulness(&run, &Terminal::new(quiet))?;
    if let Some(p) = &args.plot {
        shap_plot::faithfulness_plot(&report.mean_curves, p)?;
    }
    if let Some(j) = &args.scored.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&report)?)?;
    }
    if quiet || common::any_stdout(&[args.scored.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| writeln!(o, "{report}"))
}
