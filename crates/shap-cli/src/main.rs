//! `shap-cli`: a thin command-line front end over the workspace crates.
//!
//! Each subcommand lives in its own module under `cmd/` and only parses flags, calls the
//! libraries and prints; all logic lives in the library crates.

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc serves the large, short-lived buffers of training and inference much faster than
/// glibc malloc, which maps and zeroes fresh pages for every large block (ENGINEERING_NOTES).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train Fashion-MNIST CNNs with Candle and explain their predictions with SHAP.
#[derive(Parser)]
#[command(name = "shap-cli", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Locate the Fashion-MNIST dataset and print its counts and class histogram.
    Data(cmd::data::Args),
    /// Train the tutorial CNN and save a safetensors checkpoint.
    Train(cmd::train::Args),
    /// Evaluate a checkpoint on the test set: accuracy, confusion matrix, report.
    Evaluate(cmd::evaluate::Args),
    /// Apply a masker to one image, to see what it does.
    Mask(cmd::mask::Args),
    /// Explain predictions with the Partition or Permutation explainer.
    Explain(Box<cmd::explain::Args>),
    /// Plot a saved explanation like `shap.image_plot`.
    Plot(cmd::plot::Args),
}

fn main() -> std::process::ExitCode {
    std::panic::set_hook(Box::new(report_internal_failure));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(a) => cmd::data::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Mask(a) => cmd::mask::run(a),
        Command::Explain(a) => cmd::explain::run(*a),
        Command::Plot(a) => cmd::plot::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not an error: end quietly.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One line for a panic instead of Rust's default text. Panics that a library catches (tract's,
/// on a hostile ONNX file) then end in the usual `error:` line and exit 1; any other would be a
/// bug here, and still exits 101.
fn report_internal_failure(info: &std::panic::PanicHookInfo<'_>) {
    let what = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_default();
    let at = info
        .location()
        .map(|l| format!(" ({}:{})", l.file(), l.line()))
        .unwrap_or_default();
    eprintln!("note: internal failure: {what}{at}");
}

/// Whether `e` comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
