//! The search order of `FashionMnist::load_from`, with every place pointed at temp dirs.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use shap_data::{DataError, DataSource, FashionMnist, SearchPaths};

fn tried(e: DataError) -> Vec<String> {
    match e {
        DataError::NotFound { tried } => tried,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn missing(root: &tempfile::TempDir, name: &str) -> PathBuf {
    root.path().join(name)
}

#[test]
fn explicit_dir_wins_and_is_the_only_place_when_given() {
    let good = valid_dir();
    let other = valid_dir();
    let mut p = SearchPaths::none();
    p.explicit_dir = Some(good.path().to_path_buf());
    p.env_dir = Some(other.path().to_path_buf());
    let d = FashionMnist::load_from(&p).unwrap();
    assert_eq!(d.source, DataSource::Directory(good.path().to_path_buf()));

    // A missing explicit dir is an error even though FASHION_MNIST_DIR would work.
    let root = tempfile::tempdir().unwrap();
    p.explicit_dir = Some(missing(&root, "nope"));
    let e = FashionMnist::load_from(&p).unwrap_err();
    let msg = e.to_string();
    let t = tried(e);
    assert!(
        t[0].contains("nope") && t[0].contains("does not exist"),
        "{t:?}"
    );
    assert!(
        msg.contains("apt-get install dataset-fashion-mnist"),
        "{msg}"
    );
    assert!(msg.contains("FASHION_MNIST_DIR"), "{msg}");
}

#[test]
fn env_dir_then_system_dir() {
    let env = valid_dir();
    let system = tempfile::tempdir().unwrap();
    write_all(system.path(), &dataset_files(3, 2, false));
    let mut p = SearchPaths::none();
    p.env_dir = Some(env.path().to_path_buf());
    p.system_dir = Some(system.path().to_path_buf());
    let d = FashionMnist::load_from(&p).unwrap();
    assert_eq!(d.source, DataSource::EnvDir(env.path().to_path_buf()));
    assert_eq!(
        d.source.to_string(),
        format!("FASHION_MNIST_DIR={}", env.path().display())
    );
    assert_eq!(d.train.len(), 20);

    // An env dir that does not exist (or holds nothing) is skipped.
    let root = tempfile::tempdir().unwrap();
    for env_dir in [missing(&root, "gone"), root.path().to_path_buf()] {
        p.env_dir = Some(env_dir);
        let d = FashionMnist::load_from(&p).unwrap();
        assert_eq!(d.source, DataSource::SystemDir(system.path().to_path_buf()));
        assert_eq!(d.train.len(), 3);
    }
}

#[test]
fn a_broken_place_stops_the_search() {
    let broken = dir_with(
        "train-labels-idx1-ubyte.gz",
        gz(&idx_labels(0x801, 20, &[11; 20])),
    );
    let system = valid_dir();
    let mut p = SearchPaths::none();
    p.env_dir = Some(broken.path().to_path_buf());
    p.system_dir = Some(system.path().to_path_buf());
    let e = FashionMnist::load_from(&p).unwrap_err();
    assert!(matches!(e, DataError::BadLabel { label: 11, .. }), "{e:?}");
}

#[test]
fn nothing_found_lists_every_place_in_order() {
    let root = tempfile::tempdir().unwrap();
    let p = SearchPaths {
        explicit_dir: None,
        env_dir: Some(missing(&root, "env")),
        system_dir: Some(missing(&root, "system")),
        hub_cache: Some(missing(&root, "hub")),
        download: false,
        hub_endpoint: None,
    };
    let e = FashionMnist::load_from(&p).unwrap_err();
    let msg = e.to_string();
    let t = tried(e);
    assert_eq!(t.len(), 4, "{t:?}");
    assert!(
        t[0].starts_with("FASHION_MNIST_DIR=") && t[0].contains("env"),
        "{t:?}"
    );
    assert!(
        t[1].contains("system") && t[1].contains("dataset-fashion-mnist"),
        "{t:?}"
    );
    assert!(
        t[2].starts_with("hf-hub cache")
            && t[2].contains("datasets--zalando-datasets--fashion_mnist"),
        "{t:?}"
    );
    assert!(
        t[3].starts_with("hf-hub download of zalando-datasets/fashion_mnist"),
        "{t:?}"
    );
    for fix in [
        "apt-get install dataset-fashion-mnist",
        "FASHION_MNIST_DIR",
        "--data-dir",
    ] {
        assert!(msg.contains(fix), "{fix} missing from {msg}");
    }

    // With nothing configured at all, the unset variable is reported as such.
    let t = tried(FashionMnist::load_from(&SearchPaths::none()).unwrap_err());
    assert_eq!(t[0], "FASHION_MNIST_DIR: not set");
}

/// Without the `hub-cache` feature a populated hub cache is reported, with the fix.
#[cfg(not(feature = "hub-cache"))]
#[test]
fn hub_cache_without_the_feature_names_the_fix() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache
        .path()
        .join("datasets--zalando-datasets--fashion_mnist");
    let id = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::write(repo.join("refs/refs/convert/parquet"), id).unwrap();
    for split in ["train", "test"] {
        let d = repo
            .join("snapshots")
            .join(id)
            .join("fashion_mnist")
            .join(split);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("0000.parquet"), b"PAR1").unwrap();
    }
    let mut p = SearchPaths::none();
    p.hub_cache = Some(cache.path().to_path_buf());
    p.download = true;
    let t = tried(FashionMnist::load_from(&p).unwrap_err());
    assert!(
        t[1].contains("holds the parquet files") && t[1].contains("--features hub"),
        "{t:?}"
    );
    assert!(
        t[2].contains("not built in") && t[2].contains("--features hub"),
        "{t:?}"
    );
}
