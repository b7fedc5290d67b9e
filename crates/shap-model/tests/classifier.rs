//! `CandleClassifier`: any candle-nn network as a `BatchModel`.
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use shap_explain::{
    BatchModel, ConstantMasker, ExplainerConfig, Explanation, FnModel, ImageShape, InputLayout,
    Method, ModelError, Normalize, OutputSelection, PermutationBudget, PermutationSettings,
};
use shap_model::CandleClassifier;

const SHAPE: ImageShape = ImageShape::new(12, 10, 3);
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A small CNN taking NCHW images: conv 3->6, ReLU, 2x2 max-pool, conv 6->8, ReLU, global
/// average pool, linear 8->4.
/// Weights from a fixed formula (a `VarMap` would draw them at random, and an unlucky draw
/// can make the explanations nearly flat).
fn weights() -> std::collections::HashMap<String, Tensor> {
    let shapes: [(&str, &[usize]); 6] = [
        ("c1.weight", &[6, 3, 3, 3]),
        ("c1.bias", &[6]),
        ("c2.weight", &[8, 6, 3, 3]),
        ("c2.bias", &[8]),
        ("fc.weight", &[4, 8]),
        ("fc.bias", &[4]),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| (((i * 37 + t * 11) % 29) as f32 / 29.0 - 0.45) * 0.8)
                .collect();
            let tensor = Tensor::from_vec(v, *shape, &Device::Cpu).unwrap();
            (name.to_string(), tensor)
        })
        .collect()
}

fn network() -> impl Fn(&Tensor) -> candle_core::Result<Tensor> + Sync + Clone {
    let vb = VarBuilder::from_tensors(weights(), DType::F32, &Device::Cpu);
    let pad = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let c1 = candle_nn::conv2d(3, 6, 3, pad, vb.pp("c1")).unwrap();
    let c2 = candle_nn::conv2d(6, 8, 3, pad, vb.pp("c2")).unwrap();
    let fc = candle_nn::linear(8, 4, vb.pp("fc")).unwrap();
    move |x: &Tensor| {
        let h = c1.forward(x)?.relu()?.max_pool2d(2)?;
        let h = c2.forward(&h)?.relu()?.mean((2, 3))?;
        fc.forward(&(h * 3.0)?)
    }
}

fn images(n: usize) -> Vec<f32> {
    (0..n * SHAPE.features())
        .map(|i| ((i * 29 + 7) % 97) as f32 / 97.0)
        .collect()
}

/// The same network called by hand through `FnModel`: normalise, NCHW, softmax.
fn by_hand(net: impl Fn(&Tensor) -> candle_core::Result<Tensor> + Sync) -> impl BatchModel {
    FnModel::new(
        4,
        move |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
            let norm: Vec<f32> = x
                .chunks_exact(3)
                .flat_map(|px| (0..3).map(move |c| (px[c] - MEAN[c]) / STD[c]))
                .collect();
            let run = || -> candle_core::Result<Vec<f32>> {
                let t = Tensor::from_vec(norm, (n, s.height, s.width, 3), &Device::Cpu)?
                    .permute((0, 3, 1, 2))?
                    .contiguous()?;
                candle_nn::ops::softmax_last_dim(&net(&t)?)?
                    .flatten_all()?
                    .to_vec1()
            };
            out.copy_from_slice(&run().map_err(ModelError::backend)?);
            Ok(())
        },
    )
}

fn adapter<N: Module + Sync>(net: N, rows: usize, layout: InputLayout) -> CandleClassifier<N> {
    CandleClassifier::builder(net, SHAPE)
        .layout(layout)
        .normalize(Normalize::new(3, 1.0, &MEAN, &STD).unwrap())
        .unwrap()
        .softmax(true)
        .max_rows(rows)
        .build()
        .unwrap()
}

fn explain(model: &dyn BatchModel, x: &[f32]) -> (Explanation, Explanation) {
    let masker = ConstantMasker { value: 0.0 };
    let p = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        ..ExplainerConfig::partition().max_evals(200)
    }
    .check()
    .unwrap();
    let q = ExplainerConfig {
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(2),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    (
        p.explain(model, x, SHAPE, &masker).unwrap(),
        q.explain(model, x, SHAPE, &masker).unwrap(),
    )
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn adapter_equals_the_hand_written_forward_and_gathering_changes_no_bit() {
    let net = network();
    let x = images(5);
    let (want_p, want_q) = explain(&by_hand(net.clone()), &x);
    let scale = want_p.values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(
        scale > 1e-4,
        "the network must give non-trivial explanations"
    );
    let mut gathered = Vec::new();
    for rows in [1, 7, 64] {
        let model = adapter(net.clone(), rows, InputLayout::Nchw);
        assert_eq!(model.batch_rows(), Some(rows));
        let (p, q) = explain(&model, &x);
        for (a, b) in [(&p, &want_p), (&q, &want_q)] {
            assert_eq!(a.output_indices, b.output_indices);
            let d = max_diff(&a.values, &b.values);
            // The hand-written model gets whole permutation passes (361 rows) in one call,
            // where Candle's convolution rounds a little differently than at 64 rows.
            assert!(d <= 1e-6, "{rows} rows per call: {d}");
            assert!(a.max_efficiency_error() < 1e-6);
        }
        gathered.push((p, q));
    }
    // Candle's CPU kernels give every image the same bits whatever batch it is in, so the
    // explanations agree bit for bit across call sizes (and thread counts).
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| explain(&adapter(net.clone(), 64, InputLayout::Nchw), &x));
    for (p, q) in gathered.iter().chain([&single]) {
        assert_eq!(p.values, gathered[0].0.values);
        assert_eq!(q.values, gathered[0].1.values);
    }
}

