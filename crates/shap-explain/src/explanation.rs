//! The result of an explanation: values, base values, outputs, statistics; `.npz` and JSON I/O.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::npz::{read_npz, write_npz};
use crate::{ConfigError, ExplainError, Result, Settings};
use shap_io::npy::{NpyArray, NpyData};
use shap_mask::ImageShape;

/// Which explainer produced an explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Algorithm {
    /// Owen values over shap's image hierarchy (`PartitionExplainer`).
    Partition,
    /// Antithetic, hierarchy-respecting permutations (`PermutationExplainer`).
    Permutation,
}

impl Algorithm {
    /// `"partition"` or `"permutation"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Permutation => "permutation",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Timing and evaluation counts of one explanation call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunStats {
    /// Wall-clock time of the whole call (images are explained in parallel).
    pub wall_time: Duration,
    /// Time spent explaining each image (masking, model, bookkeeping), summed over images.
    pub image_time: Duration,
    /// Time spent inside the model, summed over images.
    pub model_time: Duration,
    /// Model rows (masked images) evaluated, all images together.
    pub model_rows: usize,
    /// Model calls made, all images together.
    pub model_calls: usize,
}

impl RunStats {
    /// The explainer's own time (tree walk, masking, bookkeeping): `image_time - model_time`.
    pub fn overhead(&self) -> Duration {
        self.image_time.saturating_sub(self.model_time)
    }

    /// [`RunStats::overhead`] as a fraction of the model time (0 when no model time).
    pub fn overhead_ratio(&self) -> f64 {
        let m = self.model_time.as_secs_f64();
        if m > 0.0 {
            self.overhead().as_secs_f64() / m
        } else {
            0.0
        }
    }
}

/// SHAP values for `n` images and `k` selected outputs each.
///
/// Layouts (all row-major, C order, like the shap arrays of the same names):
/// - `values`: `(n, H, W, C, k)` f64; feature `f = (r*W + c)*C + ch`, value at `(i*M + f)*k + o`;
/// - `base_values`, `fx`, `output_indices`: `(n, k)`;
/// - `data`: `(n, H, W, C)` f32, the explained images as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Which explainer produced it.
    pub algorithm: Algorithm,
    /// Image shape.
    pub shape: ImageShape,
    /// Number of explained images `n`.
    pub num_images: usize,
    /// Number of explained outputs per image `k`.
    pub num_outputs: usize,
    /// SHAP values `(n, H, W, C, k)`.
    pub values: Vec<f64>,
    /// `f(all hidden)` for the selected outputs, `(n, k)`.
    pub base_values: Vec<f64>,
    /// The model output index explained in each column, `(n, k)`.
    pub output_indices: Vec<usize>,
    /// Output names per row (`n` rows of `k`).
    pub output_names: Vec<Vec<String>>,
    /// The explained images `(n, H, W, C)`.
    pub data: Vec<f32>,
    /// `f(nothing hidden)` (as produced by the masker) for the selected outputs, `(n, k)`.
    pub fx: Vec<f64>,
    /// Standard error of each value across permutation passes (Permutation with
    /// `std_errors` and at least two passes), same layout as `values`.
    pub std_errors: Option<Vec<f64>>,
    /// Model evaluations per image.
    pub evals: Vec<usize>,
    /// Per image, `max_o |sum_f values[f, o] + base[o] - fx[o]|`.
    pub efficiency_errors: Vec<f64>,
    /// Seconds spent explaining each image (masking, model and bookkeeping; images run in
    /// parallel, so these overlap in wall time). Measured by the explainers; not saved in the
    /// `.npz`, so empty when the explanation was read from a file.
    pub image_times: Vec<f64>,
    /// Timing and counts (zero when [`Explanation::image_times`] is empty).
    pub stats: RunStats,
    /// What is known about each explained image (empty when nothing is); saved in the `.npz`.
    pub images: Vec<ImageInfo>,
    /// The run's settings as name/value pairs (algorithm, masker, max_evals, seed, model...),
    /// saved in the `.npz` as two string arrays.
    pub settings: Settings,
}

/// What a front end knows about one explained image, saved beside the values so that the
/// `.npz` describes itself (`docs/outputs-and-explanations.md`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Index in its dataset (a test-set index), if it came from one.
    pub index: Option<usize>,
    /// Where it came from: `test[12]`, a file name.
    pub source: String,
    /// Its true class, when known.
    pub label: Option<Class>,
    /// The class the model predicts, with its score.
    pub predicted: Option<Prediction>,
    /// The title of its row in a figure.
    pub title: String,
}

