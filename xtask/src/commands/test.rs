//! `cargo xtask test`: what CI runs (README's test command).
//!
//! 1. `cargo test --workspace --release --no-fail-fast` (every crate's unit, golden and
//!    integration tests), with the ONNX tests on both engines: onnxruntime is installed from
//!    PyPI into a venv first (`onnxruntime.rs`; under `CI` a failed install fails the run);
//!    Then the Python package (`crates/shap-py`): its abi3 wheel built with maturin and
//!    installed into a venv with shap 0.51, and its pytest tests run (`python.rs`);
//! 2. `cargo bench --no-run` (the criterion benches in `benches/` compile, so they cannot rot);
//! 3. xtask's own unit tests (the bench table's parsing and speed-ups), in its target dir and
//!    release profile, so they reuse the xtask binary's dependencies, then `cargo xtask
//!    check-cuda` (the `cuda` feature compiles; `--no-cuda-check` skips it) and `cargo xtask
//!    check-package` (every library crate builds from its crates.io package);
//! 4. `cargo xtask reproduce --quick` into a fresh directory, then checks that the report and
//!    every figure and explanation exist, are non-empty and are linked, and opens the report
//!    in headless Chromium (skipped without it);
//! 5. `cargo xtask slurm-test`: the Slurm array job on a private one-node cluster (skipped,
//!    saying why, when not root on Debian with the Slurm and munge packages).
//!
//! The closing line counts tests: what libtest reported as passed and failed across every test
//! binary, plus one per output the quick reproduction was checked for. It refuses to start with
//! `SHAP_TOOLKIT_REGENERATE` set, which would rewrite the image-plot snapshots instead of
//! checking them.

use crate::sh;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The variable that makes `shap-plot`'s snapshot tests rewrite their PNGs instead of comparing.
const REGENERATE_VAR: &str = "SHAP_TOOLKIT_REGENERATE";

/// Flags of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip the quick end-to-end reproduction (workspace and xtask tests only).
    #[arg(long)]
    no_reproduce: bool,
    /// Skip `cargo xtask check-cuda` (the CUDA build check; counted as skipped).
    #[arg(long)]
    no_cuda_check: bool,
}

/// Tests that ran, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

/// Run the CI test suite.
pub fn run(args: Args) -> Result<()> {
    if std::env::var_os(REGENERATE_VAR).is_some() {
        bail!(
            "{REGENERATE_VAR} is set: the image-plot tests would rewrite their snapshots instead of checking them; unset it"
        );
    }
    let mut tally = Tally::default();
    let mut skipped = 0;
    let mut errors = Vec::new();
    let mut cargo_test = sh::cargo();
    cargo_test.args(["test", "--workspace", "--release", "--no-fail-fast"]);
    let ort = match crate::onnxruntime::library() {
        Ok(lib) => {
            eprintln!(
                "==> ONNX tests on tract and onnxruntime ({})",
                lib.display()
            );
            cargo_test
                .env("ORT_DYLIB_PATH", &lib)
                .env("SHAP_TOOLKIT_REQUIRE_ORT", "1");
            Some(lib)
        }
        // CI must test both engines; elsewhere (offline, no python3-venv) tract alone.
        Err(e) if std::env::var_os("CI").is_some() => return Err(e),
        Err(e) => {
            eprintln!("==> ONNX tests on tract only: {e:#}");
            None
        }
    };
    eprintln!("==> cargo test --workspace --release --no-fail-fast");
    record(&mut tally, &mut errors, libtest(&mut cargo_test));
    python_tests(ort.as_deref(), &mut tally, &mut skipped, &mut errors)?;
    eprintln!("==> cargo bench --no-run (the criterion benches compile)");
    if let Err(e) = sh::run(sh::cargo().args(["bench", "--no-run"])) {
        errors.push(format!("{e:#}"));
    }
    eprintln!("==> cargo test (xtask's own tests)");
    let mut xtask = sh::cargo();
    xtask
        .current_dir(sh::repo_root().join("xtask"))
        .args(["test", "--release", "--no-fail-fast", "--target-dir"])
        .arg(sh::target_dir().join("xtask"));
    record(&mut tally, &mut errors, libtest(&mut xtask));
    if args.no_cuda_check {
        eprintln!("==> cargo xtask check-cuda: SKIPPED (not passed): --no-cuda-check");
        skipped += 1;
    } else {
        eprintln!("==> cargo xtask check-cuda (the `cuda` feature compiles)");
        count(
            crate::commands::cuda::check().map(|()| true),
            &mut tally,
            &mut skipped,
            &mut errors,
        );
    }
    eprintln!("==> cargo xtask check-package (every library crate builds from its package)");
    count(
        crate::commands::package::check().map(|()| true),
        &mut tally,
        &mut skipped,
        &mut errors,
    );
    if !args.no_reproduce {
        record(&mut tally, &mut errors, quick_reproduction());
        let report = sh::target_dir()
            .join("reproduce")
            .join("ci-quick")
            .join("report.html");
        count(
            crate::commands::browser::test_step(&report),
            &mut tally,
            &mut skipped,
            &mut errors,
        );
    }
    count(
        crate::commands::slurm::test_step(),
        &mut tally,
        &mut skipped,
        &mut errors,
    );
    // A plain closing line CI can read.
    println!(
        "xtask test: {} passed, {} failed, {skipped} skipped",
        tally.passed, tally.failed
    );
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// The Python package: wheel built and tested with pytest (`crate::python`). Under `CI` a setup
/// failure (no venv, no PyPI) fails the run; elsewhere it is counted as skipped, saying why.
fn python_tests(
    ort: Option<&std::path::Path>,
    tally: &mut Tally,
    skipped: &mut usize,
    errors: &mut Vec<String>,
) -> Result<()> {
    match crate::python::test_step(ort) {
        Ok((passed, failed, why)) => {
            tally.add(Tally { passed, failed });
            errors.extend(why);
        }
        Err(e) if std::env::var_os("CI").is_some() => return Err(e),
        Err(e) => {
            eprintln!("==> Python package tests: SKIPPED: {e:#}");
            *skipped += 1;
        }
    }
    Ok(())
}

/// Count a step that passes (`true`), is skipped (`false`) or fails.
fn count(step: Result<bool>, tally: &mut Tally, skipped: &mut usize, errors: &mut Vec<String>) {
    match step {
        Ok(true) => tally.passed += 1,
        Ok(false) => *skipped += 1,
        Err(e) => {
            tally.failed += 1;
            errors.push(format!("{e:#}"));
        }
    }
}

/// Add a step's tally, or its error (a step that could not report counts is an error).
fn record(tally: &mut Tally, errors: &mut Vec<String>, step: Result<(Tally, Option<String>)>) {
    match step {
        Ok((t, err)) => {
            tally.add(t);
            errors.extend(err);
        }
        Err(e) => errors.push(format!("{e:#}")),
    }
}

/// Run a `cargo test` command, echoing its output, and add up libtest's `test result:` lines.
/// Returns the tally and, when the command failed, why.
fn libtest(cmd: &mut Command) -> Result<(Tally, Option<String>)> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {shown}"))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut tally = Tally::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(t) = parse_result_line(&line) {
            tally.add(t);
        }
    }
    let status = child.wait()?;
    let err = (!status.success()).then(|| format!("{shown} failed ({status})"));
    if err.is_some() && tally.failed == 0 {
        // A build error or a crashed test binary: count it, so the line never reads 0 failed.
        tally.failed += 1;
    }
    Ok((tally, err))
}

