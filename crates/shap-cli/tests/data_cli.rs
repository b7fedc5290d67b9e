//! `shap-cli data` run as a real process.
#![allow(clippy::unwrap_used)]

mod common;
use common::{shap_cli, text, write_dataset};

#[test]
fn good_dir_prints_source_counts_and_histogram() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 25, 10);
    let dir = d.path().to_str().unwrap();
    let out = shap_cli(&["data", "--data-dir", dir]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("found in directory {dir}")),
        "{stdout}"
    );
    assert!(stdout.contains("train:     25 images of 28x28"), "{stdout}");
    assert!(stdout.contains("test :     10 images of 28x28"), "{stdout}");
    // 25 labels i % 10: classes 0-4 three times, 5-9 twice; test: once each.
    assert!(
        stdout.contains("0   T-shirt/top        3       1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("9   Ankle boot         2       1"),
        "{stdout}"
    );

    let out = shap_cli(&["data", "--data-dir", dir, "--json"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], format!("directory {dir}"));
    assert_eq!(v["source_kind"], "directory");
    assert_eq!(v["train"]["count"], 25);
    assert_eq!(v["test"]["count"], 10);
    assert_eq!(
        v["train"]["histogram"],
        serde_json::json!([3, 3, 3, 3, 3, 2, 2, 2, 2, 2])
    );
    assert_eq!(v["classes"][9], "Ankle boot");
}

#[test]
fn missing_dir_fails_naming_what_was_tried() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no-fashion-here");
    let out = shap_cli(&["data", "--data-dir", missing.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("apt-get install dataset-fashion-mnist"),
        "{stderr}"
    );
    assert!(stderr.contains("FASHION_MNIST_DIR"), "{stderr}");
}

#[test]
fn broken_dataset_fails_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 5, 5);
    // Label 12 in the test labels.
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 5];
    labels.extend([1, 2, 12, 3, 4]);
    std::fs::write(d.path().join("t10k-labels-idx1-ubyte"), labels).unwrap();
    let out = shap_cli(&["data", "--data-dir", d.path().to_str().unwrap(), "--json"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("t10k-labels-idx1-ubyte"), "{stderr}");
    assert!(stderr.contains("label 12 at index 2"), "{stderr}");
}