/// A class of the model's outputs: its index and its name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Class {
    /// The output index.
    pub index: usize,
    /// The class's name.
    pub name: String,
}

impl Class {
    /// Class `index`, named `name`.
    pub fn new(index: usize, name: impl Into<String>) -> Self {
        Self {
            index,
            name: name.into(),
        }
    }
}

/// The class a model predicts for an image, and its score.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Prediction {
    /// The predicted class.
    pub class: Class,
    /// The model's output for it (a probability when the outputs are).
    pub score: f64,
}

impl Prediction {
    /// Class `index`, named `name`, predicted with `score`.
    pub fn new(index: usize, name: impl Into<String>, score: f64) -> Self {
        Self {
            class: Class::new(index, name),
            score,
        }
    }
}

impl Explanation {
    /// Features per image `M = H*W*C`.
    pub fn num_features(&self) -> usize {
        self.shape.features()
    }

    /// The `(H, W, C, k)` value block of image `i` (empty when out of range).
    pub fn image_values(&self, i: usize) -> &[f64] {
        let block = self.num_features() * self.num_outputs;
        self.values.get(i * block..(i + 1) * block).unwrap_or(&[])
    }

    /// Value of feature `f` for output column `o` of image `i`.
    pub fn value(&self, i: usize, f: usize, o: usize) -> Option<f64> {
        if f >= self.num_features() || o >= self.num_outputs {
            return None;
        }
        self.image_values(i).get(f * self.num_outputs + o).copied()
    }

    /// The values of one output column of image `i` as an `(H, W, C)` map.
    pub fn value_map(&self, i: usize, o: usize) -> Vec<f64> {
        if o >= self.num_outputs {
            return Vec::new();
        }
        self.image_values(i)
            .iter()
            .skip(o)
            .step_by(self.num_outputs)
            .copied()
            .collect()
    }

    /// Largest efficiency error over all images.
    pub fn max_efficiency_error(&self) -> f64 {
        self.efficiency_errors.iter().copied().fold(0.0, f64::max)
    }

    /// Recompute the efficiency errors from values, base values and `fx`.
    pub fn compute_efficiency_errors(&self) -> Vec<f64> {
        let (m, k) = (self.num_features(), self.num_outputs);
        (0..self.num_images)
            .map(|i| {
                let vals = self.image_values(i);
                (0..k)
                    .map(|o| {
                        let s: f64 = (0..m)
                            .map(|f| vals.get(f * k + o).copied().unwrap_or(0.0))
                            .sum();
                        let b = self.base_values.get(i * k + o).copied().unwrap_or(0.0);
                        let fx = self.fx.get(i * k + o).copied().unwrap_or(0.0);
                        (s + b - fx).abs()
                    })
                    .fold(0.0, f64::max)
            })
            .collect()
    }

    /// A JSON-serialisable summary (no per-pixel values).
    pub fn summary(&self) -> ExplanationSummary {
        let k = self.num_outputs;
        let part = |v: &[f64], i: usize| v.get(i * k..(i + 1) * k).unwrap_or(&[]).to_vec();
        // Timings exist only for an explanation computed in this process.
        let timed = self.image_times.len() == self.num_images && self.num_images > 0;
        let images = (0..self.num_images)
            .map(|i| {
                let info = self.images.get(i).cloned().unwrap_or_default();
                ImageSummary {
                    index: info.index,
                    source: info.source,
                    true_label: info.label.as_ref().map(|l| l.index),
                    true_name: info.label.map(|l| l.name),
                    predicted: info.predicted.as_ref().map(|p| p.class.index),
                    predicted_name: info.predicted.as_ref().map(|p| p.class.name.clone()),
                    probability: info.predicted.map(|p| p.score),
                    classes: self
                        .output_indices
                        .get(i * k..(i + 1) * k)
                        .unwrap_or(&[])
                        .to_vec(),
                    class_names: self.output_names.get(i).cloned().unwrap_or_default(),
                    base_values: part(&self.base_values, i),
                    fx: part(&self.fx, i),
                    evals: self.evals.get(i).copied().unwrap_or(0),
                    efficiency_error: self.efficiency_errors.get(i).copied().unwrap_or(0.0),
                    seconds: self.image_times.get(i).copied(),
                    title: info.title,
                }
            })
            .collect();
        ExplanationSummary {
            algorithm: self.algorithm,
            shape: [self.shape.height, self.shape.width, self.shape.channels],
            num_outputs: k,
            settings: self
                .settings
                .iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            total_seconds: timed.then_some(self.stats.wall_time.as_secs_f64()),
            model_seconds: timed.then_some(self.stats.model_time.as_secs_f64()),
            model_rows: timed.then_some(self.stats.model_rows),
            model_calls: timed.then_some(self.stats.model_calls),
            images,
        }
    }

