//! MuFidelity and ROAD (docs/metrics.md) against the NumPy/SciPy reference
//! (`fixtures/gen_metrics.py`), on a linear model whose exact explanation scores 1, and on
//! thread pools of 1 and 2 threads.
#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use shap_explain::metrics::Samples;
use shap_explain::{
    ConstantMasker, ExplainerConfig, Explanation, FnModel, ImageShape, Method, ModelError,
    MuFidelity, OutputSelection, PartitionBudget, PartitionSettings, Progress, Road, Target,
};

#[derive(Deserialize)]
struct Cases {
    mufidelity: Vec<MuCase>,
    imputation: Vec<ImputationCase>,
    road: Vec<RoadCase>,
}

#[derive(Deserialize)]
struct Image {
    height: usize,
    width: usize,
    channels: usize,
    image: Vec<f32>,
}

impl Image {
    fn shape(&self) -> ImageShape {
        ImageShape::new(self.height, self.width, self.channels)
    }
}

#[derive(Deserialize)]
struct Linear {
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
    class: usize,
    phi: Vec<f64>,
}

#[derive(Deserialize)]
struct MuCase {
    name: String,
    #[serde(flatten)]
    image: Image,
    #[serde(flatten)]
    model: Linear,
    grid: usize,
    baseline: f32,
    subsets: Vec<Vec<usize>>,
    expected: MuExpected,
}

#[derive(Deserialize)]
struct MuExpected {
    attr: Vec<f64>,
    drop: Vec<f64>,
    pearson: f64,
    spearman: f64,
}

#[derive(Deserialize)]
struct ImputationCase {
    name: String,
    #[serde(flatten)]
    image: Image,
    keep: Vec<bool>,
    expected: Vec<f64>,
}

#[derive(Deserialize)]
struct RoadCase {
    name: String,
    #[serde(flatten)]
    image: Image,
    #[serde(flatten)]
    model: Linear,
    percentages: Vec<u32>,
    expected: RoadExpected,
}

#[derive(Deserialize)]
struct RoadExpected {
    morf: Vec<f64>,
    lerf: Vec<f64>,
}

fn cases() -> Cases {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/metrics_cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `f(x) = W x + b`, accumulated in f64 from the f32 inputs and rounded to f32 once (as the
/// reference computes it).
fn linear(weights: Vec<Vec<f64>>, bias: Vec<f64>) -> impl shap_explain::BatchModel {
    FnModel::new(
        bias.len(),
        move |x: &[f32], n, s: ImageShape, out: &mut [f32]| {
            let (m, k) = (s.features(), bias.len());
            for (img, o) in x.chunks_exact(m).zip(out.chunks_exact_mut(k)).take(n) {
                for (c, o) in o.iter_mut().enumerate() {
                    let z: f64 = img
                        .iter()
                        .zip(&weights[c])
                        .map(|(&v, w)| f64::from(v) * w)
                        .sum();
                    *o = (z + bias[c]) as f32;
                }
            }
            Ok::<(), ModelError>(())
        },
    )
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{j}]: {g} against {w}");
    }
}

#[test]
fn mufidelity_equals_the_numpy_reference() {
    for case in cases().mufidelity {
        let model = linear(case.model.weights, case.model.bias);
        let scorer = MuFidelity {
            grid: case.grid,
            baseline: case.baseline,
            ..MuFidelity::default()
        }
        .check()
        .unwrap();
        let got: Samples = scorer
            .samples(
                &model,
                &case.image.image,
                case.image.shape(),
                case.model.class,
                &case.model.phi,
                &case.subsets,
            )
            .unwrap();
        let name = &case.name;
        close(
            &got.attr,
            &case.expected.attr,
            1e-12,
            &format!("{name} attr"),
        );
        close(&got.drop, &case.expected.drop, 0.0, &format!("{name} drop"));
        close(&[got.pearson], &[case.expected.pearson], 1e-9, name);
        close(&[got.spearman], &[case.expected.spearman], 1e-9, name);
    }
}

#[test]
fn linear_imputation_equals_the_scipy_reference() {
    for case in cases().imputation {
        let got =
            shap_mask::linear_impute(&case.image.image, case.image.shape(), &case.keep).unwrap();
        close(&got, &case.expected, 1e-10, &case.name);
    }
}

#[test]
fn road_curves_equal_the_numpy_reference_without_noise() {
    for case in cases().road {
        let model = linear(case.model.weights, case.model.bias);
        let scorer = Road {
            percentages: case.percentages,
            noise: 0.0,
            ..Road::default()
        }
        .check()
        .unwrap();
        let got = scorer
            .curves(
                &model,
                &case.image.image,
                case.image.shape(),
                case.model.class,
                &case.model.phi,
                0,
            )
            .unwrap();
        close(&got.morf, &case.expected.morf, 1e-9, &case.name);
        close(&got.lerf, &case.expected.lerf, 1e-9, &case.name);
    }
}

