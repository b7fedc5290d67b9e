//! Training curves: loss and accuracy per epoch, train and test.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::PlotError;
use crate::render::{
    RgbFigure, Scene, bold, draw_err, draw_legend, ensure_fonts, font, render_rgb, save,
};

/// Metrics after one training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    /// Epoch number (usually 1-based); must increase strictly along the history.
    pub epoch: u32,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy in [0, 1].
    pub train_acc: f64,
    /// Test loss after the epoch, if measured.
    pub test_loss: Option<f64>,
    /// Test accuracy in [0, 1] after the epoch, if measured.
    pub test_acc: Option<f64>,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 420;
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const TEST: RGBColor = RGBColor(255, 127, 14);

struct CurvesScene {
    history: Vec<EpochPoint>,
}

fn validate(history: &[EpochPoint]) -> Result<(), PlotError> {
    if history.is_empty() {
        return Err(PlotError::Empty(
            "the training history has no epochs".into(),
        ));
    }
    for (i, p) in history.iter().enumerate() {
        let fields = [
            ("train_loss", Some(p.train_loss)),
            ("train_acc", Some(p.train_acc)),
            ("test_loss", p.test_loss),
            ("test_acc", p.test_acc),
        ];
        for (name, v) in fields {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return Err(PlotError::NonFinite {
                    what: format!("training history {name}"),
                    index: i,
                    value: v,
                });
            }
        }
    }
    for w in history.windows(2) {
        if let [a, b] = w
            && b.epoch <= a.epoch
        {
            return Err(PlotError::EpochOrder {
                prev: a.epoch,
                next: b.epoch,
            });
        }
    }
    Ok(())
}

/// A padded value range covering `vals` (never empty).
pub(crate) fn padded_range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

impl CurvesScene {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        y_desc: &str,
        legend: SeriesLabelPosition,
        train: &dyn Fn(&EpochPoint) -> Option<f64>,
        test: &dyn Fn(&EpochPoint) -> Option<f64>,
    ) -> Result<(), PlotError> {
        let first = self.history.first().map_or(0, |p| p.epoch);
        let last = self.history.last().map_or(0, |p| p.epoch);
        let x_pad = (f64::from(last - first) * 0.04).max(0.25);
        let x_range = (f64::from(first) - x_pad)..(f64::from(last) + x_pad);
        let (y0, y1) = padded_range(
            self.history
                .iter()
                .flat_map(|p| [train(p), test(p)])
                .flatten(),
        );
        let n_epochs = (last - first + 1) as usize;
        let mut chart = ChartBuilder::on(area)
            .caption(title, bold(16.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, y0..y1)
            .map_err(draw_err)?;
        let fmt_x = |x: &f64| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        };
        let decimals = (1.0 - (y1 - y0).log10().floor()).clamp(0.0, 6.0) as usize;
        let fmt_y = move |y: &f64| format!("{y:.decimals$}");
        chart
            .configure_mesh()
            .x_labels(n_epochs.clamp(2, 10))
            .y_labels(6)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y)
            .x_desc("epoch")
            .y_desc(y_desc)
            .label_style(font(12.0))
            .axis_desc_style(font(13.0))
            .max_light_lines(0)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(draw_err)?;
        for (name, color, get) in [("train", TRAIN, train), ("test", TEST, test)] {
            let pts: Vec<(f64, f64)> = self
                .history
                .iter()
                .filter_map(|p| get(p).map(|v| (f64::from(p.epoch), v)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(draw_err)?;
        }
        draw_legend(&mut chart, legend)?;
        Ok(())
    }
}

impl Scene for CurvesScene {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        self.panel(
            &left,
            "Loss",
            "loss",
            SeriesLabelPosition::UpperRight,
            &|p| Some(p.train_loss),
            &|p| p.test_loss,
        )?;
        self.panel(
            &right,
            "Accuracy",
            "accuracy",
            SeriesLabelPosition::LowerRight,
            &|p| Some(p.train_acc),
            &|p| p.test_acc,
        )?;
        Ok(())
    }
}

/// Render training curves in memory (bitmap backend), 1000 x 420 pixels.
pub fn render_training_curves_rgb(history: &[EpochPoint]) -> Result<RgbFigure, PlotError> {
    ensure_fonts();
    validate(history)?;
    render_rgb(&CurvesScene {
        history: history.to_vec(),
    })
}

/// Plot loss (left) and accuracy (right) per epoch, train (blue) and test (orange), with
/// markers at each epoch and a legend, and save to `out` (`.png` or `.svg`), 1000 x 420 pixels.
/// Epochs without test metrics are skipped on the test curve.
///
/// Errors: an empty history, NaN or infinite metrics, epochs that do not increase strictly,
/// an unsupported extension, or a failed write (nothing is left at `out`).
pub fn training_curves_plot(history: &[EpochPoint], out: &Path) -> Result<(), PlotError> {
    crate::render::OutputFormat::from_path(out)?;
    ensure_fonts();
    validate(history)?;
    save(
        &CurvesScene {
            history: history.to_vec(),
        },
        out,
    )
}
