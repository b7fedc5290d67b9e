//! The tutorial CNN: parameters, initialisation, forward passes.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::Error;
use crate::conv::{self, Conv3x3Relu};
use crate::geometry::ConvGeom;

pub use shap_records::Head;

pub use crate::geometry::{
    CLASSES, CONV1_OUT, CONV2_OUT, FLAT, FORWARD_FLOPS, HEIGHT, PARAMETERS, PIXELS, TRAIN_FLOPS,
    WIDTH,
};

/// The layers, from the output down: the order in which the sanity check randomises them
/// ([`Cnn::randomised`]).
pub const LAYERS: [&str; 3] = ["fc", "conv2", "conv1"];

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

/// A compute device by name, parsed once: `cpu`, `cuda[:N]` or `metal[:N]`. Opening it
/// ([`DeviceSpec::open`]) is a separate step, so a command-line value is checked before any
/// work and a GPU is only touched when used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA GPU number N.
    Cuda(usize),
    /// Metal GPU number N.
    Metal(usize),
}

impl DeviceSpec {
    /// Whether it is the CPU.
    pub fn is_cpu(self) -> bool {
        self == Self::Cpu
    }

    /// Open the device (a GPU needs the crate's `cuda` / `metal` feature; without it the
    /// error says so).
    pub fn open(self) -> Result<Device, Error> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => cuda_device(n),
            Self::Metal(n) => metal_device(n),
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}': expected cpu, cuda, cuda:N, metal or metal:N");
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| bad())?)),
            None => (s, None),
        };
        match (kind, index) {
            ("cpu", None) => Ok(Self::Cpu),
            ("cuda", i) => Ok(Self::Cuda(i.unwrap_or(0))),
            ("metal", i) => Ok(Self::Metal(i.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal(n) => write!(f, "metal:{n}"),
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
    // Name a device past the last GPU before Candle's error would; a driver that cannot be
    // initialised is Candle's error below, kept as the cause.
    if let Ok(n) = CudaContext::device_count() {
        let n = usize::try_from(n).unwrap_or(0);
        if ordinal >= n {
            let have = match n {
                0 => "no CUDA GPU".to_string(),
                n => format!("{n} CUDA GPU(s), cuda:0 to cuda:{}", n - 1),
            };
            return Err(Error::Device(format!(
                "cannot open cuda:{ordinal}: no such device: this machine has {have}"
            )));
        }
    }
    Device::new_cuda(ordinal).map_err(|source| Error::OpenDevice {
        device: format!("cuda:{ordinal}"),
        source,
    })
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
    Device::new_metal(ordinal).map_err(|source| Error::OpenDevice {
        device: format!("metal:{ordinal}"),
        source,
    })
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
    let limit = glorot_limit(fan_in, fan_out);
    (0..n)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * limit) as f32)
        .collect()
}

/// The Glorot-uniform bound `sqrt(6 / (fan_in + fan_out))`.
fn glorot_limit(fan_in: usize, fan_out: usize) -> f64 {
    (6.0 / (fan_in + fan_out) as f64).sqrt()
}

/// The same distribution as Candle's [`Init`], for parameters a [`VarMap`](candle_nn::VarMap) creates.
fn glorot_init(fan_in: usize, fan_out: usize) -> Init {
    let l = glorot_limit(fan_in, fan_out);
    Init::Uniform { lo: -l, up: l }
}

/// The six parameters of the network by name, in [`TENSORS`] order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params<T> {
    pub(crate) conv1_weight: T,
    pub(crate) conv1_bias: T,
    pub(crate) conv2_weight: T,
    pub(crate) conv2_bias: T,
    pub(crate) fc_weight: T,
    pub(crate) fc_bias: T,
}

impl<T> Params<T> {
    /// From values in [`TENSORS`] order.
    pub(crate) fn from_array([a, b, c, d, e, f]: [T; 6]) -> Self {
        Self {
            conv1_weight: a,
            conv1_bias: b,
            conv2_weight: c,
            conv2_bias: d,
            fc_weight: e,
            fc_bias: f,
        }
    }

    /// References in [`TENSORS`] order.
    pub(crate) fn as_array(&self) -> [&T; 6] {
        [
            &self.conv1_weight,
            &self.conv1_bias,
            &self.conv2_weight,
            &self.conv2_bias,
            &self.fc_weight,
            &self.fc_bias,
        ]
    }

