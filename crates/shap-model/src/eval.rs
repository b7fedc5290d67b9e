//! Evaluation: accuracy, confusion matrix, scikit-learn style classification report.

use crate::Error;
use crate::model::CLASSES;
use crate::train::argmax;

pub use shap_records::{ClassReport, MAX_DIGITS, Scores};

/// Results of evaluating predictions against labels: the scores (the record
/// `shap-cli evaluate --json` writes, with the report's text) and each prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Accuracy, confusion matrix and per-class scores.
    pub scores: Scores,
    /// Predicted class per example (argmax of the outputs).
    pub predictions: Vec<usize>,
}

/// Evaluate outputs `(n, 10)` (probabilities or logits: only the argmax is used) against
/// `labels`. `class_names` must have 10 entries; an empty set of labels, or an output that is
/// NaN or infinite, is an error.
pub fn evaluate(outputs: &[f32], labels: &[u8], class_names: &[&str]) -> Result<Evaluation, Error> {
    if class_names.len() != CLASSES {
        return Err(Error::Input(format!(
            "need {CLASSES} class names, got {}",
            class_names.len()
        )));
    }
    if outputs.len() != labels.len() * CLASSES {
        return Err(Error::Input(format!(
            "{} outputs for {} labels (need {CLASSES} per label)",
            outputs.len(),
            labels.len()
        )));
    }
    if labels.is_empty() {
        return Err(Error::Input(
            "nothing to evaluate: the test set is empty".into(),
        ));
    }
    if let Some(i) = outputs.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "the model's output {} for image {} is {}: the checkpoint does not compute finite \
             outputs",
            i % CLASSES,
            i / CLASSES,
            outputs[i]
        )));
    }
    let mut confusion = vec![vec![0usize; CLASSES]; CLASSES];
    let mut predictions = Vec::with_capacity(labels.len());
    for (row, &y) in outputs.chunks_exact(CLASSES).zip(labels) {
        let y = y as usize;
        if y >= CLASSES {
            return Err(Error::Input(format!("label {y} is not below {CLASSES}")));
        }
        let p = argmax(row);
        confusion[y][p] += 1;
        predictions.push(p);
    }
    let n = labels.len();
    let correct: usize = (0..CLASSES).map(|c| confusion[c][c]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let classes: Vec<ClassReport> = (0..CLASSES)
        .map(|c| {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = (0..CLASSES).map(|t| confusion[t][c]).sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassReport {
                name: class_names[c].to_string(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let avg = |name: &str, weights: &dyn Fn(&ClassReport) -> f64| {
        let total: f64 = classes.iter().map(weights).sum();
        let mean = |f: &dyn Fn(&ClassReport) -> f64| {
            if total == 0.0 {
                0.0
            } else {
                classes.iter().map(|c| f(c) * weights(c)).sum::<f64>() / total
            }
        };
        ClassReport {
            name: name.to_string(),
            precision: mean(&|c| c.precision),
            recall: mean(&|c| c.recall),
            f1: mean(&|c| c.f1),
            support: n,
        }
    };
    let macro_avg = avg("macro avg", &|_| 1.0);
    let weighted_avg = avg("weighted avg", &|c| c.support as f64);
    Ok(Evaluation {
        scores: Scores {
            n,
            accuracy: ratio(correct, n),
            confusion,
            classes,
            macro_avg,
            weighted_avg,
        },
        predictions,
    })
}

/// Indices of the first `n` correctly and the first `n` wrongly predicted examples (the
/// tutorials show four of each). Returns fewer when there are not enough.
pub fn pick_examples(predictions: &[usize], labels: &[u8], n: usize) -> (Vec<usize>, Vec<usize>) {
    let mut right = Vec::new();
    let mut wrong = Vec::new();
    for (i, (&p, &y)) in predictions.iter().zip(labels).enumerate() {
        if p == y as usize {
            if right.len() < n {
                right.push(i);
            }
        } else if wrong.len() < n {
            wrong.push(i);
        }
        if right.len() == n && wrong.len() == n {
            break;
        }
    }
    (right, wrong)
}
