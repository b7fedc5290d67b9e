//! Property tests of the ONNX loader and the tutorial-graph recogniser: corrupted model files
//! never panic; they load (and then evaluate to finite outputs or a clean error) or are
//! refused. `PROPTEST_CASES` sets the number of cases.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use shap_explain::BatchModel;
use shap_onnx::{TractClassifier, recognize_tutorial};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(p).unwrap()
}

/// `bytes` with `edits` (position as a fraction of the length, new byte) applied, cut to
/// `keep` of its length.
fn corrupt(mut bytes: Vec<u8>, edits: &[(f64, u8)], keep: f64) -> Vec<u8> {
    let n = bytes.len();
    for &(at, b) in edits {
        let i = ((at * n as f64) as usize).min(n - 1);
        bytes[i] = b;
    }
    bytes.truncate(((keep * n as f64) as usize).max(1));
    bytes
}

fn edits() -> impl Strategy<Value = (Vec<(f64, u8)>, f64)> {
    (
        prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..6),
        prop_oneof![Just(1.0), 0.0f64..1.0],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    #[test]
    fn corrupted_rgb_models_load_or_fail_cleanly((e, keep) in edits()) {
        let bytes = corrupt(fixture("rgb_nchw.onnx"), &e, keep);
        if let Ok(m) = TractClassifier::from_bytes(&bytes, Path::new("m.onnx"), None) {
            let s = m.image_shape();
            let mut out = vec![0.0; m.num_outputs()];
            let _ = m.eval_batch(&vec![0.5; s.features()], 1, s, &mut out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(40)))]

    #[test]
    fn corrupted_tutorial_graphs_are_recognised_only_whole((e, keep) in edits()) {
        let bytes = corrupt(fixture("tutorial_nhwc.onnx"), &e, keep);
        if let Some(w) = recognize_tutorial(&bytes) {
            let sizes: Vec<usize> = w.tensors.iter().map(Vec::len).collect();
            prop_assert_eq!(sizes, vec![288, 32, 4608, 16, 125_440, 10]);
        }
    }
}
