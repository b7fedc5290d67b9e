//! `shap-cli explain`: Partition or Permutation SHAP explanations of test images or image
//! files, for the tutorial CNN or any ONNX image classifier.

use std::ops::Range;
use std::path::PathBuf;

use anyhow::Result;
use shap_explain::{Algorithm, Explanation, ExplanationSummary, OutputSelection};
use shap_io::OutputSpec;
use shap_mask::MaskerSpec;
use shap_run::settings::Outputs;
use shap_run::{ExplainRun, Images, Outcome, Reporter, Shard, TestImages};

use super::common;
use super::model_flags::ModelFlags;
use super::terminal::Terminal;

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
    pub algorithm: Algorithm,
    /// Masker, shap spelling: `blur(kw,kh)`, `inpaint_telea`, `inpaint_ns`, or a number
    /// (negative numbers too: `--masker -1`).
    #[arg(long, default_value = "blur(28,28)", allow_hyphen_values = true)]
    pub masker: MaskerSpec,
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
    #[arg(long, value_name = "A..B", conflicts_with_all = ["indices", "image"], value_parser = shap_run::parse_range)]
    pub range: Option<Range<usize>>,
    /// Explain only the I-th of N contiguous slices of the selection (0 <= I < N), for array
    /// jobs; `auto/N` reads I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
    /// SLURM_ARRAY_TASK_ID (Slurm). `shap-cli merge` joins the parts.
    #[arg(long, value_name = "I/N|auto/N")]
    pub shard: Option<Shard>,
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
}

/// Run `shap-cli explain`: check the outputs, hand the run to shap-run, write what it did not
/// write (JSON, figure) and print.
pub fn run(args: Args, quiet: bool) -> Result<()> {
    check_files(&args)?;
    let terminal = Terminal::new(quiet);
    let report = shap_run::explain(&explain_run(&args), &terminal)?;
    let (summary, explanation, seconds, work) = match &report.outcome {
        Outcome::AlreadyComplete(npz) => {
            terminal.note(&format!(
                "{} is already complete (same settings, model and images): nothing to compute",
                npz.display()
            ));
            return save(&args, None, None);
        }
        Outcome::Done {
            summary,
            explanation,
            seconds,
            work_fraction,
        } => (summary, explanation, *seconds, *work_fraction),
    };
    save(&args, explanation.as_deref(), Some(summary))?;
    let silent = quiet || common::any_stdout(&[args.npz.as_deref(), args.json.as_deref()]);
    if !silent {
        print_summary(&report, summary, seconds, work)?;
        if args.shap_compat && args.masker.is_inpaint() {
            common::print(|o| writeln!(o, "{TRUNCATED_NOTE}"))?;
        }
    }
    Ok(())
}

/// The run the flags describe.
fn explain_run(args: &Args) -> ExplainRun {
    let images = if args.image.is_empty() {
        let pick = match (&args.indices, args.correct, args.wrong) {
            (v, _, _) if !v.is_empty() => TestImages::Indices(v.clone()),
            (_, Some(n), _) => TestImages::Correct(n, args.range.clone()),
            (_, _, Some(n)) => TestImages::Wrong(n, args.range.clone()),
            _ => TestImages::All(args.range.clone()),
        };
        Images::Test {
            data_dir: args.data_dir.clone(),
            pick,
        }
    } else {
        Images::Files(args.image.clone())
    };
    let outputs = if args.all_classes {
        Some(OutputSelection::All)
    } else if !args.classes.is_empty() {
        Some(OutputSelection::Indices(args.classes.clone()))
    } else {
        args.top_k.map(OutputSelection::TopK)
    };
    ExplainRun {
        model: args.model.clone(),
        options: args.net.options(args.net.head.chosen()),
        labels: args.labels.clone(),
        images,
        algorithm: args.algorithm,
        masker: args.masker,
        max_evals: args.max_evals,
        outputs,
        seed: args.seed,
        shap_compat: args.shap_compat,
        shard: args.shard,
        chunk: args.chunk,
        npz: args.npz.clone(),
        keep: args.plot.is_some(),
    }
}

/// Write the JSON summary and the figure that were asked for, from the run's explanation
/// when it kept one in memory, else from the `.npz` it wrote (or found complete).
fn save(
    args: &Args,
    explanation: Option<&Explanation>,
    summary: Option<&ExplanationSummary>,
) -> Result<()> {
    let loaded = match (explanation, &args.npz) {
        (None, Some(npz)) if args.plot.is_some() || (summary.is_none() && args.json.is_some()) => {
            Some(Explanation::load_npz(npz)?)
        }
        _ => None,
    };
    let explanation = explanation.or(loaded.as_ref());
    if let Some(p) = &args.json {
        match (summary, explanation) {
            (Some(s), _) => s.save_json(p)?,
            (None, Some(e)) => e.save_json(p)?,
            (None, None) => {}
        }
    }
    if let (Some(p), Some(e)) = (&args.plot, explanation) {
        let titles = shap_plot::recorded_titles(e);
        shap_plot::explanation_plot(e, titles, shap_plot::ColorScale::Global, p)?;
    }
    Ok(())
}

/// Printed after `--shap-compat` inpainting explanations: what they explain (docs/maskers.md).
const TRUNCATED_NOTE: &str = "  note: with --shap-compat, inpainting explains f(trunc(x)) as shap does \
     (the image truncated to 8 bits, almost black for [0,1] pixels), not f(x): the classes are \
     the top ones of f(trunc(x)), and base + sum(values) equals f(trunc(x)); `predicted` and p \
     above are the model's output on x itself";

fn print_summary(
    run: &shap_run::Report,
    summary: &ExplanationSummary,
    seconds: f64,
    work: Option<f64>,
) -> Result<()> {
    common::print(|o| {
        writeln!(
            o,
            "{} explanations with masker {} ({}, engine {}):",
            run.settings.algorithm,
            run.settings.masker,
            run.outputs.name(),
            run.engine
        )?;
        let score = match run.outputs {
            Outputs::Probabilities => "p",
            Outputs::Logits => "logit",
        };
        for r in &summary.images {
            writeln!(o, "{}", shap_run::text::image_line(r, score, 100))?;
        }
        let work = work
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

/// Validate every output and keep them apart from each other and from the inputs.
fn check_files(args: &Args) -> Result<()> {
    let mut inputs = vec![("--model", args.model.as_path())];
    inputs.extend(args.image.iter().map(|p| ("--image", p.as_path())));
    if let Some(l) = &args.labels {
        inputs.push(("--labels", l.as_path()));
    }
    shap_io::check_outputs(
        &[
            (args.npz.as_deref(), OutputSpec::binary("--npz")),
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &inputs,
    )?;
    Ok(())
}
