//! The onnxruntime engine, through the `ort` crate with the library loaded at run time
//! ([`crate::runtime`]).
//!
//! `Session::run` needs exclusive access, so the classifier holds one session per concurrent
//! caller: with several explained images at once, `sessions` sessions of one intra-op thread
//! each run side by side (rayon thread `i` uses session `i % sessions`); with a single image
//! (or shap-compatible runs, which go one image at a time) one session uses all the threads
//! inside each call. [`OrtThreads::for_work`] picks between the two.

use std::sync::Mutex;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use shap_explain::{BatchModel, ImageShape, InputLayout, ModelError, Normalize};

use crate::prep::Prep;
use crate::{Cause, DEFAULT_MAX_ROWS, ORT_CPU_ROWS, OnnxError, OnnxFile};

/// Where onnxruntime runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrtDevice {
    /// The CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on this GPU (a GPU build of the library, and this crate's
    /// `cuda` feature).
    Cuda(u32),
}

/// How the threads are shared out: `sessions` sessions of `intra` threads each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrtThreads {
    /// Sessions, one per concurrent model call.
    pub sessions: usize,
    /// onnxruntime's intra-op threads per session.
    pub intra: usize,
}

impl OrtThreads {
    /// `threads` threads in all for `concurrent` simultaneous model calls: as many sessions
    /// as calls (at most `threads`), the threads shared out between them.
    pub fn for_work(threads: usize, concurrent: usize) -> Self {
        let threads = threads.max(1);
        let sessions = concurrent.clamp(1, threads);
        Self {
            sessions,
            intra: threads / sessions,
        }
    }
}

/// An ONNX image classifier run by onnxruntime, as a [`BatchModel`]; see the module docs.
pub struct OrtClassifier {
    sessions: Vec<Mutex<Session>>,
    input: String,
    prep: Prep,
    fixed_batch: Option<usize>,
    max_rows: usize,
    threads: OrtThreads,
}

impl OrtClassifier {
    /// Build sessions for a checked model file. The library must be loaded first
    /// ([`crate::runtime::load`]).
    pub fn new(
        file: &OnnxFile,
        layout: Option<InputLayout>,
        threads: OrtThreads,
        device: OrtDevice,
    ) -> Result<Self, OnnxError> {
        let Some(env) = crate::runtime::environment() else {
            return Err(OnnxError::Runtime {
                path: None,
                source: "the onnxruntime library is not loaded".into(),
            });
        };
        let g = file.geometry(layout)?;
        let mut sessions = Vec::with_capacity(threads.sessions);
        for _ in 0..threads.sessions.max(1) {
            sessions.push(Mutex::new(session(env, file, threads.intra, device)?));
        }
        let mut c = Self {
            sessions,
            input: g.name,
            prep: Prep::new(g.shape, g.layout),
            fixed_batch: g.fixed_batch,
            max_rows: g.fixed_batch.unwrap_or(match device {
                OrtDevice::Cpu => ORT_CPU_ROWS,
                OrtDevice::Cuda(_) => DEFAULT_MAX_ROWS,
            }),
            threads,
        };
        c.prep.k = c.probe(file)?;
        crate::check_rows_independent(&c, c.prep.shape, file.path())?;
        Ok(c)
    }

    /// Run one blank image and check that the output is `(rows, K)`: returns `K`.
    fn probe(&self, file: &OnnxFile) -> Result<usize, OnnxError> {
        let rows = self.fixed_batch.unwrap_or(1);
        let x = crate::zeros(self.prep.shape.features(), file.path())?;
        let (dims, _) = self.run(&x, 1, 0).map_err(OnnxError::Run)?;
        match dims.as_slice() {
            [b, k] if *b == rows && *k > 0 => Ok(*k),
            _ => Err(OnnxError::Output {
                path: file.path().to_path_buf(),
                shape: format!("{dims:?}"),
                n: rows,
            }),
        }
    }

    /// Normalise the masked images with `norm` before the model sees them.
    pub fn with_normalize(mut self, norm: Normalize) -> Result<Self, OnnxError> {
        self.prep.set_normalize(norm)?;
        Ok(self)
    }

    /// Apply a softmax to the model's outputs (default: explain them as returned).
    pub fn with_softmax(mut self, softmax: bool) -> Self {
        self.prep.softmax = softmax;
        self
    }

