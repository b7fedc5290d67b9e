//! Seeded random layers for the model-randomisation sanity check (docs/metrics.md, "Sanity
//! check"): a model's learned layers, from the output down, and a copy of the model with the
//! first of them replaced by random values of the same shapes.

use std::collections::HashSet;

use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::pb::{GraphProto, TensorProto};

use crate::tutorial::floats;
use crate::{OnnxError, OnnxFile, external};

/// Operators whose float initialiser inputs are learned weights: a layer of the check.
const LEARNED: [&str; 4] = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// A layer: its name and the initialisers it reads.
struct Layer {
    name: String,
    tensors: Vec<String>,
}

/// The graph's layers from the output down: nodes of a [`LEARNED`] operator that read a float
/// initialiser, in reverse graph order (ONNX lists nodes in topological order). A node with no
/// name is named by its operator and position (`Gemm#7`).
fn layers(g: &GraphProto) -> Vec<Layer> {
    let float: HashSet<&str> = g
        .initializer
        .iter()
        .filter(|t| t.data_type == 1)
        .map(|t| t.name.as_str())
        .collect();
    let mut out: Vec<Layer> = g
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| LEARNED.contains(&n.op_type.as_str()))
        .filter_map(|(i, n)| {
            let tensors: Vec<String> = n
                .input
                .iter()
                .filter(|x| float.contains(x.as_str()))
                .cloned()
                .collect();
            let name = if n.name.is_empty() {
                format!("{}#{i}", n.op_type)
            } else {
                n.name.clone()
            };
            (!tensors.is_empty()).then_some(Layer { name, tensors })
        })
        .collect();
    out.reverse();
    out
}

impl OnnxFile {
    /// The layers [`OnnxFile::randomised`] replaces, from the output down: every `Conv`,
    /// `ConvTranspose`, `Gemm` or `MatMul` node that reads a float32 initialiser.
    pub fn layers(&self) -> Vec<String> {
        self.proto
            .graph
            .as_ref()
            .map(|g| layers(g).into_iter().map(|l| l.name).collect())
            .unwrap_or_default()
    }

    /// The model with the float32 initialisers of its first `top` [`OnnxFile::layers`]
    /// replaced by seeded normal values with each tensor's own mean and standard deviation
    /// (a constant tensor, such as zero biases, stays as it is). Tensor `j` of the graph's
    /// initialisers draws from ChaCha8 stream `j` of `seed`, so every step of a cascade keeps
    /// the random values of the steps before it. External data is read into the copy, which
    /// is held in memory ([`OnnxFile::bytes`]).
    pub fn randomised(&self, top: usize, seed: u64) -> Result<OnnxFile, OnnxError> {
        let mut proto = self.proto.clone();
        external::inline(&mut proto, &self.path)?;
        if let Some(g) = proto.graph.as_mut() {
            let all = layers(g);
            if top > all.len() {
                return Err(OnnxError::Layers {
                    path: self.path.clone(),
                    layers: all.len(),
                    asked: top,
                });
            }
            let chosen: HashSet<&str> = all[..top]
                .iter()
                .flat_map(|l| l.tensors.iter().map(String::as_str))
                .collect();
            for (j, t) in g.initializer.iter_mut().enumerate() {
                if chosen.contains(t.name.as_str()) {
                    randomise(t, seed, j as u64);
                }
            }
        } else if top > 0 {
            return Err(OnnxError::Layers {
                path: self.path.clone(),
                layers: 0,
                asked: top,
            });
        }
        OnnxFile::from_bytes(proto.encode_to_vec(), &self.path)
    }
}

/// Replace a float32 tensor's values by normal draws with its mean and standard deviation.
fn randomise(t: &mut TensorProto, seed: u64, stream: u64) {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let Some(v) = floats(t, &dims) else {
        return;
    };
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut raw = Vec::with_capacity(v.len() * 4);
    for _ in 0..v.len() {
        let x = (mean + std * normal(&mut rng)) as f32;
        raw.extend_from_slice(&x.to_le_bytes());
    }
    t.float_data.clear();
    t.raw_data = raw;
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
