//! The one output writer: temporary file and rename for regular files, in place for
//! character devices and FIFOs, standard output for `-`.

use std::fs::{self, File, Metadata, Permissions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoError, os};

/// The path that means standard output.
pub const STDOUT: &str = "-";

/// Temporary files are [`TempName`]s: `.shap-<host>-<pid>-<token>-<n>.tmp`.
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
///   as the private `TempName` says (short, so any valid target name works), flushed to disk and
///   renamed over the target: readers see the old file or the whole new one, never a part.
///   A replaced file keeps its permissions. Temporary files this program left there (a
///   SIGKILL mid-write) are removed first when no running writer can own them;
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
    let me = TempName::mine();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(TempName { n, ..me }.to_string());
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

/// The name of a temporary file: `.shap-<host>-<pid>-<token>-<n>.tmp` (at most 67 bytes,
/// whatever the target's name), where `host` tags the machine, boot and PID namespace of the
/// writer, `token` is random per process and `n` counts the process's temporary files.
/// `docs/outputs-and-explanations.md#temporary-files` says when one is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TempName {
    host: u32,
    pid: u32,
    token: u64,
    n: u64,
}

/// A temporary file this old (by its modification time) is stale whoever wrote it: a write
/// takes seconds to minutes and touches the file as it goes.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl std::fmt::Display for TempName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            host,
            pid,
            token,
            n,
        } = self;
        write!(
            f,
            "{TEMP_PREFIX}{host:08x}-{pid}-{token:016x}-{n}{TEMP_SUFFIX}"
        )
    }
}

impl TempName {
    /// This process's fields (`n` = 0); the same for the whole run.
    fn mine() -> Self {
        static MINE: std::sync::OnceLock<TempName> = std::sync::OnceLock::new();
        *MINE.get_or_init(|| Self {
            host: host_tag(),
            pid: std::process::id(),
            token: random_token(),
            n: 0,
        })
    }

    /// The fields of `name` when it is exactly a name [`create_temp`] makes, else `None`.
    fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
        let mut parts = rest.split('-');
        let (host, pid, token, n) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let decimal = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'))
        };
        let ok =
            parts.next().is_none() && hex(host, 8) && hex(token, 16) && decimal(pid) && decimal(n);
        let parsed = Self {
            host: u32::from_str_radix(host, 16).ok()?,
            pid: pid.parse().ok()?,
            token: u64::from_str_radix(token, 16).ok()?,
            n: n.parse().ok()?,
        };
        (ok && parsed.to_string() == name).then_some(parsed)
    }

    /// Whether a file of this name, last modified `age` ago, is a leftover that `me` may
    /// remove: never one of `me`'s own; one written on this machine, boot and PID namespace
    /// when its process is gone; any when it is older than [`STALE_AFTER`].
    fn is_stale(
        &self,
        me: &Self,
        age: std::time::Duration,
        alive: impl Fn(u32) -> Option<bool>,
    ) -> bool {
        if self.host == me.host && self.pid == me.pid && self.token == me.token {
            return false;
        }
        let dead_here = self.host == me.host && alive(self.pid) == Some(false);
        dead_here || age > STALE_AFTER
    }
}

/// A tag of this machine, boot and PID namespace: the same for every process whose pids
/// `/proc` shows, different (but for a 1 in 2^32 chance) elsewhere. Where none of the three
/// can be read, every such machine has the same tag; `alive` then cannot tell either.
fn host_tag() -> u32 {
    use std::hash::{Hash, Hasher};
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let pid_ns = fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    // FNV-1a over what `Hash` feeds it: unlike `DefaultHasher`, no random keys, so processes
    // of one build agree. (Another Rust version might feed `Hash` differently; its files then
    // count as another machine's and wait for the 24-hour rule.)
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    (boot.trim(), host.trim(), pid_ns).hash(&mut h);
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}

/// The FNV-1a hash, for [`host_tag`].
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// 64 random bits from the operating system (through the standard library's hash keys),
/// mixed with the time and pid.
fn random_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.finish()
}

