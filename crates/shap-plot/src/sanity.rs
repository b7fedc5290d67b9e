//! The model-randomisation sanity check's figures: the maps of a few images as layers are
//! randomised, and the similarity curves.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use shap_explain::ImageShape;
use shap_explain::metrics::sanity::{SanityMaps, SanityReport};

use crate::image_plot::{ColorScale, ImagePlot, ImagePlotRow, image_plot};
use crate::render::{Scene, bold, draw_err, draw_legend, ensure_fonts, font, save};
use crate::{FigureInfo, PlotError};

/// Draw one row per image of `maps`: the image, its original map, then its map after each
/// step of `report`. Every map is divided by its own largest |value|, so each shows where its
/// values lie whatever their scale (one colour bar from -1 to 1). Columns are titled with the
/// layer randomised last (`+conv1`: that layer and every one above it).
///
/// Errors: no rows, rows whose map count is not one more than the report's steps, and every
/// error of [`image_plot`].
pub fn sanity_plot(
    report: &SanityReport,
    maps: &[SanityMaps],
    shape: ImageShape,
    out: &Path,
) -> Result<FigureInfo, PlotError> {
    let names: Vec<String> = std::iter::once("original".to_string())
        .chain(report.steps.iter().enumerate().map(|(i, s)| {
            let last = s.randomised.last().map_or("", String::as_str);
            if i == 0 {
                format!("random {last}")
            } else {
                format!("+{last}")
            }
        }))
        .collect();
    let rows = maps
        .iter()
        .map(|m| {
            if m.maps.len() != names.len() {
                return Err(PlotError::ShapeMismatch {
                    what: format!("maps of the {} image", m.class),
                    expected: names.len(),
                    got: m.maps.len(),
                });
            }
            Ok(ImagePlotRow {
                image: m.image.clone(),
                title: Some(m.class.clone()),
                values: m.maps.iter().map(|v| unit(v, shape.channels)).collect(),
                output_names: names.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        return Err(PlotError::Empty("no image to show".into()));
    }
    let plot = ImagePlot {
        height: shape.height,
        width: shape.width,
        channels: shape.channels,
        rows,
    };
    image_plot(&plot, ColorScale::Fixed(1.0), out)
}

/// A pixel map divided by its largest |value|, repeated over `channels` (the image plot sums
/// channels, so each carries a share).
fn unit(map: &[f64], channels: usize) -> Vec<f64> {
    let max = map.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let c = channels.max(1);
    map.iter()
        .flat_map(|v| {
            let x = if max > 0.0 { v / max } else { 0.0 };
            std::iter::repeat_n(x / c as f64, c)
        })
        .collect()
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 440;
const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

struct CurveScene {
    labels: Vec<String>,
    series: [(String, Vec<f64>); 3],
}

impl Scene for CurveScene {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let n = self.labels.len();
        let mut chart = ChartBuilder::on(root)
            .caption("Similarity to the original explanation", bold(16.0))
            .margin(14)
            .x_label_area_size(70)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.2f64..(n as f64 - 0.8), -0.5f64..1.6)
            .map_err(draw_err)?;
        let labels = self.labels.clone();
        chart
            .configure_mesh()
            .x_labels(n)
            .y_labels(9)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{y:.1}"))
            .x_desc("layers randomised, from the output down")
            .y_desc("mean similarity")
            .label_style(font(11.0))
            .axis_desc_style(font(13.0))
            .max_light_lines(0)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(draw_err)?;
        for ((name, values), color) in self.series.iter().zip(COLORS) {
            let pts: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as f64, v))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(draw_err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Draw the mean similarities (rank correlation of |values|, of signed values, and SSIM)
/// against the number of layers randomised, starting at 1 for the original model, and save
/// to `out` (`.png` or `.svg`), 760 x 440 pixels. The legend sits in headroom above 1.
///
/// Errors: a report with no step or with NaN similarities; an unsupported extension; a
/// failed write (nothing is left at `out`).
pub fn sanity_curves_plot(report: &SanityReport, out: &Path) -> Result<(), PlotError> {
    crate::render::OutputFormat::from_path(out)?;
    ensure_fonts();
    if report.steps.is_empty() {
        return Err(PlotError::Empty("the report has no step".into()));
    }
    let mean = |f: fn(&shap_explain::metrics::sanity::Similarities) -> f64| {
        std::iter::once(1.0)
            .chain(report.steps.iter().map(|s| f(&s.mean)))
            .collect::<Vec<f64>>()
    };
    let series = [
        (
            "rank correlation of |values|".to_string(),
            mean(|m| m.spearman_abs),
        ),
        (
            "rank correlation of values".to_string(),
            mean(|m| m.spearman),
        ),
        ("SSIM of |values|".to_string(), mean(|m| m.ssim)),
    ];
    for (what, v) in &series {
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(PlotError::NonFinite {
                what: what.clone(),
                index,
                value: v[index],
            });
        }
    }
    let labels = std::iter::once("none".to_string())
        .chain(
            report
                .steps
                .iter()
                .map(|s| s.randomised.last().cloned().unwrap_or_default()),
        )
        .collect();
    save(&CurveScene { labels, series }, out)
}
