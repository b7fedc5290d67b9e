//! Shared by the ONNX tests: fixtures, and both engines.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use shap_explain::{BatchModel, ImageShape, Normalize};
use shap_onnx::{OnnxFile, OrtClassifier, OrtDevice, OrtThreads, TractClassifier};

/// A fixture's path.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Whether onnxruntime can be loaded (`ORT_DYLIB_PATH`, or the `onnxruntime` package of
/// python3). With `SHAP_TOOLKIT_REQUIRE_ORT` set (as `cargo xtask test` does once it has
/// installed the library) a missing library fails the test instead of skipping its
/// onnxruntime half.
pub fn ort_available() -> bool {
    match shap_onnx::runtime::load(None) {
        Ok(_) => true,
        Err(e) if std::env::var_os("SHAP_TOOLKIT_REQUIRE_ORT").is_some() => {
            panic!("onnxruntime is required here: {e:?}")
        }
        Err(e) => {
            eprintln!("skipping the onnxruntime half: {e}");
            false
        }
    }
}

/// A loaded model on one engine, with what the tests need of it.
pub struct Loaded {
    pub engine: &'static str,
    pub model: Box<dyn BatchModel + Send>,
    pub shape: ImageShape,
}

/// The model at `path` on every engine available here (tract always), normalised with `norm`.
pub fn on_every_engine(path: &Path, norm: Option<Normalize>) -> Vec<Loaded> {
    let mut out = Vec::new();
    let t = TractClassifier::load(path, None).unwrap();
    let t = match &norm {
        Some(n) => t.with_normalize(n.clone()).unwrap(),
        None => t,
    };
    out.push(Loaded {
        engine: "tract",
        shape: t.image_shape(),
        model: Box::new(t),
    });
    if ort_available() {
        let file = OnnxFile::open(path).unwrap();
        let o = OrtClassifier::new(
            &file,
            None,
            OrtThreads::for_work(2, usize::MAX),
            OrtDevice::Cpu,
        )
        .unwrap();
        let o = match &norm {
            Some(n) => o.with_normalize(n.clone()).unwrap(),
            None => o,
        };
        out.push(Loaded {
            engine: "onnxruntime",
            shape: o.image_shape(),
            model: Box::new(o),
        });
    }
    out
}
