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

/// Run the explanation on a thread of its own while this (Python's main) thread waits with
/// the GIL released, waking every 50 ms to let Python handle signals: Ctrl-C cancels the run at
/// the next model call and raises `KeyboardInterrupt`. A failure becomes the Python exception
/// the model raised, if it raised one.
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
    let cancel = AtomicBool::new(false);
    let model = Cancellable {
        model,
        cancel: &cancel,
    };
    let mut interrupt = None;
    let result = std::thread::scope(|scope| {
        let work = scope
            .spawn(|| explainer.explain_with_progress(&model, images, shape, &masker, &progress));
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
        Err(_) => Err(PyRuntimeError::new_err("the explanation panicked")),
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

/// The cores the explainers' thread pool uses (one thread each), shared with onnxruntime.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(explain_callable, m)?)?;
    m.add_function(wrap_pyfunction!(explain_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
