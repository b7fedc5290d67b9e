//! `shap-onnx`: ONNX image classifiers as [`shap_explain::BatchModel`]s, run by
//! [tract](https://github.com/sonos/tract) (pure Rust, its own optimised CPU kernels; no
//! system library and nothing downloaded at build time).
//!
//! [`OnnxClassifier::load`] reads a model with one image input, `(N, C, H, W)` or
//! `(N, H, W, C)`, and one `(N, K)` output. The layout is read from the input shape (the
//! dimension after the batch being 1 or 3 means NCHW, otherwise NHWC) unless given. The batch
//! dimension is made symbolic so that the explainers can send any number of masked images per
//! call; a model whose graph fixes the batch size is run at that size.
//!
//! [`recognize_tutorial`] finds the tutorial CNN's weights in a graph of exactly that network,
//! so that a front end can run it on `shap-model`'s own kernels instead.
//!
//! Masked images arrive in pixel space and (H, W, C) order; the adapter normalises them
//! ([`Normalize`], torchvision style), arranges them in the model's layout, runs the plan and
//! applies a softmax when asked.
//!
//! ```no_run
//! use shap_explain::{ConstantMasker, ExplainerConfig};
//! use shap_onnx::OnnxClassifier;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = OnnxClassifier::load("model.onnx".as_ref(), None)?;
//! let shape = model.image_shape();
//! let image = vec![0.5f32; shape.features()];
//! let explainer = ExplainerConfig::partition().check()?;
//! let e = explainer.explain(&model, &image, shape, &ConstantMasker { value: 0.0 })?;
//! println!("{:?}", e.output_indices);
//! # Ok(()) }
//! ```

mod tutorial;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shap_explain::{BatchModel, ImageShape, InputLayout, ModelError, Normalize};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

/// Default images per call of the model.
pub const DEFAULT_MAX_ROWS: usize = 64;

