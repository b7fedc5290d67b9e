//! Whole-dataset runs on one machine: `explain --npz OUT.npz` keeps finished chunks in
//! `OUT.npz.parts/`; a run killed with SIGKILL resumes where it stopped and ends with the file
//! an uninterrupted run writes; another run's journal, and a finished file, are recognised.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::Synthetic as Setup;
use common::{cli_command, s, text};
fn setup(n_test: u32) -> Setup {
    common::synthetic(n_test)
}

impl Setup {
    /// `explain` of test images 0..24 in chunks of 2, into `npz`, with `extra` flags.
    fn command(&self, npz: &Path, extra: &[&str]) -> std::process::Command {
        let mut args = vec![
            "explain",
            "-m",
            s(&self.model),
            "--data-dir",
            s(&self.data),
            "--range",
            "0..24",
            "--chunk",
            "2",
            "--max-evals",
            "400",
            "--npz",
            s(npz),
        ];
        args.extend_from_slice(extra);
        cli_command(&args)
    }

    fn explain(&self, npz: &Path, extra: &[&str]) -> Output {
        self.command(npz, extra).output().unwrap()
    }
}

fn parts(npz: &Path) -> PathBuf {
    PathBuf::from(format!("{}.parts", npz.display()))
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Two `.npz` files, byte for byte (timings are not saved, so nothing may differ).
fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// Start a run and SIGKILL it once its journal holds a finished chunk (polling every 5 ms).
fn kill_after_first_chunk(t: &Setup, npz: &Path) {
    let mut child = t.command(npz, &[]).spawn().unwrap();
    let journal = parts(npz);
    let has_chunk = || {
        std::fs::read_dir(&journal).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("chunk-"))
        })
    };
    loop {
        if has_chunk() {
            child.kill().unwrap();
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    assert!(!npz.exists(), "no final file after a kill");
    assert!(journal.join("run.json").exists());
}

#[test]
fn a_killed_run_resumes_and_ends_with_the_uninterrupted_runs_file() {
    let t = setup(30);
    let reference = t.path("ref.npz");
    ok(&t.explain(&reference, &["--quiet"]));
    assert!(
        !parts(&reference).exists(),
        "the journal is removed at the end"
    );

    let npz = t.path("e.npz");
    kill_after_first_chunk(&t, &npz);
    // Another run's settings: refused, naming the setting and how to start over.
    let other = t.explain(&npz, &["--seed", "7"]);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stderr));
    let err = text(&other.stderr);
    assert!(err.contains("seed = 42, this run has seed = 7"), "{err}");
    assert!(err.contains("to start over"), "{err}");
    assert!(!npz.exists());
    // The same command resumes, reusing the finished chunks.
    let resumed = t.explain(&npz, &["--quiet"]);
    ok(&resumed);
    assert!(
        text(&resumed.stderr).contains("note: resumed:"),
        "{}",
        text(&resumed.stderr)
    );
    same_bytes(&reference, &npz);
    assert!(!parts(&npz).exists());
}

#[test]
fn a_finished_file_is_not_computed_again_and_a_corrupt_chunk_is() {
    let t = setup(30);
    let npz = t.path("e.npz");
    ok(&t.explain(&npz, &["--quiet"]));
    let before = std::fs::read(&npz).unwrap();
    let again = t.explain(&npz, &["--quiet"]);
    ok(&again);
    assert_eq!(
        text(&again.stderr).matches("is already complete").count(),
        1,
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(&npz).unwrap(), before, "left as it was");
    // Other settings are a new run: computed and written.
    ok(&t.explain(&npz, &["--quiet", "--top-k", "3"]));
    assert_ne!(std::fs::read(&npz).unwrap(), before);

    // A chunk file damaged in the journal is computed again; the result is unchanged.
    let reference = t.path("ref.npz");
    std::fs::write(&reference, &before).unwrap();
    let e = t.path("c.npz");
    kill_after_first_chunk(&t, &e);
    let chunk = std::fs::read_dir(parts(&e))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chunk-")
        })
        .unwrap();
    let mut bytes = std::fs::read(&chunk).unwrap();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x55;
    std::fs::write(&chunk, &bytes).unwrap();
    let out = t.explain(&e, &["--quiet"]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("computing that chunk again"),
        "{}",
        text(&out.stderr)
    );
    same_bytes(&reference, &e);

    // Killed after writing the final file but before removing the journal: the rerun finds
    // the file complete and removes the journal.
    let d = t.path("d.npz");
    kill_after_first_chunk(&t, &d);
    std::fs::write(&d, &before).unwrap();
    let out = t.explain(&d, &["--quiet"]);
    ok(&out);
    assert!(text(&out.stderr).contains("is already complete"));
    assert!(!parts(&d).exists());
    assert_eq!(std::fs::read(&d).unwrap(), before);
}

