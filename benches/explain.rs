//! Criterion bench `explain`: 4 Fashion-MNIST-sized images, 500 evaluations, top-5 outputs,
//! Partition explainer with `blur(28,28)` (and `inpaint_telea`), against the pure model time
//! for the same rows.
//!
//! Models: `cnn`, the project's CNN (untrained weights, same cost) behind its `ModelFn`
//! adapter, also as `cnn_incremental` (`IncrementalCnn`, for Partition and Permutation with
//! blur); and two synthetic closures: `dense` (784 -> 10 + softmax, ~8k MAC/image,
//! far cheaper than the CNN, so the explainer overhead is most visible) and `mlp` (784 -> 256
//! -> 10, ~200k MAC/image). Before the criterion groups, a table prints for each case the
//! explanation time, the model-only time for the same rows and batching, their ratio, and the
//! explainer's own overhead as a fraction of the model time inside the explanation.
//!
//! Run: `cargo bench --bench explain`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shap_toolkit::explain::timing::{TimingReport, time_model_only};
use shap_toolkit::explain::{
    BatchModel, Explainer, ExplainerConfig, FnModel, ImageShape, Method, ModelError,
    OutputSelection, PermutationBudget, PermutationSettings,
};
use shap_toolkit::mask::{MaskMode, Masker};
use shap_toolkit::model::{Cnn, Head, IncrementalCnn, ModelFn};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHAPE: ImageShape = ImageShape::new(28, 28, 1);
const M: usize = 784;
const K: usize = 10;

fn images(n: usize) -> Vec<f32> {
    (0..n * M)
        .map(|i| {
            let (img, p) = (i / M, i % M);
            let (r, c) = ((p / 28) as f32, (p % 28) as f32);
            let blob = (-((r - 13.5 - img as f32).powi(2) + (c - 12.0).powi(2)) / 60.0).exp();
            (0.8 * blob + 0.2 * ((r * 0.7).sin() * (c * 1.3 + img as f32).cos()).abs()).min(1.0)
        })
        .collect()
}

fn weights(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + salt * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 0.1)
        .collect()
}

fn softmax(z: &[f32], out: &mut [f32]) {
    let mx = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, v) in out.iter_mut().zip(z) {
        *o = (v - mx).exp();
        sum += *o;
    }
    out.iter_mut().for_each(|o| *o /= sum);
}

/// Dense 784 -> `hidden` (ReLU) -> 10 softmax; `hidden == 0` means a single 784 -> 10 layer.
fn mlp(hidden: usize) -> impl BatchModel {
    let w1 = weights(M * hidden.max(K), 1);
    let w2 = weights(hidden * K, 2);
    FnModel::new(
        K,
        move |x: &[f32], n: usize, _s: ImageShape, out: &mut [f32]| {
            if x.len() != n * M || out.len() != n * K {
                return Err(ModelError::Shape(format!("{n} images")));
            }
            for (img, o) in x.chunks_exact(M).zip(out.chunks_exact_mut(K)) {
                let width = if hidden == 0 { K } else { hidden };
                let mut h = vec![0.0f32; width];
                for (j, &v) in img.iter().enumerate() {
                    if v != 0.0 {
                        for (hc, w) in h.iter_mut().zip(&w1[j * width..(j + 1) * width]) {
                            *hc += v * w;
                        }
                    }
                }
                let mut z = [0.0f32; K];
                if hidden == 0 {
                    z.copy_from_slice(&h);
                } else {
                    for (i, hv) in h.iter().enumerate() {
                        let hv = hv.max(0.0);
                        for (zc, w) in z.iter_mut().zip(&w2[i * K..(i + 1) * K]) {
                            *zc += hv * w;
                        }
                    }
                }
                softmax(&z, o);
            }
            Ok(())
        },
    )
}

