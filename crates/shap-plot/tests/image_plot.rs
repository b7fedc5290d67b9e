//! Semantic checks of the image plot that survive font changes: colours sampled at the
//! computed pixel centres, the colour bar, panel counts, layout size, and bad input.
#![allow(clippy::unwrap_used)]

mod common;

use shap_plot::{
    ColorScale, ImagePlot, ImagePlotRow, Orientation, PanelKind, PlotError, RgbFigure,
    composite_pixel, image_plot, red_transparent_blue, render_image_plot_rgb, resolve_vmax,
};

/// 2 rows x 3 outputs of 8x8 images with a few marked pixels.
fn marked_plot() -> ImagePlot {
    let (h, w) = (8, 8);
    let image: Vec<f32> = (0..h * w)
        .map(|i| (i % w) as f32 / (w - 1) as f32)
        .collect();
    let mut rows = Vec::new();
    for r in 0..2 {
        let mut values = vec![vec![0.0; h * w]; 3];
        values[0][2 * w + 3] = 1.0; // positive at (2,3)
        values[0][5 * w + 5] = -1.0; // negative at (5,5)
        values[1][r * w + 1] = 0.5; // half positive
        values[2][7 * w + 7] = -0.25;
        rows.push(ImagePlotRow {
            image: image.clone(),
            title: Some(format!("row {r}")),
            values,
            output_names: vec![format!("A{r}"), format!("B{r}"), format!("C{r}")],
        });
    }
    ImagePlot {
        height: h,
        width: w,
        channels: 1,
        rows,
    }
}

fn at(fig: &RgbFigure, p: (u32, u32)) -> [u8; 3] {
    fig.pixel(p.0, p.1).unwrap()
}

fn grey_byte(g: f64) -> u8 {
    ((0.85 + 0.15 * g) * 255.0).round() as u8
}

#[test]
fn positive_red_negative_blue_zero_grey() {
    let plot = marked_plot();
    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Fixed(1.0)).unwrap();
    let panel = info.panel(0, 1).unwrap();
    assert_eq!(panel.kind, PanelKind::Output(0));
    // Image column c has normalised grey c/7.
    let red = at(&fig, panel.pixel_center(2, 3).unwrap());
    assert_eq!(red, [255, 13, 87], "value +vmax is opaque shap red");
    let blue = at(&fig, panel.pixel_center(5, 5).unwrap());
    assert_eq!(blue, [30, 136, 229], "value -vmax is opaque shap blue");
    for (r, c) in [(0, 0), (4, 6), (7, 7), (3, 2)] {
        let g = grey_byte(c as f64 / 7.0);
        assert_eq!(
            at(&fig, panel.pixel_center(r, c).unwrap()),
            [g, g, g],
            "zero at ({r},{c})"
        );
    }
    // Half-positive value: reddish blend over the grey, as composite_pixel says.
    let p = info.panel(1, 2).unwrap();
    let got = at(&fig, p.pixel_center(1, 1).unwrap());
    assert_eq!(got, composite_pixel(0.5, 1.0, 1.0 / 7.0));
    assert!(
        got[0] > got[1] + 50 && got[0] > got[2],
        "{got:?} is red-ish"
    );
    let got = at(&fig, info.panel(0, 3).unwrap().pixel_center(7, 7).unwrap());
    assert!(got[2] > got[0] + 30, "{got:?} is blue-ish");
}

