//! The shap-style image plot (`shap.image_plot`).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::PlotError;
use crate::colormap::{
    Tick, colorbar_ticks, lut_index, numpy_percentile, red_transparent_blue_lut,
};
use crate::geometry::{
    ColorBarInfo, FigureInfo, Orientation, PanelInfo, PanelKind, PixelRect, TickInfo,
};
use crate::render::{
    RgbFigure, Scene, anchored, check_size, ensure_fonts, fill_rect, font, render_rgb, save, text,
    text_size,
};

/// One explained image: a row of the figure.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePlotRow {
    /// The image, `height * width * channels` numbers in row-major (H, W, C) order, usually in
    /// [0, 1]. Grey images are shown autoscaled to their own min..max (as matplotlib does);
    /// RGB images are shown as they are, clipped to [0, 1].
    pub image: Vec<f32>,
    /// Title of column 0, e.g. `"true: Coat | pred: Coat (0.93)"`; `None` for no title.
    pub title: Option<String>,
    /// SHAP values, one entry per explained output, each `height * width * channels` numbers in
    /// the same (H, W, C) order as `image`. They are summed over channels for display.
    pub values: Vec<Vec<f64>>,
    /// This row's name for each output (e.g. its top-k class names), one per entry of `values`.
    /// Each output cell is titled with it. Empty strings give untitled cells.
    pub output_names: Vec<String>,
}

/// The data of an image plot: n rows of images with k explained outputs each.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePlot {
    /// Image height H in pixels.
    pub height: usize,
    /// Image width W in pixels.
    pub width: usize,
    /// Channels C per pixel: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// The rows; every row must have the same number k ≥ 1 of outputs.
    pub rows: Vec<ImagePlotRow>,
}

impl ImagePlot {
    /// The figure of an explanation: one row per image, one column per explained output,
    /// titled with the output names; `titles[i]` (or none, when `titles` is empty) titles
    /// row i's image. Errors as [`ImagePlot::from_flat`].
    pub fn from_explanation(
        e: &shap_explain::Explanation,
        titles: Vec<Option<String>>,
    ) -> Result<Self, PlotError> {
        let shape = (e.shape.height, e.shape.width, e.shape.channels);
        Self::from_flat(shape, &e.data, &e.values, e.output_names.clone(), titles)
    }

    /// Build a plot from arrays in shap's layout: `images` is `(n, H, W, C)` and `values` is
    /// `(n, H, W, C, k)` (an Explanation's `.data` and `.values`), both flat in C order.
    /// `output_names[i]` are row i's k output names and `titles[i]` its column-0 title (pass
    /// an empty `titles` for none).
    ///
    /// Errors: `n = 0` or `k = 0`, array lengths that do not match the shape, or name/title
    /// counts that differ from n (and k).
    pub fn from_flat(
        (height, width, channels): (usize, usize, usize),
        images: &[f32],
        values: &[f64],
        output_names: Vec<Vec<String>>,
        titles: Vec<Option<String>>,
    ) -> Result<Self, PlotError> {
        let n = output_names.len();
        let k = output_names.first().map_or(0, Vec::len);
        if n == 0 || k == 0 {
            return Err(PlotError::Empty(
                "no rows or no outputs in output_names".into(),
            ));
        }
        let too_big = || PlotError::FigureTooLarge {
            width: width as u64,
            height: height as u64,
            limit: crate::render::MAX_PIXELS,
        };
        let m = height
            .checked_mul(width)
            .and_then(|x| x.checked_mul(channels))
            .ok_or_else(too_big)?;
        let n_img = m.checked_mul(n).ok_or_else(too_big)?;
        let n_val = n_img.checked_mul(k).ok_or_else(too_big)?;
        if images.len() != n_img {
            return Err(PlotError::ShapeMismatch {
                what: "images (n*H*W*C)".into(),
                expected: n_img,
                got: images.len(),
            });
        }
        if values.len() != n_val {
            return Err(PlotError::ShapeMismatch {
                what: "values (n*H*W*C*k)".into(),
                expected: n_val,
                got: values.len(),
            });
        }
        if !titles.is_empty() && titles.len() != n {
            return Err(PlotError::ShapeMismatch {
                what: "titles (one per row)".into(),
                expected: n,
                got: titles.len(),
            });
        }
        let mut titles = titles.into_iter();
        let mut rows = Vec::with_capacity(n);
        for (i, names) in output_names.into_iter().enumerate() {
            if names.len() != k {
                return Err(PlotError::ShapeMismatch {
                    what: format!("row {i} output_names"),
                    expected: k,
                    got: names.len(),
                });
            }
            let row_vals = &values[i * m * k..(i + 1) * m * k];
            rows.push(ImagePlotRow {
                image: images[i * m..(i + 1) * m].to_vec(),
                title: titles.next().flatten(),
                values: (0..k)
                    .map(|o| row_vals.iter().skip(o).step_by(k).copied().collect())
                    .collect(),
                output_names: names,
            });
        }
        Ok(Self {
            height,
            width,
            channels,
            rows,
        })
    }
}

