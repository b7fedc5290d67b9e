//! A run that fits its memory budget stays within its own estimate: the peak resident set of
//! the CLI child, measured with `getrusage(RUSAGE_CHILDREN)`, is at most the printed plan plus
//! what was in use when it planned. This file holds one test, so the peak is that child's alone.
#![allow(clippy::unwrap_used)]

mod common;

use common::graphs::model;
use common::{onnx_fixture, s, text};

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

/// Largest resident set (KiB) of the children this process has waited for (this file's one
/// child).
fn peak_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: getrusage succeeded, so it filled `usage` (and it was zeroed before).
    unsafe { usage.assume_init() }.ru_maxrss
}
