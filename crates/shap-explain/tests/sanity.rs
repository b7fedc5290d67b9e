//! The model-randomisation sanity check (docs/metrics.md, "Sanity check"): its similarities
//! against SciPy and scikit-image (`fixtures/gen_sanity.py`), explaining again, and a cascade
//! over linear models whose exact values are known.
#![allow(clippy::unwrap_used)]

use rand::{Rng, SeedableRng};
use serde::Deserialize;
use shap_explain::metrics::sanity::{self, SanityReport, Similarities, compare_maps};
use shap_explain::{
    Algorithm, ConstantMasker, ExplainerConfig, Explanation, FnModel, ImageShape, Method,
    ModelError, OutputSelection, PartitionBudget, PartitionSettings, Progress, Target,
};

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    height: usize,
    width: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    spearman_abs: f64,
    spearman: f64,
    ssim: f64,
}

struct Quiet;
impl Progress for Quiet {
    fn image_done(&self, _: usize, _: usize) {}
}

#[test]
fn similarities_equal_scipy_and_scikit_image() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sanity_cases.json");
    let cases: Cases = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(cases.cases.len(), 5);
    for c in cases.cases {
        let got = compare_maps(&c.a, &c.b, c.height, c.width).unwrap();
        let want = [c.spearman_abs, c.spearman, c.ssim];
        let have = [got.spearman_abs, got.spearman, got.ssim];
        for (what, (h, w)) in ["rank |v|", "rank v", "SSIM"]
            .iter()
            .zip(have.iter().zip(want))
        {
            assert!((h - w).abs() < 1e-9, "{}: {what} {h} != {w}", c.name);
        }
    }
}

#[test]
fn maps_that_cannot_be_compared_are_refused() {
    assert!(compare_maps(&[1.0; 4], &[1.0; 4], 2, 2).is_err());
    assert!(compare_maps(&[1.0; 9], &[1.0; 8], 3, 3).is_err());
    let same = compare_maps(
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.5],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.5],
        3,
        3,
    )
    .unwrap();
    assert_eq!(
        same,
        Similarities {
            spearman_abs: 1.0,
            spearman: 1.0,
            ssim: 1.0
        }
    );
}

const SHAPE: ImageShape = ImageShape {
    height: 8,
    width: 8,
    channels: 1,
};

/// `f(x) = v . (A x)` (one output), `A` with 3 rows: a two-layer linear network.
fn two_layer(a: &[Vec<f64>], v: &[f64]) -> impl shap_explain::BatchModel + use<> {
    let (a, v) = (a.to_vec(), v.to_vec());
    FnModel::new(
        1,
        move |x: &[f32], n: usize, _: ImageShape, out: &mut [f32]| {
            for i in 0..n {
                let img = &x[i * 64..(i + 1) * 64];
                let hidden = a.iter().map(|row| {
                    row.iter()
                        .zip(img)
                        .map(|(w, &p)| w * f64::from(p))
                        .sum::<f64>()
                });
                out[i] = hidden.zip(&v).map(|(h, v)| h * v).sum::<f64>() as f32;
            }
            Ok::<(), ModelError>(())
        },
    )
}

/// The effective weights `vA` of the two-layer network.
fn effective(a: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
    (0..64)
        .map(|j| a.iter().zip(v).map(|(row, v)| row[j] * v).sum())
        .collect()
}

fn random(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<f64> {
    // Multiples of 1/8, so every model output is exact in f32.
    (0..n)
        .map(|_| f64::from(rng.random_range(-8i32..=8)) / 8.0)
        .collect()
}

fn images() -> Vec<f32> {
    (0..2 * 64).map(|j| ((j * 7) % 8) as f32 / 8.0).collect()
}

fn exact_partition() -> shap_explain::Explainer {
    ExplainerConfig {
        outputs: OutputSelection::All,
        method: Method::Partition(PartitionSettings {
            budget: PartitionBudget::Exact,
            ..PartitionSettings::default()
        }),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap()
}

/// A cascade over a two-layer linear network explained exactly against a zero background,
/// where the values are `phi_j = (vA)_j x_j`: each step's similarities are those of the maps
/// the randomised weights give, computed here from that formula.
#[test]
fn a_cascade_over_a_linear_network_falls_as_its_exact_values_say() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let a: Vec<Vec<f64>> = (0..3).map(|_| random(&mut rng, 64)).collect();
    let v = random(&mut rng, 3);
    let (a2, v2) = (
        (0..3).map(|_| random(&mut rng, 64)).collect::<Vec<_>>(),
        random(&mut rng, 3),
    );
    let x = images();
    let masker = ConstantMasker { value: 0.0 };
    let explainer = exact_partition();
    let original = explainer
        .explain(&two_layer(&a, &v), &x, SHAPE, &masker)
        .unwrap();
    // Explained again by the same network, the explanation is the original.
    let same =
        sanity::explain_again(&explainer, &two_layer(&a, &v), &original, &masker, &Quiet).unwrap();
    assert_eq!(same.values, original.values);
    let mut steps = Vec::new();
    for (top, (a_t, v_t)) in [(&a, &v2), (&a2, &v2)].into_iter().enumerate() {
        let model = two_layer(a_t, v_t);
        let again = sanity::explain_again(&explainer, &model, &original, &masker, &Quiet).unwrap();
        let names = ["output", "hidden"][..=top]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let step = sanity::step(&original, &again, Target::All, names).unwrap();
        let (w0, w1) = (effective(&a, &v), effective(a_t, v_t));
        for (i, image) in step.images.iter().enumerate() {
            let img = &x[i * 64..(i + 1) * 64];
            let ideal = |w: &[f64]| -> Vec<f64> {
                w.iter().zip(img).map(|(w, &p)| w * f64::from(p)).collect()
            };
            let want = compare_maps(&ideal(&w0), &ideal(&w1), 8, 8).unwrap();
            let got = image.classes[0].scores;
            assert!(
                (got.spearman - want.spearman).abs() < 1e-9,
                "{got:?} {want:?}"
            );
            assert!((got.spearman_abs - want.spearman_abs).abs() < 1e-9);
            assert!((got.ssim - want.ssim).abs() < 1e-9);
        }
        steps.push(step);
    }
    // Random weights leave little of the original ranking.
    let report = SanityReport::new(
        Target::All,
        vec!["output".into(), "hidden".into()],
        3,
        steps,
    );
    assert!(report.passes, "{report}");
    assert!(report.steps[1].mean.spearman.abs() < 0.5, "{report}");
}

/// Explaining again gives each image its own random stream (Permutation), whatever the thread
/// count.
#[test]
fn explaining_again_reproduces_permutation_and_does_not_depend_on_threads() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let a: Vec<Vec<f64>> = (0..3).map(|_| random(&mut rng, 64)).collect();
    let v = random(&mut rng, 3);
    let model = two_layer(&a, &v);
    let explainer = ExplainerConfig {
        seed: 9,
        ..ExplainerConfig::new(Algorithm::Permutation).max_evals(400)
    }
    .check()
    .unwrap();
    let masker = ConstantMasker { value: 0.5 };
    let original = explainer
        .explain(&model, &images(), SHAPE, &masker)
        .unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            sanity::explain_again(&explainer, &model, &original, &masker, &Quiet).unwrap()
        })
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.values, original.values);
    assert_eq!(one.values, two.values);
    let wrong = Explanation {
        output_indices: vec![0, 1],
        ..original.clone()
    };
    assert!(sanity::step(&original, &wrong, Target::All, vec![]).is_err());
}
