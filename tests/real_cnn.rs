//! End-to-end checks of explanations of the real tutorial CNN (trained on real Fashion-MNIST
//! images), independent of the explainers' own bookkeeping:
//!
//! - the model's prediction on the original image, evaluated separately, equals
//!   `base + sum(values)` for every default masker and both explainers (the recorded
//!   efficiency error only compares the values with the explainer's own first evaluations);
//! - explanations are bit-identical on 1 and 2 threads, on both evaluation paths (the full
//!   network and `IncrementalCnn`).
//!
//! Needs the dataset (CI installs the Debian package); `SHAP_SKIP_REAL_DATA=1` skips.

use std::sync::OnceLock;

use shap_toolkit::data::FashionMnist;
use shap_toolkit::explain::{
    BatchModel, Explainer, ExplainerConfig, Explanation, ImageShape, OutputSelection,
};
use shap_toolkit::mask::{MaskMode, Masker};
use shap_toolkit::model::{
    Cnn, Dataset, Head, IncrementalCnn, ModelFn, Preset, TrainConfig, Trainer,
};

const SHAPE: ImageShape = ImageShape::new(28, 28, 1);
/// The default maskers of the CLI and the tutorial.
const MASKERS: [&str; 3] = ["blur(28,28)", "inpaint_telea", "inpaint_ns"];

/// A CNN trained for one epoch on 2,000 real images, and 3 real test images; `None` when the
/// data is missing and `SHAP_SKIP_REAL_DATA=1`.
fn trained() -> Option<&'static (Cnn, Vec<f32>)> {
    static CELL: OnceLock<Option<(Cnn, Vec<f32>)>> = OnceLock::new();
    CELL.get_or_init(|| {
        let data = match FashionMnist::load(None) {
            Ok(d) => d,
            Err(e) if std::env::var("SHAP_SKIP_REAL_DATA").as_deref() == Ok("1") => {
                eprintln!("skipping (SHAP_SKIP_REAL_DATA=1): {e}");
                return None;
            }
            Err(e) => panic!("Fashion-MNIST not found ({e}); set SHAP_SKIP_REAL_DATA=1 to skip"),
        };
        let train_set = Dataset::new(data.train.images(), data.train.labels())
            .expect("train set")
            .take(2000);
        let mut cfg = TrainConfig::preset(Preset::Keras);
        cfg.epochs = 1;
        let cnn = Cnn::seeded(cfg.seed, Head::Softmax, &candle_core::Device::Cpu).expect("cnn");
        Trainer::new(cfg.clone())
            .expect("config")
            .train(&cnn, &train_set, None, |_| {})
            .expect("training");
        let images = data.test.images_f32(&[0, 1, 2]).expect("images");
        Some((cnn, images))
    })
    .as_ref()
}

fn partition() -> Explainer {
    ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::partition()
    }
    .check()
    .expect("partition settings")
}

fn permutation() -> Explainer {
    ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::permutation().max_evals(2 * (2 * 784 + 1))
    }
    .check()
    .expect("permutation settings")
}

fn masker(spec: &str) -> Masker {
    Masker::new(spec.parse().expect("masker spec"), MaskMode::Default)
}

/// `base + sum(values)` equals `f(x)` from a separate evaluation of the original images, for
/// every explained class.
fn assert_sums_to_prediction(e: &Explanation, predictions: &[f32], what: &str) {
    let (m, k) = (e.num_features(), e.num_outputs);
    for i in 0..e.num_images {
        let values = e.image_values(i);
        for o in 0..k {
            let class = e.output_indices[i * k + o];
            let fx = f64::from(predictions[i * 10 + class]);
            let sum: f64 = (0..m).map(|f| values[f * k + o]).sum();
            let total = e.base_values[i * k + o] + sum;
            assert!(
                (total - fx).abs() <= 1e-5,
                "{what}, image {i}, class {class}: base + sum(values) = {total}, f(x) = {fx}"
            );
        }
    }
}

