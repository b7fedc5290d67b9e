//! Helpers shared by subcommands: output checks, printing, PNG input.

pub use shap_run::text::{Printable, count, printable};

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use shap_model::Head;
use shap_run::settings::Outputs;

/// The one `--seed` default of every command (`train`, `explain`, `faithfulness`), the seed
/// `cargo xtask reproduce` uses too.
pub const DEFAULT_SEED: u64 = 42;

/// Extensions of figure outputs (the format follows the extension).
pub const FIGURE: &[&str] = &["png", "svg"];

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

/// `--head` and its old spelling `--output` (hidden, kept for one release).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct HeadFlags {
    /// Tutorial checkpoints: explain or report probabilities (softmax) or logits (default:
    /// the checkpoint's own head).
    #[arg(long, value_enum, conflicts_with = "output")]
    pub head: Option<Outputs>,
    /// Old name of --head.
    #[arg(long, value_enum, hide = true)]
    pub output: Option<Outputs>,
}

impl HeadFlags {
    /// The head asked for, if any; `--output` works with a note that it is now `--head`.
    pub fn chosen(&self) -> Option<Head> {
        if self.output.is_some() {
            note!("--output is now called --head; --output will be removed");
        }
        self.head.or(self.output).map(Head::from)
    }
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
