//! Measurements behind `cargo xtask bench`: one JSON object per line on stdout.
//!
//! Each line is `{"group", "name", "value", "unit", "reference", "note"}`, plus one
//! `{"settings": ...}` line naming what every explain row runs; xtask prints them as a table
//! with the settings in its header. Run directly with
//! `cargo run --release --example bench_table [-- --quick] [--model M.safetensors] [--repeats N]`:
//! with `--model`, the explanation rows use that checkpoint (otherwise a seeded untrained network
//! of the same cost; the incremental path's savings depend on the masks, hence on the weights).
//!
//! Every timed row is the median of N runs (`--repeats`, default 3; 1 with `--quick`) after one
//! untimed warm-up run; every explain run gets a fresh model state. Threads are rayon's
//! (`RAYON_NUM_THREADS`, which `cargo xtask bench` sets). Reference figures that are not
//! measured in this run are labelled "quoted", with their source and date.

use std::time::Instant;

use serde_json::json;
use shap_toolkit::data::FashionMnist;
use shap_toolkit::explain::timing::time_model_only;
use shap_toolkit::explain::{
    BatchModel, Compat, ExplainerConfig, Explanation, ImageShape, OutputSelection,
    PartitionSettings,
};
use shap_toolkit::mask::{MaskMode, Masker, MaskerSpec};
use shap_toolkit::model::{Cnn, Dataset, Head, IncrementalCnn, ModelFn};

#[path = "../benches/support/measure.rs"]
mod measure;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The same-run comparison is `cargo xtask bench`'s `keras` rows (TensorFlow importable).
const QUOTED_EPOCH: &str = "TF-Keras: see the keras rows (alternating, same run)";
/// The same-run comparison is `cargo xtask bench`'s `keras` rows.
const QUOTED_FORWARD: &str = "Keras model.predict: see the keras rows (same run)";

fn emit(group: &str, name: &str, value: f64, unit: &str, reference: &str, note: &str) {
    println!(
        "{}",
        json!({"group": group, "name": name, "value": value, "unit": unit, "reference": reference, "note": note})
    );
}

/// [`emit`] with the CPU seconds (all threads) the measurement took beside its wall-clock.
fn emit_timed(group: &str, name: &str, wall: f64, cpu: f64, reference: &str, note: &str) {
    println!(
        "{}",
        json!({"group": group, "name": name, "value": wall, "unit": "s", "cpu_s": cpu,
               "reference": reference, "note": format!("CPU {cpu:.3} s; {note}")})
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let checkpoint = args
        .iter()
        .position(|a| a == "--model")
        .map(|i| {
            args.get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("--model needs a path"))
        })
        .transpose()?;
    let repeats = match args.iter().position(|a| a == "--repeats") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| anyhow::anyhow!("--repeats needs a positive count"))?,
        None if quick => 1,
        None => 3,
    };
    let data = load_rows(repeats)?;
    training_row(&data, quick)?;
    let cnn = Cnn::seeded(0, Head::Softmax, &candle_core::Device::Cpu)?;
    forward_rows(&cnn, quick)?;
    masker_rows(&data, repeats)?;
    let explained = match checkpoint {
        Some(p) => shap_toolkit::model::load(p.as_ref(), &candle_core::Device::Cpu)?.cnn,
        None => cnn,
    };
    explain_rows(&data, &explained, checkpoint.is_some(), repeats)
}

/// Row group 1: loading all 70k images (median of `reps` after a warm-up load).
fn load_rows(reps: usize) -> anyhow::Result<FashionMnist> {
    let mut data = FashionMnist::load(None)?;
    let mut times = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        data = FashionMnist::load(None)?;
        times.push(t.elapsed().as_secs_f64());
    }
    emit(
        "data",
        "load 70k images (gzip IDX)",
        median(times),
        "s",
        "goal < 1 s",
        &data.source.to_string(),
    );

    Ok(data)
}

/// Row group 2: training: one epoch (quick: 10,000 images, extrapolated to 60,000).
fn training_row(data: &FashionMnist, quick: bool) -> anyhow::Result<()> {
    let train = Dataset::new(data.train.images(), data.train.labels())?;
    let n = if quick { 10_000 } else { train.len() };
    let tp = measure::measure_epoch(&train.take(n))?;
    let epoch_s = tp.seconds * train.len() as f64 / n as f64;
    emit(
        "model",
        "training epoch, 60k images, batch 256",
        epoch_s,
        "s",
        QUOTED_EPOCH,
        &format!(
            "{:.0} img/s, {:.1} GFLOP/s{}",
            tp.images_per_second,
            tp.gflops,
            if quick { ", from 10k images" } else { "" }
        ),
    );

    Ok(())
}

