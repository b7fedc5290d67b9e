//! ONNX external data (weights in a file beside the model, as `torch.onnx.export` writes
//! them): a model rewritten with external data gives the same outputs as the original on
//! every engine, and locations outside the model's folder, non-regular files and extents that
//! do not fit are refused, naming the tensor and the reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use prost::Message;
use shap_explain::{BatchModel, Normalize};
use shap_onnx::{OnnxError, OnnxFile, TractClassifier};
use tract_onnx::pb::{ModelProto, StringStringEntryProto, tensor_proto};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shap-onnx-ext-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.into(),
        value: value.into(),
    }
}

/// Rewrite the RGB fixture with every initialiser's bytes in `dir/data_name` (4096-aligned
/// offsets, as onnx's converter writes them); `edit` may change each tensor's entries.
/// Returns the model's path.
fn externalise(
    dir: &Path,
    data_name: &str,
    edit: impl Fn(&mut Vec<StringStringEntryProto>),
) -> PathBuf {
    let bytes = std::fs::read(common::fixture("rgb_nchw.onnx")).unwrap();
    let mut proto = ModelProto::decode(&bytes[..]).unwrap();
    let mut data = Vec::new();
    for t in &mut proto.graph.as_mut().unwrap().initializer {
        assert!(!t.raw_data.is_empty(), "fixture tensors use raw_data");
        data.resize(data.len().div_ceil(4096) * 4096, 0u8);
        let offset = data.len();
        data.extend_from_slice(&t.raw_data);
        t.external_data = vec![
            entry("location", data_name),
            entry("offset", &offset.to_string()),
            entry("length", &t.raw_data.len().to_string()),
        ];
        edit(&mut t.external_data);
        t.raw_data.clear();
        t.data_location = Some(tensor_proto::DataLocation::External as i32);
    }
    let path = dir.join("model.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    if !data_name.is_empty() && !data_name.starts_with('/') && !data_name.contains("..") {
        std::fs::write(dir.join(data_name), data).unwrap();
    }
    path
}

/// Outputs of `model` on a few deterministic images.
fn outputs(model: &dyn BatchModel, shape: shap_explain::ImageShape) -> Vec<f32> {
    let n = 3;
    let x: Vec<f32> = (0..n * shape.features())
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    let mut out = vec![0.0; n * model.num_outputs()];
    model.eval_batch(&x, n, shape, &mut out).unwrap();
    out
}

