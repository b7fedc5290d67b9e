//! `shap_toolkit._core`: the Rust side of the Python package. The Python layer
//! (`python/shap_toolkit`) turns NumPy arrays into flat little-endian buffers and back, checks
//! what a user's callable returns, and builds the `shap.Explanation`; this module runs the
//! explainers on them:
//!
//! - `explain_callable`: the model is a Python function, called from Rust with masked images
//!   gathered across the images explained together (`rows` at a time). Its errors come back as
//!   the very Python exception it raised, traceback included.
//! - `explain_file`: the model is an ONNX file or a tutorial checkpoint, loaded by shap-run's
//!   policy (onnxruntime when found, else tract; the tutorial CNN's own kernels) and run with no
//!   Python in the loop.
//!
//! - `score_callable` / `score_file`: score an explanation with either kind of model, by the
//!   deletion/insertion curves, MuFidelity or ROAD (docs/faithfulness.md, docs/metrics.md), and
//!   return the report as the CLI's `--json` writes it.
//!
//! Either way the explanation runs on its own threads while Python's main thread waits with the
//! GIL released and handles signals every 50 ms: Ctrl-C stops the run at the next model call.
//!
//! Settings are shap's words: `algorithm`, `max_evals`, `batch_size` (Partition's masks per
//! step, as shap's call argument), `outputs`, `seed`, and `compat="shap"` for shap 0.51's numbers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shap_explain::{
    BatchModel, Compat, Explainer, ExplainerConfig, Explanation, ImageShape, Method, ModelError,
    OutputSelection, PartitionSettings, Progress,
};
use shap_mask::MaskerSpec;

/// The settings of one call: the dict the Python layer passes to both entry points.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Settings {
    algorithm: String,
    masker: String,
    max_evals: Option<usize>,
    batch_size: Option<usize>,
    outputs_kind: String,
    top_k: Option<usize>,
    indices: Option<Vec<usize>>,
    output_names: Option<Vec<String>>,
    seed: u64,
    compat: String,
}

impl Settings {
    /// The checked explainer and its masker.
    fn explainer(&self) -> PyResult<(Explainer, shap_mask::Masker)> {
        let method = match self.algorithm.as_str() {
            "partition" => Method::Partition(PartitionSettings {
                batch_size: self.batch_size.unwrap_or(10),
                ..PartitionSettings::default()
            }),
            "permutation" => Method::new(shap_explain::Algorithm::Permutation),
            other => {
                return Err(PyValueError::new_err(format!(
                    "algorithm {other:?}: expected \"partition\" or \"permutation\""
                )));
            }
        };
        let method = self.max_evals.map_or(method, |n| method.max_evals(n));
        let compat = match self.compat.as_str() {
            "default" => Compat::Default,
            "shap" => Compat::Shap,
            other => {
                return Err(PyValueError::new_err(format!(
                    "compat {other:?}: expected \"default\" or \"shap\""
                )));
            }
        };
        let spec: MaskerSpec = self
            .masker
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        let explainer = ExplainerConfig {
            compat,
            seed: self.seed,
            outputs: outputs(&self.outputs_kind, self.top_k, self.indices.clone())?,
            output_names: self.output_names.clone(),
            ..ExplainerConfig::with_method(method)
        }
        .check()
        .map_err(|e| PyValueError::new_err(chain(&e)))?;
        let masker = explainer.masker(spec);
        Ok((explainer, masker))
    }
}

/// `outputs` as the Python layer spells it: `("all", None)`, `("top", k)` or
/// `("indices", [i, j])`.
fn outputs(
    kind: &str,
    top: Option<usize>,
    indices: Option<Vec<usize>>,
) -> PyResult<OutputSelection> {
    match (kind, top, indices) {
        ("all", _, _) => Ok(OutputSelection::All),
        ("top", Some(k), _) => Ok(OutputSelection::TopK(k)),
        ("indices", _, Some(v)) => Ok(OutputSelection::Indices(v)),
        _ => Err(PyValueError::new_err(
            "outputs: expected None (all), an int k (the top k) or a list of output indices",
        )),
    }
}

