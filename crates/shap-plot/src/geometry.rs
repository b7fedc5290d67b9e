//! Layout geometry reported back to callers: where every panel, pixel and colour bar lies.

use crate::colormap::Tick;

/// A rectangle of whole pixels: columns `x..x+width`, rows `y..y+height` (origin top left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    /// Left column (inclusive).
    pub x: u32,
    /// Top row (inclusive).
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl PixelRect {
    /// The pixel at the centre (rounded towards the top left).
    pub fn center(&self) -> (u32, u32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    /// Whether pixel `(px, py)` lies inside the rectangle.
    pub fn contains(&self, px: u32, py: u32) -> bool {
        px >= self.x && py >= self.y && px - self.x < self.width && py - self.y < self.height
    }

    /// One past the right-most column.
    pub fn right(&self) -> u32 {
        self.x + self.width
    }

    /// One past the bottom row.
    pub fn bottom(&self) -> u32 {
        self.y + self.height
    }
}

/// What a panel of the image plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    /// Column 0: the input image.
    Image,
    /// Columns 1..=k: the SHAP values of output `o` (0-based) over the faded image.
    Output(usize),
}

/// One panel (axes) of the image plot.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelInfo {
    /// Row of the figure (= index of the explained image).
    pub row: usize,
    /// Column of the figure (0 = image, `o + 1` = output `o`).
    pub column: usize,
    /// What the panel shows.
    pub kind: PanelKind,
    /// The picture area: exactly `width * scale` by `height * scale` pixels.
    pub rect: PixelRect,
    /// Screen pixels per image pixel along each axis (nearest-neighbour upscaling).
    pub scale: u32,
    /// The title drawn above the panel, if any.
    pub title: Option<String>,
}

impl PanelInfo {
    /// The screen rectangle of image pixel (`r`, `c`) (row, column), or `None` outside the image.
    pub fn pixel_rect(&self, r: usize, c: usize) -> Option<PixelRect> {
        let s = self.scale as usize;
        let (x, y) = (c.checked_mul(s)?, r.checked_mul(s)?);
        let (x, y) = (u32::try_from(x).ok()?, u32::try_from(y).ok()?);
        if x >= self.rect.width || y >= self.rect.height {
            return None;
        }
        Some(PixelRect {
            x: self.rect.x + x,
            y: self.rect.y + y,
            width: self.scale,
            height: self.scale,
        })
    }

    /// The centre screen pixel of image pixel (`r`, `c`), or `None` outside the image.
    pub fn pixel_center(&self, r: usize, c: usize) -> Option<(u32, u32)> {
        self.pixel_rect(r, c).map(|p| p.center())
    }
}

/// Orientation of a colour bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// Values grow from left to right.
    Horizontal,
    /// Values grow from bottom to top.
    Vertical,
}

/// A colour bar: the gradient rectangle and its value range.
///
/// Along the value axis, pixel `i` (0-based from the low end) shows the colour of value
/// `vmin + (i + 0.5) / len * (vmax - vmin)`, composited over white.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorBarInfo {
    /// The gradient rectangle.
    pub rect: PixelRect,
    /// Direction of increasing values.
    pub orientation: Orientation,
    /// Value at the low end (left or bottom edge); always `-vmax`.
    pub vmin: f64,
    /// Value at the high end (right or top edge).
    pub vmax: f64,
    /// The row this bar belongs to (per-row scale), or `None` for the figure-wide bar.
    pub row: Option<usize>,
    /// Tick marks with their labels and screen positions along the value axis.
    pub ticks: Vec<TickInfo>,
}

/// A tick of a colour bar.
#[derive(Debug, Clone, PartialEq)]
pub struct TickInfo {
    /// The tick value and label.
    pub tick: Tick,
    /// Screen coordinate along the value axis (x for horizontal bars, y for vertical ones).
    pub pixel: f64,
}

/// Geometry of a rendered image plot.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureInfo {
    /// Figure width in pixels.
    pub width: u32,
    /// Figure height in pixels.
    pub height: u32,
    /// Number of rows (explained images).
    pub rows: usize,
    /// Number of columns: `1 + k` outputs.
    pub columns: usize,
    /// All panels, row-major: `panels[row * columns + column]`.
    pub panels: Vec<PanelInfo>,
    /// The symmetric colour-scale bound used for each row (all equal unless per-row scale).
    pub row_vmax: Vec<f64>,
    /// The colour bars: one horizontal bar, or one vertical bar per row with a per-row scale.
    pub colorbars: Vec<ColorBarInfo>,
}

impl FigureInfo {
    /// The panel at (`row`, `column`), if it exists.
    pub fn panel(&self, row: usize, column: usize) -> Option<&PanelInfo> {
        if column >= self.columns {
            return None;
        }
        self.panels
            .get(row.checked_mul(self.columns)?.checked_add(column)?)
    }
}