    /// Write [`Explanation::summary`] as pretty JSON (atomically, through
    /// [`shap_io::write_bytes`]).
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<()> {
        self.summary().save_json(path)
    }

    /// Save as an uncompressed `.npz` loadable by `numpy.load`, with arrays `values`
    /// `(n,H,W,C,k)` f64, `base_values` `(n,k)` f64, `output_indices` `(n,k)` int64, `data`
    /// `(n,H,W,C)` f32, `fx` `(n,k)` f64, plus `output_names` `(n,k)` unicode, `evals` `(n,)`
    /// int64, `efficiency_errors` `(n,)` f64, `algorithm` `(1,)` unicode and, when present,
    /// `std_errors` like `values`. Timings ([`Explanation::image_times`],
    /// [`Explanation::stats`]) are not saved: the file holds what was computed, so the same
    /// run gives the same bytes, interrupted and resumed or not. Written with the workspace's one output
    /// writer ([`shap_io::write_atomic`]): atomic for regular files, `-` for standard output.
    pub fn save_npz(&self, path: impl AsRef<Path>) -> Result<()> {
        let (n, k) = (self.num_images, self.num_outputs);
        let s = self.shape;
        let img = vec![n, s.height, s.width, s.channels];
        let mut vshape = img.clone();
        vshape.push(k);
        let arr = |shape: Vec<usize>, data: NpyData| NpyArray { shape, data };
        let mut entries = vec![
            (
                "values",
                arr(vshape.clone(), NpyData::F64(self.values.clone())),
            ),
            (
                "base_values",
                arr(vec![n, k], NpyData::F64(self.base_values.clone())),
            ),
            (
                "output_indices",
                arr(
                    vec![n, k],
                    NpyData::I64(self.output_indices.iter().map(|&x| x as i64).collect()),
                ),
            ),
            ("data", arr(img, NpyData::F32(self.data.clone()))),
            ("fx", arr(vec![n, k], NpyData::F64(self.fx.clone()))),
            (
                "output_names",
                arr(vec![n, k], NpyData::Str(self.output_names.concat())),
            ),
            (
                "evals",
                arr(
                    vec![n],
                    NpyData::I64(self.evals.iter().map(|&x| x as i64).collect()),
                ),
            ),
            (
                "efficiency_errors",
                arr(vec![n], NpyData::F64(self.efficiency_errors.clone())),
            ),
            (
                "algorithm",
                arr(vec![1], NpyData::Str(vec![self.algorithm.name().into()])),
            ),
        ];
        if let Some(se) = &self.std_errors {
            entries.push(("std_errors", arr(vshape, NpyData::F64(se.clone()))));
        }
        entries.extend(self.info_entries());
        self.check_consistent()
            .map_err(|reason| ExplainError::BadFile {
                path: path.as_ref().to_path_buf(),
                reason: format!("refusing to save an inconsistent explanation: {reason}"),
            })?;
        write_npz(path.as_ref(), &entries)
    }

    pub(crate) fn check_consistent(&self) -> std::result::Result<(), String> {
        let (n, k, m) = (self.num_images, self.num_outputs, self.num_features());
        let checks = [
            ("values", self.values.len(), n * m * k),
            ("base_values", self.base_values.len(), n * k),
            ("output_indices", self.output_indices.len(), n * k),
            ("data", self.data.len(), n * m),
            ("fx", self.fx.len(), n * k),
            (
                "output_names",
                self.output_names.iter().filter(|r| r.len() == k).count(),
                n,
            ),
            ("output_names rows", self.output_names.len(), n),
            ("evals", self.evals.len(), n),
            ("efficiency_errors", self.efficiency_errors.len(), n),
        ];
        for (what, got, want) in checks {
            if got != want {
                return Err(format!("{what} has {got} entries, expected {want}"));
            }
        }
        if !self.images.is_empty() && self.images.len() != n {
            return Err(format!(
                "images has {} entries, expected {n} (or none)",
                self.images.len()
            ));
        }
        if let Some(se) = &self.std_errors
            && se.len() != n * m * k
        {
            return Err(format!(
                "std_errors has {} entries, expected {}",
                se.len(),
                n * m * k
            ));
        }
        Ok(())
    }

