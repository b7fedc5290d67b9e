//! End-to-end: every library crate in one pipeline on the real Fashion-MNIST files.
//!
//! Train the tutorial CNN on a small subset, explain two test images with both explainers
//! and a real masker, check the SHAP invariants, round-trip the explanation through `.npz`
//! and draw it. Needs the dataset (CI installs the Debian package).

use shap_toolkit::data::{CLASS_NAMES, FashionMnist};
use shap_toolkit::explain::{
    BatchModel, ExplainerConfig, Explanation, ImageShape, OutputSelection,
};
use shap_toolkit::mask::{MaskMode, Masker};
use shap_toolkit::model::{Cnn, Dataset, Head, ModelFn, Preset, TrainConfig, Trainer};
use shap_toolkit::plot::{ColorScale, ImagePlot, ImagePlotRow, image_plot};

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[test]
fn train_explain_plot_on_real_data() {
    let data = match FashionMnist::load(None) {
        Ok(d) => d,
        Err(e) if std::env::var("SHAP_SKIP_REAL_DATA").as_deref() == Ok("1") => {
            eprintln!("skipping (SHAP_SKIP_REAL_DATA=1): {e}");
            return;
        }
        Err(e) => panic!(
            "Fashion-MNIST not found ({e}): apt-get install dataset-fashion-mnist, or set \
             SHAP_SKIP_REAL_DATA=1 to skip"
        ),
    };
    let device = candle_core::Device::Cpu;
    let train_set = Dataset::new(data.train.images(), data.train.labels())
        .unwrap()
        .take(3000);
    let test_set = Dataset::new(data.test.images(), data.test.labels())
        .unwrap()
        .take(1000);
    let mut cfg = TrainConfig::preset(Preset::Keras);
    cfg.epochs = 1;
    cfg.seed = 7;
    let cnn = Cnn::seeded(cfg.seed, Head::Softmax, &device).unwrap();
    let history = Trainer::new(cfg.clone())
        .expect("config")
        .train(&cnn, &train_set, Some(&test_set), |_| {})
        .unwrap();
    let acc = history.epochs[0].test_accuracy.unwrap();
    assert!(
        acc > 0.5,
        "one epoch on 3,000 images should beat chance (0.1) clearly, got {acc}"
    );

    let model = ModelFn::new(&cnn).unwrap();
    assert_eq!(model.num_outputs(), 10);
    let shape = ImageShape::new(28, 28, 1);
    let images = data.test.images_f32(&[0, 1]).unwrap();
    let probs = model.predict(&images).unwrap();
    let names: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();

    // Partition, blur(28,28), 500 evaluations, top-3: efficiency holds and the first explained
    // class is the predicted one (blur keeps the unmasked image exactly, so f(x) is the model's).
    let masker = Masker::new("blur(28,28)".parse().unwrap(), MaskMode::Default);
    let partition = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        output_names: Some(names.clone()),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    let e = partition.explain(&model, &images, shape, &masker).unwrap();
    assert_eq!((e.num_images, e.num_outputs), (2, 3));
    assert!(
        e.max_efficiency_error() <= 1e-5,
        "efficiency error {}",
        e.max_efficiency_error()
    );
    for i in 0..2 {
        let pred = argmax(&probs[i * 10..(i + 1) * 10]);
        assert_eq!(e.output_indices[i * 3], pred);
        assert_eq!(e.output_names[i][0], CLASS_NAMES[pred]);
        assert!((e.fx[i * 3] - f64::from(probs[i * 10 + pred])).abs() < 1e-6);
        assert!(e.evals[i] <= 500);
    }

    // Permutation, inpaint_telea, one antithetic pass: efficiency is exact by construction.
    let telea = Masker::new("inpaint_telea".parse().unwrap(), MaskMode::Default);
    let permutation = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        output_names: Some(names),
        ..ExplainerConfig::permutation().max_evals(1600)
    }
    .check()
    .unwrap();
    let p = permutation.explain(&model, &images, shape, &telea).unwrap();
    assert!(p.max_efficiency_error() <= 1e-5);
    assert_eq!(p.evals, vec![2 * 784 + 1, 2 * 784 + 1]);

    // Round trip through .npz and draw.
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("e.npz");
    e.save_npz(&npz).unwrap();
    let back = Explanation::load_npz(&npz).unwrap();
    assert_eq!(back.values, e.values);
    assert_eq!(back.output_indices, e.output_indices);
    let rows = (0..2)
        .map(|i| ImagePlotRow {
            image: images[i * 784..(i + 1) * 784].to_vec(),
            title: None,
            values: (0..3).map(|o| e.value_map(i, o)).collect(),
            output_names: e.output_names[i].clone(),
        })
        .collect();
    let png = dir.path().join("e.png");
    let info = image_plot(
        &ImagePlot {
            height: 28,
            width: 28,
            channels: 1,
            rows,
        },
        ColorScale::Global,
        &png,
    )
    .unwrap();
    assert!(info.width > 400 && info.height > 200);
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}
