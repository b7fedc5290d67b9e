//! `shap-cli train`: train the tutorial CNN and save a safetensors checkpoint.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use shap_data::FashionMnist;
use shap_model::{CheckpointMeta, Cnn, Dataset, Preset, TrainConfig};

/// Flags of `shap-cli train`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  shap-cli train --preset keras --out model.safetensors --history history.json\n  \
shap-cli train --preset flax --epochs 1 --limit 6000 --out flax.safetensors"
)]
pub struct Args {
    /// Hyper-parameter preset: keras (lr 1e-3, 10 epochs, softmax head) or flax
    /// (lr 1e-4, 5 epochs, logits head); both use batch 256.
    #[arg(long, default_value = "keras", value_parser = ["keras", "flax"])]
    pub preset: String,
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
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Device: cpu, cuda[:N] or metal[:N] (GPUs need a build with the matching feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Directory holding the Fashion-MNIST IDX files (default: the usual search).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where to write the checkpoint (safetensors, written atomically).
    #[arg(long, value_name = "MODEL.safetensors")]
    pub out: PathBuf,
    /// Also write the per-epoch history as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub history: Option<PathBuf>,
    /// Also draw the training curves (loss and accuracy per epoch, train and test; PNG or SVG).
    #[arg(long, value_name = "CURVES.png")]
    pub plot: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// Run `shap-cli train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let preset: Preset = args.preset.parse()?;
    let mut cfg = TrainConfig::preset(preset);
    if let Some(e) = args.epochs {
        cfg.epochs = e;
    }
    if let Some(b) = args.batch_size {
        anyhow::ensure!(b > 0, "--batch-size must be at least 1");
        cfg.batch_size = b;
    }
    if let Some(lr) = args.lr {
        cfg.lr = lr;
    }
    cfg.seed = args.seed;
    cfg.progress = !args.quiet && std::io::stderr().is_terminal();
    let device = shap_model::device(&args.device)?;
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let full = Dataset::new(data.train.images(), data.train.labels())?;
    let train = match args.limit {
        Some(n) => {
            anyhow::ensure!(n > 0, "--limit must be at least 1");
            full.take(n)
        }
        None => full,
    };
    let test = Dataset::new(data.test.images(), data.test.labels())?;
    let cnn = Cnn::new(cfg.seed, cfg.head, &device)?;
    if !args.quiet {
        println!(
            "training {} parameters on {} images ({} preset: {} epochs, batch {}, lr {}, seed {}, device {})",
            cnn.num_parameters(),
            train.len(),
            preset.as_str(),
            cfg.epochs,
            cfg.batch_size,
            cfg.lr,
            cfg.seed,
            args.device
        );
    }
    let quiet = args.quiet;
    let history = shap_model::train(&cnn, &cfg, &train, Some(&test), |e| {
        if !quiet {
            println!("{e}");
        }
    })?;
    let meta = CheckpointMeta {
        preset: preset.as_str().to_string(),
        head: cfg.head,
        seed: cfg.seed,
        epochs: cfg.epochs,
    };
    shap_model::save(&cnn, &meta, &args.out)
        .with_context(|| format!("saving {}", args.out.display()))?;
    if let Some(h) = &args.history {
        let json = serde_json::to_vec_pretty(&history)?;
        shap_model::checkpoint::write_atomic(h, &json)?;
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
    if !quiet {
        println!("saved {}", args.out.display());
    }
    Ok(())
}
