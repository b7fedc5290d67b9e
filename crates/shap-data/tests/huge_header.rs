//! A header claiming billions of images must fail without a huge allocation. This file holds a
//! single test because it watches every allocation of the process through a global allocator.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use shap_data::{DataError, FashionMnist};

/// Forwards to the system allocator and remembers the largest single request.
struct LargestRequest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

#[test]
fn billions_of_images_in_the_header_allocate_nothing_big() {
    // 4,294,967,295 images of 28x28 claimed (3.4 TB), 3 images present; gzip and plain.
    let claimed = u32::MAX;
    let gz_dir = dir_with(
        "train-images-idx3-ubyte.gz",
        gz(&idx_images(0x803, claimed, 28, 28, &pixels(3))),
    );
    let plain_dir = valid_dir();
    std::fs::remove_file(plain_dir.path().join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(
        plain_dir.path().join("train-images-idx3-ubyte"),
        idx_images(0x803, claimed, 28, 28, &pixels(3)),
    )
    .unwrap();
    for dir in [&gz_dir, &plain_dir] {
        LARGEST.store(0, Ordering::Relaxed);
        let e = FashionMnist::load_dir(dir.path()).unwrap_err();
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(matches!(e, DataError::LengthMismatch { .. }), "{e:?}");
        assert!(
            largest < 4 << 20,
            "largest allocation while loading {}: {largest} bytes",
            dir.path().display()
        );
    }
}
