//! Exact answers where they are known, convergence, budgets and determinism.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use shap_explain::{
    BackgroundImage, BatchModel, Compat, ConstantMasker, ExplainerConfig, Explanation,
    FixedContext, FnModel, ImageShape, Method, ModelError, OutputSelection, PartitionBudget,
    PartitionSettings, PartitionTree, PermutationBudget, PermutationSettings,
};

/// A deterministic pseudo-random value in [-1, 1).
fn h(i: usize, salt: usize) -> f64 {
    let v = ((i * 7919 + salt * 104_729 + 13) * 2_654_435_761usize) % 10_007;
    v as f64 / 5003.5 - 1.0
}

fn test_image(shape: ImageShape, salt: usize) -> Vec<f32> {
    (0..shape.features())
        .map(|i| (0.5 + 0.5 * h(i, salt)) as f32)
        .collect()
}

/// A box-blur-like background (mean of the 3x3 neighbourhood, clamped at the edges).
fn blurred(img: &[f32], s: ImageShape) -> Vec<f32> {
    let mut out = vec![0.0f32; img.len()];
    for r in 0..s.height {
        for c in 0..s.width {
            for ch in 0..s.channels {
                let (mut sum, mut cnt) = (0.0f64, 0.0f64);
                for rr in r.saturating_sub(1)..(r + 2).min(s.height) {
                    for cc in c.saturating_sub(1)..(c + 2).min(s.width) {
                        sum += f64::from(img[(rr * s.width + cc) * s.channels + ch]);
                        cnt += 1.0;
                    }
                }
                out[(r * s.width + c) * s.channels + ch] = (sum / cnt) as f32;
            }
        }
    }
    out
}

/// Linear model with `k` outputs: f_o(x) = sum_i w[i][o] x_i + o.
fn linear(m: usize, k: usize) -> (Vec<f64>, impl BatchModel) {
    let w: Vec<f64> = (0..m * k).map(|i| h(i, 3)).collect();
    let w2 = w.clone();
    let model = FnModel::new(
        k,
        move |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
            let m = s.features();
            for i in 0..n {
                for o in 0..k {
                    let z: f64 = (0..m)
                        .map(|f| f64::from(x[i * m + f]) * w2[f * k + o])
                        .sum();
                    out[i * k + o] = (z + o as f64) as f32;
                }
            }
            Ok::<(), ModelError>(())
        },
    );
    (w, model)
}

fn check_efficiency(e: &Explanation) {
    assert!(
        e.max_efficiency_error() <= 1e-5,
        "efficiency error {}",
        e.max_efficiency_error()
    );
    let recomputed = e.compute_efficiency_errors();
    assert_eq!(recomputed, e.efficiency_errors);
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn linear_model_is_exact_under_constant_and_blur_backgrounds() {
    let k = 3;
    for shape in [ImageShape::new(4, 4, 1), ImageShape::new(3, 5, 2)] {
        let m = shape.features();
        let (w, model) = linear(m, k);
        let img = test_image(shape, 1);
        let tree = PartitionTree::new(shape).unwrap();
        for bg in [vec![0.25f32; m], blurred(&img, shape)] {
            let prep = [BackgroundImage::new(img.clone(), bg.clone()).unwrap()];
            let expected: Vec<f64> = (0..m)
                .flat_map(|f| {
                    let d = f64::from(img[f]) - f64::from(bg[f]);
                    (0..k).map(move |o| (f, o, d))
                })
                .map(|(f, o, d)| w[f * k + o] * d)
                .collect();
            let config = ExplainerConfig {
                outputs: OutputSelection::All,
                method: Method::Partition(PartitionSettings {
                    budget: PartitionBudget::Exact,
                    ..PartitionSettings::default()
                }),
                ..ExplainerConfig::partition()
            };
            let ex = config.clone().check().unwrap();
            let exact_evals = ex.as_partition().unwrap().exact_evals(&tree);
            let e1 = ex.explain_prepared(&model, &img, shape, &prep).unwrap();
            let ex = ExplainerConfig {
                ..config.max_evals(exact_evals)
            }
            .check()
            .unwrap();
            let e2 = ex.explain_prepared(&model, &img, shape, &prep).unwrap();
            let p = ExplainerConfig {
                outputs: OutputSelection::All,
                method: Method::Permutation(PermutationSettings {
                    budget: PermutationBudget::Passes(1),
                    ..PermutationSettings::default()
                }),
                ..ExplainerConfig::permutation()
            }
            .check()
            .unwrap();
            let e3 = p.explain_prepared(&model, &img, shape, &prep).unwrap();
            for e in [&e1, &e2, &e3] {
                check_efficiency(e);
                assert!(
                    max_diff(&e.values, &expected) < 2e-6,
                    "{shape}: {}",
                    max_diff(&e.values, &expected)
                );
            }
            assert_eq!(e1.evals[0], exact_evals);
            assert_eq!(e2.evals[0], exact_evals);
        }
    }
}

/// f(z) = c + sum a_i z_i + sum_{i<j} B_ij z_i z_j with symmetric B (zero diagonal).
fn pairwise(m: usize) -> (Vec<f64>, Vec<f64>, impl BatchModel) {
    let a: Vec<f64> = (0..m).map(|i| h(i, 5)).collect();
    let mut b = vec![0.0; m * m];
    for i in 0..m {
        for j in (i + 1)..m {
            let v = 0.3 * h(i * m + j, 9);
            b[i * m + j] = v;
            b[j * m + i] = v;
        }
    }
    let (a2, b2) = (a.clone(), b.clone());
    let model = FnModel::new(
        1,
        move |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
            let m = s.features();
            for i in 0..n {
                let z: Vec<f64> = x[i * m..(i + 1) * m]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let mut f = 0.1;
                for p in 0..m {
                    f += a2[p] * z[p];
                    for q in (p + 1)..m {
                        f += b2[p * m + q] * z[p] * z[q];
                    }
                }
                out[i] = f as f32;
            }
            Ok::<(), ModelError>(())
        },
    );
    (a, b, model)
}

