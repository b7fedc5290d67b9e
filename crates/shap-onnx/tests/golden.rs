//! ONNX models on both engines (tract, and onnxruntime when its library is found) against
//! shap 0.51 + onnxruntime (fixtures from `fixtures/gen_onnx_fixtures.py`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use shap_explain::npz::read_npz;
use shap_explain::{
    BatchModel, Compat, ExplainerConfig, ImageShape, InputLayout, Normalize, OutputSelection,
};
use shap_io::npy::NpyArray;
use shap_mask::{MaskMode, Masker, MaskerSpec};
use shap_onnx::{OnnxError, TractClassifier};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, ModelProto, NodeProto, TensorProto};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

fn fixture(name: &str) -> PathBuf {
    common::fixture(name)
}

fn get<'a>(arrays: &'a [(String, NpyArray)], key: &str) -> &'a NpyArray {
    &arrays.iter().find(|(n, _)| n == key).unwrap().1
}

fn rgb_model() -> TractClassifier {
    TractClassifier::load(&fixture("rgb_nchw.onnx"), None)
        .unwrap()
        .with_normalize(Normalize::new(3, 1.0, &MEAN, &STD).unwrap())
        .unwrap()
}

/// The model's forward pass equals onnxruntime's on the fixture images.
fn check_forward(model: &dyn BatchModel, shape: ImageShape, reference: &[(String, NpyArray)]) {
    let data = get(reference, "data").to_f32().unwrap();
    let want = get(reference, "fx").to_f32().unwrap();
    let n = data.len() / shape.features();
    let mut out = vec![0.0; want.len()];
    model.eval_batch(&data, n, shape, &mut out).unwrap();
    let d = out
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-5, "forward differs from onnxruntime by {d}");
}

/// shap's call: NumPy-legacy tie-break seeded with `seed`, shap's masking, top-k.
fn check_explanation(
    model: &dyn BatchModel,
    shape: ImageShape,
    reference: &[(String, NpyArray)],
    top_k: usize,
) {
    let data = get(reference, "data").to_f32().unwrap();
    let masker = match &get(reference, "masker").data {
        shap_io::npy::NpyData::Str(s) => s[0].parse::<MaskerSpec>().unwrap(),
        other => panic!("masker: {other:?}"),
    };
    let scalar = |k: &str| get(reference, k).to_f64().unwrap()[0] as usize;
    let explainer = ExplainerConfig {
        compat: Compat::Shap,
        seed: scalar("seed") as u64,
        outputs: OutputSelection::TopK(top_k),
        ..ExplainerConfig::partition().max_evals(scalar("max_evals"))
    }
    .check()
    .unwrap();
    let e = explainer
        .explain(model, &data, shape, &explainer.masker(masker))
        .unwrap();
    let want = get(reference, "values").to_f64().unwrap();
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let d = e
        .values
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    assert_eq!(e.values.len(), want.len());
    assert!(d <= 1e-5 * scale, "values differ by {d} (largest {scale})");
    let want_ix: Vec<usize> = get(reference, "output_indices")
        .to_f64()
        .unwrap()
        .iter()
        .map(|&v| v as usize)
        .collect();
    assert_eq!(e.output_indices, want_ix);
    let base = get(reference, "base_values").to_f64().unwrap();
    for (a, b) in e.base_values.iter().zip(&base) {
        assert!((a - b).abs() < 1e-5, "base {a} vs {b}");
    }
}

#[test]
fn rgb_nchw_model_matches_shap_with_onnxruntime() {
    let model = rgb_model();
    assert_eq!(model.layout(), InputLayout::Nchw);
    assert_eq!(model.image_shape(), ImageShape::new(24, 32, 3));
    assert_eq!(model.num_outputs(), 5);
    let reference = read_npz(&fixture("ref_rgb_blur.npz")).unwrap();
    let norm = Normalize::new(3, 1.0, &MEAN, &STD).unwrap();
    for m in common::on_every_engine(&fixture("rgb_nchw.onnx"), Some(norm)) {
        eprintln!("engine {}", m.engine);
        check_forward(m.model.as_ref(), m.shape, &reference);
        check_explanation(m.model.as_ref(), m.shape, &reference, 3);
    }
}

#[test]
fn tutorial_nhwc_model_matches_shap_with_onnxruntime() {
    let model = TractClassifier::load(&fixture("tutorial_nhwc.onnx"), None).unwrap();
    assert_eq!(model.layout(), InputLayout::Nhwc);
    assert_eq!(model.image_shape(), ImageShape::new(28, 28, 1));
    assert_eq!(model.num_outputs(), 10);
    let reference = read_npz(&fixture("ref_tutorial_blur.npz")).unwrap();
    for m in common::on_every_engine(&fixture("tutorial_nhwc.onnx"), None) {
        eprintln!("engine {}", m.engine);
        check_forward(m.model.as_ref(), m.shape, &reference);
        check_explanation(m.model.as_ref(), m.shape, &reference, 5);
    }
}

