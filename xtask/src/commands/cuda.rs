//! The CUDA build without a GPU, and the prepared GPU check for a machine with one.
//!
//! - `cargo xtask check-cuda`: installs NVIDIA's CUDA compiler and headers from PyPI (pinned
//!   wheels, into a Python venv under `target/cuda-toolchain`, once), then runs `cargo check`
//!   with the `cuda` feature of every workspace crate that has one, in its own target dir
//!   (`target/cuda-check`), so the main build is never invalidated. With
//!   `SHAP_TOOLKIT_CUDA_CACHE=DIR` both live in DIR instead, which outlives a clone. The build scripts compile
//!   Candle's CUDA kernels with `nvcc`, so this is a real compile of the GPU code; only the final
//!   link is left out: it needs `libcuda`, which comes with the GPU driver.
//! - `cargo xtask gpu-check`: on a machine with an NVIDIA GPU and its driver, adds the runtime
//!   libraries (cuBLAS, cuRAND, NVRTC) to that venv, builds the GPU tests (`#[ignore = "needs a
//!   CUDA GPU"]`, compiled with the `cuda` feature) and runs them under a time limit, printing
//!   one line per check.

use crate::sh;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The compiler and headers (`nvcc`, `cuda_runtime.h`, CCCL), all CUDA 13.4.
const TOOLCHAIN: [&str; 5] = [
    "nvidia-cuda-nvcc==13.4.92",
    "nvidia-cuda-crt==13.4.92",
    "nvidia-nvvm==13.4.92",
    "nvidia-cuda-runtime==13.4.92",
    "nvidia-cuda-cccl==13.3.5.0.6",
];

/// The libraries Candle links against besides the driver (gpu-check only: about 1 GB).
const LIBRARIES: [&str; 3] = [
    "nvidia-cublas==13.4.3.11",
    "nvidia-curand==10.4.4.72",
    "nvidia-cuda-nvrtc==13.4.92",
];

/// onnxruntime's GPU build with the CUDA and cuDNN wheels it loads (gpu-check's ONNX test).
const ORT_GPU: [&str; 1] = ["onnxruntime-gpu[cuda,cudnn]==1.32.0"];

/// cudarc 0.19.10 (Candle 0.11's) knows CUDA up to 13.4, the toolchain's version.
const CUDARC_CUDA_VERSION: &str = "13040";

/// Compute capability the kernels are built for when no GPU says otherwise (Hopper, sm_90).
const DEFAULT_COMPUTE_CAP: &str = "90";

/// How long the GPU tests may run, by default.
const GPU_TEST_LIMIT: Duration = Duration::from_secs(300);

/// Flags of `cargo xtask gpu-check`.
#[derive(clap::Args)]
pub struct GpuArgs {
    /// Time limit for running the GPU tests, in seconds (the build is not counted).
    #[arg(long, default_value_t = GPU_TEST_LIMIT.as_secs())]
    timeout: u64,
}

/// Where the toolchain and the check's target dir live: `$SHAP_TOOLKIT_CUDA_CACHE` when set
/// (a folder that outlives clones, so CI on the same machine compiles Candle's kernels once),
/// else the main target dir.
pub(crate) fn cache_root() -> PathBuf {
    match std::env::var_os(CACHE_VAR) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => sh::target_dir(),
    }
}

/// The variable naming a persistent cache folder for `check-cuda`.
const CACHE_VAR: &str = "SHAP_TOOLKIT_CUDA_CACHE";

/// The venv, in a folder named for the toolchain's pins: a new pin makes a new folder, so the
/// `NVCC` path changes and Candle's kernels are compiled again by the new compiler.
fn toolchain_dir() -> PathBuf {
    let pins = TOOLCHAIN.join(" ");
    // FNV-1a: a stable short name for the pin list.
    let hash = pins.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    cache_root()
        .join("cuda-toolchain")
        .join(format!("{:08x}", hash as u32))
}

/// The target dir of `cargo check --features cuda`.
fn check_target_dir() -> PathBuf {
    cache_root().join("cuda-check")
}

/// Install `packages` into the venv unless its stamp says they are there; returns the CUDA
/// root (`site-packages/nvidia/cu13`).
fn install(packages: &[&str]) -> Result<PathBuf> {
    let dir = toolchain_dir();
    let venv = dir.join("venv");
    let stamp = dir.join(format!("installed-{}.txt", stamp_name(packages)));
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        create_venv(&venv)?;
        eprintln!("==> pip install {}", packages.join(" "));
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages);
        sh::run(&mut pip).context("installing the CUDA wheels from PyPI")?;
        std::fs::write(&stamp, &wanted)?;
    }
    cuda_root(&venv)
}

