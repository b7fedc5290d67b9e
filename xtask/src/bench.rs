//! `cargo xtask bench`: one table of measured speeds beside the reference figures.
//! (Filled in once the crates' measurement examples exist.)

use anyhow::Result;

/// Flags of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// A shorter, rougher pass.
    #[arg(long)]
    quick: bool,
}

/// Print the benchmark table.
pub fn run(_args: Args) -> Result<()> {
    anyhow::bail!("cargo xtask bench: not wired yet")
}