#[test]
fn results_depend_on_neither_threads_nor_more_than_rounding_on_call_size() {
    let reference = read_npz(&fixture("ref_rgb_blur.npz")).unwrap();
    let data = get(&reference, "data").to_f32().unwrap();
    let shape = ImageShape::new(24, 32, 3);
    let masker = Masker::new("blur(8,8)".parse().unwrap(), MaskMode::Default);
    let run = |rows: usize, threads: usize| {
        let model = rgb_model().with_max_rows(rows);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                ExplainerConfig::partition()
                    .check()
                    .unwrap()
                    .explain(&model, &data, shape, &masker)
                    .unwrap()
            })
    };
    let want = run(64, 2);
    let scale = want.values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    for (rows, threads) in [(64, 1), (1, 2), (10, 1), (33, 2)] {
        let e = run(rows, threads);
        assert_eq!(e.output_indices, want.output_indices);
        if rows == 64 {
            // Same calls, other thread count: the same bits.
            assert!(
                e.values == want.values,
                "{threads} threads changed the values"
            );
        } else {
            // tract's kernels round a little differently for other batch sizes.
            let d = e
                .values
                .iter()
                .zip(&want.values)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f64, f64::max);
            assert!(
                d <= 1e-5 * scale,
                "{rows} rows per call: {d} (largest {scale})"
            );
        }
    }
}

#[test]
fn bad_models_are_clear_errors() {
    let chain = |e: &OnnxError| {
        let mut v = vec![e.to_string()];
        let mut cur = std::error::Error::source(e);
        while let Some(s) = cur {
            v.push(s.to_string());
            cur = s.source();
        }
        v.join(": ")
    };
    let load = |name: &str| TractClassifier::load(&fixture(name), None).err().unwrap();
    let e = load("bad/not_onnx.onnx");
    assert!(matches!(e, OnnxError::Parse { .. }), "{}", chain(&e));
    let e = load("bad/truncated.onnx");
    assert!(matches!(e, OnnxError::Parse { .. }), "{}", chain(&e));
    let e = load("bad/two_inputs.onnx");
    assert!(
        matches!(e, OnnxError::Inputs { count: 2, .. }),
        "{}",
        chain(&e)
    );
    let e = load("bad/vector_input.onnx");
    assert!(matches!(e, OnnxError::NotImage { .. }), "{}", chain(&e));
    let e = load("bad/unsupported_op.onnx");
    assert!(chain(&e).contains("Frobnicate"), "{}", chain(&e));
    let e = load("no_such_file.onnx");
    assert!(chain(&e).contains("no_such_file.onnx"), "{}", chain(&e));
    // A normalisation for the wrong number of channels.
    let e = TractClassifier::load(&fixture("tutorial_nhwc.onnx"), None)
        .unwrap()
        .with_normalize(Normalize::new(3, 1.0, &MEAN, &STD).unwrap())
        .err()
        .unwrap();
    assert!(chain(&e).contains("1"), "{}", chain(&e));
}

/// The safetensors fixture's tensors (F32, little-endian) by name, parsed by hand.
fn safetensors(path: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let off = v["data_offsets"].as_array().unwrap();
            let (a, b) = (
                off[0].as_u64().unwrap() as usize,
                off[1].as_u64().unwrap() as usize,
            );
            let floats = data[a..b]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (k.clone(), floats)
        })
        .collect()
}

/// A change to a node of the tutorial graph.
type NodeEdit = fn(&mut NodeProto);

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

