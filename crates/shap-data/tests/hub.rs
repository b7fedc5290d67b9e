//! The hf-hub path (features `hub-cache` / `hub`): the parquet conversion read from a hub cache
//! built from the committed fixture (`fixtures/make_hub_fixture.py`), never from the network.
//! `hub-cache` is a default feature, so `cargo test --release -p shap-data` runs these;
//! `--features hub` adds the download test.
#![cfg(feature = "hub-cache")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use shap_data::{DataError, DataSource, FashionMnist, SearchPaths};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn snapshot(cache: &Path) -> PathBuf {
    cache
        .join("datasets--zalando-datasets--fashion_mnist/snapshots")
        .join(COMMIT)
}

/// Search paths with only the hub cache switched on.
fn hub_only(cache: &Path) -> SearchPaths {
    let mut p = SearchPaths::none();
    p.hub_cache = Some(cache.to_path_buf());
    p
}

/// A temp hub cache holding the fixture's layout with `train` replaced by `train_file`.
fn cache_with_train(train_file: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("datasets--zalando-datasets--fashion_mnist");
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::write(
        repo.join("refs/refs/convert/parquet"),
        format!("{COMMIT}\n"),
    )
    .unwrap();
    let snap = snapshot(d.path());
    for split in ["train", "test"] {
        std::fs::create_dir_all(snap.join("fashion_mnist").join(split)).unwrap();
    }
    std::fs::copy(train_file, snap.join("fashion_mnist/train/0000.parquet")).unwrap();
    let test = snapshot(&fixtures().join("hub-cache")).join("fashion_mnist/test/0000.parquet");
    std::fs::copy(test, snap.join("fashion_mnist/test/0000.parquet")).unwrap();
    d
}

#[test]
fn hub_cache_loads_the_same_images_as_the_idx_files() {
    let cache = fixtures().join("hub-cache");
    let mut p = hub_only(&cache);
    // Earlier places absent: the search falls through to the cache.
    let root = tempfile::tempdir().unwrap();
    p.env_dir = Some(root.path().join("none"));
    p.system_dir = Some(root.path().join("none-either"));
    let hub = FashionMnist::load_from(&p).unwrap();
    let idx = FashionMnist::load_dir(&fixtures().join("expected")).unwrap();
    assert_eq!((hub.train.len(), hub.test.len()), (12, 8));
    assert_eq!(hub.train, idx.train);
    assert_eq!(hub.test, idx.test);
    assert_eq!(&hub.test.labels()[..4], &[9, 2, 1, 1]);
    assert_eq!(hub.source, DataSource::HubCache(snapshot(&cache)));
    assert!(
        hub.source.to_string().starts_with("hf-hub cache "),
        "{}",
        hub.source
    );
}

#[test]
fn a_label_above_nine_is_rejected() {
    let cache = cache_with_train(&fixtures().join("bad/label_10.parquet"));
    let e = FashionMnist::load_from(&hub_only(cache.path())).unwrap_err();
    match &e {
        DataError::BadLabel { index, label, path } => {
            assert_eq!((*index, *label), (1, 10));
            assert!(
                path.ends_with("fashion_mnist/train/0000.parquet"),
                "{path:?}"
            );
        }
        other => panic!("expected BadLabel, got {other:?}"),
    }
}

#[test]
fn a_non_png_image_is_rejected() {
    let cache = cache_with_train(&fixtures().join("bad/not_png.parquet"));
    let e = FashionMnist::load_from(&hub_only(cache.path())).unwrap_err();
    assert!(matches!(e, DataError::Parquet { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("0000.parquet") && msg.contains("row 1") && msg.contains("PNG"),
        "{msg}"
    );
}

#[test]
fn a_wrong_image_size_is_rejected() {
    let cache = cache_with_train(&fixtures().join("bad/14x14.parquet"));
    let e = FashionMnist::load_from(&hub_only(cache.path())).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::WrongImageSize {
                rows: 14,
                cols: 14,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_corrupt_parquet_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(
        snapshot(&fixtures().join("hub-cache")).join("fashion_mnist/train/0000.parquet"),
    )
    .unwrap();
    for (name, bytes) in [
        ("garbage", b"this is not parquet at all".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
    ] {
        let f = tmp.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        let cache = cache_with_train(&f);
        let e = FashionMnist::load_from(&hub_only(cache.path())).unwrap_err();
        assert!(matches!(e, DataError::Parquet { .. }), "{name}: {e:?}");
        assert!(e.to_string().contains("0000.parquet"), "{e}");
    }
}

#[test]
fn an_incomplete_cache_is_skipped_and_reported() {
    let cache = cache_with_train(&fixtures().join("bad/label_10.parquet"));
    std::fs::remove_file(snapshot(cache.path()).join("fashion_mnist/test/0000.parquet")).unwrap();
    let e = FashionMnist::load_from(&hub_only(cache.path())).unwrap_err();
    match e {
        DataError::NotFound { tried } => {
            assert!(
                tried[1].contains("lacks") && tried[1].contains("test/0000.parquet"),
                "{tried:?}"
            );
            let download = &tried[2];
            if cfg!(feature = "hub") {
                assert!(download.contains("switched off"), "{tried:?}");
            } else {
                assert!(
                    download.contains("not built in") && download.contains("--features hub"),
                    "{tried:?}"
                );
            }
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// The download path is wired: against a closed port on this machine it fails, and the
/// failure is listed with the other places.
#[cfg(feature = "hub")]
#[test]
fn a_failed_download_is_listed() {
    let cache = tempfile::tempdir().unwrap();
    let mut p = hub_only(cache.path());
    p.download = true;
    p.hub_endpoint = Some("http://127.0.0.1:9".into());
    let e = FashionMnist::load_from(&p).unwrap_err();
    match e {
        DataError::NotFound { tried } => {
            let last = tried.last().unwrap();
            assert!(
                last.starts_with("hf-hub download of zalando-datasets/fashion_mnist"),
                "{tried:?}"
            );
            assert!(
                last.contains("failed") && last.contains("fashion_mnist/train/0000.parquet"),
                "{tried:?}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}
