//! The TF-Keras rows of `cargo xtask bench`: one training epoch and forward throughput at
//! batch 512, ours beside TF-Keras's, measured alternately in one run.
//!
//! Each round runs the root package's `epoch_time` example (one epoch of all 60,000 training
//! images, 10,000 with `--quick`; batch 256; then 10 forward calls of 512 images) and then
//! `benches/python/keras_train_time.py` (the tutorial's Keras network: two epochs on the same
//! images, the second timed, then `model.predict` on 5,120 test images at batch 512, median of
//! 3 after a warm-up call), both on [`THREADS`] threads. Alternating the two keeps a shared
//! machine's drift on both sides; the rows give the medians over [`REPEATS`] rounds (one with
//! `--quick`) and their ratios.

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::commands::bench_common::median;
use crate::commands::bench_common::{REPEATS, THREADS};
use crate::sh;

/// One round's figures.
struct Round {
    /// Wall-clock seconds of the epoch.
    epoch: f64,
    /// CPU seconds the process used during the epoch (all threads).
    epoch_cpu: f64,
    /// Batch-512 forward images per second.
    forward: f64,
}

/// The rows, or none when `python` is not given or cannot import TensorFlow.
pub fn rows(python: Option<&str>, quick: bool) -> Result<Vec<Value>> {
    let Some(python) =
        python.filter(|p| crate::commands::bench_common::python_imports(p, "tensorflow"))
    else {
        return Ok(Vec::new());
    };
    let (images, rounds) = if quick {
        (10_000, 1)
    } else {
        (60_000, REPEATS)
    };
    sh::run(
        sh::cargo()
            .args(["build", "--quiet", "--release", "-p", "shap-toolkit"])
            .args(["--example", "epoch_time"]),
    )?;
    let (mut ours, mut keras) = (Vec::new(), Vec::new());
    let mut versions = String::new();
    for round in 1..=rounds {
        eprintln!(
            "==> training epoch and forward, round {round}/{rounds}: Rust, then TF-Keras ({})",
            crate::commands::bench_common::load_average()
        );
        ours.push(rust_round(images)?);
        let (k, v) = keras_round(python, images)?;
        keras.push(k);
        versions = v;
    }
    let med = |v: &[Round], f: fn(&Round) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let (our_epoch, keras_epoch) = (med(&ours, |r| r.epoch), med(&keras, |r| r.epoch));
    let (our_cpu, keras_cpu) = (med(&ours, |r| r.epoch_cpu), med(&keras, |r| r.epoch_cpu));
    let (our_fwd, keras_fwd) = (med(&ours, |r| r.forward), med(&keras, |r| r.forward));
    let how = format!(
        "alternating with {versions}, median of {rounds} round(s); {images} images, batch 256, \
         {THREADS} threads"
    );
    Ok(vec![
        json!({
            "group": "keras", "name": "training epoch: TF-Keras (second of two epochs) / Rust",
            "value": keras_epoch / our_epoch, "unit": "x",
            "reference": "goal >= 1.25x (aim 1.5x)",
            "note": format!("Rust {our_epoch:.1} s, TF-Keras {keras_epoch:.1} s; {how}"),
        }),
        json!({
            "group": "keras", "name": "training epoch, CPU seconds: TF-Keras / Rust",
            "value": keras_cpu / our_cpu, "unit": "x",
            "reference": "less sensitive to other jobs on the machine than wall-clock time",
            "note": format!("Rust {our_cpu:.1} s, TF-Keras {keras_cpu:.1} s of CPU over the epoch"),
        }),
        json!({
            "group": "keras", "name": "forward, batch 512: Rust / Keras model.predict",
            "value": our_fwd / keras_fwd, "unit": "x",
            "reference": "goal > 1x",
            "note": format!(
                "Rust {our_fwd:.0} img/s, Keras {keras_fwd:.0} img/s; 5,120 images in calls of \
                 512 on each side; {how}"
            ),
        }),
    ])
}

/// Our epoch and batch-512 forward (the `epoch_time` example's JSON).
fn rust_round(images: usize) -> Result<Round> {
    let exe = sh::target_dir().join("release/examples/epoch_time");
    let out = sh::output(Command::new(exe).env("RAYON_NUM_THREADS", THREADS).args([
        "--json",
        "--limit",
        &images.to_string(),
    ]))?;
    let v: Value = serde_json::from_str(out.trim()).context("parsing epoch_time's JSON")?;
    let num = |x: &Value, what: &str| x.as_f64().with_context(|| format!("{what} missing"));
    Ok(Round {
        epoch: num(&v["epoch"]["seconds"], "epoch.seconds")?,
        epoch_cpu: num(&v["epoch_cpu_seconds"], "epoch_cpu_seconds")?,
        forward: num(&v["forward_512"]["images_per_second"], "forward_512")?,
    })
}

/// TF-Keras's second epoch and `model.predict` throughput, and its versions.
fn keras_round(python: &str, images: usize) -> Result<(Round, String)> {
    let script = sh::repo_root().join("benches/python/keras_train_time.py");
    let data = shap_data_dir();
    let out = sh::output(Command::new(python).arg(script).arg(data).args([
        "--threads",
        THREADS,
        "--repeats",
        &REPEATS.to_string(),
        "--limit",
        &images.to_string(),
    ]))?;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .context("parsing keras_train_time.py's output")?;
    let num = |x: &Value, what: &str| x.as_f64().with_context(|| format!("{what} missing"));
    let round = Round {
        epoch: num(&v["second_epoch_seconds"], "second_epoch_seconds")?,
        epoch_cpu: num(&v["second_epoch_cpu_seconds"], "second_epoch_cpu_seconds")?,
        forward: num(&v["predict_images_per_second"], "predict_images_per_second")?,
    };
    let versions = v["versions"].as_str().unwrap_or("TF-Keras").to_string();
    Ok((round, versions))
}

/// The Fashion-MNIST folder for the Python side (`FASHION_MNIST_DIR`, else the Debian
/// package's, as for the shap reference).
fn shap_data_dir() -> std::path::PathBuf {
    std::env::var_os("FASHION_MNIST_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into())
}
