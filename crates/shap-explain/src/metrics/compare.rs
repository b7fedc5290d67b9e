//! Several explanations of the same images side by side, each scored by the same metrics
//! (docs/metrics.md, "Comparing explanations"): what `shap-cli compare` writes.

use serde::{Deserialize, Serialize};

use crate::{Aucs, Target};

/// Four scores of one explanation, each oriented so that larger is better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrustScores {
    /// Random orders' deletion AUC minus the explanation's.
    pub deletion_gap: f64,
    /// The explanation's insertion AUC minus random orders'.
    pub insertion_gap: f64,
    /// MuFidelity (Pearson).
    pub mufidelity: f64,
    /// ROAD: LeRF mean minus MoRF mean.
    pub road_gap: f64,
}

impl TrustScores {
    /// The measures' names, in field order.
    pub const NAMES: [&'static str; 4] =
        ["deletion gap", "insertion gap", "MuFidelity", "ROAD gap"];

    /// The scores from the metrics' means.
    pub fn new(aucs: &Aucs, mufidelity: f64, road_gap: f64) -> Self {
        Self {
            deletion_gap: aucs.random_deletion_auc - aucs.deletion_auc,
            insertion_gap: aucs.insertion_auc - aucs.random_insertion_auc,
            mufidelity,
            road_gap,
        }
    }

    /// The scores in field order.
    pub fn as_array(&self) -> [f64; 4] {
        [
            self.deletion_gap,
            self.insertion_gap,
            self.mufidelity,
            self.road_gap,
        ]
    }
}

/// One compared explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    /// Its name (the file's stem, or `occlusion`, `random`).
    pub name: String,
    /// Whether it is a baseline the toolkit built (occlusion, random) rather than a file.
    pub baseline: bool,
    /// Its deletion and insertion AUCs, and random orders'.
    pub aucs: Aucs,
    /// MuFidelity, Spearman's version.
    pub mufidelity_spearman: f64,
    /// ROAD's mean outputs with the most and the least relevant pixels removed.
    pub road_morf: f64,
    /// See `road_morf`.
    pub road_lerf: f64,
    /// The four larger-is-better scores.
    pub scores: TrustScores,
}

/// The comparison: every explanation's scores, and the best by each measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonReport {
    /// Which classes were scored.
    pub target: Target,
    /// The explanations, in the order given, then the baselines.
    pub rows: Vec<Compared>,
    /// Per measure (in [`TrustScores::NAMES`] order), the name of the best explanation.
    pub best: Vec<String>,
}

impl ComparisonReport {
    /// The report of `rows` (at least one); ties go to the first.
    pub fn new(target: Target, rows: Vec<Compared>) -> Self {
        let best = (0..4)
            .map(|j| {
                rows.iter()
                    .fold(None::<&Compared>, |b, r| match b {
                        Some(b) if b.scores.as_array()[j] >= r.scores.as_array()[j] => Some(b),
                        _ => Some(r),
                    })
                    .map(|r| r.name.clone())
                    .unwrap_or_default()
            })
            .collect();
        Self { target, rows, best }
    }
}

/// The comparison as a table, larger is better in every column.
impl std::fmt::Display for ComparisonReport {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            o,
            "Explanations compared (larger is better in every column)"
        )?;
        write!(o, "  {:<28}", "explanation")?;
        for n in TrustScores::NAMES {
            write!(o, " {n:>13}")?;
        }
        writeln!(o)?;
        for r in &self.rows {
            let name: String = r.name.chars().take(28).collect();
            write!(o, "  {name:<28}")?;
            for v in r.scores.as_array() {
                write!(o, " {v:>13.4}")?;
            }
            writeln!(o)?;
        }
        write!(o, "  best:")?;
        for (n, b) in TrustScores::NAMES.iter().zip(&self.best) {
            write!(o, " {n}: {b};")?;
        }
        Ok(())
    }
}