/// How the symmetric colour scale `-vmax..vmax` is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColorScale {
    /// One scale for the figure, as shap computes it: the 99.9th percentile (NumPy's linear
    /// interpolation) of |values summed over channels| over all rows and outputs together.
    Global,
    /// One scale per row: the same percentile over that row's outputs only. Each row then gets
    /// its own vertical colour bar at its right.
    PerRow,
    /// An explicit bound (shap's `vmax=`): must be finite and > 0.
    Fixed(f64),
}

/// Screen size of an image plot's image cells: target edge length for the longest image side.
const TARGET_CELL: usize = 140;
const MARGIN: u32 = 16;
const TITLE_FONT: f64 = 15.0;
const MIN_TITLE_FONT: f64 = 8.0;
const TITLE_BAND: u32 = 24;
const COL_GAP: u32 = 20;
const ROW_GAP: u32 = 10;
const TICK_FONT: f64 = 13.0;
const LABEL_FONT: f64 = 14.0;
const BAR_THICKNESS: u32 = 14;
const TICK_LEN: u32 = 5;
const COLORBAR_LABEL: &str = "SHAP value";

/// Validate the plot; returns k (outputs per row).
fn validate(plot: &ImagePlot) -> Result<usize, PlotError> {
    if plot.rows.is_empty() {
        return Err(PlotError::Empty("the image plot has no rows".into()));
    }
    if plot.height == 0 || plot.width == 0 {
        return Err(PlotError::Empty(format!(
            "image size {} x {} has no pixels",
            plot.height, plot.width
        )));
    }
    if plot.channels != 1 && plot.channels != 3 {
        return Err(PlotError::UnsupportedChannels(plot.channels));
    }
    // Bound the image size before any allocation that depends on it.
    if plot.height > 8192 || plot.width > 8192 {
        return Err(PlotError::FigureTooLarge {
            width: plot.width as u64,
            height: plot.height as u64,
            limit: crate::render::MAX_PIXELS,
        });
    }
    let n_pix = plot.height * plot.width * plot.channels;
    let k = plot.rows.first().map_or(0, |r| r.values.len());
    if k == 0 {
        return Err(PlotError::Empty(
            "the image plot has no explained outputs".into(),
        ));
    }
    for (i, row) in plot.rows.iter().enumerate() {
        if row.image.len() != n_pix {
            return Err(PlotError::ShapeMismatch {
                what: format!("row {i} image (height*width*channels)"),
                expected: n_pix,
                got: row.image.len(),
            });
        }
        if let Some(j) = row.image.iter().position(|v| !v.is_finite()) {
            return Err(PlotError::NonFinite {
                what: format!("row {i} image"),
                index: j,
                value: f64::from(row.image[j]),
            });
        }
        if row.values.len() != k {
            return Err(PlotError::ShapeMismatch {
                what: format!("row {i} number of outputs (row 0 has {k})"),
                expected: k,
                got: row.values.len(),
            });
        }
        if row.output_names.len() != k {
            return Err(PlotError::ShapeMismatch {
                what: format!("row {i} output_names"),
                expected: k,
                got: row.output_names.len(),
            });
        }
        for (o, v) in row.values.iter().enumerate() {
            if v.len() != n_pix {
                return Err(PlotError::ShapeMismatch {
                    what: format!("row {i} output {o} values (height*width*channels)"),
                    expected: n_pix,
                    got: v.len(),
                });
            }
            if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                return Err(PlotError::NonFinite {
                    what: format!("row {i} output {o} values"),
                    index: j,
                    value: v[j],
                });
            }
        }
    }
    Ok(k)
}

