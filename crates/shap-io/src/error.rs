//! The error type of this crate.

use std::path::PathBuf;

/// Why reading or writing a file failed. Messages never repeat the OS error: it is kept as
/// the `source`, and printing the chain (`{:#}` in anyhow) shows it once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// An operating-system error while `action` (`"writing"`, `"reading"`, ...) `path`.
    #[error("{action} {path}")]
    Os {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An input is larger than the limit for its kind.
    #[error("{path} is larger than the limit of {} for {what}", bytes_text(*limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What the file holds (`"a checkpoint"`).
        what: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// An output is something that must not be written or replaced.
    #[error("{path}: cannot write output to {kind}")]
    NotWritableKind {
        /// The output.
        path: PathBuf,
        /// What is there (`"a directory"`, `"a block device"`).
        kind: &'static str,
    },
    /// The output's folder does not exist.
    #[error("{flag} {path}: the folder {dir} does not exist")]
    NoFolder {
        /// The flag naming the output.
        flag: String,
        /// The output.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
    },
    /// The output's folder cannot be written.
    #[error("{flag} {path}: cannot create files in {dir}")]
    FolderNotWritable {
        /// The flag naming the output.
        flag: String,
        /// The output.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
        /// The OS error from the test write.
        #[source]
        source: std::io::Error,
    },
    /// The output names a folder (it ends in `/`), not a file.
    #[error("{flag} {path}: names a folder (it ends in '/'); give a file name")]
    FolderName {
        /// The flag naming the output.
        flag: String,
        /// The output.
        path: PathBuf,
    },
    /// The output's extension is not one the format supports.
    #[error("{flag} {path}: unsupported file type; use {allowed}")]
    Extension {
        /// The flag naming the output.
        flag: String,
        /// The output.
        path: PathBuf,
        /// The supported extensions, in words.
        allowed: String,
    },
    /// `-` (standard output) where it is not allowed.
    #[error("{flag} -: {reason}")]
    Stdout {
        /// The flag naming the output.
        flag: String,
        /// Why not.
        reason: &'static str,
    },
    /// A file is not what its format requires (a malformed or corrupt `.npz`).
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two paths given for different roles are the same file.
    #[error("{first} and {second} are the same file ({path}); give different paths")]
    SameFile {
        /// The first flag.
        first: String,
        /// The second flag.
        second: String,
        /// The path as given for the second.
        path: PathBuf,
    },
}

/// An [`IoError::Os`] builder for `map_err`.
pub(crate) fn os(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError::Os {
        action,
        path,
        source,
    }
}

/// `limit` in words: whole MiB when it is a multiple of one, else bytes.
fn bytes_text(limit: u64) -> String {
    if limit >= crate::MIB && limit.is_multiple_of(crate::MIB) {
        format!("{} MiB", limit / crate::MIB)
    } else {
        format!("{limit} bytes")
    }
}
