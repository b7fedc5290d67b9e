//! What every benchmark group shares: the thread count and repeats of every comparison, the
//! median, and whether a Python can import a module. Kept apart so the groups (`bench_keras`,
//! `bench_onnx`, `bench_real`) and the table (`bench`) import it rather than each other.

use std::process::Command;

/// Threads on every side of every comparison.
pub const THREADS: &str = "2";
/// Timed runs on every side (after one untimed warm-up run); rows show their median.
pub const REPEATS: usize = 3;

/// The median of `v` (the mean of the middle two for an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Whether `python` can import `module`.
pub(crate) fn python_imports(python: &str, module: &str) -> bool {
    let ok = Command::new(python)
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("(`{python}` cannot import {module}: pip install {module})");
    }
    ok
}

/// The 1, 5 and 15-minute load averages (`/proc/loadavg`), printed at the start of every
/// round: a busy machine explains a slow round.
pub(crate) fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    if fields.len() == 3 {
        format!("load average {}", fields.join(" "))
    } else {
        "load average unknown".into()
    }
}
