//! File input and output with the guarantees every command of the toolkit promises.
//!
//! - [`write_atomic`] / [`write_bytes`]: the one output writer. A regular file (or a missing
//!   path) is written to a short-named temporary file in the same directory and renamed over
//!   the target, so a reader never sees a partial file, even after a SIGKILL. Symlinks are
//!   followed (the file they point at is replaced, the link stays); character devices and
//!   FIFOs are written in place and never replaced; `-` is standard output.
//! - [`validate_output`] and [`check_distinct`]: checks run before any work, so a command
//!   never computes for minutes and then finds it cannot save, or overwrites its own input.
//! - [`read_bounded`]: the one input reader. A regular file's size is checked against the
//!   limit before anything is read; anything else (a device, a FIFO) is read up to the limit.
//! - [`npy`]: the strict `.npy` preamble and header parser (the header is the Python literal
//!   dict NumPy writes, parsed as such), its writer, and the one array codec (`NpyArray`,
//!   `encode`, `decode`).
//! - [`npz`]: `.npz` archives read and written one entry at a time (streaming).
//!
//! ```
//! use shap_io::{OutputSpec, read_bounded, validate_output, write_bytes};
//! let dir = std::env::temp_dir().join(format!("shap-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let out = dir.join("summary.json");
//! // Checked before any work: the folder exists and can be written; a folder name is refused.
//! validate_output(&out, OutputSpec::text("--json"))?;
//! assert!(validate_output(&dir.join("x.npz/"), OutputSpec::binary("--npz")).is_err());
//! // Written whole or not at all (a temporary file renamed over the target).
//! write_bytes(&out, b"{}")?;
//! assert_eq!(read_bounded(&out, 1024, "a summary")?, b"{}");
//! // More than the limit is refused before it is read.
//! assert!(read_bounded(&out, 1, "a summary").is_err());
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod array;
mod error;
mod header;
pub mod npy;
pub mod npz;
mod output;
mod read;
mod validate;

pub use error::IoError;
pub use output::{STDOUT, write_atomic, write_bytes};
pub use read::read_bounded;
pub use validate::{OutputSpec, check_distinct, check_outputs, validate_output};

/// Mebibytes, for limits in messages.
pub const MIB: u64 = 1 << 20;
