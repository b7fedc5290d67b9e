//! A run over its selection in chunks of images. With an `.npz` output (a regular
//! file), every chunk is written to the run's journal as it finishes ([`super::journal`]),
//! the final file is joined from the chunk files array by array
//! ([`shap_explain::join_npz`]), and the journal is removed: a run interrupted at any point
//! resumes where it stopped, an uninterrupted run takes the same path (so both give the same
//! bytes), and memory is bounded by a chunk, not the selection. Without a
//! journal (`--npz -`, a device, or only `--json`/`--plot`), chunks are joined in memory.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shap_explain::{Explainer, Explanation, ExplanationSummary, Settings};
use shap_mask::Masker;

use crate::Reporter;
use crate::error::{Result, chain, refuse};
use crate::journal::{Journal, Manifest};
use crate::model::Network;
use crate::selection::{Selection, image_info, npz_digest};
use crate::settings::WORK_FRACTION;

/// Everything one run needs to explain its chunks.
pub(crate) struct Job<'a> {
    pub net: &'a Network,
    /// The explainer, checked once before any work; each chunk starts its random streams at
    /// its first image's position.
    pub explainer: &'a Explainer,
    pub masker: &'a Masker,
    pub names: &'a [String],
    pub selection: &'a Selection,
    /// The run's settings, as recorded.
    pub settings: Settings,
    /// Where a shard sits in the whole selection; empty otherwise.
    pub placement: Settings,
    /// The position of the selection's first image in the whole selection (a shard's start).
    pub first: usize,
    /// Images per chunk.
    pub chunk: usize,
    /// Where the whole explanation goes, if anywhere.
    pub npz: Option<&'a Path>,
    /// Keep the whole explanation in memory (for a figure) when there is no journal.
    pub keep: bool,
    pub report: &'a dyn Reporter,
}

impl Job<'_> {
    /// What identifies the run and what its files record: its settings, then its placement.
    fn identity(&self) -> Settings {
        self.settings.clone().and(&self.placement)
    }
}

/// What a run did.
pub enum Outcome {
    /// The `.npz` already held this run's whole explanation: nothing was computed.
    AlreadyComplete(PathBuf),
    /// The run's summary, with the whole explanation when it was joined in memory.
    Done {
        /// Per image and for the run.
        summary: Box<ExplanationSummary>,
        /// The whole explanation, when it was joined in memory.
        explanation: Option<Box<Explanation>>,
        /// Wall-clock seconds of the chunks.
        seconds: f64,
        /// The tutorial CNN's incremental evaluation: its work as a share of full evaluations.
        work_fraction: Option<f64>,
    },
}

/// Recorded in each chunk file (with the run's settings): its images, and the incremental
/// path's work on them (`positions/images`).
const CHUNK: &str = "chunk";
const WORK: &str = "incremental_work";