/// Partition, shap's 500 evaluations, top 5.
fn explainer() -> Explainer {
    ExplainerConfig {
        outputs: OutputSelection::TopK(5),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap()
}

/// Permutation, one pass, top 5.
fn one_pass() -> Explainer {
    ExplainerConfig {
        outputs: OutputSelection::TopK(5),
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(1),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap()
}

/// The project's CNN (untrained weights: same cost as a trained one) behind its adapter.
fn cnn() -> ModelFn {
    let dev = shap_toolkit::model::device("cpu").unwrap();
    let cnn = Cnn::seeded(0, Head::Softmax, &dev).unwrap();
    ModelFn::new(&cnn).unwrap()
}

fn report_model<B: BatchModel>(mname: &str, model: &B, x: &[f32]) {
    for spec in ["blur(28,28)", "inpaint_telea"] {
        let masker = Masker::new(spec.parse().unwrap(), MaskMode::Default);
        // Warm up once, then measure.
        explainer().explain(model, x, SHAPE, &masker).unwrap();
        let e = explainer().explain(model, x, SHAPE, &masker).unwrap();
        let r = TimingReport::measure(&e, model, 10).unwrap();
        eprintln!("  partition   {mname:7} {spec:14} {r}");
    }
    let masker = Masker::new("blur(28,28)".parse().unwrap(), MaskMode::Default);
    let e = one_pass().explain(model, x, SHAPE, &masker).unwrap();
    let r = TimingReport::measure(&e, model, 2 * M + 1).unwrap();
    eprintln!("  permutation {mname:7} {:14} {r}", "blur(28,28)");
}

fn report() {
    let x = images(4);
    eprintln!("explain bench: 4 images, max_evals 500, top-5 (Partition), 1 pass (Permutation)");
    report_model("cnn", &cnn(), &x);
    for (mname, model) in [("dense", mlp(0)), ("mlp256", mlp(256))] {
        report_model(mname, &model, &x);
    }
}

fn bench(c: &mut Criterion) {
    report();
    let x = images(4);
    let mut g = c.benchmark_group("explain");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let cnn = cnn();
    let masker = Masker::new("blur(28,28)".parse().unwrap(), MaskMode::Default);
    g.bench_function("partition_4x500_top5/cnn/blur", |b| {
        b.iter(|| {
            explainer()
                .explain(black_box(&cnn), &x, SHAPE, &masker)
                .unwrap()
        })
    });
    g.bench_function("model_only_4x500/cnn", |b| {
        b.iter(|| time_model_only(black_box(&cnn), &x, SHAPE, &[500; 4], 10).unwrap())
    });
    // The incremental CNN path, starting cold (no kept states) every iteration.
    let inc =
        IncrementalCnn::new(&Cnn::seeded(0, Head::Softmax, &candle_core::Device::Cpu).unwrap())
            .unwrap();
    g.bench_function("partition_4x500_top5/cnn_incremental/blur", |b| {
        b.iter(|| {
            inc.clear();
            explainer()
                .explain(black_box(&inc), &x, SHAPE, &masker)
                .unwrap()
        })
    });
    let one_pass = one_pass();
    for (mname, model) in [("cnn", &cnn as &dyn BatchModel), ("cnn_incremental", &inc)] {
        g.bench_function(format!("permutation_4x1pass_top5/{mname}/blur"), |b| {
            b.iter(|| {
                inc.clear();
                one_pass
                    .explain(black_box(model), &x, SHAPE, &masker)
                    .unwrap()
            })
        });
    }
    for (mname, model) in [("dense", mlp(0)), ("mlp256", mlp(256))] {
        for spec in ["blur(28,28)", "inpaint_telea"] {
            let masker = Masker::new(spec.parse().unwrap(), MaskMode::Default);
            let name = spec.split('(').next().unwrap_or(spec);
            g.bench_function(format!("partition_4x500_top5/{mname}/{name}"), |b| {
                b.iter(|| {
                    explainer()
                        .explain(black_box(&model), &x, SHAPE, &masker)
                        .unwrap()
                })
            });
        }
        g.bench_function(format!("model_only_4x500/{mname}"), |b| {
            b.iter(|| time_model_only(black_box(&model), &x, SHAPE, &[500; 4], 10).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