#[test]
fn every_screen_pixel_of_a_cell_matches_its_image_pixel() {
    // Alignment: each s x s block shows exactly one image pixel (shap's underlay is half a
    // pixel off, which would mix neighbouring greys inside a block).
    let plot = common::plot(2, 3);
    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Global).unwrap();
    let vmax = info.row_vmax[0];
    for (row, col) in [(0, 0), (0, 2), (1, 3)] {
        let panel = info.panel(row, col).unwrap();
        assert_eq!(panel.rect.width, 28 * panel.scale);
        assert_eq!(panel.rect.height, 28 * panel.scale);
        let img = &plot.rows[row].image;
        let lo = img.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        let hi = img.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        for r in 0..28 {
            for c in 0..28 {
                let g = (img[r * 28 + c] as f64 - lo) / (hi - lo);
                let want = match panel.kind {
                    PanelKind::Image => {
                        let b = (g * 255.0).round() as u8;
                        [b, b, b]
                    }
                    PanelKind::Output(o) => {
                        composite_pixel(plot.rows[row].values[o][r * 28 + c], vmax, g)
                    }
                };
                let px = panel.pixel_rect(r, c).unwrap();
                for y in px.y..px.bottom() {
                    for x in px.x..px.right() {
                        assert_eq!(
                            fig.pixel(x, y).unwrap(),
                            want,
                            "panel ({row},{col}) pixel ({r},{c})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn colour_bar_spans_minus_vmax_to_vmax() {
    let plot = common::plot(3, 4);
    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Global).unwrap();
    assert_eq!(info.colorbars.len(), 1);
    let bar = &info.colorbars[0];
    assert_eq!(bar.orientation, Orientation::Horizontal);
    assert_eq!(bar.row, None);
    assert_eq!(bar.vmax, info.row_vmax[0]);
    assert_eq!(bar.vmin, -bar.vmax);
    let r = bar.rect;
    let y = r.y + r.height / 2;
    // Ends are the opaque end colours of the map, the middle is transparent (white).
    assert_eq!(fig.pixel(r.x, y).unwrap(), [30, 136, 229]);
    assert_eq!(fig.pixel(r.right() - 1, y).unwrap(), [255, 13, 87]);
    let mid = fig.pixel(r.x + r.width / 2, y).unwrap();
    assert!(mid.iter().all(|&c| c >= 250), "{mid:?}");
    // Left of centre blue-ish, right of centre red-ish.
    let q1 = fig.pixel(r.x + r.width / 4, y).unwrap();
    let q3 = fig.pixel(r.x + 3 * r.width / 4, y).unwrap();
    assert!(q1[2] > q1[0] && q3[0] > q3[2], "{q1:?} {q3:?}");
    // Ticks inside the bar, increasing, 0 at the centre.
    assert!(bar.ticks.len() >= 3);
    for t in &bar.ticks {
        assert!(t.tick.value.abs() <= bar.vmax);
        let want = r.x as f64 + (t.tick.value + bar.vmax) / (2.0 * bar.vmax) * r.width as f64;
        assert!((t.pixel - want).abs() < 1e-9);
    }
    let zero = bar.ticks.iter().find(|t| t.tick.value == 0.0).unwrap();
    assert!((zero.pixel - (r.x as f64 + r.width as f64 / 2.0)).abs() < 1e-9);
    // The bar lies below every panel.
    assert!(info.panels.iter().all(|p| p.rect.bottom() <= r.y));
    assert!(r.bottom() < info.height);
}

#[test]
fn panel_count_titles_and_geometry() {
    for (n, k) in [(1, 1), (2, 3), (4, 5), (3, 10)] {
        let plot = common::plot(n, k);
        let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Global).unwrap();
        assert_eq!(info.panels.len(), n * (k + 1));
        assert_eq!((info.rows, info.columns), (n, k + 1));
        assert_eq!((fig.width, fig.height), (info.width, info.height));
        assert_eq!(fig.pixels.len(), (fig.width * fig.height * 3) as usize);
        for (i, p) in info.panels.iter().enumerate() {
            assert_eq!((p.row, p.column), (i / (k + 1), i % (k + 1)));
            assert!(p.rect.right() <= info.width && p.rect.bottom() <= info.height);
            let want = if p.column == 0 {
                plot.rows[p.row].title.clone()
            } else {
                Some(plot.rows[p.row].output_names[p.column - 1].clone())
            };
            assert_eq!(p.title, want, "every row titled with its own names");
            for q in &info.panels[..i] {
                let overlap = p.rect.x < q.rect.right()
                    && q.rect.x < p.rect.right()
                    && p.rect.y < q.rect.bottom()
                    && q.rect.y < p.rect.bottom();
                assert!(!overlap, "panels {i} overlaps another");
            }
        }
    }
}

#[test]
fn size_is_about_shaps_and_grows() {
    let (a, _) = render_image_plot_rgb(&common::plot(4, 5), ColorScale::Global).unwrap();
    assert!(
        (1000..=1250).contains(&a.width) && (650..=850).contains(&a.height),
        "4x6 figure is {} x {}",
        a.width,
        a.height
    );
    assert_eq!(a.panels[0].scale, 5);
    let (b, _) = render_image_plot_rgb(&common::plot(5, 5), ColorScale::Global).unwrap();
    let (c, _) = render_image_plot_rgb(&common::plot(4, 7), ColorScale::Global).unwrap();
    assert!(b.height > a.height && b.width == a.width);
    assert!(c.width > a.width && c.height == a.height);
}

#[test]
fn scale_options() {
    let plot = common::plot(3, 2);
    let global = resolve_vmax(&plot, ColorScale::Global).unwrap();
    assert!(global.windows(2).all(|w| w[0] == w[1]));
    let per_row = resolve_vmax(&plot, ColorScale::PerRow).unwrap();
    // common::plot scales row i by (1 + i): row scales grow; the pooled percentile lies
    // between the smallest and the largest row's.
    assert!(per_row[0] < per_row[1] && per_row[1] < per_row[2]);
    assert!(
        per_row[0] < global[0] && global[0] < per_row[2],
        "{per_row:?} {global:?}"
    );
    assert_eq!(
        resolve_vmax(&plot, ColorScale::Fixed(0.3)).unwrap(),
        vec![0.3; 3]
    );

    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::PerRow).unwrap();
    assert_eq!(info.row_vmax, per_row);
    assert_eq!(info.colorbars.len(), 3);
    for (i, bar) in info.colorbars.iter().enumerate() {
        assert_eq!(bar.orientation, Orientation::Vertical);
        assert_eq!(bar.row, Some(i));
        assert_eq!((bar.vmin, bar.vmax), (-per_row[i], per_row[i]));
        let x = bar.rect.x + bar.rect.width / 2;
        assert_eq!(
            fig.pixel(x, bar.rect.y).unwrap(),
            [255, 13, 87],
            "top is +vmax"
        );
        assert_eq!(fig.pixel(x, bar.rect.bottom() - 1).unwrap(), [30, 136, 229]);
        // The bar sits beside its row.
        let p = info.panel(i, 0).unwrap();
        assert_eq!((bar.rect.y, bar.rect.height), (p.rect.y, p.rect.height));
    }

    // With a fixed scale, a value of exactly vmax renders the end colour.
    let mut plot = marked_plot();
    plot.rows[0].values[0][0] = 0.2;
    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Fixed(0.2)).unwrap();
    let p = info.panel(0, 1).unwrap().pixel_center(0, 0).unwrap();
    assert_eq!(fig.pixel(p.0, p.1).unwrap(), [255, 13, 87]);
    assert_eq!(info.colorbars[0].vmax, 0.2);
}

#[test]
fn all_zero_values_draw_the_plain_underlay() {
    let mut plot = marked_plot();
    for row in &mut plot.rows {
        for v in &mut row.values {
            v.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Global).unwrap();
    assert_eq!(info.row_vmax, vec![1.0, 1.0]);
    let p = info.panel(1, 2).unwrap();
    let g = grey_byte(4.0 / 7.0);
    assert_eq!(at(&fig, p.pixel_center(3, 4).unwrap()), [g, g, g]);
    // The colour map itself agrees: 0 is fully transparent.
    assert_eq!(red_transparent_blue(0.0)[3], 0);
}

#[test]
fn rgb_images_are_shown_in_colour() {
    let (h, w) = (6, 6);
    let image: Vec<f32> = (0..h * w).flat_map(|_| [1.0f32, 0.0, 0.0]).collect();
    let plot = ImagePlot {
        height: h,
        width: w,
        channels: 3,
        rows: vec![ImagePlotRow {
            image,
            title: None,
            values: vec![vec![0.0; h * w * 3]],
            output_names: vec!["x".into()],
        }],
    };
    let (info, fig) = render_image_plot_rgb(&plot, ColorScale::Fixed(1.0)).unwrap();
    let p = info.panel(0, 0).unwrap().pixel_center(2, 2).unwrap();
    assert_eq!(fig.pixel(p.0, p.1).unwrap(), [255, 0, 0]);
}

#[test]
fn files_png_and_svg() {
    let dir = common::temp_dir("image_plot_files");
    let plot = common::plot(2, 2);
    let png = dir.join("fig.png");
    let info = image_plot(&plot, ColorScale::Global, &png).unwrap();
    let decoded = image::open(&png).unwrap().to_rgb8();
    assert_eq!(decoded.dimensions(), (info.width, info.height));
    let (_, fig) = render_image_plot_rgb(&plot, ColorScale::Global).unwrap();
    assert_eq!(
        decoded.as_raw(),
        &fig.pixels,
        "the PNG holds exactly the rendered pixels"
    );

    let svg = dir.join("fig.SVG");
    let info_svg = image_plot(&plot, ColorScale::Global, &svg).unwrap();
    assert_eq!(info_svg, info);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    assert!(text.contains("SHAP value"));
    assert!(text.contains(&plot.rows[1].output_names[1]));
    assert!(text.contains("#FF0D57") || text.contains("#1E88E5") || text.contains("rgb("));
    // Only the two figures remain: no temporary files.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

fn expect_err(plot: &ImagePlot, scale: ColorScale) -> PlotError {
    let dir = common::temp_dir("image_plot_bad");
    let out = dir.join("bad.png");
    let err = image_plot(plot, scale, &out).unwrap_err();
    assert!(!out.exists(), "no file after an error");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing left behind"
    );
    err
}

#[test]
fn bad_input_is_an_error() {
    let good = marked_plot();
    let mut p = good.clone();
    p.rows.clear();
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::Empty(_)
    ));

    let mut p = good.clone();
    for r in &mut p.rows {
        r.values.clear();
        r.output_names.clear();
    }
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::Empty(_)
    ));

    let mut p = good.clone();
    p.rows[1].values[2][17] = f64::NAN;
    match expect_err(&p, ColorScale::Global) {
        PlotError::NonFinite { what, index, .. } => {
            assert_eq!(index, 17);
            assert!(what.contains("row 1 output 2"), "{what}");
        }
        e => panic!("{e}"),
    }
    let mut p = good.clone();
    p.rows[0].image[3] = f32::INFINITY;
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::NonFinite { .. }
    ));

    let mut p = good.clone();
    p.rows[1].image.pop();
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::ShapeMismatch {
            expected: 64,
            got: 63,
            ..
        }
    ));
    let mut p = good.clone();
    p.rows[0].values[1].push(0.0);
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::ShapeMismatch { .. }
    ));
    let mut p = good.clone();
    p.rows[1].output_names.pop();
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::ShapeMismatch { .. }
    ));
    let mut p = good.clone();
    p.rows[1].values.pop();
    p.rows[1].output_names.pop();
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::ShapeMismatch { .. }
    ));
    let mut p = good.clone();
    p.height = 0;
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::Empty(_)
    ));
    let mut p = good.clone();
    p.channels = 2;
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::UnsupportedChannels(2)
    ));
    let mut p = good.clone();
    p.height = 100_000;
    assert!(matches!(
        expect_err(&p, ColorScale::Global),
        PlotError::FigureTooLarge { .. }
    ));

    for v in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e308] {
        assert!(matches!(
            expect_err(&good, ColorScale::Fixed(v)),
            PlotError::InvalidScale(_)
        ));
    }
    // Values of +-1e308 give a scale whose colour bar (2 * vmax) is not finite: refused.
    let mut huge = good.clone();
    huge.rows[0].values[0][0] = 1e308;
    huge.rows[0].values[0][1] = -1e308;
    for scale in [ColorScale::Global, ColorScale::PerRow] {
        assert!(matches!(
            expect_err(&huge, scale),
            PlotError::InvalidScale(_)
        ));
    }
}

