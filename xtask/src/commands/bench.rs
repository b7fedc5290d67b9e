//! `cargo xtask bench`: one table of measured speeds beside the reference figures.
//!
//! Runs the facade's `bench_table` example (data loading, training epoch, forward throughput,
//! maskers, explanations vs pure model time) and, when a Python with `shap` is available,
//! `benches/python/shap_reference.py`: shap 0.51 explaining the same network on the same images
//! (through a NumPy port, and through the tutorial's Keras model when TensorFlow is installed),
//! so the Rust and Python explanation times come from one run on one machine. The ONNX rows
//! (`bench_onnx`) put `shap-cli explain --model M.onnx` beside shap + onnxruntime, and the
//! TF-Keras rows (`bench_keras`) a training epoch and batch-512 forward beside TF-Keras's,
//! alternating round by round.
//! Criterion benches (`cargo bench`) give the statistically careful per-function figures.
//!
//! Equal work on both sides of every comparison: the same network, images and explainer
//! settings (Partition: 500 evaluations, shap's default batch of 10, top 5), [`THREADS`] threads
//! set explicitly on every side (rayon; NumPy's BLAS, TensorFlow's intra-op pool and OpenCV;
//! onnxruntime's intra-op pool), and the same statistic: one untimed warm-up run, then the
//! median of [`REPEATS`] timed runs, each with a fresh model state. The table's header prints
//! these settings, the CPU model and its vector extensions.

use crate::sh;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

use crate::commands::bench_common::{REPEATS, THREADS, load_average, python_imports};

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
    /// Which rows: every group, or only the real models against shap + onnxruntime
    /// (`real`: exports them with torch, TensorFlow and tf2onnx the first time).
    #[arg(long, value_enum, default_value = "all")]
    group: Group,
}

/// The groups `--group` chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Group {
    /// Every row.
    All,
    /// The real-model rows only (`bench_real`).
    Real,
}

