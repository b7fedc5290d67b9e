//! An ONNX model file, read and checked once for whichever engine runs it: its bytes, the
//! decoded graph, the image input it declares and its external data (checked, not yet read).

use std::path::{Path, PathBuf};

use prost::Message;
use shap_explain::{ImageShape, InputLayout};
use tract_onnx::pb::{ModelProto, tensor_proto, tensor_shape_proto::dimension, type_proto};

use crate::{MAX_MODEL_BYTES, OnnxError, TutorialWeights, external};

/// The image input a model declares, in (H, W, C) terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// The input's name in the graph.
    pub name: String,
    /// The images, (H, W, C).
    pub shape: ImageShape,
    /// How the model lays them out.
    pub layout: InputLayout,
    /// `Some(b)` when the graph fixes the batch size to `b`.
    pub fixed_batch: Option<usize>,
}

/// A read and checked ONNX model file; see the module docs.
pub struct OnnxFile {
    pub(crate) path: PathBuf,
    /// The bytes, kept only for a model given as bytes ([`OnnxFile::from_bytes`]); a model
    /// opened from its file drops them once decoded, so a large model is held once or twice,
    /// never three times, and engines read the file themselves.
    bytes: Option<Vec<u8>>,
    /// The model file's size in bytes.
    size: u64,
    pub(crate) proto: ModelProto,
    external_bytes: u64,
    external_files: Vec<PathBuf>,
}

impl std::fmt::Debug for OnnxFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("external_bytes", &self.external_bytes)
            .finish()
    }
}

impl OnnxFile {
    /// Read `path` (at most [`MAX_MODEL_BYTES`]), decode it and check its external data.
    pub fn open(path: &Path) -> Result<Self, OnnxError> {
        let bytes = shap_io::read_bounded(path, MAX_MODEL_BYTES, "an ONNX model")
            .map_err(OnnxError::Read)?;
        let mut file = Self::from_bytes(bytes, path)?;
        file.bytes = None;
        Ok(file)
    }

    /// A model from its bytes; `path` names it in errors and locates its external data.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, OnnxError> {
        let mut proto = ModelProto::decode(&bytes[..]).map_err(|e| OnnxError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let (external_bytes, external_files) = external::check(&mut proto, path)?;
        Ok(Self {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            bytes: Some(bytes),
            proto,
            external_bytes,
            external_files,
        })
    }

    /// The model's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's bytes when it was given as bytes ([`OnnxFile::from_bytes`]); `None` for
    /// a model opened from its file.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    /// The model file's size in bytes (external data apart).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of weights kept outside the model file (0 when there is no external data).
    pub fn external_bytes(&self) -> u64 {
        self.external_bytes
    }

    /// Whether some tensors keep their bytes in other files.
    pub fn has_external_data(&self) -> bool {
        !self.external_files.is_empty()
    }

    /// The files holding external data (checked, real paths), each once.
    pub fn external_files(&self) -> &[PathBuf] {
        &self.external_files
    }

    /// The tutorial CNN's weights when the graph is exactly that network.
    pub fn recognize_tutorial(&self) -> Option<TutorialWeights> {
        // The tutorial graph has at most ten nodes: skip reading a large model's external
        // data for nothing.
        let nodes = self.proto.graph.as_ref().map_or(0, |g| g.node.len());
        if nodes > 16 {
            return None;
        }
        if self.has_external_data() {
            let mut proto = self.proto.clone();
            external::inline(&mut proto, &self.path).ok()?;
            return crate::tutorial::recognize_proto(&proto);
        }
        crate::tutorial::recognize_proto(&self.proto)
    }

    /// The images the model takes, in (H, W, C) terms; `layout` as for the engines.
    pub fn image_shape(&self, layout: Option<InputLayout>) -> Result<ImageShape, OnnxError> {
        self.geometry(layout).map(|g| g.shape)
    }

    /// The input layout the engines use: `layout` when given, else read from the input shape.
    pub fn input_layout(&self, layout: Option<InputLayout>) -> Result<InputLayout, OnnxError> {
        self.geometry(layout).map(|g| g.layout)
    }

    /// Whether the graph's first output comes straight from a `Softmax` node (then the
    /// model returns probabilities rather than logits).
    pub fn ends_in_softmax(&self) -> bool {
        let Some(g) = self.proto.graph.as_ref() else {
            return false;
        };
        let Some(out) = g.output.first() else {
            return false;
        };
        g.node
            .iter()
            .any(|n| n.op_type == "Softmax" && n.output.contains(&out.name))
    }

    /// The decoded graph with every external tensor read in; the file's bytes are dropped.
    pub(crate) fn into_inlined(self) -> Result<(ModelProto, PathBuf), OnnxError> {
        let Self {
            path,
            bytes,
            mut proto,
            ..
        } = self;
        drop(bytes);
        external::inline(&mut proto, &path)?;
        Ok((proto, path))
    }

    /// The image input: exactly one graph input (initialisers listed as inputs aside), float,
    /// `(N, C, H, W)` or `(N, H, W, C)` with 1 or 3 channels; `layout` overrides the guess
    /// (NCHW when the dimension after the batch is 1 or 3).
    pub(crate) fn geometry(&self, layout: Option<InputLayout>) -> Result<Geometry, OnnxError> {
        let path = self.path.to_path_buf();
        let graph = self.proto.graph.as_ref();
        let inits: Vec<&str> = graph.map_or(Vec::new(), |g| {
            g.initializer.iter().map(|t| t.name.as_str()).collect()
        });
        let inputs: Vec<_> = graph
            .map(|g| g.input.iter().filter(|i| !inits.contains(&i.name.as_str())))
            .into_iter()
            .flatten()
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(OnnxError::Inputs {
                path,
                count: inputs.len(),
            });
        };
        let tensor = input
            .r#type
            .as_ref()
            .and_then(|t| t.value.as_ref())
            .map(|type_proto::Value::TensorType(t)| t);
        let dims: Vec<Option<usize>> = tensor
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(dimension::Value::DimValue(v)) => usize::try_from(v).ok(),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let float = tensor.is_some_and(|t| t.elem_type == tensor_proto::DataType::Float as i32);
        let not_image = || OnnxError::NotImage {
            path: path.clone(),
            shape: format!("{dims:?}"),
        };
        let (batch, d) = match dims.as_slice() {
            [b, Some(a), Some(b2), Some(c)] if float => (*b, [*a, *b2, *c]),
            _ => return Err(not_image()),
        };
        let layout = layout.unwrap_or(if matches!(d[0], 1 | 3) {
            InputLayout::Nchw
        } else {
            InputLayout::Nhwc
        });
        let shape = match layout {
            InputLayout::Nchw => ImageShape::new(d[1], d[2], d[0]),
            InputLayout::Nhwc => ImageShape::new(d[0], d[1], d[2]),
        };
        if !matches!(shape.channels, 1 | 3) || shape.features() == 0 || batch == Some(0) {
            return Err(not_image());
        }
        Ok(Geometry {
            name: input.name.clone(),
            shape,
            layout,
            fixed_batch: batch,
        })
    }
}
