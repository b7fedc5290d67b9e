//! onnxruntime for the tests: `pip install onnxruntime` (pinned) into a venv of its own under
//! the cache folder (`$SHAP_TOOLKIT_CUDA_CACHE`, else `target/`), once. `cargo xtask test`
//! points the ONNX tests at its library (`ORT_DYLIB_PATH`) and makes them require it
//! (`SHAP_TOOLKIT_REQUIRE_ORT`), so both engines are tested; without it (no Python, no
//! network) the tests run on tract alone and say so.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::sh;

/// The onnxruntime the tests run against (a newer library serves the older API `ort` needs).
const PACKAGE: &str = "onnxruntime==1.32.0";

/// The library of the pinned onnxruntime wheel, installed on first use.
pub fn library() -> Result<PathBuf> {
    let venv = crate::commands::cuda::cache_root().join("onnxruntime-1.32.0");
    let stamp = venv.join("installed.txt");
    if !stamp.is_file() {
        if !venv.join("bin").join("pip").is_file() {
            eprintln!("==> python3 -m venv {}", venv.display());
            sh::run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).context(
                "creating a venv for onnxruntime (Debian: apt-get install python3-venv)",
            )?;
        }
        eprintln!("==> pip install {PACKAGE}");
        sh::run(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PACKAGE,
        ]))
        .context("installing onnxruntime from PyPI")?;
        std::fs::write(&stamp, PACKAGE)?;
    }
    for entry in std::fs::read_dir(venv.join("lib"))? {
        let capi = entry?.path().join("site-packages/onnxruntime/capi");
        let found = std::fs::read_dir(&capi)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            });
        if let Some(lib) = found {
            return Ok(lib);
        }
    }
    anyhow::bail!("no libonnxruntime.so in {}", venv.display())
}
