//! Confusion-matrix heat map.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::PlotError;
use crate::colormap::blues;
use crate::geometry::PixelRect;
use crate::render::{
    RgbFigure, Scene, anchored, bold, check_size, ensure_fonts, fill_rect, font, render_rgb, save,
    text, text_size,
};

/// Geometry and summary of a rendered confusion matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionInfo {
    /// Figure width in pixels.
    pub width: u32,
    /// Figure height in pixels.
    pub height: u32,
    /// Number of classes n.
    pub classes: usize,
    /// Cell rectangles, row-major: `cells[true_class * n + predicted_class]`.
    pub cells: Vec<PixelRect>,
    /// Sum of all counts.
    pub total: u64,
    /// Trace / total (0 when the matrix is all zeros).
    pub accuracy: f64,
}

const MARGIN: u32 = 16;
const FONT: f64 = 13.0;
const TITLE_FONT: f64 = 16.0;
const AXIS_FONT: f64 = 14.0;
const MAX_FLAT_CELL: u32 = 96;

struct ConfusionScene {
    info: ConfusionInfo,
    counts: Vec<u64>,
    max: u64,
    names: Vec<String>,
    rotate_x: bool,
    title: String,
    grid: PixelRect,
}

fn group_thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn layout<S: AsRef<str>>(
    matrix: &[Vec<u64>],
    class_names: &[S],
) -> Result<ConfusionScene, PlotError> {
    ensure_fonts();
    let n = matrix.len();
    if n == 0 {
        return Err(PlotError::Empty(
            "the confusion matrix has no classes".into(),
        ));
    }
    if class_names.len() != n {
        return Err(PlotError::ShapeMismatch {
            what: "confusion matrix class_names".into(),
            expected: n,
            got: class_names.len(),
        });
    }
    if n > 1000 {
        return Err(PlotError::FigureTooLarge {
            width: n as u64 * 44,
            height: n as u64 * 44,
            limit: crate::render::MAX_PIXELS,
        });
    }
    let mut counts = Vec::with_capacity(n * n);
    for (i, row) in matrix.iter().enumerate() {
        if row.len() != n {
            return Err(PlotError::ShapeMismatch {
                what: format!("confusion matrix row {i}"),
                expected: n,
                got: row.len(),
            });
        }
        counts.extend_from_slice(row);
    }
    let total = counts.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let trace = (0..n).fold(0u64, |a, i| a.saturating_add(counts[i * n + i]));
    let max = counts.iter().copied().max().unwrap_or(0);
    let accuracy = if total > 0 {
        trace as f64 / total as f64
    } else {
        0.0
    };
    let names: Vec<String> = class_names.iter().map(|s| s.as_ref().to_string()).collect();

    let f = font(FONT);
    let widest_count = text_size(&f, &group_thousands(max))?.0;
    let mut widest_name = 0;
    let mut name_h = 0;
    for nm in &names {
        let (w, h) = text_size(&f, nm)?;
        widest_name = widest_name.max(w);
        name_h = name_h.max(h);
    }
    let mut cell = 44.max(widest_count + 12);
    let rotate_x = widest_name + 8 > MAX_FLAT_CELL.max(cell);
    if !rotate_x {
        cell = cell.max(widest_name + 8);
    }
    let axis_h = text_size(&font(AXIS_FONT), "Predicted label")?.1;
    let title = format!(
        "Confusion matrix: accuracy {:.2}% ({} / {})",
        accuracy * 100.0,
        group_thousands(trace),
        group_thousands(total)
    );
    let (title_w, title_h) = text_size(&bold(TITLE_FONT), &title)?;
    let left = MARGIN + axis_h + 10 + widest_name + 10;
    let top = MARGIN + title_h + 16;
    let grid_side = cell as u64 * n as u64;
    let x_names_h = if rotate_x { widest_name } else { name_h };
    let width =
        (u64::from(left) + grid_side + u64::from(MARGIN) * 2).max(u64::from(title_w + 2 * MARGIN));
    let height = u64::from(top)
        + grid_side
        + 8
        + u64::from(x_names_h)
        + 12
        + u64::from(axis_h)
        + u64::from(MARGIN);
    check_size(width, height)?;
    let (width, height) = (width as u32, height as u32);
    let grid_side = grid_side as u32;
    let grid = PixelRect {
        x: left,
        y: top,
        width: grid_side,
        height: grid_side,
    };
    let cells = (0..n * n)
        .map(|idx| PixelRect {
            x: left + (idx % n) as u32 * cell,
            y: top + (idx / n) as u32 * cell,
            width: cell,
            height: cell,
        })
        .collect();
    Ok(ConfusionScene {
        info: ConfusionInfo {
            width,
            height,
            classes: n,
            cells,
            total,
            accuracy,
        },
        counts,
        max,
        names,
        rotate_x,
        title,
        grid,
    })
}

