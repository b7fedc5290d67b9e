//! `shap-cli mask` (placeholder until its issue lands).

/// Flags of `shap-cli mask`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `shap-cli mask`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`shap-cli mask` is not implemented yet")
}
