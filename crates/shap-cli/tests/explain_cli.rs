//! `shap-cli explain` and `shap-cli plot` run as real processes, plus their error paths.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

mod common;
use common::{shap_cli, text};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A checkpoint from an untrained, seeded network (no dataset needed).
fn untrained_model(dir: &Path) -> std::path::PathBuf {
    let cnn =
        shap_model::Cnn::seeded(3, shap_model::Head::Softmax, &candle_core::Device::Cpu).unwrap();
    let path = dir.join("m.safetensors");
    shap_model::save(&cnn, &shap_model::CheckpointMeta::default(), &path).unwrap();
    path
}

/// A 28x28 grey PNG with a bright square.
fn png(dir: &Path, name: &str, side: u32) -> std::path::PathBuf {
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        image::Luma([if (8..20).contains(&x) && (6..22).contains(&y) {
            230
        } else {
            10
        }])
    });
    let p = dir.join(name);
    img.save(&p).unwrap();
    p
}

fn assert_clean_failure(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure");
    let err = text(&out.stderr);
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "no panic text: {err}");
}

#[test]
fn explain_png_with_both_explainers_then_plot() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let img = png(dir.path(), "x.png", 28);
    let (npz, json, fig) = (
        dir.path().join("e.npz"),
        dir.path().join("e.json"),
        dir.path().join("e.png"),
    );
    let out = shap_cli(&[
        "explain",
        "--model",
        s(&model),
        "--image",
        s(&img),
        "--image",
        s(&img),
        "--masker",
        "inpaint_ns",
        "--max-evals",
        "120",
        "--top-k",
        "3",
        "--npz",
        s(&npz),
        "--json",
        s(&json),
        "--plot",
        s(&fig),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("x.png") && stdout.contains("evals  err "),
        "{stdout}"
    );

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["algorithm"], "partition");
    assert_eq!(v["settings"]["masker"], "inpaint_ns");
    let rows = v["images"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["classes"].as_array().unwrap().len(), 3);
        // The first explained class is the predicted one (top-k of f(x); this masker keeps x).
        assert_eq!(r["classes"][0], r["predicted"]);
        assert!(r["evals"].as_u64().unwrap() <= 120);
        assert!(r["efficiency_error"].as_f64().unwrap() <= 1e-5);
        assert!(r["true_name"].is_null());
    }
    let e = shap_explain::Explanation::load_npz(&npz).unwrap();
    assert_eq!((e.num_images, e.num_outputs), (2, 3));
    assert!(std::fs::metadata(&fig).unwrap().len() > 1000);

    // Permutation with explicit classes: one pass is 2*784+1 evaluations.
    let out = shap_cli(&[
        "explain",
        "--model",
        s(&model),
        "--image",
        s(&img),
        "--algorithm",
        "permutation",
        "--max-evals",
        "1600",
        "--classes",
        "4,2",
        "--json",
        s(&json),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "--quiet prints nothing");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["images"][0]["classes"], serde_json::json!([4, 2]));
    assert_eq!(
        v["images"][0]["class_names"],
        serde_json::json!(["Coat", "Pullover"])
    );
    assert_eq!(v["images"][0]["evals"], 1569);

    // Re-plot the saved explanation with a per-row scale and with a fixed scale.
    for extra in [vec!["--per-row-scale"], vec!["--vmax", "0.01"]] {
        let fig2 = dir.path().join("again.png");
        let _ = std::fs::remove_file(&fig2);
        let mut args = vec!["plot", "--npz", s(&npz), "--out", s(&fig2)];
        args.extend(extra);
        let out = shap_cli(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(std::fs::metadata(&fig2).unwrap().len() > 1000);
    }
}

#[test]
fn incremental_and_full_evaluation_agree_and_auto_picks_incremental_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let img = png(dir.path(), "x.png", 28);
    let run = |extra: &[&str], name: &str| {
        let (npz, json) = (
            dir.path().join(format!("{name}.npz")),
            dir.path().join(format!("{name}.json")),
        );
        let mut args = vec![
            "explain",
            "--model",
            s(&model),
            "--image",
            s(&img),
            "--max-evals",
            "200",
            "--npz",
            s(&npz),
            "--json",
            s(&json),
        ];
        args.extend(extra);
        let out = shap_cli(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (
            shap_explain::Explanation::load_npz(&npz).unwrap(),
            v,
            text(&out.stdout),
        )
    };
    let (full, vf, _) = run(&["--eval", "full"], "full");
    let (inc, vi, stdout) = run(&[], "auto");
    assert_eq!(vf["settings"]["evaluation"], "full");
    assert!(vf["settings"]["incremental_work_fraction"].is_null());
    assert_eq!(vi["settings"]["evaluation"], "incremental");
    // Settings are typed in the JSON: numbers as numbers, booleans as booleans.
    let work = vi["settings"]["incremental_work_fraction"]
        .as_f64()
        .unwrap();
    assert_eq!(vi["settings"]["seed"], 42);
    assert_eq!(vi["settings"]["shap_compat"], false);
    assert!(work > 0.0 && work < 0.6, "{work}");
    assert!(stdout.contains("incremental:"), "{stdout}");
    // Asking for it by name is the same path: bit-identical values.
    let (named, vn, _) = run(&["--eval", "incremental"], "named");
    assert_eq!(vn["settings"]["evaluation"], "incremental");
    assert_eq!(named.values, inc.values);
    // Same classes; values equal to float rounding (the two paths sum in different orders).
    assert_eq!(full.output_indices, inc.output_indices);
    let scale = full.values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let diff = full
        .values
        .iter()
        .zip(&inc.values)
        .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
    assert!(scale > 0.0 && diff <= 1e-4 * scale, "{diff} vs {scale}");
}

