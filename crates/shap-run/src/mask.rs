//! One image through a masker, to see what it does: the run behind `shap-cli mask`.

use std::path::{Path, PathBuf};

use shap_io::npy::NpyData;
use shap_mask::{ImageShape, MaskMode, Masker, MaskerSpec, npy};

use crate::error::{Context, Result, refuse};

/// Which image to mask.
#[derive(Debug, Clone)]
pub enum MaskSource {
    /// A Fashion-MNIST test image.
    TestImage {
        /// Its index in the test set.
        index: usize,
        /// The folder of the Fashion-MNIST files (else the usual search).
        data_dir: Option<PathBuf>,
    },
    /// A PNG or JPEG file, read as grey at its own size.
    File(PathBuf),
}

/// A masking run: the masker, its mode, the image, and the pixels to keep.
#[derive(Debug, Clone)]
pub struct MaskRun {
    /// The masker.
    pub masker: MaskerSpec,
    /// Default, or shap 0.51's exact behaviour.
    pub mode: MaskMode,
    /// The image.
    pub source: MaskSource,
    /// A `.npy` `(H, W)` or `(H, W, 1)` bool or uint8 array: non-zero keeps the pixel.
    pub keep: PathBuf,
}

/// A masked image.
#[derive(Debug, Clone)]
pub struct Masked {
    /// The masked pixels, `(H, W)`.
    pub pixels: Vec<f32>,
    /// The image's shape.
    pub shape: ImageShape,
    /// Pixels kept.
    pub kept: usize,
    /// What the image was (`test image 3`, or the file).
    pub what: String,
}

/// Mask one image; values outside the range inpainting expects are clamped with a warning.
pub fn mask(run: &MaskRun, reporter: &dyn crate::Reporter) -> Result<Masked> {
    let (image, shape, what) = match &run.source {
        MaskSource::TestImage { index, data_dir } => {
            let data = shap_data::FashionMnist::load(data_dir.as_deref())
                .context("loading Fashion-MNIST")?;
            let pixels = data
                .test
                .images_f32(&[*index])
                .with_context(|| format!("test image {index}"))?;
            let shape = ImageShape::new(data.test.rows(), data.test.cols(), 1);
            (pixels, shape, format!("test image {index}"))
        }
        MaskSource::File(path) => {
            let img = shap_data::load_image_as_is(path, 1)?;
            if img.converted {
                reporter.note(&format!(
                    "{} is not a grey image; converting it to grey (luma)",
                    path.display()
                ));
            }
            let (w, h) = img.original_size;
            let shape = ImageShape::new(h as usize, w as usize, 1);
            (img.pixels, shape, path.display().to_string())
        }
    };
    let keep = load_keep(&run.keep, shape)?;
    let prepared = Masker::new(run.masker, run.mode).prepare(&image, shape)?;
    if prepared.clamped_values() > 0 {
        reporter.warning(&format!(
            "{} values lie outside the range inpainting expects and were clamped",
            prepared.clamped_values()
        ));
    }
    Ok(Masked {
        pixels: prepared.masked(&keep)?,
        shape,
        kept: keep.iter().filter(|&&k| k).count(),
        what,
    })
}

/// The keep mask, checked against the image's shape.
fn load_keep(path: &Path, shape: ImageShape) -> Result<Vec<bool>> {
    let a = npy::read(path)?;
    let fits = match a.shape.as_slice() {
        [h, w] | [h, w, 1] => (*h, *w) == (shape.height, shape.width),
        _ => false,
    };
    if !fits {
        refuse!(
            "{}: mask shape {:?} does not match the image ({}, {})",
            path.display(),
            a.shape,
            shape.height,
            shape.width
        );
    }
    match a.data {
        NpyData::Bool(v) => Ok(v),
        NpyData::U8(v) => Ok(v.into_iter().map(|b| b != 0).collect()),
        _ => refuse!(
            "{}: mask dtype {} is not bool or uint8",
            path.display(),
            a.descr()
        ),
    }
}
