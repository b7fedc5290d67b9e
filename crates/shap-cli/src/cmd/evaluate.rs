//! `shap-cli evaluate` (placeholder until its issue lands).

/// Flags of `shap-cli evaluate`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `shap-cli evaluate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`shap-cli evaluate` is not implemented yet")
}