/// Row group 3: forward throughput at batch 1, 64 and 512.
fn forward_rows(cnn: &Cnn, quick: bool) -> anyhow::Result<()> {
    for (batch, calls) in [(1usize, 2000usize), (64, 60), (512, 12)] {
        let calls = if quick { calls / 3 } else { calls };
        let f = measure::measure_forward(cnn, batch, calls)?;
        emit(
            "model",
            &format!("forward, batch {batch}"),
            f.images_per_second,
            "img/s",
            if batch == 512 { QUOTED_FORWARD } else { "" },
            &format!("{:.1} GFLOP/s", f.gflops),
        );
    }

    Ok(())
}

/// Row group 4: maskers: 500 masked 28x28 images with half the pixels hidden.
fn masker_rows(data: &FashionMnist, reps: usize) -> anyhow::Result<()> {
    let shape = SHAPE;
    let image = data.test.images_f32(&[0])?;
    let masks = 500;
    let keeps: Vec<bool> = (0..masks * 784)
        .map(|i| ((i * 2_654_435_761usize) >> 7).is_multiple_of(2))
        .collect();
    let mut out = vec![0f32; masks * 784];
    for spec in ["blur(28,28)", "inpaint_telea", "inpaint_ns"] {
        let prepared = Masker::new(spec.parse()?, MaskMode::Default).prepare(&image, shape)?;
        prepared.fill_batch(&keeps, &mut out)?; // warm-up
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            prepared.fill_batch(&keeps, &mut out)?;
            times.push(t.elapsed().as_secs_f64());
        }
        let per = median(times) / masks as f64;
        emit(
            "mask",
            &format!("{spec}: one masked image (batch of 500, parallel)"),
            per * 1e6,
            "µs",
            if spec.starts_with("inpaint") {
                "goal < 50 µs"
            } else {
                "memory-bound"
            },
            &format!("{:.0} images/s", 1.0 / per),
        );
    }

    Ok(())
}

/// Row group 5: explanations of the first 4 test images, with the full network (`shap-cli
/// explain --eval full`) and the incremental CNN path (`--eval incremental`, the CLI's default
/// on the CPU), each row as `explain_row` times it.
fn explain_rows(
    data: &FashionMnist,
    explained: &Cnn,
    trained: bool,
    repeats: usize,
) -> anyhow::Result<()> {
    let images = data.test.images_f32(&[0, 1, 2, 3])?;
    let trained = if trained { " (trained)" } else { "" };
    emit_settings(repeats);
    for (spec, compat, inc) in [
        ("blur(28,28)", false, false),
        ("blur(28,28)", false, true),
        ("inpaint_telea", false, false),
        ("inpaint_telea", false, true),
        ("inpaint_telea", true, false),
        ("inpaint_ns", false, false),
    ] {
        // What `shap-cli explain --shap-compat` runs: shap's masker and NumPy's legacy
        // tie-break, which explains the images one at a time.
        let explainer = ExplainerConfig {
            outputs: OutputSelection::TopK(TOP_K),
            compat: if compat {
                Compat::Shap
            } else {
                Compat::Default
            },
            ..ExplainerConfig::partition().max_evals(MAX_EVALS)
        }
        .check()?;
        let parsed: MaskerSpec = spec.parse()?;
        let masker = explainer.masker(parsed);
        let row = explain_row(explained, inc, repeats, |m| {
            Ok(explainer.explain(m, &images, SHAPE, &masker)?)
        })?;
        let label = format!(
            "{spec}{}{}",
            if compat { " --shap-compat" } else { "" },
            eval_label(inc, parsed.is_inpaint())
        );
        emit_timed(
            "explain",
            &format!("partition, {label}, 4 images, {MAX_EVALS} evals, top-{TOP_K}{trained}"),
            row.median,
            row.cpu,
            if spec == "blur(28,28)" {
                "goal 50x shap + Keras (same-run speed-ups below)"
            } else {
                "goal 15x shap + Keras (same-run speed-ups below)"
            },
            &row.note(inc, explained, &images, repeats)?,
        );
    }
    let perm = ExplainerConfig {
        outputs: OutputSelection::TopK(TOP_K),
        ..ExplainerConfig::permutation().max_evals(PERMUTATION_EVALS)
    }
    .check()?;
    let masker = perm.masker("blur(28,28)".parse()?);
    for inc in [false, true] {
        let row = explain_row(explained, inc, repeats, |m| {
            Ok(perm.explain(m, &images, SHAPE, &masker)?)
        })?;
        emit_timed(
            "explain",
            &format!(
                "permutation, blur(28,28){}, 4 images, {PERMUTATION_EVALS} evals, top-{TOP_K}{trained}",
                eval_label(inc, false)
            ),
            row.median,
            row.cpu,
            "",
            &row.note(inc, explained, &images, repeats)?,
        );
    }
    Ok(())
}

