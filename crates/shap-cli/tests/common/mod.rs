//! Helpers shared by the CLI's process tests.
#![allow(dead_code)]

pub mod graphs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Address-space limit (KiB) every CLI process in these tests runs under, so a runaway
/// allocation fails the test instead of the machine.
pub const ULIMIT_KIB: u64 = 2 * 1024 * 1024;

/// A `shap-cli` command with `args`, run under `ulimit -v` [`ULIMIT_KIB`].
pub fn cli_command(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {ULIMIT_KIB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_shap-cli"))
        .args(args);
    c
}

/// Run the built `shap-cli` binary with `args` (under the memory limit) and collect its output.
pub fn shap_cli(args: &[&str]) -> Output {
    cli_command(args).output().unwrap()
}

/// The real Fashion-MNIST, found by the same search as the CLI (`FashionMnist::load(None)`:
/// `$FASHION_MNIST_DIR`, the Debian package, the hub cache). Missing data fails the test unless
/// `SHAP_SKIP_REAL_DATA=1`, which skips it (`None`) with a note on stderr.
pub fn real_data() -> Option<shap_data::FashionMnist> {
    match shap_data::FashionMnist::load(None) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("SHAP_SKIP_REAL_DATA").as_deref() == Ok("1") => {
            eprintln!("skipping (SHAP_SKIP_REAL_DATA=1): {e}");
            None
        }
        Err(e) => panic!("Fashion-MNIST not found ({e}); set SHAP_SKIP_REAL_DATA=1 to skip"),
    }
}

/// Process output bytes as text (lossy UTF-8).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes a small plain-IDX dataset (`n_train`, `n_test` images of 28x28, label `i % 10`).
pub fn write_dataset(dir: &Path, n_train: u32, n_test: u32) {
    let images = |n: u32| {
        let mut v = Vec::new();
        for w in [0x803u32, n, 28, 28] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend((0..n * 784).map(|k| (k % 251) as u8));
        v
    };
    let labels = |n: u32| {
        let mut v = Vec::new();
        for w in [0x801u32, n] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend((0..n).map(|i| (i % 10) as u8));
        v
    };
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(n_train)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(n_train)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(n_test)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(n_test)).unwrap();
}

/// A temporary folder holding a synthetic plain-IDX dataset in `data/` (10 training images and
/// `n_test` test images, [`write_dataset`]) and a seeded tutorial checkpoint `m.safetensors`.
pub struct Synthetic {
    /// The folder (removed on drop).
    pub dir: tempfile::TempDir,
    /// The checkpoint.
    pub model: PathBuf,
    /// The dataset folder (`--data-dir`).
    pub data: PathBuf,
}

/// A [`Synthetic`] with `n_test` test images.
pub fn synthetic(n_test: u32) -> Synthetic {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 10, n_test);
    let cnn =
        shap_model::Cnn::seeded(5, shap_model::Head::Softmax, &candle_core::Device::Cpu).unwrap();
    let model = dir.path().join("m.safetensors");
    shap_model::save(&cnn, &shap_model::CheckpointMeta::default(), &model).unwrap();
    Synthetic { dir, model, data }
}

impl Synthetic {
    /// `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A file of the ONNX crate's fixtures (`crates/shap-onnx/fixtures`), as a path string.
pub fn onnx_fixture(name: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shap-onnx/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Run `shap-cli` with `args` under a pseudo-terminal (`script`, from util-linux), and return
/// what the terminal showed (standard output and error together). It must succeed.
pub fn on_a_terminal(args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let cmd = format!("'{}' {}", env!("CARGO_BIN_EXE_shap-cli"), quoted.join(" "));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("`script` (util-linux) runs the CLI on a pseudo-terminal");
    assert!(out.status.success(), "{}", text(&out.stdout));
    text(&out.stdout)
}