#[test]
fn nhwc_networks_get_nhwc_tensors() {
    let net = network();
    let nhwc = {
        let net = net.clone();
        move |x: &Tensor| {
            assert_eq!(x.dims()[3], 3, "channels last");
            net(&x.permute((0, 3, 1, 2))?.contiguous()?)
        }
    };
    let x = images(2);
    let a = adapter(net, 64, InputLayout::Nchw);
    let b = adapter(nhwc, 64, InputLayout::Nhwc);
    let mut oa = vec![0.0; 8];
    let mut ob = vec![0.0; 8];
    a.eval_batch(&x, 2, SHAPE, &mut oa).unwrap();
    b.eval_batch(&x, 2, SHAPE, &mut ob).unwrap();
    assert_eq!(oa, ob);
    assert!(
        (oa[..4].iter().sum::<f32>() - 1.0).abs() < 1e-5,
        "softmax: {oa:?}"
    );
}

#[test]
fn bad_settings_and_networks_are_errors() {
    let err = Normalize::new(3, 1.0, &[0.5, 0.5], &[0.2]).unwrap_err();
    assert!(err.to_string().contains("mean has 2 values"), "{err}");
    let err = Normalize::new(3, 1.0, &[0.5], &[0.0]).unwrap_err();
    assert!(err.to_string().contains("std 0"), "{err}");
    assert!(Normalize::new(3, f32::NAN, &[0.5], &[0.2]).is_err());
    let err = CandleClassifier::builder(network(), SHAPE)
        .normalize(Normalize::identity(1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("1 channel(s)"), "{err}");
    // A network that does not return (n, K).
    let flat = |x: &Tensor| x.flatten_from(2);
    let err = CandleClassifier::builder(flat, SHAPE)
        .layout(InputLayout::Nhwc)
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("expected (1, K)"), "{err}");
    // A network that fails keeps Candle's error as the cause.
    let net = network();
    let model = adapter(net, 8, InputLayout::Nchw);
    let mut out = vec![0.0; 4];
    let err = model
        .eval_batch(&images(1), 1, ImageShape::new(10, 12, 3), &mut out)
        .unwrap_err();
    assert!(matches!(err, ModelError::Shape(_)), "{err}");
    let fails = |x: &Tensor| x.reshape((7, 7));
    let err = CandleClassifier::builder(fails, SHAPE)
        .build()
        .err()
        .unwrap();
    let chain = {
        let mut v = vec![err.to_string()];
        let mut cur = std::error::Error::source(&err);
        while let Some(e) = cur {
            v.push(e.to_string());
            cur = e.source();
        }
        v
    };
    assert_eq!(chain[0], "a Candle operation failed");
    assert!(
        chain.len() >= 2 && chain[1].contains("Shape mismatch"),
        "{chain:?}"
    );
}

#[test]
fn tensors_in_the_networks_layout_are_explained_as_their_pixels() {
    let model = adapter(network(), 64, InputLayout::Nchw);
    let explainer = shap_explain::Explainer::partition("blur(3,3)")
        .max_evals(200)
        .top_k(2)
        .build()
        .unwrap();
    let x = images(2);
    // The same pixels as an NCHW tensor, (2, 3, 12, 10).
    let nchw = Tensor::from_vec(x.clone(), (2, 12, 10, 3), &Device::Cpu)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap();
    let from_tensor = model.explain(&explainer, &nchw).unwrap();
    let from_pixels = explainer.explain(&model, &x, SHAPE).unwrap();
    assert_eq!(from_tensor.values, from_pixels.values);
    assert_eq!(from_tensor.data, from_pixels.data);
    // f64 tensors are read as f32; other shapes (NHWC here) are refused, saying what is taken.
    assert_eq!(
        model
            .explain(&explainer, &nchw.to_dtype(DType::F64).unwrap())
            .unwrap()
            .values,
        from_pixels.values
    );
    let nhwc = Tensor::from_vec(x, (2, 12, 10, 3), &Device::Cpu).unwrap();
    let err = model.explain(&explainer, &nhwc).unwrap_err().to_string();
    assert!(
        err.contains("(N, C, H, W)") && err.contains("[3, 12, 10]"),
        "{err}"
    );
    // ImageNet's statistics, by name.
    assert_eq!(
        Normalize::imagenet(),
        Normalize::new(3, 1.0, &MEAN, &STD).unwrap()
    );
}
