//! Which model outputs (classes) to explain.

use std::fmt;
use std::str::FromStr;

use crate::{ExplainError, Result};

/// The outputs to explain, resolved per image on the unmasked output `f(x)` as produced by the
/// masker (`docs/outputs-and-explanations.md#output-selection`).
///
/// The default is the tutorial's top 5: explaining `K` outputs costs memory and time in
/// proportion to `K`, so a 1000-class model explains only what the user looks at unless
/// asked for [`OutputSelection::All`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSelection {
    /// Every output, in class order (shap's `outputs=None`).
    All,
    /// The `k` largest outputs, in descending order; ties go to the lower index (a stable
    /// descending argsort, like `shap.Explanation.argsort.flip[:k]` without its platform-
    /// dependent tie order). A model with fewer than `k` outputs has all of them explained,
    /// in that order, as Python's slice `[:k]` does.
    TopK(usize),
    /// Explicit output indices, in the given order (repeats allowed).
    Indices(Vec<usize>),
}

impl Default for OutputSelection {
    fn default() -> Self {
        Self::TopK(5)
    }
}

impl OutputSelection {
    /// Resolve against the unmasked outputs `fx` (all `K` of them).
    pub fn resolve(&self, fx: &[f64]) -> Result<Vec<usize>> {
        let k_all = fx.len();
        match self {
            Self::All => Ok((0..k_all).collect()),
            Self::TopK(k) => {
                if *k == 0 {
                    return Err(ExplainError::InvalidOutputs("top-k with k = 0".into()));
                }
                Ok(top_k(fx, (*k).min(k_all)))
            }
            Self::Indices(ix) => {
                if ix.is_empty() {
                    return Err(ExplainError::InvalidOutputs(
                        "empty list of output indices".into(),
                    ));
                }
                if let Some(bad) = ix.iter().find(|&&i| i >= k_all) {
                    return Err(ExplainError::InvalidOutputs(format!(
                        "output index {bad} is out of range for a model with {k_all} outputs"
                    )));
                }
                Ok(ix.clone())
            }
        }
    }

    /// Refuse a selection that can never select anything (`TopK(0)`, no indices), whatever the
    /// model.
    pub(crate) fn check_not_empty(&self) -> Result<()> {
        match self {
            Self::TopK(0) => Err(ExplainError::InvalidOutputs("top-k with k = 0".into())),
            Self::Indices(ix) if ix.is_empty() => Err(ExplainError::InvalidOutputs(
                "empty list of output indices".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Check the selection against a model with `k_all` outputs before any evaluation.
    pub fn validate(&self, k_all: usize) -> Result<()> {
        self.resolve(&vec![0.0; k_all]).map(|_| ())
    }
}

/// Stable descending argsort, first `k`: larger values first, ties by lower index.
pub fn top_k(values: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| {
        values[b]
            .partial_cmp(&values[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    idx.truncate(k);
    idx
}

impl fmt::Display for OutputSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => write!(f, "all"),
            Self::TopK(k) => write!(f, "top{k}"),
            Self::Indices(ix) => {
                let s: Vec<String> = ix.iter().map(|i| i.to_string()).collect();
                write!(f, "{}", s.join(","))
            }
        }
    }
}

impl FromStr for OutputSelection {
    type Err = ExplainError;
    /// Parses `all`, `topK` (e.g. `top5`) or a comma-separated index list (`3,5`).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t == "all" {
            return Ok(Self::All);
        }
        if let Some(k) = t.strip_prefix("top") {
            return k.parse().map(Self::TopK).map_err(|_| {
                ExplainError::InvalidOutputs(format!("'{s}': expected all, topK or i,j,..."))
            });
        }
        let ix: std::result::Result<Vec<usize>, _> =
            t.split(',').map(|p| p.trim().parse()).collect();
        match ix {
            Ok(v) if !v.is_empty() => Ok(Self::Indices(v)),
            _ => Err(ExplainError::InvalidOutputs(format!(
                "'{s}': expected all, topK or i,j,..."
            ))),
        }
    }
}
