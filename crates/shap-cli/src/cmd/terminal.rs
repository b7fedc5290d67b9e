//! What a run reports, on the terminal: notes and warnings on standard error, and a progress
//! bar over the images when standard error is a terminal.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use shap_explain::Progress;
use shap_run::Reporter;

/// A [`Reporter`] for the terminal. `quiet` drops the bar and the details (notes and warnings
/// are still printed).
pub struct Terminal {
    quiet: bool,
    bar: OnceLock<Option<indicatif::ProgressBar>>,
    start: Instant,
    evals: AtomicUsize,
}

impl Terminal {
    /// A reporter; the bar appears when the run starts.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: OnceLock::new(),
            start: Instant::now(),
            evals: AtomicUsize::new(0),
        }
    }

    fn bar(&self) -> Option<&indicatif::ProgressBar> {
        self.bar.get().and_then(Option::as_ref)
    }

    /// Print `line` on standard error, above the bar when there is one.
    fn say(&self, line: String) {
        match self.bar() {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Progress for Terminal {
    fn image_done(&self, _image: usize, evals: usize) {
        let done = self.evals.fetch_add(evals, Ordering::Relaxed) + evals;
        if let Some(b) = self.bar() {
            b.inc(1);
            let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{rate:.0} evaluations/s"));
        }
    }
}

impl Reporter for Terminal {
    fn note(&self, text: &str) {
        self.say(format!("note: {}", super::common::printable(text)));
    }

    fn warning(&self, text: &str) {
        self.say(format!("warning: {}", super::common::printable(text)));
    }

    fn detail(&self, text: &str) {
        if !self.quiet {
            self.note(text);
        }
    }

    fn start(&self, images: usize) {
        let _ = self.bar.set(super::common::progress_bar(
            images as u64,
            "images",
            self.quiet,
        ));
    }

    fn skipped(&self, images: usize) {
        if let Some(b) = self.bar() {
            b.inc(images as u64);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar() {
            // Draws are rate-limited: show the final count before the bar goes.
            b.force_draw();
            b.finish_and_clear();
        }
    }
}
