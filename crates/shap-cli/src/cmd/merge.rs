//! `shap-cli merge`: join the parts of a sharded explanation (`explain --shard I/N`) into the
//! explanation one run would have made.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use shap_explain::Explanation;
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
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

/// Recorded values that differ between the parts of one run (where each part sits, and the
/// incremental path's share of the work, a statistic of each process); the merged file drops
/// them.
const PER_PART: [&str; 3] = ["positions", "selection", "incremental_work_fraction"];

/// Run `shap-cli merge`.
pub fn run(args: Args) -> Result<()> {
    let inputs: Vec<(&str, &std::path::Path)> =
        args.parts.iter().map(|p| ("a part", p.as_path())).collect();
    super::common::check_outputs(
        &[
            (Some(args.out.as_path()), OutputSpec::binary("--out")),
            (args.json.as_deref(), OutputSpec::text("--json")),
        ],
        &inputs,
    )?;
    let mut parts = Vec::with_capacity(args.parts.len());
    for p in &args.parts {
        let e = Explanation::load_npz(p).with_context(|| format!("reading {}", p.display()))?;
        let (range, total) = positions(&e).with_context(|| format!("{}", p.display()))?;
        parts.push((range, total, p, e));
    }
    parts.sort_by_key(|(r, ..)| r.start);
    check_parts(&parts)?;
    let n = parts.len();
    let mut merged = Explanation::concat(parts.into_iter().map(|(.., e)| e).collect())?;
    merged
        .settings
        .retain(|(k, _)| !PER_PART.contains(&k.as_str()));
    merged.save_npz(&args.out)?;
    if let Some(j) = &args.json {
        merged.save_json(j)?;
    }
    if args.quiet || args.out == std::path::Path::new("-") {
        return Ok(());
    }
    super::common::print(|o| {
        writeln!(
            o,
            "merged {n} parts: {} images into {}",
            merged.num_images,
            args.out.display()
        )
    })
}

/// The positions a part covers in the whole selection, and the selection's size.
fn positions(e: &Explanation) -> Result<(std::ops::Range<usize>, usize)> {
    let (Some(p), Some(total)) = (e.setting("positions"), e.setting("selection")) else {
        bail!("not a part of a sharded run (no positions recorded): explain it with --shard I/N");
    };
    let range = super::common::parse_range(p).map_err(anyhow::Error::msg)?;
    let total: usize = total.parse().context("the recorded selection size")?;
    if range.len() != e.num_images || range.end > total {
        bail!(
            "its recorded positions {p} do not fit its {} images",
            e.num_images
        );
    }
    Ok((range, total))
}

/// The parts (sorted by position) cover the selection once, with the same settings and model.
fn check_parts(parts: &[(std::ops::Range<usize>, usize, &PathBuf, Explanation)]) -> Result<()> {
    let Some((_, total, first_path, first)) = parts.first() else {
        bail!("no parts to merge");
    };
    let common = |e: &Explanation| -> Vec<(String, String)> {
        let mut s = e.settings.clone();
        s.retain(|(k, _)| !PER_PART.contains(&k.as_str()));
        s
    };
    let want = common(first);
    let mut next = 0;
    for (range, t, path, e) in parts {
        if t != total {
            bail!(
                "{} is a part of {t} images, {} of {total}",
                path.display(),
                first_path.display()
            );
        }
        if let Some((k, v)) = common(e).into_iter().find(|kv| !want.contains(kv)) {
            let theirs = first.setting(&k).unwrap_or("(none)");
            bail!(
                "{} was made with {k} = {v}, {} with {k} = {theirs}: they are not parts of one run",
                path.display(),
                first_path.display()
            );
        }
        if range.start > next {
            bail!(
                "images {next}..{} of the selection are in no part",
                range.start
            );
        }
        if range.start < next {
            bail!(
                "images {}..{} are in two parts (the second is {})",
                range.start,
                next.min(range.end),
                path.display()
            );
        }
        next = range.end;
    }
    if next < *total {
        bail!("images {next}..{total} of the selection are in no part");
    }
    Ok(())
}