/// A short name for a package list's stamp file (`nvidia-cuda-nvcc` for the toolchain).
fn stamp_name(packages: &[&str]) -> String {
    let first = packages.first().copied().unwrap_or("none");
    first.split("==").next().unwrap_or(first).to_string()
}

fn create_venv(venv: &Path) -> Result<()> {
    if venv.join("bin").join("pip").is_file() {
        return Ok(());
    }
    eprintln!("==> python3 -m venv {}", venv.display());
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    sh::run(Command::new(&python).arg("-m").arg("venv").arg(venv)).with_context(|| {
        format!(
            "creating a Python venv with {} (Debian: apt-get install python3 python3-venv)",
            Path::new(&python).display()
        )
    })
}

/// `venv/lib/python3.*/site-packages/nvidia/cu13`.
fn cuda_root(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let root = entry?
            .path()
            .join("site-packages")
            .join("nvidia")
            .join("cu13");
        if root.join("bin").join("nvcc").is_file() {
            return Ok(root);
        }
    }
    bail!("no nvidia/cu13/bin/nvcc under {}", lib.display())
}

/// The variables Candle's and cudarc's build scripts read, for a toolchain at `root`.
fn cuda_env(cmd: &mut Command, root: &Path, compute_cap: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![root.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(dirs) {
        cmd.env("PATH", joined);
    }
    for var in ["CUDA_ROOT", "CUDA_PATH", "CUDA_HOME"] {
        cmd.env(var, root);
    }
    // Candle's kernel builder (cudaforge) reruns when NVCC changes, not when PATH does.
    cmd.env("NVCC", root.join("bin").join("nvcc"));
    cmd.env("CUDA_COMPUTE_CAP", compute_cap)
        .env("CUDARC_CUDA_VERSION", CUDARC_CUDA_VERSION);
}

/// Workspace packages whose Cargo.toml declares a `cuda` feature.
fn cuda_packages() -> Result<Vec<String>> {
    let mut found = Vec::new();
    let crates = sh::repo_root().join("crates");
    for entry in std::fs::read_dir(&crates)? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Some(name) = cuda_package(&text) {
            found.push(name);
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("no crate under {} has a `cuda` feature", crates.display());
    }
    Ok(found)
}

/// The package name of a manifest that has a `cuda = [...]` line in its `[features]` table.
fn cuda_package(manifest: &str) -> Option<String> {
    let (mut table, mut name, mut has_cuda) = (String::new(), None, false);
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            match (table.as_str(), key.trim()) {
                ("[package]", "name") => name = Some(value.trim().trim_matches('"').to_string()),
                ("[features]", "cuda") => has_cuda = true,
                _ => {}
            }
        }
    }
    name.filter(|_| has_cuda)
}

/// `-p A -p B --features A/cuda,B/cuda`.
fn package_args(cmd: &mut Command, packages: &[String]) {
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    let features: Vec<String> = packages.iter().map(|p| format!("{p}/cuda")).collect();
    cmd.arg("--features").arg(features.join(","));
}

