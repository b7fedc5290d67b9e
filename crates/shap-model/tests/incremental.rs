//! The incremental CNN path: bit-identical to its own full evaluation whatever the history,
//! batching or thread count, close to the gemm path, and actually doing less work.

use candle_core::Device;
use shap_explain::{
    BatchModel, ConstantMasker, ExplainerConfig, ImageShape, MaskedBatch, ModelError,
    OutputSelection,
};
use shap_mask::{MaskMode, Masker};
use shap_model::{Cnn, Head, IncrementalCnn, ModelFn};

const SHAPE: ImageShape = ImageShape {
    height: 28,
    width: 28,
    channels: 1,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Seeded weights with non-zero biases (the Glorot init has zero biases).
fn weights(head: Head) -> Cnn {
    let cnn = Cnn::seeded(3, head, &Device::Cpu).expect("cnn");
    let mut rng = Rng(99);
    let vars = cnn.vars();
    for i in [1, 3, 5] {
        let values: Vec<f32> = (0..vars[i].elem_count())
            .map(|_| rng.unit() * 0.2 - 0.1)
            .collect();
        let t = candle_core::Tensor::from_vec(values, vars[i].shape(), &Device::Cpu).expect("t");
        vars[i].set(&t).expect("set");
    }
    cnn
}

/// A smooth image with a blank border, like a Fashion-MNIST item.
fn image() -> Vec<f32> {
    (0..784)
        .map(|p| {
            let (r, c) = ((p / 28) as f32, (p % 28) as f32);
            let d = ((r - 14.0).powi(2) + (c - 13.0).powi(2)).sqrt();
            if d < 11.0 {
                (0.9 - d / 15.0) * (1.0 + 0.1 * (r * 0.9).sin())
            } else {
                0.0
            }
        })
        .collect()
}

/// `n` masks hiding random rectangles of 1 to 6 pixels a side on top of a common random
/// context, and the masked images: hidden pixels take `fill`, and when `spread` is set one
/// pixel far away also changes a little (as inpainting changes pixels outside the block).
fn masked(rng: &mut Rng, n: usize, fill: f32, spread: bool) -> (Vec<bool>, Vec<f32>) {
    let x = image();
    let mut keeps = Vec::with_capacity(n * 784);
    let mut imgs = Vec::with_capacity(n * 784);
    for _ in 0..n {
        let mut keep = vec![true; 784];
        for _ in 0..3 {
            let (h, w) = (1 + rng.next() as usize % 6, 1 + rng.next() as usize % 6);
            let (r0, c0) = (
                rng.next() as usize % (29 - h),
                rng.next() as usize % (29 - w),
            );
            for r in r0..r0 + h {
                for c in c0..c0 + w {
                    keep[r * 28 + c] = false;
                }
            }
        }
        let mut img: Vec<f32> = x
            .iter()
            .zip(&keep)
            .map(|(&v, &k)| if k { v } else { fill })
            .collect();
        if spread {
            let p = rng.next() as usize % 784;
            img[p] += 1e-3;
        }
        keeps.extend(keep);
        imgs.extend(img);
    }
    (keeps, imgs)
}

fn eval_masked(m: &IncrementalCnn, keeps: &[bool], imgs: &[f32]) -> Vec<f32> {
    let original = image();
    let n = imgs.len() / 784;
    let mut out = vec![0f32; n * 10];
    m.eval_masked(
        MaskedBatch {
            original: &original,
            keeps,
            images: imgs,
            n,
            shape: SHAPE,
        },
        &mut out,
    )
    .expect("eval_masked");
    out
}

fn eval_full(m: &dyn BatchModel, imgs: &[f32]) -> Vec<f32> {
    let n = imgs.len() / 784;
    let mut out = vec![0f32; n * 10];
    m.eval_batch(imgs, n, SHAPE, &mut out).expect("eval_batch");
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check_bit_identical(m: &IncrementalCnn) {
    let mut rng = Rng(7);
    // Several batches in a row, so later ones start from states kept from earlier ones.
    for (n, fill, spread) in [
        (10, 0.0, false),
        (7, 0.25, true),
        (40, 0.0, true),
        (1, 0.5, false),
    ] {
        let (keeps, imgs) = masked(&mut rng, n, fill, spread);
        let fast = eval_masked(m, &keeps, &imgs);
        let full = eval_full(m, &imgs);
        assert_eq!(bits(&fast), bits(&full), "batch of {n}");
    }
}

#[test]
fn masked_path_is_bit_identical_to_full_evaluation() {
    for head in [Head::Softmax, Head::Logits] {
        let m = IncrementalCnn::new(&weights(head)).expect("model");
        check_bit_identical(&m);
        let portable = IncrementalCnn::new(&weights(head))
            .expect("model")
            .with_portable_kernels();
        assert!(!portable.uses_avx2_fma());
        check_bit_identical(&portable);
    }
}

#[test]
fn results_do_not_depend_on_history_batching_or_threads() {
    let w = weights(Head::Softmax);
    let mut rng = Rng(11);
    let (keeps, imgs) = masked(&mut rng, 30, 0.1, true);
    // One batch of 30 on 2 threads, with a fresh model.
    let a = eval_masked(&IncrementalCnn::new(&w).expect("model"), &keeps, &imgs);
    // Batches of 1, 2, 3, ... on 1 thread, after unrelated batches of the same image.
    let m = IncrementalCnn::new(&w).expect("model");
    let (k0, i0) = masked(&mut rng, 12, 0.7, true);
    eval_masked(&m, &k0, &i0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut b = Vec::new();
    let mut start = 0;
    let mut len = 1;
    while start < 30 {
        let end = (start + len).min(30);
        b.extend(pool.install(|| {
            eval_masked(
                &m,
                &keeps[start * 784..end * 784],
                &imgs[start * 784..end * 784],
            )
        }));
        start = end;
        len += 1;
    }
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn agrees_with_the_gemm_path_to_float_rounding() {
    for head in [Head::Softmax, Head::Logits] {
        // The gemm path (what ModelFn runs on the CPU) on the same bias-modified weights.
        let w = weights(head);
        let mut rng = Rng(5);
        let (_, imgs) = masked(&mut rng, 16, 0.3, true);
        let reference = ModelFn::new(&w)
            .expect("model")
            .predict(&imgs)
            .expect("forward");
        for m in [
            IncrementalCnn::new(&w).expect("model"),
            IncrementalCnn::new(&w)
                .expect("model")
                .with_portable_kernels(),
        ] {
            let out = eval_full(&m, &imgs);
            let scale = reference.iter().fold(1f32, |a, v| a.max(v.abs()));
            for (i, (a, b)) in out.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-6 * scale,
                    "{head:?} output {i}: {a} vs {b}"
                );
            }
        }
    }
    // And the adapter used by the CLI, on the untouched network.
    let cnn = Cnn::seeded(4, Head::Softmax, &Device::Cpu).expect("cnn");
    let plain = ModelFn::new(&cnn).expect("adapter");
    let inc = IncrementalCnn::new(&cnn).expect("model");
    let imgs: Vec<f32> = image().repeat(3);
    let (a, b) = (eval_full(&plain, &imgs), eval_full(&inc, &imgs));
    assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn small_changes_cost_little() {
    let m = IncrementalCnn::new(&weights(Head::Softmax)).expect("model");
    let x = image();
    // All kept, then one 2x2 block hidden at a time, top-left to bottom-right.
    let mut keeps = vec![true; 784];
    let mut imgs = x.clone();
    for b in 0..49 {
        let (r0, c0) = ((b / 7) * 4, (b % 7) * 4);
        let mut keep = vec![true; 784];
        for r in r0..r0 + 2 {
            for c in c0..c0 + 2 {
                keep[r * 28 + c] = false;
            }
        }
        let img: Vec<f32> = x
            .iter()
            .zip(&keep)
            .map(|(&v, &k)| if k { v } else { 0.5 })
            .collect();
        keeps.extend(keep);
        imgs.extend(img);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    pool.install(|| eval_masked(&m, &keeps, &imgs));
    let s = m.stats();
    assert_eq!(s.images, 50);
    // The first image is computed in full (784 positions); each other one differs from the
    // all-kept image in a 2x2 block, whose 6x6 neighbourhood (at most) is recomputed.
    assert!(s.positions <= 784 + 49 * 36, "{s:?}");
    assert!(s.work_fraction() < 0.07, "{}", s.work_fraction());
}

/// Images hiding a random subset of the 16 cells of a 4x4 grid (7x7 pixels each) with
/// `fill`, as MuFidelity does, with the masks.
fn cell_removals(rng: &mut Rng, n: usize, fill: f32) -> (Vec<bool>, Vec<f32>) {
    let x = image();
    let mut keeps = Vec::with_capacity(n * 784);
    let mut imgs = Vec::with_capacity(n * 784);
    for _ in 0..n {
        let removed = rng.next() as u16;
        let keep: Vec<bool> = (0..784)
            .map(|p| removed >> ((p / 28 / 7) * 4 + p % 28 / 7) & 1 == 0)
            .collect();
        imgs.extend(x.iter().zip(&keep).map(|(&v, &k)| if k { v } else { fill }));
        keeps.extend(keep);
    }
    (keeps, imgs)
}

#[test]
fn repeated_windows_are_copied_and_give_the_same_outputs() {
    let m = IncrementalCnn::new(&weights(Head::Logits)).expect("model");
    let mut rng = Rng(5);
    // The masked path's outputs, checked against full evaluation, and its work.
    let run = |keeps: &[bool], imgs: &[f32]| {
        let before = m.stats();
        let fast = eval_masked(&m, keeps, imgs);
        let work = m.stats().since(before);
        assert_eq!(bits(&fast), bits(&eval_full(&m, imgs)));
        work
    };
    // A cell removed or not: the windows at each position repeat from image to image.
    let (keeps, imgs) = cell_removals(&mut rng, 64, 0.0);
    let s = run(&keeps, &imgs);
    assert!(s.copied > 2 * s.positions, "{s:?}");
    // The same cells hidden with another value: windows that meet a hidden cell are not
    // made of the original and the background any more, so they are computed (only windows
    // back to all-original are copied), and the outputs still match.
    let (keeps, imgs) = cell_removals(&mut rng, 16, 0.5);
    let s = run(&keeps, &imgs);
    assert!(s.positions > 4 * s.copied, "{s:?}");
    // Back to the background: copied again.
    let (keeps, imgs) = cell_removals(&mut rng, 16, 0.0);
    let s = run(&keeps, &imgs);
    assert!(s.copied > 4 * s.positions, "{s:?}");
}

#[test]
fn explanations_match_the_full_path_exactly() {
    let m = IncrementalCnn::new(&weights(Head::Softmax)).expect("model");
    // The same kernels without the incremental path: only eval_batch.
    struct Full<'a>(&'a IncrementalCnn);
    impl BatchModel for Full<'_> {
        fn num_outputs(&self) -> usize {
            10
        }
        fn eval_batch(
            &self,
            images: &[f32],
            n: usize,
            shape: ImageShape,
            out: &mut [f32],
        ) -> Result<(), ModelError> {
            self.0.eval_batch(images, n, shape, out)
        }
    }
    let mut images = image();
    images.extend(image().iter().rev());
    let partition = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::partition().max_evals(300)
    }
    .check()
    .expect("explainer settings");
    let permutation = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        ..ExplainerConfig::permutation().max_evals(2 * 1569)
    }
    .check()
    .expect("explainer settings");
    let inpaint = Masker::new("inpaint_telea".parse().expect("spec"), MaskMode::Default);
    let constant = ConstantMasker { value: 0.0 };
    let a = partition
        .explain(&m, &images, SHAPE, &inpaint)
        .expect("incremental");
    let b = partition
        .explain(&Full(&m), &images, SHAPE, &inpaint)
        .expect("full");
    assert_eq!(a.values, b.values);
    assert_eq!(a.output_indices, b.output_indices);
    assert!(a.max_efficiency_error() <= 1e-5);
    let before = m.stats();
    let a = permutation
        .explain(&m, &images, SHAPE, &constant)
        .expect("incremental");
    let after = m.stats();
    let b = permutation
        .explain(&Full(&m), &images, SHAPE, &constant)
        .expect("full");
    assert_eq!(a.values, b.values);
    // A permutation pass adds one feature at a time: each image is one pixel away from the
    // one before.
    let pass = after.since(before);
    assert!(pass.work_fraction() < 0.1, "{pass:?}");
}

