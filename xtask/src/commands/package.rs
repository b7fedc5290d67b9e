//! `cargo xtask check-package`: every library crate packaged as crates.io would take it, and
//! each built from its packaged sources alone (`cargo package --workspace`, which resolves our
//! crates against each other's packages, not their folders). The binaries (`shap-cli`, the
//! Python extension `shap-py`) and the facade `shap-toolkit` are not published
//! (`publish = false`). The build has its own target dir (`target/package-check`).

use crate::sh;
use anyhow::Result;

/// The workspace members that are not published.
const UNPUBLISHED: [&str; 3] = ["shap-cli", "shap-py", "shap-toolkit"];

/// Package and verify every library crate.
pub fn check() -> Result<()> {
    let mut c = sh::cargo();
    // Dirty or not, what is checked is that the packaged files build.
    c.args(["package", "--workspace", "--allow-dirty"]);
    for name in UNPUBLISHED {
        c.args(["--exclude", name]);
    }
    c.arg("--target-dir")
        .arg(sh::target_dir().join("package-check"));
    // No debug info: the check is that it builds (measured cold on 2 cores: 5.8 minutes, not 8).
    c.env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0");
    sh::run(&mut c)
}
