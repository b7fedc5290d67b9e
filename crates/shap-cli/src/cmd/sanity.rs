//! `shap-cli sanity`: the model-parameter randomisation check of a saved explanation
//! (docs/metrics.md, "Sanity check").

use std::path::PathBuf;

use anyhow::Result;
use shap_io::OutputSpec;
use shap_run::SanityRun;

use super::common;
use super::model_flags::ScoredFlags;
use super::terminal::Terminal;

/// Flags of `shap-cli sanity`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --correct 20 --npz blur.npz\n  \
    shap-cli sanity --model model.safetensors --npz blur.npz --plot maps.png --curves curves.png\n  \
    shap-cli sanity --model resnet18.onnx --npz photos.npz --layers 4 --json sanity.json")]
pub struct Args {
    /// Randomise at most this many layers, from the output down (default: every layer).
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Draw the maps of the first images as layers are randomised (PNG or SVG).
    #[arg(long, value_name = "MAPS.png")]
    pub plot: Option<PathBuf>,
    /// Images in --plot.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub plot_images: usize,
    /// Draw the similarity curves (PNG or SVG).
    #[arg(long, value_name = "CURVES.png")]
    pub curves: Option<PathBuf>,
    #[command(flatten)]
    pub scored: ScoredFlags,
}

/// Run `shap-cli sanity`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    let figure = |flag| OutputSpec::file(flag, common::FIGURE);
    args.scored.check_outputs(&[
        (args.plot.as_deref(), figure("--plot")),
        (args.curves.as_deref(), figure("--curves")),
    ])?;
    if args.layers == Some(0) {
        anyhow::bail!("--layers 0: randomise at least one layer");
    }
    let run = SanityRun {
        model: args.scored.model.clone(),
        npz: args.scored.npz.clone(),
        options: args.scored.net.options(args.scored.net.head.chosen()),
        layers: args.layers,
        seed: args.scored.seed,
        target: args.scored.target,
        figure_images: args.plot_images.max(1),
    };
    let outcome = shap_run::sanity(&run, &Terminal::new(quiet))?;
    if let Some(p) = &args.plot {
        shap_plot::sanity_plot(&outcome.report, &outcome.maps, outcome.shape, p)?;
    }
    if let Some(p) = &args.curves {
        shap_plot::sanity_curves_plot(&outcome.report, p)?;
    }
    if let Some(j) = &args.scored.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&outcome.report)?)?;
    }
    if quiet || common::any_stdout(&[args.scored.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| writeln!(o, "{}", outcome.report))
}
