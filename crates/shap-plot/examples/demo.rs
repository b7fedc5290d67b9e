//! Writes demo figures from synthetic data: a 4-row, 5-output image plot (global and per-row
//! scale), a confusion matrix and training curves, as PNG and SVG.
//!
//! ```text
//! cargo run --release -p shap-plot --example demo -- [OUT_DIR]
//! ```
//! OUT_DIR defaults to `target/shap-plot-demo`.

use std::path::PathBuf;

use shap_plot::{
    ColorScale, EpochPoint, ImagePlot, ImagePlotRow, PlotError, confusion_matrix_plot, image_plot,
    training_curves_plot,
};

const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A synthetic 28 x 28 "garment": a soft blob whose shape depends on `seed`.
fn synthetic_image(seed: usize) -> Vec<f32> {
    let (cy, cx) = (14.0 + (seed % 3) as f32 - 1.0, 14.0 + (seed % 2) as f32);
    let (ry, rx) = (9.0 + (seed % 4) as f32, 6.0 + (seed % 5) as f32);
    (0..28 * 28)
        .map(|i| {
            let (r, c) = ((i / 28) as f32, (i % 28) as f32);
            let d = ((r - cy) / ry).powi(2) + ((c - cx) / rx).powi(2);
            let stripes = 0.15 * ((c * 0.9 + seed as f32).sin() * 0.5 + 0.5);
            if d < 1.0 {
                (0.85 - 0.5 * d + stripes).clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Synthetic SHAP values: a positive and a negative Gaussian bump, scaled by `amp`.
fn synthetic_values(seed: usize, amp: f64) -> Vec<f64> {
    let p = (6.0 + (seed * 7 % 15) as f64, 5.0 + (seed * 11 % 17) as f64);
    let q = (20.0 - (seed * 5 % 13) as f64, 21.0 - (seed * 3 % 15) as f64);
    (0..28 * 28)
        .map(|i| {
            let (r, c) = ((i / 28) as f64, (i % 28) as f64);
            let g = |(y, x): (f64, f64), s: f64| {
                (-((r - y).powi(2) + (c - x).powi(2)) / (2.0 * s * s)).exp()
            };
            amp * (g(p, 3.0) - 0.7 * g(q, 4.0))
        })
        .collect()
}

fn main() -> Result<(), PlotError> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/shap-plot-demo"), PathBuf::from);
    std::fs::create_dir_all(&dir).map_err(|source| PlotError::Io {
        path: dir.clone(),
        source,
    })?;

    let rows = (0..4)
        .map(|i| {
            let outputs: Vec<usize> = (0..5).map(|o| (i * 3 + o * 2) % 10).collect();
            ImagePlotRow {
                image: synthetic_image(i),
                title: Some(format!(
                    "true: {} | pred: {} (0.{})",
                    CLASSES[outputs[0]],
                    CLASSES[outputs[0]],
                    93 - i * 7
                )),
                values: (0..5)
                    .map(|o| {
                        synthetic_values(i * 5 + o, 0.02 / (1.0 + o as f64) * (1.0 + i as f64))
                    })
                    .collect(),
                output_names: outputs.iter().map(|&o| CLASSES[o].to_string()).collect(),
            }
        })
        .collect();
    let plot = ImagePlot {
        height: 28,
        width: 28,
        channels: 1,
        rows,
    };
    let info = image_plot(&plot, ColorScale::Global, &dir.join("image_plot.png"))?;
    println!(
        "image_plot.png: {} x {} px, {} panels, vmax {:.5}",
        info.width,
        info.height,
        info.panels.len(),
        info.row_vmax[0]
    );
    image_plot(&plot, ColorScale::Global, &dir.join("image_plot.svg"))?;
    let info = image_plot(
        &plot,
        ColorScale::PerRow,
        &dir.join("image_plot_per_row.png"),
    )?;
    println!(
        "image_plot_per_row.png: {} x {} px, row vmax {:?}",
        info.width, info.height, info.row_vmax
    );

    let matrix: Vec<Vec<u64>> = (0..10)
        .map(|t| {
            (0..10)
                .map(|p| {
                    if t == p {
                        850 + (t as u64 * 13) % 120
                    } else {
                        ((t * 7 + p * 3) % 11) as u64 * 3
                    }
                })
                .collect()
        })
        .collect();
    let cm = confusion_matrix_plot(&matrix, &CLASSES, &dir.join("confusion.png"))?;
    println!(
        "confusion.png: {} x {} px, accuracy {:.4}",
        cm.width, cm.height, cm.accuracy
    );

    let history: Vec<EpochPoint> = (1..=10)
        .map(|e| {
            let x = f64::from(e);
            EpochPoint {
                epoch: e,
                train_loss: 0.25 + 0.5 / x,
                train_acc: 0.93 - 0.15 / x,
                test_loss: Some(0.3 + 0.45 / x + 0.004 * x),
                test_acc: Some(0.91 - 0.14 / x),
            }
        })
        .collect();
    training_curves_plot(&history, &dir.join("curves.png"))?;
    println!("curves.png written; all figures in {}", dir.display());
    Ok(())
}
