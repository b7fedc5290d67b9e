//! Golden tests against shap 0.51 (fixtures from `fixtures/gen_explain_fixtures.py`).
#![allow(clippy::unwrap_used)]

mod common;

use common::{QuadModel, fixture, get, load};
use serde_json::Value;
use shap_explain::{
    Algorithm, BackgroundImage, Compat, ExplainerConfig, FixedContext, ImageShape, Method,
    OutputSelection, PartitionBudget, PartitionSettings,
};
use shap_mask::MaskerSpec;

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("explain_cases.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn shape_of(c: &Value) -> ImageShape {
    let s: Vec<usize> = c["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    ImageShape::new(s[0], s[1], s[2])
}

fn prepared(
    arrays: &[(String, shap_io::npy::NpyArray)],
    m: usize,
) -> (Vec<f32>, Vec<BackgroundImage>) {
    let images = get(arrays, "images").to_f32().unwrap();
    let bg = get(arrays, "background").to_f32().unwrap();
    let prep = images
        .chunks(m)
        .zip(bg.chunks(m))
        .map(|(x, b)| BackgroundImage::new(x.to_vec(), b.to_vec()).unwrap())
        .collect();
    (images, prep)
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, &x| a.max(x.abs()))
}

#[test]
fn partition_matches_shap() {
    let mut n_cases = 0;
    for c in cases().iter().filter(|c| c["kind"] == "partition") {
        let name = c["name"].as_str().unwrap();
        let shape = shape_of(c);
        let m = shape.features();
        let arrays = load(&format!("explain_{name}.npz"));
        let (images, prep) = prepared(&arrays, m);
        let model = QuadModel::new(m);
        let config = ExplainerConfig {
            compat: Compat::Shap,
            seed: c["seed"].as_u64().unwrap(),
            outputs: match c["top_k"].as_u64() {
                None => OutputSelection::All,
                Some(k) => OutputSelection::TopK(k as usize),
            },
            method: Method::Partition(PartitionSettings {
                budget: PartitionBudget::MaxEvals(c["max_evals"].as_u64().unwrap() as usize),
                batch_size: c["batch_size"].as_u64().unwrap() as usize,
                fixed_context: match c["fixed_context"].as_u64() {
                    None => FixedContext::Both,
                    Some(0) => FixedContext::Absent,
                    Some(_) => FixedContext::Present,
                },
            }),
            ..ExplainerConfig::partition()
        };
        let ex = config.clone().check().unwrap();
        let spec: MaskerSpec = c["masker"].as_str().unwrap().parse().unwrap();
        // shap's masker: the one compat switch sets the masker's mode too.
        let masker = ex.masker(spec);
        let via_masker = ex.explain(&model, &images, shape, &masker).unwrap();
        let e = if spec.is_inpaint() {
            via_masker
        } else {
            // Fixed backgrounds from the fixture (cv2.blur / the constant) and shap_mask's own
            // blur/constant masker agree exactly.
            let e = ex.explain_prepared(&model, &images, shape, &prep).unwrap();
            assert_eq!(
                e.values, via_masker.values,
                "{name}: shap_mask masker vs fixture background"
            );
            e
        };
        let want = get(&arrays, "values").to_f64().unwrap();
        let want_base = get(&arrays, "base_values").to_f64().unwrap();
        let want_oi: Vec<usize> = get(&arrays, "output_indices")
            .to_f64()
            .unwrap()
            .iter()
            .map(|&x| x as usize)
            .collect();
        assert_eq!(e.output_indices, want_oi, "{name}: output indices");
        assert_eq!(e.values.len(), want.len(), "{name}");
        let diff = e
            .values
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let scale = max_abs(&want);
        assert!(
            diff <= 1e-6 * scale,
            "{name}: max diff {diff} vs max |value| {scale}"
        );
        // With the NumPy-legacy tie-break and a bit-reproducible model we match shap exactly.
        assert_eq!(e.values, want, "{name}: values not bit-identical");
        assert_eq!(e.base_values, want_base, "{name}: base values");
        assert!(
            e.max_efficiency_error() <= 1e-5,
            "{name}: efficiency {}",
            e.max_efficiency_error()
        );
        let me = c["max_evals"].as_u64().unwrap() as usize;
        for &ev in &e.evals {
            assert!(ev <= me + 1, "{name}: {ev} evaluations for max_evals {me}");
        }
        // The exhaustive case equals exact mode (up to summation order).
        if name.contains("exact") {
            let ex = ExplainerConfig {
                method: Method::Partition(PartitionSettings {
                    budget: PartitionBudget::Exact,
                    ..PartitionSettings::default()
                }),
                ..config
            }
            .check()
            .unwrap();
            let ex_e = ex.explain(&model, &images, shape, &masker).unwrap();
            let d = ex_e
                .values
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(d <= 1e-12, "{name}: exact mode differs by {d}");
            assert_eq!(
                ex_e.evals[0],
                ex.as_partition()
                    .unwrap()
                    .exact_evals(&shap_explain::PartitionTree::new(shape).unwrap())
            );
        }
        n_cases += 1;
    }
    assert!(n_cases >= 10);
}

