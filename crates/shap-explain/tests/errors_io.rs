//! Bad input gives typed errors; explanations round-trip through `.npz` and JSON.
#![allow(clippy::unwrap_used)]

use shap_explain::{
    Algorithm, Compat, ConfigError, ConstantMasker, ExplainError, ExplainerConfig, Explanation,
    ExplanationSummary, FnModel, ImageShape, Method, ModelError, OutputSelection,
    PartitionSettings, PermutationBudget, PermutationSettings,
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
    let p = ExplainerConfig::partition().check().unwrap();
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
    let top = ExplainerConfig {
        outputs: OutputSelection::TopK(4),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    // More than the model has: all of them, largest first (Python's `[:k]` slice).
    let e = top.explain(&m, &images(1), S, &MASK).unwrap();
    let mut by_fx: Vec<usize> = (0..3).collect();
    by_fx.sort_by(|&a, &b| e.fx[b].partial_cmp(&e.fx[a]).unwrap());
    let fx_order: Vec<usize> = by_fx.iter().map(|&j| e.output_indices[j]).collect();
    assert_eq!(e.num_outputs, 3);
    assert_eq!(e.output_indices, fx_order);
    let bad_ix = ExplainerConfig {
        outputs: OutputSelection::Indices(vec![0, 3]),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    assert!(matches!(
        bad_ix.explain(&m, &images(1), S, &MASK),
        Err(ExplainError::InvalidOutputs(_))
    ));
    // Settings are refused when the explainer is built; what depends on the images (one
    // permutation pass over 16 features) when it meets them.
    let small = ExplainerConfig {
        ..ExplainerConfig::partition().max_evals(1)
    };
    assert!(matches!(
        small.check(),
        Err(ExplainError::MaxEvalsTooSmall { .. })
    ));
    let small = ExplainerConfig {
        ..ExplainerConfig::permutation().max_evals(32)
    }
    .check()
    .unwrap();
    let err = small.explain(&m, &images(1), S, &MASK).unwrap_err();
    assert!(
        matches!(err, ExplainError::MaxEvalsTooSmall { minimum: 33, .. }),
        "{err}"
    );
    let names = ExplainerConfig {
        output_names: Some(vec!["a".into()]),
        ..ExplainerConfig::partition()
    }
    .check()
    .unwrap();
    assert!(matches!(
        names.explain(&m, &images(1), S, &MASK),
        Err(ExplainError::ShapeMismatch { .. })
    ));
    let bs = ExplainerConfig {
        method: Method::Partition(PartitionSettings {
            batch_size: 1,
            ..PartitionSettings::default()
        }),
        ..ExplainerConfig::partition()
    };
    assert!(matches!(bs.check(), Err(ExplainError::InvalidConfig(_))));
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
    let partition = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(&nan, &imgs, S, &MASK);
    let permutation = ExplainerConfig::permutation()
        .check()
        .unwrap()
        .explain(&nan, &imgs, S, &MASK);
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
    let err = ExplainerConfig::partition()
        .check()
        .unwrap()
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
    let p = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        output_names: Some((0..5).map(|i| format!("class é{i}")).collect()),
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(3),
            std_errors: true,
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let e = p.explain(&m, &images(3), S, &MASK).unwrap();
    assert!(e.std_errors.is_some());
    assert_eq!(e.image_times.len(), 3);
    assert!(e.image_times.iter().all(|&t| t > 0.0));
    let path = dir.join("e.npz");
    e.save_npz(&path).unwrap();
    let back = Explanation::load_npz(&path).unwrap();
    // Timings are measurements, not results: not saved, so a loaded explanation has none and
    // its summary says so.
    assert!(back.image_times.is_empty());
    assert_eq!(back.summary().total_seconds, None);
    assert_eq!(back.summary().images[0].seconds, None);
    assert!(e.summary().total_seconds.is_some());
    assert_eq!(back, untimed(&e));
    let e2 = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(&m, &images(2), S, &MASK)
        .unwrap();
    e2.save_npz(&path).unwrap();
    assert_eq!(Explanation::load_npz(&path).unwrap(), untimed(&e2));
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
            label: Some(shap_explain::Class::new(2, "two")),
            predicted: Some(shap_explain::Prediction::new(1, "one", 0.75)),
            title: "true: two | pred: one (0.75)".into(),
        },
        shap_explain::ImageInfo {
            source: "cat.png".into(),
            ..Default::default()
        },
    ];
    e3.settings = [("masker", "blur(4,4)"), ("seed", "3")]
        .into_iter()
        .collect();
    let p3 = dir.join("e3.npz");
    e3.save_npz(&p3).unwrap();
    let back = Explanation::load_npz(&p3).unwrap();
    assert_eq!(back, untimed(&e3));
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
    let e = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(&m, &images(2), S, &MASK)
        .unwrap();
    let r = shap_explain::timing::TimingReport::measure(&e, &m, 10).unwrap();
    assert_eq!(r.images, 2);
    assert_eq!(r.evals, e.evals.iter().sum::<usize>());
    assert_eq!(e.stats.model_rows, r.evals);
    assert!(r.to_string().contains("2 images"));
    assert!(matches!(
        shap_explain::timing::time_model_only(&m, &images(2), S, &[1], 10),
        Err(ExplainError::ShapeMismatch { .. })
    ));
}