/// The counts of one libtest summary line, `test result: ok. 12 passed; 1 failed; ...`.
fn parse_result_line(line: &str) -> Option<Tally> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |what: &str| -> Option<usize> {
        rest.split(';')
            .find_map(|part| part.trim().strip_suffix(what))
            .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
    };
    Some(Tally {
        passed: count(" passed")?,
        failed: count(" failed")?,
    })
}

/// What `reproduce --quick` must write (and, for figures, link from the report).
const EXPECTED: [&str; 26] = [
    "report.html",
    "report.md",
    "model.safetensors",
    "history.json",
    "evaluation.json",
    "training_curves.png",
    "confusion_matrix.png",
    "partition_correct_telea.png",
    "partition_correct_ns.png",
    "partition_correct_blur.png",
    "partition_wrong_blur.png",
    "permutation_correct_blur.png",
    "permutation_wrong_blur.png",
    "partition_correct_telea.npz",
    "permutation_wrong_blur.npz",
    "class_summary.png",
    "class_summary.json",
    "partition_correct_telea_faithfulness.png",
    "permutation_wrong_blur_faithfulness.json",
    "partition_correct_telea_metrics.json",
    "permutation_wrong_blur_metrics.json",
    "comparison.json",
    "comparison.png",
    "partition_correct_telea_sanity.json",
    "partition_correct_telea_sanity.png",
    "partition_correct_telea_sanity_curves.png",
];

/// `reproduce --quick` into a fresh directory; one check per expected output (and per figure
/// link in the report).
fn quick_reproduction() -> Result<(Tally, Option<String>)> {
    let out = sh::target_dir().join("reproduce").join("ci-quick");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    eprintln!("==> cargo xtask reproduce --quick --out {}", out.display());
    if let Err(e) = crate::commands::reproduce::run_quick_for_ci(&out) {
        return Ok((
            Tally {
                passed: 0,
                failed: 1,
            },
            Some(format!("{e:#}")),
        ));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap_or_default();
    let mut missing = Vec::new();
    let mut checked = 0;
    for f in EXPECTED {
        checked += 1;
        let ok = std::fs::metadata(out.join(f))
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if !ok {
            missing.push(f.to_string());
        }
        if f.ends_with(".png") {
            checked += 1;
            if !html.contains(&format!("src=\"{f}\"")) {
                missing.push(format!("{f} (not linked from report.html)"));
            }
        }
    }
    let tally = Tally {
        passed: checked - missing.len(),
        failed: missing.len(),
    };
    if missing.is_empty() {
        eprintln!("    quick reproduction wrote and linked every report, figure and explanation");
        return Ok((tally, None));
    }
    Ok((
        tally,
        Some(format!(
            "quick reproduction is missing or has empty / unlinked outputs: {missing:?}"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_summary_lines_are_counted() {
        let ok = "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.50s";
        assert_eq!(
            parse_result_line(ok),
            Some(Tally {
                passed: 12,
                failed: 0
            })
        );
        let bad = "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(
            parse_result_line(bad),
            Some(Tally {
                passed: 3,
                failed: 2
            })
        );
        assert_eq!(parse_result_line("test foo ... ok"), None);
        assert_eq!(parse_result_line("running 3 tests"), None);
    }

    #[test]
    fn a_failed_command_without_a_summary_counts_as_a_failure() {
        let (t, err) = libtest(&mut Command::new("false")).expect("`false` runs");
        assert_eq!(
            t,
            Tally {
                passed: 0,
                failed: 1
            }
        );
        assert!(err.is_some());
        let (t, err) = libtest(
            Command::new("sh")
                .arg("-c")
                .arg("echo 'test result: ok. 4 passed; 0 failed; 0 ignored'"),
        )
        .expect("sh runs");
        assert_eq!(
            t,
            Tally {
                passed: 4,
                failed: 0
            }
        );
        assert!(err.is_none());
    }
}
