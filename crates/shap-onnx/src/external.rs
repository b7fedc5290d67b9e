//! ONNX external data: tensors whose bytes live in a file beside the model (what
//! `torch.onnx.export` writes by default, `model.onnx.data`). docs/onnx-engines.md, "External
//! data", lists the rules; in short, a location is accepted only when it is a relative path
//! that stays inside the model's own folder (symbolic links resolved) and names a regular
//! file, and the offset and length fit inside that file and match the tensor's declared size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use tract_onnx::pb::{GraphProto, ModelProto, TensorProto, tensor_proto};

use crate::OnnxError;

/// The most external data one model may declare, all tensors together.
pub const MAX_EXTERNAL_BYTES: u64 = 4 << 30;

/// One tensor's external bytes, checked: the file (canonical), where they start and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extent {
    pub file: PathBuf,
    pub offset: u64,
    pub length: u64,
}

/// Visit every tensor of the graph that may hold data (initialisers and tensor attributes,
/// subgraphs included).
fn for_each_tensor<E>(
    g: &mut GraphProto,
    f: &mut impl FnMut(&mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    for t in &mut g.initializer {
        f(t)?;
    }
    for node in &mut g.node {
        for a in &mut node.attribute {
            if let Some(t) = a.t.as_mut() {
                f(t)?;
            }
            for t in &mut a.tensors {
                f(t)?;
            }
            if let Some(sub) = a.g.as_mut() {
                for_each_tensor(sub, f)?;
            }
            for sub in &mut a.graphs {
                for_each_tensor(sub, f)?;
            }
        }
    }
    Ok(())
}

fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(tensor_proto::DataLocation::External as i32)
}

/// Check every external reference of `model` (loaded from `path`) and return the total bytes
/// they declare and the files they are in (each once, in first-use order). Nothing is read
/// but the files' metadata.
pub(crate) fn check(model: &mut ModelProto, path: &Path) -> Result<(u64, Vec<PathBuf>), OnnxError> {
    let mut total = 0u64;
    let mut files: Vec<PathBuf> = Vec::new();
    let Some(graph) = model.graph.as_mut() else {
        return Ok((0, files));
    };
    for_each_tensor(graph, &mut |t| {
        if is_external(t) {
            let e = extent(t, path)?;
            total = total.saturating_add(e.length);
            if !files.contains(&e.file) {
                files.push(e.file);
            }
        }
        Ok(())
    })?;
    if total > MAX_EXTERNAL_BYTES {
        return Err(refused(
            path,
            "(all)",
            format!(
                "the external data adds up to {total} bytes, more than the {MAX_EXTERNAL_BYTES}-byte limit"
            ),
        ));
    }
    Ok((total, files))
}

/// Read every external tensor's bytes into the model, so that it no longer refers to any
/// file. Call [`check`] first (this checks again, as the files may have changed).
pub(crate) fn inline(model: &mut ModelProto, path: &Path) -> Result<(), OnnxError> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(());
    };
    for_each_tensor(graph, &mut |t| {
        if is_external(t) {
            let e = extent(t, path)?;
            t.raw_data = read_extent(&e).map_err(|reason| refused(path, &t.name, reason))?;
            t.external_data.clear();
            t.data_location = Some(tensor_proto::DataLocation::Default as i32);
        }
        Ok(())
    })
}

fn refused(path: &Path, tensor: &str, reason: String) -> OnnxError {
    OnnxError::External {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        reason,
    }
}

/// The checked extent of external tensor `t` of the model at `path`.
fn extent(t: &TensorProto, path: &Path) -> Result<Extent, OnnxError> {
    let fail = |reason: String| refused(path, &t.name, reason);
    let get = |key: &str| {
        t.external_data
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_str())
    };
    let location = get("location").ok_or_else(|| fail("no location is given".into()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let file = resolve(dir, location).map_err(fail)?;
    let size = std::fs::metadata(&file)
        .map_err(|e| fail(format!("{location}: {e}")))?
        .len();
    let number = |key: &str| -> Result<Option<u64>, OnnxError> {
        get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| fail(format!("its {key} {v:?} is not a byte count")))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    if offset > size {
        return Err(fail(format!(
            "{location}: offset {offset} is past the end of the file ({size} bytes)"
        )));
    }
    let length = number("length")?.unwrap_or(size - offset);
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(fail(format!(
            "{location}: {length} bytes from offset {offset} pass the end of the file ({size} bytes)"
        )));
    }
    if let Some(want) = declared_bytes(t)
        && want != length
    {
        return Err(fail(format!(
            "{location}: {length} bytes for a tensor of {want} bytes (dims {:?})",
            t.dims
        )));
    }
    Ok(Extent {
        file,
        offset,
        length,
    })
}

