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

/// An attribute named `name` holding the int `i`, or the ints `[i, i]` when `list`.
fn attribute(name: &str, i: i64, list: bool) -> tract_onnx::pb::AttributeProto {
    use tract_onnx::pb::attribute_proto::AttributeType;
    tract_onnx::pb::AttributeProto {
        name: name.into(),
        r#type: if list {
            AttributeType::Ints as i32
        } else {
            AttributeType::Int as i32
        },
        i,
        ints: if list { vec![i, i] } else { Vec::new() },
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    /// Any attribute added to any node of the tutorial graph: recognised only when it is a
    /// default the tutorial network already has (then with the same weights), else not.
    #[test]
    fn an_added_attribute_is_recognised_only_when_it_changes_nothing(
        at in 0usize..9,
        name in prop::sample::select(vec![
            "axis", "perm", "pads", "strides", "dilations", "group", "kernel_shape", "alpha",
            "beta", "transA", "transB", "allowzero", "auto_pad", "mystery",
        ]),
        i in -2i64..4,
        list in any::<bool>(),
    ) {
        use prost::Message;
        let bytes = fixture("tutorial_nhwc.onnx");
        let whole = recognize_tutorial(&bytes).unwrap();
        let mut m = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
        let nodes = &mut m.graph.as_mut().unwrap().node;
        let n = nodes.len();
        let node = &mut nodes[at % n];
        let op = node.op_type.clone();
        node.attribute.push(attribute(name, i, list));
        if let Some(w) = recognize_tutorial(&m.encode_to_vec()) {
            prop_assert_eq!(&w, &whole, "{} on {}", name, op);
            // Only a default value of an attribute this op takes, of its type, can change
            // nothing: `group` 1, `transA`/`transB` 0, `strides`/`dilations` [1, 1].
            let defaults = [
                ("Conv", "group", 1, false),
                ("Gemm", "transA", 0, false),
                ("Gemm", "transB", 0, false),
                ("Conv", "strides", 1, true),
                ("Conv", "dilations", 1, true),
            ];
            prop_assert!(
                defaults.contains(&(op.as_str(), name, i, list)),
                "recognised with {}={} ({}) on {}", name, i, list, op
            );
        }
    }
}
