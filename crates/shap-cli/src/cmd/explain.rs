//! `shap-cli explain`: Partition or Permutation SHAP explanations of test images or image
//! files, for the tutorial CNN or any ONNX image classifier.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shap_data::FashionMnist;
use shap_explain::{
    Explanation, ImageShape, InputLayout, OrderRng, OutputSelection, PartitionExplainer,
    PermutationExplainer, TieBreak,
};
use shap_io::OutputSpec;
use shap_mask::{MaskMode, Masker, MaskerSpec};

use super::common;
use super::network::{Engine, Eval, Network, Options, class_names};

/// Flags of `shap-cli explain`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --masker inpaint_telea --correct 4 --plot telea.png\n  \
    shap-cli explain --model model.safetensors --algorithm permutation --max-evals 1600 --wrong 4 --npz perm.npz\n  \
    shap-cli explain --model model.safetensors --indices 0,1,2,3 --classes 0,9 --json out.json\n  \
    shap-cli explain --model resnet.onnx --image cat.jpg --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --labels imagenet.txt --softmax --masker 'blur(32,32)' --plot cat.png")]
#[command(group = clap::ArgGroup::new("which").required(true).args(["indices", "correct", "wrong", "image"]))]
pub struct Args {
    /// The model: a checkpoint written by `shap-cli train` (.safetensors), or an ONNX image
    /// classifier (.onnx) with one (N, C, H, W) or (N, H, W, C) input and one (N, K) output.
    #[arg(long, value_name = "MODEL.safetensors|MODEL.onnx")]
    pub model: PathBuf,
    /// Explainer: `partition` (Owen values over shap's image hierarchy) or `permutation`
    /// (antithetic, hierarchy-respecting orders).
    #[arg(long, default_value = "partition", value_parser = ["partition", "permutation"])]
    pub algorithm: String,
    /// Masker, shap spelling: `blur(kw,kh)`, `inpaint_telea`, `inpaint_ns`, or a number
    /// (negative numbers too: `--masker -1`).
    #[arg(long, default_value = "blur(28,28)", allow_hyphen_values = true)]
    pub masker: String,
    /// Test-set indices to explain, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "I,J,...")]
    pub indices: Vec<usize>,
    /// Explain the first N correctly predicted test images.
    #[arg(long, value_name = "N")]
    pub correct: Option<usize>,
    /// Explain the first N wrongly predicted test images.
    #[arg(long, value_name = "N")]
    pub wrong: Option<usize>,
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
    /// Tutorial checkpoints: explain probabilities (softmax) or logits (default: the
    /// checkpoint's head).
    #[arg(long, value_parser = ["probabilities", "logits"])]
    pub output: Option<String>,
    /// Seed: Permutation orders, and (with --shap-compat) the Partition tie-break generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reproduce shap 0.51 exactly: maskers truncate to u8 as shap does, Partition breaks ties
    /// with NumPy's legacy randn, Permutation returns all ten classes, unnamed.
    #[arg(long)]
    pub shap_compat: bool,
    /// Device for the model: cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// How the CNN evaluates masked images. `incremental` (CPU only): each masked image starts
    /// from the closest one already evaluated and only the positions its changed pixels reach
    /// are recomputed; bit-identical to its own full evaluation whatever the history, batch or
    /// thread count, and equal to `full` to float rounding (about 1e-7), several times faster
    /// with blur or constant maskers and the Permutation explainer. `full`: every masked image
    /// through the whole network (batched gemm). `auto`: incremental on the CPU, full on a GPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub eval: Eval,
    /// ONNX: the model's input layout, when its input shape does not say (default: NCHW when
    /// the dimension after the batch is 1 or 3, NHWC otherwise).
    #[arg(long, value_name = "nchw|nhwc", value_parser = parse_layout)]
    pub input_layout: Option<InputLayout>,
    /// ONNX: per-channel mean subtracted after masking, as torchvision's Normalize (one value
    /// applies to every channel). The maskers always work on [0, 1] pixels.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B,C",
        allow_negative_numbers = true
    )]
    pub mean: Vec<f32>,
    /// ONNX: per-channel standard deviation the (pixel - mean) is divided by.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub std: Vec<f32>,
    /// ONNX: apply a softmax to the model's outputs (default: explain them as returned).
    #[arg(long)]
    pub softmax: bool,
    /// ONNX: what runs the model. `auto`: the tutorial CNN's own graph (recognised op by op,
    /// with no --mean/--std/--input-layout) on shap-model's kernels and `--eval` paths, any
    /// other graph through tract. `tract`: every graph through tract.
    #[arg(long, value_enum, default_value = "auto")]
    pub onnx_engine: Engine,
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
    #[arg(long)]
    pub quiet: bool,
}

/// One image to explain, with what we know about it.
struct Item {
    /// Test-set index, or None for an image file.
    index: Option<usize>,
    source: String,
    label: Option<u8>,
    pixels: Vec<f32>,
}

