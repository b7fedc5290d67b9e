//! `shap-cli summary`: per predicted class, the mean SHAP map of that class and the mean
//! absolute map over the images predicted as it (docs/outputs-and-explanations.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use shap_explain::{Explanation, class_summary};
use shap_io::OutputSpec;

use super::common;

/// Flags of `shap-cli summary`.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    shap-cli explain --model model.safetensors --range 0..1000 --npz all.npz\n  \
    shap-cli summary --npz all.npz --out summary.png --json summary.json")]
pub struct Args {
    /// An explanation saved by `shap-cli explain --npz` (or `shap-cli merge`): it must record
    /// each image's predicted class.
    #[arg(long, value_name = "EXPLANATION.npz")]
    pub npz: PathBuf,
    /// The figure (.png or .svg): one row per predicted class with its mean image, mean SHAP
    /// map and mean |SHAP| map, one colour scale per row.
    #[arg(short, long, value_name = "SUMMARY.png")]
    pub out: PathBuf,
    /// Also write the numbers: per class the image counts and the maps, (H, W, C) row-major.
    #[arg(long, value_name = "SUMMARY.json")]
    pub json: Option<PathBuf>,
}

/// Run `shap-cli summary`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    shap_io::check_outputs(
        &[
            (
                Some(args.out.as_path()),
                OutputSpec::file("--out", common::FIGURE),
            ),
            (args.json.as_deref(), OutputSpec::text("--json")),
        ],
        &[("--npz", &args.npz)],
    )?;
    let e = Explanation::load_npz(&args.npz)?;
    let s = class_summary(&e).with_context(|| format!("{}", args.npz.display()))?;
    shap_plot::class_summary_plot(&s, &args.out)?;
    if let Some(j) = &args.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&s)?)?;
    }
    if quiet || common::any_stdout(&[args.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| writeln!(o, "{s}"))
}