/// `cargo xtask check-cuda`.
pub fn check() -> Result<()> {
    let t0 = Instant::now();
    let root = install(&TOOLCHAIN)?;
    let packages = cuda_packages()?;
    eprintln!(
        "==> cargo check --features cuda of {} (CUDA toolchain {}, target {})",
        packages.join(", "),
        root.display(),
        check_target_dir().display()
    );
    let mut c = sh::cargo();
    c.args(["check", "--release", "--all-targets", "--target-dir"])
        .arg(check_target_dir());
    package_args(&mut c, &packages);
    cuda_env(&mut c, &root, DEFAULT_COMPUTE_CAP);
    sh::run(&mut c).context("the CUDA build does not compile")?;
    eprintln!(
        "check-cuda: {} compile with --features cuda ({:.0} s); not linked: that needs the GPU driver's libcuda (cargo xtask gpu-check on a GPU machine)",
        packages.join(", "),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The GPU tests: (package, test target). Each holds `#[ignore = "needs a CUDA GPU"]` tests.
const GPU_TESTS: [(&str, &str); 2] = [("shap-model", "gpu"), ("shap-cli", "device_cli")];

/// `cargo xtask gpu-check`.
pub fn gpu_check(args: GpuArgs) -> Result<()> {
    // The tests run in their own process group: Ctrl-C must reach them through us.
    sh::catch_interrupts();
    let cap = gpu_compute_cap()?;
    let root = install(&TOOLCHAIN)?;
    let libs = install(&LIBRARIES)?;
    let link = link_dir(&libs)?;
    let ort_gpu = ort_gpu_library();
    let limit = Duration::from_secs(args.timeout);
    let deadline = Instant::now() + limit;
    let mut tally = (0, 0);
    for (package, test) in GPU_TESTS {
        let mut build = gpu_cargo(&root, &cap, &link, package, test);
        build.arg("--no-run");
        sh::run(&mut build)
            .with_context(|| format!("building {package}'s {test} tests with --features cuda"))?;
        let mut run = gpu_cargo(&root, &cap, &link, package, test);
        run.args(["--", "--ignored", "--test-threads=1"]);
        match &ort_gpu {
            Ok((lib, paths)) => {
                run.env("SHAP_TOOLKIT_ORT_GPU", lib);
                let old = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
                let mut all = paths.clone();
                all.push(link.clone());
                all.extend(std::env::split_paths(&old));
                run.env("LD_LIBRARY_PATH", std::env::join_paths(all)?);
            }
            Err(e) => eprintln!("(onnxruntime-gpu not installed, its check will fail: {e:#})"),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let (passed, failed) = run_checks(&mut run, left, &format!("{package} {test}"))?;
        tally = (tally.0 + passed, tally.1 + failed);
    }
    println!("gpu-check: {} passed, {} failed", tally.0, tally.1);
    if tally.1 > 0 {
        bail!("{} GPU check(s) failed (their output is above)", tally.1);
    }
    Ok(())
}

/// onnxruntime-gpu's library (in a venv of its own) and the folders of the CUDA and cuDNN
/// libraries its CUDA provider loads.
fn ort_gpu_library() -> Result<(PathBuf, Vec<PathBuf>)> {
    let venv = toolchain_dir().join("ort-gpu");
    create_venv(&venv)?;
    if !venv.join("installed.txt").is_file() {
        eprintln!("==> pip install {}", ORT_GPU.join(" "));
        let mut pip = Command::new(venv.join("bin").join("pip"));
        pip.args(["install", "--quiet", "--disable-pip-version-check"])
            .args(ORT_GPU);
        sh::run(&mut pip).context("installing onnxruntime-gpu from PyPI")?;
        std::fs::write(venv.join("installed.txt"), ORT_GPU.join("\n"))?;
    }
    let mut lib = None;
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(venv.join("lib"))? {
        let site = entry?.path().join("site-packages");
        let capi = site.join("onnxruntime").join("capi");
        for f in std::fs::read_dir(&capi).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("libonnxruntime.so") {
                lib = Some(f.path());
            }
        }
        for pkg in std::fs::read_dir(site.join("nvidia"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let l = pkg.path().join("lib");
            if l.is_dir() {
                paths.push(l);
            }
        }
    }
    let lib = lib.context("no libonnxruntime.so in the onnxruntime-gpu venv")?;
    Ok((lib, paths))
}

/// The GPU's compute capability from `nvidia-smi` (`9.0` -> `90`), printing what it found.
fn gpu_compute_cap() -> Result<String> {
    if !sh::on_path("nvidia-smi") {
        bail!(
            "no NVIDIA GPU here: nvidia-smi is not on PATH. gpu-check needs a CUDA GPU and its driver; \
             without one, `cargo xtask check-cuda` compiles the CUDA build"
        );
    }
    let out = sh::output(Command::new("nvidia-smi").args([
        "--query-gpu=name,driver_version,compute_cap",
        "--format=csv,noheader",
    ]))
    .context("nvidia-smi could not list the GPUs (is the driver loaded?)")?;
    let first = out.lines().next().unwrap_or_default();
    let fields: Vec<&str> = first.split(',').map(str::trim).collect();
    let [name, driver, cap] = fields[..] else {
        bail!("nvidia-smi listed no GPU ({out:?})");
    };
    println!("gpu-check: GPU {name}, driver {driver}, compute capability {cap}");
    Ok(cap.replace('.', ""))
}

/// A folder of `libX.so` links for the linker: the wheels' versioned libraries and the
/// driver's `libcuda.so.1` (found with `ldconfig -p`).
fn link_dir(libs_root: &Path) -> Result<PathBuf> {
    let dir = toolchain_dir().join("link");
    std::fs::create_dir_all(&dir)?;
    let lib = libs_root.join("lib");
    for name in ["cudart", "cublas", "cublasLt", "curand", "nvrtc"] {
        let prefix = format!("lib{name}.so.");
        let found = std::fs::read_dir(&lib)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(&prefix))
            })
            .min_by_key(|p| p.as_os_str().len())
            .with_context(|| format!("no {prefix}* in {}", lib.display()))?;
        relink(&found, &dir.join(format!("lib{name}.so")))?;
    }
    let ldconfig = sh::output(Command::new("ldconfig").arg("-p")).unwrap_or_default();
    let driver = ldconfig
        .lines()
        .find(|l| l.trim_start().starts_with("libcuda.so.1 ") && l.contains("x86-64"))
        .and_then(|l| l.split("=>").nth(1))
        .map(|p| PathBuf::from(p.trim()))
        .context("the GPU driver's libcuda.so.1 is not known to ldconfig (is the NVIDIA driver installed?)")?;
    relink(&driver, &dir.join("libcuda.so"))?;
    Ok(dir)
}

