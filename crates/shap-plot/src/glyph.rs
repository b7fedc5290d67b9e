//! A bitmap backend with correct glyph placement.
//!
//! plotters' own ab_glyph text drawing places every glyph at the pen position without its
//! side bearing and rounds each glyph independently, which gives visibly uneven letter spacing
//! ("tru e"). [`GlyphBackend`] wraps [`BitMapBackend`] and draws text of the registered
//! `"sans-serif"` family itself: glyphs positioned with sub-pixel pen positions, side bearings
//! and kerning, anti-aliased coverage blended over the background. Layout width is the same
//! advance-plus-kerning sum plotters uses to measure text, so anchors agree with layout.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontStyle,
    FontTransform,
};

/// The only font family name used by this crate (registered from the `dejavu` crate by
/// `render`, drawn here). This module depends on no other module of the crate.
pub(crate) const FAMILY: &str = "sans-serif";

/// [`BitMapBackend`] with proper text rendering for the `"sans-serif"` family.
pub(crate) struct GlyphBackend<'a> {
    inner: BitMapBackend<'a>,
    regular: Option<FontRef<'static>>,
    bold: Option<FontRef<'static>>,
}

type BitmapError<'a> = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

impl<'a> GlyphBackend<'a> {
    pub(crate) fn new(buf: &'a mut [u8], size: (u32, u32)) -> Self {
        Self {
            inner: BitMapBackend::with_buffer(buf, size),
            regular: FontRef::try_from_slice(dejavu::sans::regular()).ok(),
            bold: FontRef::try_from_slice(dejavu::sans::bold()).ok(),
        }
    }
}

/// Rotate an offset `(x, y)` (screen coordinates, y down) as plotters' transforms do.
fn rotate(t: &FontTransform, x: i32, y: i32) -> (i32, i32) {
    match t {
        FontTransform::None => (x, y),
        FontTransform::Rotate90 => (-y, x),
        FontTransform::Rotate180 => (-x, -y),
        FontTransform::Rotate270 => (y, -x),
    }
}

impl<'a> DrawingBackend for GlyphBackend<'a> {
    type ErrorType = BitmapError<'a>;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let font = if style.family().as_str() != FAMILY {
            None
        } else if matches!(style.style(), FontStyle::Bold) {
            self.bold.clone()
        } else {
            self.regular.clone()
        };
        let Some(font) = font else {
            // Not our family: plotters' own drawing (errors if the family is unregistered).
            return self.inner.draw_text(text, style, pos);
        };
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size() as f32;
        let scaled = font.as_scaled(PxScale::from(size));
        let ascent = scaled.ascent();
        // Lay out on a baseline at y = ascent (box top = 0), pen positions in sub-pixels.
        let mut glyphs = Vec::with_capacity(text.len());
        let mut pen = 0f32;
        let mut prev = None;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(size, point(pen, ascent)));
            pen += scaled.h_advance(id);
            prev = Some(id);
        }
        let width = pen.round() as i32;
        let height = (scaled.ascent() - scaled.descent()).round() as i32;
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        for g in glyphs {
            let Some(outline) = font.outline_glyph(g) else {
                continue;
            };
            let b = outline.px_bounds();
            let (bx, by) = (b.min.x as i32, b.min.y as i32);
            let mut result = Ok(());
            outline.draw(|gx, gy, cov| {
                if result.is_err() || cov <= 0.0 {
                    return;
                }
                let (ox, oy) = rotate(&trans, bx + gx as i32 + dx, by + gy as i32 + dy);
                let (x, y) = (pos.0 + ox, pos.1 + oy);
                if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    result = self.inner.draw_pixel(
                        (x, y),
                        BackendColor {
                            alpha: color.alpha * f64::from(cov.min(1.0)),
                            rgb: color.rgb,
                        },
                    );
                }
            });
            result?;
        }
        Ok(())
    }
}