#[test]
fn unwritable_paths_leave_nothing() {
    let dir = common::temp_dir("image_plot_unwritable");
    let plot = marked_plot();
    // Missing directory.
    let out = dir.join("no/such/dir/fig.png");
    assert!(matches!(
        image_plot(&plot, ColorScale::Global, &out),
        Err(PlotError::Io { .. })
    ));
    assert!(!out.exists());
    // The target is a directory: refused before anything is written.
    let target = dir.join("taken.png");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "x").unwrap();
    match image_plot(&plot, ColorScale::Global, &target) {
        Err(PlotError::Output(shap_io::IoError::NotWritableKind { path, kind })) => {
            assert_eq!((path, kind), (target.clone(), "a directory"));
        }
        other => panic!("{other:?}"),
    }
    assert!(target.join("keep.txt").exists());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("taken.png")],
        "no temp file left"
    );
    // An existing figure is replaced whole or not at all.
    let out = dir.join("fig.png");
    std::fs::write(&out, b"old").unwrap();
    image_plot(&plot, ColorScale::Global, &out).unwrap();
    assert!(image::open(&out).is_ok());
    // Unsupported extension.
    let out = dir.join("fig.jpg");
    assert!(matches!(
        image_plot(&plot, ColorScale::Global, &out),
        Err(PlotError::UnsupportedFormat(_))
    ));
    assert!(!out.exists());
}

