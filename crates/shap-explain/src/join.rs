//! Explanation files joined array by array, so that the memory a join needs does not grow
//! with the number of images: the parts' headers are read first and checked against each
//! other, then each array of the result is written by copying the parts' data after one
//! header (`docs/outputs-and-explanations.md#chunks-and-resuming`).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use shap_io::npy::{NpyHeader, header_bytes, read_header};
use shap_io::npz::{NpzReader, NpzWriter};

use crate::npz::{MAX_NPZ_BYTES, read_array};
use crate::{ExplainError, Result, Settings};
use shap_io::npy::NpyData;

/// Arrays that describe the whole run, not one image each: the first part's `algorithm` and
/// the settings given to [`join_npz`].
const RUN_ARRAYS: [&str; 3] = ["algorithm", "setting_names", "setting_values"];

/// Float arrays that must hold finite numbers only (`probability` is NaN when unknown).
const FINITE: [&str; 4] = ["values", "base_values", "fx", "data"];

/// Timings that files of earlier versions saved: measurements, not results, so never joined
/// (the result's bytes must not depend on how a run was split or interrupted).
const TIMINGS: [&str; 2] = ["image_times", "stats"];

/// The arrays of a part that are joined.
fn joined_names(zip: &NpzReader) -> Vec<&str> {
    zip.names()
        .into_iter()
        .filter(|n| !TIMINGS.contains(n))
        .collect()
}

/// How one per-image array of the result is made from the parts.
struct Plan {
    name: String,
    descr: String,
    /// The result's shape (images first).
    shape: Vec<usize>,
}

