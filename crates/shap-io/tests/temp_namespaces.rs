//! The stale-temporary-file sweep across PID namespaces: a writer in another namespace (a
//! pod or node writing to a shared folder) keeps its temporary file while it runs, even when
//! its pid is free in ours. Needs `unshare --pid` (root, or user namespaces); skipped with a
//! note where it is not available.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set for the copy of this test binary that holds an output open.
const HOLD: &str = "SHAP_IO_TEST_HOLD";

/// Not a test of its own: when run with [`HOLD`] set to a path, write standard input to
/// that path through `write_atomic` (so its temporary file lives until stdin closes).
#[test]
fn holder() {
    let Some(path) = std::env::var_os(HOLD) else {
        return;
    };
    shap_io::write_atomic(Path::new(&path), |w| {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        w.write_all(&input)
    })
    .expect("writing the held output");
}

/// A pid with no process in this namespace, below `pid_max` (so a new namespace can be told
/// to hand it out next), counted down from the top where pids are rarely in use.
fn pid_free_here() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (1000..max - 1)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("listing")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

#[test]
fn a_live_writer_in_another_pid_namespace_keeps_its_temporary_file() {
    if !unshare_works() {
        eprintln!("skipped: `unshare --pid --fork --mount-proc` is not available here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let held = dir.path().join("held.npz");
    let pid = pid_free_here();
    // In the new namespace the holder gets `pid`, which no process has in ours: a sweep
    // that trusted the pid would see a dead writer.
    let script = format!(
        "echo {} > /proc/sys/kernel/ns_last_pid; \"$0\" --exact holder --nocapture --test-threads 1",
        pid - 1
    );
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .arg(std::env::current_exe().expect("test binary"))
        .env(HOLD, &held)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting the holder");
    let start = Instant::now();
    while temps(dir.path()).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let found = temps(dir.path());
    assert_eq!(found.len(), 1, "the holder's temporary file: {found:?}");
    let name = found[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains(&format!("-{pid}-")), "{name} has pid {pid}");

    // Another write in that folder sweeps it: the live writer's file stays.
    shap_io::write_bytes(&dir.path().join("other.npz"), b"other").expect("writing");
    assert!(found[0].exists(), "the sweep removed a live writer's file");

    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"held bytes").expect("feeding the holder");
    drop(stdin);
    assert!(child.wait().expect("waiting").success());
    assert_eq!(std::fs::read(&held).expect("reading"), b"held bytes");
    assert!(temps(dir.path()).is_empty());
}

#[test]
fn a_users_file_of_the_old_pattern_is_never_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = dir.path().join(".shap-999999-0.tmp");
    std::fs::write(&theirs, b"mine").expect("writing");
    shap_io::write_bytes(&dir.path().join("x.npz"), b"x").expect("writing");
    assert_eq!(std::fs::read(&theirs).expect("reading"), b"mine");
}
