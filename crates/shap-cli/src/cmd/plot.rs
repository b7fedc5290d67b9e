//! `shap-cli plot` (placeholder until its issue lands).

/// Flags of `shap-cli plot`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `shap-cli plot`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`shap-cli plot` is not implemented yet")
}
