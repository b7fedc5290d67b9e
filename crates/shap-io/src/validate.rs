//! Checks on outputs made before any work starts.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::error::{IoError, os};
use crate::output::{STDOUT, Target, classify, create_temp, parent_dir, resolve};

/// What an output accepts.
#[derive(Debug, Clone, Copy)]
pub struct OutputSpec<'a> {
    /// The flag that names the output (`--json`), for messages.
    pub flag: &'a str,
    /// Supported extensions, lower case without the dot; empty accepts any name.
    pub extensions: &'a [&'a str],
    /// Whether `-` (standard output) is accepted.
    pub stdout: bool,
    /// Whether the data is binary: `-` is then refused when standard output is a terminal.
    pub binary: bool,
}

impl<'a> OutputSpec<'a> {
    /// A text output (JSON): any name, `-` accepted.
    pub fn text(flag: &'a str) -> Self {
        Self {
            flag,
            extensions: &[],
            stdout: true,
            binary: false,
        }
    }

    /// A binary output (npz, npy): any name, `-` accepted unless stdout is a terminal.
    pub fn binary(flag: &'a str) -> Self {
        Self {
            binary: true,
            ..Self::text(flag)
        }
    }

    /// A file whose format follows its extension (figures): one of `extensions`, no `-`.
    pub fn file(flag: &'a str, extensions: &'a [&'a str]) -> Self {
        Self {
            flag,
            extensions,
            stdout: false,
            binary: true,
        }
    }
}

/// Check, before any work, that `path` can be written as `spec` says: `-` where allowed; a
/// supported extension; not a directory, block device or socket; an existing folder in
/// which a file can be created (tested by creating and removing a temporary file).
pub fn validate_output(path: &Path, spec: OutputSpec<'_>) -> Result<(), IoError> {
    if path == Path::new(STDOUT) {
        return validate_stdout(spec);
    }
    // `out/x.npz/` parses as the file `x.npz`, but every writer would make a folder of it.
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(IoError::FolderName {
            flag: spec.flag.to_string(),
            path: path.to_path_buf(),
        });
    }
    check_extension(path, spec)?;
    let target = resolve(path)?;
    if let Target::InPlace = classify(path, &target)? {
        return Ok(());
    }
    let dir = parent_dir(&target);
    if !dir.is_dir() {
        return Err(IoError::NoFolder {
            flag: spec.flag.to_string(),
            path: path.to_path_buf(),
            dir,
        });
    }
    let (tmp, _file) = create_temp(&dir).map_err(|source| IoError::FolderNotWritable {
        flag: spec.flag.to_string(),
        path: path.to_path_buf(),
        dir: dir.clone(),
        source,
    })?;
    fs::remove_file(&tmp).map_err(os("removing the test file", &tmp))
}

fn validate_stdout(spec: OutputSpec<'_>) -> Result<(), IoError> {
    let reason = if !spec.stdout {
        "standard output is not supported for this output; give a file name"
    } else if spec.binary && std::io::stdout().is_terminal() {
        "refusing to write binary data to a terminal; redirect standard output or give a file name"
    } else {
        return Ok(());
    };
    Err(IoError::Stdout {
        flag: spec.flag.to_string(),
        reason,
    })
}

fn check_extension(path: &Path, spec: OutputSpec<'_>) -> Result<(), IoError> {
    if spec.extensions.is_empty() {
        return Ok(());
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.is_some_and(|e| spec.extensions.contains(&e.as_str())) {
        return Ok(());
    }
    let allowed: Vec<String> = spec.extensions.iter().map(|e| format!(".{e}")).collect();
    Err(IoError::Extension {
        flag: spec.flag.to_string(),
        path: path.to_path_buf(),
        allowed: allowed.join(" or "),
    })
}

/// What makes two paths the same file.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    /// An existing file: device and inode.
    #[cfg(unix)]
    Inode(u64, u64),
    /// An existing file where inodes are unknown, or a missing one: its canonical path.
    Path(PathBuf),
    /// Standard output (`-`): one output at most can use it.
    Stdout,
}

/// The identity of `path`, or `None` where sharing is harmless or unknowable: a character
/// device or FIFO, an input that does not exist (reading it will fail anyway).
fn identity(path: &Path, output: bool) -> Option<Identity> {
    if path == Path::new(STDOUT) {
        return output.then_some(Identity::Stdout);
    }
    let target = resolve(path).ok()?;
    match fs::metadata(&target) {
        Ok(m) if !m.is_file() && !m.is_dir() => None,
        #[cfg(unix)]
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            Some(Identity::Inode(m.dev(), m.ino()))
        }
        #[cfg(not(unix))]
        Ok(_) => fs::canonicalize(&target).ok().map(Identity::Path),
        Err(_) if output => {
            let dir = fs::canonicalize(parent_dir(&target)).ok()?;
            Some(Identity::Path(dir.join(target.file_name()?)))
        }
        Err(_) => None,
    }
}

/// Validate every given output ([`validate_output`]) and check that no two outputs, and no
/// output and input, are the same file ([`check_distinct`]): one call per command, before any
/// work. An entry with no path (an output not asked for) is skipped.
pub fn check_outputs(
    outputs: &[(Option<&Path>, OutputSpec<'_>)],
    inputs: &[(&str, &Path)],
) -> Result<(), IoError> {
    for (path, spec) in outputs {
        if let Some(p) = path {
            validate_output(p, *spec)?;
        }
    }
    let given: Vec<(&str, &Path)> = outputs
        .iter()
        .filter_map(|(p, spec)| p.map(|p| (spec.flag, p)))
        .collect();
    check_distinct(&given, inputs)
}

/// Refuse, before any work, two outputs that are the same file (or both `-`), or an output
/// that is one of the inputs (symlinks and hard links included). Each entry is `(flag, path)`.
pub fn check_distinct(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), IoError> {
    let outs: Vec<_> = outputs
        .iter()
        .map(|(f, p)| (*f, *p, identity(p, true)))
        .collect();
    let ins: Vec<_> = inputs
        .iter()
        .map(|(f, p)| (*f, *p, identity(p, false)))
        .collect();
    for (i, (flag, path, id)) in outs.iter().enumerate() {
        let Some(id) = id else { continue };
        let mut earlier = ins.iter().chain(&outs[..i]);
        if let Some((other, _, _)) = earlier.find(|(_, _, o)| o.as_ref() == Some(id)) {
            return Err(IoError::SameFile {
                first: (*other).to_string(),
                second: (*flag).to_string(),
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}
