//! Criterion bench `model`: the tutorial CNN on the CPU.
//!
//! - `forward/{1,64,512}`: inference throughput (fast per-image path), ~7.9 MFLOP per image;
//! - `train_step/256`: one Adam step on a batch of 256 (forward, backward, update),
//!   ~24 MFLOP per image.
//!
//! Criterion reports images per second (`Throughput::Elements`); multiply by the FLOP counts
//! (`shap_model::FORWARD_FLOPS`, `TRAIN_FLOPS`, printed at start) for GFLOP/s, or run
//! `cargo run --release --example epoch_time` for a full real-data epoch.
//! Run with `cargo bench --bench model`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shap_toolkit::model::{Cnn, FORWARD_FLOPS, Head, ModelFn, TRAIN_FLOPS};

#[path = "support/measure.rs"]
mod measure;
use measure::{TrainStep, synthetic_images};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn forward(c: &mut Criterion) {
    let dev = shap_toolkit::model::device("cpu").unwrap();
    let cnn = Cnn::seeded(0, Head::Softmax, &dev).unwrap();
    let model = ModelFn::new(&cnn).unwrap();
    eprintln!("forward: {FORWARD_FLOPS} FLOP/image; training step: {TRAIN_FLOPS} FLOP/image");
    let mut g = c.benchmark_group("forward");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for batch in [1usize, 64, 512] {
        let x = synthetic_images(batch);
        let mut out = vec![0f32; batch * 10];
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("{batch}"), |b| {
            b.iter(|| measure::forward(&model, black_box(&x), &mut out).unwrap())
        });
    }
    g.finish();
}

fn train_step(c: &mut Criterion) {
    let batch = 256;
    let mut s = TrainStep::new(batch).unwrap();
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function(format!("{batch}"), |b| b.iter(|| s.step().unwrap()));
    g.finish();
}

criterion_group!(benches, forward, train_step);
criterion_main!(benches);
