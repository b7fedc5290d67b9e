//! How the masks of the explained images reach the model.
//!
//! Each explainer runs one [`Job`] per image: a state machine that asks for a set of masks,
//! receives the model's outputs for them, and asks again until it is done. Two schedules drive
//! the jobs, and the numbers never depend on which (every job sees the same outputs for the
//! same masks, given a model that is deterministic per row):
//!
//! - [`run_per_image`] (the default): images in parallel on rayon's threads, each job's masks
//!   sent to [`BatchModel::eval_masked`] on their own (one Owen step, one permutation chunk),
//!   so an incremental model sees the masks beside their image.
//! - [`run_gathered`] (when [`BatchModel::batch_rows`] is `Some(n)`): groups of images advance
//!   in lockstep, and the masks of all images of a group go to [`BatchModel::eval_batch`] in
//!   calls of up to `n` rows, which is what a GPU or an ONNX runtime wants. Groups run in
//!   parallel.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::{BatchModel, ExplainError, MaskedBatch, MaskedImages, Result};
use shap_mask::ImageShape;

/// At most this many f32 values (rows x features) go to the model in one per-image call;
/// larger requests are split into equal chunks (fixed sizes, so results never depend on
/// thread count).
pub(crate) const MAX_BATCH_FLOATS: usize = 1 << 22;

/// One explained image's algorithm, as a sequence of mask requests.
pub(crate) trait Job: Send + Sync {
    /// Prepare the next request and return its number of masks; 0 when the job is done.
    fn next_rows(&mut self) -> Result<usize>;
    /// Write mask `r` of the pending request into `row` (`M` bools, all false on entry;
    /// `true` = feature kept).
    fn fill(&self, r: usize, row: &mut [bool]);
    /// Receive the model's outputs for the pending request: `rows * K` finite values.
    fn receive(&mut self, out: &[f32]) -> Result<()>;
}

/// What the schedule measured for one image.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    /// Rows evaluated.
    pub evals: usize,
    /// Model calls that held at least one of the image's rows.
    pub calls: usize,
    /// Time inside the model (a gathered call's time is shared out by rows).
    pub model_time: Duration,
    /// Time spent on the image in all (a gathered round's time is shared out by rows).
    pub elapsed: Duration,
}

/// Told about each explained image as soon as it is finished, from whichever thread finished
/// it: keep it cheap (a counter, a progress bar's `inc`). Closures `Fn(image, evals)` are
/// `Progress`es.
pub trait Progress: Sync {
    /// Image `image` (its index in the batch) is done, after `evals` model evaluations.
    fn image_done(&self, image: usize, evals: usize);
}

impl<F: Fn(usize, usize) + Sync> Progress for F {
    fn image_done(&self, image: usize, evals: usize) {
        self(image, evals)
    }
}

/// No progress reporting.
pub(crate) fn silent(_: usize, _: usize) {}

/// Everything a schedule needs besides the jobs.
pub(crate) struct Setup<'a, M: BatchModel + ?Sized, P: MaskedImages> {
    pub model: &'a M,
    pub prepared: &'a [P],
    pub images: &'a [f32],
    pub shape: ImageShape,
    pub progress: &'a dyn Progress,
}

impl<M: BatchModel + ?Sized, P: MaskedImages> Setup<'_, M, P> {
    fn image(&self, i: usize) -> &[f32] {
        let m = self.shape.features();
        &self.images[i * m..(i + 1) * m]
    }

    /// Mask rows `keeps` of image `i` into `out`, naming the image in errors.
    fn mask(&self, i: usize, keeps: &[bool], out: &mut [f32]) -> Result<()> {
        self.prepared[i]
            .fill_batch(keeps, out)
            .map_err(|e| match e {
                ExplainError::Mask {
                    image: None,
                    source,
                } => ExplainError::Mask {
                    image: Some(i),
                    source,
                },
                other => other,
            })
    }
}

/// Fail on the first non-finite output of image `image`.
fn check_finite(image: usize, out: &[f32], k: usize) -> Result<()> {
    match out.iter().position(|v| !v.is_finite()) {
        Some(j) => Err(ExplainError::NonFinite {
            image,
            output: j % k,
            value: out[j],
        }),
        None => Ok(()),
    }
}

/// Per-image buffers, reused across the requests of one job.
#[derive(Default)]
struct Buffers {
    keeps: Vec<bool>,
    imgs: Vec<f32>,
    out: Vec<f32>,
}

