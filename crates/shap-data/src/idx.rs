//! Reading IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain.
//!
//! An IDX file is a big-endian header followed by raw bytes:
//! images: magic `0x00000803`, count, rows, cols, then `count*rows*cols` bytes;
//! labels: magic `0x00000801`, count, then `count` bytes.
//! Compression is detected from the gzip magic bytes (`1f 8b`), not from the file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Largest IDX file read, gzip or plain (Fashion-MNIST's largest is 47 MB plain): a device or
/// an endless file fails at this size, a regular file before anything is read.
pub const MAX_FILE_BYTES: u64 = 256 * shap_io::MIB;

/// Largest row or column count accepted in an image header: anything bigger is taken as a
/// corrupt header rather than a request to allocate.
pub const MAX_SIDE: u32 = 4096;

/// Deflate cannot expand data by more than about 1032:1, so a gzip file of `c` bytes cannot
/// decompress to more than `c * 1032` bytes (plus the header). Used to bound allocations made
/// before the data has been seen.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The images of an IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count*rows*cols` pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (`*-images-idx3-ubyte`, gzip or plain).
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::Gzip`] for corrupt or truncated
/// gzip data, [`DataError::BadMagic`], [`DataError::BadHeader`] (short header, zero or absurd
/// dimensions), [`DataError::LengthMismatch`] when the header does not match the data.
/// No buffer larger than what the file can really hold is allocated, whatever the header says.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    precheck_plain::<16>(path, IMAGES_MAGIC, |h| {
        let [_, count, rows, cols] = be_words(h);
        let bytes = u64::from(count)
            .saturating_mul(u64::from(rows))
            .saturating_mul(u64::from(cols));
        (bytes, format!("{count} images of {rows}x{cols}"))
    })?;
    let raw = read_file(path)?;
    let mut src = Source::new(path, &raw);
    let header = src.header::<16>()?;
    let [magic, count, rows, cols] = be_words(&header);
    check_magic(path, magic, IMAGES_MAGIC, "image")?;
    for (name, side) in [("rows", rows), ("columns", cols)] {
        if side == 0 || side > MAX_SIDE {
            return Err(DataError::BadHeader {
                path: path.to_path_buf(),
                reason: format!("{side} {name} per image (expected 1..={MAX_SIDE})"),
            });
        }
    }
    let expected = u64::from(count) * u64::from(rows) * u64::from(cols);
    let what = format!("{count} images of {rows}x{cols}");
    let pixels = src.body(expected, &what)?;
    Ok(IdxImages {
        count: to_usize(path, count)?,
        rows: to_usize(path, rows)?,
        cols: to_usize(path, cols)?,
        pixels,
    })
}

/// Reads an IDX label file (`*-labels-idx1-ubyte`, gzip or plain) and checks that every label
/// is a Fashion-MNIST class `0..=9`.
///
/// # Errors
/// As [`read_images`], plus [`DataError::BadLabel`] for a label above 9.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    precheck_plain::<8>(path, LABELS_MAGIC, |h| {
        let count = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        (u64::from(count), format!("{count} labels"))
    })?;
    let raw = read_file(path)?;
    let mut src = Source::new(path, &raw);
    let header = src.header::<8>()?;
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let count = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    check_magic(path, magic, LABELS_MAGIC, "label")?;
    let labels = src.body(u64::from(count), &format!("{count} labels"))?;
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= crate::NUM_CLASSES)
    {
        return Err(DataError::BadLabel {
            path: path.to_path_buf(),
            index,
            label,
        });
    }
    Ok(labels)
}

/// For a plain (not gzip) regular file with the right magic number, compare its size with
/// what its `N`-byte header declares (`body`: data bytes after the header, in bytes and in
/// words) before reading it, so that a mismatch costs nothing. Anything else (gzip, a short
/// file, another magic, not a regular file) is left to the full read, which checks it.
fn precheck_plain<const N: usize>(
    path: &Path,
    magic: u32,
    body: impl Fn(&[u8; N]) -> (u64, String),
) -> Result<(), DataError> {
    use std::io::Read as _;
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Ok(());
    }
    let mut header = [0u8; N];
    let mut f = std::fs::File::open(path).map_err(io)?;
    if f.read_exact(&mut header).is_err()
        || u32::from_be_bytes([header[0], header[1], header[2], header[3]]) != magic
    {
        return Ok(());
    }
    let (expected, what) = body(&header);
    let actual = meta.len() - N as u64;
    if actual != expected {
        return Err(DataError::LengthMismatch {
            path: path.to_path_buf(),
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(shap_io::read_bounded(path, MAX_FILE_BYTES, "an IDX file")?)
}

fn to_usize(path: &Path, v: u32) -> Result<usize, DataError> {
    usize::try_from(v).map_err(|_| DataError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("{v} does not fit in memory on this platform"),
    })
}

fn check_magic(
    path: &Path,
    found: u32,
    expected: u32,
    kind: &'static str,
) -> Result<(), DataError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected,
            kind,
        })
    }
}

fn be_words(h: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// The file's bytes, either plain or through a gzip decoder.
enum Source<'a> {
    Plain {
        path: PathBuf,
        rest: &'a [u8],
    },
    Gzip {
        path: PathBuf,
        compressed_len: u64,
        decoder: Box<flate2::read::MultiGzDecoder<&'a [u8]>>,
    },
}

impl<'a> Source<'a> {
    fn new(path: &Path, raw: &'a [u8]) -> Self {
        if raw.starts_with(&[0x1f, 0x8b]) {
            Source::Gzip {
                path: path.to_path_buf(),
                compressed_len: raw.len() as u64,
                decoder: Box::new(flate2::read::MultiGzDecoder::new(raw)),
            }
        } else {
            Source::Plain {
                path: path.to_path_buf(),
                rest: raw,
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            Source::Plain { path, .. } | Source::Gzip { path, .. } => path,
        }
    }

    /// Reads the first `N` bytes; a file that ends sooner is a bad header.
    fn header<const N: usize>(&mut self) -> Result<[u8; N], DataError> {
        let mut buf = [0u8; N];
        let mut filled = 0;
        while filled < N {
            let n =
                match self {
                    Source::Plain { rest, .. } => {
                        let n = rest.len().min(N - filled);
                        buf[filled..filled + n].copy_from_slice(&rest[..n]);
                        *rest = &rest[n..];
                        n
                    }
                    Source::Gzip { path, decoder, .. } => decoder
                        .read(&mut buf[filled..])
                        .map_err(|source| DataError::Gzip {
                            path: path.clone(),
                            source,
                        })?,
                };
            if n == 0 {
                return Err(DataError::BadHeader {
                    path: self.path().to_path_buf(),
                    reason: format!(
                        "the data ends after {filled} bytes; an IDX header here is {N} bytes"
                    ),
                });
            }
            filled += n;
        }
        Ok(buf)
    }

    /// Reads exactly `expected` data bytes after the header and checks nothing follows.
    fn body(self, expected: u64, what: &str) -> Result<Vec<u8>, DataError> {
        let mismatch = |path: PathBuf, actual: u64| DataError::LengthMismatch {
            path,
            what: what.to_string(),
            expected,
            actual,
        };
        match self {
            Source::Plain { path, rest } => {
                // The whole file is already in memory: compare before copying anything.
                if rest.len() as u64 != expected {
                    return Err(mismatch(path, rest.len() as u64));
                }
                Ok(rest.to_vec())
            }
            Source::Gzip {
                path,
                compressed_len,
                decoder,
            } => {
                // Never trust the header for the allocation: bound it by what the compressed
                // file can possibly expand to; the Vec grows further only as real data arrives.
                let bound = compressed_len.saturating_mul(MAX_DEFLATE_RATIO);
                let capacity = usize::try_from(expected.min(bound)).unwrap_or(0);
                let mut out = Vec::with_capacity(capacity);
                let gzip_err = |source| DataError::Gzip {
                    path: path.clone(),
                    source,
                };
                let mut limited = decoder.take(expected.saturating_add(1));
                limited.read_to_end(&mut out).map_err(gzip_err)?;
                let actual = out.len() as u64;
                if actual > expected {
                    // More data than promised: stop here rather than inflate the rest (a small
                    // gzip file can expand a thousandfold).
                    return Err(DataError::LongerThanHeader {
                        path,
                        what: what.to_string(),
                        expected,
                    });
                }
                if actual != expected {
                    return Err(mismatch(path, actual));
                }
                Ok(out)
            }
        }
    }
}
