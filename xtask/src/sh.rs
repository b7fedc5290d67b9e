//! Small process helpers: locate the workspace, build and run `shap-cli`, time steps.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The workspace root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The main workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("target"),
    }
}

/// A `cargo` command run from the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(repo_root());
    c
}

/// Run `cmd` with inherited stdio; an error names the command and its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Run `cmd`, capture its stdout (stderr is inherited), fail on a non-zero exit.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("{shown} printed non-UTF-8 output"))
}

/// Build `shap-cli` in release mode and return the path of the binary.
///
/// It is built as `--workspace --bin shap-cli`, not `-p shap-cli`: Cargo chooses the features
/// of shared dependencies from the packages named, and the workspace's other members turn on
/// some (pyo3 asks for `syn/visit-mut`), so `-p shap-cli` would compile most of the dependency
/// graph a second time after `cargo test --workspace`. This way the test build's binary is
/// reused as it is.
pub fn build_cli(features: &[&str]) -> Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--release", "--workspace", "--bin", "shap-cli"]);
    if !features.is_empty() {
        let named: Vec<String> = features.iter().map(|f| format!("shap-cli/{f}")).collect();
        c.arg("--features").arg(named.join(","));
    }
    run(&mut c).context("building shap-cli")?;
    let exe = target_dir()
        .join("release")
        .join(format!("shap-cli{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!("built shap-cli but found no binary at {}", exe.display());
    }
    Ok(exe)
}

/// Wall-clock times of named steps, printed as a table at the end of a run.
#[derive(Default)]
pub struct Steps {
    /// (step name, duration, note) in the order they ran.
    pub rows: Vec<(String, Duration, String)>,
    total: usize,
}

impl Steps {
    /// A recorder for `total` numbered steps.
    pub fn new(total: usize) -> Self {
        Self {
            rows: Vec::new(),
            total,
        }
    }

    /// Run one step between two step lines: `[3/8] evaluating the model ...` when it starts
    /// (what `shap-cli` prints comes below it) and `[3/8] evaluating the model: 0.8 s (note)`
    /// when it ends.
    pub fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
        let tag = format!("[{}/{}] {name}", self.rows.len() + 1, self.total);
        eprintln!("{tag} ...");
        let t0 = Instant::now();
        let (value, note) = f().with_context(|| format!("{tag} failed"))?;
        let dt = t0.elapsed();
        let note_part = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        eprintln!("{tag}: {:.1} s{note_part}", dt.as_secs_f64());
        self.rows.push((name.to_string(), dt, note));
        Ok(value)
    }

    /// The step-time table as aligned text.
    pub fn table(&self) -> String {
        let w = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut s = format!("{:<w$}  {:>9}  note\n", "step", "time (s)");
        let mut total = 0.0;
        for (name, dt, note) in &self.rows {
            total += dt.as_secs_f64();
            s += &format!("{name:<w$}  {:>9.1}  {note}\n", dt.as_secs_f64());
        }
        s += &format!("{:<w$}  {total:>9.1}\n", "total");
        s
    }
}

/// Is the current process running as root (Unix)? Reads `id -u`; false when unknown.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

/// Does `program` exist on PATH?
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// How a command run under a time limit ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited by itself.
    Exited(ExitStatus),
    /// It ran past its limit and its process group was killed.
    TimedOut,
}

/// Run `cmd` in its own process group with stdin closed, handing each line of its stdout to
/// `on_line` as it comes (stderr is inherited). Past `limit`, or on Ctrl-C ([`interrupted`]),
/// the whole group is killed: a timeout returns [`Ended::TimedOut`], Ctrl-C an error.
pub fn run_lines(
    cmd: &mut Command,
    limit: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Ended> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {shown}"))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    loop {
        if interrupted() {
            kill_group(&mut child);
            bail!("interrupted while running {shown}");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => on_line(&line),
            Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                kill_group(&mut child);
                return Ok(Ended::TimedOut);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    wait_until(&mut child, deadline)
}

/// Wait for `child` until `deadline`, then kill its group.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Ended> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ended::Exited(status));
        }
        if interrupted() {
            kill_group(child);
            bail!("interrupted");
        }
        if Instant::now() >= deadline {
            kill_group(child);
            return Ok(Ended::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kill `child` and, on Unix, the process group it leads (started with `process_group(0)`).
pub fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Set by the SIGINT/SIGTERM handler that [`catch_interrupts`] installs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Has Ctrl-C (SIGINT) or SIGTERM arrived since [`catch_interrupts`]? Loops that wait poll
/// this and return an error, so the guards on their stack clean up (kill what they started).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// From now on, SIGINT and SIGTERM set a flag ([`interrupted`]) instead of ending xtask at
/// once, so that whatever it started is stopped by its owner's `Drop` on the way out.
#[cfg(unix)]
pub fn catch_interrupts() {
    extern "C" fn on_signal(_signal: i32) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    unsafe extern "C" {
        /// libc's `signal(2)`; std links libc on every Unix.
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and `signal`
    // is called with valid signal numbers and a function of the type it expects.
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

/// Nothing to install off Unix: Ctrl-C ends xtask as usual.
#[cfg(not(unix))]
pub fn catch_interrupts() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process is gone when /proc has no entry for it or only a zombie's.
    fn gone(pid: &str) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
    }

    #[test]
    fn a_command_past_its_limit_is_killed_with_its_whole_group() -> Result<()> {
        let mut lines = Vec::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 60 & echo $!; sleep 60"]);
        let ended = run_lines(&mut cmd, Duration::from_secs(1), |l| {
            lines.push(l.to_string())
        })?;
        assert!(matches!(ended, Ended::TimedOut), "{ended:?}");
        let background = lines.first().context("the background pid")?;
        let t0 = Instant::now();
        while !gone(background) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            gone(background),
            "the group's other process {background} still runs"
        );
        let mut quick = Command::new("sh");
        quick.args(["-c", "echo a; echo b; exit 3"]);
        let mut got = Vec::new();
        let ended = run_lines(&mut quick, Duration::from_secs(60), |l| {
            got.push(l.to_string())
        })?;
        assert!(
            matches!(ended, Ended::Exited(s) if s.code() == Some(3)),
            "{ended:?}"
        );
        assert_eq!(got, ["a", "b"]);
        Ok(())
    }
}