/// A tract error as a standard error, kept as a cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The largest model file read (protobuf itself stops at 2 GiB).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Why an ONNX model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read (missing, a directory, larger than [`MAX_MODEL_BYTES`]...).
    #[error("cannot read the model")]
    Read(#[source] shap_io::IoError),
    /// The file could not be read or is not a valid ONNX model.
    #[error("{}: not a readable ONNX model", path.display())]
    Parse {
        /// The model file.
        path: PathBuf,
        /// tract's reason.
        #[source]
        source: Cause,
    },
    /// The model does not have exactly one input.
    #[error("{}: the model has {count} inputs; an image classifier has one", path.display())]
    Inputs {
        /// The model file.
        path: PathBuf,
        /// Number of inputs.
        count: usize,
    },
    /// The input is not a batch of images.
    #[error(
        "{}: the input has shape {shape}; expected a batch of images (N, C, H, W) or (N, H, W, C) with 1 or 3 channels",
        path.display()
    )]
    NotImage {
        /// The model file.
        path: PathBuf,
        /// The input shape as the model declares it.
        shape: String,
    },
    /// tract cannot prepare the model (an operator it does not support, a type mismatch...).
    #[error("{}: the model cannot be prepared for running", path.display())]
    Prepare {
        /// The model file.
        path: PathBuf,
        /// tract's reason (names the operator, when one is unsupported).
        #[source]
        source: Cause,
    },
    /// The model's output is not `(N, K)`.
    #[error("{}: the output has shape {shape} for {n} image(s); expected ({n}, K)", path.display())]
    Output {
        /// The model file.
        path: PathBuf,
        /// The output shape.
        shape: String,
        /// Images in the probe.
        n: usize,
    },
    /// A setting does not fit the model (normalisation for another channel count...).
    #[error("invalid setting")]
    Config(#[source] shap_explain::ExplainError),
    /// Running the model failed.
    #[error("running the model failed")]
    Run(#[source] Cause),
}

pub use tutorial::{TutorialWeights, recognize_tutorial};

type Plan = Arc<TypedRunnableModel>;

/// An ONNX image classifier as a [`BatchModel`]; see the crate docs.
pub struct OnnxClassifier {
    plan: Plan,
    shape: ImageShape,
    layout: InputLayout,
    /// `Some(b)` when the graph fixes the batch size to `b`.
    fixed_batch: Option<usize>,
    norm: Normalize,
    softmax: bool,
    max_rows: usize,
    num_outputs: usize,
}

impl OnnxClassifier {
    /// Load `path`; `layout` overrides the layout read from the input shape.
    pub fn load(path: &Path, layout: Option<InputLayout>) -> Result<Self, OnnxError> {
        let bytes = shap_io::read_bounded(path, MAX_MODEL_BYTES, "an ONNX model")
            .map_err(OnnxError::Read)?;
        Self::from_bytes(&bytes, path, layout)
    }

    /// Load a model from its bytes; `path` only names it in errors. tract trusts the graphs
    /// it reads more than a hostile file deserves (a corrupted attribute can make it index
    /// out of bounds): a panic inside it becomes [`OnnxError::Prepare`].
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        layout: Option<InputLayout>,
    ) -> Result<Self, OnnxError> {
        guarded(|| Self::from_bytes_unguarded(bytes, path, layout)).unwrap_or_else(|source| {
            Err(OnnxError::Prepare {
                path: path.to_path_buf(),
                source,
            })
        })
    }

    fn from_bytes_unguarded(
        bytes: &[u8],
        path: &Path,
        layout: Option<InputLayout>,
    ) -> Result<Self, OnnxError> {
        let parse = |source: Cause| OnnxError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|e| parse(e.into()))?;
        let count = model.inputs.len();
        if count != 1 {
            return Err(OnnxError::Inputs {
                path: path.to_path_buf(),
                count,
            });
        }
        let fact = model.input_fact(0).map_err(|e| parse(e.into()))?.clone();
        let (dims, batch) = image_dims(path, &fact)?;
        let layout = layout.unwrap_or(if matches!(dims[0], 1 | 3) {
            InputLayout::Nchw
        } else {
            InputLayout::Nhwc
        });
        let shape = match layout {
            InputLayout::Nchw => ImageShape::new(dims[1], dims[2], dims[0]),
            InputLayout::Nhwc => ImageShape::new(dims[0], dims[1], dims[2]),
        };
        if !matches!(shape.channels, 1 | 3) || shape.features() == 0 {
            return Err(OnnxError::NotImage {
                path: path.to_path_buf(),
                shape: format!("{:?}", fact.shape),
            });
        }
        let (plan, fixed_batch) = prepare(path, model, dims, batch)?;
        let mut c = Self {
            plan,
            shape,
            layout,
            fixed_batch,
            norm: Normalize::identity(shape.channels),
            softmax: false,
            max_rows: fixed_batch.unwrap_or(DEFAULT_MAX_ROWS),
            num_outputs: 0,
        };
        c.num_outputs = c.probe(path)?;
        Ok(c)
    }

    /// Run the model on blank images and check the output: returns `K`.
    fn probe(&self, path: &Path) -> Result<usize, OnnxError> {
        let n = self.fixed_batch.unwrap_or(1);
        let out = self
            .run(&vec![0.0; n * self.shape.features()], n)
            .map_err(OnnxError::Run)?;
        let dims = out.shape().to_vec();
        match dims.as_slice() {
            [b, k] if *b == n && *k > 0 => Ok(*k),
            _ => Err(OnnxError::Output {
                path: path.to_path_buf(),
                shape: format!("{dims:?}"),
                n,
            }),
        }
    }

    /// Normalise the masked images with `norm` before the model sees them.
    pub fn with_normalize(mut self, norm: Normalize) -> Result<Self, OnnxError> {
        norm.check_channels(self.shape.channels)
            .map_err(OnnxError::Config)?;
        self.norm = norm;
        Ok(self)
    }

    /// Apply a softmax to the model's outputs (default: explain them as returned).
    pub fn with_softmax(mut self, softmax: bool) -> Self {
        self.softmax = softmax;
        self
    }

    /// At most this many images per call (default [`DEFAULT_MAX_ROWS`]; a model with a fixed
    /// batch size always runs at that size).
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        if self.fixed_batch.is_none() {
            self.max_rows = rows.max(1);
        }
        self
    }

    /// The images the model takes, in (H, W, C) terms.
    pub fn image_shape(&self) -> ImageShape {
        self.shape
    }

    /// The input layout in use.
    pub fn layout(&self) -> InputLayout {
        self.layout
    }

    /// Run `n` images (pixel space, (H, W, C) order) through normalisation, layout and the
    /// plan; returns the first output.
    fn run(&self, images: &[f32], n: usize) -> Result<Tensor, Cause> {
        let s = self.shape;
        let mut px = images.to_vec();
        self.norm.apply(&mut px);
        let mut data = Vec::with_capacity(px.len());
        self.layout.arrange(&px, s, &mut data);
        let dims: [usize; 4] = match self.layout {
            InputLayout::Nchw => [n, s.channels, s.height, s.width],
            InputLayout::Nhwc => [n, s.height, s.width, s.channels],
        };
        let input = tract_ndarray::Array4::from_shape_vec(dims, data)?;
        let mut out = guarded(|| self.plan.run(tvec!(Tensor::from(input).into())))??;
        if out.is_empty() {
            return Err("the model returned no output".into());
        }
        Ok(out.swap_remove(0).into_tensor())
    }

    /// Evaluate up to `max_rows` images into `out` (`n * K`), padding a fixed batch.
    fn eval_chunk(&self, images: &[f32], n: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let m = self.shape.features();
        let rows = self.fixed_batch.unwrap_or(n);
        let mut padded;
        let x = if rows > n {
            padded = images.to_vec();
            padded.resize(rows * m, 0.0);
            &padded[..]
        } else {
            images
        };
        let y = self.run(x, rows).map_err(ModelError::Backend)?;
        let y = y
            .cast_to::<f32>()
            .map_err(|e| ModelError::Backend(e.into()))?;
        let y = y
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Backend(e.into()))?;
        let k = self.num_outputs;
        if y.len() != rows * k {
            return Err(ModelError::Shape(format!(
                "the model returned {} values for {rows} images of {k} outputs",
                y.len()
            )));
        }
        for (o, v) in out.iter_mut().zip(y.iter()) {
            *o = *v;
        }
        if self.softmax {
            out.chunks_exact_mut(k).for_each(softmax);
        }
        Ok(())
    }
}

