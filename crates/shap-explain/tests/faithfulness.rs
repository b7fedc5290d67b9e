//! Deletion and insertion curves (docs/faithfulness.md): the ideal order of a linear model, a
//! hand-computed 2x2 case, and independence from the thread count.
#![allow(clippy::unwrap_used)]

mod common;

use shap_explain::{
    Algorithm, ConstantMasker, ExplainerConfig, Explanation, Faithfulness, FnModel, ImageInfo,
    ImageMasker, ImageShape, Method, ModelError, OutputSelection, PartitionBudget,
    PartitionSettings, Target, auc, class_summary, features_at, order_by,
};
use shap_mask::{MaskMode, Masker, MaskerSpec};

fn blur(k: usize) -> Masker {
    let spec: MaskerSpec = format!("blur({k},{k})").parse().unwrap();
    Masker::new(spec, MaskMode::Default)
}

/// `f(x) = sum_j w_j x_j` (one output), in f64 then rounded once.
fn linear(w: Vec<f64>) -> impl shap_explain::BatchModel {
    FnModel::new(1, move |x: &[f32], n, s: ImageShape, out: &mut [f32]| {
        let m = s.features();
        for (img, o) in x.chunks_exact(m).zip(out.iter_mut()).take(n) {
            *o = img
                .iter()
                .zip(&w)
                .map(|(&v, w)| f64::from(v) * w)
                .sum::<f64>() as f32;
        }
        Ok::<(), ModelError>(())
    })
}

/// Under a background masker (blur), a linear model's values are `w_j (x_j - b_j)`, and hiding
/// the features with the largest of them first gives, at every step, the lowest output any set
/// of that many hidden features can give. Checked against all 2^16 subsets of a 4x4 image.
#[test]
fn linear_model_gets_the_best_possible_deletion_curve() {
    let shape = ImageShape::new(4, 4, 1);
    let m = shape.features();
    let img: Vec<f32> = (0..m).map(|j| ((j * 7 + 3) % 11) as f32 / 10.0).collect();
    let w: Vec<f64> = (0..m)
        .map(|j| common::weight(j as u64, 0, 5, 2.0))
        .collect();
    let model = linear(w);
    let masker = blur(3);
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
    .explain(&model, &img, shape, &masker)
    .unwrap();
    let f = Faithfulness {
        steps: m,
        random: 3,
        seed: 1,
        target: Target::All,
    };
    let report = f.check().unwrap().score(&model, &e, &masker).unwrap();
    let curves = &report.images[0].classes[0].curves;

    // Brute force: the lowest and highest output with exactly n features hidden.
    let prepared = ImageMasker::prepare(&masker, &img, shape).unwrap();
    let (mut lowest, mut highest) = (vec![f64::INFINITY; m + 1], vec![f64::NEG_INFINITY; m + 1]);
    for set in 0u32..1 << m {
        let keeps: Vec<bool> = (0..m).map(|j| set & (1 << j) == 0).collect();
        let mut masked = vec![0.0f32; m];
        prepared.fill_batch(&keeps, &mut masked).unwrap();
        let mut out = [0.0f32];
        shap_explain::BatchModel::eval_batch(&model, &masked, 1, shape, &mut out).unwrap();
        let hidden = set.count_ones() as usize;
        lowest[hidden] = lowest[hidden].min(f64::from(out[0]));
        highest[m - hidden] = highest[m - hidden].max(f64::from(out[0]));
    }
    for s in 0..=m {
        // f32 outputs: equal up to rounding of the sum.
        assert!(
            curves.deletion[s] <= lowest[s] + 1e-5,
            "step {s}: {} > {}",
            curves.deletion[s],
            lowest[s]
        );
        assert!(
            curves.insertion[s] >= highest[s] - 1e-5,
            "step {s}: {} < {}",
            curves.insertion[s],
            highest[s]
        );
    }
    let a = report.mean;
    assert!(a.deletion_auc < a.random_deletion_auc, "{a:?}");
    assert!(a.insertion_auc > a.random_insertion_auc, "{a:?}");
}

