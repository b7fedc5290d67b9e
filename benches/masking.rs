//! Criterion bench `masking`: masked images per second for each masker on a 28x28 image with
//! half the features hidden, single masks and batches of 500 (`PreparedImage::fill_batch`).
//!
//! Run: `cargo bench --bench masking`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shap_toolkit::mask::{ImageShape, InpaintMethod, MaskMode, Masker, MaskerSpec, inpaint_u8};

const SHAPE: ImageShape = ImageShape::new(28, 28, 1);
const M: usize = 784;

/// A deterministic, image-like 28x28 picture in [0,1] (a smooth blob plus texture).
fn image() -> Vec<f32> {
    (0..M)
        .map(|p| {
            let (r, c) = ((p / 28) as f32, (p % 28) as f32);
            let blob = (-((r - 13.5).powi(2) + (c - 12.0).powi(2)) / 60.0).exp();
            (0.8 * blob + 0.2 * ((r * 0.7).sin() * (c * 1.3).cos()).abs()).min(1.0)
        })
        .collect()
}

/// `n` masks with exactly half of the 784 features hidden each (seeded shuffles).
fn half_masks(n: usize, seed: u64) -> Vec<bool> {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::with_capacity(n * M);
    for _ in 0..n {
        let mut m: Vec<bool> = (0..M).map(|j| j < M / 2).collect();
        for j in (1..M).rev() {
            let k = (next() % (j as u64 + 1)) as usize;
            m.swap(j, k);
        }
        out.extend(m);
    }
    out
}

fn specs() -> [(&'static str, MaskerSpec); 4] {
    [
        ("blur(28,28)", MaskerSpec::Blur { kw: 28, kh: 28 }),
        ("inpaint_telea", MaskerSpec::InpaintTelea),
        ("inpaint_ns", MaskerSpec::InpaintNs),
        ("constant", MaskerSpec::Constant(0.5)),
    ]
}

fn single(c: &mut Criterion) {
    let img = image();
    let keep = half_masks(1, 42);
    let mut g = c.benchmark_group("mask_28x28_half_hidden");
    g.throughput(Throughput::Elements(1));
    for mode in [MaskMode::Default, MaskMode::ShapCompat] {
        for (name, spec) in specs() {
            if mode == MaskMode::ShapCompat && !spec.is_inpaint() {
                continue;
            }
            let prepared = match Masker::new(spec, mode).prepare(&img, SHAPE) {
                Ok(p) => p,
                Err(e) => panic!("prepare {name}: {e}"),
            };
            let mut out = vec![0.0f32; M];
            g.bench_function(format!("{name}/{mode}"), |b| {
                b.iter(|| prepared.fill(black_box(&keep), black_box(&mut out)))
            });
        }
    }
    // The raw u8 inpainting kernels on the same mask.
    let src: Vec<u8> = img.iter().map(|&x| (x * 255.0).round() as u8).collect();
    let fill: Vec<bool> = keep.iter().map(|&k| !k).collect();
    for (name, method) in [("telea", InpaintMethod::Telea), ("ns", InpaintMethod::Ns)] {
        g.bench_function(format!("inpaint_u8/{name}"), |b| {
            b.iter(|| inpaint_u8(black_box(&src), black_box(&fill), 28, 28, method))
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let img = image();
    let n = 500;
    let keeps = half_masks(n, 7);
    let mut g = c.benchmark_group("fill_batch_500");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    for (name, spec) in specs() {
        let prepared = match Masker::new(spec, MaskMode::Default).prepare(&img, SHAPE) {
            Ok(p) => p,
            Err(e) => panic!("prepare {name}: {e}"),
        };
        let mut out = vec![0.0f32; n * M];
        g.bench_function(name, |b| {
            b.iter(|| prepared.fill_batch(black_box(&keeps), black_box(&mut out)))
        });
    }
    g.finish();
}

fn prepare(c: &mut Criterion) {
    let img = image();
    let mut g = c.benchmark_group("prepare_28x28");
    for (name, spec) in specs() {
        let masker = Masker::new(spec, MaskMode::Default);
        g.bench_function(name, |b| {
            b.iter_batched(
                || img.clone(),
                |i| masker.prepare(&i, SHAPE),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, single, batch, prepare);
criterion_main!(benches);