#[test]
fn bad_chunks_and_journals_are_clear_errors() {
    let t = setup(30);
    let npz = t.path("e.npz");
    let fails = |extra: &[&str], needle: &str| {
        let mut args = vec![
            "explain",
            "-m",
            s(&t.model),
            "--data-dir",
            s(&t.data),
            "--range",
            "0..24",
            "--npz",
            s(&npz),
        ];
        args.extend_from_slice(extra);
        let out = cli_command(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
        assert!(!npz.exists());
    };
    fails(&["--chunk", "0"], "--chunk needs N >= 1");
    fails(
        &["--shap-compat", "--chunk", "2"],
        "--chunk cannot be combined with --shap-compat",
    );
    // A journal that is not one.
    std::fs::create_dir(parts(&npz)).unwrap();
    std::fs::write(parts(&npz).join("run.json"), b"{}").unwrap();
    fails(&[], "is not a journal manifest");
    std::fs::remove_dir_all(parts(&npz)).unwrap();
    std::fs::write(parts(&npz), b"a file").unwrap();
    fails(&[], "is not a folder");
}

#[test]
fn a_failing_shard_is_named_and_parts_of_other_models_do_not_merge() {
    let t = setup(30);
    // A shard whose journal cannot be made fails naming the shard and its images.
    let part = t.path("part1.npz");
    std::fs::write(parts(&part), b"in the way").unwrap();
    let out = t.explain(&part, &["--shard", "1/2", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("shard 1/2 (images 12..24 of the selection)"),
        "{err}"
    );
    assert!(!part.exists());
    std::fs::remove_file(parts(&part)).unwrap();
    // The same file name, another model: merge names the hash that differs.
    let other_dir = t.path("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other_model = other_dir.join("m.safetensors");
    let cnn =
        shap_model::Cnn::seeded(6, shap_model::Head::Softmax, &candle_core::Device::Cpu).unwrap();
    shap_model::save(&cnn, &shap_model::CheckpointMeta::default(), &other_model).unwrap();
    let part0 = t.path("part0.npz");
    ok(&t.explain(&part0, &["--shard", "0/2", "--quiet"]));
    let mut c = cli_command(&[
        "explain",
        "-m",
        s(&other_model),
        "--data-dir",
        s(&t.data),
        "--range",
        "0..24",
        "--chunk",
        "2",
        "--max-evals",
        "400",
        "--npz",
        s(&part),
        "--shard",
        "1/2",
        "--quiet",
    ]);
    ok(&c.output().unwrap());
    let merged = t.path("all.npz");
    let out = cli_command(&["merge", "-o", s(&merged), s(&part0), s(&part)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("with model_sha256 = "),
        "{}",
        text(&out.stderr)
    );
    assert!(!merged.exists());
}

/// The first chunk file in the journal of `npz`.
fn first_chunk(npz: &Path) -> PathBuf {
    std::fs::read_dir(parts(npz))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chunk-")
        })
        .unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Run `c` to its end, killing it (and failing) if it has not ended after 10 minutes: a run
/// that blocks forever fails the test instead of hanging it.
fn output_within_deadline(mut c: std::process::Command) -> Output {
    use std::process::Stdio;
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the run hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_journal_locked_by_another_run_is_refused_and_left_alone() {
    let t = setup(30);
    let npz = t.path("e.npz");
    let journal = parts(&npz);
    std::fs::create_dir(&journal).unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(journal.join("lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = t.explain(&npz, &["--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("another run is using"), "{err}");
    assert!(err.contains("wait for it to finish"), "{err}");
    assert!(!npz.exists());
    assert_eq!(names(&journal), ["lock"], "nothing written");
    assert_eq!(std::fs::metadata(journal.join("lock")).unwrap().len(), 0);
    // Once the other run is over, the same command runs and removes the journal.
    drop(lock);
    ok(&t.explain(&npz, &["--quiet"]));
    assert!(!journal.exists());
    // A finished file with a leftover journal that another run holds: refused too.
    let before = std::fs::read(&npz).unwrap();
    std::fs::create_dir(&journal).unwrap();
    let lock = std::fs::File::create(journal.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let out = t.explain(&npz, &["--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("another run is using"));
    assert_eq!(names(&journal), ["lock"]);
    assert_eq!(std::fs::read(&npz).unwrap(), before);
}

#[test]
fn a_damaged_final_file_is_computed_again() {
    let t = setup(30);
    let reference = t.path("ref.npz");
    ok(&t.explain(&reference, &["--quiet"]));
    let mut bytes = std::fs::read(&reference).unwrap();
    // A byte inside the values: past values.npy's local header name and its npy header.
    let name = bytes.windows(10).position(|w| w == b"values.npy").unwrap();
    bytes[name + 10 + 400] ^= 0x55;
    let npz = t.path("e.npz");
    std::fs::write(&npz, &bytes).unwrap();
    let out = t.explain(&npz, &["--quiet"]);
    ok(&out);
    let err = text(&out.stderr);
    assert!(!err.contains("already complete"), "{err}");
    assert!(err.contains("computing it again"), "{err}");
    same_bytes(&reference, &npz);
}

#[test]
fn symlinks_and_fifos_in_the_journal_are_never_followed_or_opened() {
    let t = setup(30);
    let reference = t.path("ref.npz");
    ok(&t.explain(&reference, &["--quiet"]));

    // A chunk file replaced by a symlink to a file outside: the link is removed, the file
    // it points at is left as it was.
    let npz = t.path("e.npz");
    kill_after_first_chunk(&t, &npz);
    let chunk = first_chunk(&npz);
    let outside = t.path("outside.txt");
    std::fs::write(&outside, b"not yours").unwrap();
    std::fs::remove_file(&chunk).unwrap();
    std::os::unix::fs::symlink(&outside, &chunk).unwrap();
    let out = output_within_deadline(t.command(&npz, &["--quiet"]));
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");
    ok(&out);
    assert!(text(&out.stderr).contains("is not a regular file"));
    same_bytes(&reference, &npz);

    // A chunk file replaced by a FIFO: removed and computed again, no hang.
    let npz = t.path("f.npz");
    kill_after_first_chunk(&t, &npz);
    let chunk = first_chunk(&npz);
    std::fs::remove_file(&chunk).unwrap();
    mkfifo(&chunk);
    let out = output_within_deadline(t.command(&npz, &["--quiet"]));
    ok(&out);
    same_bytes(&reference, &npz);

    // run.json as a FIFO: a clear error, no hang, nothing computed.
    let npz = t.path("g.npz");
    std::fs::create_dir(parts(&npz)).unwrap();
    mkfifo(&parts(&npz).join("run.json"));
    let out = output_within_deadline(t.command(&npz, &["--quiet"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("run.json is not a regular file"), "{err}");
    assert!(err.contains("to start over"), "{err}");
    assert!(!npz.exists());
}

#[test]
fn a_garbage_manifest_says_to_delete_and_an_unwritable_journal_fails_before_any_work() {
    use std::os::unix::fs::PermissionsExt;
    let t = setup(30);
    let npz = t.path("e.npz");
    std::fs::create_dir(parts(&npz)).unwrap();
    std::fs::write(parts(&npz).join("run.json"), b"garbage").unwrap();
    let out = t.explain(&npz, &["--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("is not a journal manifest"), "{err}");
    assert!(err.contains("to start over"), "{err}");
    assert!(!err.contains("rerun the same command"), "{err}");
    std::fs::remove_dir_all(parts(&npz)).unwrap();

    // A killed run's journal made read-only: refused before any chunk is computed.
    kill_after_first_chunk(&t, &npz);
    let journal = parts(&npz);
    let before = names(&journal);
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = journal.join("probe");
    if std::fs::write(&probe, b"").is_ok() {
        // Root writes anyway: nothing to check here.
        eprintln!("skipped: this user can write in a read-only folder");
        std::fs::remove_file(&probe).unwrap();
    } else {
        let out = t.explain(&npz, &["--quiet"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("cannot write in the journal"), "{err}");
        assert_eq!(names(&journal), before);
    }
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_255_byte_name_has_a_journal_and_resumes() {
    let t = setup(30);
    let reference = t.path("ref.npz");
    ok(&t.explain(&reference, &["--quiet"]));
    let npz = t.path(&format!("{}.npz", "é".repeat(125))); // 254 bytes
    assert_eq!(npz.file_name().unwrap().len(), 254);
    let mut child = t.command(&npz, &[]).spawn().unwrap();
    // The journal's name: the first 200 bytes, a hash, `.parts` (`NAME.parts` is too long).
    let journal = || {
        std::fs::read_dir(t.path(""))
            .unwrap()
            .flatten()
            .find_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".parts").then(|| e.path())
            })
    };
    let chunk = loop {
        let found = journal()
            .and_then(|j| std::fs::read_dir(j).ok())
            .and_then(|d| {
                d.flatten()
                    .find(|e| e.file_name().to_string_lossy().starts_with("chunk-"))
            });
        if found.is_some() {
            child.kill().unwrap();
            break found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(chunk.is_some());
    child.wait().unwrap();
    let name = journal()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.len() <= 255 && name.starts_with(&"é".repeat(100)) && name.contains('~'),
        "{name}"
    );
    let resumed = t.explain(&npz, &["--quiet"]);
    ok(&resumed);
    assert!(
        text(&resumed.stderr).contains("note: resumed:"),
        "{}",
        text(&resumed.stderr)
    );
    same_bytes(&reference, &npz);
    assert!(journal().is_none(), "the journal is removed at the end");
}
