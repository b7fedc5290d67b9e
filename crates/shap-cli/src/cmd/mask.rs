//! `shap-cli mask`: apply a masker to one image, to see what it does.

use std::path::PathBuf;

use anyhow::bail;
use shap_io::OutputSpec;
use shap_mask::{MaskMode, MaskerSpec, npy};
use shap_run::mask::{MaskRun, MaskSource};

use super::common;
use super::terminal::Terminal;

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
    pub masker: MaskerSpec,
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
}

/// Run `shap-cli mask`.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    let mut inputs = vec![("--keep", args.keep.as_path())];
    inputs.extend(args.image.as_deref().map(|p| ("--image", p)));
    shap_io::check_outputs(
        &[
            (Some(args.out.as_path()), OutputSpec::binary("--out")),
            (args.png.as_deref(), OutputSpec::file("--png", &["png"])),
        ],
        &inputs,
    )?;
    let source = match (args.index, &args.image) {
        (Some(index), None) => MaskSource::TestImage {
            index,
            data_dir: args.data_dir.clone(),
        },
        (None, Some(p)) => MaskSource::File(p.clone()),
        _ => bail!("give exactly one of --indices and --image"),
    };
    let run = MaskRun {
        masker: args.masker,
        mode: if args.shap_compat {
            MaskMode::ShapCompat
        } else {
            MaskMode::Default
        },
        source,
        keep: args.keep.clone(),
    };
    let m = shap_run::mask::mask(&run, &Terminal::new(quiet))?;
    let (h, w) = (m.shape.height, m.shape.width);
    npy::write_f32(&args.out, &[h, w], &m.pixels)?;
    if let Some(png) = &args.png {
        shap_io::write_bytes(png, &shap_data::encode_grey_png(&m.pixels, h, w)?)?;
    }
    if quiet || common::any_stdout(&[Some(args.out.as_path())]) {
        return Ok(());
    }
    let png = args.png.as_ref().map(|p| format!(", {}", p.display()));
    common::print(|o| {
        writeln!(
            o,
            "{} ({}) on {} {h}x{w}: kept {}, hidden {} -> {}{}",
            run.masker,
            run.mode,
            m.what,
            m.kept,
            h * w - m.kept,
            args.out.display(),
            png.unwrap_or_default()
        )
    })
}
