//! The tutorial CNN: parameters, initialisation, forward passes.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::Error;
use crate::conv::{self, Conv3x3Relu, ConvGeom};

/// Image height.
pub const HEIGHT: usize = 28;
/// Image width.
pub const WIDTH: usize = 28;
/// Pixels per image (one channel).
pub const PIXELS: usize = HEIGHT * WIDTH;
/// Output channels of the first convolution.
pub const CONV1_OUT: usize = 32;
/// Output channels of the second convolution.
pub const CONV2_OUT: usize = 16;
/// Inputs of the dense layer (`16 * 28 * 28`, flattened in (C, H, W) order).
pub const FLAT: usize = CONV2_OUT * PIXELS;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Number of trainable parameters (130,394).
pub const PARAMETERS: usize =
    CONV1_OUT * 9 + CONV1_OUT + CONV2_OUT * CONV1_OUT * 9 + CONV2_OUT + CLASSES * FLAT + CLASSES;
/// Floating-point operations of one forward pass (multiply-adds count as two).
pub const FORWARD_FLOPS: u64 =
    2 * (CONV1_OUT * 9 * PIXELS + CONV2_OUT * CONV1_OUT * 9 * PIXELS + CLASSES * FLAT) as u64;
/// Floating-point operations of one training step per image: forward, both gradients of the
/// second convolution and the dense layer, and the weight gradient of the first convolution.
pub const TRAIN_FLOPS: u64 = FORWARD_FLOPS
    + 2 * (2 * CONV2_OUT * CONV1_OUT * 9 * PIXELS + CONV1_OUT * 9 * PIXELS + 2 * CLASSES * FLAT)
        as u64;

/// Checkpoint tensor names with their shapes, in candle-nn layouts.
pub const TENSORS: [(&str, &[usize]); 6] = [
    ("conv1.weight", &[CONV1_OUT, 1, 3, 3]),
    ("conv1.bias", &[CONV1_OUT]),
    ("conv2.weight", &[CONV2_OUT, CONV1_OUT, 3, 3]),
    ("conv2.bias", &[CONV2_OUT]),
    ("fc.weight", &[CLASSES, FLAT]),
    ("fc.bias", &[CLASSES]),
];

const G1: ConvGeom = ConvGeom {
    cin: 1,
    cout: CONV1_OUT,
    h: HEIGHT,
    w: WIDTH,
};
const G2: ConvGeom = ConvGeom {
    cin: CONV1_OUT,
    cout: CONV2_OUT,
    h: HEIGHT,
    w: WIDTH,
};

/// What the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// Softmax probabilities (the Keras tutorial).
    Softmax,
    /// Raw logits (the Flax tutorial).
    Logits,
}

impl Head {
    /// The lowercase name used in checkpoints and on the command line.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Head::Softmax => "softmax",
            Head::Logits => "logits",
        }
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Head {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "softmax" | "probabilities" => Ok(Head::Softmax),
            "logits" => Ok(Head::Logits),
            other => Err(Error::Config(format!(
                "unknown output head {other:?} (expected softmax or logits)"
            ))),
        }
    }
}

/// Open a compute device by name: `cpu`, `cuda` (or `cuda:N`), `metal` (or `metal:N`).
///
/// GPU devices need the crate's `cuda` / `metal` Cargo feature; without it the error says so.
pub fn device(name: &str) -> Result<Device, Error> {
    let (kind, ordinal) = match name.split_once(':') {
        Some((k, o)) => (
            k,
            o.parse::<usize>()
                .map_err(|_| Error::Device(format!("bad device ordinal in {name:?}")))?,
        ),
        None => (name, 0),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda_device(ordinal),
        "metal" => metal_device(ordinal),
        other => Err(Error::Device(format!(
            "unknown device {other:?} (expected cpu, cuda or metal)"
        ))),
    }
}

/// Open `cuda:N`, saying what is missing when it cannot: the driver, any GPU, or that device.
#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device, Error> {
    use candle_core::cuda::cudarc::driver::CudaContext;
    let missing = match CudaContext::device_count() {
        Err(e) => Some(format!(
            "the CUDA driver could not be initialised ({e}); is an NVIDIA GPU and its driver installed?"
        )),
        Ok(n) if n <= 0 => Some("the CUDA driver finds no GPU on this machine".to_string()),
        Ok(n) if ordinal >= n as usize => Some(format!(
            "no such device: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{}",
            n - 1
        )),
        Ok(_) => None,
    };
    if let Some(why) = missing {
        return Err(Error::Device(format!("cannot open cuda:{ordinal}: {why}")));
    }
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_ordinal: usize) -> Result<Device, Error> {
    Err(Error::Device(
        "device cuda requested but this build has no CUDA support (rebuild with `--features cuda`)"
            .into(),
    ))
}

