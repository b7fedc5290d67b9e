//! README's input and output guarantees, checked through the `shap-cli` binary (each process
//! under a 2 GiB address-space limit): outputs never replace a device, FIFO or symlink, are
//! checked before any work, are never an input or each other; stdout errors; bounded inputs;
//! bad numbers refused. No dataset is needed (PNG input or a small synthetic dataset).
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{cli_command, shap_cli, text, write_dataset};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A temporary folder with a 28x28 PNG and an all-true keep mask.
struct Fixture {
    dir: tempfile::TempDir,
    png: PathBuf,
    keep: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("in.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y) % 256) as u8]))
        .save(&png)
        .unwrap();
    let keep = dir.path().join("keep.npy");
    shap_mask::npy::write_bool(&keep, &[28, 28], &[true; 784]).unwrap();
    Fixture { dir, png, keep }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `shap-cli mask` of the fixture image with `--out out` and `extra` flags.
    fn mask_args<'a>(&'a self, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "mask",
            "--masker",
            "blur(3,3)",
            "--image",
            s(&self.png),
            "--keep",
            s(&self.keep),
            "--out",
            out,
        ];
        a.extend_from_slice(extra);
        a
    }

    fn mask(&self, out: &str, extra: &[&str]) -> Output {
        shap_cli(&self.mask_args(out, extra))
    }

    /// A checkpoint from an untrained, seeded network.
    fn model(&self) -> PathBuf {
        let cnn = shap_model::Cnn::seeded(3, shap_model::Head::Softmax, &candle_core::Device::Cpu)
            .unwrap();
        let path = self.path("m.safetensors");
        shap_model::save(&cnn, &shap_model::CheckpointMeta::default(), &path).unwrap();
        path
    }
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "failed: {}", text(&out.stderr));
}