/// Values of one output summed over channels: H*W numbers.
fn channel_sum(values: &[f64], channels: usize) -> Vec<f64> {
    values
        .chunks_exact(channels)
        .map(|px| px.iter().sum())
        .collect()
}

/// 99.9th percentile of |x|, with fallbacks for an all-(near-)zero explanation: if the
/// percentile is 0 the largest |x| is used, and if that is 0 too, 1.0.
fn scale_of(mut abs: Vec<f64>) -> f64 {
    abs.sort_by(f64::total_cmp);
    let p = numpy_percentile(&abs, 99.9).unwrap_or(0.0);
    if p > 0.0 {
        return p;
    }
    match abs.last() {
        Some(&m) if m > 0.0 => m,
        _ => 1.0,
    }
}

/// The symmetric colour-scale bound used for each row of `plot` under `scale`.
///
/// `Global` returns the same number for every row: NumPy's
/// `nanpercentile(|S|, 99.9)` where `S` holds the channel-summed values of all rows and
/// outputs (docs/image-plot.md#colour-scale). If that percentile is 0 (over 99.9% of values are 0), the largest
/// |value| is used instead, and 1.0 if every value is 0 (shap would paint such a figure blue).
pub fn resolve_vmax(plot: &ImagePlot, scale: ColorScale) -> Result<Vec<f64>, PlotError> {
    validate(plot)?;
    let c = plot.channels;
    let row_abs = |row: &ImagePlotRow| -> Vec<f64> {
        row.values
            .iter()
            .flat_map(|v| channel_sum(v, c))
            .map(f64::abs)
            .collect()
    };
    match scale {
        ColorScale::Fixed(v) if v > 0.0 => Ok(vec![drawable(v)?; plot.rows.len()]),
        ColorScale::Fixed(v) => Err(PlotError::InvalidScale(v)),
        ColorScale::Global => {
            let all: Vec<f64> = plot.rows.iter().flat_map(row_abs).collect();
            Ok(vec![drawable(scale_of(all))?; plot.rows.len()])
        }
        ColorScale::PerRow => plot
            .rows
            .iter()
            .map(|r| drawable(scale_of(row_abs(r))))
            .collect(),
    }
}

/// Largest colour-scale bound drawn: the colour bar spans `2 * vmax` and its ticks need a
/// little more room, which must stay finite.
pub const MAX_VMAX: f64 = 4e307;

/// `vmax` when it is finite and at most [`MAX_VMAX`], else [`PlotError::InvalidScale`].
fn drawable(vmax: f64) -> Result<f64, PlotError> {
    if vmax.is_finite() && vmax <= MAX_VMAX {
        Ok(vmax)
    } else {
        Err(PlotError::InvalidScale(vmax))
    }
}

/// The displayed colour of one pixel of an output cell.
///
/// `underlay` is the grey image value already normalised to [0, 1]. As in matplotlib, the grey
/// layer at alpha 0.15 over white gives `0.85 + 0.15 * underlay`; the SHAP colour
/// (`red_transparent_blue` LUT entry for `value` on `-vmax..vmax`, RGBA in [0, 1]) is blended
/// over it: `alpha * rgb + (1 - alpha) * below`, then rounded to bytes.
pub fn composite_pixel(value: f64, vmax: f64, underlay: f64) -> [u8; 3] {
    let below = 0.85 + 0.15 * underlay.clamp(0.0, 1.0);
    let rgba = match lut_index(value, -vmax, vmax) {
        Some(i) => red_transparent_blue_lut()[i],
        None => [0.0; 4],
    };
    let a = rgba[3];
    let mut out = [0u8; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        *o = to_byte(a * rgba[ch] + (1.0 - a) * below);
    }
    out
}

fn to_byte(x: f64) -> u8 {
    // Clamped to [0, 255] first, so the cast cannot wrap.
    (x * 255.0).round().clamp(0.0, 255.0) as u8
}

