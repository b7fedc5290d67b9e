//! # shap-plot: shap-style figures without system fonts
//!
//! Five figures, drawn with [`plotters`] and saved as **PNG** (encoded with `image` 0.25) or
//! **SVG**, chosen by the output file's extension (`.png` / `.svg`, case-insensitive):
//!
//! * [`image_plot`]: the port of `shap.image_plot` (`shap.plots.image`). One row per explained
//!   image; column 0 shows the image in grey (optionally titled, e.g. with the true and predicted
//!   labels); one further column per explained output shows the grey image faded (alpha 0.15)
//!   under the SHAP values summed over channels, coloured with shap's
//!   [`red_transparent_blue`] colour map. Every cell is titled with *that row's* class name for
//!   that output (shap titles rows that explain different classes wrongly; we do not). The colour
//!   scale is symmetric: by default the 99.9th percentile of |values| over all rows and outputs,
//!   computed exactly like NumPy's `nanpercentile` (see [`ColorScale`]). A horizontal colour bar
//!   labelled "SHAP value" spans the grid. Unlike shap, the grey underlay is aligned with the
//!   pixels (shap draws it half a pixel off and 29/28 too large).
//! * [`confusion_matrix_plot`]: a heat map of counts with class names.
//! * [`training_curves_plot`]: loss and accuracy per epoch, train and test.
//! * [`class_summary_plot`]: per predicted class, the mean image, mean SHAP map and mean |SHAP|
//!   map, one colour scale per row (an image plot).
//! * [`faithfulness_plot`]: mean deletion and insertion curves, explanation against random.
//!
//! Text uses DejaVu Sans from the [`dejavu`] crate, compiled into the binary and registered with
//! plotters' `ab_glyph` font table under the family name `"sans-serif"` (normal and bold): no
//! fontconfig, freetype or system fonts are needed. Only that family name is used.
//!
//! Files are written atomically: the figure is encoded in memory, written to a temporary file
//! beside the target and renamed over it, so a failed write never leaves a partial figure.
//!
//! ## Differences from `shap.image_plot` (deliberate)
//!
//! * The grey underlay covers exactly the pixels it belongs to (shap: extent `(-1, W, H, -1)`,
//!   half a pixel off and 29/28 too large).
//! * Every row is titled with its own output names (shap titles only the first row when the
//!   names collapse to one list, and mislabels rows that explain different classes).
//! * Layout: each image pixel is a square of whole screen pixels (5 for 28 x 28 images),
//!   titles get the room they need, and the figure is compact instead of shap's
//!   `3(k+1) x 2.5(n+1)` inches at 100 dpi: a 4-row, 5-output figure is about 1,100 x 780
//!   pixels instead of 1,800 x 1,250 with wide margins.
//! * NaN or infinite values are an error (matplotlib draws NaN transparent).
//! * If the percentile is 0 (more than 99.9% zeros), the largest |value| is used as the scale,
//!   and 1.0 if all values are 0 (matplotlib, given `vmin = vmax = 0`, paints everything blue).
//! * Colours are composited in f64 from the exact LUT and rounded once; matplotlib composites
//!   byte colours (differences of about one level per channel).
//!
//! Layout geometry is returned ([`FigureInfo`], [`ConfusionInfo`]), so callers and tests can
//! find every panel, pixel and colour bar in the rendered picture.
//!
//! ```no_run
//! use shap_plot::{ColorScale, ImagePlot, ImagePlotRow, image_plot};
//! # fn main() -> Result<(), shap_plot::PlotError> {
//! let (h, w) = (28, 28);
//! let image: Vec<f32> = (0..h * w).map(|i| (i % w) as f32 / w as f32).collect();
//! let values: Vec<f64> = (0..h * w).map(|i| ((i % w) as f64 - 14.0) * 1e-3).collect();
//! let plot = ImagePlot {
//!     height: h,
//!     width: w,
//!     channels: 1,
//!     rows: vec![ImagePlotRow {
//!         image,
//!         title: Some("true: Coat | pred: Coat (0.93)".into()),
//!         values: vec![values],
//!         output_names: vec!["Coat".into()],
//!     }],
//! };
//! let info = image_plot(&plot, ColorScale::Global, std::path::Path::new("figure.png"))?;
//! println!("{} x {} pixels, vmax {}", info.width, info.height, info.row_vmax[0]);
//! # Ok(()) }
//! ```

