//! `shap-cli train`: train the tutorial CNN and save a safetensors checkpoint.

use std::path::PathBuf;

use super::common;
use shap_io::OutputSpec;
use shap_model::{History, Preset, TrainConfig, TrainEvent};
use shap_run::{TrainRun, TrainStep};

/// Flags of `shap-cli train`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  shap-cli train --preset keras --out model.safetensors --history history.json\n  \
shap-cli train --preset flax --epochs 1 --limit 6000 --out flax.safetensors"
)]
pub struct Args {
    /// Hyper-parameter preset: keras (lr 1e-3, 10 epochs, softmax head) or flax
    /// (lr 1e-4, 5 epochs, logits head); both use batch 256.
    #[arg(long, value_enum, default_value = "keras")]
    pub preset: Preset,
    /// Number of epochs (default: the preset's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size (default: 256).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed for weight initialisation and shuffling.
    #[arg(long, default_value_t = super::common::DEFAULT_SEED)]
    pub seed: u64,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Device: cpu, cuda[:N] or metal[:N] (GPUs need a build with the matching feature).
    #[arg(long, default_value = "cpu")]
    pub device: shap_model::DeviceSpec,
    /// Directory holding the Fashion-MNIST IDX files (default: the usual search).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where to write the checkpoint (safetensors, written atomically).
    #[arg(short, long, value_name = "MODEL.safetensors")]
    pub out: PathBuf,
    /// Also write the per-epoch history as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub history: Option<PathBuf>,
    /// Also draw the training curves (loss and accuracy per epoch, train and test; PNG or SVG).
    #[arg(long, value_name = "CURVES.png")]
    pub plot: Option<PathBuf>,
}

/// Run `shap-cli train`: the outputs are checked before any work, so nothing is trained that
/// cannot be saved.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    shap_io::check_outputs(
        &[
            (Some(args.out.as_path()), OutputSpec::binary("--out")),
            (args.history.as_deref(), OutputSpec::text("--history")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &[],
    )?;
    let silent = quiet || common::any_stdout(&[Some(args.out.as_path()), args.history.as_deref()]);
    let run = train_run(&args);
    let cfg = &run.config;
    // Progress lines are best effort: a closed or full stdout must not lose the training,
    // and the final line reports the error after the files are saved.
    let say = |line: String| {
        if !silent {
            let _ = common::print(|o| writeln!(o, "{line}"));
        }
    };
    // The library reports every batch; the bar (on a terminal, without --quiet) is drawn here.
    let mut bar: Option<indicatif::ProgressBar> = None;
    let trained = shap_run::train(&run, |step| match step {
        TrainStep::Started { parameters, images } => say(format!(
            "training {parameters} parameters on {images} images ({} preset: {} epochs, batch {}, \
             lr {}, seed {}, device {})",
            cfg.preset.as_str(),
            cfg.epochs,
            cfg.batch_size,
            cfg.lr,
            cfg.seed,
            args.device
        )),
        TrainStep::Progress(TrainEvent::Batch {
            epoch,
            batch,
            batches,
        }) => {
            if batch == 1 {
                let what = format!("batches of epoch {epoch}/{}", cfg.epochs);
                bar = common::progress_bar(batches as u64, &what, quiet);
            }
            bar.iter().for_each(|b| b.inc(1));
        }
        TrainStep::Progress(TrainEvent::Epoch(e)) => {
            bar.take().iter().for_each(|b| b.finish_and_clear());
            say(e.to_string());
        }
    });
    bar.take().iter().for_each(|b| b.finish_and_clear());
    let trained = trained?;
    trained.save(&args.out, args.history.as_deref())?;
    if let Some(p) = &args.plot {
        shap_plot::training_curves_plot(&curve_points(&trained.history), p)?;
    }
    if silent {
        return Ok(());
    }
    common::print(|o| writeln!(o, "saved {}", args.out.display()))
}

/// The run the flags describe: the preset with the flags' changes.
fn train_run(args: &Args) -> TrainRun {
    let mut config = TrainConfig::preset(args.preset);
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.lr = args.lr.unwrap_or(config.lr);
    config.seed = args.seed;
    TrainRun {
        config,
        limit: args.limit,
        device: args.device,
        data_dir: args.data_dir.clone(),
    }
}

/// The history as the training-curves figure takes it.
fn curve_points(history: &History) -> Vec<shap_plot::EpochPoint> {
    history
        .epochs
        .iter()
        .map(|e| shap_plot::EpochPoint {
            epoch: u32::try_from(e.epoch).unwrap_or(u32::MAX),
            train_loss: e.train_loss,
            train_acc: e.train_accuracy,
            test_loss: e.test_loss,
            test_acc: e.test_accuracy,
        })
        .collect()
}