/// A hand-made explanation of a 2x2 image with two outputs.
fn two_by_two() -> Explanation {
    Explanation {
        algorithm: Algorithm::Partition,
        shape: ImageShape::new(2, 2, 1),
        num_images: 1,
        num_outputs: 2,
        // Per feature: [class 0, class 1]. Class 0 values [1, 4, 4, 2]; class 1 all zero.
        values: vec![1.0, 0.0, 4.0, 0.0, 4.0, 0.0, 2.0, 0.0],
        base_values: vec![0.0, 0.0],
        output_indices: vec![0, 1],
        output_names: vec![vec!["zero".into(), "one".into()]],
        data: vec![1.0; 4],
        fx: vec![10.0, 4.0],
        std_errors: None,
        evals: vec![0],
        efficiency_errors: vec![0.0],
        image_times: vec![0.0],
        stats: Default::default(),
        images: vec![ImageInfo {
            index: Some(7),
            source: "test[7]".into(),
            ..Default::default()
        }],
        settings: [("masker", "0")].into_iter().collect(),
    }
}

/// Outputs `[x0 + 2 x1 + 3 x2 + 4 x3, x0 + x1 + x2 + x3]`.
fn two_by_two_model() -> impl shap_explain::BatchModel {
    FnModel::new(2, |x: &[f32], n, _s: ImageShape, out: &mut [f32]| {
        for (p, o) in x.chunks_exact(4).zip(out.chunks_exact_mut(2)).take(n) {
            o[0] = p[0] + 2.0 * p[1] + 3.0 * p[2] + 4.0 * p[3];
            o[1] = p[0] + p[1] + p[2] + p[3];
        }
        Ok::<(), ModelError>(())
    })
}

/// Worked by hand, image all ones, hidden pixels 0, S = 3 steps over P = 4 pixels:
/// - hidden per step: round(0) = 0, round(4/3) = 1, round(8/3) = 3, round(4) = 4;
/// - class 0: values [1, 4, 4, 2] give the order 1, 2, 3, 0 (the tie 4 = 4: pixel 1 first);
///   deletion hides {}, {1}, {1,2,3}, all: f0 = 10, 10-2 = 8, 10-2-3-4 = 1, 0;
///   AUC = (1/3) * ((10+8)/2 + (8+1)/2 + (1+0)/2) = (9 + 4.5 + 0.5) / 3 = 14/3;
///   insertion reveals {}, {1}, {1,2,3}, all: f0 = 0, 2, 9, 10;
///   AUC = (1/3) * ((0+2)/2 + (2+9)/2 + (9+10)/2) = (1 + 5.5 + 9.5) / 3 = 16/3;
/// - class 1 (all values 0, order 0, 1, 2, 3): f1 counts the visible pixels, so every order,
///   random ones included, gives deletion 4, 3, 1, 0 (AUC (3.5 + 2 + 0.5) / 3 = 2) and
///   insertion 0, 1, 3, 4 (AUC (0.5 + 2 + 3.5) / 3 = 2).
#[test]
fn hand_computed_two_by_two() {
    assert_eq!([0, 1, 3, 4], [0, 1, 2, 3].map(|s| features_at(s, 4, 3)));
    assert_eq!(order_by(&[1.0, 4.0, 4.0, 2.0]), vec![1, 2, 3, 0]);
    let e = two_by_two();
    let f = Faithfulness {
        steps: 3,
        random: 4,
        seed: 0,
        target: Target::All,
    };
    let r = f
        .check()
        .unwrap()
        .score(&two_by_two_model(), &e, &ConstantMasker { value: 0.0 })
        .unwrap();
    let (c0, c1) = (&r.images[0].classes[0], &r.images[0].classes[1]);
    assert_eq!(c0.curves.deletion, vec![10.0, 8.0, 1.0, 0.0]);
    assert_eq!(c0.curves.insertion, vec![0.0, 2.0, 9.0, 10.0]);
    assert!((c0.aucs.deletion_auc - 14.0 / 3.0).abs() < 1e-12);
    assert!((c0.aucs.insertion_auc - 16.0 / 3.0).abs() < 1e-12);
    for curve in [&c1.curves.deletion, &c1.curves.random_deletion] {
        assert_eq!(*curve, vec![4.0, 3.0, 1.0, 0.0]);
    }
    assert_eq!(c1.curves.random_insertion, vec![0.0, 1.0, 3.0, 4.0]);
    assert!((c1.aucs.random_deletion_auc - 2.0).abs() < 1e-12);
    assert!((c1.aucs.random_insertion_auc - 2.0).abs() < 1e-12);
    // Class 0's random curves start and end where every order does.
    let rd = &c0.curves.random_deletion;
    assert_eq!((rd[0], rd[3]), (10.0, 0.0));
    assert!((r.mean.deletion_auc - (14.0 / 3.0 + 2.0) / 2.0).abs() < 1e-12);
    assert_eq!(
        (c0.class, c0.name.as_str(), r.images[0].index),
        (0, "zero", Some(7))
    );
    assert_eq!(auc(&[1.0]), 0.0);
}

