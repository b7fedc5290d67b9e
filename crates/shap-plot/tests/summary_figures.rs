//! The per-class summary figure and the faithfulness curves: layout, colours, bad input.
#![allow(clippy::unwrap_used)]

mod common;

use shap_explain::{ClassMaps, ClassSummary, Curves};
use shap_plot::{PanelKind, PlotError, class_summary_plot, faithfulness_plot};

fn class(c: usize, with: usize, without: usize, amp: f64) -> ClassMaps {
    let has = with > 0;
    ClassMaps {
        class: c,
        name: common::CLASSES[c].into(),
        predicted: with + without,
        with_values: with,
        without_values: without,
        mean_image: common::image(c).into_iter().map(f64::from).collect(),
        mean: has.then(|| common::values(c, amp)),
        mean_abs: has.then(|| common::values(c, amp).iter().map(|v| v.abs()).collect()),
    }
}

#[test]
fn one_row_per_class_with_values_and_one_scale_per_row() {
    let s = ClassSummary {
        shape: [28, 28, 1],
        images: 9,
        without_values: 2,
        classes: vec![
            class(0, 4, 0, 1.0),
            class(3, 0, 2, 1.0),
            class(9, 3, 0, 0.01),
        ],
    };
    let out = common::temp_dir("class_summary").join("summary.png");
    let info = class_summary_plot(&s, &out).unwrap();
    // Class 3 has no values for its own class: not drawn.
    assert_eq!((info.rows, info.columns), (2, 3));
    assert_eq!(info.colorbars.len(), 2, "one colour bar per row");
    assert!(
        info.row_vmax[0] > 10.0 * info.row_vmax[1],
        "{:?}",
        info.row_vmax
    );
    let title = info.panel(1, 0).unwrap().title.clone().unwrap();
    assert_eq!(title, "Ankle boot: 3 images");
    assert_eq!(info.panel(0, 1).unwrap().kind, PanelKind::Output(0));
    assert_eq!(
        info.panel(0, 2).unwrap().title.as_deref(),
        Some("mean |SHAP|")
    );
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (info.width, info.height));

    let none = ClassSummary {
        classes: vec![class(3, 0, 2, 1.0)],
        ..s
    };
    let err = class_summary_plot(&none, &out.with_file_name("none.png")).unwrap_err();
    assert!(matches!(err, PlotError::Empty(_)), "{err}");
    assert!(!out.with_file_name("none.png").exists());
}

#[test]
fn faithfulness_curves_are_drawn_and_checked() {
    let c = Curves {
        deletion: vec![1.0, 0.4, 0.1, 0.0],
        insertion: vec![0.0, 0.7, 0.9, 1.0],
        random_deletion: vec![1.0, 0.8, 0.5, 0.0],
        random_insertion: vec![0.0, 0.3, 0.6, 1.0],
    };
    let dir = common::temp_dir("faithfulness_plot");
    let out = dir.join("curves.png");
    faithfulness_plot(&c, &out).unwrap();
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1000, 420));
    // Both line colours are drawn.
    let has = |rgb: [u8; 3]| img.pixels().any(|p| p.0 == rgb);
    assert!(has([31, 119, 180]) && has([255, 127, 14]));
    faithfulness_plot(&c, &dir.join("curves.svg")).unwrap();
    // The legend gives each curve's AUC (mean of the trapezoids: 1/3 for 1, .4, .1, 0).
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    for label in [
        "explanation order (AUC 0.3333)",
        "random orders (AUC 0.6000)",
        "explanation order (AUC 0.7000)",
        "random orders (AUC 0.4667)",
    ] {
        assert!(svg.contains(label), "{label}");
    }
    // Each panel's legend sits above its curves: below the legend's box (its grey border),
    // no curve pixel reaches higher than the box's bottom edge.
    for (x0, x1) in [(0, 500), (500, 1000)] {
        let inside = |x: u32| (x0..x1).contains(&x);
        let border: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(x, y, p)| inside(*x) && *y < 160 && p.0 == [180, 180, 180])
            .map(|(x, y, _)| (x, y))
            .collect();
        let (bx0, bx1) = (
            border.iter().map(|p| p.0).min().unwrap(),
            border.iter().map(|p| p.0).max().unwrap(),
        );
        let (by0, by1) = (
            border.iter().map(|p| p.1).min().unwrap(),
            border.iter().map(|p| p.1).max().unwrap(),
        );
        let top_curve = img
            .enumerate_pixels()
            .filter(|(x, y, p)| {
                let in_box = (bx0..=bx1).contains(x) && (by0..=by1).contains(y);
                inside(*x) && !in_box && (p.0 == [31, 119, 180] || p.0 == [255, 127, 14])
            })
            .map(|(_, y, _)| y)
            .min()
            .unwrap();
        assert!(
            by1 < top_curve,
            "legend bottom {by1}, highest curve pixel {top_curve}"
        );
    }

    let mut bad = c.clone();
    bad.random_insertion.pop();
    assert!(faithfulness_plot(&bad, &dir.join("short.png")).is_err());
    let mut nan = c.clone();
    nan.deletion[1] = f64::NAN;
    assert!(faithfulness_plot(&nan, &dir.join("nan.png")).is_err());
    assert!(faithfulness_plot(&c, &dir.join("curves.txt")).is_err());
    for f in ["short.png", "nan.png", "curves.txt"] {
        assert!(!dir.join(f).exists(), "{f}");
    }
}