/// Run `f`, turning a panic inside it into an error that carries the panic's message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Cause> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("tract failed internally on this model: {what}").into()
    })
}

/// Read the image dimensions after the batch from the input fact, and the batch dimension
/// when the model fixes it.
fn image_dims(path: &Path, fact: &InferenceFact) -> Result<([usize; 3], Option<usize>), OnnxError> {
    let not_image = || OnnxError::NotImage {
        path: path.to_path_buf(),
        shape: format!("{:?}", fact.shape),
    };
    if fact.shape.is_open() || fact.datum_type.concretize() != Some(f32::datum_type()) {
        return Err(not_image());
    }
    let dims: Vec<Option<usize>> = fact
        .shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
        .collect();
    match dims.as_slice() {
        [b, Some(a), Some(b2), Some(c)] => Ok(([*a, *b2, *c], *b)),
        _ => Err(not_image()),
    }
}

/// Optimise the model for a symbolic batch; when the graph insists on its own fixed batch,
/// prepare it at that size instead.
fn prepare(
    path: &Path,
    model: InferenceModel,
    dims: [usize; 3],
    batch: Option<usize>,
) -> Result<(Plan, Option<usize>), OnnxError> {
    let fail = |e: TractError| OnnxError::Prepare {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let n = model.sym("N");
    let symbolic = model
        .clone()
        .with_input_fact(0, f32::fact(dims!(n, dims[0], dims[1], dims[2])).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable());
    match (symbolic, batch) {
        (Ok(plan), _) => Ok((plan, None)),
        (Err(e), None) => Err(fail(e)),
        (Err(_), Some(b)) => {
            let plan = model
                .with_input_fact(0, f32::fact([b, dims[0], dims[1], dims[2]]).into())
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(fail)?;
            Ok((plan, Some(b)))
        }
    }
}

/// Softmax of one row, in place (max-subtracted, f32 like the model's outputs).
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

impl BatchModel for OnnxClassifier {
    fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let (m, k) = (self.shape.features(), self.num_outputs);
        ModelError::check_batch(self.shape, k, shape, n, images.len(), out.len())?;
        let rows = self.max_rows;
        for (x, o) in images.chunks(rows * m).zip(out.chunks_mut(rows * k)) {
            self.eval_chunk(x, x.len() / m, o)?;
        }
        Ok(())
    }

    fn batch_rows(&self) -> Option<usize> {
        Some(self.max_rows)
    }
}
