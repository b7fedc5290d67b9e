//! Criterion bench `plot`: rendering a 4-row, 5-output (4 x 6 panels) shap image plot of
//! 28 x 28 images from synthetic values: in memory (bitmap backend), to a PNG file (render +
//! encode + atomic write) and to an SVG file; plus the confusion matrix and training curves.
//!
//! Run: `cargo bench --bench plot`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shap_toolkit::plot::{
    ColorScale, EpochPoint, ImagePlot, ImagePlotRow, confusion_matrix_plot, image_plot,
    render_image_plot_rgb, training_curves_plot,
};

fn synthetic_plot(n: usize, k: usize) -> ImagePlot {
    let rows = (0..n)
        .map(|i| ImagePlotRow {
            image: (0..784)
                .map(|p| ((p * 7 + i * 13) % 29) as f32 / 28.0)
                .collect(),
            title: Some(format!("true: Coat | pred: Coat (0.{})", 90 + i)),
            values: (0..k)
                .map(|o| {
                    (0..784)
                        .map(|p| (((p * 31 + o * 17 + i * 5) % 101) as f64 - 50.0) * 1e-4)
                        .collect()
                })
                .collect(),
            output_names: (0..k).map(|o| format!("class {o}")).collect(),
        })
        .collect();
    ImagePlot {
        height: 28,
        width: 28,
        channels: 1,
        rows,
    }
}

fn bench(c: &mut Criterion) {
    let plot = synthetic_plot(4, 5);
    let dir = std::env::temp_dir().join(format!("shap-plot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut g = c.benchmark_group("image_plot_4x6");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.bench_function("render_rgb", |b| {
        b.iter(|| render_image_plot_rgb(black_box(&plot), ColorScale::Global).unwrap())
    });
    let png = dir.join("fig.png");
    g.bench_function("png_file", |b| {
        b.iter(|| image_plot(black_box(&plot), ColorScale::Global, &png).unwrap())
    });
    let svg = dir.join("fig.svg");
    g.bench_function("svg_file", |b| {
        b.iter(|| image_plot(black_box(&plot), ColorScale::Global, &svg).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("other_figures");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let m: Vec<Vec<u64>> = (0..10)
        .map(|t| {
            (0..10)
                .map(|p| if t == p { 900 } else { (t * 3 + p) as u64 })
                .collect()
        })
        .collect();
    let names: Vec<String> = (0..10).map(|i| format!("class {i}")).collect();
    let cm = dir.join("cm.png");
    g.bench_function("confusion_10_png", |b| {
        b.iter(|| confusion_matrix_plot(black_box(&m), &names, &cm).unwrap())
    });
    let h: Vec<EpochPoint> = (1..=10)
        .map(|e| EpochPoint {
            epoch: e,
            train_loss: 1.0 / f64::from(e),
            train_acc: 1.0 - 0.5 / f64::from(e),
            test_loss: Some(1.1 / f64::from(e)),
            test_acc: Some(0.95 - 0.5 / f64::from(e)),
        })
        .collect();
    let curves = dir.join("curves.png");
    g.bench_function("curves_10_png", |b| {
        b.iter(|| training_curves_plot(black_box(&h), &curves).unwrap())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
