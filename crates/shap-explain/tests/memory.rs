//! A 1000-output model on 224x224 RGB images explains its top 5 classes in bounded memory:
//! the explainers keep `O(tree nodes x k)` values for the `k` selected outputs only.
//! (One test per binary: the peak is counted by this binary's allocator.)
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use shap_explain::{
    ConstantMasker, ExplainerConfig, FnModel, ImageShape, Method, ModelError, PermutationBudget,
    PermutationSettings,
};

/// Counts live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const K: usize = 1000;

/// A cheap 1000-output model: every output a different blend of two image statistics.
fn model() -> impl shap_explain::BatchModel {
    FnModel::new(K, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
        let m = s.features();
        for (img, o) in x.chunks_exact(m).zip(out.chunks_exact_mut(K)).take(n) {
            let sum: f32 = img.iter().sum::<f32>() / m as f32;
            let corner: f32 = img[..m / 7].iter().sum::<f32>() / (m / 7) as f32;
            for (c, v) in o.iter_mut().enumerate() {
                let t = c as f32 / K as f32;
                *v = t * sum + (1.0 - t) * corner * corner + t * t;
            }
        }
        Ok::<(), ModelError>(())
    })
}

fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

#[test]
fn thousand_classes_top5_stay_under_500_mb() {
    const MB: usize = 1 << 20;
    let shape = ImageShape::new(224, 224, 3);
    let m = shape.features();
    let images: Vec<f32> = (0..2 * m).map(|i| (i % 251) as f32 / 251.0).collect();
    let model = model();
    let masker = ConstantMasker { value: 0.0 };
    let (e, peak) = peak_during(|| {
        ExplainerConfig::partition()
            .check()
            .unwrap()
            .explain(&model, &images, shape, &masker)
            .unwrap()
    });
    println!(
        "Partition, 2 images 224x224x3, 1000 outputs, top 5: peak {} MB",
        peak / MB
    );
    assert_eq!(e.num_outputs, 5);
    assert!(
        e.max_efficiency_error() < 1e-4,
        "{}",
        e.max_efficiency_error()
    );
    assert!(peak < 500 * MB, "peak {} MB", peak / MB);

    // Permutation streams its passes: one pass of a 64x64x3 image is 24,577 masks, whose
    // outputs alone would take 98 MB for 1000 classes; the top 5 need far less.
    let small = ImageShape::new(64, 64, 3);
    let images: Vec<f32> = (0..small.features())
        .map(|i| (i % 13) as f32 / 13.0)
        .collect();
    let (e, peak) = peak_during(|| {
        ExplainerConfig {
            method: Method::Permutation(PermutationSettings {
                budget: PermutationBudget::Passes(1),
                ..PermutationSettings::default()
            }),
            ..ExplainerConfig::permutation()
        }
        .check()
        .unwrap()
        .explain(&model, &images, small, &masker)
        .unwrap()
    });
    println!(
        "Permutation, 64x64x3, 1000 outputs, top 5, one pass: peak {} MB",
        peak / MB
    );
    assert_eq!(e.num_outputs, 5);
    assert!(
        e.max_efficiency_error() < 1e-4,
        "{}",
        e.max_efficiency_error()
    );
    assert!(peak < 60 * MB, "peak {} MB", peak / MB);
}