    /// Load an explanation written by [`Explanation::save_npz`] (or an equivalent `np.savez`
    /// with at least `values`, `base_values`, `output_indices`, `data` and `fx`).
    pub fn load_npz(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut r = NpzReader {
            path,
            arrays: read_npz(path)?,
        };
        let values = r.need("values")?;
        let [n, h, w, c, k] = r.values_shape(&values)?;
        let values = r.floats(values, "values", &[n, h, w, c, k])?;
        // A minimal shap export has values, base_values and data: what else is missing is
        // computed (f(x) from the efficiency identity, outputs numbered 0..k).
        let base_values = r.base_values(n, k)?;
        let fx = match r.take("fx") {
            Some(a) => r.floats(a, "fx", &[n, k])?,
            None => fx_from_values(&values, &base_values, n, k),
        };
        let output_indices = match r.take("output_indices") {
            Some(a) => r.ints(a, "output_indices", &[n, k])?,
            None => (0..n).flat_map(|_| 0..k).collect(),
        };
        let data = r.data(&[n, h, w, c])?;
        r.finite("values", &values)?;
        r.finite("base_values", &base_values)?;
        r.finite("fx", &fx)?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(r.bad(format!(
                "'data' entry {i} is {}: not a finite number",
                data[i]
            )));
        }
        let output_names = r.output_names(n, k, &output_indices)?;
        let evals = match r.take("evals") {
            Some(a) => r.ints(a, "evals", &[n])?,
            None => vec![0; n],
        };
        let std_errors = match r.take("std_errors") {
            Some(a) => Some(r.floats(a, "std_errors", &[n, h, w, c, k])?),
            None => None,
        };
        let mut e = Explanation {
            algorithm: r.algorithm(),
            shape: ImageShape::new(h, w, c),
            num_images: n,
            num_outputs: k,
            values,
            base_values,
            output_indices,
            output_names,
            data,
            fx,
            std_errors,
            evals,
            efficiency_errors: Vec::new(),
            image_times: Vec::new(),
            stats: r.stats(),
            images: Vec::new(),
            settings: Settings::new(),
        };
        // Files of earlier versions saved timings; read them when present.
        e.image_times = match r.take("image_times") {
            Some(a) => r.floats(a, "image_times", &[n])?,
            None => Vec::new(),
        };
        e.efficiency_errors = match r.take("efficiency_errors") {
            Some(a) => r.floats(a, "efficiency_errors", &[n])?,
            None => e.compute_efficiency_errors(),
        };
        e.images = read_infos(&mut |name| r.take(name), n).map_err(|m| r.bad(m))?;
        e.settings = read_settings(&mut |name| r.take(name)).map_err(|m| r.bad(m))?;
        Ok(e)
    }

    /// The `.npz` entries of [`Explanation::images`] and [`Explanation::settings`]: `index`,
    /// `true_label`, `predicted` (int64, -1 when unknown), `probability` (float64, NaN when
    /// unknown), `source` and `title` (strings), `setting_names` and `setting_values`.
    fn info_entries(&self) -> Vec<(&'static str, NpyArray)> {
        let mut out = Vec::new();
        let n = self.images.len();
        if n == self.num_images && n > 0 {
            let ints = |f: &dyn Fn(&ImageInfo) -> Option<usize>| {
                NpyData::I64(
                    self.images
                        .iter()
                        .map(|i| f(i).and_then(|v| i64::try_from(v).ok()).unwrap_or(-1))
                        .collect(),
                )
            };
            let strs = |f: &dyn Fn(&ImageInfo) -> String| {
                NpyData::Str(self.images.iter().map(f).collect())
            };
            let probability = self
                .images
                .iter()
                .map(|i| i.predicted.as_ref().map_or(f64::NAN, |p| p.score))
                .collect();
            for (name, data) in [
                ("index", ints(&|i| i.index)),
                ("true_label", ints(&|i| i.label.as_ref().map(|l| l.index))),
                (
                    "predicted",
                    ints(&|i| i.predicted.as_ref().map(|p| p.class.index)),
                ),
                ("probability", NpyData::F64(probability)),
                ("source", strs(&|i| i.source.clone())),
                ("title", strs(&|i| i.title.clone())),
                (
                    "true_name",
                    strs(&|i| i.label.as_ref().map(|l| l.name.clone()).unwrap_or_default()),
                ),
                (
                    "predicted_name",
                    strs(&|i| {
                        i.predicted
                            .as_ref()
                            .map(|p| p.class.name.clone())
                            .unwrap_or_default()
                    }),
                ),
            ] {
                out.push((
                    name,
                    NpyArray {
                        shape: vec![n],
                        data,
                    },
                ));
            }
        }
        if !self.settings.is_empty() {
            let m = self.settings.len();
            let (names, values) = self
                .settings
                .iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .unzip();
            out.push((
                "setting_names",
                NpyArray {
                    shape: vec![m],
                    data: NpyData::Str(names),
                },
            ));
            out.push((
                "setting_values",
                NpyArray {
                    shape: vec![m],
                    data: NpyData::Str(values),
                },
            ));
        }
        out
    }

    /// The explanations of `parts` one after the other, as one explanation: the parts must
    /// agree on algorithm, image shape and number of outputs, and either all or none carry
    /// standard errors or image records. Timings add up. Settings are the first part's.
    pub fn concat(parts: Vec<Explanation>) -> Result<Explanation> {
        let mut it = parts.into_iter();
        let Some(mut all) = it.next() else {
            return Err(ExplainError::EmptyBatch);
        };
        for (j, p) in it.enumerate() {
            let differs = |what: &'static str| -> ExplainError {
                ConfigError::PartsDiffer { part: j + 1, what }.into()
            };
            if p.algorithm != all.algorithm {
                return Err(differs("algorithm"));
            }
            if p.shape != all.shape || p.num_outputs != all.num_outputs {
                return Err(differs("image shape or number of outputs"));
            }
            if p.std_errors.is_some() != all.std_errors.is_some()
                || p.images.is_empty() != all.images.is_empty()
            {
                return Err(differs("what it records (standard errors, image records)"));
            }
            all.num_images += p.num_images;
            all.values.extend(p.values);
            all.base_values.extend(p.base_values);
            all.output_indices.extend(p.output_indices);
            all.output_names.extend(p.output_names);
            all.data.extend(p.data);
            all.fx.extend(p.fx);
            if let (Some(a), Some(b)) = (all.std_errors.as_mut(), p.std_errors) {
                a.extend(b);
            }
            all.evals.extend(p.evals);
            all.efficiency_errors.extend(p.efficiency_errors);
            all.image_times.extend(p.image_times);
            all.images.extend(p.images);
            let (s, t) = (&mut all.stats, p.stats);
            s.wall_time += t.wall_time;
            s.image_time += t.image_time;
            s.model_time += t.model_time;
            s.model_rows += t.model_rows;
            s.model_calls += t.model_calls;
        }
        Ok(all)
    }

    /// The value of setting `name`, if the explanation records it.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name)
    }
}