/// A Python function as a model: `call(images: bytes, n: int) -> bytes` (the Python layer's
/// adapter around the user's `f(np.ndarray[N,H,W,C]) -> np.ndarray[N,K]`).
struct PyModel {
    call: Py<PyAny>,
    outputs: usize,
    rows: usize,
    /// The first Python exception raised, re-raised as it was when the run ends.
    error: Mutex<Option<PyErr>>,
}

/// A failure of the Python side, kept in [`PyModel::error`]; this is only its description.
#[derive(Debug, thiserror::Error)]
#[error("the Python model raised {0}")]
struct Raised(String);

impl PyModel {
    fn keep(&self, e: PyErr) -> ModelError {
        let what = e.to_string();
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        ModelError::backend(Raised(what))
    }
}

impl BatchModel for PyModel {
    fn num_outputs(&self) -> usize {
        self.outputs
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        _shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        Python::attach(|py| {
            let bytes: Vec<u8> = images.iter().flat_map(|v| v.to_le_bytes()).collect();
            let result = self
                .call
                .call1(py, (PyBytes::new(py, &bytes), n))
                .and_then(|r| r.extract::<Vec<u8>>(py))
                .map_err(|e| self.keep(e))?;
            if result.len() != out.len() * 4 {
                return Err(ModelError::Shape(format!(
                    "the model returned {} values for {n} images of {} outputs",
                    result.len() / 4,
                    self.outputs
                )));
            }
            for (o, b) in out.iter_mut().zip(result.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            Ok(())
        })
    }

    fn batch_rows(&self) -> Option<usize> {
        Some(self.rows)
    }
}

/// A model that stops when the run is cancelled (Ctrl-C): every call checks the flag first.
struct Cancellable<'a, M: ?Sized> {
    model: &'a M,
    cancel: &'a AtomicBool,
}

impl<M: BatchModel + ?Sized> Cancellable<'_, M> {
    fn check(&self) -> Result<(), ModelError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(ModelError::backend(Raised("KeyboardInterrupt".into())));
        }
        Ok(())
    }
}

impl<M: BatchModel + ?Sized> BatchModel for Cancellable<'_, M> {
    fn num_outputs(&self) -> usize {
        self.model.num_outputs()
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        self.check()?;
        self.model.eval_batch(images, n, shape, out)
    }

    fn eval_masked(
        &self,
        batch: shap_explain::MaskedBatch<'_>,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        self.check()?;
        self.model.eval_masked(batch, out)
    }

    fn batch_rows(&self) -> Option<usize> {
        self.model.batch_rows()
    }
}

/// Progress to a Python callable `progress(images_done: int)`, or nowhere.
struct PyProgress(Option<Py<PyAny>>);

impl Progress for PyProgress {
    fn image_done(&self, _image: usize, _evals: usize) {
        if let Some(cb) = &self.0 {
            // A failing progress callback must not stop the explanation.
            Python::attach(|py| {
                let _ = cb.call1(py, (1,));
            });
        }
    }
}

/// An error and its causes on one line (`outer: inner`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Flat little-endian f32 bytes as values.
fn floats(bytes: &[u8]) -> PyResult<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(PyValueError::new_err("the image buffer is not float32"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The explanation as a dict of plain values and little-endian buffers, for the Python layer.
fn to_dict<'py>(py: Python<'py>, e: &Explanation) -> PyResult<Bound<'py, PyDict>> {
    let f64s = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let d = PyDict::new(py);
    d.set_item("values", PyBytes::new(py, &f64s(&e.values)))?;
    d.set_item("base_values", PyBytes::new(py, &f64s(&e.base_values)))?;
    d.set_item("fx", PyBytes::new(py, &f64s(&e.fx)))?;
    d.set_item("num_images", e.num_images)?;
    d.set_item("num_outputs", e.num_outputs)?;
    d.set_item("output_indices", e.output_indices.clone())?;
    d.set_item("output_names", e.output_names.clone())?;
    d.set_item("evals", e.evals.clone())?;
    d.set_item("efficiency_errors", e.efficiency_errors.clone())?;
    d.set_item("algorithm", e.algorithm.name())?;
    Ok(d)
}