/// Whether process `pid` is running; `None` when this system cannot tell: no `/proc`, or a
/// `/proc` of another PID namespace than this process's (`unshare --pid` without a new
/// `/proc`), where our pids mean something else.
fn alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    let ours = fs::read_link(proc.join("self"))
        .ok()
        .is_some_and(|p| p.as_os_str() == std::process::id().to_string().as_str());
    ours.then(|| proc.join(pid.to_string()).exists())
}

/// Remove the temporary files in `dir` that this program made and that no running writer
/// can be using ([`TempName::is_stale`]). Only regular files owned by this user are
/// considered. Best effort: what cannot be listed or removed is left alone.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = TempName::mine();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(temp) = name.to_str().and_then(TempName::parse) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if meta.is_file() && owned_by_me(&meta) && temp.is_stale(&me, age, alive) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether this process's user owns the file: the owner of `/proc/self` is the process's
/// effective user. Where that cannot be read, no file counts as ours.
#[cfg(unix)]
fn owned_by_me(meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|me| me.uid() == meta.uid())
}

/// Whether this process's user owns the file (never known here, so never).
#[cfg(not(unix))]
fn owned_by_me(_: &Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn name(host: u32, pid: u32, token: u64, n: u64) -> TempName {
        TempName {
            host,
            pid,
            token,
            n,
        }
    }

    #[test]
    fn names_are_short_and_only_ours_parse() {
        let longest = name(u32::MAX, u32::MAX, u64::MAX, u64::MAX).to_string();
        assert!(longest.len() <= 67, "{longest}");
        let ours = name(0xab, 12, 0x1f, 3);
        assert_eq!(ours.to_string(), ".shap-000000ab-12-000000000000001f-3.tmp");
        assert_eq!(TempName::parse(&ours.to_string()), Some(ours));
        // The old pattern, a user's file of that pattern, and near misses are not ours.
        for other in [
            ".shap-999999-0.tmp",
            ".shap-123-4.tmp",
            ".shap-000000ab-12-000000000000001f-3.tmp.bak",
            ".shap-000000AB-12-000000000000001f-3.tmp",
            ".shap-000000ab-012-000000000000001f-3.tmp",
            ".shap-000000ab-12-00000000000001f-3.tmp",
            ".shap-000000ab-12-000000000000001f-3-4.tmp",
            ".shap-000000ab--000000000000001f-3.tmp",
            "shap-000000ab-12-000000000000001f-3.tmp",
        ] {
            assert_eq!(TempName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn only_leftovers_are_stale() {
        let me = name(7, 100, 1, 0);
        let young = Duration::from_secs(60);
        let old = STALE_AFTER + Duration::from_secs(1);
        let dead = |_| Some(false);
        let running = |_| Some(true);
        // Our own files, at any age.
        assert!(!name(7, 100, 1, 5).is_stale(&me, old, dead));
        // Same namespace: stale when the writer is gone, kept while it runs.
        assert!(name(7, 200, 9, 0).is_stale(&me, young, dead));
        assert!(!name(7, 200, 9, 0).is_stale(&me, young, running));
        assert!(!name(7, 200, 9, 0).is_stale(&me, young, |_| None));
        // Another namespace, node or boot: its pid means nothing here; only age counts.
        assert!(!name(8, 200, 9, 0).is_stale(&me, young, dead));
        assert!(name(8, 200, 9, 0).is_stale(&me, old, running));
        // A reused pid of ours with another token: a dead earlier process.
        assert!(!name(7, 100, 2, 0).is_stale(&me, young, running));
        assert!(name(7, 100, 2, 0).is_stale(&me, young, dead));
    }

    proptest! {
        #[test]
        fn every_name_round_trips(host: u32, pid: u32, token: u64, n: u64) {
            let t = name(host, pid, token, n);
            prop_assert_eq!(TempName::parse(&t.to_string()), Some(t));
            prop_assert!(t.to_string().len() <= 67);
        }

        #[test]
        fn no_other_name_parses(s in "\\.shap-[0-9a-fA-F-]{0,40}\\.tmp") {
            if let Some(t) = TempName::parse(&s) {
                prop_assert_eq!(t.to_string(), s);
            }
        }
    }
}
