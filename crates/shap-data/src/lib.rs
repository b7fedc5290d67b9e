//! shap-data: placeholder, filled by its issue.