/// Normalise to [0, 1] by the image's own min..max (0 everywhere for a constant image).
fn autoscale(gray: &[f64]) -> Vec<f64> {
    let lo = gray.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = gray.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi > lo {
        gray.iter().map(|g| (g - lo) / (hi - lo)).collect()
    } else {
        vec![0.0; gray.len()]
    }
}

/// Grey version of an image (H*W): the image itself for 1 channel, luminance
/// `0.2989 R + 0.5870 G + 0.1140 B` for 3.
fn grey_of(image: &[f32], channels: usize) -> Vec<f64> {
    image
        .chunks_exact(channels)
        .map(|px| match px {
            [r, g, b] => 0.2989 * f64::from(*r) + 0.5870 * f64::from(*g) + 0.1140 * f64::from(*b),
            _ => px.first().map_or(0.0, |v| f64::from(*v)),
        })
        .collect()
}

/// Title font size that fits `title` in `avail` pixels (at most [`TITLE_FONT`]).
fn fit_title(title: &str, avail: u32) -> Result<f64, PlotError> {
    let (w, _) = text_size(&font(TITLE_FONT), title)?;
    if w <= avail || w == 0 {
        return Ok(TITLE_FONT);
    }
    Ok((TITLE_FONT * f64::from(avail) / f64::from(w))
        .floor()
        .max(MIN_TITLE_FONT))
}

struct ImageScene {
    info: FigureInfo,
    /// Per panel (row-major), H*W colours.
    colors: Vec<Vec<[u8; 3]>>,
    /// Per panel, title font size.
    title_sizes: Vec<f64>,
    image_w: usize,
    /// Position of the horizontal bar's label (centre x, top y), if any.
    label_pos: Option<(i32, i32)>,
}

/// The grid of cells: `n` rows of `k + 1` columns (the image, then one per output).
struct Grid {
    /// Rows.
    n: usize,
    /// Outputs per row.
    k: usize,
    /// Screen pixels per image pixel.
    scale: u32,
    cell_w: u32,
    cell_h: u32,
    /// Per column, its width (at least `cell_w`, wider for long titles).
    col_w: Vec<u32>,
    grid_w: u32,
    grid_h: u32,
}

/// Size the cells and columns of `plot` with `k` outputs per row.
fn grid(plot: &ImagePlot, k: usize) -> Result<Grid, PlotError> {
    let (h, w) = (plot.height, plot.width);
    let n = plot.rows.len();
    let s = ((TARGET_CELL + h.max(w) / 2) / h.max(w)).max(1);
    let (cell_w, cell_h) = ((w * s) as u64, (h * s) as u64);
    // Rough size check before measuring text or allocating colours.
    check_size(
        (cell_w + u64::from(COL_GAP)) * 3 * (k as u64 + 1),
        (cell_h + u64::from(TITLE_BAND + ROW_GAP)) * n as u64,
    )?;
    let (cell_w, cell_h) = (cell_w as u32, cell_h as u32);
    let col_w = (0..=k)
        .map(|col| column_width(plot, col, cell_w))
        .collect::<Result<Vec<u32>, PlotError>>()?;
    let grid_w: u32 = col_w.iter().sum::<u32>() + COL_GAP * k as u32;
    let grid_h: u32 = n as u32 * (TITLE_BAND + cell_h) + (n as u32 - 1) * ROW_GAP;
    Ok(Grid {
        n,
        k,
        scale: s as u32,
        cell_w,
        cell_h,
        col_w,
        grid_w,
        grid_h,
    })
}

/// The title of column `col` of `row` as given (column 0: the row's title; then the outputs'
/// names).
fn column_title(row: &ImagePlotRow, col: usize) -> Option<&str> {
    if col == 0 {
        row.title.as_deref()
    } else {
        row.output_names.get(col - 1).map(String::as_str)
    }
}