/// Run the jobs of images `0..n` one image at a time (in parallel unless `parallel` is false,
/// for jobs that share a random stream in image order). The first error by image index wins.
pub(crate) fn run_per_image<M, P, J>(
    setup: &Setup<'_, M, P>,
    n: usize,
    parallel: bool,
    make: impl Fn(usize) -> Result<J> + Sync,
) -> Result<Vec<(J, Counters)>>
where
    M: BatchModel + ?Sized,
    P: MaskedImages,
    J: Job,
{
    let one = |i: usize| {
        let t0 = Instant::now();
        let mut job = make(i)?;
        let mut c = Counters::default();
        let mut buf = Buffers::default();
        loop {
            let rows = job.next_rows()?;
            if rows == 0 {
                break;
            }
            eval_request(setup, i, &job, rows, &mut buf, &mut c)?;
            job.receive(&buf.out)?;
        }
        c.elapsed = t0.elapsed();
        setup.progress.image_done(i, c.evals);
        Ok((job, c))
    };
    let res: Vec<Result<(J, Counters)>> = if parallel {
        (0..n).into_par_iter().map(one).collect()
    } else {
        (0..n).map(one).collect()
    };
    res.into_iter().collect()
}

/// Evaluate one request of image `i` through `eval_masked`, in calls of at most
/// [`MAX_BATCH_FLOATS`] values; the outputs end in `buf.out`.
fn eval_request<M, P, J>(
    setup: &Setup<'_, M, P>,
    i: usize,
    job: &J,
    rows: usize,
    buf: &mut Buffers,
    c: &mut Counters,
) -> Result<()>
where
    M: BatchModel + ?Sized,
    P: MaskedImages,
    J: Job,
{
    let m = setup.shape.features();
    let k = setup.model.num_outputs();
    let per_call = (MAX_BATCH_FLOATS / m.max(1)).max(1);
    buf.out.resize(rows * k, 0.0);
    let mut start = 0;
    while start < rows {
        let n = per_call.min(rows - start);
        buf.keeps.clear();
        buf.keeps.resize(n * m, false);
        for (r, row) in buf.keeps.chunks_exact_mut(m).enumerate() {
            job.fill(start + r, row);
        }
        // Every value is overwritten by the masker: no need to clear.
        buf.imgs.resize(n * m, 0.0);
        setup.mask(i, &buf.keeps, &mut buf.imgs)?;
        let out = &mut buf.out[start * k..(start + n) * k];
        let batch = MaskedBatch {
            original: setup.image(i),
            keeps: &buf.keeps,
            images: &buf.imgs,
            n,
            shape: setup.shape,
        };
        let t0 = Instant::now();
        setup
            .model
            .eval_masked(batch, out)
            .map_err(|source| ExplainError::Model { image: i, source })?;
        c.model_time += t0.elapsed();
        c.calls += 1;
        c.evals += n;
        check_finite(i, out, k)?;
        start += n;
    }
    Ok(())
}

/// Gathered schedules split the images into at least this many groups when they can.
const MIN_GROUPS: usize = 8;

/// One image of a gathered group: its index, job, counters and pending row count.
struct Slot<J> {
    image: usize,
    job: J,
    c: Counters,
    rows: usize,
    done: bool,
}