impl Scene for ConfusionScene {
    fn size(&self) -> (u32, u32) {
        (self.info.width, self.info.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let n = self.info.classes;
        let g = self.grid;
        text(
            root,
            &self.title,
            ((self.info.width / 2) as i32, MARGIN as i32),
            &anchored(bold(TITLE_FONT), HPos::Center, VPos::Top),
        )?;
        for (rect, &count) in self.info.cells.iter().zip(&self.counts) {
            let t = if self.max > 0 {
                count as f64 / self.max as f64
            } else {
                0.0
            };
            let rgb = blues(t);
            fill_rect(
                root,
                (rect.x as i32, rect.y as i32),
                (rect.right() as i32, rect.bottom() as i32),
                rgb,
            )?;
            let color = if t > 0.5 { WHITE } else { BLACK };
            let style = anchored(font(FONT).color(&color), HPos::Center, VPos::Center);
            let (cx, cy) = rect.center();
            text(
                root,
                &group_thousands(count),
                (cx as i32, cy as i32),
                &style,
            )?;
        }
        // Thin frame around the grid.
        root.draw(&Rectangle::new(
            [
                (g.x as i32, g.y as i32),
                (g.right() as i32, g.bottom() as i32),
            ],
            RGBColor(90, 90, 90).stroke_width(1),
        ))
        .map_err(crate::render::draw_err)?;
        let cell = g.width / n.max(1) as u32;
        for (i, name) in self.names.iter().enumerate() {
            // y axis: true class names, right-aligned left of the grid.
            let cy = (g.y + i as u32 * cell + cell / 2) as i32;
            let style = anchored(font(FONT), HPos::Right, VPos::Center);
            text(root, name, (g.x as i32 - 8, cy), &style)?;
            // x axis: predicted class names below the grid.
            let cx = (g.x + i as u32 * cell + cell / 2) as i32;
            if self.rotate_x {
                let style = anchored(
                    font(FONT).transform(FontTransform::Rotate270),
                    HPos::Right,
                    VPos::Center,
                );
                text(root, name, (cx, g.bottom() as i32 + 8), &style)?;
            } else {
                let style = anchored(font(FONT), HPos::Center, VPos::Top);
                text(root, name, (cx, g.bottom() as i32 + 8), &style)?;
            }
        }
        let axis = font(AXIS_FONT);
        text(
            root,
            "Predicted label",
            (
                (g.x + g.width / 2) as i32,
                self.info.height as i32 - MARGIN as i32,
            ),
            &anchored(axis.clone(), HPos::Center, VPos::Bottom),
        )?;
        text(
            root,
            "True label",
            (MARGIN as i32, (g.y + g.height / 2) as i32),
            &anchored(
                axis.transform(FontTransform::Rotate270),
                HPos::Center,
                VPos::Top,
            ),
        )?;
        Ok(())
    }
}

/// Render the confusion matrix in memory (bitmap backend).
pub fn render_confusion_matrix_rgb<S: AsRef<str>>(
    matrix: &[Vec<u64>],
    class_names: &[S],
) -> Result<(ConfusionInfo, RgbFigure), PlotError> {
    let scene = layout(matrix, class_names)?;
    let fig = render_rgb(&scene)?;
    Ok((scene.info, fig))
}

/// Draw a confusion-matrix heat map and save it to `out` (`.png` or `.svg`).
///
/// `matrix[t][p]` counts the examples of true class `t` predicted as class `p` (rows = true
/// labels, columns = predictions, like scikit-learn). Cells are shaded on a white-to-blue ramp
/// ([`blues`]) by count / largest count and show the count (white text on dark cells); rows and
/// columns are labelled with `class_names` (column names are drawn vertically when they are
/// too long to fit a cell). The title gives the accuracy (trace / total).
///
/// Errors: an empty matrix, a non-square matrix or a name count that differs from its size,
/// more than 1000 classes, an unsupported extension, or a failed write (nothing is left at
/// `out`).
pub fn confusion_matrix_plot<S: AsRef<str>>(
    matrix: &[Vec<u64>],
    class_names: &[S],
    out: &Path,
) -> Result<ConfusionInfo, PlotError> {
    crate::render::OutputFormat::from_path(out)?;
    let scene = layout(matrix, class_names)?;
    save(&scene, out)?;
    Ok(scene.info)
}
