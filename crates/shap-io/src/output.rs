//! The one output writer: temporary file and rename for regular files, in place for
//! character devices and FIFOs, standard output for `-`.

use std::fs::{self, File, Metadata, Permissions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoError, os};

/// The path that means standard output.
pub const STDOUT: &str = "-";

/// Temporary files are `.shap-<pid>-<n>.tmp`: at most 41 bytes, whatever the target's name.
const TEMP_PREFIX: &str = ".shap-";
const TEMP_SUFFIX: &str = ".tmp";

/// How many symlinks are followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// What is at an output path, and so how it is written.
pub(crate) enum Target {
    /// A regular file or nothing: temporary file, then rename.
    Replace(Option<Permissions>),
    /// A character device or a FIFO: written in place, never replaced.
    InPlace,
}

/// Write `bytes` to `path` with [`write_atomic`].
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Write an output file through `write`, safely:
/// - `-` writes to standard output;
/// - a regular file or a missing path gets a temporary file in the same directory, named
///   `.shap-<pid>-<n>.tmp` (short, so any valid target name works), flushed to disk and
///   renamed over the target: readers see the old file or the whole new one, never a part.
///   A replaced file keeps its permissions. Temporary files of this pattern left by dead
///   processes (a SIGKILL mid-write) are removed from that directory first;
/// - a symlink is followed, and the file it points at is written as above;
/// - a character device (`/dev/null`) or FIFO is opened and written in place, never replaced;
/// - anything else (a directory, a block device, a socket) is refused.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    if path == Path::new(STDOUT) {
        let mut out = io::stdout().lock();
        return write(&mut out)
            .and_then(|()| out.flush())
            .map_err(os("writing", path));
    }
    let target = resolve(path)?;
    match classify(path, &target)? {
        Target::InPlace => write_in_place(path, &target, write),
        Target::Replace(perms) => replace(path, &target, perms, write),
    }
}

/// Follow symlinks at `path` to the path that is really written.
pub(crate) fn resolve(path: &Path) -> Result<PathBuf, IoError> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p).map_err(os("reading the symlink", path))?;
                p = match p.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(IoError::Os {
        action: "following symlinks at",
        path: path.to_path_buf(),
        source: io::Error::other("too many levels of symbolic links"),
    })
}

/// How the (resolved) `target` of the output `path` is written.
pub(crate) fn classify(path: &Path, target: &Path) -> Result<Target, IoError> {
    match fs::metadata(target) {
        Ok(m) if m.is_file() => Ok(Target::Replace(Some(m.permissions()))),
        Ok(m) => match special_kind(&m) {
            None => Ok(Target::InPlace),
            Some(kind) => Err(IoError::NotWritableKind {
                path: path.to_path_buf(),
                kind,
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Target::Replace(None)),
        Err(e) => Err(os("inspecting", path)(e)),
    }
}

/// `None` for a character device or FIFO (written in place); else what the thing is.
#[cfg(unix)]
fn special_kind(m: &Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_char_device() || t.is_fifo() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("something that is not a regular file")
    }
}

/// `None` for a character device or FIFO (written in place); else what the thing is.
#[cfg(not(unix))]
fn special_kind(m: &Metadata) -> Option<&'static str> {
    if m.is_dir() {
        Some("a directory")
    } else {
        Some("something that is not a regular file")
    }
}

fn write_in_place(
    path: &Path,
    target: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(os("opening", path))?;
    let mut w = BufWriter::new(file);
    write(&mut w)
        .and_then(|()| w.flush())
        .map_err(os("writing", path))
}

/// The directory holding `target` (`.` for a bare file name).
pub(crate) fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn replace(
    path: &Path,
    target: &Path,
    perms: Option<Permissions>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    let dir = parent_dir(target);
    remove_stale_temps(&dir);
    let (tmp, file) = create_temp(&dir).map_err(os("creating a temporary file for", path))?;
    let written = (|| {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        if let Some(p) = perms {
            file.set_permissions(p)?;
        }
        file.sync_all()
    })();
    let result = written
        .map_err(os("writing", path))
        .and_then(|()| fs::rename(&tmp, target).map_err(os("replacing", path)));
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create a new temporary file in `dir` with a name no other writer uses.
pub(crate) fn create_temp(dir: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TEMP_PREFIX}{}-{n}{TEMP_SUFFIX}", std::process::id());
        let tmp = dir.join(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The writer's pid in a temporary file name of our pattern.
fn temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` is running; `None` when this system cannot tell.
fn alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self")
        .exists()
        .then(|| proc.join(pid.to_string()).exists())
}

/// Remove the temporary files of our pattern in `dir` whose writer is no longer running.
/// Best effort: what cannot be listed or removed is left alone.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_pid) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() && alive(pid) == Some(false) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_short() {
        assert_eq!(temp_pid(".shap-123-4.tmp"), Some(123));
        assert_eq!(temp_pid(".shap-123.tmp"), None);
        assert_eq!(temp_pid(".shap-x-1.tmp"), None);
        assert_eq!(temp_pid("shap-1-1.tmp"), None);
        let longest = format!("{TEMP_PREFIX}{}-{}{TEMP_SUFFIX}", u32::MAX, u64::MAX);
        assert!(longest.len() <= 41, "{longest}");
    }
}
