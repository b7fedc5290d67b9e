//! The model a command explains: the tutorial CNN from a `shap-cli train` checkpoint
//! (`.safetensors`), or any ONNX image classifier (`.onnx`), chosen by the file's extension.

use std::path::Path;

use anyhow::{Context, Result, bail};
use shap_explain::{BatchModel, ImageShape, InputLayout, Normalize};
use shap_model::{Cnn, Head, IncrementalCnn, ModelFn};
use shap_onnx::OnnxClassifier;

/// How the tutorial CNN evaluates masked images (`--eval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Eval {
    /// Incremental on the CPU, the full network on a GPU.
    Auto,
    /// Every masked image through the whole network (batched gemm).
    Full,
    /// Only the positions each changed pixel reaches are recomputed (CPU only).
    Incremental,
}

/// What runs an ONNX model (`--onnx-engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// The tutorial CNN's graph on shap-model's own kernels (the `--eval` paths), any other
    /// graph through tract.
    Auto,
    /// Every graph through tract.
    Tract,
}

/// How to load and run a model: the flags `explain` and `faithfulness` share.
#[derive(clap::Args)]
pub struct ModelFlags {
    #[command(flatten)]
    pub head: super::common::HeadFlags,
    /// Device for the model: cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu", value_parser = super::common::parse_device)]
    pub device: String,
    /// How the CNN evaluates masked images. `incremental` (CPU only): each masked image starts
    /// from the closest one already evaluated and only the positions its changed pixels reach
    /// are recomputed; bit-identical to its own full evaluation whatever the history, batch or
    /// thread count, and equal to `full` to float rounding (about 1e-7), several times faster
    /// with blur or constant maskers and the Permutation explainer. `full`: every masked image
    /// through the whole network (batched gemm). `auto`: incremental on the CPU, full on a GPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub eval: Eval,
    /// ONNX: the model's input layout, when its input shape does not say (default: NCHW when
    /// the dimension after the batch is 1 or 3, NHWC otherwise).
    #[arg(long, value_name = "nchw|nhwc", value_parser = parse_layout)]
    pub input_layout: Option<InputLayout>,
    /// ONNX: per-channel mean subtracted after masking, as torchvision's Normalize (one value
    /// applies to every channel). The maskers always work on [0, 1] pixels.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B,C",
        allow_negative_numbers = true
    )]
    pub mean: Vec<f32>,
    /// ONNX: per-channel standard deviation the (pixel - mean) is divided by.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub std: Vec<f32>,
    /// ONNX: apply a softmax to the model's outputs (default: explain them as returned).
    #[arg(long)]
    pub softmax: bool,
    /// ONNX: what runs the model. `auto`: the tutorial CNN's own graph (recognised op by op,
    /// with no --mean/--std/--input-layout) on shap-model's kernels and `--eval` paths, any
    /// other graph through tract. `tract`: every graph through tract.
    #[arg(long, value_enum, default_value = "auto")]
    pub onnx_engine: Engine,
}

impl ModelFlags {
    /// The loading options these flags describe, with `head` as the head asked for.
    pub fn options(&self, head: Option<super::common::HeadArg>) -> Options<'_> {
        Options {
            device: &self.device,
            eval: self.eval,
            head,
            layout: self.input_layout,
            mean: &self.mean,
            std: &self.std,
            softmax: self.softmax,
            engine: self.onnx_engine,
        }
    }
}

/// `--input-layout`'s parser.
fn parse_layout(s: &str) -> Result<InputLayout, String> {
    s.parse()
        .map_err(|e: shap_explain::ExplainError| e.to_string())
}

/// What the user said about the model besides its file.
pub struct Options<'a> {
    /// `--device`.
    pub device: &'a str,
    /// `--eval`.
    pub eval: Eval,
    /// `--head` (tutorial checkpoints only).
    pub head: Option<super::common::HeadArg>,
    /// `--input-layout` (ONNX only).
    pub layout: Option<InputLayout>,
    /// `--mean` / `--std` (ONNX only).
    pub mean: &'a [f32],
    /// `--std`.
    pub std: &'a [f32],
    /// `--softmax` (ONNX only).
    pub softmax: bool,
    /// `--onnx-engine`.
    pub engine: Engine,
}

/// The tutorial CNN, ready to explain.
pub struct Tutorial {
    /// The full network (what the explainers call without the incremental path).
    full: ModelFn,
    /// The incremental path, when chosen.
    incremental: Option<IncrementalCnn>,
    /// Softmax outputs, for the predicted class and its probability.
    probs: ModelFn,
    /// The explained outputs.
    head: Head,
}

