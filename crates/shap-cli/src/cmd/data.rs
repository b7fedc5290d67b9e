//! `shap-cli data`: locate the Fashion-MNIST dataset and print its counts and class histogram.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use shap_data::{CLASS_NAMES, FashionMnist};
use shap_io::OutputSpec;

/// Flags of `shap-cli data`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  shap-cli data\n  shap-cli data --data-dir ~/fashion-mnist --json summary.json\n  shap-cli data --json -"
)]
pub struct Args {
    /// Directory holding the IDX files (gzip or plain); when given, the only place searched.
    /// Default search: FASHION_MNIST_DIR, /usr/share/datasets/fashion-mnist, the hf-hub cache.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write the dataset's summary as JSON to FILE (`-`, or the flag alone: standard output)
    /// instead of printing the table.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
}

/// Run `shap-cli data`.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    if let Some(p) = &args.json {
        shap_io::check_outputs(&[(Some(p.as_path()), OutputSpec::text("--json"))], &[])?;
    }
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&data.record())? + "\n";
        return Ok(shap_io::write_bytes(p, text.as_bytes())?);
    }
    if quiet {
        return Ok(());
    }
    super::common::print(|o| table(o, &data))
}

fn table(o: &mut dyn Write, data: &FashionMnist) -> std::io::Result<()> {
    writeln!(o, "Fashion-MNIST found in {}", data.source)?;
    for (name, s) in [("train", &data.train), ("test", &data.test)] {
        writeln!(
            o,
            "{name:<5}: {:>6} images of {}x{}",
            s.len(),
            s.rows(),
            s.cols()
        )?;
    }
    writeln!(o)?;
    writeln!(o, "{:<3} {:<12} {:>7} {:>7}", "#", "class", "train", "test")?;
    let (train, test) = (data.train.class_histogram(), data.test.class_histogram());
    for (i, ((name, tr), te)) in CLASS_NAMES.iter().zip(train).zip(test).enumerate() {
        writeln!(o, "{i:<3} {name:<12} {tr:>7} {te:>7}")?;
    }
    writeln!(
        o,
        "{:<3} {:<12} {:>7} {:>7}",
        "",
        "total",
        data.train.len(),
        data.test.len()
    )
}