/// Run the explanation (see [`cancellable`]).
fn run<M: BatchModel + ?Sized>(
    py: Python<'_>,
    model: &M,
    images: &[f32],
    shape: ImageShape,
    settings: &Settings,
    progress: PyProgress,
    raised: impl Fn() -> Option<PyErr>,
) -> PyResult<Explanation> {
    let (explainer, masker) = settings.explainer()?;
    cancellable(py, model, raised, |model| {
        explainer.explain_with_progress(model, images, shape, &masker, &progress)
    })
}

/// Run `work` on `model` on a thread of its own while this (Python's main) thread waits with
/// the GIL released, waking every 50 ms to let Python handle signals: Ctrl-C cancels the run at
/// the next model call and raises `KeyboardInterrupt`. A failure becomes the Python exception
/// the model raised, if it raised one.
fn cancellable<M, T, E>(
    py: Python<'_>,
    model: &M,
    raised: impl Fn() -> Option<PyErr>,
    work: impl FnOnce(&Cancellable<'_, M>) -> Result<T, E> + Send,
) -> PyResult<T>
where
    M: BatchModel + ?Sized,
    T: Send,
    E: std::error::Error + Send,
{
    let cancel = AtomicBool::new(false);
    let model = Cancellable {
        model,
        cancel: &cancel,
    };
    let mut interrupt = None;
    let result = std::thread::scope(|scope| {
        let work = scope.spawn(|| work(&model));
        while !work.is_finished() {
            py.detach(|| std::thread::sleep(std::time::Duration::from_millis(50)));
            if let Err(e) = py.check_signals() {
                cancel.store(true, Ordering::Relaxed);
                interrupt.get_or_insert(e);
            }
        }
        work.join()
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    match result {
        Ok(Ok(e)) => Ok(e),
        Ok(Err(e)) => Err(raised().unwrap_or_else(|| PyRuntimeError::new_err(chain(&e)))),
        Err(_) => Err(PyRuntimeError::new_err("the run panicked")),
    }
}

/// Explain `images` (`n` images of `shape` (H, W, C), float32 bytes) with a Python callable
/// `call(images: bytes, n: int) -> bytes` giving `num_outputs` float32 outputs per image.
#[pyfunction]
#[pyo3(signature = (call, num_outputs, images, shape, settings, rows, progress))]
#[allow(clippy::too_many_arguments)]
fn explain_callable<'py>(
    py: Python<'py>,
    call: Py<PyAny>,
    num_outputs: usize,
    images: &Bound<'py, PyBytes>,
    shape: (usize, usize, usize),
    settings: Settings,
    rows: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let model = PyModel {
        call,
        outputs: num_outputs,
        rows: rows.max(1),
        error: Mutex::new(None),
    };
    let pixels = floats(images.as_bytes())?;
    let shape = ImageShape::new(shape.0, shape.1, shape.2);
    let raised = || model.error.lock().ok().and_then(|mut e| e.take());
    let e = run(
        py,
        &model,
        &pixels,
        shape,
        &settings,
        PyProgress(progress),
        raised,
    )?;
    to_dict(py, &e)
}

/// Explain `images` with a model file (`.onnx` or a `.safetensors` tutorial checkpoint),
/// loaded and run by the Rust engines. Returns the explanation and the engine that ran it.
#[pyfunction]
#[pyo3(signature = (path, images, shape, settings, onnxruntime, progress))]
fn explain_file<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    images: &Bound<'py, PyBytes>,
    shape: (usize, usize, usize),
    settings: Settings,
    onnxruntime: Option<std::path::PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let pixels = floats(images.as_bytes())?;
    let shape = ImageShape::new(shape.0, shape.1, shape.2);
    let options = shap_run::Options {
        library: onnxruntime,
        threads: cores(),
        concurrent: if settings.compat == "shap" {
            1
        } else {
            pixels.len() / shape.features().max(1)
        },
        // As `shap-cli explain`: the full network for inpainted images.
        inpainting: settings
            .masker
            .parse::<MaskerSpec>()
            .is_ok_and(|m| m.is_inpaint()),
        ..shap_run::Options::default()
    };
    let net = py
        .detach(|| shap_run::Network::load(&path, &options, &shap_run::Silent))
        .map_err(|e| PyValueError::new_err(chain(&e)))?;
    if net.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "{} takes {} images; got images of {shape}",
            path.display(),
            net.shape()
        )));
    }
    let e = run(
        py,
        net.model(),
        &pixels,
        shape,
        &settings,
        PyProgress(progress),
        || None,
    )?;
    let d = to_dict(py, &e)?;
    d.set_item("engine", net.engine())?;
    d.set_item("model_outputs", net.model().num_outputs())?;
    Ok(d)
}

