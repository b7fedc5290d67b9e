//! `shap-cli plot`: draw a saved explanation like `shap.image_plot`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use shap_explain::Explanation;
use shap_io::OutputSpec;
use shap_plot::ColorScale;

/// Flags of `shap-cli plot`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  shap-cli plot --npz explanation.npz --out figure.png --per-row-scale"
)]
pub struct Args {
    /// An explanation saved by `shap-cli explain --npz`.
    #[arg(long, value_name = "EXPLANATION.npz")]
    pub npz: PathBuf,
    /// Output figure (.png or .svg).
    #[arg(short, long, value_name = "FIGURE.png")]
    pub out: PathBuf,
    /// One colour scale per row instead of one for the figure.
    #[arg(long, conflicts_with = "vmax")]
    pub per_row_scale: bool,
    /// Fixed symmetric colour scale: values in [-X, X].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub vmax: Option<f64>,
}

/// Run `shap-cli plot`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    shap_io::check_outputs(
        &[(
            Some(args.out.as_path()),
            OutputSpec::file("--out", super::common::FIGURE),
        )],
        &[("--npz", &args.npz)],
    )?;
    let scale = match (args.per_row_scale, args.vmax) {
        (_, Some(v)) if !(v.is_finite() && v > 0.0 && v <= shap_plot::MAX_VMAX) => {
            bail!(
                "--vmax must be a positive number of at most {:e}, got {v:e}",
                shap_plot::MAX_VMAX
            )
        }
        (_, Some(v)) => ColorScale::Fixed(v),
        (true, None) => ColorScale::PerRow,
        (false, None) => ColorScale::Global,
    };
    let e = Explanation::load_npz(&args.npz)?;
    shap_plot::explanation_plot(&e, shap_plot::recorded_titles(&e), scale, &args.out)?;
    if quiet {
        return Ok(());
    }
    super::common::print(|o| {
        writeln!(
            o,
            "wrote {} ({} rows x {} outputs)",
            args.out.display(),
            e.num_images,
            e.num_outputs
        )
    })
}
