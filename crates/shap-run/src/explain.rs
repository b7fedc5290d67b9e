//! A whole explanation run: load the model, select the images (and the shard of them), check
//! every setting and the memory the run needs before any work, then explain chunk by chunk
//! with a journal beside the `.npz` ([`crate::journal`]).

use std::ops::Range;
use std::path::PathBuf;

use shap_explain::memory::{Bytes, RunSize, explain_plan, proc_status_kib};
use shap_explain::{Algorithm, Compat, ExplainerConfig, Method, OutputSelection, Settings};
use shap_mask::MaskerSpec;

use crate::chunks::{self, Job};
use crate::error::{Context, Result, refuse};
use crate::model::{Network, Options, class_names, memory_budget};
use crate::selection::{Images, Selection};
use crate::settings::{ModelIdentity, Outputs, Placement, RunSettings};
use crate::slicing::{ResolvedShard, Shard};
use crate::{Reporter, digest};

/// Everything a run is asked to do.
#[derive(Debug, Clone)]
pub struct ExplainRun {
    /// The model file: a `.safetensors` checkpoint of the tutorial CNN, or an `.onnx` file.
    pub model: PathBuf,
    /// How to load and run it. `concurrent` is set by the run (how many images it explains
    /// at once).
    pub options: Options,
    /// Class names, one per line, one per output.
    pub labels: Option<PathBuf>,
    /// Which images.
    pub images: Images,
    /// Partition or Permutation.
    pub algorithm: Algorithm,
    /// The masker, shap's spelling.
    pub masker: MaskerSpec,
    /// Model evaluations per image; `None` for the algorithm's default.
    pub max_evals: Option<usize>,
    /// Which classes each image explains; `None` for the top 5 (all outputs of a smaller
    /// model).
    pub outputs: Option<OutputSelection>,
    /// The seed of the orders and tie-breaks.
    pub seed: u64,
    /// shap 0.51's exact behaviour (one chunk, no shards).
    pub shap_compat: bool,
    /// Only this slice of the selection.
    pub shard: Option<Shard>,
    /// Images per chunk; `None` for 100, fewer when a chunk's values would pass 64 MiB.
    pub chunk: Option<usize>,
    /// Where the explanation goes (a journal is kept beside a regular file).
    pub npz: Option<PathBuf>,
    /// Keep the whole explanation in memory (to draw it) when there is no journal.
    pub keep: bool,
}

pub use crate::chunks::Outcome;

/// A finished run and what ran it.
pub struct Report {
    /// What the run did.
    pub outcome: Outcome,
    /// What ran the model (`shap-model`, `onnxruntime 1.32.0`).
    pub engine: String,
    /// Probabilities or logits.
    pub outputs: Outputs,
    /// The run's settings.
    pub settings: RunSettings,
}

/// Carry out `run`, telling `report` what happens.
pub fn explain(run: &ExplainRun, report: &dyn Reporter) -> Result<Report> {
    check_compat(run)?;
    let shard = run.shard.map(|s| s.resolve()).transpose()?;
    if let Some(ResolvedShard {
        index,
        count,
        from: Some(var),
    }) = shard
    {
        report.note(&format!("shard {index}/{count} from {var}"));
    }
    let net = Network::load(&run.model, &load_options(run), report)?;
    let names = class_names(run.labels.as_deref(), &net)?;
    let outputs = output_selection(run.outputs.as_ref(), names.len())?;
    let explainer = config(run, &outputs, &names).check()?;
    let masker = explainer.masker(run.masker);
    let selection = Selection::new(&run.images, &net, report)?;
    let sources = selection.sources_sha256();
    let (selection, positions) = match shard {
        Some(s) => {
            let total = selection.len();
            let (part, range) = selection.shard(s)?;
            (part, Some((range, total)))
        }
        None => (selection, None),
    };
    let settings = run_settings(run, &net, &outputs)?;
    check_work(run, &net, &outputs, selection.len())?;
    let chunk = chunk_size(run, &net, &outputs, selection.len())?;
    check_memory(run, &net, &outputs, chunk.min(selection.len()), report)?;
    let job = Job {
        net: &net,
        explainer: &explainer,
        masker: &masker,
        names: &names,
        selection: &selection,
        settings: settings.record(),
        placement: placement(positions.as_ref(), sources),
        first: positions.as_ref().map_or(0, |(r, _)| r.start),
        chunk,
        npz: run.npz.as_deref(),
        keep: run.keep,
        report,
    };
    let outcome = chunks::run(&job).with_context(|| match (&positions, shard) {
        (Some((r, _)), Some(s)) => format!(
            "shard {}/{} (images {}..{} of the selection)",
            s.index, s.count, r.start, r.end
        ),
        _ => "explaining".to_string(),
    })?;
    Ok(Report {
        outcome,
        engine: net.engine().to_string(),
        outputs: net.outputs_kind(),
        settings,
    })
}