/// Print the benchmark table.
pub fn run(args: Args) -> Result<()> {
    let python = args
        .python
        .or_else(|| std::env::var("SHAP_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    let python = (python != "none").then_some(python);
    let python_ok = python.as_deref().map(python_has_shap);
    let onnx_python = match (&python, &python_ok) {
        (Some(p), Some(Ok(()))) if python_imports(p, "onnxruntime") => Some(p.as_str()),
        _ => None,
    };
    if args.group == Group::Real {
        let rows = crate::commands::bench_real::rows(onnx_python, args.quick)?;
        for line in machine_header() {
            println!("{line}");
        }
        println!();
        print_table(&rows);
        return Ok(());
    }
    // Rust and Python explain the same trained network when there is a Python side (and the
    // reproduction's network whenever it exists).
    let model = match python_ok {
        Some(Ok(())) => Some(checkpoint()?),
        _ => {
            Some(sh::target_dir().join("reproduce/keras/model.safetensors")).filter(|p| p.is_file())
        }
    };
    eprintln!(
        "==> building and running the measurements (release; {})...",
        load_average()
    );
    let repeats = if args.quick { 1 } else { REPEATS };
    let mut c = sh::cargo();
    c.env("RAYON_NUM_THREADS", THREADS).args([
        "run",
        "--quiet",
        "--release",
        "--example",
        "bench_table",
        "--",
        "--repeats",
        &repeats.to_string(),
    ]);
    if args.quick {
        c.arg("--quick");
    }
    if let Some(m) = &model {
        c.arg("--model").arg(m);
    }
    let text = sh::output(&mut c)?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("parsing bench_table output")?;
    let (settings, mut rows): (Vec<Value>, Vec<Value>) =
        lines.into_iter().partition(|v| v.get("settings").is_some());
    let mut header = machine_header();
    header.extend(
        settings
            .iter()
            .map(|s| settings_line("Rust (examples/bench_table.rs)", &s["settings"])),
    );

    rows.extend(crate::commands::bench_onnx::rows(onnx_python)?);
    rows.extend(crate::commands::bench_real::rows(onnx_python, args.quick)?);
    let cv2_python = match (&python, &python_ok) {
        (Some(p), Some(Ok(()))) => Some(p.as_str()),
        _ => None,
    };
    rows.extend(inpaint_rows(cv2_python)?);
    rows.extend(crate::commands::bench_keras::rows(
        python.as_deref(),
        args.quick,
    )?);
    match (python, python_ok, model) {
        (Some(python), Some(Ok(())), Some(model)) => {
            match python_reference(&python, &model, repeats) {
                Ok((settings, mut r)) => {
                    header.push(settings_line(
                        "Python (benches/python/shap_reference.py)",
                        &settings,
                    ));
                    rows.append(&mut r);
                    let mut s = speedups(&rows);
                    rows.append(&mut s);
                }
                Err(e) => eprintln!("(Python shap reference skipped: {e:#})"),
            }
        }
        (_, Some(Err(e)), _) => eprintln!("(Python shap reference skipped: {e:#})"),
        _ => {}
    }
    for line in &header {
        println!("{line}");
    }
    println!();
    print_table(&rows);
    Ok(())
}

/// The machine: CPU model and the vector extensions that matter to the kernels, from
/// `/proc/cpuinfo`, and the thread count every side runs with.
fn machine_header() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    vec![
        format!("date: {}", today()),
        format!("CPU: {}", cpu_summary(&info)),
        format!(
            "threads: {THREADS} on every side (RAYON_NUM_THREADS; OMP/OpenBLAS/MKL, TensorFlow \
             intra-op (inter-op 1) and OpenCV in Python; onnxruntime intra-op)"
        ),
    ]
}

/// Today's date (UTC) as `date -u +%F` prints it, or "?".
fn today() -> String {
    Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// `model name` and the SIMD flags of the first processor in a `/proc/cpuinfo` text.
fn cpu_summary(cpuinfo: &str) -> String {
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| f.starts_with("avx") || f.starts_with("sse4") || *f == "fma" || *f == "neon")
        .collect();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    format!(
        "{model}, {cores} logical cores; vector extensions: {}",
        if simd.is_empty() {
            "none listed".to_string()
        } else {
            simd.join(" ")
        }
    )
}

/// One header line from a `settings` object: `label: key value; key value...`.
fn settings_line(label: &str, settings: &Value) -> String {
    let parts: Vec<String> = settings
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k} {s}"),
                    other => format!("{k} {other}"),
                })
                .collect()
        })
        .unwrap_or_default();
    format!("{label}: {}", parts.join("; "))
}

/// One inpaint on one thread, ours (`shap-mask`'s `inpaint_profile` example) beside
/// `cv2.inpaint` (`benches/python/cv2_inpaint_time.py`) when `python` is given: the same case
/// and statistic (median of 5 runs of 4,000 calls after a warm-up run), in turn.
fn inpaint_rows(python: Option<&str>) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for method in ["telea", "ns"] {
        eprintln!("==> one inpaint ({method}), ours and cv2's");
        let ours = sh::output(sh::cargo().args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "shap-mask",
            "--example",
            "inpaint_profile",
            "--",
            method,
            "4000",
        ]))?;
        let ours = first_number(&ours).context("parsing inpaint_profile's output")?;
        let reference = match python.map(|p| cv2_inpaint_us(p, method)) {
            Some(Ok(cv2)) => format!(
                "cv2.inpaint, same case and statistic: {cv2:.1} µs ({:.1}x)",
                cv2 / ours
            ),
            Some(Err(e)) => format!("cv2.inpaint failed: {e:#}"),
            None => "no Python side".into(),
        };
        rows.push(serde_json::json!({
            "group": "mask", "name": format!("inpaint_{method}: one 28x28 inpaint, half hidden, one thread"),
            "value": ours, "unit": "µs", "reference": reference,
            "note": "median of 5 runs of 4,000 after a warm-up run (shap-mask example inpaint_profile)",
        }));
    }
    Ok(rows)
}

