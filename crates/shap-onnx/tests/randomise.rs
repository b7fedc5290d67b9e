//! Seeded random layers for the sanity check (docs/metrics.md, "Sanity check"): which layers
//! a graph has, and that each step of the cascade replaces exactly one more of them, with the
//! same values on every call and at every later step.
#![allow(clippy::unwrap_used)]

mod common;

use shap_explain::BatchModel;
use shap_onnx::{OnnxError, OnnxFile, TractClassifier};

fn tutorial() -> OnnxFile {
    OnnxFile::open(&common::fixture("tutorial_nhwc.onnx")).unwrap()
}

/// The tutorial graph's six weight tensors (conv1, conv2, fc; weight and bias each).
fn weights(f: &OnnxFile) -> [Vec<f32>; 6] {
    f.recognize_tutorial().unwrap().tensors
}

#[test]
fn layers_are_listed_from_the_output_down() {
    let layers = tutorial().layers();
    assert_eq!(layers.len(), 3, "{layers:?}");
    assert!(
        layers[0].starts_with("Gemm") || layers[0].starts_with("MatMul"),
        "{layers:?}"
    );
    assert!(
        layers[1].starts_with("Conv") && layers[2].starts_with("Conv"),
        "{layers:?}"
    );
    let rgb = OnnxFile::open(&common::fixture("rgb_nchw.onnx")).unwrap();
    assert_eq!(rgb.layers().len(), 3, "{:?}", rgb.layers());
}

#[test]
fn each_step_randomises_one_more_layer_and_keeps_the_earlier_ones() {
    let f = tutorial();
    let original = weights(&f);
    assert_eq!(weights(&f.randomised(0, 7).unwrap()), original);
    let one = weights(&f.randomised(1, 7).unwrap());
    let two = weights(&f.randomised(2, 7).unwrap());
    let three = weights(&f.randomised(3, 7).unwrap());
    let changed =
        |w: &[Vec<f32>; 6]| -> Vec<bool> { w.iter().zip(&original).map(|(a, b)| a != b).collect() };
    // Tensors: conv1 w/b, conv2 w/b, fc w/b. The trained biases are not constant.
    assert_eq!(changed(&one), [false, false, false, false, true, true]);
    assert_eq!(changed(&two), [false, false, true, true, true, true]);
    assert_eq!(changed(&three), [true, true, true, true, true, true]);
    assert_eq!(two[4..], one[4..]);
    assert_eq!(three[2..], two[2..]);
    // Seeded: the same call gives the same values; another seed others.
    assert_eq!(weights(&f.randomised(2, 7).unwrap()), two);
    assert_ne!(weights(&f.randomised(2, 8).unwrap())[4], one[4]);
    // The random values keep each tensor's scale.
    let std = |v: &[f32]| {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    };
    let ratio = std(&one[4]) / std(&original[4]);
    assert!((0.9..1.1).contains(&ratio), "{ratio}");
}

#[test]
fn a_randomised_model_runs_and_its_outputs_change() {
    let f = OnnxFile::open(&common::fixture("rgb_nchw.onnx")).unwrap();
    let shape = f.image_shape(None).unwrap();
    let x: Vec<f32> = (0..shape.features())
        .map(|i| (i % 13) as f32 / 13.0)
        .collect();
    let run = |file: OnnxFile| {
        let m = TractClassifier::new(file, None).unwrap();
        let mut out = vec![0.0; m.num_outputs()];
        m.eval_batch(&x, 1, shape, &mut out).unwrap();
        out
    };
    let base = run(OnnxFile::open(&common::fixture("rgb_nchw.onnx")).unwrap());
    assert_eq!(run(f.randomised(0, 1).unwrap()), base);
    assert_ne!(run(f.randomised(1, 1).unwrap()), base);
    match f.randomised(4, 1) {
        Err(OnnxError::Layers {
            layers: 3,
            asked: 4,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}
