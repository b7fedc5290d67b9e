//! Gathering the masks of several images into one model call (`BatchModel::batch_rows`)
//! changes no bit of any explanation, whatever the call size and thread count.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;

use common::QuadModel;
use shap_explain::{
    BatchModel, ConstantMasker, ExplainerConfig, Explanation, ImageShape, Method, ModelError,
    OutputSelection, PermutationBudget, PermutationSettings,
};
use shap_mask::{MaskMode, Masker, MaskerSpec};

/// The quad model, optionally gathering, recording the rows of every call.
struct Gathering {
    inner: QuadModel,
    rows: Option<usize>,
    calls: Mutex<Vec<usize>>,
}

impl Gathering {
    fn new(m: usize, rows: Option<usize>) -> Self {
        Self {
            inner: QuadModel::new(m),
            rows,
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl BatchModel for Gathering {
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
    fn batch_rows(&self) -> Option<usize> {
        self.rows
    }
}

const SHAPE: ImageShape = ImageShape::new(6, 5, 3);

fn images(n: usize) -> Vec<f32> {
    (0..n * SHAPE.features())
        .map(|i| ((i * 37 + 11) % 101) as f32 / 101.0)
        .collect()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn assert_same(a: &Explanation, b: &Explanation, what: &str) {
    assert_eq!(a.values, b.values, "{what}: values");
    assert_eq!(a.base_values, b.base_values, "{what}: base values");
    assert_eq!(a.fx, b.fx, "{what}: f(x)");
    assert_eq!(a.output_indices, b.output_indices, "{what}: outputs");
    assert_eq!(a.std_errors, b.std_errors, "{what}: standard errors");
    assert_eq!(a.evals, b.evals, "{what}: evaluations");
}

#[test]
fn partition_and_permutation_give_the_same_bits_gathered_or_not() {
    let n = 7;
    let x = images(n);
    let masker = Masker::new(
        "blur(3,2)".parse::<MaskerSpec>().unwrap(),
        MaskMode::Default,
    );
    let partition = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::partition().max_evals(120)
    }
    .check()
    .unwrap();
    let permutation = ExplainerConfig {
        seed: 9,
        outputs: OutputSelection::Indices(vec![4, 1]),
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(3),
            std_errors: true,
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let m = SHAPE.features();
    let reference = Gathering::new(m, None);
    let want_p = partition.explain(&reference, &x, SHAPE, &masker).unwrap();
    let want_q = permutation.explain(&reference, &x, SHAPE, &masker).unwrap();
    for rows in [1, 3, 10, 25, 64, 1000] {
        for threads in [1, 2] {
            let model = Gathering::new(m, Some(rows));
            let (p, q) = in_pool(threads, || {
                (
                    partition.explain(&model, &x, SHAPE, &masker).unwrap(),
                    permutation.explain(&model, &x, SHAPE, &masker).unwrap(),
                )
            });
            let what = format!("{rows} rows per call, {threads} threads");
            assert_same(&want_p, &p, &format!("partition, {what}"));
            assert_same(&want_q, &q, &format!("permutation, {what}"));
            let calls = model.calls.lock().unwrap().clone();
            assert!(calls.iter().all(|&c| c <= rows), "{what}: {calls:?}");
            if rows >= 25 {
                // Calls larger than one image's Owen step (10) or pass (2M+1 = 181) exist
                // only when images share them.
                let widest = calls.iter().max().copied().unwrap_or(0);
                assert!(widest > 10, "{what}: no call mixes images ({calls:?})");
            }
        }
    }
}

#[test]
fn gathering_keeps_the_error_of_the_failing_image() {
    let x = images(5);
    // Image 3 alone has a negative first pixel: the model refuses it.
    let mut x = x;
    x[3 * SHAPE.features()] = -1.0;
    let model =
        shap_explain::FnModel::new(2, |v: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
            for (img, o) in v
                .chunks_exact(s.features())
                .zip(out.chunks_exact_mut(2))
                .take(n)
            {
                if img[0] < 0.0 {
                    return Err(ModelError::Shape("negative pixel".into()));
                }
                o[0] = img.iter().sum();
                o[1] = img[1];
            }
            Ok(())
        })
        .with_batch_rows(40);
    let err = ExplainerConfig::partition()
        .check()
        .unwrap()
        .explain(&model, &x, SHAPE, &ConstantMasker { value: 0.5 })
        .unwrap_err();
    assert!(
        matches!(err, shap_explain::ExplainError::Model { image: 3, .. }),
        "{err}"
    );
}

#[test]
fn progress_hears_of_every_image_once_with_its_evaluations() {
    let n = 9;
    let x = images(n);
    let masker = ConstantMasker { value: 0.2 };
    let explainer = ExplainerConfig {
        ..ExplainerConfig::partition().max_evals(90)
    }
    .check()
    .unwrap();
    for rows in [None, Some(25)] {
        let model = Gathering::new(SHAPE.features(), rows);
        let seen = Mutex::new(Vec::new());
        let record = |image: usize, evals: usize| seen.lock().unwrap().push((image, evals));
        let e = explainer
            .explain_with_progress(&model, &x, SHAPE, &masker, &record)
            .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        let want: Vec<(usize, usize)> = e.evals.iter().copied().enumerate().collect();
        assert_eq!(seen, want, "{rows:?} rows per call");
    }
    let permutation = ExplainerConfig {
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(1),
            ..PermutationSettings::default()
        }),
        ..ExplainerConfig::permutation()
    }
    .check()
    .unwrap();
    let count = std::sync::atomic::AtomicUsize::new(0);
    let tick = |_: usize, _: usize| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    permutation
        .explain_with_progress(
            &Gathering::new(SHAPE.features(), None),
            &x,
            SHAPE,
            &masker,
            &tick,
        )
        .unwrap();
    assert_eq!(count.into_inner(), n);
}
