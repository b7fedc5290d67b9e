//! The output writer and the bounded reader on real files, symlinks, FIFOs and devices.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shap_io::{IoError, OutputSpec, check_distinct, read_bounded, validate_output, write_bytes};

fn temps_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".shap-")
        })
        .collect()
}

#[test]
fn regular_file_is_replaced_whole_and_keeps_its_permissions() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("out.json");
    std::fs::write(&p, b"old contents").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_bytes(&p, b"new").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"new");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(temps_in(d.path()).is_empty());
}

#[test]
fn failed_write_leaves_the_old_file_and_no_temporary() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("out.bin");
    std::fs::write(&p, b"old").unwrap();
    let e = shap_io::write_atomic(&p, |w| {
        w.write_all(b"part")?;
        Err(std::io::Error::other("the producer failed"))
    })
    .unwrap_err();
    assert!(matches!(e, IoError::Os { .. }), "{e:?}");
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert!(temps_in(d.path()).is_empty());
}

#[test]
fn symlink_is_followed_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real.txt");
    std::fs::write(&real, b"old").unwrap();
    let link = d.path().join("link.txt");
    std::os::unix::fs::symlink("real.txt", &link).unwrap();
    write_bytes(&link, b"new").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&real).unwrap(), b"new");
    // A dangling link creates its target.
    let dangling = d.path().join("dangling");
    std::os::unix::fs::symlink("created.txt", &dangling).unwrap();
    write_bytes(&dangling, b"made").unwrap();
    assert_eq!(
        std::fs::read(d.path().join("created.txt")).unwrap(),
        b"made"
    );
}

#[test]
fn fifo_is_written_in_place() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
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
    write_bytes(&fifo, b"through the pipe").unwrap();
    assert_eq!(reader.join().unwrap(), b"through the pipe");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn character_devices_are_written_in_place() {
    write_bytes(Path::new("/dev/null"), b"discarded").unwrap();
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let e = write_bytes(Path::new("/dev/full"), b"x").unwrap_err();
    let chain = std::error::Error::source(&e).unwrap().to_string();
    assert!(chain.contains("No space left"), "{chain}");
    let d = tempfile::tempdir().unwrap();
    let node = d.path().join("null");
    let made = std::process::Command::new("mknod")
        .args([node.to_str().unwrap(), "c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        println!("skipped the mknod part: creating a device node needs root");
        return;
    }
    write_bytes(&node, b"discarded").unwrap();
    assert!(
        std::fs::metadata(&node)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn directories_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let e = write_bytes(d.path(), b"x").unwrap_err();
    assert!(e.to_string().contains("a directory"), "{e}");
    let e = validate_output(d.path(), OutputSpec::text("--json")).unwrap_err();
    assert!(e.to_string().contains("a directory"), "{e}");
}

#[test]
fn longest_valid_name_works() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("n".repeat(255));
    write_bytes(&p, b"ok").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"ok");
}

#[test]
fn validation_names_flag_folder_and_extension() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope/out.png");
    let e = validate_output(&missing, OutputSpec::file("--plot", &["png", "svg"])).unwrap_err();
    assert!(matches!(e, IoError::NoFolder { .. }), "{e:?}");
    assert!(e.to_string().starts_with("--plot"), "{e}");
    let jpg = d.path().join("out.jpg");
    let e = validate_output(&jpg, OutputSpec::file("--plot", &["png", "svg"])).unwrap_err();
    assert!(e.to_string().contains(".png or .svg"), "{e}");
    validate_output(
        &d.path().join("OUT.PNG"),
        OutputSpec::file("--plot", &["png"]),
    )
    .unwrap();
    let e = validate_output(Path::new("-"), OutputSpec::file("--plot", &["png"])).unwrap_err();
    assert!(matches!(e, IoError::Stdout { .. }), "{e:?}");
    validate_output(Path::new("-"), OutputSpec::text("--json")).unwrap();
    // A trailing slash names a folder: refused before any work, nothing created.
    let slash = PathBuf::from(format!("{}/x.npz/", d.path().display()));
    let e = validate_output(&slash, OutputSpec::file("--npz", &["npz"])).unwrap_err();
    assert!(matches!(e, IoError::FolderName { .. }), "{e:?}");
    assert!(e.to_string().contains("ends in '/'"), "{e}");
    assert!(!d.path().join("x.npz").exists());
    assert!(
        temps_in(d.path()).is_empty(),
        "the writability probe is removed"
    );
}

#[test]
fn same_file_is_found_through_links() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.safetensors");
    std::fs::write(&model, b"weights").unwrap();
    let hard = d.path().join("hard");
    std::fs::hard_link(&model, &hard).unwrap();
    let soft = d.path().join("soft");
    std::os::unix::fs::symlink(&model, &soft).unwrap();
    let new = d.path().join("new.json");
    for out in [&model, &hard, &soft] {
        let e = check_distinct(&[("--json", out)], &[("--model", &model)]).unwrap_err();
        assert!(e.to_string().contains("--model and --json"), "{e}");
    }
    let dotted = d.path().join(".").join("new.json");
    let e = check_distinct(&[("--out", &new), ("--history", &dotted)], &[]).unwrap_err();
    assert!(matches!(e, IoError::SameFile { .. }), "{e:?}");
    check_distinct(&[("--json", &new)], &[("--model", &model)]).unwrap();
    let null = Path::new("/dev/null");
    check_distinct(&[("--json", null), ("--npz", null)], &[]).unwrap();
    let dash = Path::new("-");
    let e = check_distinct(&[("--json", dash), ("--npz", dash)], &[]).unwrap_err();
    assert!(e.to_string().contains("--json and --npz"), "{e}");
}

#[test]
fn bounded_reads_fail_fast_and_name_the_limit() {
    let started = Instant::now();
    let e = read_bounded(Path::new("/dev/zero"), 8 << 20, "a checkpoint").unwrap_err();
    assert!(e.to_string().contains("limit of 8 MiB"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(1 << 40).unwrap(); // sparse: checked by size, never read
    let e = read_bounded(&p, 1000, "a mask").unwrap_err();
    assert!(e.to_string().contains("1000 bytes"), "{e}");
    std::fs::write(&p, b"12345").unwrap();
    assert_eq!(read_bounded(&p, 5, "x").unwrap(), b"12345");
    assert!(read_bounded(d.path(), 5, "x").is_err());
}

/// The child half of [`sigkill_mid_write_leaves_the_target_whole`]: starts a write that
/// never finishes.
fn slow_writer(target: &str) {
    let _ = shap_io::write_atomic(Path::new(target), |w| {
        w.write_all(&[b'x'; 100_000])?;
        w.flush()?;
        loop {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn sigkill_mid_write_leaves_the_target_whole() {
    if let Ok(target) = std::env::var("SHAP_IO_SLOW_WRITER") {
        slow_writer(&target);
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.bin");
    std::fs::write(&target, b"old").unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_mid_write_leaves_the_target_whole",
            "--nocapture",
        ])
        .env("SHAP_IO_SLOW_WRITER", &target)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while temps_in(d.path())
        .iter()
        .all(|t| std::fs::metadata(t).unwrap().len() < 100_000)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the writer never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"old",
        "the target is untouched"
    );
    assert_eq!(
        temps_in(d.path()).len(),
        1,
        "the killed writer's temporary file is left"
    );
    write_bytes(&target, b"new").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert!(
        temps_in(d.path()).is_empty(),
        "the next write removes the stale file"
    );
}