/// Column width: wide enough for the titles, within limits (long titles shrink instead).
fn column_width(plot: &ImagePlot, col: usize, cell_w: u32) -> Result<u32, PlotError> {
    let cap = if col == 0 {
        cell_w * 11 / 5
    } else {
        cell_w * 8 / 5
    };
    let mut widest = cell_w;
    for t in plot.rows.iter().filter_map(|r| column_title(r, col)) {
        let (tw, _) = text_size(&font(TITLE_FONT), t)?;
        widest = widest.max(tw + 8);
    }
    Ok(widest.min(cap.max(cell_w)))
}

/// The colour-bar bands around the grid: one vertical bar per row at the right, or one
/// horizontal bar below.
struct Bands {
    per_row: bool,
    /// Height of a tick label.
    tick_h: u32,
    right: u32,
    bottom: u32,
    /// Per row, the vertical bar's ticks (per-row scale only).
    vertical_ticks: Vec<Vec<Tick>>,
}

fn bands(scale: ColorScale, row_vmax: &[f64]) -> Result<Bands, PlotError> {
    let per_row = matches!(scale, ColorScale::PerRow);
    let tick_h = text_size(&font(TICK_FONT), "0.0")?.1;
    let label_h = text_size(&font(LABEL_FONT), COLORBAR_LABEL)?.1;
    let mut bands = Bands {
        per_row,
        tick_h,
        right: 0,
        bottom: 0,
        vertical_ticks: Vec::with_capacity(row_vmax.len()),
    };
    if per_row {
        let mut widest = 0;
        for &v in row_vmax {
            let ticks = colorbar_ticks(-v, v, 5);
            for t in &ticks {
                widest = widest.max(text_size(&font(TICK_FONT), &t.label)?.0);
            }
            bands.vertical_ticks.push(ticks);
        }
        bands.right = 18 + BAR_THICKNESS + TICK_LEN + 3 + widest + 8 + label_h + 4;
    } else {
        bands.bottom = 14 + BAR_THICKNESS + TICK_LEN + 3 + tick_h + 8 + label_h;
    }
    Ok(bands)
}

/// The colours of one cell: the image itself (column 0) or output `col - 1`'s values over the
/// grey underlay `grey_n`.
fn cell_colors(
    row: &ImagePlotRow,
    col: usize,
    channels: usize,
    grey_n: &[f64],
    vmax: f64,
) -> (PanelKind, Vec<[u8; 3]>) {
    if col == 0 {
        let cols: Vec<[u8; 3]> = if channels == 3 {
            row.image
                .chunks_exact(3)
                .map(|p| {
                    [
                        to_byte(f64::from(p[0]).clamp(0.0, 1.0)),
                        to_byte(f64::from(p[1]).clamp(0.0, 1.0)),
                        to_byte(f64::from(p[2]).clamp(0.0, 1.0)),
                    ]
                })
                .collect()
        } else {
            grey_n.iter().map(|&g| [to_byte(g); 3]).collect()
        };
        return (PanelKind::Image, cols);
    }
    let o = col - 1;
    let sv = row
        .values
        .get(o)
        .map(|v| channel_sum(v, channels))
        .unwrap_or_default();
    let cols = sv
        .iter()
        .zip(grey_n)
        .map(|(&v, &g)| composite_pixel(v, vmax, g))
        .collect();
    (PanelKind::Output(o), cols)
}

/// Panels, colours and title sizes, row-major.
#[derive(Default)]
struct Cells {
    panels: Vec<PanelInfo>,
    colors: Vec<Vec<[u8; 3]>>,
    title_sizes: Vec<f64>,
}

/// Lay out row `i` of the grid (its top at `cell_y - TITLE_BAND`) into `cells`.
fn lay_out_row(
    plot: &ImagePlot,
    g: &Grid,
    i: usize,
    vmax: f64,
    cells: &mut Cells,
) -> Result<(), PlotError> {
    let row = &plot.rows[i];
    let cell_y = MARGIN + i as u32 * (TITLE_BAND + g.cell_h + ROW_GAP) + TITLE_BAND;
    let grey_n = autoscale(&grey_of(&row.image, plot.channels));
    let mut x = MARGIN;
    for (col, &cw) in g.col_w.iter().enumerate() {
        let rect = PixelRect {
            x: x + (cw - g.cell_w) / 2,
            y: cell_y,
            width: g.cell_w,
            height: g.cell_h,
        };
        let title = column_title(row, col)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        cells.title_sizes.push(match &title {
            Some(t) => fit_title(t, cw + COL_GAP - 6)?,
            None => TITLE_FONT,
        });
        let (kind, colors) = cell_colors(row, col, plot.channels, &grey_n, vmax);
        cells.panels.push(PanelInfo {
            row: i,
            column: col,
            kind,
            rect,
            scale: g.scale,
            title,
        });
        cells.colors.push(colors);
        x += cw + COL_GAP;
    }
    Ok(())
}