/// `cv2.inpaint`'s microseconds per call for `method` (`telea` or `ns`).
fn cv2_inpaint_us(python: &str, method: &str) -> Result<f64> {
    let script = sh::repo_root().join("benches/python/cv2_inpaint_time.py");
    let out = sh::output(Command::new(python).arg(script))?;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{method}: ")))
        .and_then(first_number)
        .context("parsing cv2_inpaint_time.py's output")
}

/// The first number after the first `: ` of `text` (`"Telea: 123.4 us ..."` gives 123.4).
fn first_number(text: &str) -> Option<f64> {
    let rest = text.split_once(": ").map_or(text, |(_, r)| r);
    rest.split_whitespace().next()?.parse().ok()
}

/// Whether `python` can import shap and cv2 (the error says how to get them).
fn python_has_shap(python: &str) -> Result<()> {
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
    Ok(())
}

/// The checkpoint both sides explain: the reproduction's if there is one, else a quickly
/// trained one.
fn checkpoint() -> Result<PathBuf> {
    let trained = sh::target_dir().join("reproduce/keras/model.safetensors");
    Ok(if trained.is_file() {
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
    })
}

/// `shap_reference.py` on `model`: its settings (for the header) and its table rows.
fn python_reference(
    python: &str,
    model: &std::path::Path,
    repeats: usize,
) -> Result<(Value, Vec<Value>)> {
    let data_dir = std::env::var("FASHION_MNIST_DIR")
        .unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into());
    eprintln!(
        "==> Python shap reference on {} ({})",
        model.display(),
        load_average()
    );
    let script = sh::repo_root().join("benches/python/shap_reference.py");
    let out = sh::output(
        Command::new(python)
            .arg(script)
            .arg(model)
            .arg(&data_dir)
            .args(["--repeats", &repeats.to_string(), "--threads", THREADS]),
    )?;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .context("parsing the Python reference output")?;
    if v.get("keras").is_none() {
        eprintln!(
            "(no TensorFlow in {python}: the shap + Keras rows need `pip install tensorflow-cpu`)"
        );
    }
    Ok((v["settings"].clone(), reference_rows(&v)))
}

/// Table rows from `shap_reference.py`'s JSON: per Python side (the NumPy port always, the
/// Keras model when the script found TensorFlow), one row per masker and the model-only time.
fn reference_rows(v: &Value) -> Vec<Value> {
    let version = v
        .get("shap_version")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let mut rows = Vec::new();
    let keras = v.get("keras").map(|k| {
        let versions = k.get("versions").and_then(Value::as_str).unwrap_or("?");
        (k, format!("shap {version} + Keras ({versions})"))
    });
    let sides = [(v, format!("shap {version} + NumPy port"))]
        .into_iter()
        .chain(keras);
    for (side, label) in sides {
        for spec in EXPLAIN_SPECS {
            let timing = side.get(spec);
            let seconds = timing
                .and_then(|x| x.get("seconds"))
                .and_then(Value::as_f64);
            let cpu = timing
                .and_then(|x| x.get("cpu_seconds"))
                .and_then(Value::as_f64);
            if let Some(s) = seconds {
                let note = match cpu {
                    Some(c) => format!("CPU {c:.3} s; compare with the Rust explain rows above"),
                    None => "compare with the Rust explain rows above".into(),
                };
                rows.push(serde_json::json!({
                    "group": "python", "name": format!("{label}, partition, {spec}, 4 images, 500 evals, top-5"),
                    "value": s, "unit": "s", "cpu_s": cpu, "reference": "same call, same network, same settings",
                    "note": note,
                }));
            }
        }
        if let Some(s) = side.get("model_only_seconds").and_then(Value::as_f64) {
            rows.push(serde_json::json!({
                "group": "python", "name": format!("{label}: model alone, 2,000 rows in batches of 10"),
                "value": s, "unit": "s", "reference": "", "note": "that side's pure model time",
            }));
        }
    }
    if let Some(gap) = v
        .get("keras")
        .and_then(|k| k.get("max_abs_gap"))
        .and_then(Value::as_f64)
    {
        rows.push(serde_json::json!({
            "group": "python", "name": "Keras model vs NumPy port: largest |output difference| on the 4 images",
            "value": gap, "unit": "", "reference": "checked <= 1e-4 by the script",
            "note": "the two Python sides compute the same network",
        }));
    }
    if let Some(keras) = v.get("keras") {
        rows.extend(package_rows(keras, &version));
    }
    rows
}

