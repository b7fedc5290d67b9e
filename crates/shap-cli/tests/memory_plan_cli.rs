//! The memory plan: runs that cannot fit the memory they may use are refused before any work,
//! with the estimate, exit 1 and nothing written (never an abort, 134, or a kill, 137); a run
//! that fits stays within its own estimate. Every process runs under `ulimit -v` 2 GiB
//! (`common::ULIMIT_KIB`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{onnx_fixture, s, shap_cli, text};
use prost::Message;
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, tensor_proto::DataType, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension, type_proto,
};

fn info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = |d: &Option<i64>| Dimension {
        value: Some(match d {
            Some(v) => dimension::Value::DimValue(*v),
            None => dimension::Value::DimParam("N".into()),
        }),
        ..Dimension::default()
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(dim).collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn node(op: &str, input: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: input.iter().map(|i| (*i).to_string()).collect(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

/// `dir/name`: images `(N, C, H, W)` averaged, then broadcast to `k` outputs:
/// a model of a few hundred bytes with any input size and output count.
fn model(dir: &Path, name: &str, chw: [i64; 3], k: i64) -> PathBuf {
    let shape = TensorProto {
        name: "k".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![2],
        int64_data: vec![1, k],
        ..TensorProto::default()
    };
    let [c, h, w] = chw;
    let graph = GraphProto {
        node: vec![
            node("GlobalAveragePool", &["x"], "pool"),
            node("Flatten", &["pool"], "flat"),
            NodeProto {
                attribute: vec![tract_onnx::pb::AttributeProto {
                    name: "axes".into(),
                    r#type: tract_onnx::pb::attribute_proto::AttributeType::Ints as i32,
                    ints: vec![1],
                    ..Default::default()
                }],
                ..node("ReduceMean", &["flat"], "mean")
            },
            node("Expand", &["mean", "k"], "y"),
        ],
        initializer: vec![shape],
        input: vec![info("x", &[None, Some(c), Some(h), Some(w)])],
        output: vec![info("y", &[None, Some(k)])],
        ..GraphProto::default()
    };
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..ModelProto::default()
    };
    let path = dir.join(name);
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}

/// Exit 1 with one `error:` line saying there is not enough memory, and nothing in `dir`
/// but the models.
fn refused(args: &[&str], dir: &Path, needle: &str) {
    let out = shap_cli(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: not enough memory for"), "{err}");
    assert!(last.contains(needle), "{needle}: {err}");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".onnx"))
        .collect();
    assert!(left.is_empty(), "{args:?} left {left:?}");
}

#[test]
fn oversized_models_and_runs_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = onnx_fixture("images/rgb_0.png");
    let npz = d.join("X.npz");
    let explain = |model: &Path, extra: &[&str]| {
        let mut a = vec!["explain", "--model", s(model), "--image", &image];
        a.extend_from_slice(&[
            "--max-evals",
            "20",
            "--onnx-engine",
            "tract",
            "--npz",
            s(&npz),
        ]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>, needle: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, d, needle)
    };
    // A 300-byte file declaring 3 x 100000 x 100000 images: refused at load.
    let huge = model(d, "huge.onnx", [3, 100_000, 100_000], 3);
    run(explain(&huge, &[]), "the images checked at load");
    // 2048 x 2048 x 3 images: the partition tree alone is about 1.8 GiB.
    let big = model(d, "big.onnx", [3, 2048, 2048], 3);
    run(
        explain(&big, &["--batch-size", "1", "--top-k", "1"]),
        "partition tree",
    );
    // 100,000 outputs, all explained: each image's values and recursion state take GiBs.
    let wide = model(d, "wide.onnx", [1, 28, 28], 100_000);
    run(explain(&wide, &["--all-classes"]), "values");
    // --max-memory below what a small run needs.
    let small = model(d, "small.onnx", [3, 32, 32], 3);
    run(
        explain(&small, &["--max-memory", "1M"]),
        "--max-memory 1 MiB",
    );
    // The limit is parsed strictly.
    let out = shap_cli(
        &explain(&small, &["--max-memory", "lots"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("invalid value 'lots' for '--max-memory"));
}

/// The estimate the run printed ("needs about X") and what was in use when it planned.
fn printed_plan(err: &str) -> (f64, f64) {
    let line = err
        .lines()
        .find(|l| l.starts_with("note: memory:"))
        .unwrap_or_else(|| panic!("{err}"));
    let size = |after: &str| -> f64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        let mut it = rest.split_whitespace();
        let v: f64 = it.next().unwrap().parse().unwrap();
        let unit = match it.next().unwrap().trim_end_matches([',', ')', ';']) {
            "GiB" => 1024.0 * 1024.0,
            "MiB" => 1024.0,
            "KiB" => 1.0,
            u => panic!("unit {u} in {line}"),
        };
        v * unit
    };
    (size("needs about "), size("on top of "))
}

#[test]
fn a_run_that_fits_stays_within_its_own_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "m.onnx", [3, 384, 384], 3);
    let npz = dir.path().join("e.npz");
    let image = onnx_fixture("images/rgb_0.png");
    // A limit close enough that the run prints its plan.
    let args = [
        "explain",
        "--model",
        s(&m),
        "--image",
        &image,
        "--max-evals",
        "40",
        "--onnx-engine",
        "tract",
        "--max-memory",
        "400M",
        "--npz",
        s(&npz),
    ];
    let out = common::cli_command(&args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (plan_kib, in_use_kib) = printed_plan(&err);
    let peak = peak_kib();
    eprintln!("estimate {plan_kib} KiB + {in_use_kib} KiB in use; measured peak {peak} KiB");
    assert!(peak as f64 <= plan_kib + in_use_kib, "{err}");
}

/// Largest resident set (KiB) of the children this process has waited for (one test in this
/// file runs a child that gets that far; the other's children exit early and small).
fn peak_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: getrusage succeeded, so it filled `usage` (and it was zeroed before).
    unsafe { usage.assume_init() }.ru_maxrss
}
