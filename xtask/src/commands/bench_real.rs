//! The `real` rows of `cargo xtask bench`: the models users bring (torchvision resnet18 and
//! mobilenet_v3_small, a 4-layer ViT, Keras MobileNetV2 through tf2onnx), explained by
//! `shap-cli explain` with its defaults and with `--shap-compat`, and by the Python package with
//! shap's own model function (when that Python has `shap_toolkit`), beside shap 0.51 +
//! onnxruntime on the same files, images and settings, in the same run.
//!
//! The models are made by `benches/python/export_real_models.py` (the real exporters' default
//! settings, random weights made realistic) into `target/bench/real`, once; no model file is
//! committed. Settings on every side: Partition `blur(128,128)`, 500 evaluations, top 5, two
//! 224x224 photos, ImageNet (or Keras) normalisation, a softmax for the torch models' logits,
//! [`THREADS`] threads, the same onnxruntime library (the Python side's). Rounds alternate the
//! three sides; the first round is an untimed warm-up, the rows show the median of the
//! [`REPEATS`] timed rounds. The compat values are compared with shap's.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::commands::bench_common::median;
use crate::commands::bench_common::{REPEATS, THREADS};
use crate::sh;

/// One model of the manifest, with what both sides need.
struct Model {
    name: String,
    file: PathBuf,
    layout: String,
    mean: String,
    std: String,
    softmax: bool,
}

/// The photos explained (two of the four the export writes).
const IMAGES: [&str; 2] = ["images/astronaut.png", "images/chelsea.png"];
const MASKER: &str = "blur(128,128)";

fn dir() -> PathBuf {
    sh::target_dir().join("bench/real")
}

/// Table rows for every model, or an explanation of why there are none.
pub fn rows(python: Option<&str>, quick: bool) -> Result<Vec<Value>> {
    let Some(python) = python else {
        eprintln!("(real-model rows skipped: they need a Python with shap and onnxruntime)");
        return Ok(Vec::new());
    };
    let models = match models(python) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("(real-model rows skipped: {e:#})");
            return Ok(Vec::new());
        }
    };
    let lib = onnxruntime_library(python)?;
    let cli = sh::build_cli(&[])?;
    let mut rows = Vec::new();
    for m in &models {
        eprintln!("==> real model {}", m.name);
        rows.extend(model_rows(&cli, python, &lib, m, quick)?);
    }
    Ok(rows)
}

/// The three sides of one model, alternating round by round, and its table rows.
fn model_rows(cli: &Path, python: &str, lib: &Path, m: &Model, quick: bool) -> Result<Vec<Value>> {
    let (mut ours, mut compat, mut shap) = (Vec::new(), Vec::new(), Vec::new());
    let mut package = Vec::new();
    let mut in_model = Vec::new();
    let rounds = if quick { 1 } else { REPEATS + 1 };
    let out = dir().join("runs");
    std::fs::create_dir_all(&out)?;
    let shap_npz = out.join(format!("{}-shap.npz", m.name));
    let compat_npz = out.join(format!("{}-compat.npz", m.name));
    for round in 0..rounds {
        eprintln!(
            "    round {round}: {}",
            crate::commands::bench_common::load_average()
        );
        let timed = quick || round > 0;
        let t = cli_time(cli, lib, m, false, None)?;
        let tc = cli_time(
            cli,
            lib,
            m,
            true,
            (round == 0).then_some(compat_npz.as_path()),
        )?;
        let (tp, fraction) = python_time(python, m, (round == 0).then_some(shap_npz.as_path()))?;
        let tk = package_time(python, m);
        eprintln!("    round {round}: ours {t:.2} s, --shap-compat {tc:.2} s, shap {tp:.2} s");
        if timed {
            ours.push(t);
            compat.push(tc);
            shap.push(tp);
            in_model.push(fraction);
            package.extend(tk);
        }
    }
    let (o, c, s) = (median(&ours), median(&compat), median(&shap));
    let values = compare(python, &compat_npz, &shap_npz)?;
    let name = |what: &str| {
        format!(
            "{} ({}), {what}: partition, {MASKER}, 2 images 224x224, 500 evals, top-5, {THREADS} threads",
            m.name, m.layout
        )
    };
    let reference = |t: f64| {
        format!(
            "shap 0.51 + onnxruntime, same run: {s:.2} s ({:.2}x)",
            s / t
        )
    };
    let mut rows = vec![
        json!({
            "group": "real", "name": name("CLI defaults"), "value": o, "unit": "s",
            "reference": reference(o),
            "note": format!(
                "shap-cli explain, median of {} alternating rounds; shap spends {:.0}% of its \
                 time in the model",
                ours.len(),
                100.0 * median(&in_model)
            ),
        }),
        json!({
            "group": "real", "name": name("--shap-compat"), "value": c, "unit": "s",
            "reference": reference(c),
            "note": format!("values against shap's: {values}"),
        }),
    ];
    if !package.is_empty() {
        let p = median(&package);
        rows.push(json!({
            "group": "real", "name": name("Python package, same callable"), "value": p,
            "unit": "s", "reference": reference(p),
            "note": "shap_toolkit.Explainer with the Python function shap calls (onnxruntime in \
                     Python), called from Rust in gathered batches",
        }));
    }
    Ok(rows)
}

