//! Typed `.npy` arrays for explanations, over shap-io's one `.npy` header parser and one
//! `.npz` reader and writer. Files written here (stored, uncompressed) load with
//! `numpy.load`; the reader accepts what `numpy.savez` and `numpy.savez_compressed` write for
//! the dtypes used here (`<f8`, `<f4`, `<i8`, `<U n`).

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
    let mut out = shap_io::npy::header_bytes(&descr, &a.shape);
    out.reserve(body.len());
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

/// Write a stored zip of `name.npy` entries, loadable by `numpy.load`, with the workspace's
/// one output writer ([`shap_io::write_atomic`]: atomic for regular files) and its one `.npz`
/// writer ([`shap_io::npz::NpzWriter`]).
pub fn write_npz(path: &Path, entries: &[(&str, NpyArray)]) -> Result<()> {
    Ok(shap_io::write_atomic(path, |w| {
        let mut zip = shap_io::npz::NpzWriter::new(w);
        for (name, arr) in entries {
            zip.entry(name, |o| o.write_all(&npy_bytes(arr)))?;
        }
        zip.finish().map(|_| ())
    })?)
}

/// Largest `.npz` / `.npy` file read whole: an explanation of 100 images, all ten classes,
/// is about 7 MB; this bounds a device or an endless file. Larger explanations are joined
/// and copied array by array ([`crate::join_npz`]), never read whole.
pub const MAX_NPZ_BYTES: u64 = 512 * shap_io::MIB;

/// Read every `*.npy` entry of an `.npz` (`np.savez`, `np.savez_compressed`, or
/// [`write_npz`]) through [`shap_io::npz::NpzReader`]: entries must not overlap or repeat a
/// name, all of them together may inflate to at most [`MAX_NPZ_BYTES`], and each is checked
/// against its declared size and CRC-32 and then its declared shape before its elements are
/// decoded. Entry names are returned without the `.npy` suffix.
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    let zip = shap_io::npz::NpzReader::open(path, MAX_NPZ_BYTES)?;
    let mut budget = MAX_NPZ_BYTES;
    zip.names()
        .into_iter()
        .map(|key| {
            let bytes = zip.read_entry(key, budget)?;
            budget -= bytes.len() as u64;
            Ok((key.to_string(), parse_npy(&bytes, path, key)?))
        })
        .collect()
}

/// One array of an `.npz`, read alone (at most [`MAX_NPZ_BYTES`]).
pub fn read_array(path: &Path, name: &str) -> Result<NpyArray> {
    let zip = shap_io::npz::NpzReader::open(path, MAX_NPZ_BYTES)?;
    parse_npy(&zip.read_entry(name, MAX_NPZ_BYTES)?, path, name)
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
