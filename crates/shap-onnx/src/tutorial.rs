//! Recognising the tutorial CNN in an ONNX graph, so that it can run on `shap-model`'s own
//! kernels (fused convolutions, the incremental explanation path) instead of a general
//! runtime.
//!
//! The graph must be exactly the tutorial's network as Keras (NHWC) or PyTorch (NCHW) exports
//! it: `[Transpose to NCHW] Conv(1->32, 3x3, pad 1) Relu Conv(32->16, 3x3, pad 1) Relu
//! [Transpose to NHWC] Flatten|Reshape Gemm|(MatMul Add) [Softmax]` on 28x28 grey images, with
//! the weights as float initializers. Every node's inputs and every attribute are compared
//! with the tutorial's: an attribute the tutorial graph does not have, another value, another
//! op, shape or data flow, and the graph is not recognised and runs on a general engine.

use prost::Message;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

/// Pixels of a tutorial image.
const SIDE: usize = 28;
/// Channels after each convolution.
const C1: usize = 32;
const C2: usize = 16;
/// Classes.
const K: usize = 10;
/// Inputs of the dense layer.
const DENSE: usize = C2 * SIDE * SIDE;

/// The tutorial CNN's weights in `shap-model`'s layout (README, "Checkpoints"): OIHW kernels
/// and a dense layer `[10, 12544]` whose input index is `c * 784 + h * 28 + w`.
#[derive(Debug, Clone, PartialEq)]
pub struct TutorialWeights {
    /// `conv1.weight`, `conv1.bias`, `conv2.weight`, `conv2.bias`, `fc.weight`, `fc.bias`.
    pub tensors: [Vec<f32>; 6],
    /// Whether the graph ends in a softmax (otherwise it returns logits).
    pub softmax: bool,
}

/// The tutorial CNN's weights when `bytes` is an ONNX model of exactly that network.
pub fn recognize_tutorial(bytes: &[u8]) -> Option<TutorialWeights> {
    recognize_proto(&ModelProto::decode(bytes).ok()?)
}

/// [`recognize_tutorial`] over a decoded model (its external data read in).
pub(crate) fn recognize_proto(model: &ModelProto) -> Option<TutorialWeights> {
    let graph = model.graph.as_ref()?;
    let inits = |name: &str| graph.initializer.iter().find(|t| t.name == name);
    let mut nodes = Chain::new(graph)?;
    let input = nodes.value;
    let nhwc = nodes.take_transpose(&[0, 3, 1, 2]);
    // 28x28 grey images, fixed in the graph: the convolutions keep any size, so a 14x56
    // input would otherwise pass as the tutorial's with the same weights.
    let image = if nhwc {
        [SIDE, SIDE, 1]
    } else {
        [1, SIDE, SIDE]
    };
    if image_dims(graph, input)? != image {
        return None;
    }
    let conv1 = nodes.take_conv(&inits, [C1, 1])?;
    nodes.take_op("Relu")?;
    let conv2 = nodes.take_conv(&inits, [C2, C1])?;
    nodes.take_op("Relu")?;
    if nhwc && !nodes.take_transpose(&[0, 2, 3, 1]) {
        return None;
    }
    let flat = match nodes.take_op("Flatten") {
        Some(n) => only_attrs(n, &["axis"]) && int_attr(n, "axis", 1) == 1,
        None => nodes.take_reshape(&inits),
    };
    if !flat {
        return None;
    }
    let (fc, fc_bias) = nodes.take_dense(&inits)?;
    // A softmax over the classes only: another axis (the batch's) is another network.
    let softmax = match nodes.take_op("Softmax") {
        Some(n) if only_attrs(n, &["axis"]) && matches!(int_attr(n, "axis", -1), 1 | -1) => true,
        Some(_) => return None,
        None => false,
    };
    if !nodes.finished() {
        return None;
    }
    let fc = if nhwc { hwc_to_chw(&fc) } else { fc };
    let [w1, b1] = conv1;
    let [w2, b2] = conv2;
    Some(TutorialWeights {
        tensors: [w1, b1, w2, b2, fc, fc_bias],
        softmax,
    })
}

/// The graph's nodes, consumed in order along one chain of data flow.
struct Chain<'a> {
    nodes: &'a [NodeProto],
    at: usize,
    /// The value the next node must read.
    value: &'a str,
    output: &'a str,
}