/// Explain the selection chunk by chunk.
pub(crate) fn run(job: &Job) -> Result<Outcome> {
    let start = Instant::now();
    let n = job.selection.len();
    let ranges: Vec<Range<usize>> = (0..n.div_ceil(job.chunk))
        .map(|c| c * job.chunk..((c + 1) * job.chunk).min(n))
        .collect();
    let (summary, explanation) = match journaled(job.npz) {
        Some(npz) => {
            let Some(summary) = journaled_run(job, npz, &ranges)? else {
                return Ok(Outcome::AlreadyComplete(npz.to_path_buf()));
            };
            (summary, None)
        }
        None => in_memory_run(job, &ranges)?,
    };
    job.report.finish();
    let work_fraction = summary
        .settings
        .get(WORK_FRACTION)
        .and_then(|w| w.parse().ok());
    Ok(Outcome::Done {
        work_fraction,
        summary: Box::new(summary),
        explanation,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The `--npz` path when it can hold a journal beside it: a regular file or a new path.
fn journaled(npz: Option<&Path>) -> Option<&Path> {
    let p = npz?;
    if p == Path::new(shap_io::STDOUT) {
        return None;
    }
    match std::fs::metadata(p) {
        Ok(m) if !m.is_file() => None,
        _ => Some(p),
    }
}

/// Run with a journal; `None` when `npz` already holds this run's whole explanation.
fn journaled_run(
    job: &Job,
    npz: &Path,
    ranges: &[Range<usize>],
) -> Result<Option<ExplanationSummary>> {
    let identity = job.identity();
    let digest = job.selection.digest()?;
    let manifest = Manifest::new(
        identity.clone(),
        digest.clone(),
        job.selection.len(),
        job.chunk,
    );
    if is_complete(npz, &identity, &digest, job.report)? {
        // A run killed after writing the file but before removing its journal.
        if Journal::dir_for(npz).exists() {
            Journal::open(npz, &manifest)?.remove_finished(job.report)?;
        }
        return Ok(None);
    }
    let journal = Journal::open(npz, &manifest)?;
    job.report.start(job.selection.len());
    let done = match journal_chunks(job, &journal, ranges) {
        Ok(done) => done,
        Err(e) => {
            // A run that failed before any chunk was saved leaves nothing behind.
            if !journal.has_chunks() {
                journal.remove(&[], job.report)?;
            }
            return Err(e);
        }
    };
    if done.reused > 0 {
        job.report.note(&format!(
            "resumed: {} of {} chunks were already done in {}",
            done.reused,
            ranges.len(),
            Journal::dir_for(npz).display()
        ));
    }
    let (paths, summaries, work) = (done.paths, done.summaries, done.work);
    let (file, summary) = final_settings(job, work);
    shap_explain::join_npz(&paths, &file, npz)?;
    journal.remove(&paths, job.report)?;
    Ok(Some(combine(summaries, summary)?))
}

/// The chunks of a journaled run: their files, summaries and work, and how many were reused.
struct JournalChunks {
    paths: Vec<PathBuf>,
    summaries: Vec<ExplanationSummary>,
    work: Work,
    reused: usize,
}

/// Reuse or compute every chunk of `ranges`, saving each computed one in `journal`.
fn journal_chunks(job: &Job, journal: &Journal, ranges: &[Range<usize>]) -> Result<JournalChunks> {
    let mut done = JournalChunks {
        paths: Vec::with_capacity(ranges.len()),
        summaries: Vec::with_capacity(ranges.len()),
        work: Work::default(),
        reused: 0,
    };
    for r in ranges {
        let path = journal.chunk_path(r);
        journal.clear_irregular(&path, job.report)?;
        let e = match reuse(job, &path, r) {
            Some(e) => {
                job.report.skipped(r.len());
                done.reused += 1;
                e
            }
            None => {
                let e = compute(job, r)?;
                journal.clear_irregular(&path, job.report)?;
                e.save_npz(&path)?;
                e
            }
        };
        done.work.add(&e);
        done.summaries.push(e.summary());
        done.paths.push(path);
    }
    Ok(done)
}

/// Run without a journal: the chunks' summaries, and the chunks joined in memory when a
/// file needs the values (an `.npz` to standard output or a device, a figure); the `.npz` is
/// written here.
fn in_memory_run(
    job: &Job,
    ranges: &[Range<usize>],
) -> Result<(ExplanationSummary, Option<Box<Explanation>>)> {
    job.report.start(job.selection.len());
    let keep = job.npz.is_some() || job.keep;
    let mut parts = Vec::with_capacity(ranges.len());
    let mut summaries = Vec::with_capacity(ranges.len());
    let mut work = Work::default();
    for r in ranges {
        let e = compute(job, r)?;
        work.add(&e);
        summaries.push(e.summary());
        if keep {
            parts.push(e);
        }
    }
    let (file, summary) = final_settings(job, work);
    let summary = combine(summaries, summary)?;
    if !keep {
        return Ok((summary, None));
    }
    let mut all = Explanation::concat(parts)?;
    all.settings = file;
    if let Some(npz) = job.npz {
        all.save_npz(npz)?;
    }
    Ok((summary, Some(Box::new(all))))
}

/// Explain the images `r` of the selection, as a chunk file records them.
fn compute(job: &Job, r: &Range<usize>) -> Result<Explanation> {
    let pixels = job.selection.pixels(r.clone())?;
    let scores = job.net.scores(&pixels)?;
    let before = job.net.work_stats();
    let explainer = job.explainer.starting_at((job.first + r.start) as u64);
    let mut e = explainer.explain_with_progress(
        job.net.model(),
        &pixels,
        job.net.shape(),
        job.masker,
        job.report,
    )?;
    e.images = job.selection.items()[r.clone()]
        .iter()
        .enumerate()
        .map(|(i, item)| image_info(item, i, &scores, job.names))
        .collect();
    e.settings = job.identity();
    e.settings.push(CHUNK, format!("{}..{}", r.start, r.end));
    if let (Some(a), Some(b)) = (job.net.work_stats(), before) {
        let w = a.since(b);
        e.settings
            .push(WORK, format!("{}/{}", w.positions, w.images));
    }
    Ok(e)
}

/// The chunk file at `path`, when it is there and is exactly what this run would compute
/// for images `r`; a file that cannot be read or differs is computed again, with a note.
fn reuse(job: &Job, path: &Path, r: &Range<usize>) -> Option<Explanation> {
    if !path.exists() {
        return None;
    }
    let checked = Explanation::load_npz(path)
        .map_err(|e| chain(&e))
        .and_then(|e| check_chunk(job, &e, r).map(|()| e));
    match checked {
        Ok(e) => Some(e),
        Err(why) => {
            job.report.note(&format!(
                "{}: {why}; computing that chunk again",
                path.display()
            ));
            None
        }
    }
}

/// A chunk file holds this run's settings, images `r` and their pixels.
fn check_chunk(job: &Job, e: &Explanation, r: &Range<usize>) -> Result<(), String> {
    let mut settings = e.settings.clone();
    settings.retain(|s| s.name != CHUNK && s.name != WORK);
    if settings != job.identity() {
        return Err("it was made with other settings".into());
    }
    if e.setting(CHUNK) != Some(format!("{}..{}", r.start, r.end).as_str())
        || e.num_images != r.len()
    {
        return Err(format!("it does not hold images {}..{}", r.start, r.end));
    }
    let pixels = job.selection.pixels(r.clone()).map_err(|e| e.to_string())?;
    let sources = job.selection.items()[r.clone()].iter().map(|i| &i.source);
    if e.data != pixels || !e.images.iter().map(|i| &i.source).eq(sources) {
        return Err("it explains other images".into());
    }
    Ok(())
}

/// The incremental path's work over chunks (positions, images).
#[derive(Default)]
struct Work(Option<shap_model::IncrementalStats>);

impl Work {
    fn add(&mut self, e: &Explanation) {
        let Some((p, i)) = e.setting(WORK).and_then(|w| w.split_once('/')) else {
            return;
        };
        let (Ok(positions), Ok(images)) = (p.parse::<u64>(), i.parse::<u64>()) else {
            return;
        };
        let s = self.0.get_or_insert_default();
        s.positions += positions;
        s.images += images;
    }
}

/// The final file's settings (the run's and its placement), and the summary's, which add the
/// incremental path's share of the work over all chunks: a statistic of the processes that
/// ran (it depends on which cached states each thread found), so not in the `.npz`, whose
/// bytes do not depend on how the run was interrupted.
fn final_settings(job: &Job, work: Work) -> (Settings, Settings) {
    let file = job.identity();
    let mut summary = job.settings.clone();
    if let Some(w) = work.0 {
        summary.push(WORK_FRACTION, format!("{:.4}", w.work_fraction()));
    }
    (file, summary.and(&job.placement))
}

/// The chunks' summaries as one summary of the run.
fn combine(parts: Vec<ExplanationSummary>, settings: Settings) -> Result<ExplanationSummary> {
    let mut it = parts.into_iter();
    let Some(mut all) = it.next() else {
        refuse!("no images to explain");
    };
    for p in it {
        all.append(p);
    }
    all.settings = settings
        .iter()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    Ok(all)
}

/// Whether `npz` already holds the whole explanation of a run with `identity` (settings and
/// placement; files of earlier versions also recorded the incremental statistic) over the
/// images of `digest`.
fn is_complete(
    npz: &Path,
    identity: &Settings,
    digest: &str,
    report: &dyn Reporter,
) -> Result<bool> {
    if !npz.is_file() {
        return Ok(false);
    }
    let Ok((mut settings, _)) = shap_explain::npz_settings(npz) else {
        return Ok(false);
    };
    settings.retain(|s| s.name != WORK_FRACTION);
    if &settings != identity {
        return Ok(false);
    }
    match npz_digest(npz) {
        Ok(d) => Ok(d == digest),
        Err(e) => {
            report.note(&format!(
                "{}: {}; computing it again",
                npz.display(),
                chain(&e)
            ));
            Ok(false)
        }
    }
}
