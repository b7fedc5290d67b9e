//! The CUDA path against the CPU: training, the tutorial CNN and `CandleClassifier`, explained
//! image by image and with masks gathered across images (`BatchModel::batch_rows`).
//!
//! Compiled only with `--features cuda` (`cargo xtask check-cuda` checks that in CI) and
//! ignored unless asked for, because they need a CUDA GPU: `cargo xtask gpu-check` builds and
//! runs them on a GPU machine with a time limit, one line per check.
#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use shap_explain::{
    BatchModel, ConstantMasker, ExplainerConfig, Explanation, FnModel, ImageMasker, ImageShape,
    InputLayout, Method, ModelError, OutputSelection, PermutationBudget, PermutationSettings,
};
use shap_mask::{MaskMode, Masker};
use shap_model::{CandleClassifier, Cnn, Dataset, Head, ModelFn, Preset, TrainConfig, Trainer};

const TUTORIAL: ImageShape = ImageShape::new(28, 28, 1);

fn cuda() -> Device {
    shap_model::device("cuda").unwrap()
}

/// `n` deterministic 28x28 images with a class-dependent bright square, and their labels.
fn dataset(n: usize) -> (Vec<u8>, Vec<u8>) {
    let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
    let mut images = vec![0u8; n * 784];
    for (i, img) in images.chunks_exact_mut(784).enumerate() {
        let c = labels[i] as usize;
        for (p, px) in img.iter_mut().enumerate() {
            let (y, x) = (p / 28, p % 28);
            let square = (y / 7 == c / 4) && (x / 7 == c % 4);
            *px = if square {
                200
            } else {
                ((p * 31 + i * 17) % 61) as u8
            };
        }
    }
    (images, labels)
}

/// The same network (weights and head) on `device`.
fn moved(cnn: &Cnn, device: &Device) -> Cnn {
    let tensors = cnn
        .named_tensors()
        .into_iter()
        .map(|(name, t)| (name.to_string(), t.to_device(device).unwrap()))
        .collect();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    Cnn::new(vb, cnn.head()).unwrap()
}

fn images_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(b) / 255.0).collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn largest(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

/// The same model with `batch_rows` hidden, so the explainers call it image by image.
fn one_image_at_a_time(model: &dyn BatchModel) -> impl BatchModel + '_ {
    FnModel::new(
        model.num_outputs(),
        move |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| -> Result<(), ModelError> {
            model.eval_batch(x, n, s, out)
        },
    )
}

/// Partition (300 evaluations, top 3) and Permutation (2 passes) explanations.
fn explain(
    model: &dyn BatchModel,
    x: &[f32],
    shape: ImageShape,
    masker: &impl ImageMasker,
) -> [Explanation; 2] {
    let p = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::partition().max_evals(300)
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
    [
        p.explain(model, x, shape, masker).unwrap(),
        q.explain(model, x, shape, masker).unwrap(),
    ]
}

fn blur() -> Masker {
    Masker::new("blur(28,28)".parse().unwrap(), MaskMode::Default)
}

