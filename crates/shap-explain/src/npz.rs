//! Minimal `.npy` / `.npz` writer and reader, enough for explanations. Files written here
//! (stored, uncompressed) load with `numpy.load`; the reader accepts what `numpy.savez` and
//! `numpy.savez_compressed` write for the dtypes used here (`<f8`, `<f4`, `<i8`, `<U n`).

use std::path::Path;

use crate::{ExplainError, Result};

/// Typed array payload.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f8`.
    F64(Vec<f64>),
    /// `<f4`.
    F32(Vec<f32>),
    /// `<i8`.
    I64(Vec<i64>),
    /// `<U n` (UTF-32), one string per element.
    Str(Vec<String>),
}

/// An n-dimensional array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: NpyData,
}

fn shape_str(shape: &[usize]) -> String {
    match shape.len() {
        0 => "()".into(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Serialise one array as `.npy` (format 1.0) bytes.
pub fn npy_bytes(a: &NpyArray) -> Vec<u8> {
    let (descr, body): (String, Vec<u8>) = match &a.data {
        NpyData::F64(v) => (
            "<f8".into(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        NpyData::F32(v) => (
            "<f4".into(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        NpyData::I64(v) => (
            "<i8".into(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        NpyData::Str(v) => {
            let n = v
                .iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut body = Vec::with_capacity(v.len() * n * 4);
            for s in v {
                let mut count = 0;
                for ch in s.chars() {
                    body.extend_from_slice(&(ch as u32).to_le_bytes());
                    count += 1;
                }
                body.resize(body.len() + (n - count) * 4, 0);
            }
            (format!("<U{n}"), body)
        }
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}",
        shape_str(&a.shape)
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    out
}

fn bad(path: &Path, reason: impl Into<String>) -> ExplainError {
    ExplainError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Parse `.npy` bytes (`path`/`name` only label errors).
pub fn parse_npy(bytes: &[u8], path: &Path, name: &str) -> Result<NpyArray> {
    let err = |r: &str| bad(path, format!("{name}: {r}"));
    let (header, body) = shap_io::npy::split(bytes).map_err(|e| err(&e.0))?;
    if header.fortran_order {
        return Err(err("Fortran order is not supported"));
    }
    let count = header.count().ok_or_else(|| err("shape overflows"))?;
    let (descr, shape) = (header.descr.as_str(), header.shape);
    let itemsize = match descr {
        "<f8" | "<i8" => 8,
        "<f4" => 4,
        d if d.starts_with("<U") => {
            let n: usize = d[2..].parse().map_err(|_| err("bad string dtype"))?;
            if n == 0 {
                return Err(err("zero-width string dtype"));
            }
            n.checked_mul(4).ok_or_else(|| err("bad string dtype"))?
        }
        d => return Err(err(&format!("unsupported dtype {d}"))),
    };
    let need = count
        .checked_mul(itemsize)
        .ok_or_else(|| err("size overflows"))?;
    if body.len() != need {
        return Err(err(&format!(
            "expected {need} data bytes, found {}",
            body.len()
        )));
    }
    let data = match descr {
        "<f8" => NpyData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes(arr8(c)))
                .collect(),
        ),
        "<i8" => NpyData::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes(arr8(c)))
                .collect(),
        ),
        "<f4" => NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes(arr4(c)))
                .collect(),
        ),
        _ => {
            let mut v = Vec::with_capacity(count);
            if itemsize > 0 {
                for item in body.chunks_exact(itemsize) {
                    let s: String = item
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes(arr4(c)))
                        .take_while(|&u| u != 0)
                        .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
                        .collect();
                    v.push(s);
                }
            } else {
                v.resize(count, String::new());
            }
            NpyData::Str(v)
        }
    };
    Ok(NpyArray { shape, data })
}

fn arr8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    a
}

fn arr4(c: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(c);
    a
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc ^ 0xFFFF_FFFF
}

/// Write a stored (uncompressed) zip of `name.npy` entries, loadable by `numpy.load`, with
/// the workspace's one output writer ([`shap_io::write_atomic`]: atomic for regular files).
pub fn write_npz(path: &Path, entries: &[(&str, NpyArray)]) -> Result<()> {
    let mut out: Vec<u8> = Vec::new();
    let mut central: Vec<u8> = Vec::new();
    let too_big = || bad(path, "npz entry larger than 4 GiB (zip64 is not supported)");
    for (name, arr) in entries {
        let data = npy_bytes(arr);
        let fname = format!("{name}.npy");
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let crc = crc32(&data);
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed
            buf.extend_from_slice(&0u16.to_le_bytes()); // flags
            buf.extend_from_slice(&0u16.to_le_bytes()); // stored
            buf.extend_from_slice(&0u16.to_le_bytes()); // time
            buf.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&(fname.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(fname.as_bytes());
        out.extend_from_slice(&data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk number
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(fname.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    let cd_size = u32::try_from(central.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(shap_io::write_bytes(path, &out)?)
}

fn rd16(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
}

fn rd32(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Largest `.npz` / `.npy` file read: an explanation of 100 images, all ten classes, is
/// about 7 MB; this bounds a device or an endless file.
pub const MAX_NPZ_BYTES: u64 = 512 * shap_io::MIB;

/// One entry of the zip central directory: its name and where its data lies.
struct Entry {
    name: String,
    /// Deflated (`np.savez_compressed`), with this many bytes once inflated; `None`: stored.
    inflated: Option<usize>,
    /// Byte range of the local header and data, for the overlap check.
    span: std::ops::Range<usize>,
    /// Byte range of the data.
    data: std::ops::Range<usize>,
}

/// Read every `*.npy` entry of a stored zip (`np.savez`, or [`write_npz`]) of at most
/// [`MAX_NPZ_BYTES`]; entry names are returned without the `.npy` suffix. Entries must not
/// overlap or repeat a name, and each is checked against its declared shape before its
/// elements are decoded, so decoding never costs more than the file's size.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let bytes = shap_io::read_bounded(path, MAX_NPZ_BYTES, "an explanation")?;
    let entries = zip_entries(&bytes, path)?;
    check_disjoint(&entries, path)?;
    let mut budget = MAX_NPZ_BYTES as usize;
    entries
        .into_iter()
        .map(|e| {
            let key = e.name.strip_suffix(".npy").unwrap_or(&e.name).to_string();
            let raw = &bytes[e.data];
            let array = match e.inflated {
                None => parse_npy(raw, path, &key)?,
                Some(size) => parse_npy(&inflate(raw, size, &mut budget, path, &key)?, path, &key)?,
            };
            Ok((key, array))
        })
        .collect()
}

/// Inflate one deflated entry of `size` declared bytes, within what is left of `budget`
/// (all entries together inflate to at most [`MAX_NPZ_BYTES`]): no more is ever produced
/// than the entry declares, and a size that disagrees is an error.
fn inflate(raw: &[u8], size: usize, budget: &mut usize, path: &Path, key: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    if size > *budget {
        return Err(bad(
            path,
            format!(
                "{key}: inflates past the limit of {} MiB",
                MAX_NPZ_BYTES >> 20
            ),
        ));
    }
    *budget -= size;
    let mut out = Vec::with_capacity(size.min(raw.len().saturating_mul(1032)));
    flate2::read::DeflateDecoder::new(raw)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(path, format!("{key}: corrupt deflate data ({e})")))?;
    if out.len() != size {
        return Err(bad(
            path,
            format!(
                "{key}: inflates to {} bytes, the archive says {size}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Refuse entries that share bytes or a name: each byte of the file is decoded at most once.
fn check_disjoint(entries: &[Entry], path: &Path) -> Result<()> {
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(path, format!("zip entry {} appears twice", w[0])));
    }
    let mut spans: Vec<(&std::ops::Range<usize>, &str)> =
        entries.iter().map(|e| (&e.span, e.name.as_str())).collect();
    spans.sort_unstable_by_key(|(r, _)| r.start);
    if let Some(w) = spans.windows(2).find(|w| w[1].0.start < w[0].0.end) {
        return Err(bad(
            path,
            format!("zip entries {} and {} overlap", w[0].1, w[1].1),
        ));
    }
    Ok(())
}

/// Walk the central directory of a stored zip.
fn zip_entries(bytes: &[u8], path: &Path) -> Result<Vec<Entry>> {
    let trunc = || bad(path, "truncated or malformed zip archive");
    let lo = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (lo..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| rd32(bytes, i) == Some(0x0605_4b50))
        .ok_or_else(|| {
            bad(
                path,
                "not a zip archive (no end-of-central-directory record)",
            )
        })?;
    let count = rd16(bytes, eocd + 10).ok_or_else(trunc)?;
    let mut at = rd32(bytes, eocd + 16).ok_or_else(trunc)?;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        if rd32(bytes, at) != Some(0x0201_4b50) {
            return Err(trunc());
        }
        let method = rd16(bytes, at + 10).ok_or_else(trunc)?;
        let csize = rd32(bytes, at + 20).ok_or_else(trunc)?;
        let usize_ = rd32(bytes, at + 24).ok_or_else(trunc)?;
        let nlen = rd16(bytes, at + 28).ok_or_else(trunc)?;
        let elen = rd16(bytes, at + 30).ok_or_else(trunc)?;
        let clen = rd16(bytes, at + 32).ok_or_else(trunc)?;
        let local = rd32(bytes, at + 42).ok_or_else(trunc)?;
        let name = bytes
            .get(at + 46..at + 46 + nlen)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .ok_or_else(trunc)?;
        at += 46 + nlen + elen + clen;
        let inflated = match method {
            0 if csize == usize_ => None,
            8 => Some(usize_),
            _ => {
                return Err(bad(
                    path,
                    format!("{name}: zip method {method} (only stored and deflate are read)"),
                ));
            }
        };
        if rd32(bytes, local) != Some(0x0403_4b50) {
            return Err(trunc());
        }
        let lnlen = rd16(bytes, local + 26).ok_or_else(trunc)?;
        let lelen = rd16(bytes, local + 28).ok_or_else(trunc)?;
        let start = local + 30 + lnlen + lelen;
        if bytes.len() < start + csize {
            return Err(trunc());
        }
        out.push(Entry {
            name,
            inflated,
            span: local..start + csize,
            data: start..start + csize,
        });
    }
    Ok(out)
}

impl NpyArray {
    /// The elements as f64 (from `<f8`, `<f4` or `<i8`); `None` for strings.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        match &self.data {
            NpyData::F64(v) => Some(v.clone()),
            NpyData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            NpyData::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
            NpyData::Str(_) => None,
        }
    }

    /// The elements as f32 (from `<f4`, or rounded from `<f8`); `None` otherwise.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            NpyData::F32(v) => Some(v.clone()),
            NpyData::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            _ => None,
        }
    }

    /// Read a single `.npy` file of at most [`MAX_NPZ_BYTES`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = shap_io::read_bounded(path, MAX_NPZ_BYTES, "an explanation")?;
        parse_npy(&bytes, path, "array")
    }

    /// Write a single `.npy` file (atomically, through [`shap_io::write_bytes`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        Ok(shap_io::write_bytes(path, &npy_bytes(self))?)
    }
}