/// One explained image in the JSON summary.
#[derive(Serialize)]
struct Row {
    index: Option<usize>,
    source: String,
    true_label: Option<u8>,
    true_name: Option<String>,
    predicted: usize,
    predicted_name: String,
    /// The model's score for the predicted class (a probability for the tutorial CNN and
    /// for ONNX models with softmax outputs).
    probability: f32,
    classes: Vec<usize>,
    class_names: Vec<String>,
    evals: usize,
    efficiency_error: f64,
    seconds: f64,
    title: String,
}

/// The JSON summary of a run.
#[derive(Serialize)]
struct Summary<'a> {
    model: String,
    algorithm: &'a str,
    masker: String,
    shap_compat: bool,
    max_evals: Option<usize>,
    output: &'a str,
    seed: u64,
    total_seconds: f64,
    model_seconds: f64,
    model_rows: usize,
    evaluation: &'a str,
    incremental_work_fraction: Option<f64>,
    images: &'a [Row],
}

fn parse_layout(s: &str) -> Result<InputLayout, String> {
    s.parse()
        .map_err(|e: shap_explain::ExplainError| e.to_string())
}

/// Run `shap-cli explain`.
pub fn run(args: Args) -> Result<()> {
    check_files(&args)?;
    let spec: MaskerSpec = args.masker.parse()?;
    let mode = if args.shap_compat {
        MaskMode::ShapCompat
    } else {
        MaskMode::Default
    };
    let masker = Masker::new(spec, mode);
    let net = Network::load(&args.model, &options(&args))?;
    let names = class_names(args.labels.as_deref(), &net)?;
    let outputs = output_selection(&args, names.len())?;
    let items = select_images(&args, &net)?;
    let images: Vec<f32> = items.iter().flat_map(|i| i.pixels.clone()).collect();
    let scores = net.scores(&images)?;
    if args.algorithm == "permutation" {
        common::check_permutation_budget(args.max_evals, net.shape().features())?;
    }
    let start = Instant::now();
    let explanation = explain(&args, &net, &images, &masker, outputs, names.clone())?;
    let seconds = start.elapsed().as_secs_f64();
    let rows: Vec<Row> = items
        .iter()
        .enumerate()
        .map(|(i, item)| row(item, i, &scores, &names, &explanation))
        .collect();
    save(&args, &net, &explanation, &rows, seconds, spec)?;
    let quiet = args.quiet || common::any_stdout(&[args.npz.as_deref(), args.json.as_deref()]);
    if !quiet {
        print_summary(&net, &explanation, &rows, seconds, spec)?;
        if args.shap_compat && spec.is_inpaint() {
            common::print(|o| writeln!(o, "{TRUNCATED_NOTE}"))?;
        }
    }
    Ok(())
}

