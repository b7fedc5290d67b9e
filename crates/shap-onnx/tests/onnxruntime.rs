//! The onnxruntime engine: thread layouts, call sizes and errors. Skipped (with a line saying
//! so) where no onnxruntime library is found, unless `SHAP_TOOLKIT_REQUIRE_ORT` is set.
#![allow(clippy::unwrap_used)]

mod common;

use shap_explain::{BatchModel, ExplainerConfig, ImageShape, Normalize};
use shap_mask::{MaskMode, Masker};
use shap_onnx::{OnnxError, OnnxFile, OrtClassifier, OrtDevice, OrtThreads};

fn rgb(threads: OrtThreads) -> OrtClassifier {
    let file = OnnxFile::open(&common::fixture("rgb_nchw.onnx")).unwrap();
    OrtClassifier::new(&file, None, threads, OrtDevice::Cpu)
        .unwrap()
        .with_normalize(
            Normalize::new(3, 1.0, &[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]).unwrap(),
        )
        .unwrap()
}

#[test]
fn threads_are_shared_out_between_sessions() {
    let t = OrtThreads::for_work(2, usize::MAX);
    assert_eq!((t.sessions, t.intra), (2, 1));
    let t = OrtThreads::for_work(2, 1);
    assert_eq!((t.sessions, t.intra), (1, 2));
    let t = OrtThreads::for_work(8, 3);
    assert_eq!((t.sessions, t.intra), (3, 2));
    let t = OrtThreads::for_work(0, 0);
    assert_eq!((t.sessions, t.intra), (1, 1));
}

#[test]
fn explanations_do_not_depend_on_thread_layout_or_rayon_threads() {
    if !common::ort_available() {
        return;
    }
    let shape = ImageShape::new(24, 32, 3);
    let images: Vec<f32> = (0..3 * shape.features())
        .map(|i| ((i * 13) % 97) as f32 / 96.0)
        .collect();
    let masker = Masker::new("blur(8,8)".parse().unwrap(), MaskMode::Default);
    let run = |t: OrtThreads, rayon_threads: usize| {
        let model = rgb(t);
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon_threads)
            .build()
            .unwrap()
            .install(|| {
                ExplainerConfig::partition()
                    .check()
                    .unwrap()
                    .explain(&model, &images, shape, &masker)
                    .unwrap()
            })
    };
    let want = run(OrtThreads::for_work(2, 2), 2);
    for (t, r) in [
        (OrtThreads::for_work(2, 1), 2),
        (OrtThreads::for_work(1, 1), 1),
        (OrtThreads::for_work(2, 2), 1),
    ] {
        let e = run(t, r);
        assert_eq!(e.output_indices, want.output_indices);
        assert!(e.values == want.values, "{t:?} with {r} rayon threads");
    }
}

#[test]
fn calls_of_any_size_give_the_rows_own_outputs() {
    if !common::ort_available() {
        return;
    }
    let model = rgb(OrtThreads::for_work(1, 1));
    let shape = model.image_shape();
    let n = 7;
    let x: Vec<f32> = (0..n * shape.features())
        .map(|i| ((i * 7) % 89) as f32 / 88.0)
        .collect();
    let k = model.num_outputs();
    let mut all = vec![0.0; n * k];
    model
        .with_max_rows(3)
        .eval_batch(&x, n, shape, &mut all)
        .unwrap();
    let model = rgb(OrtThreads::for_work(1, 1));
    for i in 0..n {
        let mut one = vec![0.0; k];
        let row = &x[i * shape.features()..(i + 1) * shape.features()];
        model.eval_batch(row, 1, shape, &mut one).unwrap();
        let d = one
            .iter()
            .zip(&all[i * k..(i + 1) * k])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "row {i}: {d}");
    }
}

