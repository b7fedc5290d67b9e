//! What an explanation file records about the run that made it: names and text values, in
//! order. A front end decides what the names mean (shap-run types them as `RunSettings`).

use serde::{Deserialize, Serialize};

/// One recorded setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, String)", into = "(String, String)")]
pub struct Setting {
    /// Its name (`algorithm`, `masker`, `seed`...).
    pub name: String,
    /// Its value, as text.
    pub value: String,
}

impl From<(String, String)> for Setting {
    fn from((name, value): (String, String)) -> Self {
        Self { name, value }
    }
}

impl From<Setting> for (String, String) {
    fn from(s: Setting) -> Self {
        (s.name, s.value)
    }
}

/// The settings an explanation records, in order (in JSON, a list of `[name, value]` pairs).
///
/// ```
/// use shap_explain::Settings;
/// let mut s: Settings = [("algorithm", "partition"), ("seed", "42")].into_iter().collect();
/// s.push("chunk", "0..10");
/// assert_eq!(s.get("seed"), Some("42"));
/// s.retain(|x| x.name != "chunk");
/// assert_eq!(s.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Settings(Vec<Setting>);

impl Settings {
    /// No settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, when recorded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value.as_str())
    }

    /// Record `name` = `value` after the others.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push(Setting {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Keep only the settings `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Setting) -> bool) {
        self.0.retain(keep);
    }

    /// The settings, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Setting> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These settings followed by `more`.
    pub fn and(mut self, more: &Settings) -> Self {
        self.0.extend(more.0.iter().cloned());
        self
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Settings {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(n, v)| Setting {
                    name: n.into(),
                    value: v.into(),
                })
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Settings {
    type Item = &'a Setting;
    type IntoIter = std::slice::Iter<'a, Setting>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