#[test]
fn pairwise_model_exact_after_one_antithetic_pass() {
    let shape = ImageShape::new(4, 4, 1);
    let m = shape.features();
    let (a, b, model) = pairwise(m);
    let img = test_image(shape, 2);
    let bg = blurred(&img, shape);
    let d: Vec<f64> = (0..m)
        .map(|i| f64::from(img[i]) - f64::from(bg[i]))
        .collect();
    // Shapley values of the pairwise game: d_i (a_i + sum_j B_ij bg_j + 0.5 sum_j B_ij d_j).
    let expected: Vec<f64> = (0..m)
        .map(|i| {
            let s1: f64 = (0..m).map(|j| b[i * m + j] * f64::from(bg[j])).sum();
            let s2: f64 = (0..m).map(|j| b[i * m + j] * d[j]).sum();
            d[i] * (a[i] + s1 + 0.5 * s2)
        })
        .collect();
    let prep = [BackgroundImage::new(img.clone(), bg).unwrap()];
    for seed in [0, 1, 2] {
        let p = ExplainerConfig {
            seed,
            method: Method::Permutation(PermutationSettings {
                budget: PermutationBudget::Passes(1),
                ..PermutationSettings::default()
            }),
            ..ExplainerConfig::permutation()
        }
        .check()
        .unwrap();
        let e = p.explain_prepared(&model, &img, shape, &prep).unwrap();
        check_efficiency(&e);
        assert!(
            max_diff(&e.values, &expected) < 2e-6,
            "seed {seed}: {}",
            max_diff(&e.values, &expected)
        );
    }
    // Owen values of a pairwise game equal its Shapley values.
    let ex = ExplainerConfig {
        method: Method::Partition(PartitionSettings {
            budget: PartitionBudget::Exact,
            ..PartitionSettings::default()
        }),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    let e = ex.explain_prepared(&model, &img, shape, &prep).unwrap();
    assert!(max_diff(&e.values, &expected) < 2e-6);
}

/// A model with higher-order interactions.
fn nonlinear() -> impl BatchModel {
    FnModel::new(2, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
        let m = s.features();
        for i in 0..n {
            let z: Vec<f64> = x[i * m..(i + 1) * m]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let lin: f64 = z.iter().enumerate().map(|(j, v)| h(j, 1) * v).sum();
            let lin2: f64 = z.iter().enumerate().map(|(j, v)| h(j, 2) * v).sum();
            let prod: f64 = z.iter().take(4).product();
            out[2 * i] = (lin.sin() * lin2 + prod) as f32;
            out[2 * i + 1] = (lin2 * lin2 * lin + z[m - 1] * z[0]) as f32;
        }
        Ok::<(), ModelError>(())
    })
}