/// `--shard` and `--chunk` against `--shap-compat`, whose random stream runs through the
/// images in order.
fn check_compat(run: &ExplainRun) -> Result<()> {
    match (run.shap_compat, run.shard, run.chunk) {
        (true, Some(_), _) => refuse!(
            "--shard cannot be combined with --shap-compat: shap's random stream runs through \
             the images in order, so the parts would not add up to one run"
        ),
        (true, _, Some(_)) => refuse!(
            "--chunk cannot be combined with --shap-compat: shap's random stream runs through \
             the images in order, so its run is one chunk"
        ),
        (_, _, Some(0)) => refuse!("--chunk needs N >= 1"),
        _ => Ok(()),
    }
}

/// The loading options with how many images run at once: one with `--shap-compat`, else as
/// many as are named when they are counted up front.
fn load_options(run: &ExplainRun) -> Options {
    let mut o = run.options.clone();
    o.inpainting = run.masker.is_inpaint();
    o.concurrent = if run.shap_compat {
        1
    } else {
        run.images.known_count()
    };
    o
}

/// The classes asked for, for a model with `k` outputs. An explicit top-k above `k` is an
/// error; the default top 5 explains all outputs of a smaller model.
fn output_selection(asked: Option<&OutputSelection>, k: usize) -> Result<OutputSelection> {
    let selection = match asked {
        Some(OutputSelection::TopK(t)) if *t > k => {
            refuse!("--top-k {t}: the model has only {k} outputs (use --all-classes)")
        }
        Some(o) => o.clone(),
        None => OutputSelection::default(),
    };
    selection.validate(k)?;
    Ok(selection)
}

/// The explainer configuration of the run (checked once, before any work).
fn config(run: &ExplainRun, outputs: &OutputSelection, names: &[String]) -> ExplainerConfig {
    let method = Method::new(run.algorithm);
    ExplainerConfig {
        method: run.max_evals.map_or(method, |n| method.max_evals(n)),
        compat: compat(run),
        seed: run.seed,
        outputs: outputs.clone(),
        output_names: Some(names.to_vec()),
        ..ExplainerConfig::with_method(method)
    }
}

fn compat(run: &ExplainRun) -> Compat {
    if run.shap_compat {
        Compat::Shap
    } else {
        Compat::Default
    }
}

/// The run's settings: what it asked for and what the model turned out to be.
fn run_settings(run: &ExplainRun, net: &Network, outputs: &OutputSelection) -> Result<RunSettings> {
    let labels_sha256 = match &run.labels {
        Some(p) => Some(digest::sha256_file(p)?),
        None => None,
    };
    let o = &run.options;
    Ok(RunSettings {
        algorithm: run.algorithm,
        masker: run.masker,
        max_evals: run.max_evals,
        seed: run.seed,
        compat: compat(run),
        evaluation: net.evaluation(),
        engine: net.engine().to_string(),
        batch_size: net.model().batch_rows(),
        outputs: net.outputs_kind(),
        classes: outputs.clone(),
        input_layout: net.input_layout(),
        mean: o.mean.clone(),
        std: o.std.clone(),
        softmax: o.softmax,
        labels_sha256,
        model: ModelIdentity {
            file_name: run
                .model
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: digest::sha256_files(&run.model, net.data_files())?,
        },
    })
}

/// The settings that say where a shard sits in the whole selection (empty without a shard).
fn placement(positions: Option<&(Range<usize>, usize)>, sources: String) -> Settings {
    positions.map_or_else(Settings::new, |(range, total)| {
        Placement {
            positions: range.clone(),
            selection: *total,
            sources_sha256: sources,
        }
        .record()
    })
}

/// How many classes each image explains.
fn classes(net: &Network, outputs: &OutputSelection) -> usize {
    let k = net.model().num_outputs();
    match outputs {
        OutputSelection::TopK(t) => (*t).min(k),
        OutputSelection::Indices(v) => v.len(),
        OutputSelection::All => k,
    }
    .max(1)
}

/// Most Permutation passes per image a run may ask for: orders are drawn one pass at a time,
/// so memory is no limit, but a budget beyond this would run for days.
pub const MAX_PASSES: usize = 100_000;