/// The bytes a tensor of `t`'s dims and type takes, when its type has a fixed width.
fn declared_bytes(t: &TensorProto) -> Option<u64> {
    use tensor_proto::DataType as D;
    let width: u64 = match D::try_from(t.data_type).ok()? {
        D::Float | D::Int32 | D::Uint32 => 4,
        D::Double | D::Int64 | D::Uint64 | D::Complex64 => 8,
        D::Complex128 => 16,
        D::Float16 | D::Bfloat16 | D::Int16 | D::Uint16 => 2,
        D::Int8 | D::Uint8 | D::Bool => 1,
        _ => return None,
    };
    t.dims.iter().try_fold(width, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}

/// `location` inside `dir`: a relative path of plain names, whose real path (links resolved)
/// stays inside the real `dir` and is a regular file.
pub(crate) fn resolve(dir: &Path, location: &str) -> Result<PathBuf, String> {
    let rel = Path::new(location);
    if location.is_empty() {
        return Err("its location is empty".into());
    }
    if location.contains('\0') {
        return Err("its location holds a NUL byte".into());
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "location {location:?} leaves the model's folder (..): only files inside it are read"
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "location {location:?} is absolute: only relative locations inside the model's folder are read"
                ));
            }
        }
    }
    let real_dir = dir
        .canonicalize()
        .map_err(|e| format!("the model's folder {}: {e}", dir.display()))?;
    let real = dir
        .join(rel)
        .canonicalize()
        .map_err(|e| format!("{location}: {e}"))?;
    if !real.starts_with(&real_dir) {
        return Err(format!(
            "location {location:?} is a link to {}, outside the model's folder",
            real.display()
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("{location}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{location} is not a regular file (a folder, device or FIFO is never read)"
        ));
    }
    Ok(real)
}

/// Read an extent's bytes, checking that the file is still a regular file of at least that
/// size; the buffer is reserved fallibly.
fn read_extent(e: &Extent) -> Result<Vec<u8>, String> {
    let what = e.file.display();
    let mut f = open_no_block(&e.file).map_err(|err| format!("{what}: {err}"))?;
    let meta = f.metadata().map_err(|err| format!("{what}: {err}"))?;
    if !meta.is_file() || meta.len() < e.offset.saturating_add(e.length) {
        return Err(format!("{what} changed while the model was read"));
    }
    let len = usize::try_from(e.length).map_err(|_| format!("{what}: too large"))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| format!("{what}: cannot allocate {len} bytes for its data"))?;
    f.seek(SeekFrom::Start(e.offset))
        .map_err(|err| format!("{what}: {err}"))?;
    f.take(e.length)
        .read_to_end(&mut buf)
        .map_err(|err| format!("{what}: {err}"))?;
    if buf.len() != len {
        return Err(format!("{what} ended early"));
    }
    Ok(buf)
}

/// Open for reading without blocking on a FIFO swapped in after the checks.
fn open_no_block(path: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: only FIFOs and devices care, and those are refused after the open.
        const O_NONBLOCK: i32 = 0o4000;
        o.custom_flags(O_NONBLOCK);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_outside_the_folder_are_refused() {
        let dir = std::env::temp_dir().join(format!("shap-onnx-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("w.bin"), [0u8; 8]).expect("write");
        assert!(resolve(&dir, "w.bin").is_ok());
        assert!(resolve(&dir, "./w.bin").is_ok());
        for bad in [
            "../w.bin",
            "/etc/passwd",
            "",
            "sub/../../w.bin",
            "missing.bin",
            ".",
        ] {
            assert!(resolve(&dir, bad).is_err(), "{bad:?} accepted");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn declared_sizes_follow_dims_and_type() {
        let t = TensorProto {
            dims: vec![2, 3],
            data_type: tensor_proto::DataType::Float as i32,
            ..TensorProto::default()
        };
        assert_eq!(declared_bytes(&t), Some(24));
        let neg = TensorProto {
            dims: vec![-1],
            ..t.clone()
        };
        assert_eq!(declared_bytes(&neg), None);
    }
}
