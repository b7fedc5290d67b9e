//! `shap-cli explain`: Partition or Permutation SHAP explanations of test images.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use shap_data::{CLASS_NAMES, FashionMnist};
use shap_explain::{
    BatchModel, Explanation, ImageShape, OrderRng, OutputSelection, PartitionExplainer,
    PermutationExplainer, TieBreak,
};
use shap_io::OutputSpec;
use shap_mask::{MaskMode, Masker, MaskerSpec};
use shap_model::{Head, IncrementalCnn, ModelFn};

use super::common;

/// Flags of `shap-cli explain`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --masker inpaint_telea --correct 4 --plot telea.png\n  \
    shap-cli explain --model model.safetensors --algorithm permutation --max-evals 1600 --wrong 4 --npz perm.npz\n  \
    shap-cli explain --model model.safetensors --indices 0,1,2,3 --classes 0,9 --json out.json")]
#[command(group = clap::ArgGroup::new("which").required(true).args(["indices", "correct", "wrong", "image"]))]
pub struct Args {
    /// Checkpoint written by `shap-cli train`.
    #[arg(long, value_name = "MODEL.safetensors")]
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
    /// Explain 28x28 greyscale PNG files (repeatable).
    #[arg(long, value_name = "FILE.png")]
    pub image: Vec<PathBuf>,
    /// Model evaluations per image. Partition: default 500 (shap's). Permutation: passes =
    /// max_evals / (2*784+1), so at least 1569; without it, 10 passes.
    #[arg(long, value_name = "N")]
    pub max_evals: Option<usize>,
    /// Explain the K most likely classes of each image (default 5, as the tutorial).
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
    /// Explain all ten classes.
    #[arg(long)]
    pub all_classes: bool,
    /// Explain probabilities (softmax) or logits (default: the checkpoint's head).
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
    #[arg(long, default_value = "auto", value_parser = ["auto", "full", "incremental"])]
    pub eval: String,
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
    /// Test-set index, or None for a PNG.
    index: Option<usize>,
    source: String,
    label: Option<u8>,
    pixels: Vec<f32>,
}

