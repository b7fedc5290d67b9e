//! Minimal `.npy` (NumPy format 1.0-3.0) reading and atomic writing: C-order, little-endian
//! `bool`, `uint8`, `float32`, `float64` and `int64` arrays. Enough for masks, images and test
//! fixtures; not a general NumPy reader.

use std::path::Path;

use crate::MaskError;

use shap_io::npy::MAGIC;

/// The element data of an array read from `.npy`.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `|b1`.
    Bool(Vec<bool>),
    /// `|u1`.
    U8(Vec<u8>),
    /// `<f4`.
    F32(Vec<f32>),
    /// `<f8`.
    F64(Vec<f64>),
    /// `<i8`.
    I64(Vec<i64>),
}

/// An array read from `.npy`: its shape and C-order data.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The values in C order.
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::Bool(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy dtype string (`"|b1"`, `"|u1"`, `"<f4"`, `"<f8"`, `"<i8"`).
    pub fn descr(&self) -> &'static str {
        match &self.data {
            NpyData::Bool(_) => "|b1",
            NpyData::U8(_) => "|u1",
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::I64(_) => "<i8",
        }
    }
}

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
    let (header, body) = shap_io::npy::split(bytes).map_err(|e| bad(path, e.0))?;
    if header.fortran_order {
        return Err(bad(path, "Fortran-order arrays are not supported"));
    }
    let count = header.count().ok_or_else(|| bad(path, "shape overflows"))?;
    let (descr, shape) = (header.descr.as_str(), header.shape);
    let item = match descr {
        "|b1" | "|u1" | "<u1" | "|i1" => 1,
        "<f4" => 4,
        "<f8" | "<i8" => 8,
        other => return Err(bad(path, format!("unsupported dtype {other:?}"))),
    };
    if count.checked_mul(item) != Some(body.len()) {
        return Err(bad(
            path,
            format!(
                "header claims {count} elements of {item} bytes but {} data bytes follow",
                body.len()
            ),
        ));
    }
    let data = match descr {
        "|b1" => NpyData::Bool(
            body.iter()
                .map(|&b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    v => Err(bad(path, format!("bool element with byte value {v}"))),
                })
                .collect::<Result<_, _>>()?,
        ),
        "|u1" | "<u1" => NpyData::U8(body.to_vec()),
        "|i1" => return Err(bad(path, "int8 arrays are not supported")),
        "<f4" => NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        "<f8" => NpyData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        _ => NpyData::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
    };
    Ok(NpyArray { shape, data })
}

/// Encode an array as `.npy` (format 1.0) bytes.
pub fn encode(array: &NpyArray) -> Result<Vec<u8>, MaskError> {
    let count = array
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(array.len()) {
        return Err(bad(
            Path::new("<npy>"),
            format!(
                "shape {:?} does not hold {} elements",
                array.shape,
                array.len()
            ),
        ));
    }
    let shape = match array.shape.as_slice() {
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        array.descr()
    );
    // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let hlen =
        u16::try_from(header.len()).map_err(|_| bad(Path::new("<npy>"), "header too long"))?;
    let mut out = Vec::with_capacity(header.len() + 10 + array.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &array.data {
        NpyData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    Ok(out)
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