/// Exit code 1 (never 101, 134 or 137), `needle` in the message, no panic text.
fn assert_error(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn is_npy(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x93NUMPY")
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn symlink_output_writes_its_target_and_keeps_the_link() {
    let f = fixture();
    let target = f.path("real.npy");
    std::fs::write(&target, b"old").unwrap();
    let link = f.path("link.npy");
    std::os::unix::fs::symlink("real.npy", &link).unwrap();
    assert_ok(&f.mask(s(&link), &["--quiet"]));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(is_npy(&std::fs::read(&target).unwrap()));
}

#[test]
fn fifo_output_is_written_in_place_and_stays_a_fifo() {
    let f = fixture();
    let fifo = f.path("pipe.npy");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            std::fs::File::open(fifo)
                .unwrap()
                .read_to_end(&mut v)
                .unwrap();
            v
        })
    };
    assert_ok(&f.mask(s(&fifo), &["--quiet"]));
    assert!(is_npy(&reader.join().unwrap()));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn device_outputs_are_written_in_place_never_replaced() {
    let f = fixture();
    assert_ok(&f.mask("/dev/null", &["--quiet"]));
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let node = f.path("null-node");
    let made = std::process::Command::new("mknod")
        .args([s(&node), "c", "1", "3"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !made {
        println!("skipped the mknod part: creating a device node needs root");
        return;
    }
    assert_ok(&f.mask(s(&node), &["--quiet"]));
    assert!(
        std::fs::metadata(&node)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // A directory is refused, before any work.
    assert_error(&f.mask(s(f.dir.path()), &[]), "directory");
}

#[test]
fn dash_is_stdout_and_the_summary_then_stays_out_of_it() {
    let f = fixture();
    let out = f.mask("-", &[]);
    assert_ok(&out);
    assert!(is_npy(&out.stdout));
    // Binary data is refused on a terminal only; a figure never goes to stdout.
    let out = f.mask(s(&f.path("o.npy")), &["--png", "-"]);
    assert_error(&out, "--png -");
}

#[test]
fn full_stdout_is_an_error_and_closed_stdout_ends_quietly() {
    let f = fixture();
    let out_npy = f.path("o.npy");
    let full = cli_command(&f.mask_args(s(&out_npy), &[]))
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_error(&full, "No space left on device");
    assert_eq!(
        text(&full.stderr).matches("os error").count(),
        1,
        "{}",
        text(&full.stderr)
    );
    assert!(
        is_npy(&std::fs::read(&out_npy).unwrap()),
        "saved before printing"
    );
    std::fs::remove_file(&out_npy).unwrap();

    let mut child = cli_command(&f.mask_args(s(&out_npy), &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(text(&done.stderr), "");
    assert!(is_npy(&std::fs::read(&out_npy).unwrap()));
}

#[test]
fn outputs_are_checked_before_any_work() {
    let f = fixture();
    let data = f.path("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 20, 10);
    let started = Instant::now();
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--data-dir", s(&data), "--limit", "20", "--quiet"];
        a.extend_from_slice(extra);
        shap_cli(&a)
    };
    let m = f.path("m1.safetensors");
    assert_error(
        &train(&["--out", "/missing/dir/m.safetensors"]),
        "does not exist",
    );
    assert_error(&train(&["--out", s(&m), "--plot", "x.jpg"]), ".png or .svg");
    assert_error(&train(&["--out", s(&m), "--epochs", "0"]), "--epochs");
    assert_error(&train(&["--out", s(&m), "--history", s(&m)]), "same file");
    assert!(!m.exists(), "nothing written");
    assert!(started.elapsed() < Duration::from_secs(20));

    let model = f.model();
    let before = std::fs::read(&model).unwrap();
    let link = f.path("link.json");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    for json in [&model, &link] {
        let out = shap_cli(&["evaluate", "--model", s(&model), "--json", s(json)]);
        assert_error(&out, "same file");
        let out = shap_cli(&[
            "explain",
            "--model",
            s(&model),
            "--image",
            s(&f.png),
            "--json",
            s(json),
        ]);
        assert_error(&out, "same file");
    }
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the model is untouched"
    );
    assert_error(&f.mask(s(&f.keep), &[]), "same file");
}

#[test]
fn a_255_byte_output_name_works() {
    let f = fixture();
    let name = format!("{}.npy", "a".repeat(251));
    assert_ok(&f.mask(s(&f.path(&name)), &["--quiet"]));
    assert!(is_npy(&std::fs::read(f.path(&name)).unwrap()));
}

#[test]
fn only_our_own_stale_temporary_files_are_removed() {
    let f = fixture();
    // Written by this program on another node (another host tag): a day-old one is a
    // leftover, a young one may be a live writer there (its pid means nothing here).
    let old = f.path(".shap-0badc0de-999999999-0123456789abcdef-0.tmp");
    let young = f.path(".shap-0badc0de-999999999-0123456789abcdef-1.tmp");
    // A user's file that looks like an old-style name, and a near miss: never ours.
    let users = f.path(".shap-999999999-0.tmp");
    let near = f.path(".shap-0badc0de-999999999-0123456789ABCDEF-0.tmp");
    for p in [&old, &young, &users, &near] {
        std::fs::write(p, b"partial").unwrap();
    }
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
    for p in [&old, &users, &near] {
        let file = std::fs::File::options().write(true).open(p).unwrap();
        file.set_modified(two_days_ago).unwrap();
    }
    assert_ok(&f.mask(s(&f.path("o.npy")), &["--quiet"]));
    assert!(!old.exists());
    assert!(young.exists() && users.exists() && near.exists());
}

/// A PNG whose header says `w` x `h`, with no pixel data worth decoding.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut small = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(1, 1)
        .write_to(&mut small, image::ImageFormat::Png)
        .unwrap();
    let mut b = small.into_inner();
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
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

#[test]
fn endless_and_huge_inputs_fail_fast() {
    let f = fixture();
    let started = Instant::now();
    let out = shap_cli(&["evaluate", "--model", "/dev/zero"]);
    assert_error(&out, "64 MiB");
    let out = shap_cli(&["plot", "--npz", "/dev/zero", "--out", s(&f.path("p.png"))]);
    assert_error(&out, "512 MiB");
    let out = shap_cli(&[
        "mask",
        "--masker",
        "0",
        "--image",
        s(&f.png),
        "--keep",
        "/dev/zero",
        "--out",
        s(&f.path("o.npy")),
    ]);
    assert_error(&out, "256 MiB");
    let big = f.path("big.png");
    std::fs::write(&big, png_claiming(10_000, 10_000)).unwrap();
    let out = shap_cli(&[
        "mask",
        "--masker",
        "0",
        "--image",
        s(&big),
        "--keep",
        s(&f.keep),
        "--out",
        s(&f.path("o.npy")),
    ]);
    assert_error(&out, "at most 8192x8192 are accepted");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A stored npz whose entries all point at the same bytes.
fn npz_with_shared_entries(path: &Path) {
    let arr = shap_io::npy::NpyArray {
        shape: vec![4],
        data: shap_io::npy::NpyData::F64(vec![1.0; 4]),
    };
    shap_explain::npz::write_npz(path, &[("values", arr.clone()), ("fx", arr)]).unwrap();
    let mut b = std::fs::read(path).unwrap();
    let eocd = b.len() - 22;
    let cd = u32::from_le_bytes(b[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let second = cd + 46 + "values.npy".len();
    b.copy_within(cd + 42..cd + 46, second + 42);
    std::fs::write(path, b).unwrap();
}

#[test]
fn hostile_npz_files_are_refused_without_allocating() {
    let f = fixture();
    let shared = f.path("shared.npz");
    npz_with_shared_entries(&shared);
    let out = shap_cli(&["plot", "--npz", s(&shared), "--out", s(&f.path("p.png"))]);
    assert_error(&out, "overlap");

    let huge = f.path("huge.npz");
    let empty = |shape: Vec<usize>| shap_io::npy::NpyArray {
        shape,
        data: shap_io::npy::NpyData::F64(vec![]),
    };
    let n = 1usize << 62;
    shap_explain::npz::write_npz(
        &huge,
        &[
            ("values", empty(vec![n, 1, 1, 1, 0])),
            ("base_values", empty(vec![n, 0])),
        ],
    )
    .unwrap();
    let out = shap_cli(&["plot", "--npz", s(&huge), "--out", s(&f.path("p.png"))]);
    assert_error(&out, "every dimension but the first");
}

#[test]
fn bad_numbers_are_refused_and_negative_maskers_accepted() {
    let f = fixture();
    let model = f.model();
    let out = shap_cli(&["evaluate", "--model", s(&model), "--digits", "70000"]);
    assert_error(&out, "--digits must be at most 17");
    let e = f.path("e.npz");
    let out = shap_cli(&[
        "explain",
        "--model",
        s(&model),
        "--image",
        s(&f.png),
        "--max-evals",
        "60",
        "--npz",
        s(&e),
        "--quiet",
    ]);
    assert_ok(&out);
    for vmax in ["1e308", "inf", "0"] {
        let out = shap_cli(&[
            "plot",
            "--npz",
            s(&e),
            "--out",
            s(&f.path("p.png")),
            &format!("--vmax={vmax}"),
        ]);
        assert_error(&out, "--vmax must be a positive number");
    }
    let neg = f.path("neg.npy");
    let mut args = f.mask_args(s(&neg), &["--quiet"]);
    args[2] = "-1";
    assert_eq!(args[1], "--masker");
    assert_ok(&shap_cli(&args));
    let out = shap_cli(&[
        "explain",
        "--model",
        s(&model),
        "--image",
        s(&f.png),
        "--algorithm",
        "permutation",
        "--max-evals",
        &usize::MAX.to_string(),
    ]);
    assert_error(&out, "use --max-evals");
}

#[test]
fn evaluate_refuses_non_finite_outputs_and_an_empty_test_set() {
    let f = fixture();
    let data = f.path("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 10, 10);
    let huge =
        shap_model::Cnn::seeded(3, shap_model::Head::Logits, &candle_core::Device::Cpu).unwrap();
    let fc_weight = &huge.vars()[4];
    fc_weight
        .set(&fc_weight.ones_like().unwrap().affine(3e38, 0.0).unwrap())
        .unwrap();
    let model = f.path("huge.safetensors");
    shap_model::save(&huge, &shap_model::CheckpointMeta::default(), &model).unwrap();
    let out = shap_cli(&["evaluate", "--model", s(&model), "--data-dir", s(&data)]);
    assert_error(&out, "finite");

    write_dataset(&data, 10, 0);
    let out = shap_cli(&["evaluate", "--model", s(&f.model()), "--data-dir", s(&data)]);
    assert_error(&out, "empty");
}

#[test]
fn sigkill_at_any_moment_leaves_the_old_output_or_the_whole_new_one() {
    let f = fixture();
    let model = f.model();
    let out = f.path("e.npz");
    let old = b"the previous explanation".to_vec();
    let images: Vec<&str> = (0..16).flat_map(|_| ["--image", s(&f.png)]).collect();
    let mut args = vec!["explain", "--model", s(&model), "--npz", s(&out), "--quiet"];
    args.extend(images);
    args.extend(["--eval", "full", "--all-classes"]);
    // How long one run takes, so the kills below land before, during and after the write.
    std::fs::write(&out, &old).unwrap();
    let t0 = std::time::Instant::now();
    assert_ok(&shap_cli(&args));
    let full = t0.elapsed();
    let new = shap_explain::Explanation::load_npz(&out).unwrap().values;
    for step in 1..=12u32 {
        std::fs::write(&out, &old).unwrap();
        let mut child = common::cli_command(&args).spawn().unwrap();
        std::thread::sleep(full * step / 10);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Either untouched, or a whole explanation (its run times differ from run to run).
        let untouched = std::fs::read(&out).unwrap() == old;
        let whole = shap_explain::Explanation::load_npz(&out).is_ok_and(|e| e.values == new);
        assert!(
            untouched || whole,
            "a kill at {step}/10 of a run broke the output"
        );
    }
    // The next run removes what a killed one left behind.
    assert_ok(&shap_cli(&args));
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
