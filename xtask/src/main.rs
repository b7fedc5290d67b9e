//! `cargo xtask`: project automation for the shap-toolkit workspace.
//!
//! - `cargo xtask reproduce [--preset keras|flax] [--quick] [--retrain] [--out DIR]`: the whole
//!   "SHAP values for image classification" tutorial end to end, with `report.html`/`report.md`.
//! - `cargo xtask bench`: one table of speed figures beside the reference figures.
//! - `cargo xtask test`: the test suite CI runs (all workspace tests, then a quick reproduction
//!   whose report and figures are checked, in headless Chromium when it is installed).
//! - `cargo xtask check-report REPORT.html`: that browser check on any report.
//!
//! xtask builds into its own target dir (`target/xtask`, see `.cargo/config.toml`) and drives
//! the real work through the `shap-cli` binary, so Candle is compiled once, by the main build.

use clap::{Parser, Subcommand};

mod bench;
mod bench_keras;
mod bench_onnx;
mod browser;
mod render;
mod report;
mod reproduce;
mod samples;
mod sh;
mod test;

/// Project automation: reproduce the tutorial, run the benchmark table, run the CI tests.
#[derive(Parser)]
#[command(name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce the tutorial end to end (data, train, evaluate, explain, figures, report).
    ///
    /// Example: `cargo xtask reproduce` (Keras tutorial), `cargo xtask reproduce --preset flax`,
    /// `cargo xtask reproduce --quick` (a small subset of every step, under 3 minutes).
    Reproduce(reproduce::Args),
    /// Print one table of measured speeds beside the reference figures.
    ///
    /// Example: `cargo xtask bench` (about 3 minutes, 7 with the Python side; `--quick` for a
    /// rough pass).
    Bench(bench::Args),
    /// Run the test suite exactly as CI does: workspace tests, then `reproduce --quick` checks.
    ///
    /// Example: `cargo xtask test`.
    Test(test::Args),
    /// Open a report in headless Chromium and check that every image loads, nothing reaches
    /// the console as an error and every table-of-contents link resolves.
    ///
    /// Example: `cargo xtask check-report target/reproduce/keras/report.html`.
    CheckReport {
        /// The report to open.
        report: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reproduce(a) => reproduce::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Test(a) => test::run(a),
        Command::CheckReport { report } => browser::test_step(&report).map(|_| ()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