/// Explanation settings shared by every explain row (and by `shap_reference.py`).
const SHAPE: ImageShape = ImageShape::new(28, 28, 1);
/// Partition evaluations per image.
const MAX_EVALS: usize = 500;
/// Outputs explained per image.
const TOP_K: usize = 5;
/// Permutation evaluations per image (one antithetic pass is 2 * 784 + 1).
const PERMUTATION_EVALS: usize = 1600;

/// One JSON line `{"settings": ...}` for the table's header: what every explain row runs.
fn emit_settings(repeats: usize) {
    println!(
        "{}",
        json!({"settings": {
            "images": "test images 0-3",
            "partition": format!(
                "max_evals {MAX_EVALS}, batch_size {} (shap's default), top-{TOP_K}",
                PartitionSettings::default().batch_size
            ),
            "permutation": format!("max_evals {PERMUTATION_EVALS}, top-{TOP_K}"),
            "statistic": format!(
                "median of {repeats} timed runs after 1 untimed warm-up run, a fresh model state each run"
            ),
            "rust_threads": rayon::current_num_threads(),
        }})
    );
}

/// One timed explain row.
struct Row {
    /// Median wall time of the timed runs, seconds.
    median: f64,
    /// Median CPU time (all threads) of the timed runs, seconds.
    cpu: f64,
    /// The last run's explanation.
    explanation: Explanation,
    /// The last run's share of the full network's conv2 work (incremental path only).
    work: f64,
}

impl Row {
    /// The row's note: the same rows through the full model alone (same statistic), the
    /// explainer's overhead and, for the incremental path, its share of the work.
    fn note(&self, inc: bool, cnn: &Cnn, images: &[f32], repeats: usize) -> anyhow::Result<String> {
        let model = ModelFn::new(cnn)?;
        let evals = &self.explanation.evals;
        time_model_only(&model, images, SHAPE, evals, 10)?; // warm-up
        let pure = median(
            (0..repeats)
                .map(|_| Ok(time_model_only(&model, images, SHAPE, evals, 10)?.as_secs_f64()))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let overhead = 100.0 * self.explanation.stats.overhead_ratio();
        let ratio = self.median / pure;
        Ok(if inc {
            format!(
                "{:.0}% of the full model's conv2 work; overhead {overhead:.0}% of this model's time; \
                 full model alone on the same rows {pure:.3} s (batches of 10), ratio {ratio:.2}",
                100.0 * self.work
            )
        } else {
            format!(
                "model alone on the same rows {pure:.3} s (batches of 10), ratio {ratio:.2}; \
                 overhead {overhead:.0}% of model time"
            )
        })
    }
}

/// Time `explain` on `cnn`'s full network or incremental path: one untimed warm-up run, then
/// `repeats` timed runs, each on a fresh model (a new `IncrementalCnn`, so no run reuses the
/// states cached by another); the median time.
fn explain_row(
    cnn: &Cnn,
    incremental: bool,
    repeats: usize,
    explain: impl Fn(&dyn BatchModel) -> anyhow::Result<Explanation>,
) -> anyhow::Result<Row> {
    let (mut times, mut cpus) = (Vec::new(), Vec::new());
    let mut last = None;
    for run in 0..=repeats {
        let full = ModelFn::new(cnn)?;
        let inc = IncrementalCnn::new(cnn)?;
        let model: &dyn BatchModel = if incremental { &inc } else { &full };
        let (t, cpu0) = (Instant::now(), measure::cpu_seconds());
        let e = explain(model)?;
        if run > 0 {
            times.push(t.elapsed().as_secs_f64());
            cpus.push(measure::cpu_seconds() - cpu0);
        }
        last = Some((e, inc.stats().work_fraction()));
    }
    let (explanation, work) = last.ok_or_else(|| anyhow::anyhow!("no run"))?;
    Ok(Row {
        median: median(times),
        cpu: median(cpus),
        explanation,
        work,
    })
}

/// The median of `v` (the mean of the middle two for an even count; NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// How a row's model was evaluated, as `shap-cli explain` spells it, marking the path the CLI
/// picks by default for the masker (`--eval auto`: the full network when the masker inpaints).
fn eval_label(incremental: bool, inpainting: bool) -> &'static str {
    match (incremental, inpainting) {
        (true, false) => " --eval incremental (CLI default)",
        (true, true) => " --eval incremental",
        (false, false) => " --eval full",
        (false, true) => " --eval full (CLI default)",
    }
}