/// Row `i`'s vertical colour bar (per-row scale), beside its cells.
fn vertical_colorbar(g: &Grid, i: usize, vmax: f64, ticks: Vec<Tick>) -> ColorBarInfo {
    let cell_y = MARGIN + i as u32 * (TITLE_BAND + g.cell_h + ROW_GAP) + TITLE_BAND;
    let rect = PixelRect {
        x: MARGIN + g.grid_w + 18,
        y: cell_y,
        width: BAR_THICKNESS,
        height: g.cell_h,
    };
    let ticks = ticks
        .into_iter()
        .map(|t| TickInfo {
            pixel: f64::from(rect.bottom()) - (t.value + vmax) / (2.0 * vmax) * f64::from(g.cell_h),
            tick: t,
        })
        .collect();
    ColorBarInfo {
        rect,
        orientation: Orientation::Vertical,
        vmin: -vmax,
        vmax,
        row: Some(i),
        ticks,
    }
}

/// The figure's one horizontal colour bar below the grid, and where its label goes (centre x,
/// top y).
fn horizontal_colorbar(g: &Grid, vmax: f64, tick_h: u32) -> (ColorBarInfo, (i32, i32)) {
    let rect = PixelRect {
        x: MARGIN,
        y: MARGIN + g.grid_h + 14,
        width: g.grid_w,
        height: BAR_THICKNESS,
    };
    let max_ticks = ((g.grid_w / 90) as usize).clamp(3, 9);
    let ticks = colorbar_ticks(-vmax, vmax, max_ticks)
        .into_iter()
        .map(|t| TickInfo {
            pixel: f64::from(rect.x) + (t.value + vmax) / (2.0 * vmax) * f64::from(g.grid_w),
            tick: t,
        })
        .collect();
    let label_pos = (
        (rect.x + g.grid_w / 2) as i32,
        (rect.bottom() + TICK_LEN + 3 + tick_h + 8) as i32,
    );
    let bar = ColorBarInfo {
        rect,
        orientation: Orientation::Horizontal,
        vmin: -vmax,
        vmax,
        row: None,
        ticks,
    };
    (bar, label_pos)
}

fn layout(plot: &ImagePlot, scale: ColorScale) -> Result<ImageScene, PlotError> {
    ensure_fonts();
    let k = validate(plot)?;
    let row_vmax = resolve_vmax(plot, scale)?;
    let g = grid(plot, k)?;
    let mut bands = bands(scale, &row_vmax)?;
    let width = 2 * MARGIN + g.grid_w + bands.right;
    let height = 2 * MARGIN + g.grid_h + bands.bottom;
    check_size(u64::from(width), u64::from(height))?;

    let row_scale = |i: usize| row_vmax.get(i).copied().unwrap_or(1.0);
    let mut cells = Cells::default();
    let mut colorbars = Vec::new();
    for i in 0..g.n {
        lay_out_row(plot, &g, i, row_scale(i), &mut cells)?;
    }
    let mut label_pos = None;
    if bands.per_row {
        let ticks = std::mem::take(&mut bands.vertical_ticks);
        for (i, ticks) in ticks.into_iter().enumerate() {
            colorbars.push(vertical_colorbar(&g, i, row_scale(i), ticks));
        }
    } else {
        let (bar, pos) = horizontal_colorbar(&g, row_scale(0), bands.tick_h);
        colorbars.push(bar);
        label_pos = Some(pos);
    }
    Ok(ImageScene {
        info: FigureInfo {
            width,
            height,
            rows: g.n,
            columns: g.k + 1,
            panels: cells.panels,
            row_vmax,
            colorbars,
        },
        colors: cells.colors,
        title_sizes: cells.title_sizes,
        image_w: plot.width,
        label_pos,
    })
}