#[test]
fn a_model_with_external_data_equals_the_original_on_every_engine() {
    let dir = folder("same");
    let path = externalise(&dir, "model.onnx.data", |_| {});
    let file = OnnxFile::open(&path).unwrap();
    assert!(file.has_external_data());
    assert!(file.external_bytes() > 0);
    let norm = || Some(Normalize::new(3, 1.0, &MEAN, &STD).unwrap());
    let original = common::on_every_engine(&common::fixture("rgb_nchw.onnx"), norm());
    let external = common::on_every_engine(&path, norm());
    assert_eq!(original.len(), external.len());
    for (a, b) in original.iter().zip(&external) {
        let (ya, yb) = (
            outputs(a.model.as_ref(), a.shape),
            outputs(b.model.as_ref(), b.shape),
        );
        assert_eq!(ya, yb, "{}: external data changed the outputs", a.engine);
        assert!(ya.iter().any(|v| *v != 0.0), "{}: all zero", a.engine);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Loading `path` fails with an external-data refusal whose reason holds `words`.
fn refused(path: &Path, words: &str) {
    let e = match TractClassifier::load(path, None) {
        Err(e) => e,
        Ok(_) => panic!("{} loaded", path.display()),
    };
    match &e {
        OnnxError::External { reason, tensor, .. } => {
            assert!(reason.contains(words), "{reason:?} lacks {words:?}");
            assert!(!tensor.is_empty());
        }
        other => panic!("expected an external-data refusal, got {other:?}"),
    }
    // The same refusal before any engine: the file check itself.
    assert!(matches!(
        OnnxFile::open(path),
        Err(OnnxError::External { .. })
    ));
}

#[test]
fn locations_outside_the_folder_are_refused() {
    let dir = folder("outside");
    refused(
        &externalise(&dir, "../w.bin", |_| {}),
        "leaves the model's folder",
    );
    refused(&externalise(&dir, "/etc/passwd", |_| {}), "is absolute");
    refused(&externalise(&dir, "", |_| {}), "empty");
    let missing = externalise(&dir, "w.bin", |_| {});
    std::fs::remove_file(dir.join("w.bin")).unwrap();
    refused(&missing, "w.bin");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn links_out_of_the_folder_and_special_files_are_refused() {
    let dir = folder("links");
    let outside = folder("links-target");
    let path = externalise(&dir, "w.bin", |_| {});
    std::fs::rename(dir.join("w.bin"), outside.join("w.bin")).unwrap();
    std::os::unix::fs::symlink(outside.join("w.bin"), dir.join("w.bin")).unwrap();
    refused(&path, "outside the model's folder");
    // A link that stays inside the folder is fine.
    std::fs::remove_file(dir.join("w.bin")).unwrap();
    std::fs::rename(outside.join("w.bin"), dir.join("real.bin")).unwrap();
    std::os::unix::fs::symlink(dir.join("real.bin"), dir.join("w.bin")).unwrap();
    TractClassifier::load(&path, None).unwrap();
    // A FIFO is refused, without blocking on it.
    std::fs::remove_file(dir.join("w.bin")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("w.bin").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    refused(&path, "not a regular file");
    // So is a folder.
    std::fs::remove_file(dir.join("w.bin")).unwrap();
    std::fs::create_dir(dir.join("w.bin")).unwrap();
    refused(&path, "not a regular file");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn extents_that_do_not_fit_are_refused() {
    let dir = folder("extents");
    let set = |key: &'static str, value: &'static str| {
        move |e: &mut Vec<StringStringEntryProto>| {
            e.iter_mut()
                .filter(|kv| kv.key == key)
                .for_each(|kv| kv.value = value.into())
        }
    };
    refused(
        &externalise(&dir, "w.bin", set("offset", "99999999999")),
        "past the end of the file",
    );
    refused(
        &externalise(&dir, "w.bin", set("length", "99999999999")),
        "pass the end of the file",
    );
    refused(
        &externalise(&dir, "w.bin", set("length", "4")),
        "for a tensor of",
    );
    refused(
        &externalise(&dir, "w.bin", set("offset", "-1")),
        "not a byte count",
    );
    // A data file cut short: the last tensor's bytes are missing.
    let path = externalise(&dir, "w.bin", |_| {});
    let data = std::fs::read(dir.join("w.bin")).unwrap();
    std::fs::write(dir.join("w.bin"), &data[..data.len() - 8]).unwrap();
    refused(&path, "pass the end of the file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn torchs_default_export_loads_and_equals_onnxruntime_in_python() {
    // fixtures/gen_external_fixture.py: torch.onnx.export's defaults, weights in .onnx.data.
    let path = common::fixture("external/small_cnn.onnx");
    assert!(OnnxFile::open(&path).unwrap().has_external_data());
    let r = shap_explain::npz::read_npz(&common::fixture("external/small_cnn_ref.npz")).unwrap();
    let get = |k: &str| r.iter().find(|(n, _)| n == k).unwrap().1.to_f32().unwrap();
    let (data, want) = (get("data"), get("fx"));
    for m in common::on_every_engine(&path, None) {
        let n = data.len() / m.shape.features();
        let mut out = vec![0.0; want.len()];
        m.model.eval_batch(&data, n, m.shape, &mut out).unwrap();
        let d = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "{}: {d}", m.engine);
    }
}
