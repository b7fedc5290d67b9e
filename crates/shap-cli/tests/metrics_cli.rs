//! `shap-cli metrics`: MuFidelity and ROAD of a saved explanation (docs/metrics.md), their
//! JSON, their seeds, and the settings refused before any work.
#![allow(clippy::unwrap_used)]

mod common;

use common::{s, shap_cli, text};
use std::path::Path;

/// A synthetic dataset and checkpoint, and an explanation of its test images 0..6.
fn setup() -> (tempfile::TempDir, String, String) {
    let common::Synthetic { dir, model, data } = common::synthetic(6);
    let npz = dir.path().join("e.npz");
    let out = shap_cli(&[
        "explain",
        "-m",
        s(&model),
        "--data-dir",
        s(&data),
        "--range",
        "0..6",
        "--top-k",
        "2",
        "--max-evals",
        "100",
        "--npz",
        s(&npz),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (dir, s(&model).to_string(), s(&npz).to_string())
}

fn metrics(model: &str, npz: &str, json: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["metrics", "-m", model, "--npz", npz, "--json", s(json)];
    args.extend_from_slice(extra);
    let out = shap_cli(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[test]
fn both_metrics_are_written_per_image_and_seeded() {
    let (dir, model, npz) = setup();
    let json = dir.path().join("m.json");
    let all = metrics(
        &model,
        &npz,
        &json,
        &["--samples", "20", "--percentages", "20,50,80"],
    );
    let mu = &all["mufidelity"];
    assert_eq!(mu["images"].as_array().unwrap().len(), 6);
    assert_eq!(
        (mu["grid"].as_u64(), mu["subset"].as_u64()),
        (Some(9), Some(16))
    );
    for key in ["pearson", "spearman"] {
        let v = mu[key].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&v), "{key} {v}");
    }
    let road = &all["road"];
    assert_eq!(road["percentages"], serde_json::json!([20, 50, 80]));
    let first = &road["images"][0]["classes"][0];
    assert_eq!(first["morf"].as_array().unwrap().len(), 3);
    let gap = road["gap"].as_f64().unwrap();
    let (m, l) = (
        road["morf_mean"].as_f64().unwrap(),
        road["lerf_mean"].as_f64().unwrap(),
    );
    assert!((gap - (l - m)).abs() < 1e-12);
    // The same seed gives the same scores; another seed other subsets and noise.
    let again = metrics(
        &model,
        &npz,
        &json,
        &["--samples", "20", "--percentages", "20,50,80"],
    );
    assert_eq!(all, again);
    let other = metrics(
        &model,
        &npz,
        &json,
        &[
            "--samples",
            "20",
            "--percentages",
            "20,50,80",
            "--seed",
            "7",
        ],
    );
    assert_ne!(all["mufidelity"], other["mufidelity"]);
    // One metric alone writes only its part, and the table names it.
    let road_only = metrics(
        &model,
        &npz,
        &json,
        &["--metric", "road", "--road-noise", "0"],
    );
    assert!(road_only.get("mufidelity").is_none() && road_only.get("road").is_some());
    let out = shap_cli(&[
        "metrics",
        "-m",
        &model,
        "--npz",
        &npz,
        "--metric",
        "mufidelity",
    ]);
    let table = text(&out.stdout);
    assert!(
        table.starts_with("MuFidelity: 200 samples of 16 of 9x9 cells"),
        "{table}"
    );
    assert!(!table.contains("ROAD:"), "{table}");
}

#[test]
fn settings_that_cannot_score_are_refused_before_any_work() {
    let (dir, model, npz) = setup();
    let json = dir.path().join("m.json");
    for (extra, needle) in [
        (&["--grid", "29"][..], "finer than the 28-pixel side"),
        (&["--grid", "1"][..], "at least 2 cells"),
        (&["--fraction", "1.5"][..], "between 0 and 1"),
        (&["--percentages", "50,20"][..], "must increase"),
        (&["--road-noise", "-1"][..], "0 or more"),
    ] {
        let mut args = vec!["metrics", "-m", &model, "--npz", &npz, "--json", s(&json)];
        args.extend_from_slice(extra);
        let out = shap_cli(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!json.exists(), "{extra:?} wrote the JSON");
    }
}