#[test]
fn the_same_image_explained_on_several_threads_at_once() {
    // Copies of one image share its session of kept states; evaluating them concurrently
    // once broke the ordering of the states kept (a key read while others updated it).
    let m = IncrementalCnn::new(&weights(Head::Softmax)).expect("model");
    let one = image();
    let images: Vec<f32> = (0..8).flat_map(|_| one.iter().copied()).collect();
    let explainer = ExplainerConfig {
        outputs: OutputSelection::TopK(2),
        ..ExplainerConfig::partition()
    }
    .check()
    .expect("explainer settings");
    let masker = ConstantMasker { value: 0.0 };
    for _ in 0..5 {
        let e = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .expect("pool")
            .install(|| explainer.explain(&m, &images, SHAPE, &masker))
            .expect("explanation");
        let m_k = SHAPE.features() * 2;
        for copy in e.values.chunks(m_k) {
            assert_eq!(copy, &e.values[..m_k]);
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let m = IncrementalCnn::new(&weights(Head::Softmax)).expect("model");
    let x = image();
    let mut out = vec![0f32; 10];
    let wrong = ImageShape::new(28, 27, 1);
    assert!(matches!(
        m.eval_batch(&x[..756], 1, wrong, &mut out),
        Err(ModelError::Shape(_))
    ));
    assert!(matches!(
        m.eval_batch(&x, 1, SHAPE, &mut out[..9]),
        Err(ModelError::Shape(_))
    ));
    let keeps = vec![true; 783];
    let batch = MaskedBatch {
        original: &x,
        keeps: &keeps,
        images: &x,
        n: 1,
        shape: SHAPE,
    };
    assert!(matches!(
        m.eval_masked(batch, &mut out),
        Err(ModelError::Shape(_))
    ));
    let keeps = vec![true; 784];
    let batch = MaskedBatch {
        original: &x[..700],
        keeps: &keeps,
        images: &x,
        n: 1,
        shape: SHAPE,
    };
    assert!(matches!(
        m.eval_masked(batch, &mut out),
        Err(ModelError::Shape(_))
    ));
}
