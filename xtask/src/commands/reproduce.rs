//! `cargo xtask reproduce`: the tutorial end to end through `shap-cli`.
//!
//! Steps (each announced by a numbered step line when it starts and when it ends, with its
//! time; what `shap-cli` prints comes in between):
//! 1. build `shap-cli` (release);
//! 2. find the data (installing the Debian package when missing and allowed) and write the
//!    first training images as PNGs for the report;
//! 3. train, or reuse the cached checkpoint made with the same preset, seed and subset;
//! 4. evaluate: accuracy, confusion matrix, classification report;
//! 5. Partition explanations of the first correct test images (top-5) with inpaint_telea,
//!    inpaint_ns and blur(28,28);
//! 6. the same with blur(28,28) for the first wrong images;
//! 7. Permutation explanations (1600 evaluations, blur(28,28)) of those correct and wrong images;
//! 8. a per-class summary of the first 1,000 test images (blur(28,28), 500 evaluations, top 5);
//! 9. the faithfulness (deletion and insertion curves against random orders) of every
//!    explanation of steps 5-7;
//! 10. the explanations of the first image group side by side with an occlusion and a random
//!     baseline (`shap-cli compare`), and the model-randomisation sanity check of each
//!     (`shap-cli sanity`);
//! 11. the report (`report.md`, `report.html`), which links every figure and shows the
//!     `shap-cli` command that made it.

use crate::report::{Checks, Explained, Report, Sane, Scored};
use crate::samples;
use crate::sh::{self, Steps};
use anyhow::{Context, Result, bail};
use shap_records::{DatasetRecord, EvaluationRecord, History};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flags of `cargo xtask reproduce`.
#[derive(clap::Args)]
pub struct Args {
    /// Which tutorial: `keras` (softmax head, lr 1e-3, 10 epochs) or `flax` (logits, lr 1e-4, 5 epochs).
    #[arg(long, default_value = "keras", value_parser = ["keras", "flax"])]
    preset: String,
    /// A small, fast run of every step (training on 6,000 images for 1 epoch, 2 images per
    /// explanation); what CI runs.
    #[arg(long)]
    quick: bool,
    /// Train again even when a cached checkpoint for this preset and seed exists.
    #[arg(long)]
    retrain: bool,
    /// Output directory [default: target/reproduce/<preset> (or <preset>-quick)].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fashion-MNIST directory (otherwise the usual search: FASHION_MNIST_DIR, the Debian
    /// package's directory, the hf-hub cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed for weight initialisation, batch shuffling and the explainers.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// What one run uses, derived from the flags.
struct Plan {
    preset: String,
    quick: bool,
    seed: u64,
    out: PathBuf,
    data_dir: Option<PathBuf>,
    /// `--limit` for training (None = all 60,000 images).
    train_limit: Option<usize>,
    /// `--epochs` override (None = the preset's).
    epochs: Option<usize>,
    /// Images explained per group (correct / wrong).
    per_group: usize,
    /// Test images of the per-class summary (the first N).
    summary_images: usize,
}

/// Run the whole reproduction.
pub fn run(args: Args) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        let name = if args.quick {
            format!("{}-quick", args.preset)
        } else {
            args.preset.clone()
        };
        sh::target_dir().join("reproduce").join(name)
    });
    let plan = Plan {
        preset: args.preset.clone(),
        quick: args.quick,
        seed: args.seed,
        out,
        data_dir: args.data_dir.clone(),
        train_limit: args.quick.then_some(6000),
        epochs: args.quick.then_some(1),
        per_group: if args.quick { 2 } else { 4 },
        summary_images: if args.quick { 100 } else { 1000 },
    };
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create output directory {}", plan.out.display()))?;
    eprintln!(
        "Reproducing the {} tutorial{} into {}",
        plan.preset,
        if plan.quick { " (quick)" } else { "" },
        plan.out.display()
    );
    eprintln!(
        "Building shap-cli (release; first build compiles Candle, ~5-10 minutes on 2 cores)..."
    );
    let mut steps = Steps::new(11);
    let cli = steps.step("building shap-cli", || {
        Ok((sh::build_cli(&[])?, String::new()))
    })?;
    let mut report = Report::new(&plan.preset, plan.quick, plan.seed);

    report.data = Some(steps.step("finding the data", || data_step(&cli, &plan, &mut report))?);

    let model = plan.out.join("model.safetensors");
    report.history = Some(steps.step("training the model", || {
        let (h, note, cmd) = train(&cli, &plan, &model, args.retrain)?;
        report.commands.insert("training_curves.png".into(), cmd);
        Ok((h, note))
    })?);

    report.evaluation = Some(steps.step("evaluating the model", || {
        evaluate(&cli, &plan, &model, &mut report)
    })?);
    let explanations = explanation_steps(&mut steps, &cli, &plan, &model, &report)?;
    report.explanations.extend(explanations.explained);
    report.commands.extend(explanations.commands);

    let what = format!(
        "summarising the first {} test images per class",
        plan.summary_images
    );
    report.class_summary = Some(steps.step(&what, || summary(&cli, &plan, &model, &mut report))?);
    report.faithfulness = steps.step("scoring the explanations' faithfulness", || {
        faithfulness(&cli, &plan, &model, &mut report)
    })?;

    report.checks = Some(
        steps.step("comparing and sanity-checking the first group", || {
            checks(&cli, &plan, &model, &mut report)
        })?,
    );

    let rows_so_far = steps.rows.clone();
    steps.step("writing the report", || {
        report.steps = rows_so_far;
        report.write(&plan.out)?;
        Ok(((), "report.md, report.html".to_string()))
    })?;

    report.steps = steps.rows.clone();
    report.write(&plan.out)?;
    println!("\nStep times:\n{}", steps.table());
    println!("Report: {}", plan.out.join("report.html").display());
    Ok(())
}

