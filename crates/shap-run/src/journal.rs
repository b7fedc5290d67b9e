//! The progress of a run written to `OUT.npz` (`shap-cli explain --npz OUT.npz`): finished chunks of images, each an
//! explanation file written atomically into `OUT.npz.parts/`, beside `run.json`, which holds
//! what the run is (its settings, model hash, selection and chunk size). A rerun of the same
//! command reuses the chunks that are there and computes the others; a rerun with anything
//! different is refused, naming the setting (`docs/outputs-and-explanations.md#chunks-and-resuming`).

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shap_explain::Settings;

use crate::Reporter;
use crate::error::{Context, FileContext, Result, refuse};

/// The manifest's file name in the journal.
const MANIFEST: &str = "run.json";
/// The manifest's format tag.
const FORMAT: &str = "shap-cli explain journal 1";
/// The lock file's name in the journal.
const LOCK: &str = "lock";
/// What the journal folder's name adds to the output's.
const SUFFIX: &str = ".parts";
/// The longest file name common filesystems (ext4, xfs, btrfs, NFS) allow, in bytes.
const NAME_MAX: usize = 255;

/// What a run is: two runs with equal manifests compute the same chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `shap-cli explain journal 1`.
    pub format: String,
    /// The run's settings, as the `.npz` records them.
    pub settings: Settings,
    /// SHA-256 of the selected images' sources and pixels ([`crate::Selection::digest`]).
    pub selection_sha256: String,
    /// Images in the selection.
    pub images: usize,
    /// Images per chunk.
    pub chunk: usize,
}

impl Manifest {
    /// The manifest of a run.
    pub fn new(settings: Settings, digest: String, images: usize, chunk: usize) -> Self {
        Self {
            format: FORMAT.into(),
            settings,
            selection_sha256: digest,
            images,
            chunk,
        }
    }

    /// How `self` (found in the journal, of this version) differs from `run`, in words: `None`
    /// when equal.
    fn difference(&self, run: &Manifest) -> Option<String> {
        let value = |s: &Settings, k: &str| s.get(k).unwrap_or("(none)").to_string();
        let keys = self
            .settings
            .iter()
            .chain(&run.settings)
            .map(|s| s.name.as_str());
        for k in keys {
            let (theirs, ours) = (value(&self.settings, k), value(&run.settings, k));
            if theirs != ours {
                return Some(format!(
                    "it was made with {k} = {theirs}, this run has {k} = {ours}"
                ));
            }
        }
        if self.selection_sha256 != run.selection_sha256 || self.images != run.images {
            return Some(format!(
                "it explains other images ({} selected there, {} here, or other pixels)",
                self.images, run.images
            ));
        }
        if self.chunk != run.chunk {
            return Some(format!(
                "it was made with --chunk {}, this run has --chunk {}",
                self.chunk, run.chunk
            ));
        }
        None
    }
}

/// A run's journal directory, locked for the run.
pub struct Journal {
    dir: PathBuf,
    /// The exclusive lock on `dir/lock`, held until the journal is dropped.
    _lock: File,
}

impl Journal {
    /// The journal of an explanation written to `npz`: `npz` with `.parts` appended. A file
    /// name too long for that (over 249 bytes) gives `<its first 200 bytes>~<hash>.parts`
    /// instead, so every name a file can have has a journal.
    pub fn dir_for(npz: &Path) -> PathBuf {
        let Some(file) = npz.file_name() else {
            return npz.with_extension("parts");
        };
        let name = file.as_encoded_bytes();
        if name.len() + SUFFIX.len() <= NAME_MAX {
            let mut dir = npz.as_os_str().to_owned();
            dir.push(SUFFIX);
            return PathBuf::from(dir);
        }
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(name);
        let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        let lossy = String::from_utf8_lossy(name);
        let cut = (0..=200)
            .rev()
            .find(|&i| lossy.is_char_boundary(i))
            .unwrap_or(0);
        npz.with_file_name(format!("{}~{hex}{SUFFIX}", &lossy[..cut]))
    }

