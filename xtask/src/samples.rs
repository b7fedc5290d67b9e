//! The report's grid of sample training images: the first few Fashion-MNIST training images
//! read straight from the IDX files and written as small grey PNGs.
//!
//! Only the header and the first `n` records of each file are read (gzip or plain), so this
//! costs milliseconds; the PNG writer is the minimal one the format allows (8-bit grey, filter
//! 0, zlib through `flate2`), which keeps xtask's build light.

use anyhow::{Context, Result, bail};
use std::io::{BufReader, Read, Write as _};
use std::path::{Path, PathBuf};

/// One sample image written for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Index in the training set.
    pub index: usize,
    /// Class label (0..=9).
    pub label: u8,
    /// PNG path relative to the report's folder.
    pub file: String,
}

/// Write the first `n` training images of the IDX files in `data_dir` as
/// `<out>/samples/train_<i>.png` and return them with their labels.
pub fn write_samples(data_dir: &Path, out: &Path, n: usize) -> Result<Vec<Sample>> {
    let images = open_idx(data_dir, "train-images-idx3-ubyte")?;
    let labels = open_idx(data_dir, "train-labels-idx1-ubyte")?;
    let (rows, cols, pixels) = read_images(images, n)?;
    let labels = read_labels(labels, n)?;
    let dir = out.join("samples");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut samples = Vec::with_capacity(n);
    for (index, (label, image)) in labels.iter().zip(pixels.chunks(rows * cols)).enumerate() {
        let file = format!("samples/train_{index}.png");
        let png = encode_grey_png(cols, rows, image)?;
        shap_io::write_bytes(&out.join(&file), &png)?;
        samples.push(Sample {
            index,
            label: *label,
            file,
        });
    }
    Ok(samples)
}

/// The data directory named by `shap-cli data --json`'s `source` (`directory DIR` or
/// `FASHION_MNIST_DIR=DIR`); `None` for the hub cache, whose parquet files xtask cannot read.
pub fn data_dir_of(source: &str) -> Option<PathBuf> {
    source
        .strip_prefix("directory ")
        .or_else(|| source.strip_prefix("FASHION_MNIST_DIR="))
        .map(PathBuf::from)
}

/// Open `<dir>/<stem>.gz`, else `<dir>/<stem>`, as a byte stream.
fn open_idx(dir: &Path, stem: &str) -> Result<Box<dyn Read>> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        let f = std::fs::File::open(&gz).with_context(|| format!("opening {}", gz.display()))?;
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(
            f,
        ))));
    }
    let plain = dir.join(stem);
    let f = std::fs::File::open(&plain).with_context(|| format!("opening {}", plain.display()))?;
    Ok(Box::new(BufReader::new(f)))
}

fn read_u32(r: &mut dyn Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).context("IDX header is cut short")?;
    Ok(u32::from_be_bytes(b))
}

/// Read an IDX image header and the first `n` images: `(rows, cols, pixels)`.
fn read_images(mut r: Box<dyn Read>, n: usize) -> Result<(usize, usize, Vec<u8>)> {
    if read_u32(&mut r)? != 0x0803 {
        bail!("not an IDX image file (magic is not 0x00000803)");
    }
    let count = read_u32(&mut r)? as usize;
    let rows = read_u32(&mut r)? as usize;
    let cols = read_u32(&mut r)? as usize;
    if rows == 0 || cols == 0 || rows > 256 || cols > 256 || count < n {
        bail!("unexpected IDX image header: {count} images of {rows}x{cols}");
    }
    let mut pixels = vec![0u8; n * rows * cols];
    r.read_exact(&mut pixels)
        .context("IDX image data is cut short")?;
    Ok((rows, cols, pixels))
}

/// Read an IDX label header and the first `n` labels.
fn read_labels(mut r: Box<dyn Read>, n: usize) -> Result<Vec<u8>> {
    if read_u32(&mut r)? != 0x0801 {
        bail!("not an IDX label file (magic is not 0x00000801)");
    }
    if (read_u32(&mut r)? as usize) < n {
        bail!("the IDX label file has fewer than {n} labels");
    }
    let mut labels = vec![0u8; n];
    r.read_exact(&mut labels)
        .context("IDX labels are cut short")?;
    Ok(labels)
}

/// A PNG of an 8-bit grey image (`pixels` row-major, `width * height` bytes).
pub fn encode_grey_png(width: usize, height: usize, pixels: &[u8]) -> Result<Vec<u8>> {
    if pixels.len() != width * height {
        bail!("{} pixels for a {width}x{height} image", pixels.len());
    }
    let mut raw = Vec::with_capacity((width + 1) * height);
    for row in pixels.chunks(width) {
        raw.push(0); // filter type 0 (none)
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    let idat = z.finish()?;
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&u32::try_from(width)?.to_be_bytes());
    ihdr.extend_from_slice(&u32::try_from(height)?.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit, greyscale, deflate, filter 0, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    push_chunk(&mut png, b"IHDR", &ihdr);
    push_chunk(&mut png, b"IDAT", &idat);
    push_chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // Chunks are at most a few KB here, far below the format's 2^31 limit.
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    png.extend_from_slice(&crc.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_signature_header_and_checksums() -> Result<()> {
        let png = encode_grey_png(3, 2, &[0, 128, 255, 1, 2, 3])?;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 3, 0, 0, 0, 2]);
        // The IHDR CRC covers the type and the 13 data bytes.
        let crc = crc32fast::hash(&png[12..29]);
        assert_eq!(&png[29..33], &crc.to_be_bytes());
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
        assert!(encode_grey_png(3, 3, &[0; 6]).is_err());
        Ok(())
    }

    #[test]
    fn idx_records_are_read_from_the_header_on() -> Result<()> {
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (rows, cols, px) = read_images(Box::new(std::io::Cursor::new(bytes.clone())), 2)?;
        assert_eq!((rows, cols, px), (2, 2, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(read_images(Box::new(std::io::Cursor::new(bytes)), 3).is_err());
        let labels = vec![0, 0, 8, 1, 0, 0, 0, 2, 9, 4];
        assert_eq!(
            read_labels(Box::new(std::io::Cursor::new(labels)), 2)?,
            vec![9, 4]
        );
        Ok(())
    }

    #[test]
    fn data_dir_comes_from_the_source_line() {
        assert_eq!(
            data_dir_of("directory /usr/share/datasets/fashion-mnist"),
            Some(PathBuf::from("/usr/share/datasets/fashion-mnist"))
        );
        assert_eq!(
            data_dir_of("FASHION_MNIST_DIR=/d"),
            Some(PathBuf::from("/d"))
        );
        assert_eq!(data_dir_of("hf-hub cache /x"), None);
    }
}