#[cfg(feature = "metal")]
fn metal_device(ordinal: usize) -> Result<Device, Error> {
    Device::new_metal(ordinal)
        .map_err(|e| Error::Device(format!("cannot open metal:{ordinal}: {e}")))
}

#[cfg(not(feature = "metal"))]
fn metal_device(_ordinal: usize) -> Result<Device, Error> {
    Err(Error::Device(
        "device metal requested but this build has no Metal support (rebuild with `--features metal`)"
            .into(),
    ))
}

/// Glorot-uniform samples: `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))`.
fn glorot(rng: &mut ChaCha8Rng, n: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..n)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * limit) as f32)
        .collect()
}

/// The tutorial CNN: `Conv2d(1->32, 3x3, pad 1) + ReLU`, `Conv2d(32->16, 3x3, pad 1) + ReLU`,
/// flatten (C, H, W), `Linear(12544 -> 10)`, then softmax or nothing depending on the [`Head`].
#[derive(Debug, Clone)]
pub struct Cnn {
    head: Head,
    device: Device,
    conv1_w: Var,
    conv1_b: Var,
    conv2_w: Var,
    conv2_b: Var,
    fc_w: Var,
    fc_b: Var,
}

/// A plain-`Vec` copy of the weights for the fast CPU inference path.
#[derive(Debug, Clone)]
pub struct CpuWeights {
    /// Output head applied by [`CpuWeights::forward`].
    pub head: Head,
    /// Tensors in [`TENSORS`] order, flattened row-major.
    pub tensors: [Vec<f32>; 6],
}