fn relink(target: &Path, link: &Path) -> Result<()> {
    let _ = std::fs::remove_file(link);
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))?;
    Ok(())
}

/// `cargo test --release --features P/cuda -p P --test T` in `target/cuda-gpu`, with the
/// toolchain's variables and the libraries on the linker's and the loader's paths.
fn gpu_cargo(root: &Path, cap: &str, link: &Path, package: &str, test: &str) -> Command {
    let mut c = sh::cargo();
    c.args(["test", "--release", "--target-dir"])
        .arg(sh::target_dir().join("cuda-gpu"));
    package_args(&mut c, &[package.to_string()]);
    c.args(["--test", test]);
    cuda_env(&mut c, root, cap);
    c.env("LIBRARY_PATH", link).env("LD_LIBRARY_PATH", link);
    c
}

/// Run one GPU test binary under `limit`, printing a line per test as it finishes.
fn run_checks(cmd: &mut Command, limit: Duration, what: &str) -> Result<(usize, usize)> {
    let (mut passed, mut failed) = (0, 0);
    let mut last = Instant::now();
    let mut output = Vec::new();
    let ended = sh::run_lines(cmd, limit, |line| {
        output.push(line.to_string());
        if let Some((name, ok)) = test_outcome(line) {
            let verdict = if ok { "ok" } else { "FAILED" };
            println!(
                "gpu-check: {verdict:<6} {what}: {name} ({:.1} s)",
                last.elapsed().as_secs_f64()
            );
            last = Instant::now();
            if ok { passed += 1 } else { failed += 1 }
        }
    })?;
    match ended {
        sh::Ended::Exited(status) if status.success() => {}
        sh::Ended::Exited(status) => {
            eprintln!("{}", output.join("\n"));
            failed = failed.max(1);
            eprintln!("gpu-check: {what} exited with {status}");
        }
        sh::Ended::TimedOut => {
            failed += 1;
            println!(
                "gpu-check: FAILED {what}: killed after the {} s limit",
                limit.as_secs()
            );
        }
    }
    Ok((passed, failed))
}

/// `test NAME ... ok` / `... FAILED` (libtest's per-test line) as (name, passed).
fn test_outcome(line: &str) -> Option<(&str, bool)> {
    let rest = line.strip_prefix("test ")?;
    let (name, verdict) = rest.rsplit_once(" ... ")?;
    match verdict.trim() {
        "ok" => Some((name, true)),
        "FAILED" => Some((name, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crates_with_a_cuda_feature_are_found() -> Result<()> {
        assert_eq!(
            cuda_packages()?,
            ["shap-cli", "shap-model", "shap-onnx", "shap-run"]
        );
        let manifest = "[package]\nname = \"a\"\n[dependencies]\ncuda = \"1\"\n";
        assert_eq!(
            cuda_package(manifest),
            None,
            "a dependency is not a feature"
        );
        let manifest = "[package]\nname = \"a\"\n\n[features]\ncuda = [\"x/cuda\"]\n";
        assert_eq!(cuda_package(manifest).as_deref(), Some("a"));
        Ok(())
    }

    #[test]
    fn libtest_lines_give_one_check_each() {
        assert_eq!(
            test_outcome("test one_short_epoch_on_cuda_matches_the_cpu ... ok"),
            Some(("one_short_epoch_on_cuda_matches_the_cpu", true))
        );
        assert_eq!(test_outcome("test a ... FAILED"), Some(("a", false)));
        assert_eq!(test_outcome("test a ... ignored, needs a CUDA GPU"), None);
        assert_eq!(test_outcome("test result: ok. 1 passed"), None);
    }
}
