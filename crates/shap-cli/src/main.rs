//! `shap-cli`: a thin command-line front end over the workspace crates.
//!
//! Each subcommand lives in its own module under `cmd/` and only parses flags, calls the
//! libraries and prints; all logic lives in the library crates.

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc serves the large, short-lived buffers of training and inference much faster than
/// glibc malloc, which maps and zeroes fresh pages for every large block (docs/dependencies.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Explain image classifiers with SHAP, as Python's shap does (Partition and Permutation
/// explainers, blur and inpainting maskers, image_plot figures), for the Fashion-MNIST tutorial
/// CNN it trains or any ONNX model.
///
/// The commands follow the tutorial's pipeline: data -> train -> evaluate -> mask -> explain
/// -> plot, then summary and faithfulness for many explanations.
#[derive(Parser)]
#[command(
    name = "shap-cli",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print nothing but errors and warnings.
    #[arg(short, long, global = true)]
    quiet: bool,
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
    /// Join the parts of a sharded explanation (`explain --shard I/N`) into one.
    Merge(cmd::merge::Args),
    /// Per predicted class, the mean SHAP map and mean |SHAP| map of a saved explanation.
    Summary(cmd::summary::Args),
    /// Score a saved explanation with deletion and insertion curves against random orders.
    Faithfulness(Box<cmd::faithfulness::Args>),
    /// Score a saved explanation with MuFidelity and ROAD (docs/metrics.md).
    Metrics(Box<cmd::metrics::Args>),
    /// Randomise the model's layers from the output down and see whether the explanation
    /// changes (docs/metrics.md).
    Sanity(Box<cmd::sanity::Args>),
    /// Score several explanations of the same images, and an occlusion and a random
    /// baseline, side by side (docs/metrics.md).
    Compare(Box<cmd::compare::Args>),
    /// Print a shell completion script: `shap-cli completions bash > /etc/bash_completion.d/shap-cli`.
    Completions(Completions),
}

/// Flags of `shap-cli completions`.
#[derive(clap::Args)]
struct Completions {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the completion script for `c.shell`.
fn completions(c: &Completions) -> anyhow::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = c.shell;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "shap-cli", &mut script);
    if shell == Shell::Bash {
        script = bash_case_labels(&script);
    }
    cmd::common::print(|o| o.write_all(&script))
}

/// clap_complete's bash script names the subcommand states `shap__cli__subcmd__explain` where
/// it sets them but `shap__subcmd__cli__subcmd__explain` in the `case` that completes them
/// (the hyphen in `shap-cli` is escaped twice there), so nothing after the subcommand would
/// complete. The labels are made to match.
fn bash_case_labels(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("shap__subcmd__cli__", "shap__cli__")
        .into_bytes()
}

fn main() -> std::process::ExitCode {
    std::panic::set_hook(Box::new(report_internal_failure));
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Explain(a) => a.net.threads,
        Command::Faithfulness(a) => a.scored.net.threads,
        Command::Metrics(a) => a.scored.net.threads,
        Command::Sanity(a) => a.scored.net.threads,
        Command::Compare(a) => a.net.threads,
        _ => None,
    };
    if let Err(e) = shap_run::threads::start_global_pool(threads.map(usize::from)) {
        eprintln!("error: {}", cmd::common::printable(&format!("{e:#}")));
        return std::process::ExitCode::FAILURE;
    }
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Data(a) => cmd::data::run(a, quiet),
        Command::Train(a) => cmd::train::run(a, quiet),
        Command::Evaluate(a) => cmd::evaluate::run(a, quiet),
        Command::Mask(a) => cmd::mask::run(a, quiet),
        Command::Explain(a) => cmd::explain::run(*a, quiet),
        Command::Plot(a) => cmd::plot::run(a, quiet),
        Command::Merge(a) => cmd::merge::run(a, quiet),
        Command::Summary(a) => cmd::summary::run(a, quiet),
        Command::Faithfulness(a) => cmd::faithfulness::run(*a, quiet),
        Command::Metrics(a) => cmd::metrics::run(*a, quiet),
        Command::Sanity(a) => cmd::sanity::run(*a, quiet),
        Command::Compare(a) => cmd::compare::run(*a, quiet),
        Command::Completions(c) => completions(&c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not an error: end quietly.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cmd::common::printable(&format!("{e:#}")));
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
