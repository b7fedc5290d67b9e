//! Confusion matrix and training curves: semantic checks and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use shap_plot::{
    EpochPoint, PlotError, blues, confusion_matrix_plot, render_confusion_matrix_rgb,
    render_training_curves_rgb, training_curves_plot,
};

fn matrix() -> Vec<Vec<u64>> {
    vec![vec![50, 2, 0], vec![5, 40, 5], vec![0, 10, 88]]
}

#[test]
fn confusion_cells_are_shaded_by_count() {
    let names = ["Coat", "Shirt", "Ankle boot"];
    let (info, fig) = render_confusion_matrix_rgb(&matrix(), &names).unwrap();
    assert_eq!(info.classes, 3);
    assert_eq!(info.cells.len(), 9);
    assert_eq!(info.total, 200);
    assert!((info.accuracy - 178.0 / 200.0).abs() < 1e-12);
    for (idx, cell) in info.cells.iter().enumerate() {
        let count = matrix()[idx / 3][idx % 3];
        // Sample near the corner (the count text sits in the middle).
        let got = fig.pixel(cell.x + 2, cell.y + 2).unwrap();
        assert_eq!(got, blues(count as f64 / 88.0), "cell {idx}");
        assert!(cell.right() <= info.width && cell.bottom() <= info.height);
    }
    // The largest count is the darkest, a zero count is near white.
    assert_eq!(blues(1.0), [8, 48, 107]);
    assert_eq!(blues(0.0), [247, 251, 255]);
    // Cells form a square grid in reading order.
    assert_eq!(info.cells[1].x, info.cells[0].right());
    assert_eq!(info.cells[3].y, info.cells[0].bottom());
    // The count text is drawn: the centre of the darkest cell has light (text) pixels nearby.
    let c = info.cells[8];
    let light = (c.x..c.right())
        .flat_map(|x| (c.y..c.bottom()).map(move |y| (x, y)))
        .filter(|&(x, y)| fig.pixel(x, y).unwrap()[0] > 200)
        .count();
    assert!(light > 10, "white count text in the dark cell");
}

#[test]
fn confusion_file_and_long_names() {
    let dir = common::temp_dir("confusion");
    let names: Vec<String> = common::CLASSES.iter().map(|s| s.to_string()).collect();
    let m: Vec<Vec<u64>> = (0..10)
        .map(|t| {
            (0..10)
                .map(|p| if t == p { 900 } else { (t + p) as u64 })
                .collect()
        })
        .collect();
    let out = dir.join("cm.png");
    let info = confusion_matrix_plot(&m, &names, &out).unwrap();
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (info.width, info.height));
    let long: Vec<String> = names
        .iter()
        .map(|n| format!("{n} (a much longer name)"))
        .collect();
    let (wide, _) = render_confusion_matrix_rgb(&m, &long).unwrap();
    assert!(wide.cells[0].x > info.cells[0].x, "long row names get room");
    confusion_matrix_plot(&m, &long, &dir.join("cm_long.png")).unwrap();
    confusion_matrix_plot(&m, &names, &dir.join("cm.svg")).unwrap();
    assert!(
        std::fs::read_to_string(dir.join("cm.svg"))
            .unwrap()
            .contains("Ankle boot")
    );
}

