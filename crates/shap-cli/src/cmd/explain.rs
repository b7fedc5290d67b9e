//! `shap-cli explain` (placeholder until its issue lands).

/// Flags of `shap-cli explain`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `shap-cli explain`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`shap-cli explain` is not implemented yet")
}
