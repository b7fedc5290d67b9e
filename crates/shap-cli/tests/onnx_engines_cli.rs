//! `--onnx-engine`, `--onnxruntime`, `--threads` and `--batch-size` from the command line:
//! external data on both engines, what the run says and records about its engine and outputs,
//! and libraries that cannot be used. The onnxruntime half is skipped (saying so) where no
//! library is found, unless `SHAP_TOOLKIT_REQUIRE_ORT` is set.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{onnx_fixture as fixture, s, shap_cli, text};
use shap_explain::Explanation;

const MEAN: &str = "0.485,0.456,0.406";
const STD: &str = "0.229,0.224,0.225";

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Exit 1, `needle` in the error, and no file in `dir`.
fn refused(out: &Output, needle: &str, dir: &Path) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

/// The largest value of `a` and the largest difference between `a` and `b`.
fn scale_and_diff(a: &[f64], b: &[f64]) -> (f64, f64) {
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f64, f64::max);
    (scale, d)
}

/// Whether `--onnx-engine onnxruntime` can run here.
fn ort_available() -> bool {
    let out = shap_cli(&[
        "explain",
        "--model",
        &fixture("rgb_nchw.onnx"),
        "--image",
        &fixture("images/rgb_0.png"),
        "--max-evals",
        "20",
        "--onnx-engine",
        "onnxruntime",
        "--quiet",
    ]);
    if out.status.success() {
        return true;
    }
    assert!(
        std::env::var_os("SHAP_TOOLKIT_REQUIRE_ORT").is_none(),
        "onnxruntime is required here: {}",
        text(&out.stderr)
    );
    eprintln!("skipping the onnxruntime half: {}", text(&out.stderr));
    false
}

/// Explain the RGB fixture's first image with `extra` flags into `npz`.
fn explain_rgb(npz: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "explain",
        "--model",
        "",
        "--image",
        "",
        "--mean",
        MEAN,
        "--std",
        STD,
        "--masker",
        "blur(8,8)",
        "--max-evals",
        "200",
        "--top-k",
        "2",
        "--npz",
        s(npz),
    ];
    let (m, i) = (fixture("rgb_nchw.onnx"), fixture("images/rgb_0.png"));
    args[2] = &m;
    args[4] = &i;
    args.extend_from_slice(extra);
    shap_cli(&args)
}

#[test]
fn torchs_default_export_with_external_data_runs_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut engines = vec!["tract"];
    if ort_available() {
        engines.push("onnxruntime");
    }
    let image = fixture("images/rgb_0.png");
    let mut results = Vec::new();
    for engine in engines {
        let npz = dir.path().join(format!("{engine}.npz"));
        let out = shap_cli(&[
            "explain",
            "--model",
            &fixture("external/small_cnn.onnx"),
            "--image",
            &image,
            "--onnx-engine",
            engine,
            "--max-evals",
            "100",
            "--npz",
            s(&npz),
        ]);
        ok(&out);
        assert!(
            text(&out.stderr).contains(&format!("note: engine {engine}")),
            "{}",
            text(&out.stderr)
        );
        let e = Explanation::load_npz(&npz).unwrap();
        assert!(e.setting("engine").unwrap().starts_with(engine));
        // Logits: the model ends in a Gemm.
        assert_eq!(e.setting("outputs"), Some("logits"));
        results.push(e);
    }
    if let [a, b] = results.as_slice() {
        let (scale, d) = scale_and_diff(&a.values, &b.values);
        assert!(d <= 1e-5 * scale, "tract vs onnxruntime: {d} of {scale}");
        assert_eq!(a.output_indices, b.output_indices);
    }
}

