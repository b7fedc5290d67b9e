//! Helpers shared by subcommands: output checks, printing, PNG input.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
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
    pub fn chosen(&self) -> Option<HeadArg> {
        if self.output.is_some() {
            note!("--output is now called --head; --output will be removed");
        }
        self.head.or(self.output)
    }
}

/// The output head a command uses: the one asked for, else the checkpoint's own.
pub fn head(chosen: Option<HeadArg>, checkpoint: Head) -> Head {
    match chosen {
        Some(HeadArg::Logits) => Head::Logits,
        Some(HeadArg::Probabilities) => Head::Softmax,
        None => checkpoint,
    }
}

/// Most Permutation passes per image a run may ask for: orders are drawn one pass at a time,
/// so memory is no limit, but a budget beyond this would run for days.
pub const MAX_PASSES: usize = 100_000;

/// Refuse a Permutation `--max-evals` asking for more than [`MAX_PASSES`] passes over images
/// of `features` features, naming the largest value that fits.
pub fn check_permutation_budget(max_evals: Option<usize>, features: usize) -> Result<()> {
    let Some(me) = max_evals else { return Ok(()) };
    let per_pass = 2 * features + 1;
    if me / per_pass > MAX_PASSES {
        bail!(
            "--max-evals {me} asks for {} permutation passes per image; the limit is \
             {MAX_PASSES}: use --max-evals {} or less",
            me / per_pass,
            (MAX_PASSES + 1) * per_pass - 1
        );
    }
    Ok(())
}

/// The SHA-256 of a file's bytes, in hex (as `sha256sum` prints it), read in chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The SHA-256 of `model` alone; with external data files `data`, the SHA-256 of the lines
/// `<sha256 of model>`, `<sha256 of each data file>`: what identifies a model's numbers.
pub fn sha256_files(model: &Path, data: &[std::path::PathBuf]) -> Result<String> {
    if data.is_empty() {
        return sha256_file(model);
    }
    use sha2::{Digest, Sha256};
    let mut all = Sha256::new();
    for p in std::iter::once(model).chain(data.iter().map(|p| p.as_path())) {
        all.update(sha256_file(p)?.as_bytes());
        all.update(b"\n");
    }
    Ok(all.finalize().iter().map(|b| format!("{b:02x}")).collect())
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

/// `text` without control characters (each becomes `?`), so that names read from files or
/// paths cannot move the cursor, recolour or clear a terminal (ANSI escape sequences).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    // Kept in step with [`Printable`], which also keeps newlines and tabs.
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
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

/// Check a `--device` value: `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
pub fn parse_device(s: &str) -> std::result::Result<String, String> {
    let (kind, index) = s.split_once(':').unwrap_or((s, "0"));
    let ok = matches!(kind, "cpu" | "cuda" | "metal")
        && index.parse::<usize>().is_ok()
        && !(kind == "cpu" && s.contains(':'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}': expected cpu, cuda, cuda:N, metal or metal:N"
        ))
    }
}

/// Parse `A..B` (A inclusive, B exclusive, A < B).
pub fn parse_range(s: &str) -> std::result::Result<std::ops::Range<usize>, String> {
    let bad = || format!("'{s}': expected A..B with A < B (test indices, B exclusive)");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let number = |v: &str| -> std::result::Result<usize, String> {
        v.trim().parse().map_err(|e: std::num::ParseIntError| {
            if *e.kind() == std::num::IntErrorKind::PosOverflow {
                format!("'{s}': {} is too large (at most {})", v.trim(), usize::MAX)
            } else {
                bad()
            }
        })
    };
    let (a, b) = (number(a)?, number(b)?);
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

/// `--shard I/N` or `auto/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// The index, or `None` for `auto`.
    pub index: Option<usize>,
    /// The number of shards.
    pub count: usize,
}

/// The variables `--shard auto/N` reads, in order.
pub const SHARD_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

impl Shard {
    /// The index and count, reading the scheduler's variable for `auto` (and saying which).
    pub fn resolve(&self) -> Result<(usize, usize)> {
        let index = match self.index {
            Some(i) => i,
            None => self.scheduler_index()?,
        };
        if index >= self.count {
            bail!(
                "shard {index}/{}: the index must be below {}",
                self.count,
                self.count
            );
        }
        Ok((index, self.count))
    }

    /// The index `auto/N` reads from the scheduler's variable (an empty one counts as unset);
    /// both set to different values is an error.
    fn scheduler_index(&self) -> Result<usize> {
        let set: Vec<(&str, String)> = SHARD_VARIABLES
            .iter()
            .filter_map(|v| std::env::var(v).ok().map(|x| (*v, x.trim().to_string())))
            .filter(|(_, x)| !x.is_empty())
            .collect();
        let Some((var, value)) = set.first() else {
            bail!(
                "--shard auto/{} needs {} or {} to be set (a Kubernetes Indexed Job or a Slurm \
                 array job sets one)",
                self.count,
                SHARD_VARIABLES[0],
                SHARD_VARIABLES[1]
            );
        };
        if let Some((other, theirs)) = set.iter().find(|(_, x)| x != value) {
            bail!(
                "--shard auto/{}: {var}={value} and {other}={theirs} disagree: unset one",
                self.count
            );
        }
        let i: usize = value
            .parse()
            .with_context(|| format!("{var}={value} is not a shard index"))?;
        note!("shard {i}/{} from {var}", self.count);
        Ok(i)
    }
}

/// Parse `I/N` or `auto/N` (N >= 1).
pub fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    let bad = || format!("'{s}': expected I/N or auto/N with N >= 1");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(bad());
    }
    let index = match i.trim() {
        "auto" => None,
        v => Some(v.parse().map_err(|_| bad())?),
    };
    Ok(Shard { index, count })
}