impl Cnn {
    /// A freshly initialised network: Glorot-uniform kernels (Keras fan-in/fan-out for conv
    /// kernels: `kh * kw * in` / `kh * kw * out`) and zero biases, drawn from ChaCha8 seeded
    /// with `seed`, so the same seed gives the same weights on every machine.
    pub fn new(seed: u64, head: Head, device: &Device) -> Result<Self, Error> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w1 = glorot(&mut rng, CONV1_OUT * 9, 9, 9 * CONV1_OUT);
        let w2 = glorot(
            &mut rng,
            CONV2_OUT * CONV1_OUT * 9,
            9 * CONV1_OUT,
            9 * CONV2_OUT,
        );
        let w3 = glorot(&mut rng, CLASSES * FLAT, FLAT, CLASSES);
        let tensors = [
            w1,
            vec![0.0; CONV1_OUT],
            w2,
            vec![0.0; CONV2_OUT],
            w3,
            vec![0.0; CLASSES],
        ];
        Self::from_vecs(tensors, head, device)
    }

    /// Build from flat tensors in [`TENSORS`] order and shapes.
    pub fn from_vecs(tensors: [Vec<f32>; 6], head: Head, device: &Device) -> Result<Self, Error> {
        let mut vars = Vec::with_capacity(6);
        for ((name, shape), data) in TENSORS.iter().zip(tensors) {
            let expected: usize = shape.iter().product();
            if data.len() != expected {
                return Err(Error::Shape {
                    name: (*name).to_string(),
                    expected: shape.to_vec(),
                    found: vec![data.len()],
                });
            }
            let t = Tensor::from_vec(data, *shape, device)?;
            vars.push(Var::from_tensor(&t)?);
        }
        let mut it = vars.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| Error::Config("internal: missing var".into()))
        };
        Ok(Self {
            head,
            device: device.clone(),
            conv1_w: next()?,
            conv1_b: next()?,
            conv2_w: next()?,
            conv2_b: next()?,
            fc_w: next()?,
            fc_b: next()?,
        })
    }

    /// The output head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Change the output head (the weights are the same for both).
    pub fn set_head(&mut self, head: Head) {
        self.head = head;
    }

    /// The device holding the parameters.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The trainable variables in [`TENSORS`] order.
    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.conv1_w.clone(),
            self.conv1_b.clone(),
            self.conv2_w.clone(),
            self.conv2_b.clone(),
            self.fc_w.clone(),
            self.fc_b.clone(),
        ]
    }

    /// `(name, tensor)` pairs in [`TENSORS`] order.
    pub fn named_tensors(&self) -> Vec<(&'static str, Tensor)> {
        TENSORS
            .iter()
            .zip(self.vars())
            .map(|((n, _), v)| (*n, v.as_tensor().clone()))
            .collect()
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Logits for a batch `x` of shape `(n, 1, 28, 28)`, `(n, 28, 28, 1)`, `(n, 28, 28)` or
    /// `(n, 784)` (all the same memory layout for one channel), with autograd.
    ///
    /// On the CPU the convolutions run as the fused [`Conv3x3Relu`] custom op; on GPUs as
    /// Candle's stock `conv2d`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        let n = x.dim(0)?;
        if x.elem_count() != n * PIXELS {
            return Err(Error::Input(format!(
                "expected n x 28 x 28 x 1 images, got shape {:?}",
                x.dims()
            )));
        }
        let x = x.to_dtype(DType::F32)?.reshape((n, 1, HEIGHT, WIDTH))?;
        let h = if self.device.is_cpu() {
            let a1 = x.apply_op3(
                self.conv1_w.as_tensor(),
                self.conv1_b.as_tensor(),
                Conv3x3Relu {
                    input_grad: false,
                    relu: true,
                },
            )?;
            a1.apply_op3(
                self.conv2_w.as_tensor(),
                self.conv2_b.as_tensor(),
                Conv3x3Relu {
                    input_grad: true,
                    relu: true,
                },
            )?
        } else {
            let a1 = stock_conv_relu(&x, &self.conv1_w, &self.conv1_b)?;
            stock_conv_relu(&a1, &self.conv2_w, &self.conv2_b)?
        };
        let flat = h.reshape((n, FLAT))?;
        Ok(flat
            .matmul(&self.fc_w.as_tensor().t()?)?
            .broadcast_add(self.fc_b.as_tensor())?)
    }

    /// Outputs for the model's [`Head`] (softmax probabilities or logits).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, Error> {
        let logits = self.logits(x)?;
        match self.head {
            Head::Logits => Ok(logits),
            Head::Softmax => Ok(candle_nn::ops::softmax_last_dim(&logits)?),
        }
    }

    /// Copy the weights to host memory for [`CpuWeights::forward`].
    pub fn cpu_weights(&self) -> Result<CpuWeights, Error> {
        let mut out: [Vec<f32>; 6] = Default::default();
        for (slot, v) in out.iter_mut().zip(self.vars()) {
            *slot = v
                .as_tensor()
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
        }
        Ok(CpuWeights {
            head: self.head,
            tensors: out,
        })
    }

    /// Outputs (per [`Head`], or logits when `logits` is true) for `n` images of 784 f32
    /// values each, row-major `(n, 10)`.
    ///
    /// On the CPU this uses the per-image fast path; elsewhere it runs [`Cnn::forward`] in
    /// chunks of `chunk` images.
    pub fn predict(&self, images: &[f32], logits: bool, chunk: usize) -> Result<Vec<f32>, Error> {
        if !images.len().is_multiple_of(PIXELS) {
            return Err(Error::Input(format!(
                "image buffer of {} values is not a multiple of 784",
                images.len()
            )));
        }
        let head = if logits { Head::Logits } else { self.head };
        if self.device.is_cpu() {
            let mut w = self.cpu_weights()?;
            w.head = head;
            let mut out = vec![0f32; images.len() / PIXELS * CLASSES];
            w.forward(images, &mut out)?;
            return Ok(out);
        }
        let n = images.len() / PIXELS;
        let mut out = Vec::with_capacity(n * CLASSES);
        for part in images.chunks(chunk.max(1) * PIXELS) {
            let m = part.len() / PIXELS;
            let x = Tensor::from_slice(part, (m, 1, HEIGHT, WIDTH), &self.device)?;
            let l = self.logits(&x)?;
            let y = match head {
                Head::Logits => l,
                Head::Softmax => candle_nn::ops::softmax_last_dim(&l)?,
            };
            out.extend(y.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

fn stock_conv_relu(x: &Tensor, w: &Var, b: &Var) -> Result<Tensor, Error> {
    let c = b.dim(0)?;
    Ok(x.conv2d(w.as_tensor(), 1, 1, 1, 1)?
        .broadcast_add(&b.as_tensor().reshape((1, c, 1, 1))?)?
        .relu()?)
}

/// In-place softmax of one row (max-subtracted).
pub(crate) fn softmax_row(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0f32;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in row.iter_mut() {
        *v /= s;
    }
}

impl CpuWeights {
    /// Evaluate `images.len() / 784` images into `out` (`n * 10` values), in parallel over
    /// images. Each image is computed independently, so an image's outputs do not depend on
    /// the batch it arrives in or on the thread count.
    pub fn forward(&self, images: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let n = images.len() / PIXELS;
        if images.len() != n * PIXELS || out.len() != n * CLASSES {
            return Err(Error::Input(format!(
                "buffers do not fit: {} input values, {} output values (need n*784 and n*10)",
                images.len(),
                out.len()
            )));
        }
        let [w1, b1, w2, b2, w3, b3] = &self.tensors;
        let head = self.head;
        out.par_chunks_mut(CLASSES)
            .zip(images.par_chunks(PIXELS))
            .for_each_init(
                || {
                    let cols = conv::forward_scratch_len(G1).max(conv::forward_scratch_len(G2));
                    (
                        vec![0f32; cols],
                        vec![0f32; G1.out_len()],
                        vec![0f32; G2.out_len()],
                    )
                },
                |(cols, a1, a2), (o, x)| {
                    conv::forward_image(G1, x, w1, b1, true, a1, cols);
                    conv::forward_image(G2, a1, w2, b2, true, a2, cols);
                    // o (1 x 10) = a2 (1 x 12544) * w3^T (12544 x 10) + b3
                    conv::matmul(
                        (1, CLASSES, FLAT),
                        o,
                        (CLASSES, 1),
                        false,
                        a2,
                        (FLAT, 1),
                        w3,
                        (1, FLAT),
                    );
                    for (v, b) in o.iter_mut().zip(b3) {
                        *v += b;
                    }
                    if head == Head::Softmax {
                        softmax_row(o);
                    }
                },
            );
        Ok(())
    }
}

/// Images per task in the hand-written dense-layer passes (fixed, for determinism).
const FC_CHUNK: usize = 16;
/// Columns per task for the dense weight gradient.
const FC_COL_CHUNK: usize = FLAT / 8;

/// Loss, logits and parameter gradients of one batch (see [`Cnn::cpu_loss_and_grads`]).
#[derive(Debug, Clone)]
pub struct CpuGrads {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Logits `(n, 10)`.
    pub logits: Vec<f32>,
    /// Gradients of the mean loss, in [`TENSORS`] order.
    pub grads: [Vec<f32>; 6],
}

impl Cnn {
    /// Mean cross-entropy (on logits) of a batch and its gradients, computed on the CPU by
    /// hand-written passes over the same kernels as the custom op, without building a Candle
    /// graph: no zero-filled gradient buffers, no extra copies. Matches
    /// `cross_entropy(logits(x), labels).backward()` (tested) and is deterministic whatever
    /// the thread count. `x` holds `n * 784` values, `labels` `n` classes below 10.
    pub fn cpu_loss_and_grads(&self, x: &[f32], labels: &[u32]) -> Result<CpuGrads, Error> {
        let n = labels.len();
        if x.len() != n * PIXELS || n == 0 {
            return Err(Error::Input(format!(
                "{} values for {n} labels (need 784 per label, at least one)",
                x.len()
            )));
        }
        if let Some(l) = labels.iter().find(|&&l| l as usize >= CLASSES) {
            return Err(Error::Input(format!("label {l} is not below {CLASSES}")));
        }
        let w = self.cpu_weights()?;
        let [w1, b1, w2, b2, w3, b3] = &w.tensors;
        let a1 = conv::forward_batch(G1, x, w1, b1, true);
        let a2 = conv::forward_batch(G2, &a1, w2, b2, true);
        // Logits and d(loss)/d(logits) per fixed chunk of images.
        let mut logits = vec![0f32; n * CLASSES];
        let mut dlogits = vec![0f32; n * CLASSES];
        let mut losses = vec![0f32; n];
        let inv_n = 1.0 / n as f32;
        logits
            .par_chunks_mut(FC_CHUNK * CLASSES)
            .zip(dlogits.par_chunks_mut(FC_CHUNK * CLASSES))
            .zip(losses.par_chunks_mut(FC_CHUNK))
            .enumerate()
            .for_each(|(c, ((lg, dl), ls))| {
                let i0 = c * FC_CHUNK;
                let m = ls.len();
                conv::matmul(
                    (m, CLASSES, FLAT),
                    lg,
                    (CLASSES, 1),
                    false,
                    &a2[i0 * FLAT..(i0 + m) * FLAT],
                    (FLAT, 1),
                    w3,
                    (1, FLAT),
                );
                for (j, ((row, drow), l)) in lg
                    .chunks_exact_mut(CLASSES)
                    .zip(dl.chunks_exact_mut(CLASSES))
                    .zip(ls)
                    .enumerate()
                {
                    for (v, b) in row.iter_mut().zip(b3) {
                        *v += b;
                    }
                    let y = labels[i0 + j] as usize;
                    let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = row.iter().map(|v| (v - mx).exp()).sum();
                    *l = sum.ln() + mx - row[y];
                    for (k, (d, v)) in drow.iter_mut().zip(row.iter()).enumerate() {
                        let p = (v - mx).exp() / sum;
                        *d = (p - if k == y { 1.0 } else { 0.0 }) * inv_n;
                    }
                }
            });
        let loss = losses.iter().sum::<f32>() * inv_n;
        // Dense weight gradient (10 x 12544) = dlogits^T (10 x n) * a2 (n x 12544), by
        // fixed column chunks (each complete: no cross-thread reduction).
        let mut dw3 = vec![0f32; CLASSES * FLAT];
        let col_tasks: Vec<(usize, Vec<f32>)> = (0..FLAT.div_ceil(FC_COL_CHUNK))
            .into_par_iter()
            .map(|t| {
                let c0 = t * FC_COL_CHUNK;
                let nc = FC_COL_CHUNK.min(FLAT - c0);
                let mut part = vec![0f32; CLASSES * nc];
                conv::matmul(
                    (CLASSES, nc, n),
                    &mut part,
                    (nc, 1),
                    false,
                    &dlogits,
                    (1, CLASSES),
                    &a2[c0..],
                    (FLAT, 1),
                );
                (c0, part)
            })
            .collect();
        for (c0, part) in col_tasks {
            let nc = part.len() / CLASSES;
            for k in 0..CLASSES {
                dw3[k * FLAT + c0..k * FLAT + c0 + nc].copy_from_slice(&part[k * nc..(k + 1) * nc]);
            }
        }
        let mut db3 = vec![0f32; CLASSES];
        for row in dlogits.chunks_exact(CLASSES) {
            for (a, b) in db3.iter_mut().zip(row) {
                *a += b;
            }
        }
        // d(loss)/d(a2) (n x 12544) = dlogits (n x 10) * w3 (10 x 12544), per image chunk.
        let mut da2 = vec![0f32; n * FLAT];
        da2.par_chunks_mut(FC_CHUNK * FLAT)
            .enumerate()
            .for_each(|(c, d)| {
                let m = d.len() / FLAT;
                conv::matmul(
                    (m, FLAT, CLASSES),
                    d,
                    (FLAT, 1),
                    false,
                    &dlogits[c * FC_CHUNK * CLASSES..],
                    (CLASSES, 1),
                    w3,
                    (FLAT, 1),
                );
            });
        let g2 = conv::backward_batch(G2, &a1, w2, &a2, &da2, true, true);
        drop(da2);
        let da1 = g2
            .dx
            .ok_or_else(|| Error::Config("internal: missing input gradient".into()))?;
        let g1 = conv::backward_batch(G1, x, w1, &a1, &da1, true, false);
        Ok(CpuGrads {
            loss,
            logits,
            grads: [g1.dw, g1.db, g2.dw, g2.db, dw3, db3],
        })
    }

    /// Gradients from [`Cnn::cpu_loss_and_grads`] as a Candle [`GradStore`] for an optimiser.
    ///
    /// [`GradStore`]: candle_core::backprop::GradStore
    pub fn grad_store(
        &self,
        grads: [Vec<f32>; 6],
    ) -> Result<candle_core::backprop::GradStore, Error> {
        let mut store = candle_core::backprop::GradStore::default();
        for (v, g) in self.vars().iter().zip(grads) {
            let t = Tensor::from_vec(g, v.shape(), &self.device)?;
            store.insert(v.as_tensor(), t);
        }
        Ok(store)
    }
}
