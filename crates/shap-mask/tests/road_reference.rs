//! The ROAD imputation (docs/metrics.md, "ROAD") against the ROAD authors' own
//! `NoisyLinearImputer` with noise 0 (`fixtures/gen_road_reference.py`, which returns float32):
//! every pixel within float32 rounding, kept pixels exactly.
#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use shap_mask::{ImageShape, linear_impute};

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    height: usize,
    width: usize,
    channels: usize,
    image: Vec<f32>,
    keep: Vec<bool>,
    imputed: Vec<f32>,
}

#[test]
fn imputation_equals_the_road_reference_imputer() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/road_reference_cases.json"
    );
    let cases: Cases = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(cases.cases.len(), 4);
    for c in cases.cases {
        let shape = ImageShape::new(c.height, c.width, c.channels);
        let ours = linear_impute(&c.image, shape, &c.keep).unwrap();
        for (j, (&got, &want)) in ours.iter().zip(&c.imputed).enumerate() {
            let kept = c.keep[j / c.channels];
            if kept {
                assert_eq!(got as f32, want, "{}: kept value {j}", c.name);
            } else {
                // The reference solves in f64 and returns f32: within half an f32 ulp or so.
                let tol = 1e-6 * f64::from(want.abs()).max(1.0);
                assert!(
                    (got - f64::from(want)).abs() <= tol,
                    "{}: value {j}: {got} vs {want}",
                    c.name
                );
            }
        }
    }
}