/// `benches/python/shap_onnx_reference.py` on the model with this bench's settings (one timed
/// explanation after its own warm-up), for shap or, with `--package`, for shap_toolkit.
fn reference_command(python: &str, m: &Model) -> Command {
    let script = sh::repo_root().join("benches/python/shap_onnx_reference.py");
    let mut c = Command::new(python);
    c.arg(script)
        .arg("--model")
        .arg(&m.file)
        .args(["--layout", &m.layout, "--images"]);
    for img in IMAGES {
        c.arg(dir().join(img));
    }
    c.args(["--mean", &m.mean, "--std", &m.std, "--masker", MASKER])
        .args(["--max-evals", "500", "--top-k", "5", "--repeats", "1"])
        .args(["--threads", THREADS]);
    if m.softmax {
        c.arg("--softmax");
    }
    c
}

/// The Python package on the model with shap's own function (`--package`), when the Python has
/// `shap_toolkit` installed; `None` (with a note) when it does not.
fn package_time(python: &str, m: &Model) -> Option<f64> {
    let mut c = reference_command(python, m);
    c.arg("--package");
    let timed = sh::output(&mut c).ok().and_then(|out| {
        let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).ok()?;
        v["median_s"].as_f64()
    });
    if timed.is_none() {
        eprintln!(
            "    (Python package row skipped: install the shap_toolkit wheel into that Python)"
        );
    }
    timed
}

/// `shap-cli explain` on the model: the explanation's own seconds (`total_seconds`).
fn cli_time(cli: &Path, lib: &Path, m: &Model, compat: bool, npz: Option<&Path>) -> Result<f64> {
    let json = dir().join("runs/explain.json");
    let mut c = Command::new(cli);
    c.env("RAYON_NUM_THREADS", THREADS)
        .arg("explain")
        .arg("--model")
        .arg(&m.file)
        .arg("--onnxruntime")
        .arg(lib);
    for img in IMAGES {
        c.arg("--image").arg(dir().join(img));
    }
    c.args(["--mean", &m.mean, "--std", &m.std, "--masker", MASKER])
        .args(["--max-evals", "500", "--top-k", "5", "--quiet", "--json"])
        .arg(&json);
    if m.softmax {
        c.arg("--softmax");
    }
    if compat {
        c.arg("--shap-compat");
    }
    if let Some(p) = npz {
        let _ = std::fs::remove_file(p);
        c.arg("--npz").arg(p);
    }
    sh::run(&mut c)?;
    let v: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    v["total_seconds"]
        .as_f64()
        .context("total_seconds missing from the CLI's JSON")
}

/// shap + onnxruntime on the model (`benches/python/shap_onnx_reference.py`, one timed
/// explanation after its own warm-up): seconds, and the share of them inside the model.
fn python_time(python: &str, m: &Model, save: Option<&Path>) -> Result<(f64, f64)> {
    let mut c = reference_command(python, m);
    c.args(["--forward-runs", "0"]);
    if let Some(p) = save {
        c.arg("--save-values").arg(p);
    }
    let out = sh::output(&mut c)?;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .context("parsing shap_onnx_reference.py's output")?;
    let t = v["median_s"]
        .as_f64()
        .context("median_s missing from shap_onnx_reference.py's output")?;
    Ok((t, v["model_fraction"].as_f64().unwrap_or(f64::NAN)))
}

/// "max |diff| = ... of the largest ..., same classes" for the compat run against shap's.
fn compare(python: &str, ours: &Path, shap: &Path) -> Result<String> {
    let script = sh::repo_root().join("benches/python/compare_values.py");
    let out = sh::output(Command::new(python).arg(script).arg(ours).arg(shap))?;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))?;
    if let Some(e) = v["error"].as_str() {
        bail!("comparing with shap's values: {e}");
    }
    Ok(format!(
        "max |diff| {:.1e} of the largest ({:.1e}), {} classes",
        v["relative"].as_f64().unwrap_or(f64::NAN),
        v["largest"].as_f64().unwrap_or(f64::NAN),
        if v["same_classes"].as_bool() == Some(true) {
            "same"
        } else {
            "DIFFERENT"
        }
    ))
}

/// The models of `target/bench/real/manifest.json`, exporting them first when it is missing.
fn models(python: &str) -> Result<Vec<Model>> {
    let manifest = dir().join("manifest.json");
    if !manifest.is_file() {
        eprintln!("==> exporting the real models (benches/python/export_real_models.py)");
        let script = sh::repo_root().join("benches/python/export_real_models.py");
        sh::run(Command::new(python).arg(script).arg("--out").arg(dir())).context(
            "exporting the real models needs torch, torchvision, onnxscript, tensorflow-cpu, \
             tf2onnx and scikit-image in that Python",
        )?;
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&manifest)?)?;
    let list = |x: &Value| -> String {
        x.as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    v["models"]
        .as_array()
        .context("manifest.json has no models")?
        .iter()
        .map(|m| {
            Ok(Model {
                name: m["name"].as_str().context("a model without a name")?.into(),
                file: dir().join(m["file"].as_str().context("a model without a file")?),
                layout: m["layout"].as_str().unwrap_or("nchw").into(),
                mean: list(&m["mean"]),
                std: list(&m["std"]),
                softmax: m["output_kind"].as_str() == Some("logits"),
            })
        })
        .collect()
}

/// The onnxruntime library of `python`'s `onnxruntime` package, so both sides run the same one.
fn onnxruntime_library(python: &str) -> Result<PathBuf> {
    let code = "import onnxruntime, os, glob; d = os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'); \
                print(sorted(glob.glob(os.path.join(d, 'libonnxruntime.so*')))[-1])";
    let out = sh::output(Command::new(python).args(["-c", code]))?;
    let p = PathBuf::from(out.trim());
    if !p.is_file() {
        bail!("no onnxruntime library in {python}'s onnxruntime package");
    }
    Ok(p)
}
