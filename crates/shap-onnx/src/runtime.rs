//! Finding and loading the onnxruntime library at run time (nothing is linked at build time).
//!
//! The library is taken from, in order: an explicit path (the CLI's `--onnxruntime`), the
//! `ORT_DYLIB_PATH` environment variable, or the `onnxruntime` Python package of the `python3`
//! on `PATH` (its `capi/` folder holds the library). It is loaded once per process; later calls
//! return the same library whatever path they name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::{Cause, OnnxError};

/// How the library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// Given explicitly (`--onnxruntime PATH`).
    Explicit,
    /// From the `ORT_DYLIB_PATH` environment variable.
    Environment,
    /// From the `onnxruntime` package of the `python3` on `PATH`.
    Python,
}

impl std::fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Explicit => "given with --onnxruntime",
            Self::Environment => "from ORT_DYLIB_PATH",
            Self::Python => "from the onnxruntime Python package of python3",
        })
    }
}

/// The loaded onnxruntime library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtLibrary {
    /// The library file.
    pub path: PathBuf,
    /// How it was found.
    pub source: LibrarySource,
    /// Its version, as it reports it (for example `1.32.0`).
    pub version: String,
}

/// Where the library would be loaded from: `explicit`, else `ORT_DYLIB_PATH`, else the
/// `onnxruntime` Python package of `python3`.
pub fn locate(explicit: Option<&Path>) -> Result<(PathBuf, LibrarySource), OnnxError> {
    if let Some(p) = explicit {
        return Ok((p.to_path_buf(), LibrarySource::Explicit));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(p), LibrarySource::Environment));
    }
    python_library()
        .map(|p| (p, LibrarySource::Python))
        .ok_or_else(|| OnnxError::Runtime {
            path: None,
            source: "not found: give --onnxruntime PATH or ORT_DYLIB_PATH, or `pip install \
                     onnxruntime` for the python3 on PATH"
                .into(),
        })
}

/// The library inside the `onnxruntime` package of the `python3` on `PATH`, if any.
fn python_library() -> Option<PathBuf> {
    const FIND: &str = "import importlib.util as u\n\
        s = u.find_spec('onnxruntime')\n\
        print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let out = Command::new("python3")
        .args(["-I", "-c", FIND])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let capi = Path::new(dir.trim()).join("capi");
    if dir.trim().is_empty() || !capi.is_dir() {
        return None;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_library_name)
        })
        .collect();
    found.sort();
    found.pop()
}

/// `libonnxruntime.so[.X.Y.Z]`, `libonnxruntime[.X.Y.Z].dylib` or `onnxruntime.dll`; not the
/// provider libraries beside it.
fn is_library_name(name: &str) -> bool {
    name.starts_with("libonnxruntime.so")
        || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))
        || name == "onnxruntime.dll"
}

/// What the first load gave, for every later call.
static LOADED: OnceLock<OrtLibrary> = OnceLock::new();
/// The process's onnxruntime environment, made by the first successful load.
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();

/// The environment sessions are built in, once the library is loaded.
pub(crate) fn environment() -> Option<&'static ort::environment::Environment> {
    ENVIRONMENT.get()
}
/// Serialises attempts, so that two threads never load two libraries.
static LOADING: Mutex<()> = Mutex::new(());

/// The library loaded by [`load`], if any.
pub fn loaded() -> Option<&'static OrtLibrary> {
    LOADED.get()
}

/// Load the library found by [`locate`] (once per process) and check that it is an
/// onnxruntime of API version 17 (onnxruntime 1.17) or later.
pub fn load(explicit: Option<&Path>) -> Result<&'static OrtLibrary, OnnxError> {
    if let Some(lib) = LOADED.get() {
        return Ok(lib);
    }
    let _guard = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lib) = LOADED.get() {
        return Ok(lib);
    }
    let (path, source) = locate(explicit)?;
    let fail = |source: Cause| OnnxError::Runtime {
        path: Some(path.clone()),
        source,
    };
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    let version = crate::guarded("onnxruntime", || -> Result<String, Cause> {
        let env = ort::init_from(&path)?
            .with_name("shap-toolkit")
            .with_telemetry(false)
            .build()?;
        // The environment lives as long as the process.
        let _ = ENVIRONMENT.set(env);
        ort_version(&path)
    })
    .map_err(&fail)?
    .map_err(fail)?;
    Ok(LOADED.get_or_init(|| OrtLibrary {
        path,
        source,
        version,
    }))
}

/// The version the library at `path` reports (`OrtGetApiBase()->GetVersionString()`). The
/// library is already loaded by then: this only looks the symbol up again.
fn ort_version(path: &Path) -> Result<String, Cause> {
    type GetBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the library was loaded (and its initialisers run) by `ort::init_from`; opening
    // it again only takes another reference to it.
    let lib = unsafe { libloading::Library::new(path) }?;
    // SAFETY: `OrtGetApiBase` has this signature in every onnxruntime release.
    let get: libloading::Symbol<'_, GetBase> = unsafe { lib.get(b"OrtGetApiBase") }?;
    // SAFETY: see above; the result is checked for null before use.
    let base = unsafe { get() };
    if base.is_null() {
        return Err("OrtGetApiBase returned nothing".into());
    }
    // SAFETY: `base` points to the library's static API base; the string it returns is
    // static and NUL-terminated.
    let s = unsafe { ((*base).GetVersionString)() };
    if s.is_null() {
        return Err("the library reports no version".into());
    }
    // SAFETY: see above.
    let v = unsafe { std::ffi::CStr::from_ptr(s) };
    Ok(v.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        for ok in [
            "libonnxruntime.so",
            "libonnxruntime.so.1.32.0",
            "libonnxruntime.1.32.0.dylib",
            "onnxruntime.dll",
        ] {
            assert!(is_library_name(ok), "{ok}");
        }
        for no in [
            "libonnxruntime_providers_shared.so",
            "libonnxruntime_providers_cuda.so",
            "onnxruntime_pybind11_state.so",
        ] {
            assert!(!is_library_name(no), "{no}");
        }
    }
}