/// The Python package's rows (`keras.package` of `shap_reference.py`): its time on the Keras
/// callable shap's rows use, and shap's time over it, per masker.
fn package_rows(keras: &Value, shap_version: &str) -> Vec<Value> {
    let Some(package) = keras.get("package") else {
        return Vec::new();
    };
    let seconds = |side: &Value, spec: &str, key: &str| {
        side.get(spec)
            .and_then(|t| t.get(key))
            .and_then(Value::as_f64)
    };
    let version = package
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let mut rows = Vec::new();
    for spec in EXPLAIN_SPECS {
        let Some(ours) = seconds(package, spec, "seconds").filter(|&s| s > 0.0) else {
            continue;
        };
        let cpu = seconds(package, spec, "cpu_seconds");
        rows.push(serde_json::json!({
            "group": "package",
            "name": format!("shap_toolkit {version} (Python package), Keras callable, partition, {spec}, 4 images, 500 evals, top-5"),
            "value": ours, "unit": "s", "cpu_s": cpu,
            "reference": "the Python function shap + Keras calls, same images and settings",
            "note": cpu.map_or_else(String::new, |c| format!("CPU {c:.3} s")),
        }));
        if let Some(theirs) = seconds(keras, spec, "seconds") {
            let by_cpu = match (seconds(keras, spec, "cpu_seconds"), cpu) {
                (Some(p), Some(q)) if q > 0.0 => format!("; by CPU seconds {:.1}x", p / q),
                _ => String::new(),
            };
            rows.push(serde_json::json!({
                "group": "speed-up",
                "name": format!("shap {shap_version} + Keras / Python package, same callable, partition, {spec}"),
                "value": theirs / ours, "unit": "x",
                "reference": "goal >= 1.5x with the same callable",
                "note": format!("the model stays in Python on both sides{by_cpu}"),
            }));
        }
    }
    rows
}

/// The maskers both sides explain with (`benches/python/shap_reference.py` times the same).
const EXPLAIN_SPECS: [&str; 3] = ["blur(28,28)", "inpaint_telea", "inpaint_ns"];

/// The speed-up goal of a masker's Partition rows over shap + Keras (issue "The tutorial path
/// with real margin").
fn goal(spec: &str) -> &'static str {
    if spec.starts_with("blur") {
        "goal >= 50x over shap + Keras"
    } else {
        "goal >= 15x over shap + Keras"
    }
}

/// Same-run speed-ups: each Rust Partition row over each shap row with the same masker.
fn speedups(rows: &[Value]) -> Vec<Value> {
    let text = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let value = |r: &Value| r.get("value").and_then(Value::as_f64);
    let mut out = Vec::new();
    for spec in EXPLAIN_SPECS {
        let suffix = format!(", partition, {spec}, 4 images");
        for py in rows
            .iter()
            .filter(|r| text(r, "group") == "python" && text(r, "name").contains(&suffix))
        {
            let Some(py_s) = value(py) else {
                continue;
            };
            let name = text(py, "name");
            let side = name.split(&suffix).next().unwrap_or("shap");
            for r in rows.iter().filter(|r| {
                text(r, "group") == "explain"
                    && text(r, "name").starts_with(&format!("partition, {spec}"))
            }) {
                let cpu = |row: &Value| row.get("cpu_s").and_then(Value::as_f64);
                let note = match (cpu(py), cpu(r)) {
                    (Some(p), Some(q)) if q > 0.0 => format!(
                        "same run, same images, same network; by CPU seconds (all threads) {:.1}x",
                        p / q
                    ),
                    _ => "same run, same images, same network".to_string(),
                };
                if let Some(rust) = value(r).filter(|&v| v > 0.0) {
                    let name = text(r, "name");
                    let variant = name
                        .trim_start_matches("partition, ")
                        .split(", 4 images")
                        .next()
                        .unwrap_or("")
                        .to_string();
                    out.push(serde_json::json!({
                        "group": "speed-up", "name": format!("{side} / Rust, partition, {variant}"),
                        "value": py_s / rust, "unit": "x",
                        "reference": goal(spec),
                        "note": note,
                    }));
                }
            }
        }
    }
    out
}

