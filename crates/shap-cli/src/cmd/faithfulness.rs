//! `shap-cli faithfulness`: deletion and insertion curves of a saved explanation against
//! random orders (docs/faithfulness.md).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use shap_explain::{Explanation, Faithfulness, FaithfulnessReport, Target};
use shap_io::OutputSpec;
use shap_mask::{Masker, MaskerSpec};
use shap_model::Head;
use shap_run::settings::Outputs;
use shap_run::{Network, Options, RunSettings};

use super::common;
use super::model_flags::ModelFlags;
use super::terminal::Terminal;

/// Flags of `shap-cli faithfulness`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    shap-cli explain --model model.safetensors --correct 20 --npz blur.npz\n  \
    shap-cli faithfulness --model model.safetensors --npz blur.npz --json faith.json --plot curves.png")]
pub struct Args {
    /// The model the explanation was made with (.safetensors or .onnx, loaded as `explain`
    /// loads it; give the same --head/--mean/--std/--softmax).
    #[arg(short, long, value_name = "MODEL.safetensors|MODEL.onnx")]
    pub model: PathBuf,
    /// The explanation (`shap-cli explain --npz`).
    #[arg(long, value_name = "EXPLANATION.npz")]
    pub npz: PathBuf,
    /// Steps per curve: step s hides (or reveals) the first round(s*P/S) of the P pixels.
    #[arg(long, default_value_t = 28, value_name = "S")]
    pub steps: usize,
    /// Random orders averaged as the baseline.
    #[arg(long, default_value_t = 10, value_name = "R")]
    pub random: usize,
    /// Seed of the random orders.
    #[arg(long, default_value_t = super::common::DEFAULT_SEED)]
    pub seed: u64,
    /// Which classes to score: each image's predicted class, its first explained class, or
    /// every explained class.
    #[arg(long, value_enum, default_value = "predicted")]
    pub target: TargetArg,
    /// Masker, shap spelling (default: the one the explanation records).
    #[arg(long, allow_hyphen_values = true)]
    pub masker: Option<MaskerSpec>,
    /// Write the scores: per image and class the four AUCs, their means, the mean curves.
    #[arg(long, value_name = "FAITH.json")]
    pub json: Option<PathBuf>,
    /// Draw the mean curves, explanation against random (PNG or SVG).
    #[arg(long, value_name = "CURVES.png")]
    pub plot: Option<PathBuf>,
    /// How to load and run the model: as `explain` (give the same --head/--mean/--std/--softmax).
    #[command(flatten)]
    pub net: ModelFlags,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// Each image's predicted class.
    Predicted,
    /// Each image's first explained class.
    Explained,
    /// Every explained class.
    All,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Self {
        match t {
            TargetArg::Predicted => Target::Predicted,
            TargetArg::Explained => Target::Explained,
            TargetArg::All => Target::All,
        }
    }
}

/// Run `shap-cli faithfulness`.
pub fn run(args: Args) -> Result<()> {
    check_outputs(&args)?;
    let f = Faithfulness {
        steps: args.steps,
        random: args.random,
        seed: args.seed,
        target: args.target.into(),
    }
    .check()
    .with_context(|| format!("--steps {} --random {}", args.steps, args.random))?;
    let e = Explanation::load_npz(&args.npz)?;
    if e.num_images == 0 {
        bail!("{}: the explanation holds no images", args.npz.display());
    }
    let recorded = RunSettings::from_record(&e.settings).ok();
    let (masker, spec) = masker(&args, recorded.as_ref())?;
    let terminal = Terminal::new(args.quiet);
    let net = Network::load(&args.model, &options(&args, recorded.as_ref()), &terminal)?;
    if net.shape() != e.shape {
        bail!(
            "{} explains {} images; the model takes {} images: score an explanation with the \
             model it was made with",
            args.npz.display(),
            e.shape,
            net.shape()
        );
    }

    let bar = common::progress_bar(e.num_images as u64, "images", args.quiet);
    let tick = |_: usize, _: usize| bar.iter().for_each(|b| b.inc(1));
    let mut report = f
        .score_with_progress(net.model(), &e, &masker, &tick)
        .with_context(|| format!("scoring {}", args.npz.display()))?;
    bar.iter().for_each(|b| b.finish_and_clear());
    report.masker = spec.to_string();
    let unscored = report
        .images
        .iter()
        .filter(|i| i.classes.is_empty())
        .count();
    if unscored > 0 && !args.quiet {
        note!(
            "{} of {} images have no values for their predicted class (not scored): explain \
             them with a larger --top-k, or score --target explained or all",
            unscored,
            report.images.len()
        );
    }
    if let Some(p) = &args.plot {
        shap_plot::faithfulness_plot(&report.mean_curves, p)?;
    }
    if let Some(j) = &args.json {
        shap_io::write_bytes(j, &serde_json::to_vec_pretty(&report)?)?;
    }
    if args.quiet || common::any_stdout(&[args.json.as_deref()]) {
        return Ok(());
    }
    print(&report)
}

