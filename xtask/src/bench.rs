//! `cargo xtask bench`: one table of measured speeds beside the reference figures.
//!
//! Runs the facade's `bench_table` example (data loading, training epoch, forward throughput,
//! maskers, explanations vs pure model time) and, when a Python with `shap` is available,
//! `benches/python/shap_reference.py`: shap 0.51 explaining the same network (in NumPy) on the
//! same images, so the Rust and Python explanation times come from one run on one machine.
//! Criterion benches (`cargo bench`) give the statistically careful per-function figures.

use crate::sh;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Flags of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// A shorter, rougher pass (training measured on 10,000 images and extrapolated).
    #[arg(long)]
    quick: bool,
    /// Python interpreter with `shap` installed for the side-by-side reference
    /// [default: $SHAP_PYTHON, else python3]; `--python none` skips it.
    #[arg(long)]
    python: Option<String>,
}

/// Print the benchmark table.
pub fn run(args: Args) -> Result<()> {
    eprintln!("==> building and running the measurements (release)...");
    let mut c = sh::cargo();
    c.args([
        "run",
        "--quiet",
        "--release",
        "--example",
        "bench_table",
        "--",
    ]);
    if args.quick {
        c.arg("--quick");
    }
    let text = sh::output(&mut c)?;
    let mut rows: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("parsing bench_table output")?;

    let python = args
        .python
        .or_else(|| std::env::var("SHAP_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    if python != "none" {
        match python_reference(&python) {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => eprintln!("(Python shap reference skipped: {e:#})"),
        }
    }
    print_table(&rows);
    Ok(())
}

fn python_reference(python: &str) -> Result<Vec<Value>> {
    let ok = Command::new(python)
        .args(["-c", "import shap, cv2"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        anyhow::bail!(
            "`{python}` cannot import shap and cv2 (pip install shap opencv-python-headless, or --python PATH)"
        );
    }
    let data_dir = std::env::var("FASHION_MNIST_DIR")
        .unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into());
    // A checkpoint: the reproduction's if there is one, else a quickly trained one.
    let trained = sh::target_dir().join("reproduce/keras/model.safetensors");
    let model = if trained.is_file() {
        trained
    } else {
        let cli = sh::build_cli(&[])?;
        let p: PathBuf = sh::target_dir().join("bench/model.safetensors");
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        sh::run(
            Command::new(cli)
                .args([
                    "train", "--limit", "2000", "--epochs", "1", "--quiet", "--out",
                ])
                .arg(&p),
        )?;
        p
    };
    eprintln!("==> Python shap reference on {}", model.display());
    let script = sh::repo_root().join("benches/python/shap_reference.py");
    let out = sh::output(Command::new(python).arg(script).arg(&model).arg(&data_dir))?;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .context("parsing the Python reference output")?;
    let version = v
        .get("shap_version")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let mut rows = Vec::new();
    for spec in ["blur(28,28)", "inpaint_telea"] {
        if let Some(s) = v
            .get(spec)
            .and_then(|x| x.get("seconds"))
            .and_then(Value::as_f64)
        {
            rows.push(serde_json::json!({
                "group": "python", "name": format!("shap {version} partition, {spec}, 4 images, 500 evals, top-5"),
                "value": s, "unit": "s", "reference": "same call, NumPy model",
                "note": "compare with the Rust explain rows above",
            }));
        }
    }
    if let Some(s) = v.get("model_only_seconds_batch50").and_then(Value::as_f64) {
        rows.push(serde_json::json!({
            "group": "python", "name": "NumPy model alone, 2,000 rows in batches of 50",
            "value": s, "unit": "s", "reference": "", "note": "the Python side's pure model time",
        }));
    }
    Ok(rows)
}

fn print_table(rows: &[Value]) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let value = r.get("value").and_then(Value::as_f64).unwrap_or(f64::NAN);
            let shown = if value.abs() >= 100.0 {
                format!("{value:.0}")
            } else if value.abs() >= 1.0 {
                format!("{value:.2}")
            } else {
                format!("{value:.3}")
            };
            [
                s(r, "group"),
                s(r, "name"),
                format!("{shown} {}", s(r, "unit")),
                s(r, "reference"),
                s(r, "note"),
            ]
        })
        .collect();
    let headers = ["group", "measurement", "value", "reference", "note"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: &[String]| {
        c.iter()
            .zip(&widths)
            .map(|(x, w)| format!("{x:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&headers.map(String::from)));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    for c in &cells {
        println!("{}", line(c));
    }
}
