//! Backends (bitmap / SVG), the shipped font, and file output (through `shap_io`).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::PlotError;
use crate::glyph::{FAMILY, GlyphBackend};

/// Largest figure we agree to allocate (pixels), about 8000 x 8000.
pub(crate) const MAX_PIXELS: u64 = 64_000_000;

/// Output file format, chosen from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG (RGB, 8 bits per channel), rendered with plotters' bitmap backend.
    Png,
    /// SVG, rendered with plotters' SVG backend (text as `<text>` elements in `sans-serif`).
    Svg,
}

impl OutputFormat {
    /// The format for `path`'s extension (`png` or `svg`, any case).
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => Err(PlotError::UnsupportedFormat(path.to_path_buf())),
        }
    }
}

/// A figure rendered in memory: RGB bytes, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFigure {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major RGB.
    pub pixels: Vec<u8>,
}

impl RgbFigure {
    /// The RGB colour of pixel (`x`, `y`), or `None` outside the figure.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let p = self.pixels.get(i..i + 3)?;
        Some([p[0], p[1], p[2]])
    }
}

/// Registers DejaVu Sans (normal and bold) as `"sans-serif"`, once per process.
pub(crate) fn ensure_fonts() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // The font files are compiled in from the `dejavu` crate: they are valid fonts.
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
            .ok()
            .expect("the compiled-in DejaVu Sans regular is a valid font");
        register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold())
            .ok()
            .expect("the compiled-in DejaVu Sans bold is a valid font");
    });
}

/// A text style in the shipped font.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from(FontDesc::new(
        FontFamily::Name(FAMILY),
        size,
        FontStyle::Normal,
    ))
}

/// A bold text style in the shipped font.
pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    TextStyle::from(FontDesc::new(
        FontFamily::Name(FAMILY),
        size,
        FontStyle::Bold,
    ))
}

/// Width and height plotters will lay `text` out with in `style`.
pub(crate) fn text_size(style: &TextStyle<'_>, text: &str) -> Result<(u32, u32), PlotError> {
    style.font.box_size(text).map_err(|source| PlotError::Font {
        text: text.to_string(),
        source,
    })
}

/// Anchored text position helper.
pub(crate) fn anchored<'a>(style: TextStyle<'a>, h: HPos, v: VPos) -> TextStyle<'a> {
    style.pos(Pos::new(h, v))
}

/// plotters' error as [`PlotError::Draw`]: its type borrows the backend, so only its message
/// can be kept.
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Draw a chart's legend the one way every line figure does: 12-point labels on a faint white
/// box with a grey border, at `position`.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .label_font(font(12.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .position(position)
        .draw()
        .map_err(draw_err)
}

/// Something that can draw itself on any plotters backend.
pub(crate) trait Scene {
    /// Figure size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw on a white root area of [`Scene::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;
}

pub(crate) fn check_size(width: u64, height: u64) -> Result<(), PlotError> {
    if width == 0 || height == 0 || width.saturating_mul(height) > MAX_PIXELS {
        return Err(PlotError::FigureTooLarge {
            width,
            height,
            limit: MAX_PIXELS,
        });
    }
    Ok(())
}

/// Render on the bitmap backend into RGB bytes.
pub(crate) fn render_rgb<S: Scene>(scene: &S) -> Result<RgbFigure, PlotError> {
    ensure_fonts();
    let (w, h) = scene.size();
    check_size(u64::from(w), u64::from(h))?;
    let mut pixels = vec![255u8; w as usize * h as usize * 3];
    {
        let root = GlyphBackend::new(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        scene.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(RgbFigure {
        width: w,
        height: h,
        pixels,
    })
}

/// Render on the SVG backend into a string.
pub(crate) fn render_svg<S: Scene>(scene: &S) -> Result<String, PlotError> {
    ensure_fonts();
    let (w, h) = scene.size();
    check_size(u64::from(w), u64::from(h))?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        scene.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

/// Render `scene` and save it to `path` (PNG or SVG by extension), atomically.
pub(crate) fn save<S: Scene>(scene: &S, path: &Path) -> Result<(), PlotError> {
    let format = OutputFormat::from_path(path)?;
    let bytes = match format {
        OutputFormat::Png => encode_png(&render_rgb(scene)?, path)?,
        OutputFormat::Svg => render_svg(scene)?.into_bytes(),
    };
    Ok(shap_io::write_bytes(path, &bytes)?)
}

pub(crate) fn encode_png(fig: &RgbFigure, path: &Path) -> Result<Vec<u8>, PlotError> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &fig.pixels,
            fig.width,
            fig.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|source| PlotError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

/// Fill the half-open pixel rectangle `[x0, x1) x [y0, y1)` with an opaque colour.
pub(crate) fn fill_rect<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    rgb: [u8; 3],
) -> Result<(), PlotError> {
    root.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        RGBColor(rgb[0], rgb[1], rgb[2]).filled(),
    ))
    .map_err(draw_err)
}

/// Draw a single line of text at `(x, y)` with the style's anchor.
pub(crate) fn text<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &str,
    (x, y): (i32, i32),
    style: &TextStyle<'_>,
) -> Result<(), PlotError> {
    root.draw(&Text::new(s.to_string(), (x, y), style.clone()))
        .map_err(draw_err)
}