/// The outputs, checked before any work.
fn check_outputs(args: &Args) -> Result<()> {
    common::check_outputs(
        &[
            (args.json.as_deref(), OutputSpec::text("--json")),
            (
                args.plot.as_deref(),
                OutputSpec::file("--plot", common::FIGURE),
            ),
        ],
        &[("--model", &args.model), ("--npz", &args.npz)],
    )
}

/// The masker the explanation was made with (its recorded spec and compatibility mode), or
/// `--masker` in the recorded mode.
fn masker(args: &Args, recorded: Option<&RunSettings>) -> Result<(Masker, MaskerSpec)> {
    let spec = match (args.masker, recorded) {
        (Some(m), _) => m,
        (None, Some(r)) => r.masker,
        (None, None) => bail!(
            "{} does not record the masker it was made with: give --masker",
            args.npz.display()
        ),
    };
    // The one mapping from a run's compatibility mode to its masker's (`Compat::mask_mode`).
    let compat = recorded.map(|r| r.compat).unwrap_or_default();
    Ok((Masker::new(spec, compat.mask_mode()), spec))
}

/// The model's options: the flags, with the head the explanation records when `--head` is
/// not given.
fn options(args: &Args, recorded: Option<&RunSettings>) -> Options {
    let head = recorded.map(|r| match r.outputs {
        Outputs::Logits => Head::Logits,
        Outputs::Probabilities => Head::Softmax,
    });
    let is_onnx = args
        .model
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("onnx"));
    args.net
        .options(args.net.head.chosen().or(head.filter(|_| !is_onnx)))
}

fn print(r: &FaithfulnessReport) -> Result<()> {
    let m = r.mean;
    common::print(|o| {
        writeln!(
            o,
            "faithfulness of the {} with masker {}, {} steps over {} pixels, {} random orders \
             (seed {}):",
            match r.target {
                Target::Predicted => "predicted classes",
                Target::Explained => "first explained classes",
                Target::All => "explained classes",
            },
            r.masker,
            r.steps,
            r.features,
            r.random,
            r.seed
        )?;
        writeln!(
            o,
            "  {:<14} {:<14} {:>9} {:>9} {:>9} {:>9}",
            "image", "class", "deletion", "random", "insertion", "random"
        )?;
        for img in &r.images {
            for c in &img.classes {
                let a = c.aucs;
                writeln!(
                    o,
                    "  {:<14} {:<14} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
                    img.source,
                    c.name,
                    a.deletion_auc,
                    a.random_deletion_auc,
                    a.insertion_auc,
                    a.random_insertion_auc
                )?;
            }
        }
        writeln!(
            o,
            "  {:<29} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            "mean", m.deletion_auc, m.random_deletion_auc, m.insertion_auc, m.random_insertion_auc
        )?;
        writeln!(
            o,
            "  deletion AUC below random and insertion AUC above it: the explanation ranks pixels better than chance"
        )
    })
}
