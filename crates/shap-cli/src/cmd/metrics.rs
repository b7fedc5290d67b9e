//! `shap-cli metrics`: MuFidelity and ROAD of a saved explanation (docs/metrics.md).

use anyhow::Result;
use shap_explain::{MuFidelity, Road};
use shap_run::MetricsRun;

use super::common;
use super::model_flags::ScoredFlags;
use super::terminal::Terminal;

/// Flags of `shap-cli metrics`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --correct 20 --npz blur.npz\n  \
    shap-cli metrics --model model.safetensors --npz blur.npz --json metrics.json\n  \
    shap-cli metrics --model model.safetensors --npz blur.npz --metric road --road-noise 0")]
pub struct Args {
    /// Which metrics.
    #[arg(long, value_enum, default_value = "all")]
    pub metric: Which,
    /// MuFidelity: cells per side of the grid.
    #[arg(long, default_value_t = 9, value_name = "G")]
    pub grid: usize,
    /// MuFidelity: share of the cells each sample removes.
    #[arg(long, default_value_t = 0.2, value_name = "Q")]
    pub fraction: f64,
    /// MuFidelity: samples per image.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub samples: usize,
    /// MuFidelity: the value removed pixels take.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub baseline: f32,
    /// ROAD: percentages of the pixels removed, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,20,30,40,50,60,70,80,90"
    )]
    pub percentages: Vec<u32>,
    /// ROAD: standard deviation of the noise added to imputed pixels (0: none).
    #[arg(
        long,
        default_value_t = 0.01,
        value_name = "SIGMA",
        allow_negative_numbers = true
    )]
    pub road_noise: f64,
    #[command(flatten)]
    pub scored: ScoredFlags,
}

/// `--metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// MuFidelity only.
    Mufidelity,
    /// ROAD only.
    Road,
    /// Both.
    All,
}

/// Run `shap-cli metrics`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    args.scored.check_outputs(&[])?;
    let (mu, road) = (args.metric != Which::Road, args.metric != Which::Mufidelity);
    let run = MetricsRun {
        model: args.scored.model.clone(),
        npz: args.scored.npz.clone(),
        options: args.scored.net.options(args.scored.net.head.chosen()),
        mufidelity: mu.then_some(MuFidelity {
            grid: args.grid,
            fraction: args.fraction,
            samples: args.samples,
            baseline: args.baseline,
            seed: args.scored.seed,
            target: args.scored.target,
        }),
        road: road.then(|| Road {
            percentages: args.percentages.clone(),
            noise: args.road_noise,
            seed: args.scored.seed,
            target: args.scored.target,
        }),
    };
    let report = shap_run::metrics(&run, &Terminal::new(quiet))?;
    if let Some(j) = &args.scored.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&report)?)?;
    }
    if quiet || common::any_stdout(&[args.scored.json.as_deref()]) {
        return Ok(());
    }
    common::print(|o| writeln!(o, "{report}"))
}
