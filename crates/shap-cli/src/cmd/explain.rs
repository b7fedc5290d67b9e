//! `shap-cli explain`: Partition or Permutation SHAP explanations of test images or image
//! files, for the tutorial CNN or any ONNX image classifier.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use shap_data::FashionMnist;
use shap_explain::{
    Algorithm, Budget, Compat, ExplainerConfig, Explanation, ExplanationSummary, ImageInfo,
    ImageShape, OutputSelection, Progress,
};
use shap_io::OutputSpec;
use shap_mask::{Masker, MaskerSpec};

use super::network::{ModelFlags, Network, Options, class_names};
use super::{chunks, common};

/// Flags of `shap-cli explain`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --masker inpaint_telea --correct 4 --plot telea.png\n  \
    shap-cli explain --model model.safetensors --algorithm permutation --max-evals 1600 --wrong 4 --npz perm.npz\n  \
    shap-cli explain --model model.safetensors --indices 0,1,2,3 --classes 0,9 --json out.json\n  \
    shap-cli explain --model resnet.onnx --image cat.jpg --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --labels imagenet.txt --softmax --masker 'blur(32,32)' --plot cat.png")]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["indices", "correct", "wrong", "image", "range"]))]
pub struct Args {
    /// The model: a checkpoint written by `shap-cli train` (.safetensors), or an ONNX image
    /// classifier (.onnx) with one (N, C, H, W) or (N, H, W, C) input and one (N, K) output.
    #[arg(short, long, value_name = "MODEL.safetensors|MODEL.onnx")]
    pub model: PathBuf,
    /// Explainer: `partition` (Owen values over shap's image hierarchy) or `permutation`
    /// (antithetic, hierarchy-respecting orders).
    #[arg(long, value_enum, default_value = "partition")]
    pub algorithm: AlgorithmArg,
    /// Masker, shap spelling: `blur(kw,kh)`, `inpaint_telea`, `inpaint_ns`, or a number
    /// (negative numbers too: `--masker -1`).
    #[arg(long, default_value = "blur(28,28)", allow_hyphen_values = true)]
    pub masker: String,
    /// Test-set indices to explain, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "I,J,...", conflicts_with_all = ["correct", "wrong", "image"])]
    pub indices: Vec<usize>,
    /// Explain the first N correctly predicted test images (in index order; with --range,
    /// the first N in the range).
    #[arg(long, value_name = "N", conflicts_with_all = ["wrong", "image"])]
    pub correct: Option<usize>,
    /// Explain the first N wrongly predicted test images (in index order; with --range, the
    /// first N in the range).
    #[arg(long, value_name = "N", conflicts_with = "image")]
    pub wrong: Option<usize>,
    /// Test indices A (inclusive) to B (exclusive); with --correct/--wrong N, the first N
    /// such images in the range.
    #[arg(long, value_name = "A..B", conflicts_with_all = ["indices", "image"])]
    pub range: Option<String>,
    /// Explain only the I-th of N contiguous slices of the selection (0 <= I < N), for array
    /// jobs; `auto/N` reads I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
    /// SLURM_ARRAY_TASK_ID (Slurm). `shap-cli merge` joins the parts.
    #[arg(long, value_name = "I/N|auto/N")]
    pub shard: Option<String>,
    /// Images per chunk (default: 100, fewer for large images or many classes, so a chunk's
    /// values stay under 64 MiB). With --npz FILE, each finished chunk is saved in
    /// FILE.parts/, and rerunning the same command after a crash resumes from there.
    #[arg(long, value_name = "N")]
    pub chunk: Option<usize>,
    /// Explain image files (repeatable): PNG or JPEG of any size, converted to the model's
    /// channels (grey or RGB) and resized to its input size with a bilinear filter; pixel
    /// values in [0, 1].
    #[arg(long, value_name = "FILE")]
    pub image: Vec<PathBuf>,
    /// Model evaluations per image. Partition: default 500 (shap's). Permutation: passes =
    /// max_evals / (2*784+1), so at least 1569; without it, 10 passes.
    #[arg(long, value_name = "N")]
    pub max_evals: Option<usize>,
    /// Explain the K most likely classes of each image (default 5, as the tutorial, or all
    /// outputs of a model with fewer).
    #[arg(long, value_name = "K", conflicts_with_all = ["classes", "all_classes"])]
    pub top_k: Option<usize>,
    /// Explain these class indices, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "C,D,...",
        conflicts_with = "all_classes"
    )]
    pub classes: Vec<usize>,
    /// Explain every output of the model.
    #[arg(long)]
    pub all_classes: bool,
    /// Seed: Permutation orders, and (with --shap-compat) the Partition tie-break generator.
    #[arg(long, default_value_t = super::common::DEFAULT_SEED)]
    pub seed: u64,
    /// Reproduce shap 0.51 exactly: maskers truncate to u8 as shap does, Partition breaks ties
    /// with NumPy's legacy randn, Permutation returns all ten classes, unnamed.
    #[arg(long)]
    pub shap_compat: bool,
    #[command(flatten)]
    pub net: ModelFlags,
    /// Class names, one per line, one line per model output (default: Fashion-MNIST's names
    /// for a tutorial checkpoint, output indices for an ONNX model).
    #[arg(long, value_name = "FILE.txt")]
    pub labels: Option<PathBuf>,
    /// Directory holding the Fashion-MNIST IDX files (default: the usual search).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Save the explanation (values, base_values, output_indices, data, fx) as .npz.
    #[arg(long, value_name = "OUT.npz")]
    pub npz: Option<PathBuf>,
    /// Save a JSON summary (labels, classes, evaluations, efficiency errors, times).
    #[arg(long, value_name = "OUT.json")]
    pub json: Option<PathBuf>,
    /// Draw the explanation like `shap.image_plot` (PNG or SVG).
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The explainer (`--algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgorithmArg {
    /// Owen values over shap's image hierarchy.
    Partition,
    /// Antithetic, hierarchy-respecting permutations.
    Permutation,
}

impl AlgorithmArg {
    fn name(self) -> &'static str {
        Algorithm::from(self).name()
    }
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Partition => Self::Partition,
            AlgorithmArg::Permutation => Self::Permutation,
        }
    }
}

/// One image to explain, with what we know about it (its pixels are read per chunk,
/// [`Selection::pixels`]).
pub(super) struct Item {
    /// Test-set index, or None for an image file.
    index: Option<usize>,
    pub(super) source: String,
    label: Option<u8>,
}

/// The images to explain, in order: test images (pixels read from the test set per chunk)
/// or image files (a few, decoded at once).
pub(super) struct Selection {
    pub(super) items: Vec<Item>,
    /// The decoded `--image` files, one per item; empty for test images.
    files: Vec<Vec<f32>>,
    test: Option<shap_data::Split>,
}

impl Selection {
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// The pixels of images `r`, one after the other.
    pub(super) fn pixels(&self, r: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let Some(test) = &self.test else {
            return Ok(self.files.get(r).unwrap_or(&[]).concat());
        };
        let ids: Vec<usize> = self.items[r].iter().filter_map(|i| i.index).collect();
        Ok(test.images_f32(&ids)?)
    }

    /// SHA-256 of the images' sources and pixels, read 1,000 images at a time: what a
    /// journal and a finished file are checked against ([`super::chunks`]).
    pub(super) fn digest(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut pixels = Sha256::new();
        for start in (0..self.len()).step_by(1000) {
            let block = self.pixels(start..(start + 1000).min(self.len()))?;
            block.iter().for_each(|p| pixels.update(p.to_le_bytes()));
        }
        let sources: Vec<String> = self.items.iter().map(|i| i.source.clone()).collect();
        Ok(digest_hex(&sources, pixels))
    }

    /// Images `r` only.
    fn slice(self, r: std::ops::Range<usize>) -> Self {
        let files = if self.files.is_empty() {
            Vec::new()
        } else {
            self.files[r.clone()].to_vec()
        };
        let items = self.items.into_iter().skip(r.start).take(r.len()).collect();
        Self {
            items,
            files,
            test: self.test,
        }
    }
}

/// The selection digest from the sources and the pixels' hasher (one hex string).
pub(super) fn digest_hex(sources: &[String], pixels: sha2::Sha256) -> String {
    use sha2::{Digest, Sha256};
    let mut all = Sha256::new();
    for s in sources {
        all.update(s.as_bytes());
        all.update(b"\n");
    }
    all.update(pixels.finalize());
    all.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Run `shap-cli explain`: select the images, build the model, explain them chunk by chunk,
/// write and print.
pub fn run(args: Args) -> Result<()> {
    check_files(&args)?;
    let slicing = slicing(&args)?;
    let spec: MaskerSpec = args.masker.parse()?;
    let masker = Masker::new(spec, compat(&args).mask_mode());
    let net = Network::load(&args.model, &options(&args))?;
    let names = class_names(args.labels.as_deref(), &net)?;
    let outputs = output_selection(&args, names.len())?;
    let request = Request {
        outputs: outputs.clone(),
        names: names.clone(),
        first_stream: 0,
    };
    config(&args, request).check()?;
    let selection = select_images(&args, &net, slicing.range)?;
    let sources = sources_sha256(&selection);
    let (selection, positions) = shard(selection, slicing.shard)?;
    check_npz_size(&args, &net, &outputs, selection.len())?;
    if args.algorithm == AlgorithmArg::Permutation {
        common::check_permutation_budget(args.max_evals, net.shape().features())?;
    }
    let job = chunks::Job {
        args: &args,
        net: &net,
        masker: &masker,
        names: &names,
        outputs: &outputs,
        selection: &selection,
        settings: settings(&args, &net, spec, &outputs)?,
        placement: placement(positions.as_ref(), &sources),
        first: positions.as_ref().map_or(0, |p| p.range.start),
        chunk: chunk_size(&args, &net, &outputs, selection.len())?,
    };
    check_memory(&args, &net, &outputs, job.chunk.min(selection.len()))?;
    let outcome = chunks::run(&job).with_context(|| match (&positions, slicing.shard) {
        (Some(p), Some((i, n))) => format!(
            "shard {i}/{n} (images {}..{} of the selection)",
            p.range.start, p.range.end
        ),
        _ => "explaining".to_string(),
    })?;
    finish(&args, &net, spec, outcome)
}

/// Write what the run did not write yet (JSON, figure) and print its summary.
fn finish(args: &Args, net: &Network, spec: MaskerSpec, outcome: chunks::Outcome) -> Result<()> {
    let (summary, explanation, seconds) = match outcome {
        chunks::Outcome::AlreadyComplete(npz) => {
            note!(
                "{} is already complete (same settings, model and images): nothing to compute",
                npz.display()
            );
            if args.json.is_some() || args.plot.is_some() {
                let e = Explanation::load_npz(&npz)?;
                if let Some(p) = &args.json {
                    e.save_json(p)?;
                }
                plot(args, &e)?;
            }
            return Ok(());
        }
        chunks::Outcome::Done {
            summary,
            explanation,
            seconds,
        } => (summary, explanation, seconds),
    };
    save(args, explanation.as_deref(), &summary)?;
    let quiet = args.quiet || common::any_stdout(&[args.npz.as_deref(), args.json.as_deref()]);
    if !quiet {
        print_summary(net, &summary, seconds, spec)?;
        if args.shap_compat && spec.is_inpaint() {
            common::print(|o| writeln!(o, "{TRUNCATED_NOTE}"))?;
        }
    }
    Ok(())
}

/// Images per chunk: `--chunk`, else 100, or fewer when a chunk's values would pass 64 MiB;
/// with `--shap-compat`, the whole selection (shap's random stream runs through it in order).
fn chunk_size(args: &Args, net: &Network, outputs: &OutputSelection, n: usize) -> Result<usize> {
    match args.chunk {
        Some(_) if args.shap_compat => bail!(
            "--chunk cannot be combined with --shap-compat: shap's random stream runs through \
             the images in order, so its run is one chunk"
        ),
        Some(0) => bail!("--chunk needs N >= 1"),
        Some(c) => Ok(c),
        None if args.shap_compat => Ok(n.max(1)),
        None => {
            let per_image = net.shape().features() * classes(net, outputs) * 8;
            Ok((64 * (1 << 20) / per_image.max(1)).clamp(1, 100))
        }
    }
}

/// Refuse, before any work, a run whose chunks cannot fit the memory budget; say what it
/// needs when that is over half of it.
fn check_memory(args: &Args, net: &Network, outputs: &OutputSelection, chunk: usize) -> Result<()> {
    let size = shap_explain::memory::RunSize {
        features: net.shape().features(),
        images: chunk.max(1),
        explained: classes(net, outputs),
        model_outputs: net.model().num_outputs(),
        rows: net.model().batch_rows(),
        evals: args.max_evals.unwrap_or(usize::MAX),
        threads: rayon::current_num_threads(),
    };
    let plan = shap_explain::memory::explain_plan(size);
    let budget = super::network::memory_budget(args.net.max_memory);
    plan.check(
        "explaining",
        &budget,
        "explain fewer classes (--top-k) or images at a time (--chunk), lower --batch-size, \
         or raise --max-memory if more can be had",
    )?;
    if plan.total() > budget.bytes / 2 && !args.quiet {
        let in_use = shap_explain::memory::proc_status_kib("VmRSS").unwrap_or(0) * 1024;
        note!(
            "memory: explaining needs {plan} on top of {} in use; {budget}",
            shap_explain::memory::Bytes(in_use)
        );
    }
    Ok(())
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

/// Refuse before any work a `--npz` the format cannot hold.
fn check_npz_size(args: &Args, net: &Network, outputs: &OutputSelection, n: usize) -> Result<()> {
    if args.npz.is_none() {
        return Ok(());
    }
    let (m, k) = (net.shape().features(), classes(net, outputs));
    if let Some(gib) = npz_too_big(n, m, k) {
        bail!(
            "--npz: {n} images x {k} classes of {m} values would make a file of about {gib:.1} \
             GiB, more than the .npz format's 4 GiB (no zip64): explain fewer classes (--top-k), \
             or split the run with --range or --shard and keep the parts apart"
        );
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

/// The settings that say where a shard sits in the whole selection, and which selection it
/// is (`sources`, from [`sources_sha256`]), so that `merge` refuses parts of different ones.
fn placement(positions: Option<&Positions>, sources: &str) -> Vec<(String, String)> {
    positions.map_or_else(Vec::new, |p| {
        vec![
            (
                "positions".into(),
                format!("{}..{}", p.range.start, p.range.end),
            ),
            ("selection".into(), p.total.to_string()),
            (SELECTION_SOURCES.into(), sources.to_string()),
        ]
    })
}

/// The setting naming a shard's whole selection.
pub(super) const SELECTION_SOURCES: &str = "selection_sources_sha256";

/// SHA-256 of the whole selection's sources (`test[12]`, file names), one a line: cheap (no
/// pixels), and the same in every shard of one run.
fn sources_sha256(selection: &Selection) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for i in &selection.items {
        h.update(i.source.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `--range` and `--shard`, parsed and checked once, before any work.
struct Slicing {
    range: Option<std::ops::Range<usize>>,
    /// The shard's index and the number of shards.
    shard: Option<(usize, usize)>,
}

fn slicing(args: &Args) -> Result<Slicing> {
    let range = match &args.range {
        Some(r) => Some(common::parse_range(r).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let shard = match &args.shard {
        Some(_) if args.shap_compat => bail!(
            "--shard cannot be combined with --shap-compat: shap's random stream runs through \
             the images in order, so the parts would not add up to one run"
        ),
        Some(s) => Some(
            common::parse_shard(s)
                .map_err(anyhow::Error::msg)?
                .resolve()?,
        ),
        None => None,
    };
    Ok(Slicing { range, shard })
}

fn options(args: &Args) -> Options<'_> {
    args.net
        .options(args.net.head.chosen(), concurrent_images(args))
}

/// How many images may be explained at once: one with `--shap-compat` (shap's random stream
/// runs through them in order), else as many as are named, when they are counted up front.
fn concurrent_images(args: &Args) -> usize {
    if args.shap_compat {
        1
    } else if !args.image.is_empty() {
        args.image.len()
    } else if !args.indices.is_empty() {
        args.indices.len()
    } else {
        usize::MAX
    }
}

/// `--top-k` / `--classes` / `--all-classes` for a model with `k` outputs. An explicit
/// `--top-k` above `k` is an error; the default top 5 explains all outputs of a smaller model.
fn output_selection(args: &Args, k: usize) -> Result<OutputSelection> {
    let selection = if args.all_classes {
        OutputSelection::All
    } else if !args.classes.is_empty() {
        OutputSelection::Indices(args.classes.clone())
    } else {
        match args.top_k {
            Some(t) if t > k => {
                bail!("--top-k {t}: the model has only {k} outputs (use --all-classes)")
            }
            Some(t) => OutputSelection::TopK(t),
            None => OutputSelection::default(),
        }
    };
    selection.validate(k)?;
    Ok(selection)
}

/// What to explain besides the images: outputs, their names, and the first image's position
/// in the whole selection (for a shard's or chunk's permutation orders).
pub(super) struct Request {
    pub(super) outputs: OutputSelection,
    pub(super) names: Vec<String>,
    pub(super) first_stream: u64,
}

/// The explainer configuration the flags describe (one for either algorithm).
fn config(args: &Args, request: Request) -> ExplainerConfig {
    let algorithm = Algorithm::from(args.algorithm);
    ExplainerConfig {
        budget: args
            .max_evals
            .map_or(Budget::default_for(algorithm), Budget::MaxEvals),
        compat: compat(args),
        seed: args.seed,
        outputs: request.outputs,
        output_names: Some(request.names),
        first_stream: request.first_stream,
        ..ExplainerConfig::new(algorithm)
    }
}

/// Build the explainer for one chunk (its settings were checked once before any work, see
/// [`run`]) and run it.
pub(super) fn explain(
    args: &Args,
    net: &Network,
    images: &[f32],
    masker: &Masker,
    request: Request,
    progress: &dyn Progress,
) -> Result<Explanation> {
    let explainer = config(args, request).check()?;
    Ok(explainer.explain_with_progress(net.model(), images, net.shape(), masker, progress)?)
}

/// `--shap-compat`: shap 0.51's maskers, tie-break, orders and Permutation outputs.
fn compat(args: &Args) -> Compat {
    if args.shap_compat {
        Compat::Shap
    } else {
        Compat::Default
    }
}

/// The run's settings, recorded in the `.npz` and the JSON: algorithm, masker, budget, seed,
/// evaluation path, outputs, and the model's file name and SHA-256.
fn settings(
    args: &Args,
    net: &Network,
    spec: MaskerSpec,
    outputs: &OutputSelection,
) -> Result<Vec<(String, String)>> {
    let model_name = args
        .model
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let max_evals = match (args.max_evals, args.algorithm) {
        (Some(m), _) => m.to_string(),
        (None, AlgorithmArg::Permutation) => "default (10 passes)".into(),
        (None, AlgorithmArg::Partition) => "default (500)".into(),
    };
    let out = vec![
        ("algorithm", args.algorithm.name().to_string()),
        ("masker", spec.to_string()),
        ("max_evals", max_evals),
        ("seed", args.seed.to_string()),
        ("shap_compat", args.shap_compat.to_string()),
        ("evaluation", net.evaluation().to_string()),
        ("engine", net.engine().to_string()),
        (
            "batch_size",
            net.model()
                .batch_rows()
                .map_or_else(|| "per image".to_string(), |n| n.to_string()),
        ),
        ("outputs", net.outputs_kind().to_string()),
        ("classes", classes_setting(outputs)),
        (
            "input_layout",
            net.input_layout().map_or("-".into(), |l| l.to_string()),
        ),
        ("mean", list(&args.net.mean)),
        ("std", list(&args.net.std)),
        ("softmax", args.net.softmax.to_string()),
        (
            "labels_sha256",
            match &args.labels {
                Some(p) => common::sha256_file(p)?,
                None => "-".into(),
            },
        ),
        ("model", model_name),
        (
            "model_sha256",
            common::sha256_files(&args.model, net.data_files())?,
        ),
    ];
    Ok(out.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// `--mean`/`--std` values as recorded: `0.485,0.456,0.406`, or `-` when not given.
fn list(v: &[f32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    v.join(",")
}

/// Which classes each image explains, as the settings record it.
fn classes_setting(outputs: &OutputSelection) -> String {
    match outputs {
        OutputSelection::TopK(k) => format!("top {k}"),
        OutputSelection::All => "all".into(),
        OutputSelection::Indices(v) => {
            let v: Vec<String> = v.iter().map(|c| c.to_string()).collect();
            v.join(",")
        }
    }
}

/// Write what the run has not written: the `.npz` when it was joined in memory, the JSON
/// summary, and the figure (from memory, or from the written `.npz`).
fn save(
    args: &Args,
    explanation: Option<&Explanation>,
    summary: &ExplanationSummary,
) -> Result<()> {
    if let (Some(p), Some(e)) = (&args.npz, explanation) {
        e.save_npz(p)?;
    }
    if let Some(p) = &args.json {
        summary.save_json(p)?;
    }
    match (explanation, &args.npz) {
        (Some(e), _) => plot(args, e),
        (None, Some(npz)) if args.plot.is_some() => plot(args, &Explanation::load_npz(npz)?),
        _ => Ok(()),
    }
}

/// Draw the figure, when asked for.
fn plot(args: &Args, explanation: &Explanation) -> Result<()> {
    if let Some(p) = &args.plot {
        let titles = explanation
            .images
            .iter()
            .map(|i| Some(i.title.clone()))
            .collect();
        super::plot::draw(explanation, titles, shap_plot::ColorScale::Global, p)?;
    }
    Ok(())
}

/// Printed after `--shap-compat` inpainting explanations: what they explain (docs/maskers.md).
const TRUNCATED_NOTE: &str = "  note: with --shap-compat, inpainting explains f(trunc(x)) as shap does \
     (the image truncated to 8 bits, almost black for [0,1] pixels), not f(x): the classes are \
     the top ones of f(trunc(x)), and base + sum(values) equals f(trunc(x)); `predicted` and p \
     above are the model's output on x itself";

fn print_summary(
    net: &Network,
    summary: &ExplanationSummary,
    seconds: f64,
    spec: MaskerSpec,
) -> Result<()> {
    common::print(|o| {
        writeln!(
            o,
            "{} explanations with masker {} ({}, engine {}):",
            summary.settings.get("algorithm").map_or("", String::as_str),
            spec,
            net.outputs_kind(),
            net.engine()
        )?;
        let score = if net.probabilities() { "p" } else { "logit" };
        for r in &summary.images {
            writeln!(o, "{}", image_line(r, score))?;
        }
        let work = summary
            .settings
            .get(chunks::WORK_FRACTION)
            .and_then(|w| w.parse::<f64>().ok())
            .map(|w| {
                format!(
                    ", incremental: {:.0}% of a full evaluation's work",
                    100.0 * w
                )
            })
            .unwrap_or_default();
        let model = summary.model_seconds.map_or_else(
            || "some images were explained by an earlier run".into(),
            |m| format!("{m:.3} s in the model"),
        );
        writeln!(
            o,
            "  total {seconds:.3} s for {} ({model}{work})",
            common::count(summary.images.len(), "image"),
        )
    })
}

/// The widest per-image line printed.
const LINE: usize = 100;

/// One explained image in at most [`LINE`] characters: source, true -> predicted class, the
/// score, the explained classes (cut to fit), evaluations, efficiency error and time.
fn image_line(r: &shap_explain::ImageSummary, score: &str) -> String {
    let name = |n: Option<&str>, w: usize| common::fit(&common::printable(n.unwrap_or("-")), w);
    let head = format!(
        "  {:<14} {:<10} -> {:<10} {score}={:.4}",
        common::fit(&common::printable(&r.source), 14),
        name(r.true_name.as_deref(), 10),
        name(r.predicted_name.as_deref(), 10),
        r.probability.unwrap_or(f64::NAN),
    );
    let time = r
        .seconds
        .map_or("(earlier)".into(), |t| format!("{t:.3} s"));
    let tail = format!("{} evals  err {:.0e}  {time}", r.evals, r.efficiency_error);
    let room = LINE.saturating_sub(head.chars().count() + tail.chars().count() + 4);
    let classes = common::fit(&common::printable(&r.class_names.join(", ")), room.max(1));
    let line = format!("{head}  {classes}  {tail}");
    common::fit(&line, LINE)
}

/// Validate every output and keep them apart from each other and from the inputs.
fn check_files(args: &Args) -> Result<()> {
    let mut inputs = vec![("--model", args.model.as_path())];
    inputs.extend(args.image.iter().map(|p| ("--image", p.as_path())));
    if let Some(l) = &args.labels {
        inputs.push(("--labels", l.as_path()));
    }
    common::check_outputs(
        &[
            (args.npz.as_deref(), OutputSpec::binary("--npz")),
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &inputs,
    )
}

/// The predicted class of image `i` from `scores` (`n * K`): index and score.
fn predicted(scores: &[f32], i: usize, k: usize) -> (usize, f32) {
    let p = scores.get(i * k..(i + 1) * k).unwrap_or(&[]);
    let wide: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
    let pred = shap_explain::top_k(&wide, 1).first().copied().unwrap_or(0);
    (pred, p.get(pred).copied().unwrap_or(f32::NAN))
}

/// What is known about image `i`: where it came from, its label and the prediction, and its
/// figure title.
pub(super) fn image_info(item: &Item, i: usize, scores: &[f32], names: &[String]) -> ImageInfo {
    let (pred, prob) = predicted(scores, i, names.len());
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let label = item.label.map(|l| (usize::from(l), name(usize::from(l))));
    let pred_name = name(pred);
    let title = match &label {
        Some((_, t)) => format!("true: {t} | pred: {pred_name} ({prob:.2})"),
        None => format!("pred: {pred_name} ({prob:.2})"),
    };
    ImageInfo {
        index: item.index,
        source: item.source.clone(),
        label,
        predicted: Some((pred, pred_name, f64::from(prob))),
        title,
    }
}

/// The images to explain: files (`--image`) or Fashion-MNIST test images.
fn select_images(
    args: &Args,
    net: &Network,
    range: Option<std::ops::Range<usize>>,
) -> Result<Selection> {
    let shape = net.shape();
    if !args.image.is_empty() {
        let (items, files) = args
            .image
            .iter()
            .map(|p| image_item(p, shape))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        return Ok(Selection {
            items,
            files,
            test: None,
        });
    }
    if shape != ImageShape::new(28, 28, 1) {
        bail!(
            "the model takes {shape} images; Fashion-MNIST test images are 28x28x1: explain \
             image files with --image"
        );
    }
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let test = data.test;
    let indices = test_indices(args, net, &test, range)?;
    if indices.is_empty() {
        bail!(
            "no images to explain (the test set has fewer correct/wrong predictions than asked?)"
        );
    }
    let items = indices
        .into_iter()
        .map(|i| Item {
            index: Some(i),
            source: format!("test[{i}]"),
            label: test.labels().get(i).copied(),
        })
        .collect();
    Ok(Selection {
        items,
        files: Vec::new(),
        test: Some(test),
    })
}

/// `--indices`, or the first N correct / wrong predictions.
fn test_indices(
    args: &Args,
    net: &Network,
    test: &shap_data::Split,
    range: Option<std::ops::Range<usize>>,
) -> Result<Vec<usize>> {
    if !args.indices.is_empty() {
        if let Some(bad) = args.indices.iter().find(|&&i| i >= test.len()) {
            bail!(
                "test index {bad} is out of range (the test set has {} images)",
                test.len()
            );
        }
        return Ok(args.indices.clone());
    }
    let range = range.unwrap_or(0..test.len());
    if range.end > test.len() {
        bail!(
            "--range {}..{} goes past the test set ({} images)",
            range.start,
            range.end,
            test.len()
        );
    }
    let Some(n) = args.correct.or(args.wrong) else {
        return Ok(range.collect());
    };
    if n == 0 {
        bail!("--correct / --wrong need N >= 1");
    }
    let preds = predictions(net, test, range.clone())?;
    let labels = &test.labels()[range.clone()];
    let (right, wrong) = shap_model::pick_examples(&preds, labels, n);
    let picked = if args.correct.is_some() { right } else { wrong };
    Ok(picked.into_iter().map(|i| i + range.start).collect())
}

/// The predicted class of each test image in `range`, 1,000 images at a time.
fn predictions(
    net: &Network,
    test: &shap_data::Split,
    range: std::ops::Range<usize>,
) -> Result<Vec<usize>> {
    let k = net.model().num_outputs();
    let mut preds = Vec::with_capacity(range.len());
    for start in range.clone().step_by(1000) {
        let ids: Vec<usize> = (start..(start + 1000).min(range.end)).collect();
        let scores = net.scores(&test.images_f32(&ids)?)?;
        preds.extend((0..ids.len()).map(|i| predicted(&scores, i, k).0));
    }
    Ok(preds)
}

/// Where a shard's images sit in the whole selection.
struct Positions {
    /// Their positions.
    range: std::ops::Range<usize>,
    /// The size of the whole selection.
    total: usize,
}

/// The slice of the selection that `--shard` asks for, with its positions in the whole
/// selection; everything (and `None`) without `--shard`.
fn shard(
    selection: Selection,
    shard: Option<(usize, usize)>,
) -> Result<(Selection, Option<Positions>)> {
    let Some((i, n)) = shard else {
        return Ok((selection, None));
    };
    let total = selection.len();
    let range = (i * total / n)..((i + 1) * total / n);
    if range.is_empty() {
        bail!("shard {i}/{n} of {total} images is empty: use fewer shards");
    }
    Ok((
        selection.slice(range.clone()),
        Some(Positions { range, total }),
    ))
}

/// An image file as the model's input, and its pixels.
fn image_item(path: &Path, shape: ImageShape) -> Result<(Item, Vec<f32>)> {
    let img = shap_data::load_image(path, shape.height, shape.width, shape.channels)?;
    if img.resized || img.converted {
        note!(
            "{} ({}x{}) was {}{}{} to fit the model's {shape} input",
            path.display(),
            img.original_size.0,
            img.original_size.1,
            if img.converted { "converted" } else { "" },
            if img.converted && img.resized {
                " and "
            } else {
                ""
            },
            if img.resized {
                "resized (bilinear)"
            } else {
                ""
            },
        );
    }
    let item = Item {
        index: None,
        source: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        label: None,
    };
    Ok((item, img.pixels))
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
