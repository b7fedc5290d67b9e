//! Memory bounded by a chunk, not the selection: `explain --npz` over 2,000 images peaks at
//! about the same resident size as over 200 (holding every value of 2,000 images with all ten
//! classes would take 125 MB more). The peak is the kernel's count for each child process
//! (`getrusage(RUSAGE_CHILDREN)`, the largest resident set of the children waited for), so
//! this file holds one test: its process has no other children.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cli_command, text};

/// Largest resident set (KiB) of the children this process has waited for.
fn children_peak_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: getrusage succeeded, so it filled `usage` (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    usage.ru_maxrss
}

#[test]
fn peak_memory_does_not_grow_with_the_number_of_images() {
    let common::Synthetic { dir, model, data } = common::synthetic(2000);
    let peak = |images: usize| {
        let npz = dir.path().join(format!("e{images}.npz"));
        let range = format!("0..{images}");
        let args = [
            "explain",
            "-m",
            model.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--range",
            &range,
            "--all-classes",
            "--max-evals",
            "40",
            "--npz",
            npz.to_str().unwrap(),
            "--quiet",
        ];
        // One thread: with two, the peak of the same run varied by about 25 MiB from run to
        // run on a 2-core AMD EPYC (thread-local allocator caches filled in varying order),
        // which hid the signal; with one it varies by a few MiB.
        let out = cli_command(&args)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let e = shap_explain::npz_settings(&npz).unwrap();
        assert_eq!(e.1, images);
        children_peak_kib()
    };
    let small = peak(200);
    let large = peak(2000);
    let grown_mib = (large - small) as f64 / 1024.0;
    eprintln!("peak resident set: 200 images {small} KiB, 2,000 images {large} KiB");
    // Holding the values alone would add (2000 - 200) * 784 * 10 * 8 bytes = 108 MiB.
    assert!(
        grown_mib < 30.0,
        "the peak grew by {grown_mib:.1} MiB from 200 to 2,000 images"
    );
}