/// Step 4: accuracy, confusion matrix and the first correct and wrong test images.
fn evaluate(
    cli: &Path,
    plan: &Plan,
    model: &Path,
    report: &mut Report,
) -> Result<(EvaluationRecord, String)> {
    let json = plan.out.join("evaluation.json");
    let mut c = base(cli, "evaluate", plan);
    c.arg("--model").arg(model).arg("--json").arg(&json);
    c.arg("--plot").arg(plan.out.join("confusion_matrix.png"));
    report
        .commands
        .insert("confusion_matrix.png".into(), shown(&c, &plan.out));
    sh::run(&mut c)?;
    let e: EvaluationRecord = read_json(&json)?;
    let note = format!("accuracy {:.4}", e.scores.accuracy);
    Ok((e, note))
}

/// One explanation of the tutorial: which file, algorithm, masker, image group and budget.
struct Job<'a> {
    name: String,
    algorithm: &'a str,
    masker: &'a str,
    group: &'a str,
    evals: usize,
}

/// The explanations of steps 5-7 and the command that made each figure.
struct Explanations {
    explained: Vec<Explained>,
    commands: Vec<(String, String)>,
}

/// Steps 5-7: Partition on the correct predictions with each masker, Partition on the wrong
/// ones, Permutation on both.
fn explanation_steps(
    steps: &mut Steps,
    cli: &Path,
    plan: &Plan,
    model: &Path,
    report: &Report,
) -> Result<Explanations> {
    let mut out = Explanations {
        explained: Vec::new(),
        commands: Vec::new(),
    };
    let job = |name: &str, algorithm, masker, group, evals| Job {
        name: name.to_string(),
        algorithm,
        masker,
        group,
        evals,
    };
    let correct: Vec<Job> = ["inpaint_telea", "inpaint_ns", "blur(28,28)"]
        .iter()
        .map(|m| {
            let name = format!("partition_correct_{}", masker_file(m));
            job(&name, "partition", m, "correct", 500)
        })
        .collect();
    let groups = [
        ("explaining correct predictions (Partition)", correct),
        (
            "explaining wrong predictions (Partition)",
            vec![job(
                "partition_wrong_blur",
                "partition",
                "blur(28,28)",
                "wrong",
                500,
            )],
        ),
        (
            "explaining with Permutation (1600 evaluations)",
            vec![
                job(
                    "permutation_correct_blur",
                    "permutation",
                    "blur(28,28)",
                    "correct",
                    1600,
                ),
                job(
                    "permutation_wrong_blur",
                    "permutation",
                    "blur(28,28)",
                    "wrong",
                    1600,
                ),
            ],
        ),
    ];
    for (what, jobs) in groups {
        let done = steps.step(what, || {
            let mut all = Vec::new();
            let mut notes = Vec::new();
            for j in &jobs {
                let (e, note, cmd) = explain(cli, plan, model, report, j)?;
                notes.push(format!("{}: {note}", j.masker));
                all.push((e, (format!("{}.png", j.name), cmd)));
            }
            Ok((all, notes.join("; ")))
        })?;
        for (e, cmd) in done {
            out.explained.push(e);
            out.commands.push(cmd);
        }
    }
    Ok(out)
}