    /// At most this many images per call (default [`ORT_CPU_ROWS`] on the CPU,
    /// [`DEFAULT_MAX_ROWS`] on a GPU; a model with a fixed batch size always runs at that size).
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        if self.fixed_batch.is_none() {
            self.max_rows = rows.max(1);
        }
        self
    }

    /// The images the model takes, in (H, W, C) terms.
    pub fn image_shape(&self) -> ImageShape {
        self.prep.shape
    }

    /// The input layout in use.
    pub fn layout(&self) -> InputLayout {
        self.prep.layout
    }

    /// How the threads are shared out.
    pub fn threads(&self) -> OrtThreads {
        self.threads
    }

    /// Run `n` images on session `s % sessions`: the output's dims and values.
    fn run(&self, images: &[f32], n: usize, s: usize) -> Result<(Vec<usize>, Vec<f32>), Cause> {
        let rows = self.fixed_batch.unwrap_or(n);
        let data = self.prep.input(images, rows);
        let input = TensorRef::from_array_view((self.prep.dims(rows), &data[..]))?;
        let mut session = self.sessions[s % self.sessions.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs![self.input.as_str() => input])?;
        if outputs.len() == 0 {
            return Err("the model returned no output".into());
        }
        let (shape, y) = outputs[0].try_extract_tensor::<f32>()?;
        let dims = shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .collect();
        Ok((dims, y.to_vec()))
    }

    /// Evaluate at most `max_rows` images into `out` (`n * K`).
    fn eval_chunk(&self, images: &[f32], n: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let s = rayon::current_thread_index().unwrap_or(0);
        let (dims, y) = self.run(images, n, s).map_err(ModelError::Backend)?;
        let rows = dims.first().copied().unwrap_or(0);
        self.prep.output(&y, rows, out)
    }
}

/// One onnxruntime session over `file` with `intra` threads on `device`.
fn session(
    env: &ort::environment::Environment,
    file: &OnnxFile,
    intra: usize,
    device: OrtDevice,
) -> Result<Session, OnnxError> {
    let fail = |source: Cause| OnnxError::Prepare {
        path: file.path().to_path_buf(),
        source,
    };
    let text = |e: &dyn std::fmt::Display| fail(e.to_string().into());
    let b = Session::builder(env).map_err(|e| text(&e))?;
    let b = b
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| text(&e))?;
    let b = b.with_intra_threads(intra.max(1)).map_err(|e| text(&e))?;
    let b = b.with_inter_threads(1).map_err(|e| text(&e))?;
    let mut b = with_device(b, device).map_err(&fail)?;
    // onnxruntime reads the file (and its external data, from the locations checked when
    // the file was opened) itself; a model given as bytes is handed over from memory.
    let s = match file.bytes() {
        Some(bytes) if !file.has_external_data() => b.commit_from_memory(bytes),
        _ => b.commit_from_file(file.path()),
    };
    s.map_err(|e| text(&e))
}

#[cfg(feature = "cuda")]
fn with_device(
    b: ort::session::builder::SessionBuilder,
    device: OrtDevice,
) -> Result<ort::session::builder::SessionBuilder, Cause> {
    use ort::ep::ExecutionProvider;
    match device {
        OrtDevice::Cpu => Ok(b),
        OrtDevice::Cuda(id) => {
            let cuda = ort::ep::CUDA::default().with_device_id(i32::try_from(id)?);
            if !ort::ep::CUDA::is_available()? {
                return Err(
                    "this onnxruntime library has no CUDA execution provider: install \
                            onnxruntime-gpu and point --onnxruntime at its library"
                        .into(),
                );
            }
            b.with_execution_providers([cuda.build().error_on_failure()])
                .map_err(|e| e.to_string().into())
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn with_device(
    b: ort::session::builder::SessionBuilder,
    device: OrtDevice,
) -> Result<ort::session::builder::SessionBuilder, Cause> {
    match device {
        OrtDevice::Cpu => Ok(b),
        OrtDevice::Cuda(_) => Err("this build has no CUDA support for onnxruntime: rebuild \
                                   with the `cuda` feature"
            .into()),
    }
}

impl BatchModel for OrtClassifier {
    fn num_outputs(&self) -> usize {
        self.prep.k
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let k = self.prep.k;
        ModelError::check_batch(self.prep.shape, k, shape, n, images.len(), out.len())?;
        self.prep.in_calls(images, out, self.max_rows, |x, n, o| {
            self.eval_chunk(x, n, o)
        })
    }

    fn batch_rows(&self) -> Option<usize> {
        Some(self.max_rows)
    }
}