/// Owen values by enumeration: for each leaf, average its marginal contribution over every
/// choice of "sibling present / absent" along its root path.
fn brute_force_owen(
    model: &impl BatchModel,
    prep: &BackgroundImage,
    shape: ImageShape,
) -> Vec<f64> {
    use shap_explain::MaskedImages;
    let tree = PartitionTree::new(shape).unwrap();
    let m = shape.features();
    let k = model.num_outputs();
    let f = |keep: &[bool]| -> Vec<f64> {
        let mut img = vec![0.0f32; m];
        prep.fill_batch(keep, &mut img).unwrap();
        let mut out = vec![0.0f32; k];
        model.eval_batch(&img, 1, shape, &mut out).unwrap();
        out.iter().map(|&v| f64::from(v)).collect()
    };
    // parent links
    let mut parent = vec![usize::MAX; tree.num_nodes()];
    for node in m..tree.num_nodes() {
        let (l, r) = tree.children(node).unwrap();
        parent[l] = node;
        parent[r] = node;
    }
    let mut values = vec![0.0; m * k];
    for leaf in 0..m {
        let mut siblings = Vec::new();
        let mut n = leaf;
        while parent[n] != usize::MAX {
            let (l, r) = tree.children(parent[n]).unwrap();
            siblings.push(if l == n { r } else { l });
            n = parent[n];
        }
        let d = siblings.len();
        for bits in 0..(1usize << d) {
            let mut keep = vec![false; m];
            for (t, &s) in siblings.iter().enumerate() {
                if bits >> t & 1 == 1 {
                    for &fe in tree.leaves(s) {
                        keep[fe] = true;
                    }
                }
            }
            let lo = f(&keep);
            keep[leaf] = true;
            let hi = f(&keep);
            for o in 0..k {
                values[leaf * k + o] += (hi[o] - lo[o]) / (1usize << d) as f64;
            }
        }
    }
    values
}

#[test]
fn exact_mode_equals_brute_force_owen_values() {
    let model = nonlinear();
    for shape in [
        ImageShape::new(2, 2, 1),
        ImageShape::new(4, 4, 1),
        ImageShape::new(2, 3, 2),
    ] {
        let img = test_image(shape, 4);
        let prep = BackgroundImage::new(img.clone(), blurred(&img, shape)).unwrap();
        let expected = brute_force_owen(&model, &prep, shape);
        let ex = ExplainerConfig {
            outputs: OutputSelection::All,
            method: Method::Partition(PartitionSettings {
                budget: PartitionBudget::Exact,
                ..PartitionSettings::default()
            }),
            ..ExplainerConfig::partition()
        }
        .check()
        .unwrap();
        let e = ex
            .explain_prepared(&model, &img, shape, std::slice::from_ref(&prep))
            .unwrap();
        check_efficiency(&e);
        let d = max_diff(&e.values, &expected);
        assert!(
            d < 1e-9,
            "{shape}: exact Owen differs from brute force by {d}"
        );
    }
}

#[test]
fn spec_tiny_example() {
    // docs/partition-explainer.md#worked-example: image [[1,2],[3,4]], constant 0 masker, outputs [x0 x1 + x2, x3 x0].
    let model = FnModel::new(2, |x: &[f32], n: usize, _s: ImageShape, out: &mut [f32]| {
        for i in 0..n {
            let z = &x[4 * i..4 * i + 4];
            out[2 * i] = z[0] * z[1] + z[2];
            out[2 * i + 1] = z[3] * z[0];
        }
        Ok::<(), ModelError>(())
    });
    let e = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(
            &model,
            &[1.0, 2.0, 3.0, 4.0],
            ImageShape::new(2, 2, 1),
            &ConstantMasker { value: 0.0 },
        )
        .unwrap();
    assert_eq!(e.values, vec![1.0, 2.0, 1.0, 0.0, 3.0, 0.0, 0.0, 2.0]);
    assert_eq!(e.base_values, vec![0.0, 0.0]);
    assert_eq!(e.fx, vec![5.0, 4.0]);
}

#[test]
fn permutation_converges_to_exact_owen_values() {
    let shape = ImageShape::new(4, 4, 1);
    let model = nonlinear();
    let img = test_image(shape, 6);
    let prep = [BackgroundImage::new(img.clone(), blurred(&img, shape)).unwrap()];
    let exact = ExplainerConfig {
        method: Method::Partition(PartitionSettings {
            budget: PartitionBudget::Exact,
            ..PartitionSettings::default()
        }),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap()
    .explain_prepared(&model, &img, shape, &prep)
    .unwrap();
    let config = ExplainerConfig {
        seed: 9,
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(3000),
            std_errors: true,
        }),
        ..ExplainerConfig::permutation()
    };
    let p = config.clone().check().unwrap();
    let e = p.explain_prepared(&model, &img, shape, &prep).unwrap();
    check_efficiency(&e);
    let se = e.std_errors.as_ref().unwrap();
    let scale = exact.values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut worst = 0.0f64;
    for ((v, x), s) in e.values.iter().zip(&exact.values).zip(se) {
        assert!(
            (v - x).abs() <= 5.0 * s + 1e-6 * scale,
            "permutation {v} vs exact {x} (se {s})"
        );
        worst = worst.max((v - x).abs());
    }
    assert!(worst < 0.05 * scale, "worst {worst} vs scale {scale}");
    // Standard errors shrink like 1/sqrt(P).
    let p2 = ExplainerConfig {
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(30),
            std_errors: true,
        }),
        ..config
    }
    .check()
    .unwrap();
    let e2 = p2.explain_prepared(&model, &img, shape, &prep).unwrap();
    let mean_se = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean_se(e2.std_errors.as_ref().unwrap()) > 5.0 * mean_se(se));
}

