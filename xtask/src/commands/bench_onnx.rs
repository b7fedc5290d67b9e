//! The ONNX rows of `cargo xtask bench`: `shap-cli explain --model M.onnx` beside shap 0.51 +
//! onnxruntime on the same file and images, in the same run. The tutorial's graph runs twice:
//! recognised on our own kernels (the CLI default) and through tract.
//!
//! Both sides: 4 images, Partition, 500 evaluations, top 5 (top 3 of the RGB model's 5
//! classes), shap's batch of 10 masks, 2 threads (rayon / onnxruntime intra-op), one warm-up
//! explanation, then the median of 3 timed explanations. The Rust time is the CLI's own
//! `total_seconds` (the explanation, without loading); the Python time is the explainer call.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::commands::bench_common::{REPEATS, THREADS, median};
use crate::sh;

/// One ONNX model of the bench.
struct Case {
    name: &'static str,
    file: &'static str,
    layout: &'static str,
    images: [&'static str; 4],
    masker: &'static str,
    top_k: &'static str,
    norm: Option<(&'static str, &'static str)>,
    /// `--onnx-engine`: `auto` runs the recognised tutorial graph on our own kernels.
    engine: &'static str,
}

const CASES: [Case; 3] = [
    Case {
        name: "tutorial CNN, NHWC, recognised (CLI default)",
        file: "tutorial_nhwc.onnx",
        layout: "nhwc",
        images: ["grey_0.png", "grey_1.png", "grey_0.png", "grey_1.png"],
        masker: "blur(28,28)",
        top_k: "5",
        norm: None,
        engine: "auto",
    },
    Case {
        name: "tutorial CNN, NHWC, --onnx-engine tract",
        file: "tutorial_nhwc.onnx",
        layout: "nhwc",
        images: ["grey_0.png", "grey_1.png", "grey_0.png", "grey_1.png"],
        masker: "blur(28,28)",
        top_k: "5",
        norm: None,
        engine: "tract",
    },
    Case {
        name: "RGB CNN 24x32, NCHW",
        file: "rgb_nchw.onnx",
        layout: "nchw",
        images: ["rgb_0.png", "rgb_1.png", "rgb_2.png", "rgb_0.png"],
        masker: "blur(8,8)",
        top_k: "3",
        norm: Some(("0.485,0.456,0.406", "0.229,0.224,0.225")),
        engine: "auto",
    },
];

fn fixtures() -> PathBuf {
    sh::repo_root().join("crates/shap-onnx/fixtures")
}

/// Table rows for every case: the Rust time, and beside it shap + onnxruntime's when `python`
/// is given.
pub fn rows(python: Option<&str>) -> Result<Vec<Value>> {
    let cli = sh::build_cli(&[])?;
    let mut rows = Vec::new();
    for case in &CASES {
        eprintln!("==> ONNX: {} ({})", case.name, case.file);
        let rust = median(&rust_times(&cli, case)?);
        let reference = match python.map(|p| python_time(p, case)) {
            Some(Ok(t)) => format!(
                "shap 0.51 + onnxruntime, same run: {t:.3} s ({:.1}x)",
                t / rust
            ),
            Some(Err(e)) => format!("shap + onnxruntime failed: {e:#}"),
            None => "no Python side".into(),
        };
        rows.push(json!({
            "group": "onnx",
            "name": format!(
                "{}: partition, {}, 4 images, 500 evals, top-{}, {THREADS} threads",
                case.name, case.masker, case.top_k
            ),
            "value": rust,
            "unit": "s",
            "reference": reference,
            "note": format!("shap-cli explain, median of {REPEATS} after a warm-up"),
        }));
    }
    Ok(rows)
}

/// `shap-cli explain` on the case: one warm-up, then [`REPEATS`] timed runs (seconds each).
fn rust_times(cli: &Path, case: &Case) -> Result<Vec<f64>> {
    let dir = sh::target_dir().join("bench/onnx");
    std::fs::create_dir_all(&dir)?;
    let json = dir.join("explain.json");
    let mut times = Vec::new();
    for run in 0..=REPEATS {
        let mut c = Command::new(cli);
        c.env("RAYON_NUM_THREADS", THREADS)
            .arg("explain")
            .arg("--model")
            .arg(fixtures().join(case.file));
        for img in case.images {
            c.arg("--image").arg(fixtures().join("images").join(img));
        }
        c.args([
            "--masker",
            case.masker,
            "--max-evals",
            "500",
            "--top-k",
            case.top_k,
        ]);
        c.args(["--onnx-engine", case.engine]);
        if let Some((mean, std)) = case.norm {
            c.args(["--mean", mean, "--std", std]);
        }
        c.arg("--quiet").arg("--json").arg(&json);
        sh::run(&mut c)?;
        let v: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
        let t = v["total_seconds"]
            .as_f64()
            .context("total_seconds missing from the CLI's JSON")?;
        if run > 0 {
            times.push(t);
        }
    }
    Ok(times)
}

/// shap + onnxruntime on the case (`benches/python/shap_onnx_reference.py`): median seconds.
fn python_time(python: &str, case: &Case) -> Result<f64> {
    let script = sh::repo_root().join("benches/python/shap_onnx_reference.py");
    let mut c = Command::new(python);
    c.arg(script)
        .arg("--model")
        .arg(fixtures().join(case.file))
        .args(["--layout", case.layout, "--images"]);
    for img in case.images {
        c.arg(fixtures().join("images").join(img));
    }
    c.args([
        "--masker",
        case.masker,
        "--max-evals",
        "500",
        "--top-k",
        case.top_k,
    ])
    .args(["--repeats", &REPEATS.to_string(), "--threads", THREADS]);
    if let Some((mean, std)) = case.norm {
        c.args(["--mean", mean, "--std", std]);
    }
    let out = sh::output(&mut c)?;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .context("parsing shap_onnx_reference.py's output")?;
    v["median_s"]
        .as_f64()
        .context("median_s missing from shap_onnx_reference.py's output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn every_case_names_existing_fixtures() {
        for case in &CASES {
            assert!(fixtures().join(case.file).is_file(), "{}", case.file);
            for img in case.images {
                assert!(fixtures().join("images").join(img).is_file(), "{img}");
            }
        }
    }
}
