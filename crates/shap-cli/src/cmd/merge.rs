//! `shap-cli merge`: join the parts of a sharded explanation (`explain --shard I/N`) into the
//! explanation one run would have made.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use shap_explain::Explanation;
use shap_io::OutputSpec;

use super::explain::SELECTION_SOURCES;

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
    #[arg(short, long)]
    pub quiet: bool,
}

/// Recorded values that differ between the parts of one run (where each part sits, and the
/// incremental path's share of the work, a statistic of each process), or that only parts
/// record (which selection they are slices of, checked apart); the merged file drops them.
const PER_PART: [&str; 4] = [
    "positions",
    "selection",
    SELECTION_SOURCES,
    "incremental_work_fraction",
];

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
        let (settings, n) =
            shap_explain::npz_settings(p).with_context(|| format!("reading {}", p.display()))?;
        let (range, total) = positions(&settings, n).with_context(|| format!("{}", p.display()))?;
        parts.push(Part {
            range,
            total,
            path: p,
            settings,
        });
    }
    parts.sort_by_key(|p| p.range.start);
    check_parts(&parts)?;
    let mut settings = parts[0].settings.clone();
    settings.retain(|(k, _)| !PER_PART.contains(&k.as_str()));
    let paths: Vec<PathBuf> = parts.iter().map(|p| p.path.clone()).collect();
    let images = shap_explain::join_npz(&paths, &settings, &args.out)?;
    if let Some(j) = &args.json {
        summary(&paths, settings)?.save_json(j)?;
    }
    if args.quiet || args.out == std::path::Path::new("-") {
        return Ok(());
    }
    super::common::print(|o| {
        writeln!(
            o,
            "merged {} parts: {images} images into {}",
            parts.len(),
            args.out.display()
        )
    })
}

/// One part: where it sits, the selection's size, its file and settings.
struct Part<'a> {
    range: std::ops::Range<usize>,
    total: usize,
    path: &'a PathBuf,
    settings: Vec<(String, String)>,
}

impl Part<'_> {
    fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The JSON summary of the merged run, from the parts read one at a time.
fn summary(
    parts: &[PathBuf],
    settings: Vec<(String, String)>,
) -> Result<shap_explain::ExplanationSummary> {
    let mut all: Option<shap_explain::ExplanationSummary> = None;
    for p in parts {
        let s = Explanation::load_npz(p)
            .with_context(|| format!("reading {}", p.display()))?
            .summary();
        match &mut all {
            None => all = Some(s),
            Some(a) => a.append(s),
        }
    }
    let mut all = all.context("no parts to merge")?;
    all.settings = settings.into_iter().collect();
    Ok(all)
}

/// The positions a part covers in the whole selection, and the selection's size.
fn positions(settings: &[(String, String)], n: usize) -> Result<(std::ops::Range<usize>, usize)> {
    let get = |k: &str| {
        settings
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let (Some(p), Some(total)) = (get("positions"), get("selection")) else {
        bail!("not a part of a sharded run (no positions recorded): explain it with --shard I/N");
    };
    let range = super::common::parse_range(p).map_err(anyhow::Error::msg)?;
    let total: usize = total.parse().context("the recorded selection size")?;
    if range.len() != n || range.end > total {
        bail!("its recorded positions {p} do not fit its {n} images");
    }
    Ok((range, total))
}

/// The parts (sorted by position) cover the selection once, with the same settings and model.
fn check_parts(parts: &[Part]) -> Result<()> {
    let Some(first) = parts.first() else {
        bail!("no parts to merge");
    };
    let (total, first_path) = (&first.total, first.path);
    let common = |e: &Part| -> Vec<(String, String)> {
        let mut s = e.settings.clone();
        s.retain(|(k, _)| !PER_PART.contains(&k.as_str()));
        s
    };
    let want = common(first);
    let mut next = 0;
    for e @ Part {
        range,
        total: t,
        path,
        ..
    } in parts
    {
        if t != total {
            bail!(
                "{} is a part of {t} images, {} of {total}",
                path.display(),
                first_path.display()
            );
        }
        if e.setting(SELECTION_SOURCES) != first.setting(SELECTION_SOURCES) {
            bail!(
                "{} and {} come from different selections (other images, --range, --correct or \
                 --wrong): they are not parts of one run",
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