/// The arrays of an `.npz` file being read into an [`Explanation`]: each taken once, by
/// name, and checked against the shape the explanation's `values` imply.
struct NpzReader<'p> {
    path: &'p Path,
    arrays: Vec<(String, NpyArray)>,
}

impl NpzReader<'_> {
    /// A [`ExplainError::BadFile`] naming the file.
    fn bad(&self, reason: String) -> ExplainError {
        ExplainError::BadFile {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn take(&mut self, name: &str) -> Option<NpyArray> {
        let pos = self.arrays.iter().position(|(n, _)| n == name)?;
        Some(self.arrays.swap_remove(pos).1)
    }

    fn need(&mut self, name: &str) -> Result<NpyArray> {
        self.take(name)
            .ok_or_else(|| self.bad(format!("missing array '{name}'")))
    }

    /// `(n, H, W, C, k)` of `values`, every dimension but `n` at least 1.
    fn values_shape(&self, values: &NpyArray) -> Result<[usize; 5]> {
        let Ok(dims) = <[usize; 5]>::try_from(values.shape.as_slice()) else {
            return Err(self.bad(format!(
                "'values' must have 5 dimensions, has shape {:?}",
                values.shape
            )));
        };
        if dims[1..].contains(&0) {
            // Without this, a zero-size 'values' could claim 2^62 images at no cost in bytes.
            return Err(self.bad(format!(
                "'values' has shape {:?}: every dimension but the first must be at least 1",
                values.shape
            )));
        }
        Ok(dims)
    }

    fn check_shape(&self, a: &NpyArray, name: &str, want: &[usize]) -> Result<()> {
        if a.shape == want {
            return Ok(());
        }
        Err(self.bad(format!(
            "'{name}' has shape {:?}, expected {want:?}",
            a.shape
        )))
    }

    /// A float array of shape `want`, as f64.
    fn floats(&self, a: NpyArray, name: &str, want: &[usize]) -> Result<Vec<f64>> {
        self.check_shape(&a, name, want)?;
        match a.data {
            NpyData::F64(v) => Ok(v),
            NpyData::F32(v) => Ok(v.into_iter().map(f64::from).collect()),
            _ => Err(self.bad(format!("'{name}' must be a float array"))),
        }
    }

    /// A non-negative int64 array of shape `want`.
    fn ints(&self, a: NpyArray, name: &str, want: &[usize]) -> Result<Vec<usize>> {
        self.check_shape(&a, name, want)?;
        match a.data {
            NpyData::I64(v) => v
                .into_iter()
                .map(|x| {
                    usize::try_from(x).map_err(|_| self.bad(format!("negative entry in '{name}'")))
                })
                .collect(),
            _ => Err(self.bad(format!("'{name}' must be an int64 array"))),
        }
    }

    /// `(n, k)` base values; shap's export may give one per image, `(n,)`.
    fn base_values(&mut self, n: usize, k: usize) -> Result<Vec<f64>> {
        match self.need("base_values")? {
            a if a.shape == [n] => Ok(self
                .floats(a, "base_values", &[n])?
                .into_iter()
                .flat_map(|b| std::iter::repeat_n(b, k))
                .collect()),
            a => self.floats(a, "base_values", &[n, k]),
        }
    }

    /// Refuse NaN and infinities in a result array (a comparison alone would let NaN pass).
    fn finite(&self, name: &str, v: &[f64]) -> Result<()> {
        match v.iter().position(|x| !x.is_finite()) {
            Some(i) => Err(self.bad(format!(
                "'{name}' entry {i} is {}: an explanation holds finite numbers only",
                v[i]
            ))),
            None => Ok(()),
        }
    }

    /// The explained images, `(n, H, W, C)`, as f32.
    fn data(&mut self, want: &[usize]) -> Result<Vec<f32>> {
        let a = self.need("data")?;
        if a.shape != want {
            return Err(self.bad(format!("'data' has shape {:?}, expected {want:?}", a.shape)));
        }
        match a.data {
            NpyData::F32(v) => Ok(v),
            NpyData::F64(v) => Ok(v.into_iter().map(|x| x as f32).collect()),
            _ => Err(self.bad("'data' must be a float array".into())),
        }
    }

    /// `(n, k)` names; shap's export gives one list of `k` for every row; none: the indices.
    fn output_names(
        &mut self,
        n: usize,
        k: usize,
        output_indices: &[usize],
    ) -> Result<Vec<Vec<String>>> {
        match self.take("output_names") {
            Some(NpyArray {
                shape,
                data: NpyData::Str(v),
            }) if shape == [n, k] => Ok(v.chunks(k.max(1)).map(|r| r.to_vec()).collect()),
            Some(NpyArray {
                shape,
                data: NpyData::Str(v),
            }) if shape == [k] => Ok(vec![v; n]),
            Some(_) => {
                Err(self.bad("'output_names' must be an (n, k) or (k,) string array".into()))
            }
            None => Ok(output_indices
                .chunks(k.max(1))
                .take(n)
                .map(|row| row.iter().map(|x| x.to_string()).collect())
                .collect()),
        }
    }

    /// `permutation` when the file says so, else `partition`.
    fn algorithm(&mut self) -> Algorithm {
        match self.take("algorithm") {
            Some(NpyArray {
                data: NpyData::Str(v),
                ..
            }) if v.first().is_some_and(|s| s == "permutation") => Algorithm::Permutation,
            _ => Algorithm::Partition,
        }
    }

    /// The timing `stats` when present and plausible, else zeros.
    fn stats(&mut self) -> RunStats {
        match self.take("stats") {
            Some(NpyArray {
                data: NpyData::F64(v),
                ..
            }) if v.len() == 5 && v.iter().all(|x| x.is_finite() && *x >= 0.0 && *x < 1e12) => {
                RunStats {
                    wall_time: Duration::from_secs_f64(v[0]),
                    image_time: Duration::from_secs_f64(v[1]),
                    model_time: Duration::from_secs_f64(v[2]),
                    model_rows: v[3] as usize,
                    model_calls: v[4] as usize,
                }
            }
            _ => RunStats::default(),
        }
    }
}

/// `f(x) = base + sum of the values` per image and output (the efficiency identity), for
/// files that do not store it.
fn fx_from_values(values: &[f64], base: &[f64], n: usize, k: usize) -> Vec<f64> {
    let m = values.len().checked_div(n * k).unwrap_or(0);
    let mut fx = base.to_vec();
    for i in 0..n {
        for f in 0..m {
            for o in 0..k {
                fx[i * k + o] += values[(i * m + f) * k + o];
            }
        }
    }
    fx
}

/// Read the per-image arrays written by `info_entries` (all optional; an array present with
/// the wrong shape or type is an error).
fn read_infos(
    take: &mut dyn FnMut(&str) -> Option<NpyArray>,
    n: usize,
) -> std::result::Result<Vec<ImageInfo>, String> {
    let mut ints = |name: &str| -> std::result::Result<Option<Vec<Option<usize>>>, String> {
        match take(name) {
            None => Ok(None),
            Some(NpyArray {
                shape,
                data: NpyData::I64(v),
            }) if shape == [n] => Ok(Some(
                v.into_iter().map(|x| usize::try_from(x).ok()).collect(),
            )),
            Some(_) => Err(format!("'{name}' must be an int64 array of {n}")),
        }
    };
    let (index, label, predicted) = (ints("index")?, ints("true_label")?, ints("predicted")?);
    let mut strs = |name: &str| -> std::result::Result<Option<Vec<String>>, String> {
        match take(name) {
            None => Ok(None),
            Some(NpyArray {
                shape,
                data: NpyData::Str(v),
            }) if shape == [n] => Ok(Some(v)),
            Some(_) => Err(format!("'{name}' must be a string array of {n}")),
        }
    };
    let (source, title) = (strs("source")?, strs("title")?);
    let (true_name, predicted_name) = (strs("true_name")?, strs("predicted_name")?);
    let probability = match take("probability") {
        None => None,
        Some(NpyArray {
            shape,
            data: NpyData::F64(v),
        }) if shape == [n] => Some(v),
        Some(_) => return Err(format!("'probability' must be a float64 array of {n}")),
    };
    if [&index, &label, &predicted].iter().all(|v| v.is_none()) && source.is_none() {
        return Ok(Vec::new());
    }
    let at =
        |v: &Option<Vec<String>>, i: usize| v.as_ref().map(|v| v[i].clone()).unwrap_or_default();
    let int = |v: &Option<Vec<Option<usize>>>, i: usize| v.as_ref().and_then(|v| v[i]);
    Ok((0..n)
        .map(|i| ImageInfo {
            index: int(&index, i),
            source: at(&source, i),
            label: int(&label, i).map(|index| Class {
                index,
                name: at(&true_name, i),
            }),
            predicted: int(&predicted, i).map(|index| Prediction {
                class: Class {
                    index,
                    name: at(&predicted_name, i),
                },
                score: probability.as_ref().map_or(f64::NAN, |v| v[i]),
            }),
            title: at(&title, i),
        })
        .collect())
}

/// Read `setting_names` / `setting_values` (both or neither, of one length).
fn read_settings(
    take: &mut dyn FnMut(&str) -> Option<NpyArray>,
) -> std::result::Result<Settings, String> {
    match (take("setting_names"), take("setting_values")) {
        (None, None) => Ok(Settings::new()),
        (
            Some(NpyArray {
                data: NpyData::Str(names),
                ..
            }),
            Some(NpyArray {
                data: NpyData::Str(values),
                ..
            }),
        ) if names.len() == values.len() => Ok(names.into_iter().zip(values).collect()),
        _ => Err("'setting_names' and 'setting_values' must be string arrays of one length".into()),
    }
}

/// One explained image in an [`ExplanationSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Index in its dataset, if it came from one.
    pub index: Option<usize>,
    /// Where it came from (`test[12]`, a file name; empty when unknown).
    pub source: String,
    /// True class, when known.
    pub true_label: Option<usize>,
    /// Its name.
    pub true_name: Option<String>,
    /// The predicted class, when known.
    pub predicted: Option<usize>,
    /// Its name.
    pub predicted_name: Option<String>,
    /// The model's score for the predicted class (a probability when the outputs are).
    pub probability: Option<f64>,
    /// Explained output indices.
    pub classes: Vec<usize>,
    /// Their names.
    pub class_names: Vec<String>,
    /// Base values (f of the fully hidden image) of the explained outputs.
    pub base_values: Vec<f64>,
    /// f(x) for the explained outputs.
    pub fx: Vec<f64>,
    /// Model evaluations.
    pub evals: usize,
    /// Efficiency error `max_o |sum values + base - f(x)|`.
    pub efficiency_error: f64,
    /// Seconds spent on this image; `None` when the explanation was read from a file (timings
    /// are not saved there).
    pub seconds: Option<f64>,
    /// Its title in a figure (empty when none).
    pub title: String,
}