#[test]
fn confusion_bad_input() {
    let dir = common::temp_dir("confusion_bad");
    let out = dir.join("cm.png");
    let empty: Vec<Vec<u64>> = Vec::new();
    let no_names: [&str; 0] = [];
    assert!(matches!(
        confusion_matrix_plot(&empty, &no_names, &out),
        Err(PlotError::Empty(_))
    ));
    assert!(matches!(
        confusion_matrix_plot(&matrix(), &["a", "b"], &out),
        Err(PlotError::ShapeMismatch {
            expected: 3,
            got: 2,
            ..
        })
    ));
    let mut ragged = matrix();
    ragged[1].pop();
    assert!(matches!(
        confusion_matrix_plot(&ragged, &["a", "b", "c"], &out),
        Err(PlotError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        confusion_matrix_plot(&matrix(), &["a", "b", "c"], &dir.join("missing/cm.png")),
        Err(PlotError::Io { .. })
    ));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

fn history(n: u32) -> Vec<EpochPoint> {
    (1..=n)
        .map(|e| EpochPoint {
            epoch: e,
            train_loss: 0.3 + 0.4 / f64::from(e),
            train_acc: 0.92 - 0.1 / f64::from(e),
            test_loss: Some(0.35 + 0.35 / f64::from(e)),
            test_acc: if e == 2 {
                None
            } else {
                Some(0.9 - 0.1 / f64::from(e))
            },
        })
        .collect()
}

fn count_near(fig: &shap_plot::RgbFigure, rgb: [u8; 3]) -> usize {
    fig.pixels
        .chunks_exact(3)
        .filter(|p| p.iter().zip(rgb).all(|(&a, b)| a.abs_diff(b) <= 10))
        .count()
}

#[test]
fn curves_draw_train_and_test_in_both_panels() {
    let fig = render_training_curves_rgb(&history(6)).unwrap();
    assert_eq!((fig.width, fig.height), (1000, 420));
    // Train (blue) and test (orange) lines appear in both halves.
    let half = |fig: &shap_plot::RgbFigure, left: bool| {
        let mut f = fig.clone();
        for y in 0..f.height {
            for x in 0..f.width {
                if (x < f.width / 2) != left {
                    let i = ((y * f.width + x) * 3) as usize;
                    f.pixels[i..i + 3].copy_from_slice(&[255, 255, 255]);
                }
            }
        }
        f
    };
    for left in [true, false] {
        let h = half(&fig, left);
        assert!(
            count_near(&h, [31, 119, 180]) > 200,
            "train line, left={left}"
        );
        assert!(
            count_near(&h, [255, 127, 14]) > 200,
            "test line, left={left}"
        );
    }
    // A single epoch still plots.
    render_training_curves_rgb(&history(1)).unwrap();
    // Without test metrics, no orange.
    let train_only: Vec<EpochPoint> = history(4)
        .into_iter()
        .map(|p| EpochPoint {
            test_loss: None,
            test_acc: None,
            ..p
        })
        .collect();
    let fig = render_training_curves_rgb(&train_only).unwrap();
    assert_eq!(count_near(&fig, [255, 127, 14]), 0);
}

#[test]
fn curves_file_and_bad_input() {
    let dir = common::temp_dir("curves");
    training_curves_plot(&history(5), &dir.join("c.png")).unwrap();
    assert_eq!(
        image::open(dir.join("c.png"))
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (1000, 420)
    );
    training_curves_plot(&history(5), &dir.join("c.svg")).unwrap();
    assert!(
        std::fs::read_to_string(dir.join("c.svg"))
            .unwrap()
            .contains("Accuracy")
    );

    let out = dir.join("bad.png");
    assert!(matches!(
        training_curves_plot(&[], &out),
        Err(PlotError::Empty(_))
    ));
    let mut h = history(3);
    h[1].train_loss = f64::NAN;
    assert!(matches!(
        training_curves_plot(&h, &out),
        Err(PlotError::NonFinite { index: 1, .. })
    ));
    let mut h = history(3);
    h[2].test_acc = Some(f64::INFINITY);
    assert!(matches!(
        training_curves_plot(&h, &out),
        Err(PlotError::NonFinite { index: 2, .. })
    ));
    let mut h = history(3);
    h[2].epoch = 2;
    assert!(matches!(
        training_curves_plot(&h, &out),
        Err(PlotError::EpochOrder { prev: 2, next: 2 })
    ));
    assert!(matches!(
        training_curves_plot(&history(3), &dir.join("c.txt")),
        Err(PlotError::UnsupportedFormat(_))
    ));
    assert!(!out.exists());
}