    /// Values in [`TENSORS`] order.
    pub(crate) fn into_array(self) -> [T; 6] {
        [
            self.conv1_weight,
            self.conv1_bias,
            self.conv2_weight,
            self.conv2_bias,
            self.fc_weight,
            self.fc_bias,
        ]
    }

    /// Apply `f` to each value with its name, in [`TENSORS`] order.
    pub(crate) fn try_map<U, E>(
        &self,
        mut f: impl FnMut(&'static str, &T) -> Result<U, E>,
    ) -> Result<Params<U>, E> {
        let [a, b, c, d, e, g] = self.as_array();
        Ok(Params {
            conv1_weight: f(TENSORS[0].0, a)?,
            conv1_bias: f(TENSORS[1].0, b)?,
            conv2_weight: f(TENSORS[2].0, c)?,
            conv2_bias: f(TENSORS[3].0, d)?,
            fc_weight: f(TENSORS[4].0, e)?,
            fc_bias: f(TENSORS[5].0, g)?,
        })
    }
}

/// Seeded Glorot-uniform kernels and zero biases (see [`Cnn::seeded`]).
fn seeded_params(seed: u64) -> Params<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let conv1_weight = glorot(&mut rng, CONV1_OUT * 9, 9, 9 * CONV1_OUT);
    let conv2_weight = glorot(
        &mut rng,
        CONV2_OUT * CONV1_OUT * 9,
        9 * CONV1_OUT,
        9 * CONV2_OUT,
    );
    let fc_weight = glorot(&mut rng, CLASSES * FLAT, FLAT, CLASSES);
    Params {
        conv1_weight,
        conv1_bias: vec![0.0; CONV1_OUT],
        conv2_weight,
        conv2_bias: vec![0.0; CONV2_OUT],
        fc_weight,
        fc_bias: vec![0.0; CLASSES],
    }
}

/// The tutorial CNN: `Conv2d(1->32, 3x3, pad 1) + ReLU`, `Conv2d(32->16, 3x3, pad 1) + ReLU`,
/// flatten (C, H, W), `Linear(12544 -> 10)`, then softmax or nothing depending on the [`Head`].
///
/// A [`candle_nn::Module`], built like candle-nn's layers from a [`VarBuilder`] whose tensors
/// are named as in [`TENSORS`] (`conv1.weight`, ..., `fc.bias`): over a [`VarMap`](candle_nn::VarMap) for
/// training (missing variables are created, Glorot-uniform kernels and zero biases, and the
/// map's variables are the network's), or over a safetensors file for inference.
/// [`Cnn::seeded`] gives the same weights for a seed on every machine, and
/// [`load`](crate::load) reads our checkpoints strictly.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use shap_model::{Cnn, Head};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
/// let cnn = Cnn::new(vb, Head::Softmax)?;
/// assert_eq!(varmap.all_vars().len(), 6); // what an optimiser such as AdamW trains
///
/// let images = Tensor::rand(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu)?;
/// let probabilities = cnn.forward(&images)?;
/// assert_eq!(probabilities.dims(), &[2, 10]);
/// let sums = probabilities.sum(1)?.to_vec1::<f32>()?;
/// assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
///
/// // The same network reloaded from safetensors, Candle's way (`shap_model::load` reads our
/// // checkpoints with stricter checks and their metadata).
/// let bytes = shap_model::checkpoint::to_bytes(&cnn, &Default::default())?;
/// let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
/// let again = Cnn::new(vb, Head::Softmax)?;
/// let diff = (again.forward(&images)? - probabilities)?.abs()?.max_all()?;
/// assert_eq!(diff.to_scalar::<f32>()?, 0.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cnn {
    head: Head,
    device: Device,
    params: Params<Var>,
}

/// A plain-`Vec` copy of the weights for the fast CPU inference path.
#[derive(Debug, Clone)]
pub(crate) struct CpuWeights {
    /// Output head applied by [`CpuWeights::forward`].
    pub(crate) head: Head,
    /// The tensors, flattened row-major.
    pub(crate) params: Params<Vec<f32>>,
}

/// One parameter from `vb`, checked to be F32 and kept trainable: a builder over plain
/// tensors (a safetensors file) gives constants, which become the network's own variables.
fn param(vb: &VarBuilder, shape: &[usize], name: &str, init: Init) -> Result<Var, Error> {
    let t = vb.get_with_hints(shape, name, init)?;
    if t.dtype() != DType::F32 {
        return Err(Error::Config(format!(
            "tensor {}.{name} is {:?}; the network needs F32",
            vb.prefix(),
            t.dtype()
        )));
    }
    Ok(Var::from_tensor(&t)?)
}

