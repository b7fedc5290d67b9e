//! `shap-cli explain --model M.onnx`: ONNX image classifiers from the command line, against
//! shap 0.51 + onnxruntime (fixtures of `crates/shap-onnx/fixtures/gen_onnx_fixtures.py`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{on_a_terminal, onnx_fixture as fixture, shap_cli, text};
use shap_explain::Explanation;
use shap_explain::npz::read_npz;
use shap_io::npy::NpyArray;

const MEAN: &str = "0.485,0.456,0.406";
const STD: &str = "0.229,0.224,0.225";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn get(arrays: &[(String, NpyArray)], key: &str) -> Vec<f64> {
    arrays
        .iter()
        .find(|(n, _)| n == key)
        .unwrap()
        .1
        .to_f64()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn fails_with(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `e` equals shap's reference within 1e-5 of its largest value, with the same classes.
fn assert_matches_reference(e: &Explanation, reference: &str) {
    let r = read_npz(Path::new(&fixture(reference))).unwrap();
    let want = get(&r, "values");
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let d = max_abs_diff(&e.values, &want);
    assert!(
        d <= 1e-5 * scale,
        "{reference}: values differ by {d} (largest {scale})"
    );
    let ix: Vec<usize> = get(&r, "output_indices")
        .iter()
        .map(|&v| v as usize)
        .collect();
    assert_eq!(e.output_indices, ix, "{reference}");
    assert!(max_abs_diff(&e.base_values, &get(&r, "base_values")) < 1e-5);
}

#[test]
fn rgb_model_on_image_files_equals_shap_with_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let (npz, json, fig) = (
        dir.path().join("e.npz"),
        dir.path().join("e.json"),
        dir.path().join("e.png"),
    );
    let images: Vec<String> = (0..3)
        .map(|i| fixture(&format!("images/rgb_{i}.png")))
        .collect();
    let out = shap_cli(&[
        "explain",
        "--model",
        &fixture("rgb_nchw.onnx"),
        "--image",
        &images[0],
        "--image",
        &images[1],
        "--image",
        &images[2],
        "--mean",
        MEAN,
        "--std",
        STD,
        "--labels",
        &fixture("labels_rgb.txt"),
        "--masker",
        "blur(8,8)",
        "--max-evals",
        "300",
        "--top-k",
        "3",
        "--shap-compat",
        "--npz",
        s(&npz),
        "--json",
        s(&json),
        "--plot",
        s(&fig),
    ]);
    ok(&out);
    let e = Explanation::load_npz(&npz).unwrap();
    assert_eq!(
        (e.shape.height, e.shape.width, e.shape.channels),
        (24, 32, 3)
    );
    assert_matches_reference(&e, "ref_rgb_blur.npz");
    // The labels name the outputs in the npz, the JSON and the printout.
    let labels: Vec<String> = std::fs::read_to_string(fixture("labels_rgb.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for (i, names) in e.output_names.iter().enumerate() {
        let want: Vec<String> = e.output_indices[i * 3..(i + 1) * 3]
            .iter()
            .map(|&c| labels[c].clone())
            .collect();
        assert_eq!(names, &want);
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["settings"]["evaluation"], "onnx");
    assert_eq!(
        v["images"][0]["class_names"][0],
        e.output_names[0][0].as_str()
    );
    assert!(text(&out.stdout).contains(&e.output_names[1][0]));
    assert!(std::fs::metadata(&fig).unwrap().len() > 1000);
}

#[test]
fn the_tutorial_through_onnx_equals_shap_and_the_safetensors_path() {
    let dir = tempfile::tempdir().unwrap();
    let run = |model: &str, extra: &[&str], name: &str| {
        let npz = dir.path().join(name);
        let mut args = vec![
            "explain",
            "--model",
            model,
            "--image",
            "",
            "--image",
            "",
            "--npz",
            s(&npz),
            "--quiet",
        ];
        let (a, b) = (fixture("images/grey_0.png"), fixture("images/grey_1.png"));
        let (a, b) = (a.as_str(), b.as_str());
        args[4] = a;
        args[6] = b;
        args.extend_from_slice(extra);
        let out = shap_cli(&args);
        ok(&out);
        Explanation::load_npz(&npz).unwrap()
    };
    let onnx = fixture("tutorial_nhwc.onnx");
    let st = fixture("tutorial.safetensors");
    let tract = ["--onnx-engine", "tract"];
    // shap's numbers, through tract and through the recognised graph on our own kernels.
    let compat = run(&onnx, &["--shap-compat", tract[0], tract[1]], "compat.npz");
    assert_matches_reference(&compat, "ref_tutorial_blur.npz");
    let compat = run(&onnx, &["--shap-compat"], "compat_native.npz");
    assert_matches_reference(&compat, "ref_tutorial_blur.npz");
    // tract against the checkpoint's full and incremental paths.
    let a = run(&onnx, &tract, "onnx.npz");
    let b = run(&st, &["--eval", "full"], "full.npz");
    let c = run(&st, &[], "incremental.npz");
    let scale = a.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for other in [&b, &c] {
        assert_eq!(a.output_indices, other.output_indices);
        let d = max_abs_diff(&a.values, &other.values);
        assert!(
            d <= 1e-5 * scale,
            "ONNX vs safetensors: {d} (largest {scale})"
        );
    }
    // The recognised graph is the checkpoint: the same kernels give the same bits.
    let native = run(&onnx, &[], "native.npz");
    assert_eq!(native.values, c.values);
    let native_full = run(&onnx, &["--eval", "full"], "native_full.npz");
    assert_eq!(native_full.values, b.values);
}

#[test]
fn image_files_of_any_size_are_resized_and_converted() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("e.npz");
    let out = shap_cli(&[
        "explain",
        "--model",
        &fixture("tutorial_nhwc.onnx"),
        "--image",
        &fixture("images/grey_small.png"),
        "--image",
        &fixture("images/rgb_big.jpg"),
        "--max-evals",
        "60",
        "--npz",
        s(&npz),
    ]);
    ok(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains("grey_small.png (20x20) was resized (bilinear)"),
        "{err}"
    );
    assert!(
        err.contains("rgb_big.jpg (96x72) was converted and resized"),
        "{err}"
    );
    let e = Explanation::load_npz(&npz).unwrap();
    assert_eq!(e.num_images, 2);
    assert!(e.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn bad_models_settings_and_images_are_clear_errors_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("e.npz");
    let labels3 = dir.path().join("three.txt");
    std::fs::write(&labels3, "a\nb\nc\n").unwrap();
    let rgb = fixture("rgb_nchw.onnx");
    let img = fixture("images/rgb_0.png");
    let explain = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--model",
            model,
            "--image",
            &img,
            "--npz",
            s(&npz),
        ];
        args.extend_from_slice(extra);
        shap_cli(&args)
    };
    let cases: Vec<(Output, &str)> = vec![
        (
            explain(&fixture("bad/not_onnx.onnx"), &[]),
            "not a readable ONNX model",
        ),
        (
            explain(&fixture("bad/truncated.onnx"), &[]),
            "not a readable ONNX model",
        ),
        (
            explain(&fixture("bad/two_inputs.onnx"), &[]),
            "has 2 inputs",
        ),
        (
            explain(&fixture("bad/vector_input.onnx"), &[]),
            "expected a batch of images",
        ),
        (
            explain(&fixture("bad/unsupported_op.onnx"), &[]),
            "Frobnicate",
        ),
        (
            explain(
                &fixture("bad/flatten_axis.onnx"),
                &["--onnx-engine", "tract"],
            ),
            "tract failed internally",
        ),
        (
            explain(&fixture("labels_rgb.txt"), &[]),
            "must be a .safetensors checkpoint",
        ),
        (explain(&rgb, &["--mean", "0.5,0.5"]), "mean has 2 values"),
        (explain(&rgb, &["--std", "0"]), "std 0 must be"),
        (
            explain(&rgb, &["--labels", s(&labels3)]),
            "3 label line(s) for a model with 5 outputs",
        ),
        (
            explain(&rgb, &["--output", "logits"]),
            "--head is for tutorial checkpoints",
        ),
        (
            explain(&rgb, &["--eval", "incremental"]),
            "--eval incremental",
        ),
        (
            explain(&rgb, &["--input-layout", "nhwc"]),
            "expected a batch of images",
        ),
        (
            explain(&rgb, &["--top-k", "6"]),
            "the model has only 5 outputs",
        ),
        (
            explain(&fixture("tutorial.safetensors"), &["--softmax"]),
            "are for ONNX models",
        ),
        // Explainer settings, refused by ExplainerConfig::check before any image is explained.
        (
            explain(&rgb, &["--shap-compat", "--seed", "4294967296"]),
            "seed 4294967296 does not fit in 32 bits",
        ),
        (
            explain(&rgb, &["--algorithm", "permutation", "--max-evals", "2"]),
            "max_evals = 2 is too small for permutation: at least 3 needed",
        ),
    ];
    for (out, needle) in &cases {
        fails_with(out, needle);
    }
    // Nothing written: no file, and no journal (the budget refusal comes from the first chunk,
    // after the journal was opened; a run that saved no chunk removes it).
    assert!(!npz.exists());
    assert!(!dir.path().join("e.npz.parts").exists());
    // A configuration error is printed once, not again as its own cause.
    assert_eq!(
        text(&cases[cases.len() - 2].0.stderr)
            .matches("32 bits")
            .count(),
        1
    );
}

