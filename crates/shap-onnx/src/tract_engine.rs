//! The tract engine: pure Rust, nothing to install.
//!
//! tract optimises a graph much better for a fixed batch size than for a symbolic one (its
//! convolutions are packed and fused for the exact shapes), so a model is planned for fixed
//! batch sizes: powers of two up to the rows per call, and the rows per call itself. A call of
//! `n` rows runs on the smallest plan that holds it, padded with blank images. Plans are made
//! on first use and kept. docs/onnx-engines.md has the measurements behind this.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use shap_explain::{BatchModel, ImageShape, InputLayout, ModelError, Normalize};
use tract_onnx::prelude::*;

use crate::prep::Prep;
use crate::{Cause, DEFAULT_MAX_ROWS, OnnxError, OnnxFile, guarded};

type Plan = Arc<TypedRunnableModel>;

/// An ONNX image classifier run by tract, as a [`BatchModel`]; see the module docs.
pub struct TractClassifier {
    model: InferenceModel,
    /// The input's dims after the batch, in the model's layout.
    dims: [usize; 3],
    /// Batch sizes planned for, ascending; the last is the rows per call.
    sizes: Vec<usize>,
    plans: Vec<OnceLock<Result<Plan, String>>>,
    prep: Prep,
    /// Whether the graph insists on its own batch size (then `sizes` holds only it).
    fixed: bool,
}

impl TractClassifier {
    /// Load `path`; `layout` overrides the layout read from the input shape.
    pub fn load(path: &Path, layout: Option<InputLayout>) -> Result<Self, OnnxError> {
        Self::new(OnnxFile::open(path)?, layout)
    }