#[test]
fn from_flat_splits_shap_layout() {
    // (n, H, W, C, k) = (2, 2, 3, 1, 2): value = 1000 i + 10 p + o.
    let (n, h, w, c, k) = (2, 2, 3, 1, 2);
    let m = h * w * c;
    let images: Vec<f32> = (0..n * m).map(|x| x as f32).collect();
    let values: Vec<f64> = (0..n)
        .flat_map(|i| (0..m).flat_map(move |p| (0..k).map(move |o| (1000 * i + 10 * p + o) as f64)))
        .collect();
    let names = vec![
        vec!["a".to_string(), "b".to_string()],
        vec!["c".into(), "d".into()],
    ];
    let plot = ImagePlot::from_flat(
        (h, w, c),
        &images,
        &values,
        names.clone(),
        vec![Some("t0".into()), None],
    )
    .unwrap();
    assert_eq!(plot.rows.len(), 2);
    assert_eq!(plot.rows[1].image, images[m..].to_vec());
    assert_eq!(plot.rows[1].values[1][4], 1000.0 + 40.0 + 1.0);
    assert_eq!(plot.rows[0].values[0][5], 50.0);
    assert_eq!(plot.rows[1].output_names, names[1]);
    assert_eq!(plot.rows[0].title.as_deref(), Some("t0"));
    assert_eq!(plot.rows[1].title, None);

    let bad = |r: Result<ImagePlot, PlotError>| assert!(r.is_err());
    bad(ImagePlot::from_flat(
        (h, w, c),
        &images[1..],
        &values,
        names.clone(),
        vec![],
    ));
    bad(ImagePlot::from_flat(
        (h, w, c),
        &images,
        &values[1..],
        names.clone(),
        vec![],
    ));
    bad(ImagePlot::from_flat(
        (h, w, c),
        &images,
        &values,
        vec![],
        vec![],
    ));
    bad(ImagePlot::from_flat(
        (h, w, c),
        &images,
        &values,
        names.clone(),
        vec![None],
    ));
    bad(ImagePlot::from_flat(
        (usize::MAX, 2, 1),
        &images,
        &values,
        names,
        vec![],
    ));
}