/// An explanation to score, as the Python layer passes it: arrays as little-endian bytes
/// (values `(n, H, W, C, k)` and base values and f(x) `(n, k)` as float64, images as float32),
/// with the scoring settings.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Scored {
    values: Py<PyBytes>,
    base_values: Py<PyBytes>,
    fx: Py<PyBytes>,
    data: Py<PyBytes>,
    shape: (usize, usize, usize),
    output_indices: Vec<usize>,
    output_names: Vec<String>,
    masker: String,
    metric: String,
    target: String,
    seed: u64,
}

/// A report of one of the scores, written as the CLI's `--json` writes it.
enum Report {
    Faithfulness(shap_explain::FaithfulnessReport),
    MuFidelity(shap_explain::MuFidelityReport),
    Road(shap_explain::RoadReport),
}

impl Scored {
    /// The explanation, its lengths checked against each other.
    fn explanation(&self, py: Python<'_>) -> PyResult<Explanation> {
        let shape = ImageShape::new(self.shape.0, self.shape.1, self.shape.2);
        let data = floats(self.data.as_bytes(py))?;
        let n = data.len() / shape.features().max(1);
        let k = self.output_indices.len() / n.max(1);
        let values = doubles(self.values.as_bytes(py))?;
        let base_values = doubles(self.base_values.as_bytes(py))?;
        let fx = doubles(self.fx.as_bytes(py))?;
        let fits = n > 0
            && k > 0
            && data.len() == n * shape.features()
            && values.len() == data.len() * k
            && [base_values.len(), fx.len(), self.output_indices.len()] == [n * k; 3]
            && self.output_names.len() == n * k;
        if !fits {
            return Err(PyValueError::new_err(format!(
                "the explanation's arrays disagree: {} values, {} base values, {} f(x), {} output \
                 indices and {} names for {n} images of {shape}",
                values.len(),
                base_values.len(),
                fx.len(),
                self.output_indices.len(),
                self.output_names.len()
            )));
        }
        let mut e = Explanation {
            algorithm: shap_explain::Algorithm::Partition,
            shape,
            num_images: n,
            num_outputs: k,
            values,
            base_values,
            output_indices: self.output_indices.clone(),
            output_names: self
                .output_names
                .chunks(k)
                .map(<[String]>::to_vec)
                .collect(),
            data,
            fx,
            std_errors: None,
            evals: vec![0; n],
            efficiency_errors: Vec::new(),
            image_times: Vec::new(),
            stats: shap_explain::RunStats::default(),
            images: Vec::new(),
            settings: shap_explain::Settings::default(),
        };
        e.efficiency_errors = e.compute_efficiency_errors();
        Ok(e)
    }

