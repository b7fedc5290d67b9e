//! Typed `.npy` arrays for explanations, over shap-io's one `.npy` header parser and one
//! `.npz` reader and writer. Files written here (stored, uncompressed) load with
//! `numpy.load`; the reader accepts what `numpy.savez` and `numpy.savez_compressed` write for
//! the dtypes used here (`<f8`, `<f4`, `<i8`, `<U n`).

use std::path::Path;

use crate::{ExplainError, Result};

use shap_io::npy::NpyArray;

fn bad(path: &Path, reason: impl Into<String>) -> ExplainError {
    ExplainError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Parse `.npy` bytes with the workspace's one codec ([`shap_io::npy::decode`]); `path` and
/// `name` only label errors.
pub fn parse_npy(bytes: &[u8], path: &Path, name: &str) -> Result<NpyArray> {
    shap_io::npy::decode(bytes).map_err(|e| bad(path, format!("{name}: {e}")))
}

/// Write a stored zip of `name.npy` entries, loadable by `numpy.load`, with the workspace's
/// one output writer ([`shap_io::write_atomic`]: atomic for regular files) and its one `.npz`
/// writer ([`shap_io::npz::NpzWriter`]).
pub fn write_npz(path: &Path, entries: &[(&str, NpyArray)]) -> Result<()> {
    Ok(shap_io::write_atomic(path, |w| {
        let mut zip = shap_io::npz::NpzWriter::new(w);
        for (name, arr) in entries {
            zip.entry(name, |o| shap_io::npy::write_npy(arr, o))
                .map_err(|e| std::io::Error::new(e.kind(), format!("{name}: {e}")))?;
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

/// Read a single `.npy` file of at most [`MAX_NPZ_BYTES`].
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = shap_io::read_bounded(path, MAX_NPZ_BYTES, "an explanation")?;
    parse_npy(&bytes, path, "array")
}

/// Write a single `.npy` file (atomically, through [`shap_io::write_bytes`]).
pub fn write_npy(path: &Path, array: &NpyArray) -> Result<()> {
    let bytes = shap_io::npy::encode(array).map_err(|e| bad(path, e.0))?;
    Ok(shap_io::write_bytes(path, &bytes)?)
}
