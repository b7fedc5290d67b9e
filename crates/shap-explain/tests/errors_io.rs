//! Bad input gives typed errors; explanations round-trip through `.npz` and JSON.
#![allow(clippy::unwrap_used)]

use shap_explain::{
    Budget, ConstantMasker, ExplainError, Explanation, ExplanationSummary, FnModel, ImageShape,
    ModelError, OutputSelection, PartitionExplainer, PermutationExplainer,
};

fn model(k: usize) -> impl shap_explain::BatchModel {
    FnModel::new(
        k,
        move |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
            let m = s.features();
            for i in 0..n {
                let sum: f32 = x[i * m..(i + 1) * m].iter().sum();
                for o in 0..k {
                    out[i * k + o] = sum * (o as f32 + 1.0) + x[i * m] * x[i * m + 1];
                }
            }
            Ok(())
        },
    )
}

const S: ImageShape = ImageShape::new(4, 4, 1);
const MASK: ConstantMasker = ConstantMasker { value: 0.0 };

fn images(n: usize) -> Vec<f32> {
    (0..n * 16).map(|i| (i % 7) as f32 / 7.0).collect()
}

#[test]
fn bad_inputs_are_typed_errors() {
    let p = PartitionExplainer::default();
    let m = model(3);
    assert!(matches!(
        p.explain(&m, &[], S, &MASK),
        Err(ExplainError::EmptyBatch)
    ));
    assert!(matches!(
        p.explain(&m, &images(1)[..15], S, &MASK),
        Err(ExplainError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        p.explain(&m, &images(1), ImageShape::new(0, 4, 1), &MASK),
        Err(ExplainError::InvalidShape(_))
    ));
    let prep = vec![shap_explain::BackgroundImage::new(images(1), vec![0.0; 16]).unwrap()];
    assert!(matches!(
        p.explain_prepared(&m, &images(2), S, &prep),
        Err(ExplainError::ShapeMismatch { .. })
    ));
    let top = PartitionExplainer {
        outputs: OutputSelection::TopK(4),
        ..Default::default()
    };
    // More than the model has: all of them, largest first (Python's `[:k]` slice).
    let e = top.explain(&m, &images(1), S, &MASK).unwrap();
    let mut by_fx: Vec<usize> = (0..3).collect();
    by_fx.sort_by(|&a, &b| e.fx[b].partial_cmp(&e.fx[a]).unwrap());
    let fx_order: Vec<usize> = by_fx.iter().map(|&j| e.output_indices[j]).collect();
    assert_eq!(e.num_outputs, 3);
    assert_eq!(e.output_indices, fx_order);
    let bad_ix = PermutationExplainer {
        outputs: OutputSelection::Indices(vec![0, 3]),
        ..Default::default()
    };
    assert!(matches!(
        bad_ix.explain(&m, &images(1), S, &MASK),
        Err(ExplainError::InvalidOutputs(_))
    ));
    let small = PartitionExplainer {
        budget: Budget::MaxEvals(1),
        ..Default::default()
    };
    assert!(matches!(
        small.explain(&m, &images(1), S, &MASK),
        Err(ExplainError::MaxEvalsTooSmall { .. })
    ));
    let small = PermutationExplainer {
        max_evals: Some(32),
        ..Default::default()
    };
    let err = small.explain(&m, &images(1), S, &MASK).unwrap_err();
    assert!(
        matches!(err, ExplainError::MaxEvalsTooSmall { minimum: 33, .. }),
        "{err}"
    );
    let names = PartitionExplainer {
        output_names: Some(vec!["a".into()]),
        ..Default::default()
    };
    assert!(matches!(
        names.explain(&m, &images(1), S, &MASK),
        Err(ExplainError::ShapeMismatch { .. })
    ));
    let bs = PartitionExplainer {
        batch_size: 1,
        ..Default::default()
    };
    assert!(matches!(
        bs.explain(&m, &images(1), S, &MASK),
        Err(ExplainError::InvalidConfig(_))
    ));
    let zero = FnModel::new(0, |_: &[f32], _: usize, _: ImageShape, _: &mut [f32]| {
        Ok::<(), ModelError>(())
    });
    assert!(matches!(
        p.explain(&zero, &images(1), S, &MASK),
        Err(ExplainError::NoOutputs)
    ));
}

#[test]
fn non_finite_and_failing_models_name_the_image() {
    // Output 2 becomes NaN for images whose first pixel is 5/7 (image 1 here, not image 0).
    let nan = FnModel::new(3, |x: &[f32], n: usize, _s: ImageShape, out: &mut [f32]| {
        for i in 0..n {
            out[i * 3..i * 3 + 3].copy_from_slice(&[1.0, 2.0, 3.0]);
            if (x[i * 16] - 5.0 / 7.0).abs() < 1e-6 {
                out[i * 3 + 2] = f32::NAN;
            }
        }
        Ok::<(), ModelError>(())
    });
    let mut imgs = images(2);
    imgs[0] = 0.0;
    imgs[16] = 5.0 / 7.0;
    let partition = PartitionExplainer::default().explain(&nan, &imgs, S, &MASK);
    let permutation = PermutationExplainer::default().explain(&nan, &imgs, S, &MASK);
    for result in [partition, permutation] {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                ExplainError::NonFinite {
                    image: 1,
                    output: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("image 1"), "{err}");
    }
    let failing = FnModel::new(3, |_: &[f32], _: usize, _: ImageShape, _: &mut [f32]| {
        Err(ModelError::backend(std::io::Error::other("boom")))
    });
    let err = PartitionExplainer::default()
        .explain(&failing, &imgs, S, &MASK)
        .unwrap_err();
    assert!(matches!(err, ExplainError::Model { image: 0, .. }), "{err}");
    // The cause chain is kept, each message once: explainer -> model -> runtime.
    let mut chain = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = cur {
        chain.push(e.to_string());
        cur = e.source();
    }
    assert_eq!(
        chain,
        [
            "model failed on image 0",
            "the model's runtime failed",
            "boom"
        ]
    );
}

#[test]
fn npz_and_json_round_trip() {
    let dir = std::env::temp_dir().join(format!("shap_explain_io_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = model(5);
    let p = PermutationExplainer {
        passes: 3,
        std_errors: true,
        outputs: OutputSelection::TopK(2),
        output_names: Some((0..5).map(|i| format!("class é{i}")).collect()),
        ..Default::default()
    };
    let e = p.explain(&m, &images(3), S, &MASK).unwrap();
    assert!(e.std_errors.is_some());
    assert_eq!(e.image_times.len(), 3);
    assert!(e.image_times.iter().all(|&t| t > 0.0));
    let path = dir.join("e.npz");
    e.save_npz(&path).unwrap();
    let back = Explanation::load_npz(&path).unwrap();
    assert_eq!(back, e);
    let e2 = PartitionExplainer::default()
        .explain(&m, &images(2), S, &MASK)
        .unwrap();
    e2.save_npz(&path).unwrap();
    assert_eq!(Explanation::load_npz(&path).unwrap(), e2);
    let json = dir.join("e.json");
    e2.save_json(&json).unwrap();
    let summary: ExplanationSummary =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary, e2.summary());
    assert_eq!(summary.images.len(), 2);
    assert_eq!(summary.images[1].evals, e2.evals[1]);
    // What a front end knows about the images and the run travels in the npz and the JSON.
    let mut e3 = e2.clone();
    e3.images = vec![
        shap_explain::ImageInfo {
            index: Some(7),
            source: "test[7]".into(),
            label: Some((2, "two".into())),
            predicted: Some((1, "one".into(), 0.75)),
            title: "true: two | pred: one (0.75)".into(),
        },
        shap_explain::ImageInfo {
            source: "cat.png".into(),
            ..Default::default()
        },
    ];
    e3.settings = vec![
        ("masker".into(), "blur(4,4)".into()),
        ("seed".into(), "3".into()),
    ];
    let p3 = dir.join("e3.npz");
    e3.save_npz(&p3).unwrap();
    let back = Explanation::load_npz(&p3).unwrap();
    assert_eq!(back, e3);
    assert_eq!(back.setting("seed"), Some("3"));
    let s3 = e3.summary();
    assert_eq!(s3.settings["masker"], "blur(4,4)");
    assert_eq!(s3.images[0].predicted_name.as_deref(), Some("one"));
    assert_eq!((s3.images[1].true_label, s3.images[1].index), (None, None));
    // Garbage and missing files.
    std::fs::write(dir.join("bad.npz"), b"not a zip").unwrap();
    assert!(matches!(
        Explanation::load_npz(dir.join("bad.npz")),
        Err(ExplainError::BadFile { .. })
    ));
    assert!(matches!(
        Explanation::load_npz(dir.join("missing.npz")),
        Err(ExplainError::Io { .. })
    ));
    // Truncated archive.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(dir.join("trunc.npz"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(Explanation::load_npz(dir.join("trunc.npz")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn timing_report_counts_rows() {
    let m = model(3);
    let e = PartitionExplainer::default()
        .explain(&m, &images(2), S, &MASK)
        .unwrap();
    let r = shap_explain::TimingReport::measure(&e, &m, 10).unwrap();
    assert_eq!(r.images, 2);
    assert_eq!(r.evals, e.evals.iter().sum::<usize>());
    assert_eq!(e.stats.model_rows, r.evals);
    assert!(r.to_string().contains("2 images"));
    assert!(matches!(
        shap_explain::time_model_only(&m, &images(2), S, &[1], 10),
        Err(ExplainError::ShapeMismatch { .. })
    ));
}

#[test]
fn all_orders_at_once_are_refused_beyond_the_limit_and_drawn_lazily_by_the_explainer() {
    let huge = PermutationExplainer {
        max_evals: Some(usize::MAX),
        ..Default::default()
    };
    let err = huge.orders(2, S).unwrap_err();
    assert!(matches!(err, ExplainError::InvalidConfig(_)), "{err}");
    assert!(err.to_string().contains("order"), "{err}");
    // The explainer itself holds one pass at a time: many passes cost time, not memory.
    let many = PermutationExplainer {
        passes: 2_000,
        ..Default::default()
    };
    let e = many.explain(&model(2), &images(1), S, &MASK).unwrap();
    assert_eq!(e.evals, vec![2_000 * 33]);
}