#[test]
fn all_orders_at_once_are_refused_beyond_the_limit_and_drawn_lazily_by_the_explainer() {
    let huge = ExplainerConfig {
        ..ExplainerConfig::permutation().max_evals(usize::MAX)
    }
    .check()
    .unwrap();
    let err = huge.as_permutation().unwrap().orders(2, S).unwrap_err();
    assert!(matches!(err, ExplainError::InvalidConfig(_)), "{err}");
    assert!(err.to_string().contains("order"), "{err}");
    // The explainer itself holds one pass at a time: many passes cost time, not memory.
    let many = ExplainerConfig {
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(2_000),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let e = many.explain(&model(2), &images(1), S, &MASK).unwrap();
    assert_eq!(e.evals, vec![2_000 * 33]);
}

#[test]
fn settings_are_refused_when_the_explainer_is_built() {
    let refused = |c: ExplainerConfig| c.check().unwrap_err();
    let config = |e: ExplainError| match e {
        ExplainError::InvalidConfig(c) => c,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let partition = ExplainerConfig::partition();
    let permutation = ExplainerConfig::permutation();
    // A budget or a setting of the other algorithm cannot be written at all: each algorithm's
    // settings are a type of their own (`Method`). What remains is values.
    let e = refused(ExplainerConfig {
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(0),
            std_errors: false,
        }),
        ..permutation.clone()
    });
    assert_eq!(config(e), ConfigError::ZeroPasses);
    // shap's generators take 32-bit seeds; shap 0.40's rule is a Partition rule.
    let e = refused(ExplainerConfig {
        compat: Compat::Shap,
        seed: u64::from(u32::MAX) + 1,
        ..permutation.clone()
    });
    assert_eq!(config(e), ConfigError::SeedTooLarge(1 << 32));
    let e = refused(ExplainerConfig {
        compat: Compat::ShapV040,
        ..permutation.clone()
    });
    assert_eq!(config(e), ConfigError::V040PartitionOnly);
    let e = refused(ExplainerConfig {
        compat: Compat::ShapV040,
        ..partition.clone().max_evals(3)
    });
    assert!(
        matches!(e, ExplainError::MaxEvalsTooSmall { minimum: 4, .. }),
        "{e}"
    );
    let e = refused(ExplainerConfig {
        outputs: OutputSelection::TopK(0),
        ..permutation.clone()
    });
    assert!(matches!(e, ExplainError::InvalidOutputs(_)), "{e}");
    // Our own seeds are 64-bit.
    let ok = ExplainerConfig {
        seed: u64::MAX,
        ..permutation
    };
    assert_eq!(ok.check().unwrap().algorithm(), Algorithm::Permutation);
}

#[test]
fn masker_errors_keep_their_cause_and_name_the_image() {
    let masker = shap_mask::Masker::new("blur(3,3)".parse().unwrap(), shap_mask::MaskMode::Default);
    let mut imgs = images(2);
    imgs[16 + 5] = f32::NAN;
    let err = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(&model(3), &imgs, S, &masker)
        .unwrap_err();
    assert!(
        matches!(err, ExplainError::Mask { image: Some(1), .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "masker failed on image 1");
    let cause = std::error::Error::source(&err).expect("the masker's error is kept");
    let mask = cause
        .downcast_ref::<shap_mask::MaskError>()
        .expect("a MaskError");
    assert!(
        matches!(mask, shap_mask::MaskError::NonFinite { index: 5, .. }),
        "{mask:?}"
    );
    // A masker preparing one image on its own does not know the image's index.
    let alone = shap_explain::BackgroundImage::new(vec![0.0, f32::INFINITY], vec![0.0; 2]);
    let err = alone.unwrap_err();
    assert!(
        matches!(err, ExplainError::Mask { image: None, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "masker failed");
    assert!(std::error::Error::source(&err).is_some());
}

/// `e` without its timings, as a saved and loaded copy holds it.
fn untimed(e: &Explanation) -> Explanation {
    Explanation {
        image_times: Vec::new(),
        stats: Default::default(),
        ..e.clone()
    }
}