impl Cnn {
    /// The network over the tensors of `vb` (names and shapes in [`TENSORS`]; a wrong shape is
    /// Candle's error naming the tensor). A [`VarMap`](candle_nn::VarMap) builder creates missing tensors with
    /// Candle's random generator: Glorot-uniform kernels (Keras fan-in/fan-out), zero biases.
    pub fn new(vb: VarBuilder, head: Head) -> Result<Self, Error> {
        let conv = |name: &str, cin: usize, cout: usize| -> Result<(Var, Var), Error> {
            let vb = vb.pp(name);
            let w = param(
                &vb,
                &[cout, cin, 3, 3],
                "weight",
                glorot_init(9 * cin, 9 * cout),
            )?;
            Ok((w, param(&vb, &[cout], "bias", Init::Const(0.0))?))
        };
        let (conv1_weight, conv1_bias) = conv("conv1", 1, CONV1_OUT)?;
        let (conv2_weight, conv2_bias) = conv("conv2", CONV1_OUT, CONV2_OUT)?;
        let fc = vb.pp("fc");
        let fc_weight = param(&fc, &[CLASSES, FLAT], "weight", glorot_init(FLAT, CLASSES))?;
        let fc_bias = param(&fc, &[CLASSES], "bias", Init::Const(0.0))?;
        Ok(Self {
            head,
            device: vb.device().clone(),
            params: Params {
                conv1_weight,
                conv1_bias,
                conv2_weight,
                conv2_bias,
                fc_weight,
                fc_bias,
            },
        })
    }

    /// A freshly initialised network: Glorot-uniform kernels (Keras fan-in/fan-out for conv
    /// kernels: `kh * kw * in` / `kh * kw * out`) and zero biases, drawn from ChaCha8 seeded
    /// with `seed`, so the same seed gives the same weights on every machine.
    pub fn seeded(seed: u64, head: Head, device: &Device) -> Result<Self, Error> {
        Self::from_host(seeded_params(seed), head, device)
    }

    /// Build from host tensors of the right sizes (checked by every caller: a checkpoint after
    /// validation, or [`seeded_params`]).
    pub(crate) fn from_host(
        params: Params<Vec<f32>>,
        head: Head,
        device: &Device,
    ) -> Result<Self, Error> {
        let mut tensors = std::collections::HashMap::new();
        for ((name, shape), data) in TENSORS.iter().zip(params.into_array()) {
            tensors.insert((*name).to_string(), Tensor::from_vec(data, *shape, device)?);
        }
        Self::new(VarBuilder::from_tensors(tensors, DType::F32, device), head)
    }