/// A linear model explained exactly against a constant background: `φ = w (x - b)`.
fn exact_linear_explanation(baseline: f32) -> (impl shap_explain::BatchModel, Explanation) {
    let shape = ImageShape::new(9, 9, 1);
    let m = shape.features();
    let w: Vec<f64> = (0..m)
        .map(|j| (((j * 37) % 17) as f64 - 8.0) / 16.0)
        .collect();
    let images: Vec<f32> = (0..3 * m).map(|j| ((j * 11) % 16) as f32 / 16.0).collect();
    let model = linear(vec![w], vec![0.25]);
    let e = ExplainerConfig {
        outputs: OutputSelection::All,
        method: Method::Partition(PartitionSettings {
            budget: PartitionBudget::Exact,
            ..PartitionSettings::default()
        }),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap()
    .explain(&model, &images, shape, &ConstantMasker { value: baseline })
    .unwrap();
    (model, e)
}

struct Quiet;
impl Progress for Quiet {
    fn image_done(&self, _: usize, _: usize) {}
}

#[test]
fn an_exact_explanation_of_a_linear_model_has_mufidelity_one() {
    for baseline in [0.0, 0.5] {
        let (model, e) = exact_linear_explanation(baseline);
        let report = MuFidelity {
            grid: 9,
            baseline,
            target: Target::All,
            ..MuFidelity::default()
        }
        .check()
        .unwrap()
        .score(&model, &e, &Quiet)
        .unwrap();
        assert_eq!(report.images.len(), 3);
        assert!((report.pearson - 1.0).abs() < 1e-9, "{}", report.pearson);
        assert!((report.spearman - 1.0).abs() < 1e-9, "{}", report.spearman);
        // The same values on the wrong pixels (each image's map mirrored) score far lower.
        let mut wrong = e.clone();
        wrong.values.chunks_mut(81).for_each(<[f64]>::reverse);
        let other = MuFidelity {
            grid: 9,
            baseline,
            target: Target::All,
            ..MuFidelity::default()
        }
        .check()
        .unwrap()
        .score(&model, &wrong, &Quiet)
        .unwrap();
        assert!(other.pearson < 0.5, "{}", other.pearson);
    }
}

#[test]
fn scores_are_the_same_on_one_and_two_threads() {
    let (model, e) = exact_linear_explanation(0.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mu = MuFidelity {
                target: Target::All,
                ..MuFidelity::default()
            };
            let road = Road {
                target: Target::All,
                ..Road::default()
            };
            (
                mu.check().unwrap().score(&model, &e, &Quiet).unwrap(),
                road.check().unwrap().score(&model, &e, &Quiet).unwrap(),
            )
        })
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn road_noise_is_seeded_and_has_the_asked_spread() {
    let case = cases().road.remove(0);
    let (image, shape) = (&case.image.image, case.image.shape());
    let model = linear(case.model.weights, case.model.bias);
    let curves = |noise: f64, seed: u64| {
        Road {
            percentages: vec![50],
            noise,
            seed,
            ..Road::default()
        }
        .check()
        .unwrap()
        .curves(&model, image, shape, case.model.class, &case.model.phi, 3)
        .unwrap()
    };
    assert_eq!(curves(0.01, 1), curves(0.01, 1));
    assert_ne!(curves(0.01, 1), curves(0.01, 2));
    // The noise moves the output a little, not far: the weights are about 0.02 and half of
    // the 100 pixels are imputed, so the change is of the order 0.02 * 0.01 * sqrt(50).
    let plain = curves(0.0, 1);
    let noisy = curves(0.01, 1);
    let moved = (noisy.morf[0] - plain.morf[0]).abs();
    assert!(moved > 0.0 && moved < 0.01, "{moved}");
}

#[test]
fn settings_that_cannot_score_are_refused() {
    let mu = MuFidelity::default();
    for bad in [
        MuFidelity { grid: 1, ..mu },
        MuFidelity {
            fraction: 1.0,
            ..mu
        },
        MuFidelity { samples: 1, ..mu },
        MuFidelity {
            baseline: f32::NAN,
            ..mu
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
    for percentages in [vec![], vec![20, 10], vec![100]] {
        let bad = Road {
            percentages,
            ..Road::default()
        };
        assert!(bad.clone().check().is_err(), "{bad:?}");
    }
    assert!(
        Road {
            noise: -1.0,
            ..Road::default()
        }
        .check()
        .is_err()
    );
    // A grid finer than the image is refused when scoring.
    let (model, e) = exact_linear_explanation(0.0);
    let fine = MuFidelity {
        grid: 10,
        ..MuFidelity::default()
    }
    .check()
    .unwrap();
    assert!(fine.score(&model, &e, &Quiet).is_err());
}