#[test]
fn the_run_names_its_engine_and_what_its_outputs_are() {
    let dir = tempfile::tempdir().unwrap();
    // The torch fixture ends in a Gemm: logits.
    let out = shap_cli(&[
        "explain",
        "--model",
        &fixture("external/small_cnn.onnx"),
        "--image",
        &fixture("images/rgb_0.png"),
        "--onnx-engine",
        "tract",
        "--max-evals",
        "50",
    ]);
    ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("(logits, engine tract"), "{stdout}");
    assert!(stdout.contains(" logit="), "{stdout}");
    assert!(!stdout.contains(" p="), "{stdout}");
    // The RGB fixture ends in a Softmax: probabilities, with or without --softmax.
    let npz = dir.path().join("own.npz");
    let out = explain_rgb(&npz, &["--onnx-engine", "tract"]);
    ok(&out);
    assert!(text(&out.stdout).contains(" p="));
    let e = Explanation::load_npz(&npz).unwrap();
    assert_eq!(e.setting("outputs"), Some("probabilities"));
    let npz = dir.path().join("probs.npz");
    let json = dir.path().join("probs.json");
    let out = explain_rgb(
        &npz,
        &["--onnx-engine", "tract", "--softmax", "--json", s(&json)],
    );
    ok(&out);
    let e = Explanation::load_npz(&npz).unwrap();
    assert_eq!(e.setting("outputs"), Some("probabilities"));
    assert_eq!(e.setting("batch_size"), Some("64"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        v["settings"]["engine"]
            .as_str()
            .unwrap()
            .starts_with("tract ")
    );
    // The batch size is part of the run: another one is another run.
    let out = explain_rgb(
        &npz,
        &["--onnx-engine", "tract", "--softmax", "--batch-size", "7"],
    );
    ok(&out);
    let e = Explanation::load_npz(&npz).unwrap();
    assert_eq!(e.setting("batch_size"), Some("7"));
}

#[test]
fn onnxruntime_and_tract_agree_through_the_cli() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |engine: &str, extra: &[&str]| {
        let npz = dir.path().join(format!("{engine}-{}.npz", extra.len()));
        let mut flags = vec!["--onnx-engine", engine];
        flags.extend_from_slice(extra);
        let out = explain_rgb(&npz, &flags);
        ok(&out);
        (Explanation::load_npz(&npz).unwrap(), text(&out.stderr))
    };
    let (t, _) = run("tract", &[]);
    let (o, note) = run("onnxruntime", &[]);
    assert!(note.contains("note: engine onnxruntime 1."), "{note}");
    assert!(o.setting("engine").unwrap().starts_with("onnxruntime 1."));
    let (scale, d) = scale_and_diff(&t.values, &o.values);
    assert!(d <= 1e-5 * scale, "{d} of {scale}");
    // One thread in all, and any batch size: the same classes, values to rounding.
    let (one, note) = run("onnxruntime", &["--threads", "1", "--batch-size", "5"]);
    assert!(note.contains("1 session(s) x 1 thread(s)"), "{note}");
    assert_eq!(one.output_indices, o.output_indices);
    let (_, d) = scale_and_diff(&one.values, &o.values);
    assert!(d <= 1e-5 * scale, "{d} of {scale}");
}

#[test]
fn libraries_that_cannot_be_used_are_clear_errors_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let npz = out_dir.join("e.npz");
    let not_a_library = dir.path().join("libonnxruntime.so");
    std::fs::write(&not_a_library, b"not a shared library").unwrap();
    // libc is a library, but not onnxruntime.
    let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/libc.so.6"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    let mut bad = vec![
        (dir.path().join("missing.so"), "no such file"),
        (not_a_library, "failed to load"),
    ];
    if let Some(l) = libc {
        bad.push((l.into(), "OrtGetApiBase"));
    }
    for (lib, needle) in bad {
        let out = explain_rgb(
            &npz,
            &["--onnx-engine", "onnxruntime", "--onnxruntime", s(&lib)],
        );
        refused(&out, needle, &out_dir);
        assert!(text(&out.stderr).contains("onnxruntime library"));
        // Under auto: one note, then tract.
        let out = explain_rgb(&npz, &["--onnxruntime", s(&lib)]);
        ok(&out);
        let err = text(&out.stderr);
        assert!(
            err.contains("note: engine tract, as onnxruntime cannot be used"),
            "{err}"
        );
        std::fs::remove_file(&npz).unwrap();
    }
    // tract cannot run on a GPU.
    let out = explain_rgb(&npz, &["--onnx-engine", "tract", "--device", "cuda"]);
    refused(&out, "--onnx-engine tract", &out_dir);
    // Bad thread and batch counts are refused by the parser.
    for flags in [
        ["--threads", "0"],
        ["--batch-size", "0"],
        ["--batch-size", "x"],
    ] {
        let out = explain_rgb(&npz, &flags);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    }
}

