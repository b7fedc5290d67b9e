//! safetensors checkpoints in candle-nn names and layouts.
//!
//! | tensor         | shape             | layout                                   |
//! |----------------|-------------------|------------------------------------------|
//! | `conv1.weight` | `[32, 1, 3, 3]`   | `[out, in, kh, kw]`                      |
//! | `conv1.bias`   | `[32]`            |                                          |
//! | `conv2.weight` | `[16, 32, 3, 3]`  | `[out, in, kh, kw]`                      |
//! | `conv2.bias`   | `[16]`            |                                          |
//! | `fc.weight`    | `[10, 12544]`     | `[out, in]`, inputs flattened (C, H, W)  |
//! | `fc.bias`      | `[10]`            |                                          |
//!
//! All tensors are little-endian F32. The safetensors metadata holds `format`
//! (`shap-model/1`), `head` (`softmax` / `logits`), `preset`, `seed` and `epochs`; files
//! without metadata (converted from other frameworks) load with a softmax head.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;

use crate::Error;
use crate::model::{Cnn, Params, TENSORS};
pub use shap_records::CheckpointMeta;

/// Format tag written in the metadata.
pub const FORMAT: &str = "shap-model/1";

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The network, with the head from the metadata.
    pub cnn: Cnn,
    /// The metadata.
    pub meta: CheckpointMeta,
}

/// Serialise `cnn` with `meta` to safetensors bytes.
pub fn to_bytes(cnn: &Cnn, meta: &CheckpointMeta) -> Result<Vec<u8>, Error> {
    let w = cnn.cpu_weights()?;
    let bytes: Vec<Vec<u8>> = w
        .params
        .as_array()
        .iter()
        .map(|t| t.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = TENSORS.iter().zip(&bytes).map(|((name, shape), data)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), data)
                .expect("a Cnn's tensors have the shapes of TENSORS, 4 bytes per F32 value");
        (*name, view)
    });
    let mut info = HashMap::new();
    info.insert("format".to_string(), FORMAT.to_string());
    info.insert("head".to_string(), meta.head.as_str().to_string());
    info.insert("preset".to_string(), meta.preset.clone());
    info.insert("seed".to_string(), meta.seed.to_string());
    info.insert("epochs".to_string(), meta.epochs.to_string());
    Ok(safetensors::serialize(views, Some(info)).expect(
        "six valid F32 tensor views with distinct names and string metadata always serialise",
    ))
}

/// Write `cnn` to `path` atomically: the bytes go to a temporary file in the same directory,
/// which is flushed and then renamed over `path`.
pub fn save(cnn: &Cnn, meta: &CheckpointMeta, path: &Path) -> Result<(), Error> {
    let bytes = to_bytes(cnn, meta)?;
    // The workspace's one output writer (devices, FIFOs and symlinks are never replaced).
    Ok(shap_io::write_bytes(path, &bytes)?)
}

/// Largest checkpoint file read: the tutorial CNN's is about 0.5 MB, so anything near this is
/// not one of ours, and a device such as `/dev/zero` fails fast.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 * shap_io::MIB;

/// Load a checkpoint onto `device`.
///
/// Every tensor of [`TENSORS`] must be present with its exact shape and dtype F32, and no
/// other tensor may be present; errors name the tensor and both shapes.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint, Error> {
    let bytes = shap_io::read_bounded(path, MAX_CHECKPOINT_BYTES, "a checkpoint")?;
    from_bytes(&bytes, path, device)
}

fn parse_meta(path: &Path, m: Option<&HashMap<String, String>>) -> Result<CheckpointMeta, Error> {
    let mut meta = CheckpointMeta::default();
    let Some(m) = m else { return Ok(meta) };
    let bad = |key: &str, v: &str| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("bad metadata {key}={v:?}"),
    };
    if let Some(h) = m.get("head") {
        meta.head = h.parse().map_err(|_| bad("head", h))?;
    }
    if let Some(p) = m.get("preset") {
        meta.preset = p.clone();
    }
    if let Some(s) = m.get("seed") {
        meta.seed = s.parse().map_err(|_| bad("seed", s))?;
    }
    if let Some(e) = m.get("epochs") {
        meta.epochs = e.parse().map_err(|_| bad("epochs", e))?;
    }
    Ok(meta)
}

/// Parse checkpoint `bytes` (`path` is used in error messages only).
pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Checkpoint, Error> {
    let invalid = |source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(invalid)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let meta = parse_meta(path, header.metadata().as_ref())?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in &names {
        if !TENSORS.iter().any(|(n, _)| n == name) {
            let found = st
                .tensor(name)
                .map(|t| t.shape().to_vec())
                .unwrap_or_default();
            return Err(Error::ExtraTensor {
                path: path.to_path_buf(),
                name: name.clone(),
                found,
            });
        }
    }
    let mut tensors: [Vec<f32>; 6] = Default::default();
    for ((name, shape), slot) in TENSORS.iter().zip(tensors.iter_mut()) {
        let t = st.tensor(name).map_err(|_| Error::MissingTensor {
            path: path.to_path_buf(),
            name: (*name).to_string(),
            expected: shape.to_vec(),
        })?;
        if t.shape() != *shape || t.dtype() != safetensors::Dtype::F32 {
            return Err(Error::TensorMismatch {
                path: path.to_path_buf(),
                name: (*name).to_string(),
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
                dtype: format!("{:?}", t.dtype()),
            });
        }
        *slot = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if slot.iter().any(|v| !v.is_finite()) {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                msg: format!("tensor {name} holds NaN or infinite values"),
            });
        }
    }
    let cnn = Cnn::from_host(Params::from_array(tensors), meta.head, device)?;
    Ok(Checkpoint { cnn, meta })
}
