//! Property tests of the IDX reader, plain and gzip: arbitrary headers and corrupted
//! streams never panic, what is accepted matches its header exactly, and decompression never
//! produces more than the header promises plus one byte (so memory is bounded by the header's
//! claim and the file's size). Each case is a file of at most a few KB.
//! `PROPTEST_CASES` sets the number of cases.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shap_data::idx::{read_images, read_labels};

mod common;
use common::{gz, idx_images, idx_labels};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An IDX image file whose header may lie: `count`, `rows`, `cols` against `pixels`.
fn images_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0x803u32), any::<u32>()],
        prop_oneof![0u32..8, any::<u32>()],
        prop_oneof![0u32..6, any::<u32>()],
        prop_oneof![0u32..6, any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(magic, n, r, c, px)| idx_images(magic, n, r, c, &px))
}

fn labels_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0x801u32), any::<u32>()],
        prop_oneof![0u32..40, any::<u32>()],
        prop::collection::vec(0u8..12, 0..40),
    )
        .prop_map(|(magic, n, l)| idx_labels(magic, n, &l))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn image_files_are_read_exactly_or_refused(file in images_file(), zip in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(if zip { "i.gz" } else { "i" });
        std::fs::write(&p, if zip { gz(&file) } else { file.clone() }).unwrap();
        if let Ok(img) = read_images(&p) {
            prop_assert_eq!(img.pixels.len(), img.count * img.rows * img.cols);
            prop_assert_eq!(&img.pixels[..], &file[16..]);
        }
    }

    #[test]
    fn label_files_are_read_exactly_or_refused(file in labels_file(), zip in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(if zip { "l.gz" } else { "l" });
        std::fs::write(&p, if zip { gz(&file) } else { file.clone() }).unwrap();
        if let Ok(labels) = read_labels(&p) {
            prop_assert_eq!(&labels[..], &file[8..]);
            prop_assert!(labels.iter().all(|&l| l <= 9));
        }
    }

    #[test]
    fn corrupted_gzip_never_panics(
        file in images_file(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    ) {
        let mut bytes = gz(&file);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i.gz");
        std::fs::write(&p, &bytes).unwrap();
        let _ = read_images(&p);
    }
}
