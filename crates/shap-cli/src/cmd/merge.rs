//! `shap-cli merge`: join the parts of a sharded explanation (`explain --shard I/N`) into the
//! explanation one run would have made.

use std::path::PathBuf;

use anyhow::Result;
use shap_io::OutputSpec;

/// Flags of `shap-cli merge`.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  shap-cli merge -o all.npz part-0.npz part-1.npz part-2.npz")]
pub struct Args {
    /// The merged explanation (.npz).
    #[arg(short, long, value_name = "ALL.npz")]
    pub out: PathBuf,
    /// Also write its JSON summary.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// The parts, written by `shap-cli explain --shard I/N --npz PART.npz`, in any order.
    #[arg(required = true, value_name = "PART.npz")]
    pub parts: Vec<PathBuf>,
}

/// Run `shap-cli merge`.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    let inputs: Vec<(&str, &std::path::Path)> =
        args.parts.iter().map(|p| ("a part", p.as_path())).collect();
    shap_io::check_outputs(
        &[
            (Some(args.out.as_path()), OutputSpec::binary("--out")),
            (args.json.as_deref(), OutputSpec::text("--json")),
        ],
        &inputs,
    )?;
    let merged = shap_run::merge(&args.parts, &args.out)?;
    if let Some(j) = &args.json {
        merged.summary()?.save_json(j)?;
    }
    if quiet || args.out == std::path::Path::new("-") {
        return Ok(());
    }
    super::common::print(|o| {
        writeln!(
            o,
            "merged {} parts: {} images into {}",
            merged.parts.len(),
            merged.images,
            args.out.display()
        )
    })
}
