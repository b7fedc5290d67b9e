//! `shap-cli sanity`: the model-randomisation check of a saved explanation (docs/metrics.md),
//! its JSON and figures, and what it refuses before any work.
#![allow(clippy::unwrap_used)]

mod common;

use common::{s, shap_cli, text};

/// A synthetic dataset and checkpoint, and an explanation of its test images 0..3.
fn setup() -> (tempfile::TempDir, String, String) {
    let common::Synthetic { dir, model, data } = common::synthetic(3);
    let npz = dir.path().join("e.npz");
    let out = shap_cli(&[
        "explain",
        "-m",
        s(&model),
        "--data-dir",
        s(&data),
        "--range",
        "0..3",
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

#[test]
fn the_cascade_randomises_every_layer_and_draws_both_figures() {
    let (dir, model, npz) = setup();
    let (json, maps, curves) = (
        dir.path().join("s.json"),
        dir.path().join("maps.png"),
        dir.path().join("c.svg"),
    );
    let out = shap_cli(&[
        "sanity",
        "-m",
        &model,
        "--npz",
        &npz,
        "--json",
        s(&json),
        "--plot",
        s(&maps),
        "--curves",
        s(&curves),
        "--target",
        "all",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["layers"], serde_json::json!(["fc", "conv2", "conv1"]));
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[1]["randomised"], serde_json::json!(["fc", "conv2"]));
    for step in steps {
        let images = step["images"].as_array().unwrap();
        assert_eq!(images.len(), 3);
        let classes: Vec<_> = images
            .iter()
            .flat_map(|i| i["classes"].as_array().unwrap())
            .collect();
        assert_eq!(classes.len(), 6, "every explained class with --target all");
        let mean: f64 = classes
            .iter()
            .map(|c| c["spearman"].as_f64().unwrap())
            .sum::<f64>()
            / 6.0;
        assert!((mean - step["mean"]["spearman"].as_f64().unwrap()).abs() < 1e-12);
        for c in classes {
            for key in ["spearman_abs", "spearman", "ssim"] {
                let v = c[key].as_f64().unwrap();
                assert!((-1.0..=1.0 + 1e-12).contains(&v), "{key} {v}");
            }
        }
    }
    let last = steps[2]["mean"]["spearman"].as_f64().unwrap();
    assert_eq!(
        r["passes"].as_bool(),
        Some(last < r["pass_below"].as_f64().unwrap())
    );
    assert!(std::fs::read(&maps).unwrap().starts_with(b"\x89PNG"));
    assert!(text(&std::fs::read(&curves).unwrap()).contains("<svg"));
    // The same seed gives the same report; --layers stops the cascade early.
    let again = dir.path().join("again.json");
    let out = shap_cli(&[
        "sanity",
        "-m",
        &model,
        "--npz",
        &npz,
        "--json",
        s(&again),
        "--target",
        "all",
        "--layers",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let one: serde_json::Value = serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
    assert_eq!(one["steps"].as_array().unwrap().len(), 1);
    assert_eq!(one["steps"][0], r["steps"][0]);
}

#[test]
fn the_table_names_each_step_and_the_verdict() {
    let (_dir, model, npz) = setup();
    let out = shap_cli(&["sanity", "-m", &model, "--npz", &npz]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("Model-parameter randomisation (3 layers)"),
        "{t}"
    );
    for layer in ["fc", "conv2", "conv1"] {
        assert!(t.lines().any(|l| l.trim_start().starts_with(layer)), "{t}");
    }
    assert!(t.contains("passes:") || t.contains("fails:"), "{t}");
}

#[test]
fn what_cannot_be_checked_is_refused_before_any_work() {
    let (dir, model, npz) = setup();
    let json = dir.path().join("s.json");
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
            "sanity",
            "-m",
            &model,
            "--npz",
            &npz,
            "--layers",
            "0",
            "--json",
            s(&json),
        ],
        "--layers 0",
    );
    bad(
        &[
            "sanity",
            "-m",
            &model,
            "--npz",
            &npz,
            "--plot",
            "maps.gif",
            "--json",
            s(&json),
        ],
        "--plot",
    );
    bad(
        &["sanity", "-m", &model, "--npz", &npz, "--json", &npz],
        "--json",
    );
    // An explanation that does not record its settings cannot be explained again.
    let bare = dir.path().join("bare.npz");
    let mut e = shap_explain::Explanation::load_npz(&npz).unwrap();
    e.settings = Default::default();
    e.save_npz(&bare).unwrap();
    bad(
        &[
            "sanity",
            "-m",
            &model,
            "--npz",
            s(&bare),
            "--json",
            s(&json),
        ],
        "does not record the settings",
    );
}
