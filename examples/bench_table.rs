//! Measurements behind `cargo xtask bench`: one JSON object per line on stdout.
//!
//! Each line is `{"group", "name", "value", "unit", "reference", "note"}`; xtask prints them as a
//! table with the reference figures beside them. Run directly with
//! `cargo run --release --example bench_table [-- --quick] [--model M.safetensors]`: with
//! `--model`, the explanation rows use that checkpoint (otherwise a seeded untrained network of
//! the same cost; the incremental path's savings depend on the masks, hence on the weights).

use std::time::Instant;

use serde_json::json;
use shap_toolkit::data::FashionMnist;
use shap_toolkit::explain::{
    BatchModel, ImageShape, OutputSelection, PartitionExplainer, PermutationExplainer,
    time_model_only,
};
use shap_toolkit::mask::{MaskMode, Masker};
use shap_toolkit::model::{Cnn, Dataset, Head, IncrementalCnn, ModelFn, bench};

#[global_allocator]
static ALLOC: bench::FastAllocator = bench::FastAllocator;

fn emit(group: &str, name: &str, value: f64, unit: &str, reference: &str, note: &str) {
    println!(
        "{}",
        json!({"group": group, "name": name, "value": value, "unit": unit, "reference": reference, "note": note})
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
    let reps = if quick { 1 } else { 3 };

    // 1. Loading all 70k images (best of `reps`).
    let mut best = f64::INFINITY;
    let mut data = None;
    for _ in 0..reps {
        let t = Instant::now();
        data = Some(FashionMnist::load(None)?);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let data = data.ok_or_else(|| anyhow::anyhow!("no data"))?;
    emit(
        "data",
        "load 70k images (gzip IDX)",
        best,
        "s",
        "goal < 1 s",
        &data.source.to_string(),
    );

    // 2. Training: one epoch (quick: 10,000 images, extrapolated to 60,000).
    let train = Dataset::new(data.train.images(), data.train.labels())?;
    let n = if quick { 10_000 } else { train.len() };
    let tp = bench::measure_epoch(&train.take(n))?;
    let epoch_s = tp.seconds * train.len() as f64 / n as f64;
    emit(
        "model",
        "training epoch, 60k images, batch 256",
        epoch_s,
        "s",
        "TF-Keras 28 s; stock Candle ~345 s",
        &format!(
            "{:.0} img/s, {:.1} GFLOP/s{}",
            tp.images_per_second,
            tp.gflops,
            if quick { ", from 10k images" } else { "" }
        ),
    );

    // 3. Forward throughput.
    let cnn = Cnn::new(0, Head::Softmax, &candle_core::Device::Cpu)?;
    for (batch, calls) in [(1usize, 2000usize), (64, 60), (512, 12)] {
        let calls = if quick { calls / 3 } else { calls };
        let f = bench::measure_forward(&cnn, batch, calls)?;
        emit(
            "model",
            &format!("forward, batch {batch}"),
            f.images_per_second,
            "img/s",
            if batch == 512 {
                "TF-Keras ~5,000 img/s; goal >= 5,000"
            } else {
                ""
            },
            &format!("{:.1} GFLOP/s", f.gflops),
        );
    }

    // 4. Maskers: 500 masked 28x28 images with half the pixels hidden.
    let shape = ImageShape::new(28, 28, 1);
    let image = data.test.images_f32(&[0])?;
    let masks = 500;
    let keeps: Vec<bool> = (0..masks * 784)
        .map(|i| ((i * 2_654_435_761usize) >> 7).is_multiple_of(2))
        .collect();
    let mut out = vec![0f32; masks * 784];
    for spec in ["blur(28,28)", "inpaint_telea", "inpaint_ns"] {
        let prepared = Masker::new(spec.parse()?, MaskMode::Default).prepare(&image, shape)?;
        prepared.fill_batch(&keeps, &mut out)?;
        let t = Instant::now();
        for _ in 0..reps {
            prepared.fill_batch(&keeps, &mut out)?;
        }
        let per = t.elapsed().as_secs_f64() / (reps * masks) as f64;
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

    // 5. Explanations of the first 4 test images, top-5, vs the pure model time, with the
    // full network (`shap-cli explain --eval full`) and the incremental CNN path (`--eval
    // incremental`, the CLI's default on the CPU).
    let explained = match checkpoint {
        Some(p) => shap_toolkit::model::load(p.as_ref(), &candle_core::Device::Cpu)?.cnn,
        None => cnn,
    };
    let model = ModelFn::new(&explained)?;
    let incremental = IncrementalCnn::new(&explained)?;
    let images = data.test.images_f32(&[0, 1, 2, 3])?;
    let trained = if checkpoint.is_some() {
        " (trained)"
    } else {
        ""
    };
    for (spec, mode, inc) in [
        ("blur(28,28)", MaskMode::Default, false),
        ("blur(28,28)", MaskMode::Default, true),
        ("inpaint_telea", MaskMode::Default, false),
        ("inpaint_telea", MaskMode::Default, true),
        ("inpaint_telea", MaskMode::ShapCompat, true),
    ] {
        let masker = Masker::new(spec.parse()?, mode);
        let label = format!(
            "{spec}{}{}",
            if mode == MaskMode::ShapCompat {
                " --shap-compat"
            } else {
                ""
            },
            eval_label(inc)
        );
        let explainer = PartitionExplainer {
            outputs: OutputSelection::TopK(5),
            ..PartitionExplainer::default()
        };
        let m: &dyn BatchModel = if inc { &incremental } else { &model };
        explainer.explain(m, &images, shape, &masker)?; // warm-up
        incremental.clear();
        let before = incremental.stats();
        let t = Instant::now();
        let e = explainer.explain(m, &images, shape, &masker)?;
        let total = t.elapsed().as_secs_f64();
        let pure = time_model_only(&model, &images, shape, &e.evals, 10)?.as_secs_f64();
        let note = if inc {
            let after = incremental.stats();
            let work = after.since(before);
            format!(
                "{:.0}% of the full model's conv2 work; overhead {:.0}% of this model's time; \
                 full-model time for the same rows {pure:.3} s, ratio {:.2}",
                100.0 * work.work_fraction(),
                100.0 * e.stats.overhead_ratio(),
                total / pure
            )
        } else {
            format!(
                "pure model {pure:.3} s for the same rows, ratio {:.2}; overhead {:.0}% of model time",
                total / pure,
                100.0 * e.stats.overhead_ratio()
            )
        };
        emit(
            "explain",
            &format!("partition, {label}, 4 images, 500 evals, top-5{trained}"),
            total,
            "s",
            if spec == "blur(28,28)" {
                "quoted: shap+Keras 2.4 s; goal 8x (same-run speed-ups below)"
            } else {
                "quoted: shap+Keras 9.8 s; goal 10x (same-run speed-ups below)"
            },
            &note,
        );
    }
    let perm = PermutationExplainer {
        max_evals: Some(1600),
        outputs: OutputSelection::TopK(5),
        ..PermutationExplainer::default()
    };
    let masker = Masker::new("blur(28,28)".parse()?, MaskMode::Default);
    let t = Instant::now();
    let e = perm.explain(&model, &images, shape, &masker)?;
    let total = t.elapsed().as_secs_f64();
    let pure = time_model_only(&model, &images, shape, &e.evals, 2 * 784 + 1)?.as_secs_f64();
    emit(
        "explain",
        &format!(
            "permutation, blur(28,28){}, 4 images, 1600 evals{trained}",
            eval_label(false)
        ),
        total,
        "s",
        "",
        &format!(
            "pure model {pure:.3} s, ratio {:.2}; overhead {:.0}%",
            total / pure,
            100.0 * e.stats.overhead_ratio()
        ),
    );
    let before = incremental.stats();
    let t = Instant::now();
    perm.explain(&incremental, &images, shape, &masker)?;
    let inc_total = t.elapsed().as_secs_f64();
    let after = incremental.stats();
    let work = after.since(before);
    emit(
        "explain",
        &format!(
            "permutation, blur(28,28){}, 4 images, 1600 evals{trained}",
            eval_label(true)
        ),
        inc_total,
        "s",
        "",
        &format!(
            "{:.0}% of the full model's conv2 work; {:.1}x faster than the row above",
            100.0 * work.work_fraction(),
            total / inc_total
        ),
    );
    Ok(())
}

/// How a row's model was evaluated, as `shap-cli explain` spells it.
fn eval_label(incremental: bool) -> &'static str {
    if incremental {
        " --eval incremental (CLI default)"
    } else {
        " --eval full"
    }
}
