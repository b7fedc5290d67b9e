//! The application layer of shap-toolkit, between the libraries and the command line: what a
//! run *is* and how it is carried out safely at any size.
//!
//! - [`RunSettings`]: a run's settings, typed, with the one codec to and from what explanation
//!   files record ([`settings`]).
//! - [`Network`]: the model-loading policy (a tutorial checkpoint or an ONNX file, which
//!   engine, memory checks before loading) ([`model`]).
//! - [`Selection`]: which images, from files or the test set, and the shard of them a job
//!   takes ([`selection`], [`slicing`]).
//! - [`explain()`]: a run chunk by chunk, with a journal beside `--npz` so an interrupted run
//!   resumes where it stopped and gives the same bytes ([`journal`]).
//! - [`merge()`]: the parts of a sharded run joined into the explanation one run would make.
//! - [`mask::mask`]: one image through a masker, to see what it does.
//! - [`faithfulness()`] and [`metrics()`]: a saved explanation scored with the model it was
//!   made with (deletion and insertion curves; MuFidelity and ROAD), and [`sanity()`]: the
//!   model-randomisation check, and [`compare()`]: several explanations and two baselines
//!   scored side by side.
//! - [`train()`] and [`evaluate()`]: the tutorial CNN trained on Fashion-MNIST and scored on its
//!   test set, with the records they write (`shap_records`) ([`tutorial`]).
//!
//! Nothing here prints or draws: notes, warnings and progress go to a [`Reporter`], which a
//! front end implements (shap-cli draws a bar on a terminal).
//!
//! ```
//! use shap_run::{RunSettings, settings::{Evaluation, ModelIdentity, Outputs}};
//! use shap_explain::{Algorithm, Compat, OutputSelection};
//! let run = RunSettings {
//!     algorithm: Algorithm::Partition,
//!     masker: "blur(28,28)".parse()?,
//!     max_evals: Some(500),
//!     seed: 42,
//!     compat: Compat::Default,
//!     evaluation: Evaluation::Incremental,
//!     engine: "shap-model".into(),
//!     batch_size: None,
//!     outputs: Outputs::Probabilities,
//!     classes: OutputSelection::TopK(5),
//!     input_layout: None,
//!     mean: vec![],
//!     std: vec![],
//!     softmax: false,
//!     labels_sha256: None,
//!     model: ModelIdentity { file_name: "model.safetensors".into(), sha256: "00".repeat(32) },
//! };
//! // What an explanation file records, and back.
//! assert_eq!(RunSettings::from_record(&run.record())?, run);
//! # Ok::<(), shap_run::Error>(())
//! ```

pub mod compare;
pub mod digest;
mod error;
pub mod explain;
pub mod faithfulness;
pub mod journal;
pub mod mask;
pub mod merge;
pub mod metrics;
pub mod model;
pub mod sanity;
pub mod selection;
pub mod settings;
pub mod slicing;
pub mod text;
pub mod threads;
pub mod tutorial;

mod chunks;

pub use compare::{CompareRun, compare};
pub use error::{Context, Error, Result};
pub use explain::{ExplainRun, Outcome, Report, explain};
pub use faithfulness::{FaithfulnessRun, faithfulness};
pub use merge::{Merged, merge};
pub use metrics::{MetricsRun, metrics};
pub use model::{Engine, Eval, Network, Options, class_names, memory_budget};
pub use sanity::{SanityOutcome, SanityRun, sanity};
pub use selection::Selection;
pub use selection::{Images, TestImages};
pub use settings::{Placement, RunSettings};
pub use shap_explain::metrics::MetricsReport;
pub use slicing::{Shard, parse_range};
pub use text::printable;
pub use tutorial::{EvaluateRun, TrainRun, TrainStep, Trained, evaluate, train};

/// What a run tells its user as it goes: notes, warnings and progress over images. A front end
/// prints or draws them; [`Silent`] drops them.
pub trait Reporter: shap_explain::Progress {
    /// Something the user should know (which engine runs the model, a resumed journal).
    fn note(&self, text: &str);
    /// Something that is probably a mistake but not an error.
    fn warning(&self, text: &str);
    /// Something only a user who asked for detail needs (what a run will need in memory).
    fn detail(&self, text: &str) {
        self.note(text);
    }
    /// A run over `images` images starts (after the checks).
    fn start(&self, _images: usize) {}
    /// `images` images were found finished in a journal and are not explained again.
    fn skipped(&self, _images: usize) {}
    /// The run's work is over.
    fn finish(&self) {}
}

/// A [`Reporter`] that says nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl shap_explain::Progress for Silent {
    fn image_done(&self, _: usize, _: usize) {}
}

impl Reporter for Silent {
    fn note(&self, _: &str) {}
    fn warning(&self, _: &str) {}
}
