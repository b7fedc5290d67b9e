//! The parts of a sharded run (`explain --shard I/N`) joined into the explanation one run
//! would have made: the parts must cover the selection once, with the same settings, model
//! and selection.

use std::ops::Range;
use std::path::{Path, PathBuf};

use shap_explain::{Explanation, ExplanationSummary, Settings};

use crate::error::{Context, Result, refuse};
use crate::settings::{POSITIONS, Placement, SELECTION, SELECTION_SOURCES, WORK_FRACTION};

/// Recorded values that differ between the parts of one run (where each part sits, and the
/// incremental path's share of the work, a statistic of each process), or that only parts
/// record (which selection they are slices of, checked apart); the merged file drops them.
const PER_PART: [&str; 4] = [POSITIONS, SELECTION, SELECTION_SOURCES, WORK_FRACTION];

/// A merged explanation.
pub struct Merged {
    /// Images in it.
    pub images: usize,
    /// The parts, in the order they were joined.
    pub parts: Vec<PathBuf>,
    /// The merged file's settings.
    pub settings: Settings,
}

impl Merged {
    /// The JSON summary of the merged run, from the parts read one at a time.
    pub fn summary(&self) -> Result<ExplanationSummary> {
        let mut all: Option<ExplanationSummary> = None;
        for p in &self.parts {
            let s = Explanation::load_npz(p)
                .with_context(|| format!("reading {}", p.display()))?
                .summary();
            match &mut all {
                None => all = Some(s),
                Some(a) => a.append(s),
            }
        }
        let mut all = all.context("no parts to merge")?;
        all.settings = self
            .settings
            .iter()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect();
        Ok(all)
    }
}

/// Join `parts` (in any order) into `out`, array by array.
pub fn merge(parts: &[PathBuf], out: &Path) -> Result<Merged> {
    let mut found = Vec::with_capacity(parts.len());
    for p in parts {
        let (settings, n) =
            shap_explain::npz_settings(p).with_context(|| format!("reading {}", p.display()))?;
        let placement =
            Placement::from_record(&settings, n).with_context(|| p.display().to_string())?;
        found.push(Part {
            range: placement.positions,
            total: placement.selection,
            path: p,
            settings,
        });
    }
    found.sort_by_key(|p| p.range.start);
    check_parts(&found)?;
    let settings = common(&found[0]);
    let paths: Vec<PathBuf> = found.iter().map(|p| p.path.clone()).collect();
    let images = shap_explain::join_npz(&paths, &settings, out)?;
    Ok(Merged {
        images,
        parts: paths,
        settings,
    })
}

/// A part's settings without those that differ between parts.
fn common(part: &Part) -> Settings {
    let mut s = part.settings.clone();
    s.retain(|x| !PER_PART.contains(&x.name.as_str()));
    s
}

/// One part: where it sits, the selection's size, its file and settings.
struct Part<'a> {
    range: Range<usize>,
    total: usize,
    path: &'a PathBuf,
    settings: Settings,
}

impl Part<'_> {
    fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name)
    }
}

/// The parts (sorted by position) cover the selection once, with the same settings and model.
fn check_parts(parts: &[Part]) -> Result<()> {
    let Some(first) = parts.first() else {
        refuse!("no parts to merge");
    };
    let (total, first_path) = (&first.total, first.path);
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
            refuse!(
                "{} is a part of {t} images, {} of {total}",
                path.display(),
                first_path.display()
            );
        }
        if e.setting(SELECTION_SOURCES) != first.setting(SELECTION_SOURCES) {
            refuse!(
                "{} and {} come from different selections (other images, --range, --correct or \
                 --wrong): they are not parts of one run",
                path.display(),
                first_path.display()
            );
        }
        let theirs = common(e);
        if let Some(s) = theirs
            .iter()
            .find(|s| want.get(&s.name) != Some(s.value.as_str()))
        {
            let (k, v) = (&s.name, &s.value);
            let theirs = first.setting(k).unwrap_or("(none)");
            refuse!(
                "{} was made with {k} = {v}, {} with {k} = {theirs}: they are not parts of one run",
                path.display(),
                first_path.display()
            );
        }
        if range.start > next {
            refuse!(
                "images {next}..{} of the selection are in no part",
                range.start
            );
        }
        if range.start < next {
            refuse!(
                "images {}..{} are in two parts (the second is {})",
                range.start,
                next.min(range.end),
                path.display()
            );
        }
        next = range.end;
    }
    if next < *total {
        refuse!("images {next}..{total} of the selection are in no part");
    }
    Ok(())
}
