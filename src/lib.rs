//! # shap-toolkit
//!
//! Facade over the workspace's focused crates: train a Fashion-MNIST CNN with Candle and
//! explain its predictions with SHAP (Partition / Permutation explainers).
//!
//! Each crate is usable on its own; this one only re-exports them and hosts the
//! end-to-end tests (`tests/`) and criterion benches (`benches/`).

pub use shap_data as data;
pub use shap_explain as explain;
pub use shap_mask as mask;
pub use shap_model as model;
pub use shap_plot as plot;