    /// Load a model from its bytes; `path` names it in errors and locates external data.
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        layout: Option<InputLayout>,
    ) -> Result<Self, OnnxError> {
        Self::new(OnnxFile::from_bytes(bytes.to_vec(), path)?, layout)
    }

    /// A checked model file, run through tract. tract trusts the graphs it reads more than a
    /// hostile file deserves (a corrupted attribute can make it index out of bounds): a panic
    /// inside it becomes [`OnnxError::Prepare`].
    pub fn new(file: OnnxFile, layout: Option<InputLayout>) -> Result<Self, OnnxError> {
        let path = file.path().to_path_buf();
        let prepare = |source: Cause| OnnxError::Prepare {
            path: path.clone(),
            source,
        };
        guarded("tract", || Self::new_unguarded(file, layout)).unwrap_or_else(|e| Err(prepare(e)))
    }

    fn new_unguarded(file: OnnxFile, layout: Option<InputLayout>) -> Result<Self, OnnxError> {
        let g = file.geometry(layout)?;
        let (mut proto, path) = file.into_inlined()?;
        forget_shape_annotations(&mut proto);
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| OnnxError::Parse {
                path: path.clone(),
                source: e.into(),
            })?;
        drop(proto);
        let prep = Prep::new(g.shape, g.layout);
        let dims = {
            let d = prep.dims(1);
            [d[1], d[2], d[3]]
        };
        let mut c = Self {
            model,
            dims,
            sizes: Vec::new(),
            plans: Vec::new(),
            prep,
            fixed: false,
        };
        c.set_rows(DEFAULT_MAX_ROWS);
        // Plan the rows per call now: a graph that cannot take other batch sizes runs at its own.
        if let Err(e) = c.plan(c.sizes.len() - 1) {
            match g.fixed_batch {
                Some(b) => {
                    c.fixed = true;
                    c.set_rows(b);
                    c.plan(0).map_err(|e| prepare(&path, e))?;
                }
                None => return Err(prepare(&path, e)),
            }
        }
        c.prep.k = c.probe(&path)?;
        crate::check_rows_independent(&c, c.prep.shape, &path)?;
        Ok(c)
    }

    /// Plan for batch sizes up to `rows`.
    fn set_rows(&mut self, rows: usize) {
        let rows = rows.max(1);
        self.sizes = if self.fixed {
            vec![rows]
        } else {
            let mut s: Vec<usize> = (0..usize::BITS)
                .map(|p| 1usize << p)
                .take_while(|&p| p < rows)
                .collect();
            s.push(rows);
            s
        };
        self.plans = self.sizes.iter().map(|_| OnceLock::new()).collect();
    }

    /// The plan for `self.sizes[i]` images, made on first use.
    fn plan(&self, i: usize) -> Result<&Plan, Cause> {
        let n = self.sizes[i];
        let d = self.dims;
        let made = self.plans[i].get_or_init(|| {
            let fact = f32::fact([n, d[0], d[1], d[2]]);
            guarded("tract", || {
                self.model
                    .clone()
                    .with_input_fact(0, fact.into())
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .map_err(|e| format!("{e:?}"))
            })
            .map_err(|e| e.to_string())
            .and_then(|r| r)
        });
        made.as_ref().map_err(|e| e.clone().into())
    }

    /// Run the model on one blank image and check the output: returns `K`.
    fn probe(&self, path: &Path) -> Result<usize, OnnxError> {
        let rows = self.sizes[0];
        let x = crate::zeros(self.prep.shape.features(), path)?;
        let out = self.run(&x, 1).map_err(OnnxError::Run)?;
        let dims = out.shape().to_vec();
        match dims.as_slice() {
            [b, k] if *b == rows && *k > 0 => Ok(*k),
            _ => Err(OnnxError::Output {
                path: path.to_path_buf(),
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

    /// At most this many images per call (default [`DEFAULT_MAX_ROWS`]; a model with a fixed
    /// batch size always runs at that size).
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        if !self.fixed && rows.max(1) != self.max_rows() {
            self.set_rows(rows);
        }
        self
    }

    fn max_rows(&self) -> usize {
        self.sizes.last().copied().unwrap_or(1)
    }

    /// The images the model takes, in (H, W, C) terms.
    pub fn image_shape(&self) -> ImageShape {
        self.prep.shape
    }

    /// The input layout in use.
    pub fn layout(&self) -> InputLayout {
        self.prep.layout
    }

    /// Run `n` images (pixel space, (H, W, C) order) on the smallest plan that holds them;
    /// returns the model's first output (of the plan's batch size).
    fn run(&self, images: &[f32], n: usize) -> Result<Tensor, Cause> {
        let i = self.sizes.iter().position(|&s| s >= n).ok_or_else(|| {
            format!(
                "{n} images in one call, more than the {} planned",
                self.max_rows()
            )
        })?;
        let rows = self.sizes[i];
        let plan = self.plan(i)?;
        let input = tract_ndarray::Array4::from_shape_vec(
            self.prep.dims(rows),
            self.prep.input(images, rows),
        )?;
        let mut out = guarded("tract", || plan.run(tvec!(Tensor::from(input).into())))??;
        if out.is_empty() {
            return Err("the model returned no output".into());
        }
        Ok(out.swap_remove(0).into_tensor())
    }

    /// Evaluate at most `max_rows` images into `out` (`n * K`).
    fn eval_chunk(&self, images: &[f32], n: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let y = self.run(images, n).map_err(ModelError::Backend)?;
        let rows = y.shape().first().copied().unwrap_or(0);
        let y = y
            .cast_to::<f32>()
            .map_err(|e| ModelError::Backend(e.into()))?;
        let y: Vec<f32> = y
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Backend(e.into()))?
            .iter()
            .copied()
            .collect();
        self.prep.output(&y, rows, out)
    }
}

/// Drop the shapes a graph declares for its intermediate values and outputs: exporters write
/// them with the batch dimension as a named symbol (`batch`), which conflicts with planning for
/// a fixed batch size. tract infers them again from the input.
fn forget_shape_annotations(proto: &mut tract_onnx::pb::ModelProto) {
    use tract_onnx::pb::type_proto;
    let Some(g) = proto.graph.as_mut() else {
        return;
    };
    g.value_info.clear();
    for out in &mut g.output {
        if let Some(type_proto::Value::TensorType(t)) =
            out.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
    }
}

fn prepare(path: &Path, source: Cause) -> OnnxError {
    OnnxError::Prepare {
        path: path.to_path_buf(),
        source,
    }
}

impl BatchModel for TractClassifier {
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
        self.prep.in_calls(images, out, self.max_rows(), |x, n, o| {
            self.eval_chunk(x, n, o)
        })
    }

    fn batch_rows(&self) -> Option<usize> {
        Some(self.max_rows())
    }
}
