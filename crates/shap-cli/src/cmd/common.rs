//! Helpers shared by subcommands: atomic output files and PNG input.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A temporary path beside `path` (same directory, so a rename is atomic).
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Let `write` produce the file at a temporary path, then rename it over `path`: a failed
/// write never leaves a partial output.
pub fn atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_beside(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("moving the finished file into place at {}", path.display())
    })
}

/// Write `text` to `path` atomically.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    atomic(path, |tmp| {
        std::fs::write(tmp, text).with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Read a greyscale (or colour, converted to luma) PNG of exactly `height` x `width` pixels as
/// f32 values in [0, 1], row-major.
pub fn read_grey_png(path: &Path, height: usize, width: usize) -> Result<Vec<f32>> {
    let img = image::open(path)
        .with_context(|| format!("reading image {}", path.display()))?
        .to_luma8();
    let (w, h) = img.dimensions();
    if (h as usize, w as usize) != (height, width) {
        bail!(
            "{} is {w}x{h} pixels; the model takes {width}x{height} greyscale images",
            path.display()
        );
    }
    Ok(img
        .into_raw()
        .into_iter()
        .map(|v| f32::from(v) / 255.0)
        .collect())
}
