//! `shap-cli train`: train the tutorial CNN and save a safetensors checkpoint.

use std::path::PathBuf;

use super::common;
use anyhow::Context;
use shap_data::FashionMnist;
use shap_io::OutputSpec;
use shap_model::{CheckpointMeta, Cnn, Dataset, Preset, TrainConfig, TrainEvent};

/// The tutorial to follow (`--preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// The Keras tutorial: softmax head, lr 1e-3, 10 epochs.
    Keras,
    /// The Flax tutorial: logits head, lr 1e-4, 5 epochs.
    Flax,
}

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
    pub preset: PresetArg,
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
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Check `--limit` and the outputs before any work (the training settings are checked by
/// `TrainConfig::check`): nothing is trained that cannot be saved.
fn check_args(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.limit != Some(0), "--limit must be at least 1");
    common::check_outputs(
        &[
            (Some(args.out.as_path()), OutputSpec::binary("--out")),
            (args.history.as_deref(), OutputSpec::text("--history")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &[],
    )
}

/// Run `shap-cli train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_args(&args)?;
    let preset = match args.preset {
        PresetArg::Keras => Preset::Keras,
        PresetArg::Flax => Preset::Flax,
    };
    let mut cfg = TrainConfig::preset(preset);
    if let Some(e) = args.epochs {
        cfg.epochs = e;
    }
    if let Some(b) = args.batch_size {
        cfg.batch_size = b;
    }
    if let Some(lr) = args.lr {
        cfg.lr = lr;
    }
    cfg.seed = args.seed;
    let trainer = cfg.clone().check().with_context(|| {
        format!(
            "--epochs {} --batch-size {} --lr {}",
            cfg.epochs, cfg.batch_size, cfg.lr
        )
    })?;
    let quiet =
        args.quiet || common::any_stdout(&[Some(args.out.as_path()), args.history.as_deref()]);
    let device = args.device.open()?;
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let full = Dataset::new(data.train.images(), data.train.labels())?;
    let train = match args.limit {
        Some(n) => full.take(n),
        None => full,
    };
    let test = Dataset::new(data.test.images(), data.test.labels())?;
    let cnn = Cnn::seeded(cfg.seed, cfg.head, &device)?;
    // Progress lines are best effort: a closed or full stdout must not lose the training,
    // and the final line reports the error after the files are saved.
    let progress = |line: String| {
        if !quiet {
            let _ = common::print(|o| writeln!(o, "{line}"));
        }
    };
    progress(format!(
        "training {} parameters on {} images ({} preset: {} epochs, batch {}, lr {}, seed {}, device {})",
        cnn.num_parameters(),
        train.len(),
        preset.as_str(),
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.seed,
        args.device
    ));
    // The library reports every batch; the bar (on a terminal, without --quiet) is drawn here.
    let mut bar: Option<indicatif::ProgressBar> = None;
    let history = trainer.train(&cnn, &train, Some(&test), |event| match event {
        TrainEvent::Batch {
            epoch,
            batch,
            batches,
        } => {
            if batch == 1 {
                let what = format!("batches of epoch {epoch}/{}", cfg.epochs);
                bar = common::progress_bar(batches as u64, &what, args.quiet);
            }
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        TrainEvent::Epoch(e) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            progress(e.to_string());
        }
    });
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let history = history?;
    save(&args, &cnn, &cfg, preset, &history)?;
    if quiet {
        return Ok(());
    }
    common::print(|o| writeln!(o, "saved {}", args.out.display()))
}

/// Write the checkpoint, and the history and curves when asked.
fn save(
    args: &Args,
    cnn: &Cnn,
    cfg: &TrainConfig,
    preset: Preset,
    history: &shap_model::History,
) -> anyhow::Result<()> {
    let meta = CheckpointMeta {
        preset: preset.as_str().to_string(),
        head: cfg.head,
        seed: cfg.seed,
        epochs: cfg.epochs,
    };
    shap_model::save(cnn, &meta, &args.out)?;
    if let Some(h) = &args.history {
        shap_io::write_bytes(h, &serde_json::to_vec_pretty(history)?)?;
    }
    if let Some(p) = &args.plot {
        let points: Vec<shap_plot::EpochPoint> = history
            .epochs
            .iter()
            .map(|e| shap_plot::EpochPoint {
                epoch: u32::try_from(e.epoch).unwrap_or(u32::MAX),
                train_loss: e.train_loss,
                train_acc: e.train_accuracy,
                test_loss: e.test_loss,
                test_acc: e.test_accuracy,
            })
            .collect();
        shap_plot::training_curves_plot(&points, p)?;
    }
    Ok(())
}
