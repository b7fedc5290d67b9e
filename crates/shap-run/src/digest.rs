//! SHA-256 digests: of a file, of a model with its external data, of a selection of images.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{FileContext, Result};

/// A digest in hex, as `sha256sum` prints it.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file's bytes, in hex, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let reading = || format!("reading {}", path.display());
    let mut f = std::fs::File::open(path).file_context(reading)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).file_context(reading)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 of `model` alone; with external data files `data`, the SHA-256 of the lines
/// `<sha256 of model>`, `<sha256 of each data file>`: what identifies a model's numbers.
pub fn sha256_files(model: &Path, data: &[PathBuf]) -> Result<String> {
    if data.is_empty() {
        return sha256_file(model);
    }
    let mut all = Sha256::new();
    for p in std::iter::once(model).chain(data.iter().map(|p| p.as_path())) {
        all.update(sha256_file(p)?.as_bytes());
        all.update(b"\n");
    }
    Ok(hex(&all.finalize()))
}

/// The selection digest from its sources and the hasher of its pixels: one hex string.
pub(crate) fn selection_hex(sources: &[String], pixels: Sha256) -> String {
    let mut all = Sha256::new();
    for s in sources {
        all.update(s.as_bytes());
        all.update(b"\n");
    }
    all.update(pixels.finalize());
    hex(&all.finalize())
}
