//! The comparison figure: each explanation's four larger-is-better scores, one panel per
//! measure, the baselines in grey.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use shap_explain::metrics::compare::{ComparisonReport, TrustScores};

use crate::PlotError;
use crate::render::{Scene, bold, draw_err, ensure_fonts, font, save};

const PANEL_W: u32 = 460;
const BAR: u32 = 26;
const EXPLAINED: RGBColor = RGBColor(31, 119, 180);
const BASELINE: RGBColor = RGBColor(170, 170, 170);

struct CompareScene {
    names: Vec<String>,
    baseline: Vec<bool>,
    scores: Vec<[f64; 4]>,
}

impl CompareScene {
    fn height(&self) -> u32 {
        2 * (60 + BAR * self.names.len() as u32 + 40)
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        j: usize,
    ) -> Result<(), PlotError> {
        let n = self.names.len();
        let values: Vec<f64> = self.scores.iter().map(|s| s[j]).collect();
        let lo = values.iter().copied().fold(0.0f64, f64::min);
        let hi = values.iter().copied().fold(0.0f64, f64::max);
        let pad = 0.08 * (hi - lo).max(1e-9);
        let mut chart = ChartBuilder::on(area)
            .caption(TrustScores::NAMES[j], bold(15.0))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(170)
            .build_cartesian_2d((lo - pad)..(hi + pad), 0.0..n as f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(5)
            .x_label_formatter(&|x| format!("{x:.2}"))
            .label_style(font(11.0))
            .max_light_lines(0)
            .bold_line_style(RGBColor(230, 230, 230))
            .draw()
            .map_err(draw_err)?;
        // Row i (from the top) is the band n-1-i..n-i.
        let band = |i: usize| (n - 1 - i) as f64;
        let bars = values.iter().enumerate().map(|(i, &v)| {
            let color = if self.baseline[i] {
                BASELINE
            } else {
                EXPLAINED
            };
            Rectangle::new([(0.0, band(i) + 0.15), (v, band(i) + 0.85)], color.filled())
        });
        chart.draw_series(bars).map_err(draw_err)?;
        let style = font(11.0).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, name) in self.names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(lo - pad, band(i) + 0.5));
            let (left, top) = area.get_base_pixel();
            area.draw(&Text::new(
                name.clone(),
                (x - left - 6, y - top),
                style.clone(),
            ))
            .map_err(draw_err)?;
        }
        Ok(())
    }
}

impl Scene for CompareScene {
    fn size(&self) -> (u32, u32) {
        (2 * PANEL_W, self.height())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        for (j, area) in root.split_evenly((2, 2)).iter().enumerate() {
            self.panel(area, j)?;
        }
        Ok(())
    }
}

/// Draw the comparison: one panel per measure ([`TrustScores::NAMES`]), one bar per
/// explanation (blue; the occlusion and random baselines grey), larger is better, and save to
/// `out` (`.png` or `.svg`).
///
/// Errors: no rows, a NaN or infinite score, an unsupported extension, a failed write
/// (nothing is left at `out`).
pub fn compare_plot(report: &ComparisonReport, out: &Path) -> Result<(), PlotError> {
    crate::render::OutputFormat::from_path(out)?;
    ensure_fonts();
    if report.rows.is_empty() {
        return Err(PlotError::Empty("no explanation to draw".into()));
    }
    let scores: Vec<[f64; 4]> = report.rows.iter().map(|r| r.scores.as_array()).collect();
    if let Some(index) = scores.iter().flatten().position(|v| !v.is_finite()) {
        return Err(PlotError::NonFinite {
            what: "comparison scores".into(),
            index,
            value: scores
                .iter()
                .flatten()
                .copied()
                .nth(index)
                .unwrap_or(f64::NAN),
        });
    }
    let scene = CompareScene {
        names: report
            .rows
            .iter()
            .map(|r| r.name.chars().take(26).collect())
            .collect(),
        baseline: report.rows.iter().map(|r| r.baseline).collect(),
        scores,
    };
    save(&scene, out)
}