/// Records the size of every model call.
struct Recorder<M> {
    inner: M,
    calls: Mutex<Vec<usize>>,
}

impl<M: BatchModel> BatchModel for Recorder<M> {
    fn num_outputs(&self) -> usize {
        self.inner.num_outputs()
    }
    fn eval_batch(
        &self,
        x: &[f32],
        n: usize,
        s: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        self.calls.lock().unwrap().push(n);
        self.inner.eval_batch(x, n, s, out)
    }
}

#[test]
fn budget_accounting_matches_shap() {
    let shape = ImageShape::new(28, 28, 1);
    let (_, model) = linear(784, 10);
    let model = Recorder {
        inner: model,
        calls: Mutex::new(Vec::new()),
    };
    let img = test_image(shape, 7);
    for (me, want) in [(500, 500), (100, 100), (37, 38), (11, 12)] {
        model.calls.lock().unwrap().clear();
        let ex = ExplainerConfig {
            outputs: OutputSelection::TopK(5),
            ..ExplainerConfig::partition().max_evals(me)
        }
        .check()
        .unwrap();
        let e = ex
            .explain(&model, &img, shape, &ConstantMasker { value: 0.1 })
            .unwrap();
        assert_eq!(e.evals, vec![want], "max_evals {me}");
        check_efficiency(&e);
        let calls = model.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), want);
        if me == 500 {
            // f00 + f11 together, then the root (2), its 4 children (8), then steps of 10.
            assert_eq!(&calls[..4], &[2, 2, 8, 10]);
            assert!(calls.iter().all(|&c| c <= 10));
        }
    }
    // Exact mode costs (2 + 2 * sum over internal nodes of 2^depth).
    let exact = ExplainerConfig {
        method: Method::Partition(PartitionSettings {
            budget: PartitionBudget::Exact,
            ..PartitionSettings::default()
        }),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    let exact = exact.as_partition().unwrap();
    assert_eq!(
        exact.exact_evals(&PartitionTree::new(shape).unwrap()),
        461_484
    );
    assert_eq!(
        exact.exact_evals(&PartitionTree::new(ImageShape::new(8, 8, 1)).unwrap()),
        2_732
    );
    let ex = ExplainerConfig {
        compat: Compat::ShapV040,
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    let e = ex
        .explain(&model, &img, shape, &ConstantMasker { value: 0.1 })
        .unwrap();
    assert_eq!(e.evals, vec![252]);
    // Permutation: P = max_evals // (2M+1), 2M+1 masks per pass. f(x) comes first, alone (it
    // picks the outputs), and stands in for row M of the first pass: that pass's other rows
    // come in two calls, every later pass in one.
    model.calls.lock().unwrap().clear();
    let p = ExplainerConfig {
        ..ExplainerConfig::permutation().max_evals(3200)
    }
    .check()
    .unwrap();
    let e = p
        .explain(&model, &img, shape, &ConstantMasker { value: 0.1 })
        .unwrap();
    assert_eq!(e.evals, vec![2 * 1569]);
    assert_eq!(*model.calls.lock().unwrap(), vec![1, 784, 784, 1569]);
}

fn run_in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn same_seed_same_result_with_one_or_two_threads() {
    let shape = ImageShape::new(8, 8, 1);
    let model = nonlinear();
    let images: Vec<f32> = (0..3).flat_map(|s| test_image(shape, 10 + s)).collect();
    let masker = ConstantMasker { value: 0.0 };
    let part = ExplainerConfig {
        ..ExplainerConfig::partition().max_evals(200)
    }
    .check()
    .unwrap();
    let perm = ExplainerConfig {
        seed: 42,
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(3),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let a1 = run_in_pool(1, || part.explain(&model, &images, shape, &masker).unwrap());
    let a2 = run_in_pool(2, || part.explain(&model, &images, shape, &masker).unwrap());
    assert_eq!(a1.values, a2.values);
    assert_eq!(a1.evals, a2.evals);
    let b1 = run_in_pool(1, || perm.explain(&model, &images, shape, &masker).unwrap());
    let b2 = run_in_pool(2, || perm.explain(&model, &images, shape, &masker).unwrap());
    assert_eq!(b1.values, b2.values);
    // A different seed gives different orders, hence different (nonlinear) values.
    let perm2 = ExplainerConfig {
        seed: 43,
        ..perm.config().clone()
    }
    .check()
    .unwrap();
    let b3 = perm2.explain(&model, &images, shape, &masker).unwrap();
    assert_ne!(b1.values, b3.values);
    // Images are independent: explaining image 1 alone gives the same values.
    let single = part
        .explain(&model, &images[64..128], shape, &masker)
        .unwrap();
    assert_eq!(single.values, a1.image_values(1));
    for e in [&a1, &b1, &b3] {
        check_efficiency(e);
    }
}

#[test]
fn fixed_context_variants_are_efficient() {
    let shape = ImageShape::new(6, 5, 1);
    let model = nonlinear();
    let img = test_image(shape, 3);
    for fc in [
        FixedContext::Both,
        FixedContext::Absent,
        FixedContext::Present,
    ] {
        for budget in [
            PartitionBudget::MaxEvals(40),
            PartitionBudget::MaxEvals(120),
            PartitionBudget::Exact,
        ] {
            let ex = ExplainerConfig {
                method: Method::Partition(PartitionSettings {
                    budget,
                    fixed_context: fc,
                    ..PartitionSettings::default()
                }),
                ..ExplainerConfig::partition()
            }
            .check()
            .unwrap();
            let e = ex
                .explain(&model, &img, shape, &ConstantMasker { value: 0.2 })
                .unwrap();
            check_efficiency(&e);
        }
    }
}

#[test]
fn output_selection_and_names() {
    let shape = ImageShape::new(4, 4, 1);
    let (_, model) = linear(16, 4); // f_o = ... + o, so with a small image the top output is 3
    let img = vec![0.01f32; 16];
    let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let ex = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        output_names: Some(names.clone()),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    let e = ex
        .explain(&model, &img, shape, &ConstantMasker { value: 0.0 })
        .unwrap();
    assert_eq!(e.output_indices, vec![3, 2]);
    assert_eq!(e.output_names, vec![vec!["d".to_string(), "c".to_string()]]);
    let p = ExplainerConfig {
        outputs: OutputSelection::Indices(vec![1, 1, 0]),
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(1),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let e = p
        .explain(&model, &img, shape, &ConstantMasker { value: 0.0 })
        .unwrap();
    assert_eq!(e.output_indices, vec![1, 1, 0]);
    assert_eq!(
        e.output_names,
        vec![vec!["1".to_string(), "1".into(), "0".into()]]
    );
    assert_eq!(e.value_map(0, 0), e.value_map(0, 1));
    assert_eq!(shap_explain::top_k(&[0.1, 0.5, 0.5, 0.0], 3), vec![1, 2, 0]);
    assert_eq!(
        "top5".parse::<OutputSelection>().unwrap(),
        OutputSelection::TopK(5)
    );
    assert_eq!(
        "3,5".parse::<OutputSelection>().unwrap(),
        OutputSelection::Indices(vec![3, 5])
    );
    assert!("x".parse::<OutputSelection>().is_err());
}

#[test]
fn single_feature_and_multichannel_images() {
    let model = nonlinear();
    for shape in [
        ImageShape::new(1, 1, 1),
        ImageShape::new(1, 2, 1),
        ImageShape::new(3, 3, 3),
    ] {
        let img = test_image(shape, 8);
        let masker = ConstantMasker { value: 0.3 };
        let e = ExplainerConfig::partition()
            .check()
            .unwrap()
            .explain(&model, &img, shape, &masker)
            .unwrap();
        check_efficiency(&e);
        assert_eq!(e.values.len(), shape.features() * 2);
        let p = ExplainerConfig {
            method: Method::Permutation(PermutationSettings {
                budget: PermutationBudget::Passes(2),
                ..PermutationSettings::default()
            }),
            ..ExplainerConfig::permutation()
        }
        .check()
        .unwrap()
        .explain(&model, &img, shape, &masker)
        .unwrap();
        check_efficiency(&p);
        assert_eq!(p.evals, vec![2 * (2 * shape.features() + 1)]);
    }
}