/// GPU explanations equal the CPU's to float rounding: same classes, values within 1e-4 of
/// the largest value, and each one's efficiency identity within 1e-5.
fn assert_close(gpu: &[Explanation; 2], cpu: &[Explanation; 2], what: &str) {
    for (g, c) in gpu.iter().zip(cpu) {
        assert_eq!(g.output_indices, c.output_indices, "{what}: classes");
        let scale = largest(&c.values);
        assert!(scale > 1e-4, "{what}: the explanation must not be flat");
        let d = max_diff(&g.values, &c.values);
        assert!(
            d <= 1e-4 * scale,
            "{what}: values differ by {d} (scale {scale})"
        );
        assert!(g.max_efficiency_error() < 1e-5, "{what}: efficiency");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn a_missing_cuda_device_is_named() {
    let err = shap_model::device("cuda:4096").unwrap_err().to_string();
    assert!(err.contains("cannot open cuda:4096"), "{err}");
    assert!(err.contains("no such device"), "{err}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn one_short_epoch_on_cuda_matches_the_cpu() {
    let (images, labels) = dataset(1024);
    let data = Dataset::new(&images, &labels).unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 128,
        ..TrainConfig::preset(Preset::Keras)
    };
    let run = |device: &Device| {
        let cnn = Cnn::seeded(cfg.seed, Head::Softmax, device).unwrap();
        let history = Trainer::new(cfg.clone())
            .expect("config")
            .train(&cnn, &data, Some(&data), |_| {})
            .unwrap();
        (history, cnn)
    };
    let (h_cpu, cnn_cpu) = run(&Device::Cpu);
    let (h_gpu, cnn_gpu) = run(&cuda());
    let (e_cpu, e_gpu) = (&h_cpu.epochs[0], &h_gpu.epochs[0]);
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-12);
    assert!(
        rel(e_cpu.train_loss, e_gpu.train_loss) < 1e-2,
        "train loss: cpu {} gpu {}",
        e_cpu.train_loss,
        e_gpu.train_loss
    );
    let (t_cpu, t_gpu) = (e_cpu.test_loss.unwrap(), e_gpu.test_loss.unwrap());
    assert!(
        rel(t_cpu, t_gpu) < 1e-2,
        "test loss: cpu {t_cpu} gpu {t_gpu}"
    );
    // The two trained networks predict alike (both evaluated on the CPU's kernels, so only
    // training differs). Rounding can flip Adam's step on a weight whose gradient is nearly
    // zero, so the tolerance is loose: 0.02 in any probability.
    let x = images_f32(&images[..64 * 784]);
    let predict = |cnn: &Cnn| {
        let on_cpu = moved(cnn, &Device::Cpu);
        ModelFn::new(&on_cpu).unwrap().predict(&x).unwrap()
    };
    let (p_cpu, p_gpu) = (predict(&cnn_cpu), predict(&cnn_gpu));
    let d = p_cpu
        .iter()
        .zip(&p_gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d <= 0.02, "probabilities differ by {d}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn the_tutorial_cnn_explains_on_cuda_as_on_the_cpu() {
    let (images, labels) = dataset(512);
    let data = Dataset::new(&images, &labels).unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 64,
        ..TrainConfig::preset(Preset::Keras)
    };
    let trained = Cnn::seeded(cfg.seed, Head::Softmax, &Device::Cpu).unwrap();
    Trainer::new(cfg.clone())
        .expect("config")
        .train(&trained, &data, None, |_| {})
        .unwrap();
    let on_gpu = moved(&trained, &cuda());
    let x = images_f32(&images[..4 * 784]);
    let cpu = explain(&ModelFn::new(&trained).unwrap(), &x, TUTORIAL, &blur());
    let gpu = ModelFn::new(&on_gpu).unwrap().with_chunk(100);
    assert_eq!(
        gpu.batch_rows(),
        Some(100),
        "the GPU path gathers across images"
    );
    assert_close(&explain(&gpu, &x, TUTORIAL, &blur()), &cpu, "gathered");
    let single = one_image_at_a_time(&gpu);
    assert_close(
        &explain(&single, &x, TUTORIAL, &blur()),
        &cpu,
        "image by image",
    );
}

/// A small candle-nn CNN on RGB images (NCHW) with fixed weights, on `device`: conv 3->6,
/// ReLU, 2x2 max-pool, conv 6->8, ReLU, global average pool, linear 8->4 (as in
/// `classifier.rs`, where it gives non-trivial explanations).
fn rgb_network(device: &Device) -> impl Fn(&Tensor) -> candle_core::Result<Tensor> + Sync + use<> {
    let shapes: [(&str, &[usize]); 6] = [
        ("c1.weight", &[6, 3, 3, 3]),
        ("c1.bias", &[6]),
        ("c2.weight", &[8, 6, 3, 3]),
        ("c2.bias", &[8]),
        ("fc.weight", &[4, 8]),
        ("fc.bias", &[4]),
    ];
    let tensors = shapes
        .iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| (((i * 37 + t * 11) % 29) as f32 / 29.0 - 0.45) * 0.8)
                .collect();
            (
                name.to_string(),
                Tensor::from_vec(v, *shape, device).unwrap(),
            )
        })
        .collect();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
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

#[test]
#[ignore = "needs a CUDA GPU"]
fn candle_classifier_explains_on_cuda_as_on_the_cpu() {
    let shape = ImageShape::new(12, 10, 3);
    let x: Vec<f32> = (0..3 * shape.features())
        .map(|i| ((i * 29 + 7) % 97) as f32 / 97.0)
        .collect();
    let adapter = |device: Device, rows: usize| {
        CandleClassifier::builder(rgb_network(&device), shape)
            .layout(InputLayout::Nchw)
            .softmax(true)
            .device(device)
            .max_rows(rows)
            .build()
            .unwrap()
    };
    let black = ConstantMasker { value: 0.0 };
    let cpu = explain(&adapter(Device::Cpu, 64), &x, shape, &black);
    let gpu = adapter(cuda(), 256);
    assert_eq!(gpu.batch_rows(), Some(256));
    assert_close(&explain(&gpu, &x, shape, &black), &cpu, "gathered");
    let single = one_image_at_a_time(&gpu);
    assert_close(&explain(&single, &x, shape, &black), &cpu, "image by image");
}