impl<'a> Chain<'a> {
    fn new(graph: &'a GraphProto) -> Option<Self> {
        let is_init = |n: &str| graph.initializer.iter().any(|t| t.name == n);
        let inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !is_init(n))
            .collect();
        let ([input], [output]) = (inputs.as_slice(), graph.output.as_slice()) else {
            return None;
        };
        Some(Self {
            nodes: &graph.node,
            at: 0,
            value: input,
            output: &output.name,
        })
    }

    /// Take the next node if it is `op` reading the current value, with the inputs the
    /// tutorial graph gives that op (an attribute-free op must have no attribute).
    fn take_op(&mut self, op: &str) -> Option<&'a NodeProto> {
        let n = self.nodes.get(self.at)?;
        let reads = n.input.first().is_some_and(|i| i == self.value);
        let inputs = match op {
            "Conv" | "Gemm" => 3,
            "MatMul" | "Add" | "Reshape" => 2,
            _ => 1,
        };
        let no_attributes = matches!(op, "Relu" | "MatMul" | "Add");
        if n.op_type != op
            || !n.domain.is_empty()
            || !reads
            || n.input.len() != inputs
            || n.output.len() != 1
            || (no_attributes && !n.attribute.is_empty())
        {
            return None;
        }
        self.at += 1;
        self.value = &n.output[0];
        Some(n)
    }

    /// Take a `Transpose` with permutation `perm`, if that is the next node.
    fn take_transpose(&mut self, perm: &[i64]) -> bool {
        let next = self.nodes.get(self.at);
        if next.is_some_and(|n| {
            n.op_type == "Transpose"
                && only_attrs(n, &["perm"])
                && ints_attr(n, "perm") == Some(perm)
        }) {
            return self.take_op("Transpose").is_some();
        }
        false
    }

    /// Take a 3x3, stride-1, pad-1 convolution from `io[1]` to `io[0]` channels: its OIHW
    /// kernel and bias.
    fn take_conv(
        &mut self,
        inits: &impl Fn(&str) -> Option<&'a TensorProto>,
        [out, inp]: [usize; 2],
    ) -> Option<[Vec<f32>; 2]> {
        let n = self.take_op("Conv")?;
        let ones = |name: &str, len: usize, default: bool| match ints_attr(n, name) {
            None => default,
            Some(v) => v.len() == len && v.iter().all(|&x| x == 1),
        };
        let names = [
            "strides",
            "dilations",
            "pads",
            "group",
            "kernel_shape",
            "auto_pad",
        ];
        let auto_pad = attr(n, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
        let plain = only_attrs(n, &names)
            && auto_pad
            && ones("strides", 2, true)
            && ones("dilations", 2, true)
            && ones("pads", 4, false)
            && int_attr(n, "group", 1) == 1
            && ints_attr(n, "kernel_shape").is_none_or(|k| k == [3, 3]);
        let (w, b) = (n.input.get(1)?, n.input.get(2)?);
        let w = floats(inits(w)?, &[out, inp, 3, 3])?;
        let b = floats(inits(b)?, &[out])?;
        plain.then_some([w, b])
    }

    /// Take the dense layer (`Gemm`, or `MatMul` then `Add`): its weight as `[10, 12544]` in
    /// the flattened input's order, and its bias.
    fn take_dense(
        &mut self,
        inits: &impl Fn(&str) -> Option<&'a TensorProto>,
    ) -> Option<(Vec<f32>, Vec<f32>)> {
        if let Some(n) = self.take_op("Gemm") {
            let plain = only_attrs(n, &["alpha", "beta", "transA", "transB"])
                && int_attr(n, "transA", 0) == 0
                && matches!(int_attr(n, "transB", 0), 0 | 1)
                && float_attr(n, "alpha") == 1.0
                && float_attr(n, "beta") == 1.0;
            let w = inits(n.input.get(1)?)?;
            let w = if int_attr(n, "transB", 0) == 1 {
                floats(w, &[K, DENSE])?
            } else {
                transpose(&floats(w, &[DENSE, K])?, DENSE, K)
            };
            let b = floats(inits(n.input.get(2)?)?, &[K])?;
            return plain.then_some((w, b));
        }
        let m = self.take_op("MatMul")?;
        let w = transpose(&floats(inits(m.input.get(1)?)?, &[DENSE, K])?, DENSE, K);
        let add = self.take_op("Add")?;
        let b = floats(inits(add.input.get(1)?)?, &[K])?;
        Some((w, b))
    }

    /// Take a `Reshape` to `(batch, 12544)`: its shape an int64 initializer `[-1 or 0, 12544]`
    /// and `allowzero` 0 when given.
    fn take_reshape(&mut self, inits: &impl Fn(&str) -> Option<&'a TensorProto>) -> bool {
        let Some(n) = self.take_op("Reshape") else {
            return false;
        };
        let shape = n.input.get(1).and_then(|s| inits(s)).and_then(int64s);
        let to_rows =
            shape.is_some_and(|s| matches!(s.as_slice(), [-1 | 0, d] if *d == DENSE as i64));
        only_attrs(n, &["allowzero"]) && int_attr(n, "allowzero", 0) == 0 && to_rows
    }

    /// Whether every node was taken and the last one is the graph's output.
    fn finished(&self) -> bool {
        self.at == self.nodes.len() && self.value == self.output
    }
}