    /// The checked metric, target and masker.
    fn settings(&self) -> PyResult<(shap_explain::Target, shap_mask::Masker)> {
        if !["faithfulness", "mufidelity", "road"].contains(&self.metric.as_str()) {
            return Err(PyValueError::new_err(format!(
                "metric {:?}: expected \"faithfulness\", \"mufidelity\" or \"road\"",
                self.metric
            )));
        }
        let target = serde_json::from_value(serde_json::Value::from(self.target.as_str()))
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "target {:?}: expected \"predicted\", \"explained\" or \"all\"",
                    self.target
                ))
            })?;
        let spec: MaskerSpec = self
            .masker
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        Ok((
            target,
            shap_mask::Masker::new(spec, Compat::Default.mask_mode()),
        ))
    }

    /// Score `e` with `model` (the metric checked by [`Scored::settings`]).
    fn score<M: BatchModel + ?Sized>(
        &self,
        model: &M,
        e: &Explanation,
        target: shap_explain::Target,
        masker: &shap_mask::Masker,
    ) -> shap_explain::Result<Report> {
        let seed = self.seed;
        Ok(match self.metric.as_str() {
            "mufidelity" => Report::MuFidelity(
                shap_explain::MuFidelity {
                    target,
                    seed,
                    ..Default::default()
                }
                .check()?
                .score(model, e, &PyProgress(None))?,
            ),
            "road" => Report::Road(
                shap_explain::Road {
                    target,
                    seed,
                    ..Default::default()
                }
                .check()?
                .score(model, e, &PyProgress(None))?,
            ),
            _ => Report::Faithfulness(
                shap_explain::Faithfulness {
                    target,
                    seed,
                    ..Default::default()
                }
                .check()?
                .score(model, e, masker)?,
            ),
        })
    }
}

impl Report {
    fn json(&self) -> PyResult<String> {
        let text = match self {
            Self::Faithfulness(r) => serde_json::to_string(r),
            Self::MuFidelity(r) => serde_json::to_string(r),
            Self::Road(r) => serde_json::to_string(r),
        };
        text.map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

/// Flat little-endian f64 bytes as values.
fn doubles(bytes: &[u8]) -> PyResult<Vec<f64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(PyValueError::new_err("a value buffer is not float64"));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect())
}

/// Score an explanation with a Python callable (as [`explain_callable`] calls it); returns
/// the report as JSON text, the schema of `shap-cli faithfulness --json` or `metrics --json`.
#[pyfunction]
#[pyo3(signature = (call, num_outputs, scored, rows))]
fn score_callable(
    py: Python<'_>,
    call: Py<PyAny>,
    num_outputs: usize,
    scored: Scored,
    rows: usize,
) -> PyResult<String> {
    let model = PyModel {
        call,
        outputs: num_outputs,
        rows: rows.max(1),
        error: Mutex::new(None),
    };
    let e = scored.explanation(py)?;
    let (target, masker) = scored.settings()?;
    let raised = || model.error.lock().ok().and_then(|mut e| e.take());
    cancellable(py, &model, raised, |m| scored.score(m, &e, target, &masker))?.json()
}

/// Score an explanation with a model file, run by the Rust engines (as [`explain_file`]).
#[pyfunction]
#[pyo3(signature = (path, scored, onnxruntime))]
fn score_file(
    py: Python<'_>,
    path: std::path::PathBuf,
    scored: Scored,
    onnxruntime: Option<std::path::PathBuf>,
) -> PyResult<String> {
    let e = scored.explanation(py)?;
    let (target, masker) = scored.settings()?;
    let options = shap_run::Options {
        library: onnxruntime,
        threads: cores(),
        concurrent: e.num_images,
        ..shap_run::Options::default()
    };
    let net = py
        .detach(|| shap_run::Network::load(&path, &options, &shap_run::Silent))
        .map_err(|e| PyValueError::new_err(chain(&e)))?;
    cancellable(
        py,
        net.model(),
        || None,
        |m| scored.score(m, &e, target, &masker),
    )?
    .json()
}

/// The cores the explainers' thread pool uses (one thread each), shared with onnxruntime.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(explain_callable, m)?)?;
    m.add_function(wrap_pyfunction!(explain_file, m)?)?;
    m.add_function(wrap_pyfunction!(score_callable, m)?)?;
    m.add_function(wrap_pyfunction!(score_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