    /// This network with its last `top` layers of [`LAYERS`] re-initialised, for the
    /// model-randomisation sanity check (docs/metrics.md): those layers take the weights a new
    /// network seeded with `seed` starts from ([`Cnn::seeded`]), the others keep theirs, and
    /// the network is built again through a `VarBuilder` over the mixed tensors. The same
    /// seed gives the same random layers at every step of the cascade.
    pub fn randomised(&self, top: usize, seed: u64) -> Result<Self, Error> {
        if top > LAYERS.len() {
            return Err(Error::Config(format!(
                "the network has {} layers to randomise, not {top}",
                LAYERS.len()
            )));
        }
        let fresh = Self::seeded(seed, self.head, &self.device)?;
        let mut tensors = std::collections::HashMap::new();
        for ((name, mine), (_, new)) in self.named_tensors().into_iter().zip(fresh.named_tensors())
        {
            let layer = name.split('.').next().unwrap_or(name);
            let t = if LAYERS[..top].contains(&layer) {
                new
            } else {
                mine
            };
            tensors.insert(name.to_string(), t.copy()?);
        }
        Self::new(
            VarBuilder::from_tensors(tensors, DType::F32, &self.device),
            self.head,
        )
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

    /// The trainable variables in [`TENSORS`] order (shared with the [`VarMap`](candle_nn::VarMap) the network
    /// was built from, if any).
    pub fn vars(&self) -> Vec<Var> {
        self.params.as_array().into_iter().cloned().collect()
    }

    /// `(name, tensor)` pairs in [`TENSORS`] order.
    pub fn named_tensors(&self) -> Vec<(&'static str, Tensor)> {
        TENSORS
            .iter()
            .zip(self.params.as_array())
            .map(|((n, _), v)| (*n, v.as_tensor().clone()))
            .collect()
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.params.as_array().iter().map(|v| v.elem_count()).sum()
    }

    /// Logits for a batch `x` of shape `(n, 1, 28, 28)`, `(n, 28, 28, 1)`, `(n, 28, 28)` or
    /// `(n, 784)` (all the same memory layout for one channel), with autograd.
    ///
    /// On the CPU the convolutions run as a fused im2col + `gemm` Candle custom op; on GPUs as
    /// Candle's stock `conv2d`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        let n = x.dim(0)?;
        if x.elem_count() != n * PIXELS {
            return Err(Error::Input(format!(
                "expected n x 28 x 28 x 1 images, got shape {:?}",
                x.dims()
            )));
        }
        let p = &self.params;
        let x = x.to_dtype(DType::F32)?.reshape((n, 1, HEIGHT, WIDTH))?;
        let h = if self.device.is_cpu() {
            let a1 = x.apply_op3(
                p.conv1_weight.as_tensor(),
                p.conv1_bias.as_tensor(),
                Conv3x3Relu {
                    input_grad: false,
                    relu: true,
                },
            )?;
            a1.apply_op3(
                p.conv2_weight.as_tensor(),
                p.conv2_bias.as_tensor(),
                Conv3x3Relu {
                    input_grad: true,
                    relu: true,
                },
            )?
        } else {
            let a1 = stock_conv_relu(&x, &p.conv1_weight, &p.conv1_bias)?;
            stock_conv_relu(&a1, &p.conv2_weight, &p.conv2_bias)?
        };
        let flat = h.reshape((n, FLAT))?;
        Ok(flat
            .matmul(&p.fc_weight.as_tensor().t()?)?
            .broadcast_add(p.fc_bias.as_tensor())?)
    }

    /// Copy the weights to host memory for the fast CPU paths.
    pub(crate) fn cpu_weights(&self) -> Result<CpuWeights, Error> {
        let params = self.params.try_map(|_, v| -> Result<Vec<f32>, Error> {
            Ok(v.as_tensor()
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?)
        })?;
        Ok(CpuWeights {
            head: self.head,
            params,
        })
    }