/// A loaded model.
pub enum Network {
    /// The tutorial CNN.
    Tutorial(Box<Tutorial>),
    /// An ONNX classifier.
    Onnx(Box<OnnxClassifier>),
}

impl Network {
    /// Load `path` by its extension.
    pub fn load(path: &Path, o: &Options<'_>) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("onnx") => load_onnx(path, o),
            Some(e) if e.eq_ignore_ascii_case("safetensors") => load_tutorial(path, o),
            _ => bail!(
                "{}: the model must be a .safetensors checkpoint of `shap-cli train` or an .onnx \
                 image classifier",
                path.display()
            ),
        }
    }

    /// What the explainers call.
    pub fn model(&self) -> &dyn BatchModel {
        match self {
            Self::Tutorial(t) => match &t.incremental {
                Some(m) => m,
                None => &t.full,
            },
            Self::Onnx(m) => m.as_ref(),
        }
    }

    /// The images the model takes.
    pub fn shape(&self) -> ImageShape {
        match self {
            Self::Tutorial { .. } => ImageShape::new(28, 28, 1),
            Self::Onnx(m) => m.image_shape(),
        }
    }

    /// What the explained outputs are, for messages.
    pub fn outputs_kind(&self) -> &'static str {
        match self {
            Self::Tutorial(t) if t.head == Head::Logits => "logits",
            Self::Tutorial(_) => "probabilities",
            Self::Onnx(_) => "model outputs",
        }
    }

    /// `"incremental"` or `"full"` for the tutorial CNN, `"onnx"` for an ONNX model.
    pub fn evaluation(&self) -> &'static str {
        match self {
            Self::Tutorial(t) if t.incremental.is_some() => "incremental",
            Self::Tutorial(_) => "full",
            Self::Onnx(_) => "onnx",
        }
    }

    /// The incremental path's work so far (images and second-layer positions), when it runs.
    pub fn work_stats(&self) -> Option<shap_model::IncrementalStats> {
        match self {
            Self::Tutorial(t) => t.incremental.as_ref().map(|m| m.stats()),
            Self::Onnx(_) => None,
        }
    }

    /// Scores that pick the predicted class: softmax probabilities for the tutorial CNN, the
    /// model's own outputs for an ONNX model. `n * K` values.
    pub fn scores(&self, images: &[f32]) -> Result<Vec<f32>> {
        match self {
            Self::Tutorial(t) => Ok(t.probs.predict(images)?),
            Self::Onnx(m) => {
                let shape = m.image_shape();
                let n = images.len() / shape.features();
                let mut out = vec![0.0; n * m.num_outputs()];
                m.eval_batch(images, n, shape, &mut out)?;
                Ok(out)
            }
        }
    }
}

fn load_tutorial(path: &Path, o: &Options<'_>) -> Result<Network> {
    if o.layout.is_some() || !o.mean.is_empty() || !o.std.is_empty() || o.softmax {
        bail!(
            "--input-layout, --mean, --std and --softmax are for ONNX models; a tutorial \
             checkpoint takes [0, 1] images and has its own head (see --head)"
        );
    }
    let on_cpu = o.device.split(':').next() == Some("cpu");
    let incremental_eval = match o.eval {
        Eval::Incremental if !on_cpu => bail!(
            "--eval incremental runs on the CPU; use --eval full or auto, or --device cpu (got --device {})",
            o.device
        ),
        Eval::Incremental => true,
        Eval::Full => false,
        Eval::Auto => on_cpu,
    };
    let device = shap_model::device(o.device)?;
    let ckpt = shap_model::load(path, &device)?;
    tutorial(
        &ckpt.cnn,
        super::common::head(o.head, ckpt.meta.head),
        incremental_eval,
    )
}

/// The tutorial CNN explaining `head`, incrementally or in full.
fn tutorial(cnn: &Cnn, head: Head, incremental_eval: bool) -> Result<Network> {
    let incremental = if incremental_eval {
        Some(IncrementalCnn::with_head(cnn, head)?)
    } else {
        None
    };
    Ok(Network::Tutorial(Box::new(Tutorial {
        full: ModelFn::with_head(cnn, head)?,
        incremental,
        probs: ModelFn::with_head(cnn, Head::Softmax)?,
        head,
    })))
}

