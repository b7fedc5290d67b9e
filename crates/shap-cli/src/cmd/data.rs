//! `shap-cli data` (placeholder until its issue lands).

/// Flags of `shap-cli data`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `shap-cli data`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`shap-cli data` is not implemented yet")
}
