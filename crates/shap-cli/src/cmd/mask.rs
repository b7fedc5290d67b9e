//! `shap-cli mask`: apply a masker to one image, to see what it does.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use shap_io::OutputSpec;
use shap_io::npy::NpyData;
use shap_mask::npy;
use shap_mask::{ImageShape, MaskMode, Masker, MaskerSpec};

use super::common;

/// Flags of `shap-cli mask`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["index", "image"])))]
#[command(
    after_help = "Examples:\n  shap-cli mask --masker inpaint_telea --indices 0 --keep keep.npy --out masked.npy --png masked.png\n  shap-cli mask --masker \"blur(28,28)\" --image shirt.png --keep keep.npy --out masked.npy"
)]
pub struct Args {
    /// Masker in shap's spelling: `blur(KW,KH)`, `inpaint_telea`, `inpaint_ns`, or a number
    /// (negative numbers too: `--masker -1`).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub masker: String,
    /// Index of a Fashion-MNIST test image (`--indices`, as `explain` spells it; `--index`
    /// is accepted too).
    #[arg(long = "indices", alias = "index", value_name = "I")]
    pub index: Option<usize>,
    /// A grey PNG image (scaled to [0,1]).
    #[arg(long, value_name = "FILE.png")]
    pub image: Option<PathBuf>,
    /// `.npy` (H,W) bool or uint8 array of the pixels to keep (non-zero = keep).
    #[arg(long, value_name = "MASK.npy")]
    pub keep: PathBuf,
    /// Reproduce shap 0.51 exactly (inpainting truncates the image to u8 and replaces every
    /// pixel, which blackens a [0,1] image).
    #[arg(long)]
    pub shap_compat: bool,
    /// Directory holding the Fashion-MNIST IDX files (for `--indices`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output `.npy`: the masked (H,W) f32 image.
    #[arg(short, long, value_name = "OUT.npy")]
    pub out: PathBuf,
    /// Also write the masked image as a grey PNG (values clamped to [0,1]).
    #[arg(long, value_name = "OUT.png")]
    pub png: Option<PathBuf>,
    /// Print nothing but errors and warnings.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Load the keep mask and check it against the image shape.
fn load_keep(path: &Path, shape: ImageShape) -> anyhow::Result<Vec<bool>> {
    let a = npy::read(path)?;
    let dims_ok = match a.shape.as_slice() {
        [h, w] => (*h, *w) == (shape.height, shape.width),
        [h, w, 1] => (*h, *w) == (shape.height, shape.width),
        _ => false,
    };
    if !dims_ok {
        bail!(
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
        _ => bail!(
            "{}: mask dtype {} is not bool or uint8",
            path.display(),
            a.descr()
        ),
    }
}

fn encode_png(img: &[f32], shape: ImageShape) -> anyhow::Result<Vec<u8>> {
    let bytes: Vec<u8> = img
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let (w, h) = (u32::try_from(shape.width)?, u32::try_from(shape.height)?);
    let buf = image::GrayImage::from_raw(w, h, bytes).context("building the PNG buffer")?;
    let mut out = Cursor::new(Vec::new());
    buf.write_to(&mut out, image::ImageFormat::Png)
        .context("encoding PNG")?;
    Ok(out.into_inner())
}

/// Run `shap-cli mask`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let spec: MaskerSpec = args.masker.parse()?;
    let mut inputs = vec![("--keep", args.keep.as_path())];
    inputs.extend(args.image.as_deref().map(|p| ("--image", p)));
    common::check_outputs(
        &[
            (Some(args.out.as_path()), OutputSpec::binary("--out")),
            (args.png.as_deref(), OutputSpec::file("--png", &["png"])),
        ],
        &inputs,
    )?;
    let mode = if args.shap_compat {
        MaskMode::ShapCompat
    } else {
        MaskMode::Default
    };
    let (image, shape, what) = match (args.index, &args.image) {
        (Some(i), None) => {
            let data = shap_data::FashionMnist::load(args.data_dir.as_deref())
                .context("loading Fashion-MNIST")?;
            let img = data
                .test
                .images_f32(&[i])
                .with_context(|| format!("test image {i}"))?;
            (
                img,
                ImageShape::new(data.test.rows(), data.test.cols(), 1),
                format!("test image {i}"),
            )
        }
        (None, Some(p)) => {
            let (img, shape) = common::read_grey_png(p)?;
            (img, shape, p.display().to_string())
        }
        _ => bail!("give exactly one of --indices and --image"),
    };
    let keep = load_keep(&args.keep, shape)?;
    let prepared = Masker::new(spec, mode).prepare(&image, shape)?;
    if prepared.clamped_values() > 0 {
        warning!(
            "{} values lie outside the range inpainting expects and were clamped",
            prepared.clamped_values()
        );
    }
    let out = prepared.masked(&keep)?;
    npy::write_f32(&args.out, &[shape.height, shape.width], &out)?;
    if let Some(png) = &args.png {
        shap_io::write_bytes(png, &encode_png(&out, shape)?)?;
    }
    if args.quiet || common::any_stdout(&[Some(args.out.as_path())]) {
        return Ok(());
    }
    let kept = keep.iter().filter(|&&k| k).count();
    common::print(|o| {
        writeln!(
            o,
            "{spec} ({mode}) on {what} {}x{}: kept {kept}, hidden {} -> {}{}",
            shape.height,
            shape.width,
            keep.len() - kept,
            args.out.display(),
            args.png
                .as_ref()
                .map(|p| format!(", {}", p.display()))
                .unwrap_or_default()
        )
    })
}