#[test]
fn images_an_onnx_model_cannot_take_are_clear_errors_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("e.npz");
    let not_image = dir.path().join("not_image.png");
    std::fs::write(&not_image, "not a picture").unwrap();
    let rgb = fixture("rgb_nchw.onnx");
    let out = shap_cli(&[
        "explain",
        "--model",
        &rgb,
        "--image",
        s(&not_image),
        "--npz",
        s(&npz),
    ]);
    fails_with(&out, "cannot decode image");
    let out = shap_cli(&[
        "explain",
        "--model",
        &rgb,
        "--indices",
        "0",
        "--npz",
        s(&npz),
    ]);
    fails_with(&out, "explain image files with --image");
    assert!(!npz.exists(), "a failed run wrote its output");
}

#[test]
fn a_progress_bar_on_a_terminal_only_and_never_with_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("e.npz");
    let (model, img) = (fixture("rgb_nchw.onnx"), fixture("images/rgb_0.png"));
    let args = [
        "explain",
        "--model",
        &model,
        "--image",
        &img,
        "--image",
        &img,
        "--top-k",
        "2",
        "--npz",
        s(&npz),
    ];
    let shown = on_a_terminal(&args);
    assert!(shown.contains("2/2 images"), "{shown}");
    assert!(shown.contains("evaluations/s"), "{shown}");
    // Each run computes again (a finished --npz would be reported complete, not recomputed).
    std::fs::remove_file(&npz).unwrap();
    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    let shown = on_a_terminal(&quiet);
    assert!(!shown.contains("images"), "{shown}");
    // Off a terminal (the pipes of this test): no bar.
    std::fs::remove_file(&npz).unwrap();
    let out = shap_cli(&args);
    ok(&out);
    assert!(
        !text(&out.stderr).contains("images"),
        "{}",
        text(&out.stderr)
    );
}
