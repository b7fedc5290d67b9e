//! Property test of PNG input through the binary, under the 2 GiB address-space limit:
//! corrupted PNGs and any claimed size end with exit 0 or 1, never a panic, an abort or a
//! kill. `PROPTEST_CASES` sets the number of cases (default 48: each is a process).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;

mod common;
use common::{shap_cli, text};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn valid_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 7 + y * 3) as u8]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn run_mask(dir: &Path, png: &[u8]) -> std::process::Output {
    let img = dir.join("in.png");
    std::fs::write(&img, png).unwrap();
    let keep = dir.join("keep.npy");
    shap_mask::npy::write_bool(&keep, &[28, 28], &[true; 784]).unwrap();
    let out = dir.join("o.npy");
    shap_cli(&[
        "mask",
        "--masker",
        "0",
        "--image",
        img.to_str().unwrap(),
        "--keep",
        keep.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
}

fn assert_clean(out: &std::process::Output) -> Result<(), TestCaseError> {
    let code = out.status.code();
    prop_assert!(
        matches!(code, Some(0 | 1)),
        "exit {:?}: {}",
        code,
        text(&out.stderr)
    );
    prop_assert!(!text(&out.stderr).contains("panicked"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn corrupted_pngs_end_cleanly(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut png = valid_png();
        for (at, b) in edits {
            let i = at.index(png.len());
            png[i] = b;
        }
        let d = tempfile::tempdir().unwrap();
        assert_clean(&run_mask(d.path(), &png))?;
    }

    #[test]
    fn any_claimed_size_ends_cleanly(w in prop_oneof![1u32..64, any::<u32>()], h in prop_oneof![1u32..64, any::<u32>()]) {
        let mut png = valid_png();
        png[16..20].copy_from_slice(&w.to_be_bytes());
        png[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let d = tempfile::tempdir().unwrap();
        let out = run_mask(d.path(), &png);
        assert_clean(&out)?;
        if w > shap_data::MAX_IMAGE_SIDE || h > shap_data::MAX_IMAGE_SIDE {
            prop_assert_eq!(out.status.code(), Some(1));
        }
    }
}
