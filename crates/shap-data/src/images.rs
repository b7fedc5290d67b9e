//! Users' own images (`shap-cli explain --image`): PNG or JPEG of any size, turned into what a
//! model takes.

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits};

use crate::DataError;

/// The largest width or height accepted: larger files are refused before they are decoded.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// An image file as a model's input.
#[derive(Debug, Clone, PartialEq)]
pub struct UserImage {
    /// `height * width * channels` values in [0, 1], (H, W, C) order.
    pub pixels: Vec<f32>,
    /// The file's own `(width, height)`.
    pub original_size: (u32, u32),
    /// Whether it was resized to the requested size.
    pub resized: bool,
    /// Whether its colours were converted (RGB to grey, grey to RGB, alpha dropped).
    pub converted: bool,
}

/// Read a PNG or JPEG file as `channels` (1 = grey, 3 = RGB) channels of `height x width`
/// pixels with values in [0, 1].
///
/// - Colours: grey images are taken as they are for 1 channel and repeated for 3; colour
///   images become grey by the `image` crate's luma (Rec. 709 weights 0.2126, 0.7152, 0.0722);
///   alpha is dropped. 16-bit files keep their precision (`v / 65535`), 8-bit ones are `v / 255`.
/// - Size: a file of another size is resized with a bilinear (triangle) filter, which averages
///   over the source pixels when shrinking (as torchvision's `Resize` with antialiasing).
/// - Limits: sides above [`MAX_IMAGE_SIDE`] are refused before decoding.
/// - Completeness: a JPEG or PNG file that ends before its image does is refused
///   ([`DataError::ImageTruncated`]) rather than explained with the decoder's filler.
pub fn load_image(
    path: &Path,
    height: usize,
    width: usize,
    channels: usize,
) -> Result<UserImage, DataError> {
    let side = |s: usize| {
        u32::try_from(s)
            .ok()
            .filter(|&s| s > 0 && s <= MAX_IMAGE_SIDE)
    };
    let (Some(w), Some(h), 1 | 3) = (side(width), side(height), channels) else {
        return Err(DataError::ImageRequest {
            height,
            width,
            channels,
        });
    };
    convert(decode(path)?, Some((w, h)), channels)
}

/// Read a PNG or JPEG file at its own size as `channels` (1 or 3) channels, as
/// [`load_image`] does otherwise (the same decoder, limits, colour rules and checks).
pub fn load_image_as_is(path: &Path, channels: usize) -> Result<UserImage, DataError> {
    if !matches!(channels, 1 | 3) {
        return Err(DataError::ImageRequest {
            height: 0,
            width: 0,
            channels,
        });
    }
    convert(decode(path)?, None, channels)
}

/// `img` as `channels` channels, resized to `size` (width, height) when given.
fn convert(
    img: DynamicImage,
    size: Option<(u32, u32)>,
    channels: usize,
) -> Result<UserImage, DataError> {
    let original_size = (img.width(), img.height());
    let (w, h) = size.unwrap_or(original_size);
    let converted = if channels == 1 {
        img.color().channel_count() != 1
    } else {
        img.color().channel_count() != 3
    };
    let resized = original_size != (w, h);
    let img = if resized {
        img.resize_exact(w, h, FilterType::Triangle)
    } else {
        img
    };
    Ok(UserImage {
        pixels: pixels(&img, channels),
        original_size,
        resized,
        converted,
    })
}

/// Decode within limits: the header's size is checked before any pixel is decoded.
/// A grey `height x width` image with values in [0, 1] (clamped, rounded to 8 bits) as PNG
/// bytes.
pub fn encode_grey_png(pixels: &[f32], height: usize, width: usize) -> Result<Vec<u8>, DataError> {
    let failed = |source| DataError::Encode {
        height,
        width,
        source,
    };
    let bytes: Vec<u8> = pixels
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(failed(None));
    };
    let img = image::GrayImage::from_raw(w, h, bytes).ok_or_else(|| failed(None))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| failed(Some(e)))?;
    Ok(out.into_inner())
}

fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let image_err = |source| DataError::Image {
        path: path.to_path_buf(),
        source,
    };
    let open = || {
        ImageReader::open(path)
            .and_then(ImageReader::with_guessed_format)
            .map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })
    };
    let (width, height) = open()?.into_dimensions().map_err(image_err)?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit: MAX_IMAGE_SIDE,
        });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(1 << 30);
    let mut reader = open()?;
    let format = reader.format();
    reader.limits(limits);
    let img = reader.decode().map_err(image_err)?;
    check_complete(path, format)?;
    Ok(img)
}

/// Refuse a JPEG or PNG file that ends before its image does: the decoders fill what is
/// missing (grey, for a JPEG) rather than fail. A complete JPEG has an end-of-image marker
/// (`FF D9`) after its last start-of-scan (`FF DA`; an EXIF thumbnail's markers come earlier,
/// and `FF` bytes inside the scan data are always followed by `00`); a complete PNG has its
/// `IEND` chunk.
fn check_complete(path: &Path, format: Option<image::ImageFormat>) -> Result<(), DataError> {
    let (name, complete): (&'static str, fn(&[u8]) -> bool) = match format {
        Some(image::ImageFormat::Jpeg) => ("JPEG", jpeg_complete),
        Some(image::ImageFormat::Png) => ("PNG", png_complete),
        _ => return Ok(()),
    };
    // The decoder already read the whole file within the decoding limits.
    let bytes = shap_io::read_bounded(path, 1 << 30, "an image").map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    if complete(&bytes) {
        Ok(())
    } else {
        Err(DataError::ImageTruncated {
            path: path.to_path_buf(),
            format: name,
        })
    }
}

fn jpeg_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

fn png_complete(bytes: &[u8]) -> bool {
    // The whole IEND chunk: length 0, type `IEND` and its CRC (always AE 42 60 82); only
    // trailing bytes may follow it.
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    bytes.windows(IEND.len()).any(|w| w == IEND)
}

/// The pixels in [0, 1], (H, W, C) order, 8- or 16-bit precision as the file has.
fn pixels(img: &DynamicImage, channels: usize) -> Vec<f32> {
    let sixteen = img.color().bytes_per_pixel() / img.color().channel_count().max(1) > 1;
    match (channels, sixteen) {
        (1, false) => scale8(img.to_luma8().into_raw()),
        (1, true) => scale16(img.to_luma16().into_raw()),
        (_, false) => scale8(img.to_rgb8().into_raw()),
        (_, true) => scale16(img.to_rgb16().into_raw()),
    }
}

fn scale8(v: Vec<u8>) -> Vec<f32> {
    v.into_iter().map(|x| f32::from(x) / 255.0).collect()
}

fn scale16(v: Vec<u16>) -> Vec<f32> {
    v.into_iter().map(|x| f32::from(x) / 65535.0).collect()
}
