//! Helpers shared by the integration tests: build IDX files (plain or gzip) on the fly.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

/// An IDX image file: header (magic, count, rows, cols) + pixels.
pub fn idx_images(magic: u32, count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, count, rows, cols] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

/// An IDX label file: header (magic, count) + labels.
pub fn idx_labels(magic: u32, count: u32, labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, count] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

/// Gzip-compresses bytes.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Deterministic pixels for `n` 28x28 images: image i, pixel j = (i * 31 + j * 7) % 256.
pub fn pixels(n: usize) -> Vec<u8> {
    (0..n * 784)
        .map(|k| {
            let (i, j) = (k / 784, k % 784);
            ((i * 31 + j * 7) % 256) as u8
        })
        .collect()
}

/// Labels `i % 10`.
pub fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

/// The four files of a small valid dataset (`n_train`, `n_test` images), as (name, bytes).
pub fn dataset_files(n_train: usize, n_test: usize, gzip: bool) -> Vec<(String, Vec<u8>)> {
    let ext = if gzip { ".gz" } else { "" };
    let enc = |b: Vec<u8>| if gzip { gz(&b) } else { b };
    vec![
        (
            format!("train-images-idx3-ubyte{ext}"),
            enc(idx_images(0x803, n_train as u32, 28, 28, &pixels(n_train))),
        ),
        (
            format!("train-labels-idx1-ubyte{ext}"),
            enc(idx_labels(0x801, n_train as u32, &labels(n_train))),
        ),
        (
            format!("t10k-images-idx3-ubyte{ext}"),
            enc(idx_images(0x803, n_test as u32, 28, 28, &pixels(n_test))),
        ),
        (
            format!("t10k-labels-idx1-ubyte{ext}"),
            enc(idx_labels(0x801, n_test as u32, &labels(n_test))),
        ),
    ]
}

/// Writes files into `dir`.
pub fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A temp dir holding a valid gzip dataset of 20 train and 10 test images.
pub fn valid_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_all(d.path(), &dataset_files(20, 10, true));
    d
}

/// A temp dir holding a valid dataset with one file replaced by `bytes`.
pub fn dir_with(name: &str, bytes: Vec<u8>) -> tempfile::TempDir {
    let d = valid_dir();
    std::fs::write(d.path().join(name), bytes).unwrap();
    d
}