fn print_table(rows: &[Value]) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let value = r.get("value").and_then(Value::as_f64).unwrap_or(f64::NAN);
            let shown = if value != 0.0 && value.abs() < 1e-3 {
                format!("{value:.1e}")
            } else if value.abs() >= 100.0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn explain_row(name: &str, value: f64) -> Value {
        json!({"group": "explain", "name": format!("partition, {name}, 4 images, 500 evals, top-5"), "value": value})
    }

    fn named<'a>(rows: &'a [Value], name: &str) -> Option<&'a Value> {
        rows.iter().find(|r| r["name"] == name)
    }

    #[test]
    fn reference_rows_cover_both_python_sides() {
        let v = json!({
            "shap_version": "0.51.0",
            "blur(28,28)": {"seconds": 2.0}, "inpaint_telea": {"seconds": 3.0},
            "model_only_seconds": 1.5,
            "keras": {"versions": "TF 2.21.0", "blur(28,28)": {"seconds": 1.2},
                      "inpaint_telea": {"seconds": 2.4}, "model_only_seconds": 0.7,
                      "max_abs_gap": 1.2e-7},
        });
        let rows = reference_rows(&v);
        assert_eq!(rows.len(), 7);
        let gap = named(
            &rows,
            "Keras model vs NumPy port: largest |output difference| on the 4 images",
        )
        .expect("agreement row");
        assert_eq!(gap["value"], 1.2e-7);
        let keras_blur = named(
            &rows,
            "shap 0.51.0 + Keras (TF 2.21.0), partition, blur(28,28), 4 images, 500 evals, top-5",
        )
        .expect("Keras blur row");
        assert_eq!(keras_blur["value"], 1.2);
        let numpy_model = named(
            &rows,
            "shap 0.51.0 + NumPy port: model alone, 2,000 rows in batches of 10",
        )
        .expect("NumPy model row");
        assert_eq!(numpy_model["value"], 1.5);

        // With the package timed on the Keras callable: its row and shap's time over it.
        let mut with_package = v.clone();
        with_package["keras"]["package"] = json!({
            "version": "0.1.0", "blur(28,28)": {"seconds": 0.3, "cpu_seconds": 0.5},
        });
        let rows = reference_rows(&with_package);
        assert_eq!(rows.len(), 9);
        let ratio = named(
            &rows,
            "shap 0.51.0 + Keras / Python package, same callable, partition, blur(28,28)",
        )
        .expect("package speed-up row");
        assert!((ratio["value"].as_f64().unwrap_or(0.0) - 4.0).abs() < 1e-9);
        assert_eq!(rows.iter().filter(|r| r["group"] == "package").count(), 1);

        // Without TensorFlow only the NumPy side appears.
        let mut without = v.clone();
        without.as_object_mut().unwrap().remove("keras");
        let rows = reference_rows(&without);
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter()
                .all(|r| !r["name"].as_str().unwrap().contains("Keras"))
        );
    }

    #[test]
    fn cpu_summary_names_the_model_and_the_vector_extensions() {
        let info = "processor\t: 0\nmodel name\t: Some CPU @ 2GHz\nflags\t\t: fpu sse4_2 avx2 fma avx512f ht\n\n\
                    processor\t: 1\nmodel name\t: Some CPU @ 2GHz\n";
        assert_eq!(
            cpu_summary(info),
            "Some CPU @ 2GHz, 2 logical cores; vector extensions: sse4_2 avx2 fma avx512f"
        );
        assert!(cpu_summary("").starts_with("unknown CPU, 0 logical cores"));
    }

    #[test]
    fn first_number_reads_the_figure_after_the_label() {
        assert_eq!(
            first_number("Telea: 123.45 us per inpaint (median of 5 runs of 4000), checksum 0"),
            Some(123.45)
        );
        assert_eq!(first_number("ns: 88.0 us per inpaint"), Some(88.0));
        assert_eq!(first_number("no figure here"), None);
    }

    #[test]
    fn speedups_divide_each_python_side_by_each_rust_row_with_the_same_masker() {
        let v = json!({
            "shap_version": "0.51.0",
            "blur(28,28)": {"seconds": 2.0}, "inpaint_telea": {"seconds": 3.0},
            "inpaint_ns": {"seconds": 2.5},
            "keras": {"versions": "TF 2.21.0", "blur(28,28)": {"seconds": 1.0}},
        });
        let mut rows = vec![
            explain_row("blur(28,28) --eval full", 0.25),
            explain_row("blur(28,28) --eval incremental (CLI default)", 0.05),
            explain_row("inpaint_telea --eval full", 0.5),
            explain_row("inpaint_ns --eval full (CLI default)", 0.25),
        ];
        rows.extend(reference_rows(&v));
        let s = speedups(&rows);
        // Blur: 2 Rust rows x 2 sides; each inpainting: 1 Rust row x the NumPy side only.
        assert_eq!(s.len(), 6);
        let ratio = |name: &str| {
            named(&s, name)
                .and_then(|r| r["value"].as_f64())
                .unwrap_or_else(|| panic!("no row {name:?} in {s:#?}"))
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(
            ratio("shap 0.51.0 + Keras (TF 2.21.0) / Rust, partition, blur(28,28) --eval full"),
            4.0
        ));
        assert!(close(
            ratio(
                "shap 0.51.0 + NumPy port / Rust, partition, blur(28,28) --eval incremental (CLI default)"
            ),
            40.0
        ));
        assert!(close(
            ratio("shap 0.51.0 + NumPy port / Rust, partition, inpaint_telea --eval full"),
            6.0
        ));
        assert!(close(
            ratio(
                "shap 0.51.0 + NumPy port / Rust, partition, inpaint_ns --eval full (CLI default)"
            ),
            10.0
        ));
        assert!(s.iter().all(|r| r["reference"]
            == if r["name"].as_str().unwrap().contains("blur") {
                "goal >= 50x over shap + Keras"
            } else {
                "goal >= 15x over shap + Keras"
            }));
    }

    #[test]
    fn cpu_seconds_travel_into_the_rows_and_give_a_second_ratio() {
        let v = json!({
            "shap_version": "0.51.0",
            "blur(28,28)": {"seconds": 2.0, "cpu_seconds": 3.0},
        });
        let mut rust = explain_row("blur(28,28) --eval full", 0.25);
        rust["cpu_s"] = json!(0.5);
        let py = reference_rows(&v);
        assert_eq!(py[0]["cpu_s"], 3.0);
        assert!(py[0]["note"].as_str().unwrap().starts_with("CPU 3.000 s"));
        let mut rows = vec![rust];
        rows.extend(py);
        let s = speedups(&rows);
        assert_eq!(s.len(), 1);
        let note = s[0]["note"].as_str().unwrap();
        assert!(
            note.ends_with("by CPU seconds (all threads) 6.0x"),
            "{note}"
        );
    }

    #[test]
    fn the_load_average_is_read_or_said_unknown() {
        let l = load_average();
        assert!(l.starts_with("load average "), "{l}");
    }
}