/// Refuse before any work an `.npz` the format cannot hold, and a Permutation budget of more
/// than [`MAX_PASSES`] passes.
fn check_work(run: &ExplainRun, net: &Network, outputs: &OutputSelection, n: usize) -> Result<()> {
    let (m, k) = (net.shape().features(), classes(net, outputs));
    if run.npz.is_some()
        && let Some(gib) = npz_too_big(n, m, k)
    {
        refuse!(
            "--npz: {n} images x {k} classes of {m} values would make a file of about {gib:.1} \
             GiB, more than the .npz format's 4 GiB (no zip64): explain fewer classes (--top-k), \
             or split the run with --range or --shard and keep the parts apart"
        );
    }
    if let (Algorithm::Permutation, Some(me)) = (run.algorithm, run.max_evals) {
        let per_pass = 2 * m + 1;
        if me / per_pass > MAX_PASSES {
            refuse!(
                "--max-evals {me} asks for {} permutation passes per image; the limit is \
                 {MAX_PASSES}: use --max-evals {} or less",
                me / per_pass,
                (MAX_PASSES + 1) * per_pass - 1
            );
        }
    }
    Ok(())
}

/// The size in GiB of the `.npz` of `n` images of `m` features explaining `k` classes, when
/// it passes 4 GiB (an `.npz` without zip64 cannot): the values take 8 bytes per image,
/// feature and class, the images 4 per image and feature; the rest is small.
fn npz_too_big(n: usize, m: usize, k: usize) -> Option<f64> {
    let bytes = (n as u128)
        .saturating_mul(m as u128)
        .saturating_mul((k as u128).saturating_mul(8).saturating_add(4));
    (bytes > u128::from(u32::MAX)).then(|| bytes as f64 / f64::from(1u32 << 30))
}

/// Images per chunk: the one asked for, else 100, or fewer when a chunk's values would pass
/// 64 MiB; with `--shap-compat`, the whole selection.
fn chunk_size(
    run: &ExplainRun,
    net: &Network,
    outputs: &OutputSelection,
    n: usize,
) -> Result<usize> {
    Ok(match run.chunk {
        Some(c) => c,
        None if run.shap_compat => n.max(1),
        None => {
            let per_image = net.shape().features() * classes(net, outputs) * 8;
            (64 * (1 << 20) / per_image.max(1)).clamp(1, 100)
        }
    })
}

/// Refuse, before any work, a run whose chunks cannot fit the memory budget; say what it
/// needs when that is over half of it.
fn check_memory(
    run: &ExplainRun,
    net: &Network,
    outputs: &OutputSelection,
    chunk: usize,
    report: &dyn Reporter,
) -> Result<()> {
    let plan = explain_plan(RunSize {
        features: net.shape().features(),
        images: chunk.max(1),
        explained: classes(net, outputs),
        model_outputs: net.model().num_outputs(),
        rows: net.model().batch_rows(),
        evals: run.max_evals.unwrap_or(usize::MAX),
        threads: rayon::current_num_threads(),
    });
    let budget = memory_budget(run.options.max_memory);
    plan.check(
        "explaining",
        &budget,
        "explain fewer classes (--top-k) or images at a time (--chunk), lower --batch-size, \
         or raise --max-memory if more can be had",
    )?;
    if plan.total() > budget.bytes / 2 {
        let in_use = proc_status_kib("VmRSS").unwrap_or(0) * 1024;
        report.detail(&format!(
            "memory: explaining needs {plan} on top of {} in use; {budget}",
            Bytes(in_use)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::npz_too_big;

    #[test]
    fn an_npz_past_4_gib_is_refused_before_any_work() {
        // The whole Fashion-MNIST test set with all ten classes fits (10,000 x 784 x 84 bytes).
        assert_eq!(npz_too_big(10_000, 784, 10), None);
        // 42,000 RGB images of 24x32 with the top 5: 42,000 x 2,304 x 44 bytes = 4.26e9 > 4 GiB.
        let gib = npz_too_big(42_400, 2_304, 5).expect("too big");
        assert!((3.9..4.1).contains(&gib), "{gib}");
        assert_eq!(npz_too_big(1_000, 2_304, 5), None);
        // 224x224x3 images, top 5: 100 fit, 10,000 do not; no overflow at absurd sizes.
        assert_eq!(npz_too_big(100, 150_528, 5), None);
        assert!(npz_too_big(10_000, 150_528, 5).is_some());
        assert!(npz_too_big(usize::MAX, usize::MAX, 1_000).is_some());
    }
}
