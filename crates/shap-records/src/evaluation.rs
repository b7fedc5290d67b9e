//! The evaluation record (`shap-cli evaluate --json`).

use crate::train::{CheckpointMeta, Head};

/// Precision, recall, F1 and support of one class (or an average).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassReport {
    /// Class name (or `macro avg` / `weighted avg`).
    pub name: String,
    /// Precision (0 when nothing was predicted as this class, like scikit-learn).
    pub precision: f64,
    /// Recall (0 when the class has no examples).
    pub recall: f64,
    /// F1 score (0 when precision + recall is 0).
    pub f1: f64,
    /// Number of true examples.
    pub support: usize,
}

/// What a model's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Outputs {
    /// Softmax probabilities.
    Probabilities,
    /// Raw logits, or whatever an ONNX graph returns without a softmax.
    Logits,
}

impl Outputs {
    /// `probabilities` or `logits`, as recorded.
    pub fn name(self) -> &'static str {
        match self {
            Self::Probabilities => "probabilities",
            Self::Logits => "logits",
        }
    }
}

impl From<Outputs> for Head {
    fn from(outputs: Outputs) -> Self {
        match outputs {
            Outputs::Probabilities => Self::Softmax,
            Outputs::Logits => Self::Logits,
        }
    }
}

impl From<Head> for Outputs {
    fn from(head: Head) -> Self {
        match head {
            Head::Softmax => Self::Probabilities,
            Head::Logits => Self::Logits,
        }
    }
}

/// Most decimal digits [`Scores::report`] prints (an f64 holds 17 significant digits).
pub const MAX_DIGITS: usize = 17;

/// A classifier's scores on labelled examples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// Number of examples.
    pub n: usize,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Per-class scores.
    pub classes: Vec<ClassReport>,
    /// Unweighted mean over classes.
    pub macro_avg: ClassReport,
    /// Support-weighted mean over classes.
    pub weighted_avg: ClassReport,
}

impl Scores {
    /// The report formatted like scikit-learn's `classification_report(digits=digits)`, with
    /// at most [`MAX_DIGITS`] digits.
    pub fn report(&self, digits: usize) -> String {
        let digits = digits.min(MAX_DIGITS);
        let width = self
            .classes
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0)
            .max("weighted avg".len())
            .max(digits);
        let mut s = format!(
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n",
            "", "precision", "recall", "f1-score", "support"
        );
        let row = |c: &ClassReport| {
            format!(
                "{:>width$}  {:>9.digits$} {:>9.digits$} {:>9.digits$} {:>9}\n",
                c.name, c.precision, c.recall, c.f1, c.support
            )
        };
        for c in &self.classes {
            s += &row(c);
        }
        s += "\n";
        s += &format!(
            "{:>width$}  {:>9} {:>9} {:>9.digits$} {:>9}\n",
            "accuracy", "", "", self.accuracy, self.n
        );
        s += &row(&self.macro_avg);
        s += &row(&self.weighted_avg);
        s
    }

    /// The confusion matrix as text: rows are true classes, columns predictions.
    pub fn confusion_text(&self) -> String {
        let cell = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(self.confusion.len().to_string().len());
        let mut s = format!("{:>5} ", "t\\p");
        for p in 0..self.confusion.len() {
            s += &format!(" {p:>cell$}");
        }
        s += "\n";
        for (t, row) in self.confusion.iter().enumerate() {
            s += &format!("{t:>5} ");
            for v in row {
                s += &format!(" {v:>cell$}");
            }
            s += "\n";
        }
        s
    }
}

/// A checkpoint's evaluation on the test set, as `shap-cli evaluate --json` writes it: the
/// scores' fields sit at the top level beside the others.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvaluationRecord {
    /// The checkpoint's path, as given.
    pub model: String,
    /// The checkpoint's metadata.
    pub meta: CheckpointMeta,
    /// What the outputs were (the head evaluated).
    pub output: Outputs,
    /// Accuracy, confusion matrix and per-class scores.
    #[serde(flatten)]
    pub scores: Scores,
    /// The first correctly predicted test indices.
    pub first_correct: Vec<usize>,
    /// The first wrongly predicted test indices.
    pub first_wrong: Vec<usize>,
    /// The scikit-learn style classification report, as printed.
    pub report_text: String,
    /// The confusion matrix, as printed.
    pub confusion_text: String,
}
