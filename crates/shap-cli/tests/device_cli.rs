//! `--device`: a GPU asked of a build without its feature is refused naming the feature (exit 1,
//! nothing written); with `--features cuda` on a GPU machine (`cargo xtask gpu-check`), training
//! and explaining on `cuda` agree with the CPU and a missing `cuda:N` is named.
#![allow(clippy::unwrap_used)]

mod common;
use common::{onnx_fixture, shap_cli, text, write_dataset};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The command failed with exit 1 and one error line containing `needle`.
fn assert_refused(args: &[&str], needle: &str) {
    let out = shap_cli(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: stderr should name {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `train`, `evaluate` and `explain` on `device`, writing into `dir`.
fn device_commands(dir: &Path, data: &Path, device: &str) -> Vec<Vec<String>> {
    let model = onnx_fixture("tutorial.safetensors");
    let out = |name: &str| dir.join(name).display().to_string();
    let d = s(data).to_string();
    [
        vec![
            "train",
            "--epochs",
            "1",
            "--limit",
            "64",
            "--out",
            &out("m.safetensors"),
        ],
        vec!["evaluate", "-m", &model, "--json", &out("eval.json")],
        vec![
            "explain",
            "-m",
            &model,
            "--indices",
            "0",
            "--npz",
            &out("e.npz"),
        ],
    ]
    .into_iter()
    .map(|args| {
        let mut v: Vec<String> = args.into_iter().map(String::from).collect();
        v.extend([
            "--data-dir".into(),
            d.clone(),
            "--device".into(),
            device.into(),
        ]);
        v
    })
    .collect()
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_on_a_build_without_the_feature_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 64, 8);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for device in ["cuda", "cuda:1"] {
        for args in device_commands(&out, &data, device) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_refused(
                &args,
                "this build has no CUDA support (rebuild with `--features cuda`)",
            );
        }
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );
}

#[cfg(not(feature = "metal"))]
#[test]
fn metal_on_a_build_without_the_feature_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 64, 8);
    for args in device_commands(dir.path(), &data, "metal") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(
            &args,
            "this build has no Metal support (rebuild with `--features metal`)",
        );
    }
    assert!(!dir.path().join("m.safetensors").exists());
}

/// `npz`'s values as f64.
#[cfg(feature = "cuda")]
fn values(npz: &Path) -> (Vec<f64>, Vec<i64>) {
    let e = shap_explain::Explanation::load_npz(npz).unwrap();
    let classes = e.output_indices.iter().map(|&c| c as i64).collect();
    (e.values, classes)
}

#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA GPU"]
fn a_missing_cuda_device_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 64, 8);
    for args in device_commands(dir.path(), &data, "cuda:4096") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, "cannot open cuda:4096: no such device");
    }
}

#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA GPU"]
fn train_and_explain_on_cuda_agree_with_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 512, 8);
    let path = |name: &str| dir.path().join(name).display().to_string();
    for device in ["cpu", "cuda"] {
        let model = path(&format!("{device}.safetensors"));
        let h = path(&format!("{device}.json"));
        let args = [
            "train",
            "--epochs",
            "1",
            "--limit",
            "512",
            "--batch-size",
            "64",
            "--device",
            device,
            "--data-dir",
            s(&data),
            "--out",
            &model,
            "--history",
            &h,
            "--quiet",
        ];
        let out = shap_cli(&args);
        assert!(
            out.status.success(),
            "train on {device}: {}",
            text(&out.stderr)
        );
    }
    let loss = |device: &str| -> f64 {
        let h: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path(&format!("{device}.json"))).unwrap())
                .unwrap();
        h["epochs"][0]["train_loss"].as_f64().unwrap()
    };
    let (a, b) = (loss("cpu"), loss("cuda"));
    assert!(
        (a - b).abs() <= 1e-2 * a.abs(),
        "train loss: cpu {a}, cuda {b}"
    );
    // Explain the CPU-trained model on both devices (the GPU gathers masks across images).
    for device in ["cpu", "cuda"] {
        let args = [
            "explain",
            "-m",
            &path("cpu.safetensors"),
            "--indices",
            "0,1,2",
            "--eval",
            "full",
            "--device",
            device,
            "--data-dir",
            s(&data),
            "--npz",
            &path(&format!("{device}.npz")),
            "--quiet",
        ];
        let out = shap_cli(&args);
        assert!(
            out.status.success(),
            "explain on {device}: {}",
            text(&out.stderr)
        );
    }
    let (cpu, c1) = values(Path::new(&path("cpu.npz")));
    let (gpu, c2) = values(Path::new(&path("cuda.npz")));
    assert_eq!(c1, c2, "the same classes are explained");
    let scale = cpu.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let d = cpu
        .iter()
        .zip(&gpu)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        scale > 0.0 && d <= 1e-4 * scale,
        "values differ by {d} (scale {scale})"
    );
}

/// onnxruntime's CUDA execution provider against its CPU one on the RGB fixture.
/// `cargo xtask gpu-check` installs onnxruntime-gpu and names its library in
/// `SHAP_TOOLKIT_ORT_GPU`.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a CUDA GPU"]
fn onnx_on_onnxruntimes_cuda_provider_agrees_with_the_cpu() {
    let lib = std::env::var("SHAP_TOOLKIT_ORT_GPU").expect(
        "SHAP_TOOLKIT_ORT_GPU: the onnxruntime-gpu library (cargo xtask gpu-check sets it)",
    );
    let dir = tempfile::tempdir().unwrap();
    let fixture = |name: &str| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shap-onnx/fixtures")
            .join(name)
            .display()
            .to_string()
    };
    let mut results = Vec::new();
    for device in ["cpu", "cuda"] {
        let npz = dir.path().join(format!("{device}.npz"));
        let out = shap_cli(&[
            "explain",
            "--model",
            &fixture("rgb_nchw.onnx"),
            "--image",
            &fixture("images/rgb_0.png"),
            "--onnx-engine",
            "onnxruntime",
            "--onnxruntime",
            &lib,
            "--device",
            device,
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229,0.224,0.225",
            "--npz",
            s(&npz),
        ]);
        assert!(out.status.success(), "{device}: {}", text(&out.stderr));
        results.push(values(&npz));
    }
    let ((a, ca), (b, cb)) = (&results[0], &results[1]);
    assert_eq!(ca, cb);
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f64, f64::max);
    assert!(d <= 1e-4 * scale, "cuda vs cpu: {d} of {scale}");
}