/// Run one explanation job into `plan.out` (npz, JSON, figure) and read its summary back.
fn explain(
    cli: &Path,
    plan: &Plan,
    model: &Path,
    report: &Report,
    j: &Job<'_>,
) -> Result<(Explained, String, String)> {
    let stem = plan.out.join(&j.name);
    let mut c = base(cli, "explain", plan);
    c.arg("--model").arg(model);
    c.args(["--algorithm", j.algorithm, "--masker", j.masker]);
    // `evaluate` already found the first correct and wrong test images: pass them as
    // indices so each explain call does not predict the whole test set again.
    let picked: Vec<String> = report
        .evaluation
        .as_ref()
        .map(|e| match j.group {
            "correct" => &e.first_correct,
            _ => &e.first_wrong,
        })
        .map(|a| {
            a.iter()
                .take(plan.per_group)
                .map(usize::to_string)
                .collect()
        })
        .unwrap_or_default();
    if picked.is_empty() {
        c.arg(format!("--{}", j.group))
            .arg(plan.per_group.to_string());
    } else {
        c.arg("--indices").arg(picked.join(","));
    }
    c.args(["--max-evals", &j.evals.to_string(), "--top-k", "5"]);
    let npz = stem.with_extension("npz");
    fresh(&npz)?;
    c.arg("--npz").arg(&npz);
    c.arg("--json").arg(stem.with_extension("json"));
    c.arg("--plot").arg(stem.with_extension("png"));
    let command = shown(&c, &plan.out);
    sh::run(&mut c)?;
    let path = stem.with_extension("json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let summary: shap_explain::ExplanationSummary = serde_json::from_str(&text)
        .with_context(|| format!("parsing {} (shap-cli's JSON summary)", path.display()))?;
    let e = Explained {
        name: j.name.clone(),
        algorithm: j.algorithm.into(),
        masker: j.masker.into(),
        group: j.group.into(),
        max_evals: j.evals,
        summary,
    };
    let note = e.note();
    Ok((e, note, command))
}

/// Step 8: explain the first `summary_images` test images (blur(28,28), 500 evaluations,
/// top 5) and summarise them per predicted class.
fn summary(
    cli: &Path,
    plan: &Plan,
    model: &Path,
    report: &mut Report,
) -> Result<(shap_explain::ClassSummary, String)> {
    let npz = plan.out.join("summary_blur.npz");
    let mut c = base(cli, "explain", plan);
    c.arg("--model").arg(model);
    c.args([
        "--masker",
        "blur(28,28)",
        "--max-evals",
        "500",
        "--top-k",
        "5",
    ]);
    c.arg("--range").arg(format!("0..{}", plan.summary_images));
    fresh(&npz)?;
    c.arg("--npz").arg(&npz).arg("--quiet");
    let explain_cmd = shown(&c, &plan.out);
    let t0 = std::time::Instant::now();
    sh::run(&mut c)?;
    let explain_secs = t0.elapsed().as_secs_f64();
    let json = plan.out.join("class_summary.json");
    let mut s = base(cli, "summary", plan);
    s.arg("--npz")
        .arg(&npz)
        .arg("--out")
        .arg(plan.out.join("class_summary.png"));
    s.arg("--json").arg(&json).arg("--quiet");
    let summary_cmd = shown(&s, &plan.out);
    sh::run(&mut s)?;
    let command = format!("{explain_cmd}\n{summary_cmd}");
    report.commands.insert("class_summary.png".into(), command);
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let v: shap_explain::ClassSummary = serde_json::from_str(&text)
        .with_context(|| format!("parsing {} (shap-cli's summary JSON)", json.display()))?;
    let note = format!(
        "{} images in {explain_secs:.1} s, {} predicted classes",
        v.images,
        v.classes.len()
    );
    Ok((v, note))
}

/// Step 9: `shap-cli faithfulness` on every explanation made so far (28 steps, 10 random
/// orders), with its curves, and `shap-cli metrics` (MuFidelity and ROAD).
fn faithfulness(
    cli: &Path,
    plan: &Plan,
    model: &Path,
    report: &mut Report,
) -> Result<(Vec<Scored>, String)> {
    let mut all = Vec::new();
    let mut commands = Vec::new();
    for e in &report.explanations {
        let stem = plan.out.join(format!("{}_faithfulness", e.name));
        let mut c = base(cli, "faithfulness", plan);
        c.arg("--model").arg(model);
        c.arg("--npz").arg(plan.out.join(format!("{}.npz", e.name)));
        c.arg("--json").arg(stem.with_extension("json"));
        c.arg("--plot")
            .arg(stem.with_extension("png"))
            .arg("--quiet");
        let command = shown(&c, &plan.out);
        sh::run(&mut c)?;
        let path = stem.with_extension("json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let scores: shap_explain::FaithfulnessReport =
            serde_json::from_str(&text).with_context(|| {
                format!("parsing {} (shap-cli's faithfulness JSON)", path.display())
            })?;
        let figure = format!("{}_faithfulness.png", e.name);
        commands.push((figure.clone(), command));
        let (metrics, command) = metrics(cli, plan, model, &e.name)?;
        commands.push((format!("{}_metrics.json", e.name), command));
        all.push(Scored {
            label: format!("{} `{}`, {}", e.algorithm, e.masker, e.group),
            figure,
            scores,
            metrics,
        });
    }
    report.commands.extend(commands);
    let note = format!("{} explanations", all.len());
    Ok((all, note))
}

/// Step 10: `shap-cli compare` on the explanations of the first image group (with the
/// occlusion and random baselines), and `shap-cli sanity` on each of them.
fn checks(cli: &Path, plan: &Plan, model: &Path, report: &mut Report) -> Result<(Checks, String)> {
    let Some(group) = report.explanations.first().map(|e| e.group.clone()) else {
        bail!("no explanation to compare");
    };
    let first: Vec<Explained> = report
        .explanations
        .iter()
        .filter(|e| e.group == group)
        .cloned()
        .collect();
    let npz = |e: &Explained| plan.out.join(format!("{}.npz", e.name));
    let mut c = base(cli, "compare", plan);
    c.arg("--model").arg(model);
    first.iter().for_each(|e| {
        c.arg("--npz").arg(npz(e));
    });
    let json = plan.out.join("comparison.json");
    c.arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(plan.out.join("comparison.png"))
        .arg("--quiet");
    report
        .commands
        .insert("comparison.png".into(), shown(&c, &plan.out));
    sh::run(&mut c)?;
    let comparison = read_json(&json).context("shap-cli's compare JSON")?;
    let mut sanity = Vec::new();
    for e in &first {
        let stem = format!("{}_sanity", e.name);
        let mut c = base(cli, "sanity", plan);
        c.arg("--model").arg(model).arg("--npz").arg(npz(e));
        c.arg("--json").arg(plan.out.join(format!("{stem}.json")));
        c.arg("--plot").arg(plan.out.join(format!("{stem}.png")));
        c.arg("--curves")
            .arg(plan.out.join(format!("{stem}_curves.png")))
            .arg("--quiet");
        let command = shown(&c, &plan.out);
        report
            .commands
            .insert(format!("{stem}.png"), command.clone());
        report
            .commands
            .insert(format!("{stem}_curves.png"), command);
        sh::run(&mut c)?;
        let r =
            read_json(&plan.out.join(format!("{stem}.json"))).context("shap-cli's sanity JSON")?;
        sanity.push(Sane {
            label: format!("{} `{}`, {}", e.algorithm, e.masker, e.group),
            stem,
            report: r,
        });
    }
    let note = format!(
        "{} explanations and 2 baselines compared, {} sanity checks",
        first.len(),
        sanity.len()
    );
    Ok((Checks { comparison, sanity }, note))
}

/// `shap-cli metrics` (MuFidelity and ROAD, defaults) of explanation `name`, and its command.
fn metrics(
    cli: &Path,
    plan: &Plan,
    model: &Path,
    name: &str,
) -> Result<(shap_explain::metrics::MetricsReport, String)> {
    let json = plan.out.join(format!("{name}_metrics.json"));
    let mut c = base(cli, "metrics", plan);
    c.arg("--model").arg(model);
    c.arg("--npz").arg(plan.out.join(format!("{name}.npz")));
    c.arg("--json").arg(&json).arg("--quiet");
    let command = shown(&c, &plan.out);
    sh::run(&mut c)?;
    let report = read_json(&json).context("shap-cli's metrics JSON")?;
    Ok((report, command))
}

/// Step 2: find the data, and write its first training images as PNGs for the report (when
/// it is a directory of IDX files; the report says why otherwise).
fn data_step(cli: &Path, plan: &Plan, report: &mut Report) -> Result<(DatasetRecord, String)> {
    let v = find_data(cli, plan.data_dir.as_deref())?;
    let source = v.source.as_str();
    let dir = plan
        .data_dir
        .clone()
        .or_else(|| samples::data_dir_of(source));
    match dir.map(|d| samples::write_samples(&d, &plan.out, SAMPLES)) {
        Some(Ok(s)) => report.samples = s,
        Some(Err(e)) => report.samples_note = Some(format!("{e:#}")),
        None => report.samples_note = Some(format!("the images come from {source}")),
    }
    let note = source.to_string();
    Ok((v, note))
}

/// A `shap-cli <sub>` command with the flags every subcommand shares.
fn base(cli: &Path, sub: &str, plan: &Plan) -> Command {
    let mut c = Command::new(cli);
    c.arg(sub);
    if let Some(d) = &plan.data_dir {
        c.arg("--data-dir").arg(d);
    }
    if matches!(
        sub,
        "explain" | "train" | "faithfulness" | "metrics" | "compare" | "sanity"
    ) {
        c.arg("--seed").arg(plan.seed.to_string());
    }
    c
}

/// How many training images the report shows.
const SAMPLES: usize = 20;

/// `cmd` as the line a user types in the output folder: `shap-cli` for the binary's path,
/// output paths relative to `out`, shell quoting where needed.
fn shown(cmd: &Command, out: &Path) -> String {
    let mut parts = vec!["shap-cli".to_string()];
    for a in cmd.get_args() {
        let p = Path::new(a);
        let rel = p.strip_prefix(out).unwrap_or(p);
        parts.push(shell_quote(&rel.to_string_lossy()));
    }
    parts.join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn masker_file(m: &str) -> &'static str {
    match m {
        "inpaint_telea" => "telea",
        "inpaint_ns" => "ns",
        _ => "blur",
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Locate the dataset through `shap-cli data --json`; when it is missing, get it.
///
/// Order, as README says: the Hugging Face hub when reachable (needs the `hub` feature, built
/// on demand), else the Debian package when we are root with apt-get, saying so; else an
/// error with the exact command to run.
fn find_data(cli: &Path, dir: Option<&Path>) -> Result<DatasetRecord> {
    let probe = |cli: &Path| -> Result<DatasetRecord> {
        let mut c = Command::new(cli);
        c.args(["data", "--json"]);
        if let Some(d) = dir {
            c.arg("--data-dir").arg(d);
        }
        let text = sh::output(&mut c)?;
        serde_json::from_str(&text).context("parsing `shap-cli data --json`")
    };
    if let Ok(v) = probe(cli) {
        return Ok(v);
    }
    if dir.is_some() {
        bail!("no usable Fashion-MNIST files in the --data-dir given (see the error above)");
    }
    eprintln!("Fashion-MNIST was not found locally.");
    if hub_reachable() {
        eprintln!(
            "The Hugging Face hub is reachable: building shap-cli with the `hub` feature to download it..."
        );
        let hub_cli = sh::build_cli(&["hub"])?;
        if let Ok(v) = probe(&hub_cli) {
            return Ok(v);
        }
        eprintln!("The hub download did not work (see above).");
    } else {
        eprintln!("The Hugging Face hub is not reachable from here.");
    }
    if cfg!(target_os = "linux") && sh::on_path("apt-get") {
        if sh::is_root() {
            eprintln!(
                "Installing the Debian package instead: apt-get update && apt-get install -y dataset-fashion-mnist"
            );
            sh::run(Command::new("apt-get").arg("update").arg("-q"))?;
            sh::run(
                Command::new("apt-get")
                    // --reinstall also restores the files when the package is recorded as
                    // installed but its directory was emptied.
                    .args([
                        "install",
                        "-y",
                        "-q",
                        "--reinstall",
                        "dataset-fashion-mnist",
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
            return probe(cli);
        }
        bail!(
            "Fashion-MNIST is missing. Install it with:\n    sudo apt-get install -y dataset-fashion-mnist\n\
             then run `cargo xtask reproduce` again (or set FASHION_MNIST_DIR to a directory with the IDX files)."
        );
    }
    bail!(
        "Fashion-MNIST is missing and could not be downloaded. Put the four IDX files \
         (train-images-idx3-ubyte.gz, ...) in a directory and pass --data-dir DIR or set FASHION_MNIST_DIR."
    )
}

/// Can we open a TCP connection to the hub (the endpoint in `HF_ENDPOINT`, else hf-hub's default)?
fn hub_reachable() -> bool {
    use std::net::ToSocketAddrs;
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let host = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let port = if endpoint.starts_with("http://") {
        80
    } else {
        443
    };
    let Ok(addrs) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addrs.into_iter().any(|a| {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok()
    })
}

/// Train (or reuse the cached checkpoint) and return the training history.
/// Returns the history, a note and the command (shown even when the cache is reused).
fn train(
    cli: &Path,
    plan: &Plan,
    model: &Path,
    retrain: bool,
) -> Result<(History, String, String)> {
    let history = plan.out.join("history.json");
    let key_path = plan.out.join("model.key.json");
    let key = serde_json::json!({
        "preset": plan.preset, "seed": plan.seed, "limit": plan.train_limit, "epochs": plan.epochs,
    });
    let mut c = base(cli, "train", plan);
    c.args(["--preset", &plan.preset]);
    if let Some(l) = plan.train_limit {
        c.args(["--limit", &l.to_string()]);
    }
    if let Some(e) = plan.epochs {
        c.args(["--epochs", &e.to_string()]);
    }
    c.arg("--out").arg(model).arg("--history").arg(&history);
    c.arg("--plot").arg(plan.out.join("training_curves.png"));
    let command = shown(&c, &plan.out);
    let cached = !retrain
        && model.is_file()
        && history.is_file()
        && read_json::<serde_json::Value>(&key_path).is_ok_and(|old| old == key);
    if cached {
        eprintln!(
            "    reusing the cached checkpoint {} (same preset, seed and subset; --retrain to train again)",
            model.display()
        );
        return Ok((read_json(&history)?, "cached checkpoint".into(), command));
    }
    sh::run(&mut c)?;
    std::fs::write(&key_path, serde_json::to_string_pretty(&key)?)
        .with_context(|| format!("writing {}", key_path.display()))?;
    let h = read_json(&history)?;
    Ok((h, "trained".into(), command))
}

/// `reproduce --quick --out DIR` with defaults, for `cargo xtask test`.
pub fn run_quick_for_ci(out: &Path) -> Result<()> {
    run(Args {
        preset: "keras".into(),
        quick: true,
        retrain: true,
        out: Some(out.to_path_buf()),
        data_dir: None,
        seed: 42,
    })
}

/// Remove an explanation an earlier reproduction left at `npz`, so that this run computes
/// (and times) it: `shap-cli explain` would otherwise report the file complete and reuse it.
fn fresh(npz: &Path) -> Result<()> {
    match std::fs::remove_file(npz) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing the earlier {}", npz.display()))
        }
        _ => Ok(()),
    }
}
