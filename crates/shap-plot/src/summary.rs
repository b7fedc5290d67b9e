//! The per-class summary figure and the faithfulness curves.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use shap_explain::{ClassSummary, Curves};

use crate::curves::padded_range;
use crate::image_plot::{ColorScale, ImagePlot, ImagePlotRow, image_plot};
use crate::render::{Scene, bold, draw_err, draw_legend, ensure_fonts, font, save};
use crate::{FigureInfo, PlotError};

/// Draw a per-class summary as an image plot with one shared colour scale per row: one row
/// per class that has values, its mean image (titled with the class name and its counts),
/// the mean SHAP map and the mean |SHAP| map.
///
/// Classes with no stored values for their own class are left out of the figure (the JSON
/// and the titles count them). Errors: no class has values, and every error of
/// [`image_plot`].
pub fn class_summary_plot(s: &ClassSummary, out: &Path) -> Result<FigureInfo, PlotError> {
    let [height, width, channels] = s.shape;
    let rows: Vec<ImagePlotRow> = s
        .classes
        .iter()
        .filter_map(|c| {
            let (mean, abs) = (c.mean.clone()?, c.mean_abs.clone()?);
            let mut title = format!("{}: {} images", c.name, c.with_values);
            if c.without_values > 0 {
                title += &format!(" (+{} without values)", c.without_values);
            }
            Some(ImagePlotRow {
                image: c.mean_image.iter().map(|&v| v as f32).collect(),
                title: Some(title),
                values: vec![mean, abs],
                output_names: vec![format!("mean SHAP ({})", c.name), "mean |SHAP|".into()],
            })
        })
        .collect();
    if rows.is_empty() {
        return Err(PlotError::Empty(
            "no class has SHAP values stored for its own predicted class".into(),
        ));
    }
    let plot = ImagePlot {
        height,
        width,
        channels,
        rows,
    };
    image_plot(&plot, ColorScale::PerRow, out)
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 420;
const EXPLAINED: RGBColor = RGBColor(31, 119, 180);
const RANDOM: RGBColor = RGBColor(255, 127, 14);

struct FaithScene {
    curves: Curves,
}

impl FaithScene {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        x_desc: &str,
        series: [(&str, &Vec<f64>); 2],
    ) -> Result<(), PlotError> {
        let (y0, y1) = padded_range(series.iter().flat_map(|(_, v)| v.iter().copied()));
        // Headroom above the curves for the legend, so it never covers them: the curves keep
        // the lower three quarters of the panel.
        let y1 = y1 + LEGEND_ROOM * (y1 - y0);
        let mut chart = ChartBuilder::on(area)
            .caption(title, bold(16.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.02f64..1.02, y0..y1)
            .map_err(draw_err)?;
        let decimals = (1.0 - (y1 - y0).log10().floor()).clamp(0.0, 6.0) as usize;
        let fmt_y = move |y: &f64| format!("{y:.decimals$}");
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .y_label_formatter(&fmt_y)
            .x_desc(x_desc)
            .y_desc("mean model output for the class")
            .label_style(font(12.0))
            .axis_desc_style(font(13.0))
            .max_light_lines(0)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(draw_err)?;
        for ((name, values), color) in series.into_iter().zip([EXPLAINED, RANDOM]) {
            let name = format!("{name} (AUC {:.4})", shap_explain::auc(values));
            let s = values.len().saturating_sub(1).max(1) as f64;
            let pts: Vec<(f64, f64)> = (0..values.len())
                .map(|i| (i as f64 / s, values[i]))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

impl Scene for FaithScene {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let c = &self.curves;
        self.panel(
            &left,
            "Deletion (lower is better)",
            "fraction of pixels hidden",
            [
                ("explanation order", &c.deletion),
                ("random orders", &c.random_deletion),
            ],
        )?;
        self.panel(
            &right,
            "Insertion (higher is better)",
            "fraction of pixels revealed",
            [
                ("explanation order", &c.insertion),
                ("random orders", &c.random_insertion),
            ],
        )
    }
}

/// Headroom added above a faithfulness panel's curves for its legend, as a fraction of their
/// range.
const LEGEND_ROOM: f64 = 0.35;

/// Draw mean deletion (left) and insertion (right) curves, the explanation's order (blue)
/// against random orders (orange), and save to `out` (`.png` or `.svg`), 1000 x 420 pixels.
/// Each legend entry gives its curve's AUC, and the legend sits in headroom above the curves.
///
/// Errors: curves with fewer than two points, of different lengths, or with NaN or infinite
/// values; an unsupported extension; a failed write (nothing is left at `out`).
pub fn faithfulness_plot(curves: &Curves, out: &Path) -> Result<(), PlotError> {
    crate::render::OutputFormat::from_path(out)?;
    ensure_fonts();
    let all = [
        ("deletion", &curves.deletion),
        ("insertion", &curves.insertion),
        ("random_deletion", &curves.random_deletion),
        ("random_insertion", &curves.random_insertion),
    ];
    let n = curves.deletion.len();
    for (what, v) in all {
        if v.len() < 2 || v.len() != n {
            return Err(PlotError::ShapeMismatch {
                what: format!("{what} curve points"),
                expected: n.max(2),
                got: v.len(),
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(PlotError::NonFinite {
                what: format!("{what} curve"),
                index,
                value: v[index],
            });
        }
    }
    save(
        &FaithScene {
            curves: curves.clone(),
        },
        out,
    )
}
