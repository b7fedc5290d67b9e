//! The CNN as a Candle module: built through `VarBuilder` over a `VarMap` (trainable with any
//! Candle optimiser) or over our safetensors files (the same outputs as `shap_model::load`).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use shap_model::{CheckpointMeta, Cnn, Head};

fn images(n: usize) -> Tensor {
    let v: Vec<f32> = (0..n * 784)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    Tensor::from_vec(v, (n, 1, 28, 28), &Device::Cpu).expect("images")
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("values")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn a_varmap_holds_the_networks_variables_and_an_optimiser_trains_them() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let cnn = Cnn::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        Head::Logits,
    )
    .expect("cnn");
    let mut names: Vec<String> = varmap
        .data()
        .lock()
        .expect("lock")
        .keys()
        .cloned()
        .collect();
    names.sort();
    let mut want: Vec<&str> = shap_model::TENSORS.iter().map(|(n, _)| *n).collect();
    want.sort();
    assert_eq!(names, want);
    // Biases start at zero, kernels within the Glorot bound of conv2 (fan-in 288, fan-out 144).
    let t = cnn.named_tensors();
    assert!(bits(&t[1].1).iter().all(|&b| b == 0));
    let limit = (6.0f32 / 432.0).sqrt();
    let w2 = t[2].1.abs().and_then(|a| a.max_all()).expect("max");
    assert!(w2.to_scalar::<f32>().expect("scalar") <= limit);

    let x = images(4);
    let y = Tensor::from_vec(vec![0u32, 1, 2, 3], 4, &dev).expect("labels");
    let before = cnn.forward(&x).expect("forward");
    let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default()).expect("opt");
    let loss =
        candle_nn::loss::cross_entropy(&cnn.forward(&x).expect("forward"), &y).expect("loss");
    opt.backward_step(&loss).expect("step");
    let after = cnn.forward(&x).expect("forward");
    assert_ne!(
        bits(&before),
        bits(&after),
        "the map's variables are the network's"
    );
}

#[test]
fn our_checkpoints_load_through_a_var_builder_with_identical_outputs() {
    let dev = Device::Cpu;
    let cnn = Cnn::seeded(9, Head::Softmax, &dev).expect("cnn");
    let bytes = shap_model::checkpoint::to_bytes(&cnn, &CheckpointMeta::default()).expect("bytes");
    let strict = shap_model::checkpoint::from_bytes(&bytes, "m.safetensors".as_ref(), &dev)
        .expect("strict load")
        .cnn;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &dev).expect("vb");
    let candle = Cnn::new(vb, Head::Softmax).expect("cnn");
    let x = images(3);
    let want = bits(&cnn.forward(&x).expect("forward"));
    assert_eq!(bits(&strict.forward(&x).expect("forward")), want);
    assert_eq!(bits(&candle.forward(&x).expect("forward")), want);
}

#[test]
fn a_wrong_shape_or_dtype_names_the_tensor() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    varmap
        .get(
            (10, 100),
            "fc.weight",
            candle_nn::Init::Const(0.0),
            DType::F32,
            &dev,
        )
        .expect("var");
    let e = Cnn::new(vb, Head::Softmax).expect_err("shape");
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    let chain = format!("{e}: {}", cause.unwrap_or_default());
    assert!(chain.contains("fc.weight"), "{chain}");

    let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F64, &dev);
    let e = Cnn::new(vb, Head::Softmax).expect_err("dtype").to_string();
    assert!(e.contains("conv1.weight") && e.contains("F32"), "{e}");
    // Bad input is an error through the Module interface too, not a panic.
    let cnn = Cnn::seeded(1, Head::Softmax, &dev).expect("cnn");
    let bad = Tensor::zeros((2, 3, 28, 28), DType::F32, &dev).expect("zeros");
    let e = cnn.forward(&bad).expect_err("shape").to_string();
    assert!(e.contains("28 x 28"), "{e}");
}
