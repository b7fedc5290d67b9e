//! The baselines `shap-cli compare` scores beside the explanations (docs/metrics.md,
//! "Comparing explanations"): occlusion on a linear model, where each square's drop is known,
//! seeded random values, and the choice of the best explanation.
#![allow(clippy::unwrap_used)]

use shap_explain::metrics::baselines::{occlusion, random};
use shap_explain::metrics::compare::{Compared, ComparisonReport, TrustScores};
use shap_explain::{
    Aucs, ConstantMasker, ExplainerConfig, Explanation, FnModel, ImageShape, ModelError,
    OutputSelection, Target,
};

const SHAPE: ImageShape = ImageShape {
    height: 6,
    width: 5,
    channels: 2,
};

/// Two outputs, each linear in the pixels: `f_c(x) = sum_j w_cj x_j`.
fn weights(c: usize, j: usize) -> f64 {
    (((j * 7 + c * 3) % 11) as f64 - 5.0) / 8.0
}

fn model() -> impl shap_explain::BatchModel {
    FnModel::new(2, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
        let m = s.features();
        for i in 0..n {
            for c in 0..2 {
                let z: f64 = (0..m)
                    .map(|j| weights(c, j) * f64::from(x[i * m + j]))
                    .sum();
                out[i * 2 + c] = z as f32;
            }
        }
        Ok::<(), ModelError>(())
    })
}

fn explanation() -> Explanation {
    let images: Vec<f32> = (0..3 * SHAPE.features())
        .map(|j| ((j * 5) % 8) as f32 / 8.0)
        .collect();
    ExplainerConfig {
        outputs: OutputSelection::All,
        ..ExplainerConfig::partition().max_evals(100)
    }
    .check()
    .unwrap()
    .explain(&model(), &images, SHAPE, &ConstantMasker { value: 0.0 })
    .unwrap()
}

#[test]
fn occlusion_gives_each_square_the_drop_of_hiding_it() {
    let e = explanation();
    let o = occlusion(&model(), &e, &ConstantMasker { value: 0.0 }, 4).unwrap();
    let (m, k) = (SHAPE.features(), 2);
    assert_eq!(
        (o.values.len(), o.output_indices.clone()),
        (e.values.len(), e.output_indices.clone())
    );
    // Squares of 4 x 4 pixels from the top left: rows 0-3 and 4-5, columns 0-3 and 4.
    let square = |px: usize| ((px / 5) / 4, (px % 5) / 4);
    for i in 0..3 {
        for c in 0..2 {
            for sq in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let feats: Vec<usize> = (0..m).filter(|f| square(f / 2) == sq).collect();
                let drop: f64 = feats
                    .iter()
                    .map(|&f| weights(c, f) * f64::from(e.data[i * m + f]))
                    .sum();
                let got: Vec<f64> = feats
                    .iter()
                    .map(|&f| o.values[(i * m + f) * k + c])
                    .collect();
                assert!(
                    (got.iter().sum::<f64>() - drop).abs() < 1e-5,
                    "{got:?} {drop}"
                );
                assert!(
                    got.iter().all(|v| (v - got[0]).abs() < 1e-12),
                    "one value per square"
                );
            }
        }
    }
    assert!(occlusion(&model(), &e, &ConstantMasker { value: 0.0 }, 0).is_err());
    let pool = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    let one =
        pool(1).install(|| occlusion(&model(), &e, &ConstantMasker { value: 0.0 }, 3).unwrap());
    let two =
        pool(2).install(|| occlusion(&model(), &e, &ConstantMasker { value: 0.0 }, 3).unwrap());
    assert_eq!(one.values, two.values);
}

#[test]
fn random_values_are_seeded_standard_normal_draws() {
    let e = explanation();
    let (a, b, c) = (random(&e, 1), random(&e, 1), random(&e, 2));
    assert_eq!(a.values, b.values);
    assert_ne!(a.values, c.values);
    let n = a.values.len() as f64;
    let mean = a.values.iter().sum::<f64>() / n;
    let var = a.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.15 && (var - 1.0).abs() < 0.25,
        "{mean} {var}"
    );
    assert_eq!((a.fx, a.data), (e.fx, e.data));
}

#[test]
fn the_best_by_each_measure_is_named_and_ties_go_to_the_first() {
    let row = |name: &str, del: f64, mu: f64| Compared {
        name: name.into(),
        baseline: false,
        aucs: Aucs {
            deletion_auc: 0.0,
            insertion_auc: 0.5,
            random_deletion_auc: del,
            random_insertion_auc: 0.5,
        },
        mufidelity_spearman: mu,
        road_morf: 0.0,
        road_lerf: 0.0,
        scores: TrustScores::new(
            &Aucs {
                deletion_auc: 0.0,
                insertion_auc: 0.5,
                random_deletion_auc: del,
                random_insertion_auc: 0.5,
            },
            mu,
            0.0,
        ),
    };
    let r = ComparisonReport::new(
        Target::Predicted,
        vec![row("a", 0.2, 0.1), row("b", 0.3, 0.1)],
    );
    assert_eq!(r.best, ["b", "a", "a", "a"]);
    let table = r.to_string();
    assert!(
        table.contains("best: deletion gap: b; insertion gap: a;"),
        "{table}"
    );
}
