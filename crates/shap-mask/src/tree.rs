//! shap's image partition tree (skeleton: filled by the explainer issue).

/// shap's hierarchical image partition (placeholder).
#[derive(Debug, Clone)]
pub struct PartitionTree {}
