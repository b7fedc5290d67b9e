//! Helpers shared by the CLI's process tests.

use std::process::{Command, Output};

/// Run the built `shap-cli` binary with `args` and collect its output.
pub fn shap_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shap-cli"))
        .args(args)
        .output()
        .unwrap()
}

/// Process output bytes as text (lossy UTF-8).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