/// The one JSON summary of an explanation (no per-pixel values), written by
/// [`Explanation::save_json`] and `shap-cli explain --json`, read back by `cargo xtask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationSummary {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Image shape `[H, W, C]`.
    pub shape: [usize; 3],
    /// Outputs explained per image.
    pub num_outputs: usize,
    /// The run's settings ([`Explanation::settings`]). In the JSON, a value that is the
    /// canonical text of a number or a boolean is written as that number or boolean
    /// (`"seed": 42`, `"shap_compat": false`); reading accepts either.
    #[serde(with = "typed_settings")]
    pub settings: std::collections::BTreeMap<String, String>,
    /// Total wall time of the explanation, seconds (`None` when not measured in this run:
    /// read from a file, or resumed from saved chunks).
    pub total_seconds: Option<f64>,
    /// Time inside the model (summed over images), seconds; `None` as `total_seconds`.
    pub model_seconds: Option<f64>,
    /// Model rows evaluated; `None` as `total_seconds`.
    pub model_rows: Option<usize>,
    /// Model calls; `None` as `total_seconds`.
    pub model_calls: Option<usize>,
    /// Per-image details.
    pub images: Vec<ImageSummary>,
}

impl ExplanationSummary {
    /// Append the images of `next` (a later part of the same run) and add its timings and
    /// counts; a total is unknown (`None`) when either part's is.
    pub fn append(&mut self, next: ExplanationSummary) {
        fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            a.zip(b).map(|(a, b)| a + b)
        }
        self.images.extend(next.images);
        self.total_seconds = add(self.total_seconds, next.total_seconds);
        self.model_seconds = add(self.model_seconds, next.model_seconds);
        self.model_rows = add(self.model_rows, next.model_rows);
        self.model_calls = add(self.model_calls, next.model_calls);
    }

    /// Write as pretty JSON (atomically, through [`shap_io::write_bytes`]).
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self).map_err(|e| ExplainError::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(shap_io::write_bytes(path, text.as_bytes())?)
    }
}