fn options(args: &Args) -> Options<'_> {
    Options {
        device: &args.device,
        eval: args.eval,
        head: args.output.as_deref(),
        layout: args.input_layout,
        mean: &args.mean,
        std: &args.std,
        softmax: args.softmax,
        engine: args.onnx_engine,
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

/// Run the chosen explainer.
fn explain(
    args: &Args,
    net: &Network,
    images: &[f32],
    masker: &Masker,
    outputs: OutputSelection,
    names: Vec<String>,
) -> Result<Explanation> {
    let shape = net.shape();
    let compat_seed = || -> Result<u32> {
        u32::try_from(args.seed).context("--seed must fit in 32 bits with --shap-compat")
    };
    if args.algorithm == "permutation" {
        let e = PermutationExplainer {
            max_evals: args.max_evals,
            outputs,
            output_names: Some(names),
            shap_compat: args.shap_compat,
            rng: if args.shap_compat {
                OrderRng::NumpyLegacy(compat_seed()?)
            } else {
                OrderRng::Seeded(args.seed)
            },
            ..PermutationExplainer::default()
        };
        return Ok(e.explain(net.model(), images, shape, masker)?);
    }
    let mut e = PartitionExplainer {
        outputs,
        output_names: Some(names),
        ..PartitionExplainer::default()
    };
    if let Some(me) = args.max_evals {
        e.budget = shap_explain::Budget::MaxEvals(me);
    }
    if args.shap_compat {
        e.tie_break = TieBreak::NumpyLegacy {
            seed: compat_seed()?,
        };
    }
    Ok(e.explain(net.model(), images, shape, masker)?)
}

/// Write the requested files (npz, JSON, figure).
fn save(
    args: &Args,
    net: &Network,
    explanation: &Explanation,
    rows: &[Row],
    seconds: f64,
    spec: MaskerSpec,
) -> Result<()> {
    if let Some(p) = &args.npz {
        explanation.save_npz(p)?;
    }
    if let Some(p) = &args.json {
        let summary = Summary {
            model: args.model.display().to_string(),
            algorithm: explanation.algorithm.name(),
            masker: spec.to_string(),
            shap_compat: args.shap_compat,
            max_evals: args.max_evals,
            output: net.outputs_kind(),
            seed: args.seed,
            total_seconds: seconds,
            model_seconds: explanation.stats.model_time.as_secs_f64(),
            model_rows: explanation.stats.model_rows,
            evaluation: net.evaluation(),
            incremental_work_fraction: net.work_fraction(),
            images: rows,
        };
        shap_io::write_bytes(p, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    }
    if let Some(p) = &args.plot {
        let titles = rows.iter().map(|r| Some(r.title.clone())).collect();
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
    e: &Explanation,
    rows: &[Row],
    seconds: f64,
    spec: MaskerSpec,
) -> Result<()> {
    common::print(|o| {
        writeln!(
            o,
            "{} explanations with masker {} ({}):",
            e.algorithm,
            spec,
            net.outputs_kind()
        )?;
        for r in rows {
            writeln!(
                o,
                "  {:<14} true: {:<12} predicted: {:<12} p={:.4}  classes: {}  evals: {}  efficiency error: {:.1e}  {:.3} s",
                r.source,
                r.true_name.as_deref().unwrap_or("-"),
                r.predicted_name,
                r.probability,
                r.class_names.join(", "),
                r.evals,
                r.efficiency_error,
                r.seconds,
            )?;
        }
        let work = net
            .work_fraction()
            .map(|w| {
                format!(
                    ", incremental: {:.0}% of a full evaluation's work",
                    100.0 * w
                )
            })
            .unwrap_or_default();
        writeln!(
            o,
            "  total {:.3} s for {} images ({:.3} s in the model{work})",
            seconds,
            rows.len(),
            e.stats.model_time.as_secs_f64(),
        )
    })
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

fn row(item: &Item, i: usize, scores: &[f32], names: &[String], e: &Explanation) -> Row {
    let (pred, prob) = predicted(scores, i, names.len());
    let k = e.num_outputs;
    let true_name = item.label.and_then(|l| names.get(usize::from(l)).cloned());
    let pred_name = names.get(pred).cloned().unwrap_or_else(|| pred.to_string());
    let title = match &true_name {
        Some(t) => format!("true: {t} | pred: {pred_name} ({prob:.2})"),
        None => format!("pred: {pred_name} ({prob:.2})"),
    };
    Row {
        index: item.index,
        source: item.source.clone(),
        true_label: item.label,
        true_name,
        predicted: pred,
        predicted_name: pred_name,
        probability: prob,
        classes: e
            .output_indices
            .get(i * k..(i + 1) * k)
            .unwrap_or(&[])
            .to_vec(),
        class_names: e.output_names.get(i).cloned().unwrap_or_default(),
        evals: e.evals.get(i).copied().unwrap_or(0),
        efficiency_error: e.efficiency_errors.get(i).copied().unwrap_or(f64::NAN),
        seconds: e.image_times.get(i).copied().unwrap_or(f64::NAN),
        title,
    }
}

/// The images to explain: files (`--image`) or Fashion-MNIST test images.
fn select_images(args: &Args, net: &Network) -> Result<Vec<Item>> {
    let shape = net.shape();
    if !args.image.is_empty() {
        return args.image.iter().map(|p| image_item(p, shape)).collect();
    }
    if shape != ImageShape::new(28, 28, 1) {
        bail!(
            "the model takes {shape} images; Fashion-MNIST test images are 28x28x1: explain \
             image files with --image"
        );
    }
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let test = &data.test;
    let indices = test_indices(args, net, test)?;
    if indices.is_empty() {
        bail!(
            "no images to explain (the test set has fewer correct/wrong predictions than asked?)"
        );
    }
    indices
        .into_iter()
        .map(|i| {
            Ok(Item {
                index: Some(i),
                source: format!("test[{i}]"),
                label: test.labels().get(i).copied(),
                pixels: test.images_f32(&[i])?,
            })
        })
        .collect()
}

/// `--indices`, or the first N correct / wrong predictions.
fn test_indices(args: &Args, net: &Network, test: &shap_data::Split) -> Result<Vec<usize>> {
    if !args.indices.is_empty() {
        if let Some(bad) = args.indices.iter().find(|&&i| i >= test.len()) {
            bail!(
                "test index {bad} is out of range (the test set has {} images)",
                test.len()
            );
        }
        return Ok(args.indices.clone());
    }
    let n = args.correct.or(args.wrong).unwrap_or(0);
    if n == 0 {
        bail!("--correct / --wrong need N >= 1");
    }
    let scores = net.scores(&test.all_f32())?;
    let k = net.model().num_outputs();
    let preds: Vec<usize> = (0..test.len())
        .map(|i| predicted(&scores, i, k).0)
        .collect();
    let (right, wrong) = shap_model::pick_examples(&preds, test.labels(), n);
    Ok(if args.correct.is_some() { right } else { wrong })
}

/// An image file as the model's input.
fn image_item(path: &Path, shape: ImageShape) -> Result<Item> {
    let img = shap_data::load_image(path, shape.height, shape.width, shape.channels)?;
    if img.resized || img.converted {
        eprintln!(
            "note: {} ({}x{}) was {}{}{} to fit the model's {shape} input",
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
    Ok(Item {
        index: None,
        source: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        label: None,
        pixels: img.pixels,
    })
}
