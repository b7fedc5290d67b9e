//! shap-plot: placeholder, filled by its issue.