/// With `--onnx-engine auto` and no preprocessing asked for, the tutorial CNN's own graph runs
/// on shap-model's kernels (equal to tract's results to float rounding, and much faster).
fn native_onnx(path: &Path, bytes: &[u8], o: &Options<'_>) -> Result<Option<Network>> {
    if o.engine != Engine::Auto || !o.mean.is_empty() || !o.std.is_empty() || o.layout.is_some() {
        return Ok(None);
    }
    let Some(w) = shap_onnx::recognize_tutorial(bytes) else {
        return Ok(None);
    };
    if w.softmax && o.softmax {
        // A second softmax is what tract would compute: leave it to tract.
        return Ok(None);
    }
    let head = if w.softmax || o.softmax {
        Head::Softmax
    } else {
        Head::Logits
    };
    let cnn = tutorial_from_onnx(w.tensors, head)?;
    eprintln!(
        "note: {} is the tutorial CNN: it runs on shap-model's own kernels (--onnx-engine tract \
         runs it through tract)",
        path.display()
    );
    tutorial(&cnn, head, o.eval != Eval::Full).map(Some)
}

/// The tutorial CNN over the weights read from its ONNX graph (in `shap_model::TENSORS` order
/// and shapes), through a Candle `VarBuilder`.
fn tutorial_from_onnx(tensors: [Vec<f32>; 6], head: Head) -> Result<Cnn> {
    let device = candle_core::Device::Cpu;
    let mut named = std::collections::HashMap::new();
    for ((name, shape), data) in shap_model::TENSORS.iter().zip(tensors) {
        let t = candle_core::Tensor::from_vec(data, *shape, &device)
            .with_context(|| format!("the ONNX graph's tensor {name}"))?;
        named.insert((*name).to_string(), t);
    }
    let vb = candle_nn::VarBuilder::from_tensors(named, candle_core::DType::F32, &device);
    Ok(Cnn::new(vb, head)?)
}

fn load_onnx(path: &Path, o: &Options<'_>) -> Result<Network> {
    if o.head.is_some() {
        bail!(
            "--head is for tutorial checkpoints; an ONNX model's outputs are explained as it returns them (add --softmax for probabilities)"
        );
    }
    if o.device.split(':').next() != Some("cpu") {
        bail!(
            "ONNX models run on the CPU (tract); got --device {}",
            o.device
        );
    }
    // Read once: the recogniser and tract both parse these bytes.
    let bytes = shap_io::read_bounded(path, shap_onnx::MAX_MODEL_BYTES, "an ONNX model")
        .map_err(shap_onnx::OnnxError::Read)?;
    if let Some(net) = native_onnx(path, &bytes, o)? {
        return Ok(net);
    }
    if o.eval == Eval::Incremental {
        bail!(
            "--eval incremental is the tutorial CNN's own path; this ONNX model runs through tract"
        );
    }
    let mut model = OnnxClassifier::from_bytes(&bytes, path, o.layout)?;
    let shape = model.image_shape();
    if !o.mean.is_empty() || !o.std.is_empty() {
        let mean: &[f32] = if o.mean.is_empty() { &[0.0] } else { o.mean };
        let std: &[f32] = if o.std.is_empty() { &[1.0] } else { o.std };
        let norm = Normalize::new(shape.channels, 1.0, mean, std)
            .context("--mean/--std do not fit the model")?;
        model = model.with_normalize(norm)?;
    }
    Ok(Network::Onnx(Box::new(model.with_softmax(o.softmax))))
}

/// Class names: `--labels FILE` (one per line, exactly one per output), else Fashion-MNIST's
/// for the tutorial CNN, else the output indices.
pub fn class_names(labels: Option<&Path>, net: &Network) -> Result<Vec<String>> {
    let k = net.model().num_outputs();
    let Some(path) = labels else {
        return Ok(match net {
            Network::Tutorial(_) => shap_data::CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Network::Onnx(_) => (0..k).map(|i| i.to_string()).collect(),
        });
    };
    let bytes = shap_io::read_bounded(path, 16 * shap_io::MIB, "a labels file")?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{}: the labels file is not UTF-8 text", path.display()))?;
    let names: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    if names.len() != k {
        bail!(
            "{}: {} label line(s) for a model with {k} outputs: give one name per line, one per output",
            path.display(),
            names.len()
        );
    }
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        bail!("{}: line {} is empty", path.display(), i + 1);
    }
    Ok(names)
}
