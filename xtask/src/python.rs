//! The Python package's tests (`crates/shap-py`): a venv of their own under the cache folder
//! (`$SHAP_TOOLKIT_CUDA_CACHE`, else `target/`) with maturin, pytest and what the tests compare
//! against (shap 0.51, onnxruntime, OpenCV for shap's image masker, matplotlib), installed from
//! PyPI once; then `maturin build --release` (the abi3 wheel, into `target/wheels`), the wheel
//! installed into that venv, and pytest over `crates/shap-py/tests`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::sh;

/// What the tests need, pinned (the versions they were written against).
const PACKAGES: [&str; 7] = [
    "maturin==1.16.0",
    "pytest==9.2.0",
    "numpy==2.4.6",
    "onnxruntime==1.32.0",
    "shap==0.51.0",
    "opencv-python-headless==5.1.0.95",
    "matplotlib==3.11.2",
];

/// The venv, with [`PACKAGES`] installed on first use.
fn venv() -> Result<PathBuf> {
    let venv = crate::commands::cuda::cache_root().join("python-tests-1");
    let stamp = venv.join("installed.txt");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    if !venv.join("bin").join("pip").is_file() {
        eprintln!("==> python3 -m venv {}", venv.display());
        sh::run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).context(
            "creating a venv for the Python tests (Debian: apt-get install python3-venv)",
        )?;
    }
    eprintln!("==> pip install {}", PACKAGES.join(" "));
    sh::run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
    )
    .context("installing the Python tests' packages from PyPI")?;
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}

/// Build the wheel with the venv's maturin and install it there.
fn install_wheel(venv: &Path) -> Result<()> {
    let wheels = sh::target_dir().join("wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels)?;
    }
    eprintln!("==> maturin build --release (crates/shap-py)");
    sh::run(
        Command::new(venv.join("bin").join("maturin"))
            .current_dir(sh::repo_root())
            .args([
                "build",
                "--release",
                "--quiet",
                "-m",
                "crates/shap-py/Cargo.toml",
                // The one feature the workspace turns on for the wheel's dependencies and the
                // wheel alone does not (shap-cli's `ValueEnum`s, which bring clap's derive and
                // `syn/full`): with it, the wheel reuses what `cargo test --workspace` compiled
                // instead of compiling Candle, tract and ort again (about 7 minutes in CI).
                "--features",
                "shap-run/clap",
                "-o",
            ])
            .arg(&wheels)
            .arg("--interpreter")
            .arg(venv.join("bin").join("python")),
    )?;
    let wheel = std::fs::read_dir(&wheels)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("maturin wrote no wheel")?;
    sh::run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(["--force-reinstall", "--no-deps"])
            .arg(&wheel),
    )
}

/// Passed, failed and skipped tests of pytest's closing line (`3 passed, 1 skipped in 2.1s`).
pub fn parse_summary(line: &str) -> Option<(usize, usize, usize)> {
    let line = line.trim().trim_matches('=').trim();
    if !(line.contains(" passed") || line.contains(" failed") || line.contains(" error")) {
        return None;
    }
    let count = |what: &str| -> usize {
        line.split([',', ' '])
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[1].starts_with(what))
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0)
    };
    Some((
        count("passed"),
        count("failed") + count("error"),
        count("skipped"),
    ))
}

/// Build, install and test the Python package: the tally of pytest's counts (skipped tests
/// count as failures here: every test must run in CI), and why it failed, when it did.
pub fn test_step(ort_library: Option<&Path>) -> Result<(usize, usize, Option<String>)> {
    let venv = venv()?;
    install_wheel(&venv)?;
    let cli = sh::build_cli(&[])?;
    eprintln!("==> pytest crates/shap-py/tests");
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.current_dir(sh::repo_root().join("crates").join("shap-py"))
        .args([
            "-m",
            "pytest",
            "tests",
            "-q",
            "-p",
            "no:warnings",
            "-p",
            "no:cacheprovider",
        ])
        .env("SHAP_CLI", cli)
        .stdout(Stdio::piped());
    if let Some(lib) = ort_library {
        cmd.env("ORT_DYLIB_PATH", lib);
    }
    let mut child = cmd.spawn().context("could not start pytest")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut counts = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        counts = parse_summary(&line).or(counts);
    }
    let status = child.wait()?;
    let Some((passed, failed, skipped)) = counts else {
        bail!("pytest printed no summary ({status})");
    };
    let failed = failed + skipped;
    let why = (!status.success() || failed > 0)
        .then(|| format!("pytest: {failed} failed or skipped ({status})"));
    Ok((passed, failed.max(usize::from(!status.success())), why))
}

#[cfg(test)]
mod tests {
    use super::parse_summary;

    #[test]
    fn pytest_closing_lines_are_counted() {
        assert_eq!(parse_summary("14 passed in 16.41s"), Some((14, 0, 0)));
        assert_eq!(
            parse_summary("2 failed, 12 passed, 1 skipped in 16.81s"),
            Some((12, 2, 1))
        );
        assert_eq!(
            parse_summary("==== 1 error, 3 passed in 0.5s ===="),
            Some((3, 1, 0))
        );
        assert_eq!(parse_summary("tests/test_x.py ....  [100%]"), None);
    }
}
