//! Tests on the real Fashion-MNIST files (`FASHION_MNIST_DIR`, else the Debian package's
//! directory). CI installs the package, so a missing dataset FAILS these tests; set
//! `SHAP_SKIP_REAL_DATA=1` to skip them on a machine without it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use shap_data::{CLASS_NAMES, DataSource, FashionMnist, IMAGE_COLS, IMAGE_ROWS, SYSTEM_DIR};

fn real_dir() -> PathBuf {
    std::env::var_os("FASHION_MNIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_DIR))
}

fn skip() -> bool {
    let skip = std::env::var("SHAP_SKIP_REAL_DATA").is_ok_and(|v| v == "1");
    if skip {
        println!("SKIPPED: SHAP_SKIP_REAL_DATA=1, real Fashion-MNIST tests not run");
    }
    skip
}

/// Loaded once for all tests of this file.
fn real() -> &'static FashionMnist {
    static DATA: OnceLock<FashionMnist> = OnceLock::new();
    DATA.get_or_init(|| match FashionMnist::load_dir(&real_dir()) {
        Ok(d) => d,
        Err(e) => panic!(
            "the real dataset is needed here (set SHAP_SKIP_REAL_DATA=1 to skip): {e}\n\
             install it with `apt-get install dataset-fashion-mnist` or set FASHION_MNIST_DIR"
        ),
    })
}

#[test]
fn counts_and_shapes() {
    if skip() {
        return;
    }
    let d = real();
    assert_eq!(d.train.len(), 60_000);
    assert_eq!(d.test.len(), 10_000);
    for s in [&d.train, &d.test] {
        assert_eq!((s.rows(), s.cols()), (IMAGE_ROWS, IMAGE_COLS));
        assert_eq!(s.images().len(), s.len() * 28 * 28);
    }
    // Real images are not blank: the mean pixel of the test set is well inside (0, 255).
    let mean =
        d.test.images().iter().map(|&p| f64::from(p)).sum::<f64>() / d.test.images().len() as f64;
    assert!((40.0..120.0).contains(&mean), "mean pixel {mean}");
}

#[test]
fn first_test_labels() {
    if skip() {
        return;
    }
    let first: Vec<u8> = real().test.labels()[..4].to_vec();
    assert_eq!(first, [9, 2, 1, 1]);
    let names: Vec<&str> = first.iter().map(|&l| CLASS_NAMES[usize::from(l)]).collect();
    assert_eq!(names, ["Ankle boot", "Pullover", "Trouser", "Trouser"]);
}

#[test]
fn class_histograms_are_balanced() {
    if skip() {
        return;
    }
    assert_eq!(real().train.class_histogram(), [6000; 10]);
    assert_eq!(real().test.class_histogram(), [1000; 10]);
}

#[test]
fn plain_copies_load_to_the_same_data() {
    if skip() {
        return;
    }
    // Decompress the real gzip files with an independent reader (flate2's default read path,
    // whole-file) into plain IDX files; the loader must return identical splits.
    let src = real_dir();
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".gz") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()),
                &mut out,
            )
            .unwrap();
            std::fs::write(tmp.path().join(stem), out).unwrap();
        }
    }
    let plain = FashionMnist::load_dir(tmp.path()).unwrap();
    assert_eq!(plain.test, real().test);
    assert_eq!(plain.train.labels(), real().train.labels());
    assert!(plain.train.images() == real().train.images());
}

#[test]
fn default_search_finds_the_real_data() {
    if skip() {
        return;
    }
    let d = FashionMnist::load(None).unwrap();
    match &d.source {
        DataSource::EnvDir(p) | DataSource::SystemDir(p) => assert_eq!(p, &real_dir()),
        other => panic!("unexpected source {other}"),
    }
    assert_eq!(d.test.labels(), real().test.labels());
}