#[test]
fn models_onnxruntime_cannot_run_are_clear_errors() {
    if !common::ort_available() {
        return;
    }
    let load = |name: &str| {
        let file = OnnxFile::open(&common::fixture(name))?;
        OrtClassifier::new(&file, None, OrtThreads::for_work(1, 1), OrtDevice::Cpu)
    };
    let e = load("bad/unsupported_op.onnx").err().unwrap();
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(s) = cur {
        text = format!("{text}: {s}");
        cur = s.source();
    }
    assert!(matches!(e, OnnxError::Prepare { .. }), "{text}");
    assert!(text.contains("Frobnicate"), "{text}");
    assert!(matches!(
        load("bad/two_inputs.onnx"),
        Err(OnnxError::Inputs { count: 2, .. })
    ));
    assert!(matches!(
        load("bad/vector_input.onnx"),
        Err(OnnxError::NotImage { .. })
    ));
}

use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType,
    tensor_proto::DataType,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};

/// A node of `op` from `inputs` to `output`.
fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|i| (*i).to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..NodeProto::default()
    }
}

fn axis(a: i64) -> AttributeProto {
    AttributeProto {
        name: "axis".into(),
        r#type: AttributeType::Int as i32,
        i: a,
        ..AttributeProto::default()
    }
}

/// `dir/name`: a model from `x (N,1,2,2)` to `y (N,4)` through `nodes`.
fn write_model(
    dir: &std::path::Path,
    name: &str,
    node: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
) -> std::path::PathBuf {
    let dim = |d: dimension::Value| Dimension {
        value: Some(d),
        ..Dimension::default()
    };
    let info = |name: &str, dims: Vec<Dimension>| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    };
    let n = || dim(dimension::Value::DimParam("N".into()));
    let v = |x: i64| dim(dimension::Value::DimValue(x));
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            node,
            initializer,
            input: vec![info("x", vec![n(), v(1), v(2), v(2)])],
            output: vec![info("y", vec![n(), v(4)])],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    };
    let path = dir.join(name);
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// A model whose outputs are a softmax over the batch: `X (N,1,2,2) -> Flatten -> Softmax
/// (axis 0)`.
fn batch_softmax_model(dir: &std::path::Path) -> std::path::PathBuf {
    let nodes = vec![
        node("Flatten", &["x"], "f", vec![axis(1)]),
        node("Softmax", &["f"], "y", vec![axis(0)]),
    ];
    write_model(dir, "batch_softmax.onnx", nodes, Vec::new())
}

#[test]
fn nan_that_tract_simplifies_away_reaches_the_explanation_on_onnxruntime() {
    let dir = std::env::temp_dir().join(format!("shap-onnx-nan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zero = TensorProto {
        name: "zero".into(),
        data_type: DataType::Float as i32,
        dims: vec![1],
        float_data: vec![0.0],
        ..TensorProto::default()
    };
    // y = flatten((x / 0) * 0): NaN (or inf * 0) for every input, by IEEE arithmetic.
    let nodes = vec![
        node("Div", &["x", "zero"], "d", Vec::new()),
        node("Mul", &["d", "zero"], "m", Vec::new()),
        node("Flatten", &["m"], "y", vec![axis(1)]),
    ];
    let path = write_model(&dir, "nan.onnx", nodes, vec![zero]);
    for m in common::on_every_engine(&path, None) {
        let mut out = vec![0.0f32; 4];
        m.model.eval_batch(&[0.5; 4], 1, m.shape, &mut out).unwrap();
        match m.engine {
            // tract's graph simplification folds `* 0` to zero (docs/onnx-engines.md).
            "tract" => assert_eq!(out, [0.0; 4]),
            _ => assert!(out.iter().all(|v| v.is_nan()), "{}: {out:?}", m.engine),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn models_whose_outputs_depend_on_the_batch_are_refused_on_every_engine() {
    let dir = std::env::temp_dir().join(format!("shap-onnx-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = batch_softmax_model(&dir);
    let tract = shap_onnx::TractClassifier::load(&path, None).err().unwrap();
    assert!(
        matches!(tract, OnnxError::BatchDependent { .. }),
        "{tract:?}"
    );
    if common::ort_available() {
        let file = OnnxFile::open(&path).unwrap();
        let ort = OrtClassifier::new(&file, None, OrtThreads::for_work(1, 1), OrtDevice::Cpu)
            .err()
            .unwrap();
        assert!(matches!(ort, OnnxError::BatchDependent { .. }), "{ort:?}");
        assert!(
            ort.to_string().contains("other images in its batch"),
            "{ort}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