#[test]
fn targets_choose_the_scored_classes() {
    let masker = ConstantMasker { value: 0.0 };
    let model = two_by_two_model();
    let score = |e: &Explanation, target| {
        Faithfulness {
            steps: 3,
            random: 4,
            seed: 0,
            target,
        }
        .check()?
        .score(&model, e, &masker)
    };
    let e = two_by_two();
    let all = score(&e, Target::All).unwrap();
    let classes = |r: &shap_explain::FaithfulnessReport| -> Vec<usize> {
        r.images[0].classes.iter().map(|c| c.class).collect()
    };
    assert_eq!(classes(&all), [0, 1]);
    // No recorded prediction: the explained class with the largest f(x) (class 0, f = 10).
    let predicted = score(&e, Target::Predicted).unwrap();
    assert_eq!(classes(&predicted), [0]);
    assert_eq!(predicted.target, Target::Predicted);
    // Its curves are the ones `all` gives that class, random baseline included.
    assert_eq!(predicted.images[0].classes[0], all.images[0].classes[0]);
    assert_eq!(predicted.mean, all.images[0].classes[0].aucs);
    assert_eq!(classes(&score(&e, Target::Explained).unwrap()), [0]);
    // A recorded prediction wins; one that was not explained leaves nothing to score.
    let mut recorded = e.clone();
    recorded.images[0].predicted = Some(shap_explain::Prediction::new(1, "one", 0.9));
    assert_eq!(classes(&score(&recorded, Target::Predicted).unwrap()), [1]);
    recorded.images[0].predicted = Some(shap_explain::Prediction::new(5, "five", 0.9));
    let err = score(&recorded, Target::Predicted).unwrap_err().to_string();
    assert!(err.contains("predicted class"), "{err}");
}

#[test]
fn bad_settings_and_a_foreign_model_are_refused() {
    let e = two_by_two();
    let masker = ConstantMasker { value: 0.0 };
    let model = two_by_two_model();
    for (steps, random) in [(0, 1), (5, 1), (2, 0), (2, usize::MAX)] {
        let f = Faithfulness {
            steps,
            random,
            seed: 0,
            target: Target::All,
        };
        let refused = f.check().and_then(|f| f.score(&model, &e, &masker));
        assert!(refused.is_err(), "steps {steps} random {random}");
    }
    // Another model: its output on the image is not the recorded f(x).
    let other = FnModel::new(2, |_: &[f32], n, _s: ImageShape, out: &mut [f32]| {
        out[..2 * n].fill(1.0);
        Ok::<(), ModelError>(())
    });
    let err = Faithfulness {
        steps: 3,
        random: 1,
        seed: 0,
        target: Target::All,
    }
    .check()
    .unwrap()
    .score(&other, &e, &masker)
    .unwrap_err();
    assert!(err.to_string().contains("recorded f(x)"), "{err}");
    // A recorded f(x) that is NaN or infinite agrees with no model (it used to pass the check).
    for bad in [f64::NAN, f64::INFINITY] {
        let mut broken = two_by_two();
        broken.fx[0] = bad;
        let err = Faithfulness {
            steps: 3,
            random: 1,
            seed: 0,
            target: Target::All,
        }
        .check()
        .unwrap()
        .score(&model, &broken, &masker)
        .unwrap_err();
        assert!(err.to_string().contains("recorded f(x)"), "{bad}: {err}");
    }
    // A model with fewer outputs than the explained classes.
    let small = FnModel::new(1, |_: &[f32], _n, _s: ImageShape, _o: &mut [f32]| {
        Ok::<(), ModelError>(())
    });
    assert!(
        Faithfulness {
            steps: 3,
            random: 1,
            seed: 0,
            target: Target::All,
        }
        .check()
        .unwrap()
        .score(&small, &e, &masker)
        .is_err()
    );
}