fn bad(path: &Path, reason: impl Into<String>) -> ExplainError {
    ExplainError::BadFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Join explanation files written by [`crate::Explanation::save_npz`] (or by this function)
/// into `out`, one after the other, with `settings` as the result's settings: the bytes equal
/// what `save_npz` writes for the concatenated explanation, but no part is ever held whole in
/// memory. Every part must hold the same arrays with the same types and image shape. Returns
/// the number of images.
pub fn join_npz(parts: &[PathBuf], settings: &Settings, out: &Path) -> Result<usize> {
    let Some(first) = parts.first() else {
        return Err(ExplainError::EmptyBatch);
    };
    let names: Vec<String> = {
        let zip = NpzReader::open(first, MAX_NPZ_BYTES)?;
        joined_names(&zip).into_iter().map(str::to_string).collect()
    };
    let plans = plan(parts, &names)?;
    let images = plans
        .iter()
        .find(|p| p.name == "values")
        .map_or(0, |p| p.shape[0]);
    let algorithm = NpzReader::open(first, MAX_NPZ_BYTES)?.read_entry("algorithm", 1 << 20)?;
    // A part that fails while it is copied is named first, not as an error on `out`.
    let mut broken: Option<(PathBuf, String)> = None;
    let written = shap_io::write_atomic(out, |w| {
        let mut zip = NpzWriter::new(w);
        for name in &names {
            match name.as_str() {
                "algorithm" => zip.entry(name, |o| o.write_all(&algorithm))?,
                "setting_names" => {
                    zip.entry(name, |o| write_strs(o, settings.iter().map(|s| &s.name)))?
                }
                "setting_values" => {
                    zip.entry(name, |o| write_strs(o, settings.iter().map(|s| &s.value)))?
                }
                _ => {
                    let p = plans.iter().find(|p| &p.name == name).ok_or_else(|| {
                        io::Error::other(format!("internal: no plan for array '{name}'"))
                    })?;
                    zip.entry(name, |o| copy_parts(o, parts, p, &mut broken))?;
                }
            }
        }
        zip.finish().map(|_| ())
    });
    match (written, broken) {
        (Err(_), Some((path, reason))) => Err(bad(&path, reason)),
        (written, _) => Ok(written.map(|()| images)?),
    }
}

/// Check that every part holds `names` with agreeing headers, and plan each per-image array.
fn plan(parts: &[PathBuf], names: &[String]) -> Result<Vec<Plan>> {
    let mut plans: Vec<Plan> = Vec::new();
    for path in parts {
        let zip = NpzReader::open(path, MAX_NPZ_BYTES)?;
        let mut theirs: Vec<&str> = joined_names(&zip);
        let mut ours: Vec<&str> = names.iter().map(String::as_str).collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        if theirs != ours {
            return Err(bad(
                path,
                format!("holds the arrays {theirs:?}; the first part holds {ours:?}"),
            ));
        }
        for name in names.iter().filter(|n| !RUN_ARRAYS.contains(&n.as_str())) {
            let h = header_of(&zip, name)?;
            add(&mut plans, name, h).map_err(|r| bad(path, format!("'{name}': {r}")))?;
        }
    }
    Ok(plans)
}

/// Fold one part's header of array `name` into its plan.
fn add(plans: &mut Vec<Plan>, name: &str, h: NpyHeader) -> std::result::Result<(), String> {
    if h.fortran_order || h.shape.is_empty() {
        return Err("must be a C-order array of at least one dimension".into());
    }
    let Some(p) = plans.iter_mut().find(|p| p.name == name) else {
        plans.push(Plan {
            name: name.to_string(),
            descr: h.descr,
            shape: h.shape,
        });
        return Ok(());
    };
    let width = |d: &str| d.strip_prefix("<U").and_then(|w| w.parse::<usize>().ok());
    match (width(&p.descr), width(&h.descr)) {
        (Some(a), Some(b)) => p.descr = format!("<U{}", a.max(b)),
        _ if p.descr == h.descr => {}
        _ => {
            return Err(format!(
                "type {} here, {} in the first part",
                h.descr, p.descr
            ));
        }
    }
    if p.shape[1..] != h.shape[1..] {
        return Err(format!(
            "shape {:?} here, {:?} in the first part",
            h.shape, p.shape
        ));
    }
    p.shape[0] += h.shape[0];
    Ok(())
}

fn header_of(zip: &NpzReader, name: &str) -> Result<NpyHeader> {
    let mut r = zip.open_entry(name)?;
    read_header(&mut r).map_err(|e| bad(zip.path(), format!("'{name}': {e}")))
}

/// Every part's data of one array after the result's header; string arrays are padded to
/// the result's width. A part that cannot be read is recorded in `broken`.
fn copy_parts(
    o: &mut dyn Write,
    parts: &[PathBuf],
    p: &Plan,
    broken: &mut Option<(PathBuf, String)>,
) -> io::Result<()> {
    o.write_all(&header_bytes(&p.descr, &p.shape))?;
    let width = p
        .descr
        .strip_prefix("<U")
        .and_then(|w| w.parse::<usize>().ok());
    for path in parts {
        let mut failed = false;
        copy_part(o, path, p, width, &mut failed).map_err(|e| {
            if failed {
                *broken = Some((path.clone(), e.to_string()));
            }
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// A part's array as it is read, remembering whether reading failed (the part's fault, not
/// the output's).
struct Marked<'a, R> {
    inner: R,
    failed: &'a mut bool,
}

impl<R: Read> Read for Marked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| *self.failed = true)
    }
}

/// One part's data of one array (see [`copy_parts`]); `failed` says whether an error came
/// from reading the part.
fn copy_part(
    o: &mut dyn Write,
    path: &Path,
    p: &Plan,
    width: Option<usize>,
    failed: &mut bool,
) -> io::Result<()> {
    let zip = NpzReader::open(path, MAX_NPZ_BYTES).map_err(|e| {
        *failed = true;
        io::Error::other(e)
    })?;
    let entry = zip.open_entry(&p.name).map_err(|e| {
        *failed = true;
        io::Error::other(e)
    })?;
    let mut r = Marked {
        inner: entry,
        failed,
    };
    let h = read_header(&mut r).map_err(|e| {
        *r.failed = true;
        io::Error::other(e)
    })?;
    let item = match h.descr.as_str() {
        "<f8" => Some(8),
        "<f4" => Some(4),
        _ => None,
    };
    match (width, item) {
        (None, Some(item)) if FINITE.contains(&p.name.as_str()) => {
            copy_finite(&mut r, o, item, &p.name)?;
        }
        (None, _) => {
            io::copy(&mut r, o)?;
        }
        (Some(w), _) => {
            let theirs = h
                .descr
                .strip_prefix("<U")
                .and_then(|w| w.parse::<usize>().ok());
            repad(&mut r, o, theirs.unwrap_or(w), w)?;
        }
    }
    // Read to the end, so that the size and CRC checks run.
    io::copy(&mut r, &mut io::sink())?;
    Ok(())
}

/// Copy little-endian floats of `item` bytes, refusing NaN and infinities (the error counts as
/// the part's: `r` marks it).
fn copy_finite<R: Read>(
    r: &mut Marked<'_, R>,
    o: &mut dyn Write,
    item: usize,
    name: &str,
) -> io::Result<()> {
    let mut buf = vec![0u8; item * 8192];
    loop {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let finite = |b: &[u8]| match b.len() {
            8 => b
                .try_into()
                .is_ok_and(|a| f64::from_le_bytes(a).is_finite()),
            _ => b
                .try_into()
                .is_ok_and(|a| f32::from_le_bytes(a).is_finite()),
        };
        if let Some(i) = buf[..n - n % item]
            .chunks_exact(item)
            .position(|b| !finite(b))
        {
            *r.failed = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("'{name}' holds a NaN or infinite value (entry {i} of a block)"),
            ));
        }
        o.write_all(&buf[..n])?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Copy UTF-32 strings of `from` characters as strings of `to >= from` characters.
fn repad(r: &mut dyn Read, o: &mut dyn Write, from: usize, to: usize) -> io::Result<()> {
    let mut item = vec![0u8; from * 4];
    let pad = vec![0u8; (to - from) * 4];
    loop {
        match r.read_exact(&mut item) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        o.write_all(&item)?;
        o.write_all(&pad)?;
    }
}

fn write_strs<'a>(
    o: &mut dyn Write,
    v: impl Iterator<Item = &'a String> + Clone,
) -> io::Result<()> {
    let n = v.clone().count();
    let width = v
        .clone()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    o.write_all(&header_bytes(&format!("<U{width}"), &[n]))?;
    for s in v {
        let mut count = 0;
        for ch in s.chars() {
            o.write_all(&(ch as u32).to_le_bytes())?;
            count += 1;
        }
        o.write_all(&vec![0u8; (width - count) * 4])?;
    }
    Ok(())
}

