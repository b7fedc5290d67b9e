//! Golden-image tests.
//!
//! Each figure is rendered in memory and compared with `tests/golden/NAME.png`. Pixels must be
//! identical, except that up to 0.02% of them may differ (room for anti-aliasing differences of
//! text between platforms); the size must match exactly. On a mismatch the rendered figure is
//! written to `target/tmp/shap-plot-golden-actual/NAME.png` for inspection.
//!
//! After an intended change of the drawing, rewrite the goldens and look at them:
//!
//! ```text
//! SHAP_TOOLKIT_REGENERATE=1 cargo test --release -p shap-plot --test golden
//! ```
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use shap_plot::{
    ColorScale, EpochPoint, RgbFigure, render_confusion_matrix_rgb, render_image_plot_rgb,
    render_training_curves_rgb,
};

/// Largest share of pixels allowed to differ from the golden image.
const TOLERANCE: f64 = 0.0002;

fn check(name: &str, fig: &RgbFigure) {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.png"));
    let actual = image::RgbImage::from_raw(fig.width, fig.height, fig.pixels.clone()).unwrap();
    if std::env::var_os("SHAP_TOOLKIT_REGENERATE").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        actual.save(&golden).unwrap();
        eprintln!("regenerated {}", golden.display());
        return;
    }
    let expected = image::open(&golden)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; run SHAP_TOOLKIT_REGENERATE=1 cargo test --release -p shap-plot --test golden",
                golden.display()
            )
        })
        .to_rgb8();
    let save_actual = || {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shap-plot-golden-actual");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        actual.save(&path).unwrap();
        path
    };
    if expected.dimensions() != actual.dimensions() {
        let p = save_actual();
        panic!(
            "{name}: size {:?}, golden {:?} (actual saved to {})",
            actual.dimensions(),
            expected.dimensions(),
            p.display()
        );
    }
    let differing = expected
        .pixels()
        .zip(actual.pixels())
        .filter(|(a, b)| a != b)
        .count();
    let share = differing as f64 / (fig.width as f64 * fig.height as f64);
    if share > TOLERANCE {
        let p = save_actual();
        panic!(
            "{name}: {differing} pixels ({:.3}%) differ from the golden image (actual saved to {})",
            share * 100.0,
            p.display()
        );
    }
}

#[test]
fn golden_image_plot_global() {
    let (_, fig) = render_image_plot_rgb(&common::plot(2, 3), ColorScale::Global).unwrap();
    check("image_plot_2x3", &fig);
}

#[test]
fn golden_image_plot_per_row() {
    let (_, fig) = render_image_plot_rgb(&common::plot(2, 2), ColorScale::PerRow).unwrap();
    check("image_plot_per_row_2x2", &fig);
}

#[test]
fn golden_confusion_matrix() {
    let m = vec![
        vec![50, 2, 0, 1],
        vec![5, 40, 5, 0],
        vec![0, 10, 88, 3],
        vec![1, 0, 7, 61],
    ];
    let names = ["T-shirt/top", "Trouser", "Pullover", "Ankle boot"];
    let (_, fig) = render_confusion_matrix_rgb(&m, &names).unwrap();
    check("confusion_4", &fig);
}

#[test]
fn golden_training_curves() {
    let h: Vec<EpochPoint> = (1..=5)
        .map(|e| {
            let x = f64::from(e);
            EpochPoint {
                epoch: e,
                train_loss: 0.3 + 0.4 / x,
                train_acc: 0.92 - 0.1 / x,
                test_loss: Some(0.35 + 0.35 / x),
                test_acc: Some(0.9 - 0.1 / x),
            }
        })
        .collect();
    check(
        "training_curves_5",
        &render_training_curves_rgb(&h).unwrap(),
    );
}