#[test]
fn base_plus_values_is_the_models_prediction_on_the_original_image() {
    let Some((cnn, images)) = trained() else {
        return;
    };
    let full = ModelFn::new(cnn).expect("model");
    let incremental = IncrementalCnn::new(cnn).expect("incremental model");
    // The model's own prediction, evaluated apart from any explainer.
    let predictions = full.predict(images).expect("prediction");
    let paths: [(&str, &dyn BatchModel); 2] = [("full", &full), ("incremental", &incremental)];
    for spec in MASKERS {
        for (path, model) in paths {
            for explainer in [partition(), permutation()] {
                let algo = explainer.algorithm();
                let e = explainer
                    .explain(model, images, SHAPE, &masker(spec))
                    .unwrap_or_else(|e| panic!("{algo}: {e}"));
                assert_sums_to_prediction(&e, &predictions, &format!("{algo}, {spec}, {path}"));
            }
        }
    }
}

/// The check above can fail: shap-compatible inpainting explains f(trunc(x)), the image
/// truncated to 8 bits (almost black), so its values do not add up to the model's f(x).
#[test]
fn shap_compat_inpainting_explains_the_truncated_image_not_x() {
    let Some((cnn, images)) = trained() else {
        return;
    };
    let model = ModelFn::new(cnn).expect("model");
    let predictions = model.predict(images).expect("prediction");
    let compat = Masker::new(
        "inpaint_telea".parse().expect("masker spec"),
        MaskMode::ShapCompat,
    );
    let e = partition()
        .explain(&model, images, SHAPE, &compat)
        .expect("partition");
    let truncated: Vec<f32> = images.iter().map(|v| v.trunc()).collect();
    let on_truncated = model.predict(&truncated).expect("prediction");
    assert_sums_to_prediction(&e, &on_truncated, "shap-compat inpainting, f(trunc(x))");
    let gap = (0..e.num_images)
        .flat_map(|i| (0..e.num_outputs).map(move |o| (i, o)))
        .map(|(i, o)| {
            let class = e.output_indices[i * e.num_outputs + o];
            (e.fx[i * e.num_outputs + o] - f64::from(predictions[i * 10 + class])).abs()
        })
        .fold(0.0, f64::max);
    assert!(
        gap > 1e-3,
        "f(trunc(x)) should differ from f(x); largest gap {gap}"
    );
}

/// One explanation on a fresh pool of `threads` threads (and a fresh incremental state).
fn on_threads(threads: usize, run: impl FnOnce() -> Explanation + Send) -> Explanation {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(run)
}

#[test]
fn explanations_are_bit_identical_on_one_and_two_threads() {
    let Some((cnn, images)) = trained() else {
        return;
    };
    let full = ModelFn::new(cnn).expect("model");
    for spec in ["blur(28,28)", "inpaint_telea"] {
        let masker = masker(spec);
        let runs = |threads: usize| {
            let incremental = IncrementalCnn::new(cnn).expect("incremental model");
            let models: [&dyn BatchModel; 2] = [&full, &incremental];
            models
                .iter()
                .flat_map(|&model| {
                    [partition(), permutation()].map(|explainer| {
                        on_threads(threads, || {
                            explainer
                                .explain(model, images, SHAPE, &masker)
                                .unwrap_or_else(|e| panic!("{}: {e}", explainer.algorithm()))
                        })
                    })
                })
                .collect::<Vec<_>>()
        };
        let (one, two) = (runs(1), runs(2));
        for (a, b) in one.iter().zip(&two) {
            let what = format!("{spec}, {}", a.algorithm);
            assert_eq!(a.output_indices, b.output_indices, "{what}");
            let bits = |e: &Explanation| e.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(a) == bits(b),
                "{what}: values differ between 1 and 2 threads"
            );
            assert!(
                a.base_values
                    .iter()
                    .map(|v| v.to_bits())
                    .eq(b.base_values.iter().map(|v| v.to_bits())),
                "{what}: base values differ"
            );
        }
    }
}
