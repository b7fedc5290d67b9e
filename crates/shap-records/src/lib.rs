//! `shap-records`: the JSON records that shap-toolkit's commands write, as typed serde structs.
//!
//! One definition per record, used by the writer and by every reader:
//! - [`History`] (`shap-cli train --history`): the [`TrainConfig`] and one [`EpochStats`] per
//!   epoch;
//! - [`EvaluationRecord`] (`shap-cli evaluate --json`): the [`Scores`] (accuracy, confusion
//!   matrix, per-class [`ClassReport`]s, and their scikit-learn style report);
//! - [`DatasetRecord`] (`shap-cli data --json`): where Fashion-MNIST was found and what each
//!   split holds.
//!
//! The crate needs serde only, so a tool that reads the records (`cargo xtask reproduce`'s
//! report) does not compile Candle. `shap-model` re-exports the training types and checks a
//! [`TrainConfig`] before training (`shap_model::Trainer::new`).
//!
//! ```
//! use shap_records::{Head, Preset, TrainConfig};
//! let cfg = TrainConfig::preset(Preset::Flax);
//! assert_eq!((cfg.epochs, cfg.head), (5, Head::Logits));
//! assert_eq!("softmax".parse::<Head>()?, Head::Softmax);
//! assert!("tanh".parse::<Head>().is_err());
//! # Ok::<(), shap_records::UnknownName>(())
//! ```

mod data;
mod evaluation;
mod train;

pub use data::{DatasetRecord, SplitRecord};
pub use evaluation::{ClassReport, EvaluationRecord, MAX_DIGITS, Outputs, Scores};
pub use train::{CheckpointMeta, EpochStats, Head, History, Preset, TrainConfig};

/// A name that is not one of a setting's choices (`"tanh"` for a head).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?} (expected {expected})")]
pub struct UnknownName {
    /// What was being named (`output head`, `preset`).
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The names accepted.
    pub expected: &'static str,
}