/// The same report, bit for bit, in pools of 1 and 2 threads.
#[test]
fn independent_of_the_thread_count() {
    let shape = ImageShape::new(8, 8, 3);
    let model = common::QuadModel::new(shape.features());
    let images: Vec<f32> = (0..5 * shape.features())
        .map(|j| ((j * 37 + 11) % 101) as f32 / 100.0)
        .collect();
    let masker = blur(3);
    let e = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(&model, &images, shape, &masker)
        .unwrap();
    let f = Faithfulness {
        steps: 16,
        random: 5,
        seed: 9,
        target: Target::All,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| f.check().unwrap().score(&model, &e, &masker).unwrap())
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(
        serde_json::to_string(&one).unwrap(),
        serde_json::to_string(&two).unwrap()
    );
    assert_eq!(one, two);
    assert_eq!(one.features, 64);
    assert_eq!(one.images.len(), 5);
}

#[test]
fn class_summary_averages_per_predicted_class() {
    let mut e = two_by_two();
    assert!(
        class_summary(&e)
            .unwrap_err()
            .to_string()
            .contains("no predicted class")
    );
    e.images[0].predicted = Some(shap_explain::Prediction::new(0, "zero", 0.9));
    let mut three = Explanation::concat(vec![e.clone(), e.clone(), e.clone()]).unwrap();
    // Image 1: values negated (class 0 then averages to 0, its absolute values do not).
    // Image 2: predicted as class 2, which it does not explain.
    three.values[8..16].iter_mut().for_each(|v| *v = -*v);
    three.images[2].predicted = Some(shap_explain::Prediction::new(2, "two", 0.5));
    let s = class_summary(&three).unwrap();
    assert_eq!(s.classes.len(), 2);
    let (zero, other) = (&s.classes[0], &s.classes[1]);
    assert_eq!((zero.class, zero.predicted, zero.with_values), (0, 2, 2));
    assert_eq!(zero.mean.as_deref(), Some(&[0.0; 4][..]));
    assert_eq!(zero.mean_abs.as_deref(), Some(&[1.0, 4.0, 4.0, 2.0][..]));
    assert_eq!(zero.mean_image, vec![1.0; 4]);
    assert_eq!((other.class, other.name.as_str()), (2, "two"));
    assert_eq!(
        (other.predicted, other.with_values, other.without_values),
        (1, 0, 1)
    );
    assert!(other.mean.is_none() && other.mean_abs.is_none());
    assert_eq!((s.images, s.without_values), (3, 1));
}

#[test]
fn settings_are_checked_when_the_scorer_is_built() {
    let ok = Faithfulness::default();
    assert!(ok.check().is_ok());
    for (bad, needle) in [
        (Faithfulness { steps: 0, ..ok }, "at least one step"),
        (
            Faithfulness { random: 0, ..ok },
            "at least one random order",
        ),
        (
            Faithfulness {
                random: shap_explain::MAX_RANDOM_ORDERS + 1,
                ..ok
            },
            "more than the limit",
        ),
    ] {
        let err = bad.check().unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    // The steps against the pixels: when an explanation is scored (4 pixels here).
    let e = two_by_two();
    let err = Faithfulness { steps: 5, ..ok }
        .check()
        .unwrap()
        .score(&two_by_two_model(), &e, &ConstantMasker { value: 0.0 })
        .unwrap_err();
    assert!(
        err.to_string().contains("between 1 and the 4 pixels"),
        "{err}"
    );
}