/// Run the jobs of images `0..n` in groups of `group` images that advance in lockstep, each
/// round's masks sent in model calls of at most `rows_per_call` rows. Groups run in parallel.
pub(crate) fn run_gathered<M, P, J>(
    setup: &Setup<'_, M, P>,
    n: usize,
    group: usize,
    rows_per_call: usize,
    make: impl Fn(usize) -> Result<J> + Sync,
) -> Result<Vec<(J, Counters)>>
where
    M: BatchModel + ?Sized,
    P: MaskedImages,
    J: Job,
{
    // At least MIN_GROUPS groups (when there are as many images), so that a few images still
    // keep several threads busy; the grouping depends on `n` only, never on the thread count.
    let group = group.min(n.div_ceil(MIN_GROUPS)).max(1);
    let starts: Vec<usize> = (0..n).step_by(group).collect();
    let res: Vec<Result<Vec<(J, Counters)>>> = starts
        .into_par_iter()
        .map(|s| {
            let ids = s..(s + group).min(n);
            run_group(setup, ids, rows_per_call.max(1), &make)
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for r in res {
        all.extend(r?);
    }
    Ok(all)
}

/// One lockstep group (see [`run_gathered`]).
fn run_group<M, P, J>(
    setup: &Setup<'_, M, P>,
    ids: std::ops::Range<usize>,
    rows_per_call: usize,
    make: &(impl Fn(usize) -> Result<J> + Sync),
) -> Result<Vec<(J, Counters)>>
where
    M: BatchModel + ?Sized,
    P: MaskedImages,
    J: Job,
{
    let mut slots = Vec::with_capacity(ids.len());
    for image in ids {
        let t0 = Instant::now();
        let job = make(image)?;
        let c = Counters {
            elapsed: t0.elapsed(),
            ..Counters::default()
        };
        slots.push(Slot {
            image,
            job,
            c,
            rows: 0,
            done: false,
        });
    }
    let mut buf = Buffers::default();
    loop {
        let t0 = Instant::now();
        let mut total = 0;
        for s in slots.iter_mut().filter(|s| !s.done) {
            s.rows = s.job.next_rows()?;
            if s.rows == 0 {
                s.done = true;
                setup.progress.image_done(s.image, s.c.evals);
            }
            total += s.rows;
        }
        if total == 0 {
            break;
        }
        gathered_round(setup, &mut slots, total, rows_per_call, &mut buf)?;
        let k = setup.model.num_outputs();
        let mut at = 0;
        for s in slots.iter_mut().filter(|s| s.rows > 0) {
            let out = &buf.out[at * k..(at + s.rows) * k];
            check_finite(s.image, out, k)?;
            s.job.receive(out)?;
            at += s.rows;
        }
        // The round's time, shared out by rows like the model's.
        let round = t0.elapsed();
        for s in slots.iter_mut().filter(|s| s.rows > 0) {
            s.c.elapsed += round * s.rows as u32 / total as u32;
        }
    }
    Ok(slots.into_iter().map(|s| (s.job, s.c)).collect())
}

/// Mask every pending request of the group into one contiguous buffer and evaluate it in
/// calls of at most `rows_per_call` rows; the outputs end in `buf.out`, in slot order.
fn gathered_round<M, P, J>(
    setup: &Setup<'_, M, P>,
    slots: &mut [Slot<J>],
    total: usize,
    rows_per_call: usize,
    buf: &mut Buffers,
) -> Result<()>
where
    M: BatchModel + ?Sized,
    P: MaskedImages,
    J: Job,
{
    let m = setup.shape.features();
    let k = setup.model.num_outputs();
    buf.keeps.clear();
    buf.keeps.resize(total * m, false);
    buf.imgs.resize(total * m, 0.0);
    buf.out.resize(total * k, 0.0);
    // Hand each pending slot its own part of the buffers, then mask in parallel.
    let mut parts = Vec::new();
    let (mut keeps, mut imgs) = (&mut buf.keeps[..], &mut buf.imgs[..]);
    for s in slots.iter().filter(|s| s.rows > 0) {
        let (kh, kt) = std::mem::take(&mut keeps).split_at_mut(s.rows * m);
        let (ih, it) = std::mem::take(&mut imgs).split_at_mut(s.rows * m);
        parts.push((s, kh, ih));
        (keeps, imgs) = (kt, it);
    }
    parts.into_par_iter().try_for_each(|(s, kp, ip)| {
        for (r, row) in kp.chunks_exact_mut(m).enumerate() {
            s.job.fill(r, row);
        }
        setup.mask(s.image, kp, ip)
    })?;
    let mut start = 0;
    while start < total {
        let n = rows_per_call.min(total - start);
        let t0 = Instant::now();
        let out = &mut buf.out[start * k..(start + n) * k];
        let images = &buf.imgs[start * m..(start + n) * m];
        if let Err(source) = setup.model.eval_batch(images, n, setup.shape, out) {
            return Err(blame(setup, slots, &buf.imgs, start, n, source));
        }
        share_call(slots, start, n, t0.elapsed());
        start += n;
    }
    Ok(())
}

/// A gathered call over rows `start..start + n` of the round failed with `source`: find the
/// image to blame by evaluating each image's rows of that call on their own. The first image
/// that fails alone gets its own error; when none does, the call's first image gets `source`.
fn blame<M, P, J>(
    setup: &Setup<'_, M, P>,
    slots: &[Slot<J>],
    imgs: &[f32],
    start: usize,
    n: usize,
    source: crate::ModelError,
) -> ExplainError
where
    M: BatchModel + ?Sized,
    P: MaskedImages,
{
    let (m, k) = (setup.shape.features(), setup.model.num_outputs());
    let mut at = 0;
    let mut first = None;
    for s in slots.iter().filter(|s| s.rows > 0) {
        let (lo, hi) = (at.max(start), (at + s.rows).min(start + n));
        at += s.rows;
        if lo >= hi {
            continue;
        }
        first.get_or_insert(s.image);
        let mut out = vec![0.0f32; (hi - lo) * k];
        let rows = &imgs[lo * m..hi * m];
        if let Err(e) = setup.model.eval_batch(rows, hi - lo, setup.shape, &mut out) {
            return ExplainError::Model {
                image: s.image,
                source: e,
            };
        }
    }
    ExplainError::Model {
        image: first.unwrap_or(0),
        source,
    }
}

/// Count a call of rows `start..start + n` for every slot it holds rows of, sharing its time
/// out by rows.
fn share_call<J>(slots: &mut [Slot<J>], start: usize, n: usize, time: Duration) {
    let mut at = 0;
    for s in slots.iter_mut().filter(|s| s.rows > 0) {
        let (lo, hi) = (at.max(start), (at + s.rows).min(start + n));
        at += s.rows;
        if lo < hi {
            let share = (hi - lo) as u32;
            s.c.calls += 1;
            s.c.evals += hi - lo;
            s.c.model_time += time * share / n as u32;
        }
    }
}

/// Rows per gathered model call for this model, if it gathers.
pub(crate) fn gather_rows<M: BatchModel + ?Sized>(model: &M) -> Option<usize> {
    model.batch_rows().map(|n| n.max(1))
}