#[test]
fn permutation_matches_shap_bit_for_bit() {
    let mut n_cases = 0;
    for c in cases().iter().filter(|c| c["kind"] == "permutation") {
        let name = c["name"].as_str().unwrap();
        let shape = shape_of(c);
        let m = shape.features();
        let keep = c["keep_outputs"].as_u64().unwrap() as usize;
        let arrays = load(&format!("explain_{name}.npz"));
        let (images, prep) = prepared(&arrays, m);
        let n = images.len() / m;
        let model = QuadModel::new(m);
        let orders_flat: Vec<usize> = get(&arrays, "orders")
            .to_f64()
            .unwrap()
            .iter()
            .map(|&x| x as usize)
            .collect();
        let passes = orders_flat.len() / (n * m);
        let orders: Vec<Vec<Vec<usize>>> = (0..n)
            .map(|i| {
                (0..passes)
                    .map(|p| orders_flat[(i * passes + p) * m..(i * passes + p + 1) * m].to_vec())
                    .collect()
            })
            .collect();
        let ex = ExplainerConfig {
            compat: Compat::Shap,
            seed: c["seed"].as_u64().unwrap(),
            ..ExplainerConfig::permutation().max_evals(c["max_evals"].as_u64().unwrap() as usize)
        }
        .check()
        .unwrap();
        let perm = ex.as_permutation().unwrap();
        // Our emulation of numba's generator + shap's tree shuffle gives shap's orders.
        assert_eq!(perm.orders(n, shape).unwrap(), orders, "{name}: orders");
        let want = get(&arrays, "values").to_f64().unwrap();
        let want_base = get(&arrays, "base_values").to_f64().unwrap();
        for e in [
            perm.explain_with_orders(&model, &images, shape, &prep, &orders)
                .unwrap(),
            ex.explain_prepared(&model, &images, shape, &prep).unwrap(),
        ] {
            assert_eq!(e.num_outputs, 10);
            assert_eq!(e.output_names[0][3], "Output 3");
            let ours: Vec<f64> = e
                .values
                .chunks(10)
                .flat_map(|r| r[..keep].to_vec())
                .collect();
            assert_eq!(ours, want, "{name}: values not bit-identical");
            let base: Vec<f64> = e
                .base_values
                .chunks(10)
                .flat_map(|r| r[..keep].to_vec())
                .collect();
            assert_eq!(base, want_base, "{name}: base values");
            assert_eq!(e.evals, vec![passes * (2 * m + 1); n]);
            assert!(e.max_efficiency_error() <= 1e-5);
        }
        n_cases += 1;
    }
    assert_eq!(n_cases, 2);
}

#[test]
fn shap_compatible_constructors_match_fixture_settings() {
    let p = ExplainerConfig::shap(Algorithm::Partition, 500, 42);
    let shap_default = PartitionSettings {
        budget: PartitionBudget::MaxEvals(500),
        batch_size: 10,
        fixed_context: FixedContext::Both,
    };
    assert_eq!(p.method, Method::Partition(shap_default));
    assert_eq!((p.compat, p.seed), (Compat::Shap, 42));
    let q = ExplainerConfig::shap(Algorithm::Permutation, 1600, 13)
        .check()
        .unwrap();
    assert_eq!(q.config().compat, Compat::Shap);
    let q = q.as_permutation().unwrap();
    assert_eq!(q.num_passes(784).unwrap(), 1);
    // The recorded shap order of the 28x28 fixture is reproduced by the constructor's settings.
    let arrays = load("explain_q28_blur_1pass.npz");
    let order: Vec<usize> = get(&arrays, "orders")
        .to_f64()
        .unwrap()
        .iter()
        .map(|&x| x as usize)
        .collect();
    let ours = q.orders(1, ImageShape::new(28, 28, 1)).unwrap();
    assert_eq!(ours[0][0], order);
}

#[test]
fn default_fifo_tie_break_matches_shap_when_priorities_do_not_tie() {
    // blur(28,28) on float data: no exact priority ties (docs/partition-explainer.md#when-do-ties-happen), so the
    // deterministic default equals shap whatever NumPy's seed was.
    let arrays = load("explain_p28_blur_500.npz");
    let shape = ImageShape::new(28, 28, 1);
    let (images, prep) = prepared(&arrays, 784);
    let ex = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    let e = ex
        .explain_prepared(&QuadModel::new(784), &images, shape, &prep)
        .unwrap();
    assert_eq!(e.values, get(&arrays, "values").to_f64().unwrap());
}
