//! `shap-cli compare`: explanations of the same images and two baselines scored side by side
//! (docs/metrics.md), its JSON and figure, and what it refuses before any work.
#![allow(clippy::unwrap_used)]

mod common;

use common::{s, shap_cli, text};
use std::path::{Path, PathBuf};

fn explain(model: &Path, data: &Path, out: &Path, extra: &[&str]) {
    explain_range(model, data, "0..3", out, extra);
}

fn explain_range(model: &Path, data: &Path, range: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "explain",
        "-m",
        s(model),
        "--data-dir",
        s(data),
        "--range",
        range,
        "--top-k",
        "2",
        "--npz",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = shap_cli(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// A synthetic checkpoint, and a Partition and a Permutation explanation of its images 0..3.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
    let common::Synthetic { dir, model, data } = common::synthetic(3);
    let (blur, perm) = (dir.path().join("blur.npz"), dir.path().join("perm.npz"));
    explain(&model, &data, &blur, &["--max-evals", "100"]);
    explain(
        &model,
        &data,
        &perm,
        &["--algorithm", "permutation", "--max-evals", "1600"],
    );
    (dir, model, data, blur, perm)
}

#[test]
fn every_explanation_and_both_baselines_are_scored() {
    let (dir, model, _, blur, perm) = setup();
    let (json, plot) = (dir.path().join("c.json"), dir.path().join("c.png"));
    let out = shap_cli(&[
        "compare",
        "-m",
        s(&model),
        "--npz",
        s(&blur),
        "--npz",
        s(&perm),
        "--json",
        s(&json),
        "--plot",
        s(&plot),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = r["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["blur", "perm", "occlusion (4 px)", "random"]);
    let baseline: Vec<bool> = rows
        .iter()
        .map(|r| r["baseline"].as_bool().unwrap())
        .collect();
    assert_eq!(baseline, [false, false, true, true]);
    for row in rows {
        let (a, sc) = (&row["aucs"], &row["scores"]);
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        let del = f(a, "random_deletion_auc") - f(a, "deletion_auc");
        assert!((f(sc, "deletion_gap") - del).abs() < 1e-12);
        assert!((f(sc, "road_gap") - (f(row, "road_lerf") - f(row, "road_morf"))).abs() < 1e-12);
    }
    // The best by each measure is the row with the largest score.
    let keys = ["deletion_gap", "insertion_gap", "mufidelity", "road_gap"];
    for (best, key) in r["best"].as_array().unwrap().iter().zip(keys) {
        let top = rows
            .iter()
            .map(|r| r["scores"][key].as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        let named = rows.iter().find(|r| r["name"] == *best).unwrap();
        assert_eq!(named["scores"][key].as_f64().unwrap(), top, "{key}");
    }
    assert!(std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"));
    // The table, without baselines.
    let out = shap_cli(&[
        "compare",
        "-m",
        s(&model),
        "--npz",
        s(&blur),
        "--npz",
        s(&perm),
        "--no-baselines",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("blur") && t.contains("perm") && !t.contains("random"),
        "{t}"
    );
}

#[test]
fn explanations_of_other_images_and_bad_outputs_are_refused() {
    let (dir, model, data, blur, _) = setup();
    let other = dir.path().join("other.npz");
    explain_range(&model, &data, "0..2", &other, &["--max-evals", "100"]);
    let json = dir.path().join("c.json");
    let bad = |args: &[&str], want: &str| {
        let out = shap_cli(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!json.exists());
    };
    bad(
        &[
            "compare",
            "-m",
            s(&model),
            "--npz",
            s(&blur),
            "--npz",
            s(&other),
            "--json",
            s(&json),
        ],
        "do not explain the same images",
    );
    bad(
        &[
            "compare",
            "-m",
            s(&model),
            "--npz",
            s(&blur),
            "--plot",
            "c.gif",
            "--json",
            s(&json),
        ],
        "--plot",
    );
    bad(
        &[
            "compare",
            "-m",
            s(&model),
            "--npz",
            s(&blur),
            "--json",
            s(&blur),
        ],
        "--json",
    );
    bad(&["compare", "-m", s(&model), "--json", s(&json)], "--npz");
}
