//! The memory plan: runs that cannot fit the memory they may use are refused before any work,
//! with the estimate, exit 1 and nothing written (never an abort, 134, or a kill, 137). A run
//! that fits stays within its own estimate: `memory_estimate_cli.rs`, a process of its own, so
//! that no other test's child counts in its peak. Every process runs under `ulimit -v` 2 GiB
//! (`common::ULIMIT_KIB`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::graphs::model;
use common::{onnx_fixture, s, shap_cli, text};

/// Exit 1 with one `error:` line saying there is not enough memory, and nothing in `dir`
/// but the models.
fn refused(args: &[&str], dir: &Path, needle: &str) {
    let out = shap_cli(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: not enough memory for"), "{err}");
    assert!(last.contains(needle), "{needle}: {err}");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".onnx"))
        .collect();
    assert!(left.is_empty(), "{args:?} left {left:?}");
}

#[test]
fn oversized_models_and_runs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = onnx_fixture("images/rgb_0.png");
    let npz = d.join("X.npz");
    let explain = |model: &Path, extra: &[&str]| {
        let mut a = vec!["explain", "--model", s(model), "--image", &image];
        a.extend_from_slice(&[
            "--max-evals",
            "20",
            "--onnx-engine",
            "tract",
            "--npz",
            s(&npz),
        ]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>, needle: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, d, needle)
    };
    // A 300-byte file declaring 3 x 100000 x 100000 images: refused at load.
    let huge = model(d, "huge.onnx", [3, 100_000, 100_000], 3);
    run(explain(&huge, &[]), "the images checked at load");
    // 2048 x 2048 x 3 images: the partition tree alone is about 1.8 GiB.
    let big = model(d, "big.onnx", [3, 2048, 2048], 3);
    run(
        explain(&big, &["--batch-size", "1", "--top-k", "1"]),
        "partition tree",
    );
    // 100,000 outputs, all explained: each image's values and recursion state take GiBs.
    let wide = model(d, "wide.onnx", [1, 28, 28], 100_000);
    run(explain(&wide, &["--all-classes"]), "values");
    // --max-memory below what a small run needs.
    let small = model(d, "small.onnx", [3, 32, 32], 3);
    run(
        explain(&small, &["--max-memory", "1M"]),
        "--max-memory 1 MiB",
    );
    // The limit is parsed strictly.
    let out = shap_cli(
        &explain(&small, &["--max-memory", "lots"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("invalid value 'lots' for '--max-memory"));
}
