//! `Explainer::partition(masker)...build()`: the same explanations as the long way, every
//! setting checked when built.
#![allow(clippy::unwrap_used)]

use shap_explain::{
    ExplainError, Explainer, ExplainerConfig, FnModel, ImageShape, Method, ModelError,
    OutputSelection, PartitionSettings,
};

const SHAPE: ImageShape = ImageShape::new(6, 5, 1);

/// Three outputs: weighted sums of the pixels.
fn model() -> impl shap_explain::BatchModel {
    FnModel::new(3, |x: &[f32], n, s: ImageShape, out: &mut [f32]| {
        for (img, o) in x.chunks(s.features()).zip(out.chunks_mut(3)).take(n) {
            for (k, v) in o.iter_mut().enumerate() {
                *v = img
                    .iter()
                    .enumerate()
                    .map(|(j, p)| p * ((j * (k + 2)) % 7) as f32 / 7.0)
                    .sum();
            }
        }
        Ok::<(), ModelError>(())
    })
}

fn image() -> Vec<f32> {
    (0..SHAPE.features())
        .map(|j| ((j * 13 + 5) % 17) as f32 / 17.0)
        .collect()
}

#[test]
fn the_builder_explains_as_the_configuration_does() {
    let built = Explainer::partition("blur(3,3)")
        .max_evals(120)
        .top_k(2)
        .output_names(["a", "b", "c"])
        .build()
        .unwrap();
    let long = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        output_names: Some(vec!["a".into(), "b".into(), "c".into()]),
        ..ExplainerConfig::partition().max_evals(120)
    }
    .check()
    .unwrap();
    let masker = long.masker("blur(3,3)".parse().unwrap());
    let (m, x) = (model(), image());
    let a = built.explain(&m, &x, SHAPE).unwrap();
    let b = long.explain(&m, &x, SHAPE, &masker).unwrap();
    assert_eq!(a.values, b.values);
    assert_eq!(a.output_names, b.output_names);
    assert_eq!(built.explainer().config(), long.config());

    let perm = Explainer::permutation("0")
        .max_evals(400)
        .classes([2])
        .seed(7)
        .build()
        .unwrap();
    let e = perm.explain(&m, &x, SHAPE).unwrap();
    assert_eq!(e.output_indices, [2]);
    assert_eq!(perm.explainer().config().seed, 7);
}

#[test]
fn bad_settings_are_refused_when_built() {
    let masker = Explainer::partition("sharpen(3)").build().unwrap_err();
    assert!(matches!(masker, ExplainError::Mask { .. }), "{masker}");
    let budget = Explainer::permutation("0")
        .max_evals(2)
        .build()
        .unwrap_err();
    assert!(
        matches!(budget, ExplainError::MaxEvalsTooSmall { .. }),
        "{budget}"
    );
    let none = Explainer::partition("0")
        .classes(Vec::new())
        .build()
        .unwrap_err();
    assert!(matches!(none, ExplainError::InvalidOutputs(_)), "{none}");
    let narrow = Explainer::partition("0")
        .configure(|c| {
            c.method = Method::Partition(PartitionSettings {
                batch_size: 1,
                ..PartitionSettings::default()
            })
        })
        .build()
        .unwrap_err();
    assert!(matches!(narrow, ExplainError::InvalidConfig(_)), "{narrow}");
}
