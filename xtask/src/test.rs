//! `cargo xtask test`: what CI runs (README's test command).
//!
//! 1. `cargo test --workspace --release` (every crate's unit, golden and integration tests);
//! 2. xtask's own unit tests (the bench table's parsing and speed-ups), in its target dir and
//!    release profile, so they reuse the xtask binary's dependencies;
//! 3. `cargo xtask reproduce --quick` into a fresh directory, then checks that the report and
//!    every figure and explanation exist and are non-empty.

use crate::sh;
use anyhow::{Result, bail};

/// Flags of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip the quick end-to-end reproduction (workspace and xtask tests only).
    #[arg(long)]
    no_reproduce: bool,
}

/// Run the CI test suite.
pub fn run(args: Args) -> Result<()> {
    let (mut passed, mut skipped) = (0, 0);
    eprintln!("==> cargo test --workspace --release");
    sh::run(sh::cargo().args(["test", "--workspace", "--release"]))?;
    passed += 1;
    eprintln!("==> cargo test (xtask's own tests)");
    let xtask_dir = sh::repo_root().join("xtask");
    sh::run(
        sh::cargo()
            .current_dir(&xtask_dir)
            .args(["test", "--release", "--target-dir"])
            .arg(sh::target_dir().join("xtask")),
    )?;
    passed += 1;
    if !args.no_reproduce {
        let out = sh::target_dir().join("reproduce").join("ci-quick");
        if out.exists() {
            std::fs::remove_dir_all(&out)?;
        }
        eprintln!("==> cargo xtask reproduce --quick --out {}", out.display());
        crate::reproduce::run_quick_for_ci(&out)?;
        let mut missing = Vec::new();
        let expected = [
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
        ];
        for f in expected {
            let p = out.join(f);
            let ok = std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false);
            if !ok {
                missing.push(f);
            }
        }
        let html = std::fs::read_to_string(out.join("report.html")).unwrap_or_default();
        for f in expected.iter().filter(|f| f.ends_with(".png")) {
            if !html.contains(&format!("src=\"{f}\"")) {
                missing.push(f);
            }
        }
        if !missing.is_empty() {
            bail!("quick reproduction is missing or has empty / unlinked outputs: {missing:?}");
        }
        eprintln!("    quick reproduction wrote every report, figure and explanation");
        passed += 1;
        skipped += usize::from(!crate::browser::test_step(&out.join("report.html"))?);
        passed += usize::from(skipped == 0);
    }
    // A plain closing line CI can read.
    println!("xtask test: {passed} passed, 0 failed, {skipped} skipped");
    Ok(())
}