#[test]
fn the_tutorial_graph_is_recognised_with_the_checkpoints_weights() {
    use prost::Message;
    let bytes = std::fs::read(fixture("tutorial_nhwc.onnx")).unwrap();
    let w = shap_onnx::recognize_tutorial(&bytes).expect("the tutorial graph");
    assert!(w.softmax);
    let want = safetensors(&fixture("tutorial.safetensors"));
    let names = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc.weight",
        "fc.bias",
    ];
    for (name, got) in names.iter().zip(&w.tensors) {
        let t = &want.iter().find(|(k, _)| k == name).unwrap().1;
        assert!(t == got, "{name} differs from the checkpoint");
    }
    // The same graph with its softmax over the batch axis is another network.
    {
        let mut m = ModelProto::decode(&bytes[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let sm = g.node.iter_mut().find(|n| n.op_type == "Softmax").unwrap();
        sm.attribute.retain(|a| a.name != "axis");
        sm.attribute.push(tract_onnx::pb::AttributeProto {
            name: "axis".into(),
            r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
            i: 0,
            ..Default::default()
        });
        assert!(shap_onnx::recognize_tutorial(&m.encode_to_vec()).is_none());
    }
}

#[test]
fn any_attribute_or_input_the_tutorial_graph_lacks_makes_it_another_network() {
    use prost::Message;
    let bytes = std::fs::read(fixture("tutorial_nhwc.onnx")).unwrap();
    let edits: [(&str, NodeEdit); 7] = [
        ("an attribute on Relu", |n| {
            if n.op_type == "Relu" {
                n.attribute.push(int_attr("alpha", 1));
            }
        }),
        ("auto_pad VALID on a Conv", |n| {
            if n.op_type == "Conv" {
                n.attribute.push(AttributeProto {
                    name: "auto_pad".into(),
                    r#type: AttributeType::String as i32,
                    s: b"VALID".to_vec(),
                    ..Default::default()
                });
            }
        }),
        ("a second axis on Softmax", |n| {
            if n.op_type == "Softmax" {
                n.attribute.push(int_attr("axis", 0));
            }
        }),
        ("an unknown attribute on a Conv", |n| {
            if n.op_type == "Conv" {
                n.attribute.push(int_attr("mystery", 1));
            }
        }),
        ("alpha on the Gemm", |n| {
            if n.op_type == "Gemm" {
                n.attribute.push(AttributeProto {
                    name: "alpha".into(),
                    r#type: AttributeType::Float as i32,
                    f: 2.0,
                    ..Default::default()
                });
            }
        }),
        ("a second input to Relu", |n| {
            if n.op_type == "Relu" {
                let first = n.input[0].clone();
                n.input.push(first);
            }
        }),
        ("a Conv with a third dilation", |n| {
            if n.op_type == "Conv" {
                n.attribute.push(AttributeProto {
                    name: "dilations".into(),
                    r#type: AttributeType::Ints as i32,
                    ints: vec![2, 2],
                    ..Default::default()
                });
            }
        }),
    ];
    for (what, edit) in edits {
        let mut m = ModelProto::decode(&bytes[..]).unwrap();
        m.graph.as_mut().unwrap().node.iter_mut().for_each(edit);
        assert!(
            shap_onnx::recognize_tutorial(&m.encode_to_vec()).is_none(),
            "recognised with {what}"
        );
    }
}

#[test]
fn the_tutorial_graph_on_other_input_sizes_or_reshapes_is_recognised_by_shape() {
    use prost::Message;
    let bytes = std::fs::read(fixture("tutorial_nhwc.onnx")).unwrap();
    // The same weights on 14x56 images (the convolutions keep any size, the dense layer still
    // sees 12544 features), or on images of unknown size, are other networks.
    for dims in [[14, 56, 1], [0, 28, 1]] {
        let mut m = ModelProto::decode(&bytes[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let input = g.input.iter_mut().find(|i| i.name == "input").unwrap();
        let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) =
            input.r#type.as_mut().unwrap().value.as_mut()
        else {
            panic!("the fixture's input is a tensor")
        };
        let shape = t.shape.as_mut().unwrap();
        for (d, v) in shape.dim.iter_mut().skip(1).zip(dims) {
            d.value = Some(if v == 0 {
                tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam("h".into())
            } else {
                tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)
            });
        }
        assert!(
            shap_onnx::recognize_tutorial(&m.encode_to_vec()).is_none(),
            "recognised with input {dims:?}"
        );
    }
    // Flatten as a Reshape to (batch, 12544) is the same network; to another shape, not.
    for (shape, same) in [
        (vec![-1, 12544], true),
        (vec![0, 12544], true),
        (vec![12544, -1], false),
    ] {
        let mut m = ModelProto::decode(&bytes[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let flat = g.node.iter_mut().find(|n| n.op_type == "Flatten").unwrap();
        flat.op_type = "Reshape".into();
        flat.attribute.clear();
        flat.input.push("flat_shape".into());
        g.initializer.push(TensorProto {
            name: "flat_shape".into(),
            data_type: 7,
            dims: vec![2],
            int64_data: shape.clone(),
            ..Default::default()
        });
        let found = shap_onnx::recognize_tutorial(&m.encode_to_vec());
        assert_eq!(found.is_some(), same, "Reshape to {shape:?}");
    }
    // Other graphs are not the tutorial's.
    for other in [
        "rgb_nchw.onnx",
        "bad/two_inputs.onnx",
        "bad/not_onnx.onnx",
        "bad/truncated.onnx",
    ] {
        let bytes = std::fs::read(fixture(other)).unwrap();
        assert!(shap_onnx::recognize_tutorial(&bytes).is_none(), "{other}");
    }
}