/// The settings map in JSON with typed scalars ([`ExplanationSummary::settings`]).
mod typed_settings {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    /// `text` as the JSON scalar whose canonical text it is, else as a string.
    pub(super) fn typed(text: &str) -> Value {
        let number = text
            .parse::<i64>()
            .ok()
            .map(Value::from)
            .or_else(|| text.parse::<u64>().ok().map(Value::from))
            .or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            });
        // A number only when JSON writes it back as exactly `text` (so "0123" stays text).
        let canonical = number.filter(|n| {
            let written = n.to_string();
            written == text
        });
        match (text, canonical) {
            ("true", _) => Value::Bool(true),
            ("false", _) => Value::Bool(false),
            (_, Some(n)) => n,
            _ => Value::String(text.to_string()),
        }
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<String, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let typed: BTreeMap<&str, Value> =
            map.iter().map(|(k, v)| (k.as_str(), typed(v))).collect();
        typed.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let raw = BTreeMap::<String, Value>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Bool(_) | Value::Number(_) => Ok((k, v.to_string())),
                other => Err(serde::de::Error::custom(format!(
                    "setting {k}: expected a string, number or boolean, found {other}"
                ))),
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn canonical_numbers_and_booleans_are_typed_and_round_trip() {
            for (text, json) in [
                ("42", "42"),
                ("18446744073709551615", "18446744073709551615"),
                ("-3", "-3"),
                ("0.35", "0.35"),
                ("true", "true"),
                ("false", "false"),
                ("0123", "\"0123\""),
                ("0..40", "\"0..40\""),
                ("blur(28,28)", "\"blur(28,28)\""),
                ("1e3", "\"1e3\""),
                ("NaN", "\"NaN\""),
                ("", "\"\""),
            ] {
                let v = typed(text);
                assert_eq!(v.to_string(), json, "{text}");
                let back = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                assert_eq!(back, text);
            }
        }
    }
}