fn ints_attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.as_slice())
}

/// The three dimensions after the batch of the float input `name`, when all are fixed.
fn image_dims(graph: &GraphProto, name: &str) -> Option<[usize; 3]> {
    use tract_onnx::pb::{tensor_shape_proto::dimension, type_proto};
    const FLOAT: i32 = 1;
    let info = graph.input.iter().find(|i| i.name == name)?;
    let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    if t.elem_type != FLOAT {
        return None;
    }
    let dims: Vec<usize> = t
        .shape
        .as_ref()?
        .dim
        .iter()
        .skip(1)
        .map(|d| match d.value {
            Some(dimension::Value::DimValue(v)) => usize::try_from(v).ok(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match dims.as_slice() {
        [a, b, c] => Some([*a, *b, *c]),
        _ => None,
    }
}

/// Whether every attribute of `n` is one of `names`, each at most once and of the type ONNX
/// gives it (an `auto_pad` held as an integer is another, malformed, graph).
fn only_attrs(n: &NodeProto, names: &[&str]) -> bool {
    use tract_onnx::pb::attribute_proto::AttributeType;
    let typed = |a: &AttributeProto| {
        let want = match a.name.as_str() {
            "perm" | "strides" | "dilations" | "pads" | "kernel_shape" => AttributeType::Ints,
            "alpha" | "beta" => AttributeType::Float,
            "auto_pad" => AttributeType::String,
            _ => AttributeType::Int,
        };
        a.r#type == want as i32
    };
    n.attribute.iter().enumerate().all(|(i, a)| {
        names.contains(&a.name.as_str())
            && typed(a)
            && !n.attribute[..i].iter().any(|b| b.name == a.name)
    })
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn int_attr(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn float_attr(n: &NodeProto, name: &str) -> f32 {
    attr(n, name).map_or(1.0, |a| a.f)
}

/// A float32 initializer of exactly `shape`, from `float_data` or little-endian `raw_data`.
pub(crate) fn floats(t: &TensorProto, shape: &[usize]) -> Option<Vec<f32>> {
    const FLOAT: i32 = 1;
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    if t.data_type != FLOAT || dims != shape {
        return None;
    }
    let count: usize = shape.iter().product();
    let v: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    (v.len() == count).then_some(v)
}

/// The values of a 1-D int64 initializer, from `int64_data` or little-endian `raw_data`.
fn int64s(t: &TensorProto) -> Option<Vec<i64>> {
    const INT64: i32 = 7;
    if t.data_type != INT64 || t.dims.len() != 1 {
        return None;
    }
    let v: Vec<i64> = if t.raw_data.is_empty() {
        t.int64_data.clone()
    } else {
        t.raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()
    };
    (usize::try_from(t.dims[0]).ok() == Some(v.len())).then_some(v)
}

/// `(rows, cols)` row-major to `(cols, rows)`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

/// A `[10, 12544]` dense weight over inputs flattened in (H, W, C) order, reordered for
/// inputs flattened in (C, H, W) order.
fn hwc_to_chw(w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..K {
        for h in 0..SIDE {
            for x in 0..SIDE {
                for c in 0..C2 {
                    let hwc = (h * SIDE + x) * C2 + c;
                    let chw = (c * SIDE + h) * SIDE + x;
                    out[o * DENSE + chw] = w[o * DENSE + hwc];
                }
            }
        }
    }
    out
}
