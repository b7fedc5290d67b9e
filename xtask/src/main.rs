//! `cargo xtask`: project automation for the shap-toolkit workspace.
//!
//! - `cargo xtask reproduce [--preset keras|flax] [--quick] [--retrain] [--out DIR]`: the whole
//!   "SHAP values for image classification" tutorial end to end, with `report.html`/`report.md`.
//! - `cargo xtask bench`: one table of speed figures beside the reference figures.
//! - `cargo xtask test`: the test suite CI runs (all workspace tests, then a quick reproduction
//!   whose report and figures are checked, in headless Chromium when it is installed).
//! - `cargo xtask check-report REPORT.html`: that browser check on any report.
//! - `cargo xtask check-cuda`: `cargo check` of the `cuda` feature with a CUDA toolchain from
//!   PyPI (no GPU needed); `cargo xtask gpu-check`: the GPU tests, on a machine with a GPU.
//! - `cargo xtask slurm-test`: the Slurm array job on a private one-node cluster.
//!
//! xtask builds into its own target dir (`target/xtask`, see `.cargo/config.toml`) and drives
//! the real work through the `shap-cli` binary, so Candle is compiled once, by the main build.

use clap::{Parser, Subcommand};

mod commands;
mod onnxruntime;
mod python;
mod render;
mod report;
mod samples;
mod sh;

use commands::{bench, browser, cuda, package, reproduce, slurm, test};

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
    /// Compile the `cuda` feature of every crate that has one (`cargo check`, Candle's CUDA
    /// kernels through nvcc) with NVIDIA's toolchain from PyPI, installed once under
    /// target/cuda-toolchain. Needs no GPU; CI runs it.
    ///
    /// Example: `cargo xtask check-cuda`.
    CheckCuda,
    /// On a machine with an NVIDIA GPU and its driver: build the GPU tests with `--features
    /// cuda` and run them (train an epoch, explain, compare with the CPU) under a time limit,
    /// one line per check.
    ///
    /// Example: `cargo xtask gpu-check` (`--timeout 300`).
    GpuCheck(cuda::GpuArgs),
    /// Package every library crate as crates.io would take it and build each from its
    /// packaged sources (`cargo package --workspace`, the binaries excluded). CI runs it.
    ///
    /// Example: `cargo xtask check-package`.
    CheckPackage,
    /// Run the shipped Slurm array job on a private one-node cluster (munge, slurmctld,
    /// slurmd in a temporary folder): a failing shard, a resubmission that redoes only it, the
    /// merge, and a bit-for-bit comparison with one local run. Needs root and Debian's
    /// `slurmd slurmctld slurm-client munge`; otherwise it says why and skips.
    ///
    /// Example: `cargo xtask slurm-test`.
    SlurmTest,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reproduce(a) => reproduce::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Test(a) => test::run(a),
        Command::CheckReport { report } => browser::test_step(&report).map(|_| ()),
        Command::CheckCuda => cuda::check(),
        Command::CheckPackage => package::check(),
        Command::GpuCheck(a) => cuda::gpu_check(a),
        Command::SlurmTest => slurm::run(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
