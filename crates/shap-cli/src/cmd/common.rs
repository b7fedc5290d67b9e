//! Helpers shared by subcommands: output checks, printing, PNG input.

pub use shap_run::printable;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use shap_io::OutputSpec;
use shap_mask::ImageShape;
use shap_model::Head;

/// The one `--seed` default of every command (`train`, `explain`, `faithfulness`), the seed
/// `cargo xtask reproduce` uses too.
pub const DEFAULT_SEED: u64 = 42;

/// Extensions of figure outputs (the format follows the extension).
pub const FIGURE: &[&str] = &["png", "svg"];

/// Validate every given output (folder exists and is writable, extension, `-`) and check
/// that no two outputs, and no output and input, are the same file: one call per command,
/// before any work. Entries with no path (flag not given) are skipped.
pub fn check_outputs(
    outputs: &[(Option<&Path>, OutputSpec<'_>)],
    inputs: &[(&str, &Path)],
) -> Result<()> {
    for (path, spec) in outputs {
        if let Some(p) = path {
            shap_io::validate_output(p, *spec)?;
        }
    }
    let given: Vec<(&str, &Path)> = outputs
        .iter()
        .filter_map(|(p, spec)| p.map(|p| (spec.flag, p)))
        .collect();
    shap_io::check_distinct(&given, inputs)?;
    Ok(())
}

/// Whether any output goes to standard output (`-`): the printed summary is then left out.
pub fn any_stdout(outputs: &[Option<&Path>]) -> bool {
    outputs
        .iter()
        .flatten()
        .any(|p| *p == Path::new(shap_io::STDOUT))
}

/// Print to standard output through `f`, flushing at the end; errors (a full disk, a closed
/// pipe) are returned, and `main` ends quietly on a closed pipe. Control characters other
/// than newline and tab (names and paths read from files) are printed as `?`
/// ([`Printable`]).
pub fn print(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut out = Printable(std::io::stdout().lock());
    f(&mut out)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// A writer of text that replaces control characters but newline and tab with `?`, so that
/// text from files cannot move the cursor, recolour or clear a terminal. Formatting hands it
/// whole characters; bytes that are not UTF-8 pass through.
pub struct Printable<W: Write>(pub W);

impl<W: Write> Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text)
                if text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t') =>
            {
                let clean: String = text
                    .chars()
                    .map(|c| {
                        if c.is_control() && c != '\n' && c != '\t' {
                            '?'
                        } else {
                            c
                        }
                    })
                    .collect();
                self.0.write_all(clean.as_bytes())?;
                Ok(buf.len())
            }
            _ => self.0.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Read a PNG or JPEG as a grey `(H, W, 1)` image with values in [0, 1], at its own size,
/// through the one image decoder (`shap_data::load_image_as_is`: its size limit, its checks
/// for truncated files); a colour image is converted to luma, with a note on stderr.
pub fn read_grey_png(path: &Path) -> Result<(Vec<f32>, ImageShape)> {
    let img = shap_data::load_image_as_is(path, 1)?;
    if img.converted {
        note!(
            "{} is not a grey image; converting it to grey (luma)",
            path.display()
        );
    }
    let (w, h) = img.original_size;
    Ok((img.pixels, ImageShape::new(h as usize, w as usize, 1)))
}

/// Which outputs a tutorial checkpoint gives (`--head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadArg {
    /// Softmax probabilities.
    Probabilities,
    /// Logits.
    Logits,
}

/// `--head` and its old spelling `--output` (hidden, kept for one release).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct HeadFlags {
    /// Tutorial checkpoints: explain or report probabilities (softmax) or logits (default:
    /// the checkpoint's own head).
    #[arg(long, value_enum, conflicts_with = "output")]
    pub head: Option<HeadArg>,
    /// Old name of --head.
    #[arg(long, value_enum, hide = true)]
    pub output: Option<HeadArg>,
}

impl HeadFlags {
    /// The head asked for, if any; `--output` works with a note that it is now `--head`.
    pub fn chosen(&self) -> Option<Head> {
        if self.output.is_some() {
            note!("--output is now called --head; --output will be removed");
        }
        self.head.or(self.output).map(|h| match h {
            HeadArg::Logits => Head::Logits,
            HeadArg::Probabilities => Head::Softmax,
        })
    }
}

/// `text` cut to at most `width` characters, ending in `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `n` and `word`, plural when `n` is not 1 (`1 image`, `2 images`).
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Start rayon's global pool with `threads` (`--threads`), else `RAYON_NUM_THREADS`, else
/// one thread per core: a count outside 1..=1024, or a pool the system cannot start, is an
/// error naming the count, not a crash.
pub fn start_threads(threads: Option<u16>) -> Result<usize> {
    let n = match threads {
        Some(n) => usize::from(n),
        None => match std::env::var("RAYON_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .with_context(|| {
                    format!("RAYON_NUM_THREADS={v:?}: give a thread count from 1 to 1024")
                })?,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .with_context(|| format!("cannot start {n} threads"))?;
    Ok(n)
}

/// A progress bar on standard error for `len` `what`s, when standard error is a terminal and
/// `quiet` is off; `None` otherwise (a pipe or a log file gets no bar).
pub fn progress_bar(len: u64, what: &str, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {what}  {{msg}}  ETA {{eta}}"
    ))
    .ok()?;
    Some(indicatif::ProgressBar::new(len).with_style(style))
}