/// The settings and number of images of an explanation file, read without its values.
pub fn npz_settings(path: &Path) -> Result<(Settings, usize)> {
    let zip = NpzReader::open(path, MAX_NPZ_BYTES)?;
    let images = header_of(&zip, "values")?
        .shape
        .first()
        .copied()
        .ok_or_else(|| bad(path, "'values' has no dimensions"))?;
    if !zip.has("setting_names") {
        return Ok((Settings::new(), images));
    }
    let strs = |name: &str| -> Result<Vec<String>> {
        match read_array(path, name)?.data {
            NpyData::Str(v) => Ok(v),
            _ => Err(bad(path, format!("'{name}' must be a string array"))),
        }
    };
    let (names, values) = (strs("setting_names")?, strs("setting_values")?);
    if names.len() != values.len() {
        return Err(bad(
            path,
            "'setting_names' and 'setting_values' differ in length",
        ));
    }
    Ok((names.into_iter().zip(values).collect(), images))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Explanation, ImageShape};

    /// One image of 2x2x1 pixels explaining one class.
    fn one(v: f64) -> Explanation {
        Explanation {
            algorithm: Algorithm::Partition,
            shape: ImageShape::new(2, 2, 1),
            num_images: 1,
            num_outputs: 1,
            values: vec![v, 1.0, 2.0, 3.0],
            base_values: vec![0.0],
            output_indices: vec![0],
            output_names: vec![vec!["a".into()]],
            data: vec![0.5; 4],
            fx: vec![6.0],
            std_errors: None,
            evals: vec![4],
            efficiency_errors: vec![0.0],
            image_times: vec![],
            stats: Default::default(),
            images: vec![],
            settings: Settings::new(),
        }
    }

    #[test]
    fn parts_with_nan_or_infinite_values_are_refused()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("shap-join-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let good = dir.join("good.npz");
        one(0.0).save_npz(&good)?;
        let out = dir.join("out.npz");
        assert_eq!(
            join_npz(&[good.clone(), good.clone()], &Settings::new(), &out)?,
            2
        );
        for bad_value in [f64::NAN, f64::INFINITY] {
            let bad_part = dir.join("bad.npz");
            one(bad_value).save_npz(&bad_part)?;
            let _ = std::fs::remove_file(&out);
            let e =
                join_npz(&[good.clone(), bad_part.clone()], &Settings::new(), &out).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("bad.npz"), "{text}");
            assert!(!out.exists(), "{bad_value}: the output was written");
            // Nor does the reader take such a file.
            let e = Explanation::load_npz(&bad_part).unwrap_err();
            assert!(e.to_string().contains("finite") || format!("{e:?}").contains("finite"));
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