mod colormap;
mod compare;
mod confusion;
mod curves;
mod geometry;
mod glyph;
mod image_plot;
mod render;
mod sanity;
mod summary;

pub use colormap::{
    LUT_SIZE, Tick, blues, colorbar_ticks, lut_index, numpy_percentile, red_transparent_blue,
    red_transparent_blue_lut, red_transparent_blue_rgba,
};
pub use compare::compare_plot;
pub use confusion::{ConfusionInfo, confusion_matrix_plot, render_confusion_matrix_rgb};
pub use curves::{EpochPoint, render_training_curves_rgb, training_curves_plot};
pub use geometry::{
    ColorBarInfo, FigureInfo, Orientation, PanelInfo, PanelKind, PixelRect, TickInfo,
};
pub use image_plot::{
    ColorScale, ImagePlot, ImagePlotRow, MAX_VMAX, composite_pixel, explanation_plot, image_plot,
    recorded_titles, render_image_plot_rgb, resolve_vmax, save_explanation,
};
pub use render::{OutputFormat, RgbFigure};
pub use sanity::{sanity_curves_plot, sanity_plot};
pub use summary::{class_summary_plot, faithfulness_plot};

use std::path::PathBuf;

/// Everything that can go wrong while building or saving a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A file refused by `shap-io` (too large, not writable, ...); its OS errors become
    /// [`PlotError::Io`].
    #[error(transparent)]
    Output(shap_io::IoError),
    /// The figure has nothing to draw (no rows, no outputs, no epochs, no classes...).
    #[error("nothing to plot: {0}")]
    Empty(String),
    /// Two inputs that must agree in size do not.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which input is wrong (e.g. `row 2 output 1 values`).
        what: String,
        /// The size it must have.
        expected: usize,
        /// The size it has.
        got: usize,
    },
    /// An input contains NaN or an infinity.
    #[error("non-finite number in {what} at index {index}: {value}")]
    NonFinite {
        /// Which input (e.g. `row 0 output 3 values`).
        what: String,
        /// Flat index of the first offending element.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The image has a channel count the image plot cannot show (only 1 = grey and 3 = RGB).
    #[error("unsupported channel count {0} (only 1 or 3 channels can be shown)")]
    UnsupportedChannels(usize),
    /// An explicit colour-scale bound is not a finite positive number.
    #[error(
        "invalid colour scale vmax {0:e}: must be > 0 and at most 4e307 (values this large cannot be drawn)"
    )]
    InvalidScale(f64),
    /// Epoch numbers of a training history are not strictly increasing.
    #[error("epochs must be strictly increasing: epoch {next} follows epoch {prev}")]
    EpochOrder {
        /// The earlier epoch number.
        prev: u32,
        /// The epoch number that does not increase.
        next: u32,
    },
    /// The figure would exceed the size limit (guards against huge allocations).
    #[error("figure of {width} x {height} pixels exceeds the limit of {limit} pixels")]
    FigureTooLarge {
        /// Requested width in pixels.
        width: u64,
        /// Requested height in pixels.
        height: u64,
        /// The maximum number of pixels allowed.
        limit: u64,
    },
    /// The output path's extension is neither `.png` nor `.svg`.
    #[error("unsupported output format for {0}: use a .png or .svg file name")]
    UnsupportedFormat(PathBuf),
    /// The shipped font could not lay out a piece of text.
    #[error("cannot measure {text:?} in the shipped font")]
    Font {
        /// The text being measured.
        text: String,
        /// The font library's error.
        #[source]
        source: plotters::style::FontError,
    },
    /// plotters reported a drawing error (its message: plotters' error type borrows the
    /// backend, so it cannot be kept as a source).
    #[error("drawing failed: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("PNG encoding failed for {path}")]
    Encode {
        /// The output file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// Writing the output file failed (nothing is left behind at `path`).
    #[error("cannot write {path}")]
    Io {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<shap_io::IoError> for PlotError {
    fn from(e: shap_io::IoError) -> Self {
        match e {
            shap_io::IoError::Os { path, source, .. } => Self::Io { path, source },
            other => Self::Output(other),
        }
    }
}