/// Colour of a colour-bar position (value over white).
fn bar_color(v: f64, vmax: f64) -> [u8; 3] {
    let rgba = match lut_index(v, -vmax, vmax) {
        Some(i) => red_transparent_blue_lut()[i],
        None => [0.0; 4],
    };
    let mut out = [0u8; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        *o = to_byte(rgba[3] * rgba[ch] + (1.0 - rgba[3]));
    }
    out
}

impl Scene for ImageScene {
    fn size(&self) -> (u32, u32) {
        (self.info.width, self.info.height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let w = self.image_w;
        for ((panel, cols), &tsize) in self
            .info
            .panels
            .iter()
            .zip(&self.colors)
            .zip(&self.title_sizes)
        {
            let s = panel.scale as i32;
            let (x0, y0) = (panel.rect.x as i32, panel.rect.y as i32);
            for (r, line) in cols.chunks_exact(w).enumerate() {
                // Merge horizontal runs of equal colour into one rectangle (keeps SVG small).
                let mut start = 0;
                while start < line.len() {
                    let col = line[start];
                    let mut end = start + 1;
                    while end < line.len() && line[end] == col {
                        end += 1;
                    }
                    let y = y0 + r as i32 * s;
                    fill_rect(
                        root,
                        (x0 + start as i32 * s, y),
                        (x0 + end as i32 * s, y + s),
                        col,
                    )?;
                    start = end;
                }
            }
            if let Some(t) = &panel.title {
                let style = anchored(font(tsize), HPos::Center, VPos::Bottom);
                let cx = (panel.rect.x + panel.rect.width / 2) as i32;
                text(root, t, (cx, y0 - 5), &style)?;
            }
        }
        let tick_style = font(TICK_FONT);
        for bar in &self.info.colorbars {
            let r = bar.rect;
            match bar.orientation {
                Orientation::Horizontal => {
                    for i in 0..r.width {
                        let v = bar.vmin
                            + (f64::from(i) + 0.5) / f64::from(r.width) * (bar.vmax - bar.vmin);
                        let x = (r.x + i) as i32;
                        fill_rect(
                            root,
                            (x, r.y as i32),
                            (x + 1, r.bottom() as i32),
                            bar_color(v, bar.vmax),
                        )?;
                    }
                    for t in &bar.ticks {
                        let x = (t.pixel.round() as i32).clamp(r.x as i32, r.right() as i32 - 1);
                        let y = r.bottom() as i32;
                        fill_rect(root, (x, y), (x + 1, y + TICK_LEN as i32), [0, 0, 0])?;
                        let style = anchored(tick_style.clone(), HPos::Center, VPos::Top);
                        text(root, &t.tick.label, (x, y + TICK_LEN as i32 + 3), &style)?;
                    }
                }
                Orientation::Vertical => {
                    for i in 0..r.height {
                        // i counts from the bottom.
                        let v = bar.vmin
                            + (f64::from(i) + 0.5) / f64::from(r.height) * (bar.vmax - bar.vmin);
                        let y = (r.bottom() - 1 - i) as i32;
                        fill_rect(
                            root,
                            (r.x as i32, y),
                            (r.right() as i32, y + 1),
                            bar_color(v, bar.vmax),
                        )?;
                    }
                    let x = r.right() as i32;
                    let mut label_x = x + TICK_LEN as i32 + 3;
                    for t in &bar.ticks {
                        let y = (t.pixel.round() as i32).clamp(r.y as i32, r.bottom() as i32 - 1);
                        fill_rect(root, (x, y), (x + TICK_LEN as i32, y + 1), [0, 0, 0])?;
                        let style = anchored(tick_style.clone(), HPos::Left, VPos::Center);
                        text(root, &t.tick.label, (x + TICK_LEN as i32 + 3, y), &style)?;
                        let (tw, _) = text_size(&tick_style, &t.tick.label)?;
                        label_x = label_x.max(x + TICK_LEN as i32 + 3 + tw as i32);
                    }
                    let style = anchored(
                        font(TICK_FONT).transform(FontTransform::Rotate270),
                        HPos::Center,
                        VPos::Top,
                    );
                    let cy = (r.y + r.height / 2) as i32;
                    text(root, COLORBAR_LABEL, (label_x + 8, cy), &style)?;
                }
            }
        }
        if let Some((cx, y)) = self.label_pos {
            let style = anchored(font(LABEL_FONT), HPos::Center, VPos::Top);
            text(root, COLORBAR_LABEL, (cx, y), &style)?;
        }
        Ok(())
    }
}

/// Render the image plot in memory (bitmap backend) and return its geometry and pixels.
pub fn render_image_plot_rgb(
    plot: &ImagePlot,
    scale: ColorScale,
) -> Result<(FigureInfo, RgbFigure), PlotError> {
    let scene = layout(plot, scale)?;
    let fig = render_rgb(&scene)?;
    Ok((scene.info, fig))
}

/// Draw `plot` as shap's `image_plot` does and save it to `out` (`.png` or `.svg`).
///
/// Layout: one row per [`ImagePlotRow`]; column 0 is the image (titled with
/// [`ImagePlotRow::title`]), columns 1..=k the outputs, each titled with that row's
/// [`ImagePlotRow::output_names`] entry. Each image pixel becomes a square of
/// [`PanelInfo::scale`] screen pixels (5 for 28 x 28 images: 140-pixel cells); columns widen
/// for long titles, and titles that still do not fit are drawn smaller. Output cells show
/// [`composite_pixel`] of the channel-summed value over the image's own normalised grey.
/// With [`ColorScale::Global`] or [`ColorScale::Fixed`] a horizontal colour bar labelled
/// "SHAP value" spans the grid below the rows; with [`ColorScale::PerRow`] each row has a
/// vertical bar at its right. A 4-row, 5-output plot of 28 x 28 images is about 1,100 x 780
/// pixels.
///
/// Errors: no rows or outputs, sizes that disagree with `height * width * channels`, rows
/// with different output counts, NaN or infinite numbers, a channel count other than 1 or 3,
/// an invalid fixed scale, an unsupported extension, or a failed write (which leaves nothing
/// at `out`).
pub fn image_plot(
    plot: &ImagePlot,
    scale: ColorScale,
    out: &Path,
) -> Result<FigureInfo, PlotError> {
    crate::render::OutputFormat::from_path(out)?;
    let scene = layout(plot, scale)?;
    save(&scene, out)?;
    Ok(scene.info)
}

/// The row titles an explanation records for its images (`shap-cli explain` stores
/// `true | predicted`), `None` for an image with none.
pub fn recorded_titles(e: &shap_explain::Explanation) -> Vec<Option<String>> {
    e.images
        .iter()
        .map(|i| (!i.title.is_empty()).then(|| i.title.clone()))
        .collect()
}

/// Draw an explanation as `shap.image_plot(explanation)` does with its defaults: one colour
/// scale for the figure ([`ColorScale::Global`]) and the row titles the explanation records
/// ([`recorded_titles`]). [`explanation_plot`] chooses both.
///
/// ```no_run
/// # fn demo(e: &shap_explain::Explanation) -> Result<(), shap_plot::PlotError> {
/// shap_plot::save_explanation(e, "figure.png")?;
/// # Ok(()) }
/// ```
pub fn save_explanation(
    e: &shap_explain::Explanation,
    out: impl AsRef<Path>,
) -> Result<FigureInfo, PlotError> {
    explanation_plot(e, recorded_titles(e), ColorScale::Global, out.as_ref())
}

/// Draw an explanation like `shap.image_plot` in one call: [`ImagePlot::from_explanation`]
/// then [`image_plot`].
///
/// ```no_run
/// # fn demo(e: &shap_explain::Explanation) -> Result<(), shap_plot::PlotError> {
/// shap_plot::explanation_plot(e, Vec::new(), shap_plot::ColorScale::Global, "figure.png".as_ref())?;
/// # Ok(()) }
/// ```
pub fn explanation_plot(
    e: &shap_explain::Explanation,
    titles: Vec<Option<String>>,
    scale: ColorScale,
    out: &Path,
) -> Result<FigureInfo, PlotError> {
    image_plot(&ImagePlot::from_explanation(e, titles)?, scale, out)
}