#[test]
fn external_data_outside_the_folder_is_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&model_dir).unwrap();
    std::fs::create_dir(&out_dir).unwrap();
    // The fixture's model with its data file moved out and a link left in its place.
    std::fs::copy(
        fixture("external/small_cnn.onnx"),
        model_dir.join("small_cnn.onnx"),
    )
    .unwrap();
    std::fs::copy(
        fixture("external/small_cnn.onnx.data"),
        dir.path().join("small_cnn.onnx.data"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("small_cnn.onnx.data"),
        model_dir.join("small_cnn.onnx.data"),
    )
    .unwrap();
    for engine in ["tract", "onnxruntime", "auto"] {
        let out = shap_cli(&[
            "explain",
            "--model",
            s(&model_dir.join("small_cnn.onnx")),
            "--image",
            &fixture("images/rgb_0.png"),
            "--onnx-engine",
            engine,
            "--npz",
            s(&out_dir.join("e.npz")),
        ]);
        refused(&out, "outside the model's folder", &out_dir);
    }
}

#[test]
fn every_flag_that_changes_the_numbers_is_part_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("e.npz");
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "a\nb\nc\nd\ne\n").unwrap();
    let (model, image) = (
        fixture("external/small_cnn.onnx"),
        fixture("images/rgb_0.png"),
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--model",
            &model,
            "--image",
            &image,
            "--onnx-engine",
            "tract",
            "--max-evals",
            "60",
            "--npz",
            s(&npz),
        ];
        args.extend_from_slice(extra);
        let out = shap_cli(&args);
        ok(&out);
        text(&out.stderr)
    };
    run(&[]);
    assert!(run(&[]).contains("already complete"));
    let changes: [(&[&str], &str, &str); 6] = [
        (&["--softmax"], "softmax", "true"),
        (&["--mean", "0.5"], "mean", "0.5"),
        (&["--std", "0.5"], "std", "0.5"),
        (&["--labels", s(&labels)], "labels_sha256", ""),
        (&["--batch-size", "3"], "batch_size", "3"),
        (&["--input-layout", "nchw"], "input_layout", "nchw"),
    ];
    for (flags, key, want) in changes {
        let err = run(flags);
        if key != "input_layout" {
            // The layout read from the shape is nchw already: the same run.
            assert!(!err.contains("already complete"), "{flags:?}: {err}");
        }
        let e = Explanation::load_npz(&npz).unwrap();
        let got = e.setting(key).unwrap();
        if want.is_empty() {
            assert_ne!(got, "-", "{key}");
        } else {
            assert_eq!(got, want, "{key}");
        }
        // Back to the first run's settings: computed again, not served from the other run.
        assert!(!run(&[]).contains("already complete") || key == "input_layout");
    }
}

#[test]
fn control_characters_in_labels_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.txt");
    // An ANSI sequence that would clear the screen, and a bell, in every name.
    let names: String = (0..5).map(|i| format!("c{i}\x1b[2J\x07\n")).collect();
    std::fs::write(&labels, names).unwrap();
    let npz = dir.path().join("e.npz");
    let out = explain_rgb(&npz, &["--onnx-engine", "tract", "--labels", s(&labels)]);
    ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(stdout.contains("?[2J?"), "{stdout}");
    let e = Explanation::load_npz(&npz).unwrap();
    assert!(
        e.output_names[0]
            .iter()
            .all(|n| !n.chars().any(char::is_control))
    );
}