    /// Open the journal of `npz` for `run`, creating it when there is none, and lock it for
    /// the run. A journal another process holds, or one of another run, is an error that says
    /// what to do; nothing is written then.
    pub fn open(npz: &Path, run: &Manifest) -> Result<Self> {
        let dir = Self::dir_for(npz);
        let lock = lock(&dir)?;
        let manifest = dir.join(MANIFEST);
        let start_over = || format!("delete {} to start over", dir.display());
        if let Some(text) = read_manifest(&manifest, &dir)? {
            let found: Manifest = serde_json::from_slice(&text).with_context(|| {
                format!(
                    "{} is not a journal manifest; {}",
                    manifest.display(),
                    start_over()
                )
            })?;
            if found.format != FORMAT {
                refuse!(
                    "{} was written by another version ({}); {}",
                    dir.display(),
                    found.format,
                    start_over()
                );
            }
            if let Some(why) = found.difference(run) {
                refuse!(
                    "{} holds an unfinished explanation of another run: {why}; rerun the same \
                     command to resume it, or {}",
                    dir.display(),
                    start_over()
                );
            }
        }
        // Written on every run: a folder that cannot be written fails here, before any work.
        shap_io::write_bytes(&manifest, &serde_json::to_vec_pretty(run)?)
            .with_context(|| format!("cannot write in the journal {}", dir.display()))?;
        Ok(Self { dir, _lock: lock })
    }

    /// Make `path` (a chunk file) a regular file or nothing: anything else (a symlink, a FIFO)
    /// is removed, never what it points at, with a note, so the chunk is computed again.
    pub fn clear_irregular(&self, path: &Path, report: &dyn Reporter) -> Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.is_file() => {
                report.note(&format!(
                    "{} is not a regular file; removed it, computing that chunk again",
                    path.display()
                ));
                std::fs::remove_file(path).file_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The file of the chunk holding images `range` of the selection.
    pub fn chunk_path(&self, range: &std::ops::Range<usize>) -> PathBuf {
        self.dir
            .join(format!("chunk-{:08}-{:08}.npz", range.start, range.end))
    }

    /// Whether the journal holds any chunk file (saved by this run or an earlier one).
    pub fn has_chunks(&self) -> bool {
        std::fs::read_dir(&self.dir).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("chunk-"))
        })
    }

    /// Remove the journal of a run whose final file was written before the run could remove
    /// it: every chunk file in it, then as [`Journal::remove`].
    pub fn remove_finished(self, report: &dyn Reporter) -> Result<()> {
        let chunks: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .file_context(|| format!("reading {}", self.dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("chunk-"))
            })
            .collect();
        self.remove(&chunks, report)
    }

    /// Remove the journal once the final file is written: the chunk files, the manifest and
    /// the lock file, then the folder (left, with a note, when it holds anything else).
    pub fn remove(self, chunks: &[PathBuf], report: &dyn Reporter) -> Result<()> {
        for c in chunks {
            std::fs::remove_file(c).file_context(|| format!("removing {}", c.display()))?;
        }
        let manifest = self.dir.join(MANIFEST);
        for f in [manifest, self.dir.join(LOCK)] {
            std::fs::remove_file(&f).file_context(|| format!("removing {}", f.display()))?;
        }
        if std::fs::remove_dir(&self.dir).is_err() {
            report.note(&format!(
                "{} holds files this run did not write; left in place",
                self.dir.display()
            ));
        }
        Ok(())
    }
}

/// Create the journal folder `dir` when needed and take the exclusive lock on `dir/lock`,
/// which also shows the folder can be written. Held by another process: an error at once.
fn lock(dir: &Path) -> Result<File> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
        refuse!("{} exists and is not a folder: remove it", dir.display());
    }
    let path = dir.join(LOCK);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
        refuse!(
            "{} is not a regular file; delete {} to start over",
            path.display(),
            dir.display()
        );
    }
    let file = std::fs::create_dir_all(dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        })
        .file_context(|| format!("cannot write in the journal {}", dir.display()))?;
    match file.try_lock() {
        // A run that finished between our open and lock removed the file we locked.
        Ok(()) if is_at(&file, &path) => Ok(file),
        Ok(()) | Err(std::fs::TryLockError::WouldBlock) => refuse!(
            "another run is using {}; wait for it to finish",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).file_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The bytes of the manifest `path` of the journal `dir`, `None` when there is none; anything
/// but a regular file (a FIFO, a symlink) is refused.
fn read_manifest(path: &Path, dir: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Ok(m) if m.is_file() => Ok(Some(shap_io::read_bounded(
            path,
            shap_io::MIB,
            "a journal manifest",
        )?)),
        Ok(_) => refuse!(
            "{} is not a regular file; delete {} to start over",
            path.display(),
            dir.display()
        ),
        Err(e) => Err(e).file_context(|| format!("inspecting {}", path.display())),
    }
}

/// Whether the open `file` is still the one at `path` (not unlinked or replaced since).
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn is_at(_: &File, _: &Path) -> bool {
    true
}