#[test]
fn explain_errors_are_clean() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let img = png(dir.path(), "x.png", 28);
    let big = png(dir.path(), "big.png", 32);
    let m = s(&model);

    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--masker",
            "blur(0,28)",
        ]),
        "blur(0,28)",
    );
    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--masker",
            "inpaint",
        ]),
        "inpaint",
    );
    // Images of another size are resized to the model's input, with a note.
    let out = shap_cli(&["explain", "--model", m, "--image", s(&big), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("(32x32) was resized (bilinear)"),
        "{}",
        text(&out.stderr)
    );
    assert_clean_failure(
        &shap_cli(&["explain", "--model", m, "--image", s(&img), "--top-k", "11"]),
        "11",
    );
    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--eval",
            "incremental",
            "--device",
            "cuda",
        ]),
        "--eval incremental runs on the CPU",
    );
    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--classes",
            "10",
        ]),
        "10",
    );
    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--algorithm",
            "permutation",
            "--max-evals",
            "1000",
        ]),
        "1000",
    );
    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--max-evals",
            "1",
        ]),
        "max_evals",
    );
    let missing = dir.path().join("nope.safetensors");
    assert_clean_failure(
        &shap_cli(&["explain", "--model", s(&missing), "--image", s(&img)]),
        "nope.safetensors",
    );

    // An unwritable output leaves no file (and no temporary file) behind.
    let ro = dir.path().join("no-such-dir").join("e.npz");
    assert_clean_failure(
        &shap_cli(&[
            "explain",
            "--model",
            m,
            "--image",
            s(&img),
            "--max-evals",
            "50",
            "--npz",
            s(&ro),
        ]),
        "e.npz",
    );
    assert!(!ro.exists());
}

#[test]
fn plot_errors_are_clean() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let img = png(dir.path(), "x.png", 28);
    let m = s(&model);
    let missing = dir.path().join("nope.safetensors");
    // plot: missing or garbage npz, bad --vmax.
    assert_clean_failure(
        &shap_cli(&[
            "plot",
            "--npz",
            s(&missing),
            "--out",
            s(&dir.path().join("f.png")),
        ]),
        "nope.safetensors",
    );
    let garbage = dir.path().join("g.npz");
    std::fs::write(&garbage, b"not a zip").unwrap();
    assert_clean_failure(
        &shap_cli(&[
            "plot",
            "--npz",
            s(&garbage),
            "--out",
            s(&dir.path().join("f.png")),
        ]),
        "g.npz",
    );
    assert!(!dir.path().join("f.png").exists());
    let out = shap_cli(&[
        "explain",
        "--model",
        m,
        "--image",
        s(&img),
        "--max-evals",
        "50",
        "--npz",
        s(&dir.path().join("ok.npz")),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_clean_failure(
        &shap_cli(&[
            "plot",
            "--npz",
            s(&dir.path().join("ok.npz")),
            "--out",
            s(&dir.path().join("f.png")),
            "--vmax",
            "-1",
        ]),
        "--vmax",
    );
}

/// `--shap-compat` inpainting explains f(trunc(x)), not f(x): the printout says so, and only then.
#[test]
fn shap_compat_inpainting_says_it_explains_the_truncated_image() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let img = png(dir.path(), "x.png", 28);
    let run = |masker: &str, compat: bool| {
        let mut args = vec![
            "explain",
            "--model",
            s(&model),
            "--image",
            s(&img),
            "--masker",
            masker,
            "--max-evals",
            "60",
        ];
        if compat {
            args.push("--shap-compat");
        }
        let out = shap_cli(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let note = "explains f(trunc(x))";
    assert!(run("inpaint_telea", true).contains(note));
    assert!(run("inpaint_ns", true).contains(note));
    assert!(!run("inpaint_telea", false).contains(note));
    assert!(!run("blur(28,28)", true).contains(note));
}

#[test]
fn per_image_lines_fit_100_characters_and_counts_agree_in_number() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    // A long file name and long class names: the line cuts them, never runs past 100.
    let img = png(
        dir.path(),
        &format!("{}.png", "a-very-long-image-name".repeat(4)),
        28,
    );
    let labels = dir.path().join("labels.txt");
    let names: Vec<String> = (0..10)
        .map(|i| format!("class-with-a-long-name-{i}"))
        .collect();
    std::fs::write(&labels, names.join("\n")).unwrap();
    let args = [
        "explain",
        "-m",
        s(&model),
        "--image",
        s(&img),
        "--labels",
        s(&labels),
        "--all-classes",
        "--max-evals",
        "100",
    ];
    let out = shap_cli(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} characters: {line}",
            line.chars().count()
        );
    }
    assert!(stdout.contains("for 1 image ("), "{stdout}");
    assert!(
        stdout.contains('…') && stdout.contains("evals  err "),
        "{stdout}"
    );
    // -q is --quiet: nothing printed at all.
    let quiet = shap_cli(&[&args[..], &["-q"]].concat());
    assert!(quiet.status.success());
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{}",
        text(&quiet.stderr)
    );
}
