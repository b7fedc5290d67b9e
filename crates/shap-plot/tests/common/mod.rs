//! Shared synthetic data for the shap-plot tests (deterministic, no RNG crate).
#![allow(dead_code)]

use shap_plot::{ImagePlot, ImagePlotRow};

pub const CLASSES: [&str; 10] = [
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

/// A 28x28 test image: an ellipse with a horizontal gradient, 0 outside.
pub fn image(seed: usize) -> Vec<f32> {
    let (ry, rx) = (10.0 + seed as f32, 7.0 + (seed % 3) as f32);
    (0..28 * 28)
        .map(|i| {
            let (r, c) = ((i / 28) as f32, (i % 28) as f32);
            let d = ((r - 13.5) / ry).powi(2) + ((c - 13.5) / rx).powi(2);
            if d < 1.0 { 0.3 + c / 40.0 } else { 0.0 }
        })
        .collect()
}

/// Smooth synthetic SHAP values: a positive bump and a negative bump.
pub fn values(seed: usize, amp: f64) -> Vec<f64> {
    let p = (5.0 + (seed * 7 % 15) as f64, 6.0 + (seed * 11 % 15) as f64);
    let q = (21.0 - (seed * 5 % 13) as f64, 20.0 - (seed * 3 % 13) as f64);
    (0..28 * 28)
        .map(|i| {
            let (r, c) = ((i / 28) as f64, (i % 28) as f64);
            let g = |(y, x): (f64, f64), s: f64| {
                (-((r - y).powi(2) + (c - x).powi(2)) / (2.0 * s * s)).exp()
            };
            amp * (g(p, 3.0) - 0.8 * g(q, 3.5))
        })
        .collect()
}

/// n rows x k outputs of 28x28 synthetic data; row i explains classes (i + 2o) % 10.
pub fn plot(n: usize, k: usize) -> ImagePlot {
    let rows = (0..n)
        .map(|i| ImagePlotRow {
            image: image(i),
            title: Some(format!(
                "true: {} | pred: {} (0.{})",
                CLASSES[i % 10],
                CLASSES[i % 10],
                90 - i
            )),
            values: (0..k)
                .map(|o| values(i * k + o, 0.01 * (1.0 + i as f64) / (1.0 + o as f64)))
                .collect(),
            output_names: (0..k)
                .map(|o| CLASSES[(i + 2 * o) % 10].to_string())
                .collect(),
        })
        .collect();
    ImagePlot {
        height: 28,
        width: 28,
        channels: 1,
        rows,
    }
}

/// A fresh empty directory under the test target dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shap-plot-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
