//! Helpers shared by subcommands: atomic output files and PNG input.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use shap_mask::ImageShape;
use shap_model::Head;

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

/// Read a PNG as a grey `(H, W, 1)` image with values in [0, 1]. 8- and 16-bit grey are
/// read as they are; anything else is converted to luma, with a note on stderr.
pub fn read_grey_png(path: &Path) -> Result<(Vec<f32>, ImageShape)> {
    let img = image::open(path).with_context(|| format!("reading image {}", path.display()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let pixels: Vec<f32> = match img {
        image::DynamicImage::ImageLuma8(g) => g
            .into_raw()
            .into_iter()
            .map(|v| f32::from(v) / 255.0)
            .collect(),
        image::DynamicImage::ImageLuma16(g) => g
            .into_raw()
            .into_iter()
            .map(|v| f32::from(v) / 65535.0)
            .collect(),
        other => {
            eprintln!(
                "note: {} is not a grey PNG; converting it to grey (luma)",
                path.display()
            );
            other
                .to_luma8()
                .into_raw()
                .into_iter()
                .map(|v| f32::from(v) / 255.0)
                .collect()
        }
    };
    Ok((pixels, ImageShape::new(h, w, 1)))
}

/// The output head a command uses: `--output probabilities|logits` when given, else the
/// checkpoint's own head.
pub fn head(output: Option<&str>, checkpoint: Head) -> Head {
    match output {
        Some("logits") => Head::Logits,
        Some(_) => Head::Softmax,
        None => checkpoint,
    }
}