/// Run `shap-cli explain`.
pub fn run(args: Args) -> Result<()> {
    check_files(&args)?;
    let shape = ImageShape::new(28, 28, 1);
    let spec: MaskerSpec = args.masker.parse()?;
    let mode = if args.shap_compat {
        MaskMode::ShapCompat
    } else {
        MaskMode::Default
    };
    let masker = Masker::new(spec, mode);
    let outputs = if args.all_classes {
        OutputSelection::All
    } else if !args.classes.is_empty() {
        OutputSelection::Indices(args.classes.clone())
    } else {
        OutputSelection::TopK(args.top_k.unwrap_or(5))
    };
    outputs.validate(CLASS_NAMES.len())?;

    let on_cpu = args.device.split(':').next() == Some("cpu");
    let incremental_eval = match args.eval.as_str() {
        "incremental" if !on_cpu => bail!(
            "--eval incremental runs on the CPU; use --eval full or auto, or --device cpu (got --device {})",
            args.device
        ),
        "incremental" => true,
        "full" => false,
        _ => on_cpu,
    };
    let device = shap_model::device(&args.device)?;
    let ckpt = shap_model::load(&args.model, &device)?;
    let head = common::head(args.output.as_deref(), ckpt.meta.head);
    let incremental = if incremental_eval {
        let mut w = ckpt.cnn.cpu_weights()?;
        w.head = head;
        Some(IncrementalCnn::from_weights(&w)?)
    } else {
        None
    };
    let full = ModelFn::with_head(&ckpt.cnn, head)?;
    let model: &dyn BatchModel = match &incremental {
        Some(m) => m,
        None => &full,
    };
    let probs_model = ModelFn::with_head(&ckpt.cnn, Head::Softmax)?;

    let items = select_images(&args, &probs_model)?;
    if items.is_empty() {
        bail!(
            "no images to explain (the test set has fewer correct/wrong predictions than asked?)"
        );
    }
    let images: Vec<f32> = items
        .iter()
        .flat_map(|i| i.pixels.iter().copied())
        .collect();
    let probs = probs_model.predict(&images)?;
    if args.algorithm == "permutation" {
        common::check_permutation_budget(args.max_evals, items.len(), shape.features())?;
    }

    let names: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let start = Instant::now();
    let explanation = match args.algorithm.as_str() {
        "permutation" => {
            let mut e = PermutationExplainer {
                max_evals: args.max_evals,
                outputs,
                output_names: Some(names),
                shap_compat: args.shap_compat,
                ..PermutationExplainer::default()
            };
            if args.shap_compat {
                e.rng = OrderRng::NumpyLegacy(
                    u32::try_from(args.seed)
                        .context("--seed must fit in 32 bits with --shap-compat")?,
                );
            } else {
                e.rng = OrderRng::Seeded(args.seed);
            }
            e.explain(model, &images, shape, &masker)?
        }
        _ => {
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
                    seed: args
                        .seed
                        .try_into()
                        .context("--seed must fit in 32 bits with --shap-compat")?,
                };
            }
            e.explain(model, &images, shape, &masker)?
        }
    };
    let seconds = start.elapsed().as_secs_f64();

    let rows: Vec<serde_json::Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| row_json(item, i, &probs, &explanation))
        .collect();
    if let Some(p) = &args.npz {
        explanation.save_npz(p)?;
    }
    if let Some(p) = &args.json {
        let json = serde_json::json!({
            "model": args.model.display().to_string(),
            "algorithm": explanation.algorithm.name(),
            "masker": spec.to_string(),
            "shap_compat": args.shap_compat,
            "max_evals": args.max_evals,
            "output": if head == Head::Logits { "logits" } else { "probabilities" },
            "seed": args.seed,
            "total_seconds": seconds,
            "model_seconds": explanation.stats.model_time.as_secs_f64(),
            "model_rows": explanation.stats.model_rows,
            "evaluation": if incremental.is_some() { "incremental" } else { "full" },
            "incremental_work_fraction": incremental.as_ref().map(|m| m.stats().work_fraction()),
            "images": rows,
        });
        shap_io::write_bytes(p, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    if let Some(p) = &args.plot {
        let titles = rows
            .iter()
            .map(|r| r["title"].as_str().map(str::to_string))
            .collect();
        super::plot::draw(&explanation, titles, shap_plot::ColorScale::Global, p)?;
    }
    let quiet = args.quiet || common::any_stdout(&[args.npz.as_deref(), args.json.as_deref()]);
    if !quiet {
        common::print(|o| {
            writeln!(
                o,
                "{} explanations with masker {} ({} outputs):",
                explanation.algorithm,
                spec,
                if head == Head::Logits {
                    "logits"
                } else {
                    "probabilities"
                }
            )?;
            for r in &rows {
                writeln!(
                    o,
                    "  {:<14} true: {:<12} predicted: {:<12} p={:.4}  classes: {}  evals: {}  efficiency error: {:.1e}  {:.3} s",
                    r["source"].as_str().unwrap_or(""),
                    r["true_name"].as_str().unwrap_or("-"),
                    r["predicted_name"].as_str().unwrap_or(""),
                    r["probability"].as_f64().unwrap_or(f64::NAN),
                    r["class_names"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                    r["evals"],
                    r["efficiency_error"].as_f64().unwrap_or(f64::NAN),
                    r["seconds"].as_f64().unwrap_or(f64::NAN),
                )?;
            }
            writeln!(
                o,
                "  total {:.3} s for {} images ({:.3} s in the model{})",
                seconds,
                items.len(),
                explanation.stats.model_time.as_secs_f64(),
                incremental
                    .as_ref()
                    .map(|m| format!(
                        ", incremental: {:.0}% of a full evaluation's work",
                        100.0 * m.stats().work_fraction()
                    ))
                    .unwrap_or_default()
            )
        })?;
    }
    Ok(())
}

/// Validate every output and keep them apart from each other and from the inputs.
fn check_files(args: &Args) -> Result<()> {
    let mut inputs = vec![("--model", args.model.as_path())];
    inputs.extend(args.image.iter().map(|p| ("--image", p.as_path())));
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

fn row_json(item: &Item, i: usize, probs: &[f32], e: &Explanation) -> serde_json::Value {
    let p = probs.get(i * 10..(i + 1) * 10).unwrap_or(&[]);
    let pred = shap_explain::top_k(&p.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 1)
        .first()
        .copied()
        .unwrap_or(0);
    let prob = p.get(pred).copied().unwrap_or(f32::NAN);
    let k = e.num_outputs;
    let classes = e
        .output_indices
        .get(i * k..(i + 1) * k)
        .unwrap_or(&[])
        .to_vec();
    let true_name = item
        .label
        .and_then(|l| CLASS_NAMES.get(usize::from(l)).copied());
    let pred_name = CLASS_NAMES.get(pred).copied().unwrap_or("?");
    let title = match true_name {
        Some(t) => format!("true: {t} | pred: {pred_name} ({prob:.2})"),
        None => format!("pred: {pred_name} ({prob:.2})"),
    };
    serde_json::json!({
        "index": item.index,
        "source": item.source,
        "true_label": item.label,
        "true_name": true_name,
        "predicted": pred,
        "predicted_name": pred_name,
        "probability": prob,
        "classes": classes,
        "class_names": e.output_names.get(i).cloned().unwrap_or_default(),
        "evals": e.evals.get(i).copied().unwrap_or(0),
        "efficiency_error": e.efficiency_errors.get(i).copied().unwrap_or(f64::NAN),
        "seconds": e.image_times.get(i).copied().unwrap_or(f64::NAN),
        "title": title,
    })
}

fn select_images(args: &Args, probs_model: &ModelFn) -> Result<Vec<Item>> {
    if !args.image.is_empty() {
        return args
            .image
            .iter()
            .map(|p| {
                Ok(Item {
                    index: None,
                    source: p
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    label: None,
                    pixels: read_model_png(p)?,
                })
            })
            .collect();
    }
    let data = FashionMnist::load(args.data_dir.as_deref()).context("loading Fashion-MNIST")?;
    let test = &data.test;
    let indices: Vec<usize> = if !args.indices.is_empty() {
        if let Some(bad) = args.indices.iter().find(|&&i| i >= test.len()) {
            bail!(
                "test index {bad} is out of range (the test set has {} images)",
                test.len()
            );
        }
        args.indices.clone()
    } else {
        let n = args.correct.or(args.wrong).unwrap_or(0);
        if n == 0 {
            bail!("--correct / --wrong need N >= 1");
        }
        let out = probs_model.predict(&test.all_f32())?;
        let preds: Vec<usize> = out
            .chunks(10)
            .map(|r| {
                shap_explain::top_k(&r.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 1)
                    .first()
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        let (right, wrong) = shap_model::pick_examples(&preds, test.labels(), n);
        if args.correct.is_some() { right } else { wrong }
    };
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

/// A PNG the model can take: 28x28 grey, values in [0, 1].
fn read_model_png(path: &std::path::Path) -> Result<Vec<f32>> {
    let (pixels, shape) = common::read_grey_png(path)?;
    if (shape.height, shape.width) != (28, 28) {
        bail!(
            "{} is {}x{} pixels; the model takes 28x28 greyscale images",
            path.display(),
            shape.width,
            shape.height
        );
    }
    Ok(pixels)
}
