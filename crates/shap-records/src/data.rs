//! The dataset record (`shap-cli data --json`).

/// What one split of the dataset holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitRecord {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Images per class, by label.
    pub histogram: Vec<usize>,
}

/// Where Fashion-MNIST was found and what it holds, as `shap-cli data --json` writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatasetRecord {
    /// The folder or cache the files were read from.
    pub source: String,
    /// How it was found: `directory` (a folder given), `env` (`FASHION_MNIST_DIR`), `system`, `hub-cache`,
    /// `hub-download` or `other`.
    pub source_kind: String,
    /// Class names, by label.
    pub classes: Vec<String>,
    /// The training split.
    pub train: SplitRecord,
    /// The test split.
    pub test: SplitRecord,
}
