//! Criterion bench `data_load`: loading all 70,000 Fashion-MNIST images and labels from the
//! gzip IDX files (decompression and validation included), plus batch extraction.
//!
//! Run with `cargo bench --bench data_load`. The dataset comes from `FASHION_MNIST_DIR` or
//! `/usr/share/datasets/fashion-mnist`; without it the bench says so and measures nothing.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shap_toolkit::data::{FashionMnist, SYSTEM_DIR, shuffled_batches};

fn data_dir() -> PathBuf {
    std::env::var_os("FASHION_MNIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_DIR))
}

fn bench(c: &mut Criterion) {
    let dir = data_dir();
    let data = match FashionMnist::load_dir(&dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("data_load bench skipped: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("data_load");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("load_dir_70k_gz", |b| {
        b.iter(|| FashionMnist::load_dir(black_box(&dir)).map(|d| d.train.len() + d.test.len()))
    });
    g.finish();

    let batches = shuffled_batches(data.train.len(), 256, 0).unwrap_or_default();
    let mut g = c.benchmark_group("batches");
    g.bench_function("shuffled_batches_60k", |b| {
        b.iter(|| shuffled_batches(black_box(60_000), 256, 1).map(|v| v.len()))
    });
    if let Some(first) = batches.first() {
        g.bench_function("images_f32_batch_256", |b| {
            b.iter(|| data.train.images_f32(black_box(first)).map(|v| v.len()))
        });
    }
    g.bench_function("all_f32_test_10k", |b| b.iter(|| data.test.all_f32().len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
