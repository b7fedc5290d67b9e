//! Small process helpers: locate the workspace, build and run `shap-cli`, time steps.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// Build `shap-cli` in release mode (the profile the tests use, so nothing is rebuilt) and
/// return the path of the binary.
pub fn build_cli(features: &[&str]) -> Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "shap-cli"]);
    if !features.is_empty() {
        c.arg("--features").arg(features.join(","));
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
