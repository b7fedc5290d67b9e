//! `shap-cli train` and `shap-cli evaluate` run as real processes on the real dataset.
#![allow(clippy::unwrap_used)]

mod common;
use common::{real_data, shap_cli, text};

fn have_data() -> bool {
    real_data().is_some()
}

#[test]
fn train_then_evaluate_a_subset() {
    if !have_data() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let history = dir.path().join("h.json");
    let out = shap_cli(&[
        "train",
        "--limit",
        "2000",
        "--epochs",
        "1",
        "--out",
        model.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "train failed: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("epoch 1:"),
        "{}",
        text(&out.stdout)
    );
    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    assert_eq!(h["epochs"].as_array().unwrap().len(), 1);
    assert_eq!(h["train_examples"], 2000);

    let json = dir.path().join("eval.json");
    let out = shap_cli(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "evaluate failed: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("weighted avg") && stdout.contains("Ankle boot"),
        "{stdout}"
    );
    let e: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let acc = e["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "accuracy {acc}");
    assert_eq!(e["n"], 10000);
    assert_eq!(e["first_correct"].as_array().unwrap().len(), 4);
    // The history's test accuracy is the same evaluation of the same weights.
    let hacc = h["epochs"][0]["test_accuracy"].as_f64().unwrap();
    assert!((hacc - acc).abs() < 1e-12);
}

#[test]
fn corrupt_checkpoint_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.safetensors");
    std::fs::write(&model, b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}").unwrap();
    let out = shap_cli(&["evaluate", "--model", model.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bad.safetensors"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_texts_have_examples() {
    for cmd in ["train", "evaluate"] {
        let out = shap_cli(&[cmd, "--help"]);
        assert!(out.status.success());
        let s = text(&out.stdout);
        assert!(
            s.contains("Example:") && s.contains(&format!("shap-cli {cmd}")),
            "{s}"
        );
    }
}
