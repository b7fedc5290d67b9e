//! What the run tests share: a small dataset and checkpoint, a run over them, and a reporter
//! that records notes and can interrupt a run.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use shap_explain::{Algorithm, OutputSelection, Progress};
use shap_run::{ExplainRun, Images, Options, Reporter, TestImages};

/// A plain-IDX dataset of `n_test` test images (label `i % 10`) and a seeded tutorial
/// checkpoint, in a temporary folder.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
    pub data: PathBuf,
}

pub fn fixture(n_test: u32) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let idx = |magic: u32, dims: &[u32], body: Vec<u8>| {
        let mut v: Vec<u8> = std::iter::once(magic)
            .chain(dims.iter().copied())
            .flat_map(u32::to_be_bytes)
            .collect();
        v.extend(body);
        v
    };
    for (prefix, n) in [("train", 10u32), ("t10k", n_test)] {
        let pixels = (0..n * 784)
            .map(|k| (k.wrapping_mul(7919) % 251) as u8)
            .collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            data.join(format!("{prefix}-images-idx3-ubyte")),
            idx(0x803, &[n, 28, 28], pixels),
        )
        .expect("images");
        std::fs::write(
            data.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(0x801, &[n], labels),
        )
        .expect("labels");
    }
    let cnn = shap_model::Cnn::seeded(5, shap_model::Head::Softmax, &candle_core::Device::Cpu)
        .expect("cnn");
    let model = dir.path().join("m.safetensors");
    shap_model::save(&cnn, &shap_model::CheckpointMeta::default(), &model).expect("save");
    Fixture { dir, model, data }
}

impl Fixture {
    /// One pass of Permutation over `indices` into `npz`, two images a chunk.
    pub fn run(&self, indices: std::ops::Range<usize>, npz: &Path) -> ExplainRun {
        ExplainRun {
            model: self.model.clone(),
            options: Options {
                threads: 1,
                ..Options::default()
            },
            labels: None,
            images: Images::Test {
                data_dir: Some(self.data.clone()),
                pick: TestImages::Indices(indices.collect()),
            },
            algorithm: Algorithm::Permutation,
            masker: "blur(10,10)".parse().expect("spec"),
            max_evals: Some(2 * 784 + 1),
            outputs: Some(OutputSelection::TopK(2)),
            seed: 3,
            shap_compat: false,
            shard: None,
            chunk: Some(2),
            npz: Some(npz.to_path_buf()),
            keep: false,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Collects notes; fails the run (by panicking in the explainer's progress callback) after
/// `stop_after` images.
pub struct Recorder {
    notes: Mutex<Vec<String>>,
    pub images: AtomicUsize,
    stop_after: usize,
}

impl Recorder {
    pub fn new(stop_after: usize) -> Self {
        Self {
            notes: Mutex::new(Vec::new()),
            images: AtomicUsize::new(0),
            stop_after,
        }
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().expect("notes").clone()
    }
}

impl Progress for Recorder {
    fn image_done(&self, _: usize, _: usize) {
        let done = self.images.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            done <= self.stop_after,
            "interrupted after {} images",
            self.stop_after
        );
    }
}

impl Reporter for Recorder {
    fn note(&self, text: &str) {
        self.notes.lock().expect("notes").push(text.to_string());
    }
    fn warning(&self, text: &str) {
        self.note(text);
    }
}
