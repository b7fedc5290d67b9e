//! `.npy` files of masks and images: the workspace's one array codec
//! ([`shap_io::npy::encode`] / [`shap_io::npy::decode`]) with this crate's error, a size
//! bound on reading, and atomic writing.

use std::path::Path;

use crate::MaskError;

use shap_io::npy::{NpyArray, NpyData};

fn bad(path: &Path, reason: impl Into<String>) -> MaskError {
    MaskError::Npy {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Largest `.npy` file read (masks and images are a few KB; this bounds a device or an
/// endless file).
pub const MAX_NPY_BYTES: u64 = 256 * shap_io::MIB;

/// Read a `.npy` file of at most [`MAX_NPY_BYTES`].
pub fn read(path: &Path) -> Result<NpyArray, MaskError> {
    let bytes = shap_io::read_bounded(path, MAX_NPY_BYTES, "a .npy file")?;
    parse(&bytes, path)
}

/// Parse the bytes of a `.npy` file (`path` only names the source in errors). The header is
/// parsed strictly ([`shap_io::npy`]); the element count it claims must match the bytes
/// present exactly.
pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray, MaskError> {
    shap_io::npy::decode(bytes).map_err(|e| bad(path, e.0))
}

/// Encode an array as `.npy` (format 1.0) bytes.
pub fn encode(array: &NpyArray) -> Result<Vec<u8>, MaskError> {
    shap_io::npy::encode(array).map_err(|e| bad(Path::new("<npy>"), e.0))
}

/// Write `bytes` to `path` with the workspace's one output writer, [`shap_io::write_bytes`]
/// (temporary file + rename for regular files; devices, FIFOs and symlinks are never
/// replaced).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MaskError> {
    Ok(shap_io::write_bytes(path, bytes)?)
}

/// Write an array to a `.npy` file atomically.
pub fn write(path: &Path, array: &NpyArray) -> Result<(), MaskError> {
    let bytes = encode(array).map_err(|e| match e {
        MaskError::Npy { reason, .. } => bad(path, reason),
        other => other,
    })?;
    write_atomic(path, &bytes)
}

/// Write an f32 array of `shape` to a `.npy` file atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), MaskError> {
    write(
        path,
        &NpyArray {
            shape: shape.to_vec(),
            data: NpyData::F32(data.to_vec()),
        },
    )
}

/// Write a bool array of `shape` to a `.npy` file atomically.
pub fn write_bool(path: &Path, shape: &[usize], data: &[bool]) -> Result<(), MaskError> {
    write(
        path,
        &NpyArray {
            shape: shape.to_vec(),
            data: NpyData::Bool(data.to_vec()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parse_round_trip() -> Result<(), MaskError> {
        let cases = [
            NpyArray {
                shape: vec![2, 3],
                data: NpyData::F32(vec![0.0, 1.5, -2.0, 3.25, 1e-7, 7.0]),
            },
            NpyArray {
                shape: vec![4],
                data: NpyData::Bool(vec![true, false, false, true]),
            },
            NpyArray {
                shape: vec![1, 2, 1],
                data: NpyData::U8(vec![0, 255]),
            },
            NpyArray {
                shape: vec![],
                data: NpyData::F64(vec![0.25]),
            },
            NpyArray {
                shape: vec![2],
                data: NpyData::I64(vec![-3, 9]),
            },
        ];
        for a in cases {
            let bytes = encode(&a)?;
            let hl = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            assert_eq!((10 + hl) % 64, 0);
            assert_eq!(parse(&bytes, Path::new("x.npy"))?, a);
        }
        Ok(())
    }

    #[test]
    fn rejects_lying_headers_and_garbage() -> Result<(), MaskError> {
        let a = NpyArray {
            shape: vec![3],
            data: NpyData::F32(vec![1.0, 2.0, 3.0]),
        };
        let mut bytes = encode(&a)?;
        bytes.truncate(bytes.len() - 4);
        assert!(matches!(
            parse(&bytes, Path::new("t.npy")),
            Err(MaskError::Npy { .. })
        ));
        let huge = b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n";
        assert!(matches!(
            parse(huge, Path::new("h.npy")),
            Err(MaskError::Npy { .. })
        ));
        assert!(parse(b"hello world", Path::new("g.npy")).is_err());
        Ok(())
    }
}