    /// Outputs for `head` for `n` images of 784 f32 values each, row-major `(n, 10)`.
    ///
    /// On the CPU this uses the per-image fast path; elsewhere it runs the Candle graph in
    /// chunks of `chunk` images.
    pub(crate) fn predict(
        &self,
        images: &[f32],
        head: Head,
        chunk: usize,
    ) -> Result<Vec<f32>, Error> {
        if !images.len().is_multiple_of(PIXELS) {
            return Err(Error::Input(format!(
                "image buffer of {} values is not a multiple of 784",
                images.len()
            )));
        }
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
            let y = apply_head(self.logits(&x)?, head)?;
            out.extend(y.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// `logits` through `head`.
fn apply_head(logits: Tensor, head: Head) -> candle_core::Result<Tensor> {
    match head {
        Head::Logits => Ok(logits),
        Head::Softmax => candle_nn::ops::softmax_last_dim(&logits),
    }
}

impl Module for Cnn {
    /// Outputs for the network's [`Head`] (softmax probabilities or logits) for images shaped
    /// as [`Cnn::logits`] takes them.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        apply_head(self.logits(x).map_err(Error::into_candle)?, self.head)
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
    pub(crate) fn forward(&self, images: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let n = images.len() / PIXELS;
        if images.len() != n * PIXELS || out.len() != n * CLASSES {
            return Err(Error::Input(format!(
                "buffers do not fit: {} input values, {} output values (need n*784 and n*10)",
                images.len(),
                out.len()
            )));
        }
        let Params {
            conv1_weight: w1,
            conv1_bias: b1,
            conv2_weight: w2,
            conv2_bias: b2,
            fc_weight: w3,
            fc_bias: b3,
        } = &self.params;
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
                    crate::dense::logits(a2, w3, FLAT, o);
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

/// The large per-step activation buffers of [`Cnn::cpu_loss_and_grads_with`], reused from
/// step to step: every value is overwritten before it is read.
#[derive(Debug, Default)]
pub(crate) struct StepBuffers {
    a1: Vec<f32>,
    a2: Vec<f32>,
    da2: Vec<f32>,
    da1: Vec<f32>,
}

/// `v` resized to `len` values (kept contents are stale: callers overwrite them all).
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    &mut v[..]
}

/// [`CpuGrads`] with the gradients as host vectors.
pub(crate) struct HostGrads {
    pub(crate) loss: f32,
    pub(crate) logits: Vec<f32>,
    pub(crate) grads: Params<Vec<f32>>,
}

/// Loss, logits and parameter gradients of one batch (see [`Cnn::cpu_loss_and_grads`]).
#[derive(Debug)]
pub struct CpuGrads {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Logits `(n, 10)`.
    pub logits: Vec<f32>,
    /// Gradients of the mean loss, keyed by the network's variables ([`Cnn::vars`]), ready
    /// for a Candle optimiser's `step`.
    pub grads: GradStore,
}

impl Cnn {
    /// Mean cross-entropy (on logits) of a batch and its gradients, computed on the CPU by
    /// hand-written passes over the same kernels as the custom op, without building a Candle
    /// graph: no zero-filled gradient buffers, no extra copies. Matches
    /// `cross_entropy(logits(x), labels).backward()` (tested) and is deterministic whatever
    /// the thread count. `x` holds `n * 784` values, `labels` `n` classes below 10.
    pub fn cpu_loss_and_grads(&self, x: &[f32], labels: &[u32]) -> Result<CpuGrads, Error> {
        let g = self.cpu_loss_and_grads_with(x, labels, &mut StepBuffers::default())?;
        Ok(CpuGrads {
            loss: g.loss,
            logits: g.logits,
            grads: self.grad_store(g.grads)?,
        })
    }

    /// [`Cnn::cpu_loss_and_grads`] with the gradients as host vectors (for the training
    /// loop's Adam, `crate::adam`) and the large activation buffers kept in `bufs` between
    /// calls, so a step does not fault in ~77 MB of fresh pages.
    pub(crate) fn cpu_loss_and_grads_with(
        &self,
        x: &[f32],
        labels: &[u32],
        bufs: &mut StepBuffers,
    ) -> Result<HostGrads, Error> {
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
        let Params {
            conv1_weight: w1,
            conv1_bias: b1,
            conv2_weight: w2,
            conv2_bias: b2,
            fc_weight: w3,
            fc_bias: b3,
        } = &w.params;
        let StepBuffers { a1, a2, da2, da1 } = bufs;
        let a1 = sized(a1, n * G1.out_len());
        conv::forward_batch_into(G1, x, w1, b1, true, a1);
        let a2 = sized(a2, n * G2.out_len());
        conv::forward_batch_into(G2, a1, w2, b2, true, a2);
        let (a1, a2) = (&*a1, &*a2);
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
                crate::dense::logits(&a2[i0 * FLAT..(i0 + m) * FLAT], w3, FLAT, lg);
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
                crate::dense::weight_grad(&dlogits, a2, FLAT, c0, &mut part);
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
        let da2 = sized(da2, n * FLAT);
        da2.par_chunks_mut(FC_CHUNK * FLAT)
            .enumerate()
            .for_each(|(c, d)| {
                let m = d.len() / FLAT;
                let dl = &dlogits[c * FC_CHUNK * CLASSES..(c * FC_CHUNK + m) * CLASSES];
                crate::dense::input_grad(dl, w3, FLAT, d);
            });
        let da1 = sized(da1, n * G1.out_len());
        let [(dw1, db1), (dw2, db2)] = conv::backward_pair((G1, G2), (x, a1, a2, da2), w2, da1);
        Ok(HostGrads {
            loss,
            logits,
            grads: Params {
                conv1_weight: dw1,
                conv1_bias: db1,
                conv2_weight: dw2,
                conv2_bias: db2,
                fc_weight: dw3,
                fc_bias: db3,
            },
        })
    }

    /// Host gradients as a Candle [`GradStore`] keyed by the network's variables.
    fn grad_store(&self, grads: Params<Vec<f32>>) -> Result<GradStore, Error> {
        let mut store = GradStore::default();
        for (v, g) in self.params.as_array().into_iter().zip(grads.into_array()) {
            let t = Tensor::from_vec(g, v.shape(), &self.device)?;
            store.insert(v.as_tensor(), t);
        }
        Ok(store)
    }
}
