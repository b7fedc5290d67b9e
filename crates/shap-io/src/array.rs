//! The one `.npy` array codec of the workspace: typed C-order arrays of the dtypes masks,
//! images and explanations use (`|b1`, `|u1`, `<f4`, `<f8`, `<i8` and `<U n` strings),
//! encoded as NumPy 1.0 files and decoded strictly (the header through [`crate::header`]'s
//! parser, the data checked against the shape before any element is decoded). shap-mask
//! (masks, images) and shap-explain (explanations) both use it; `.npz` archives are
//! [`crate::npz`].
//!
//! Why not `npyz`? It would replace about 150 lines here, but our header parser is stricter
//! than the crates' (duplicate keys, nested values and trailing text refused, tested in
//! `tests/npy_header_props.rs`), the element count is checked against the bytes before
//! anything is allocated, and `<U n` needs only the UTF-32 loop below. Not a measured reason:
//! a choice to keep the strict checks in one place.

use crate::header::{HeaderError, header_bytes, split};

/// The elements of an array.
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
    /// `<U n` (UTF-32), one string per element.
    Str(Vec<String>),
}

/// An n-dimensional array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// Elements in C order.
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
            NpyData::Str(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy dtype string (`"|b1"`, `"<f4"`, `"<U7"`: strings as wide as the longest,
    /// at least 1).
    pub fn descr(&self) -> String {
        match &self.data {
            NpyData::Bool(_) => "|b1".into(),
            NpyData::U8(_) => "|u1".into(),
            NpyData::F32(_) => "<f4".into(),
            NpyData::F64(_) => "<f8".into(),
            NpyData::I64(_) => "<i8".into(),
            NpyData::Str(v) => format!("<U{}", str_width(v)),
        }
    }

    /// The elements as f64 (from `<f8`, `<f4` or `<i8`); `None` otherwise.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        match &self.data {
            NpyData::F64(v) => Some(v.clone()),
            NpyData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            NpyData::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
            _ => None,
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
}

/// Characters of the longest string (at least 1, as NumPy's `<U1` for empty strings).
fn str_width(v: &[String]) -> usize {
    v.iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(1)
}

fn err<T>(reason: impl Into<String>) -> Result<T, HeaderError> {
    Err(HeaderError(reason.into()))
}

/// Encode an array as `.npy` (format 1.0) bytes; a shape that does not hold the elements is
/// an error, and so is a buffer that cannot be allocated (never an abort).
pub fn encode(array: &NpyArray) -> Result<Vec<u8>, HeaderError> {
    let header = checked_header(array)?;
    let body = array.len().saturating_mul(body_item_size(array));
    let mut out = Vec::new();
    if out
        .try_reserve_exact(header.len().saturating_add(body))
        .is_err()
    {
        return err(format!(
            "cannot allocate {} bytes to encode the array",
            header.len().saturating_add(body)
        ));
    }
    out.extend_from_slice(&header);
    write_body(array, &mut out).map_err(|e| HeaderError(e.to_string()))?;
    Ok(out)
}

/// Write an array as `.npy` (format 1.0) to `w`, streaming: nothing the size of the array is
/// allocated. A shape that does not hold the elements is an error of kind `InvalidInput`.
pub fn write_npy(array: &NpyArray, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let header = checked_header(array)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.0))?;
    w.write_all(&header)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, w);
    write_body(array, &mut out)?;
    std::io::Write::flush(&mut out)
}

/// The header of `array`, once its shape is checked against its elements.
fn checked_header(array: &NpyArray) -> Result<Vec<u8>, HeaderError> {
    let count = array
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(array.len()) {
        return err(format!(
            "shape {:?} does not hold {} elements",
            array.shape,
            array.len()
        ));
    }
    Ok(header_bytes(&array.descr(), &array.shape))
}

/// Bytes per element of `array` as written.
fn body_item_size(array: &NpyArray) -> usize {
    match &array.data {
        NpyData::Bool(_) | NpyData::U8(_) => 1,
        NpyData::F32(_) => 4,
        NpyData::F64(_) | NpyData::I64(_) => 8,
        NpyData::Str(v) => str_width(v).saturating_mul(4),
    }
}

/// The elements of `array`, little-endian, strings padded to the widest.
fn write_body(array: &NpyArray, out: &mut impl std::io::Write) -> std::io::Result<()> {
    match &array.data {
        NpyData::Bool(v) => v.iter().try_for_each(|&b| out.write_all(&[u8::from(b)])),
        NpyData::U8(v) => out.write_all(v),
        NpyData::F32(v) => v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes())),
        NpyData::F64(v) => v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes())),
        NpyData::I64(v) => v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes())),
        NpyData::Str(v) => {
            let n = str_width(v);
            for s in v {
                let mut count = 0;
                for ch in s.chars() {
                    out.write_all(&(ch as u32).to_le_bytes())?;
                    count += 1;
                }
                for _ in count..n {
                    out.write_all(&[0; 4])?;
                }
            }
            Ok(())
        }
    }
}

/// Bytes per element of `descr`, for the dtypes read here.
fn item_size(descr: &str) -> Result<usize, HeaderError> {
    match descr {
        "|b1" | "|u1" | "<u1" => Ok(1),
        "<f4" => Ok(4),
        "<f8" | "<i8" => Ok(8),
        d if d.starts_with("<U") => match d[2..].parse::<usize>() {
            Ok(0) => err("zero-width string dtype"),
            Ok(n) => n.checked_mul(4).map_or_else(|| err("bad string dtype"), Ok),
            Err(_) => err("bad string dtype"),
        },
        d => err(format!("unsupported dtype {d}")),
    }
}

/// Decode `.npy` bytes: the header strictly, then a body of exactly the size the shape
/// claims, then the elements. Fortran order is refused, and so are bool bytes other than 0/1.
pub fn decode(bytes: &[u8]) -> Result<NpyArray, HeaderError> {
    let (header, body) = split(bytes)?;
    if header.fortran_order {
        return err("Fortran-order arrays are not supported");
    }
    let count = header
        .count()
        .ok_or_else(|| HeaderError("shape overflows".into()))?;
    let item = item_size(&header.descr)?;
    if count.checked_mul(item) != Some(body.len()) {
        return err(format!(
            "header claims {count} elements of {item} bytes but {} data bytes follow",
            body.len()
        ));
    }
    let data = match header.descr.as_str() {
        "|b1" => NpyData::Bool(
            body.iter()
                .map(|&b| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    v => err(format!("bool element with byte value {v}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        "|u1" | "<u1" => NpyData::U8(body.to_vec()),
        "<f4" => NpyData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes(arr(c)))
                .collect(),
        ),
        "<f8" => NpyData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_le_bytes(arr(c)))
                .collect(),
        ),
        "<i8" => NpyData::I64(
            body.chunks_exact(8)
                .map(|c| i64::from_le_bytes(arr(c)))
                .collect(),
        ),
        _ => NpyData::Str(body.chunks_exact(item).map(utf32).collect()),
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

/// The first `N` bytes of `c` (callers pass chunks of exactly `N`).
fn arr<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&c[..N]);
    a
}

/// One UTF-32 string, up to its first NUL; invalid code points become U+FFFD.
fn utf32(item: &[u8]) -> String {
    item.chunks_exact(4)
        .map(|c| u32::from_le_bytes(arr(c)))
        .take_while(|&u| u != 0)
        .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
        .collect()
}
