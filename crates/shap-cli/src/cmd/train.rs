//! `shap-cli train` (placeholder until its issue lands).

/// Flags of `shap-cli train`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `shap-cli train`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`shap-cli train` is not implemented yet")
}
