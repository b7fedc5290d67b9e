//! The model a run explains: the tutorial CNN from a `shap-cli train` checkpoint
//! (`.safetensors`), or any ONNX image classifier (`.onnx`), chosen by the file's extension,
//! and for ONNX which engine runs it (docs/onnx-engines.md). Before anything large is read or
//! built, the memory it needs is checked against the budget (docs/memory.md).

use std::path::{Path, PathBuf};

use shap_explain::memory::{Bytes, MemoryBudget, MemoryPlan};
use shap_explain::{BatchModel, ImageShape, InputLayout, Normalize};
use shap_model::{Cnn, DeviceSpec, Head, IncrementalCnn, ModelFn};
use shap_onnx::{OnnxFile, OrtClassifier, OrtDevice, OrtThreads, TractClassifier};

use crate::Reporter;
use crate::error::{Context, Result, refuse};
use crate::settings::{Evaluation, Outputs};

/// How the tutorial CNN evaluates masked images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Eval {
    /// Incremental on the CPU, except for inpainted images ([`Options::inpainting`]); the full
    /// network on a GPU.
    #[default]
    Auto,
    /// Every masked image through the whole network.
    Full,
    /// Only the positions each changed pixel reaches are recomputed (CPU only).
    Incremental,
}

/// What runs an ONNX model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Engine {
    /// The tutorial CNN's graph on shap-model's own kernels (the `--eval` paths), any other
    /// graph on onnxruntime when its library is found, else tract.
    #[default]
    Auto,
    /// Every graph on onnxruntime (an error when its library cannot be loaded).
    Onnxruntime,
    /// Every graph through tract.
    Tract,
}

/// The memory a run may still use: `max` within what the machine has.
pub fn memory_budget(max: Option<Bytes>) -> MemoryBudget {
    max.map_or_else(MemoryBudget::detect, MemoryBudget::at_most)
}

/// What the user said about the model besides its file (the command-line flags of the same
/// names).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The onnxruntime library (`--onnxruntime`); else `ORT_DYLIB_PATH`, else the Python
    /// package's.
    pub library: Option<PathBuf>,
    /// Masked images per model call (`--batch-size`); else the engine's default.
    pub batch_size: Option<usize>,
    /// Threads in all (0 counts as one).
    pub threads: usize,
    /// The most memory the process may use (`--max-memory`); else what the machine has.
    pub max_memory: Option<Bytes>,
    /// Model calls that may run at once (1 when images are explained one after another).
    pub concurrent: usize,
    /// Where the model runs.
    pub device: DeviceSpec,
    /// How the tutorial CNN evaluates masked images.
    pub eval: Eval,
    /// The head asked for (tutorial checkpoints only); else the checkpoint's own.
    pub head: Option<Head>,
    /// The ONNX input layout, when its shape does not say.
    pub layout: Option<InputLayout>,
    /// Per-channel mean subtracted after masking (ONNX only; empty: none).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by (ONNX only; empty: none).
    pub std: Vec<f32>,
    /// Apply a softmax to the outputs (ONNX only).
    pub softmax: bool,
    /// What runs an ONNX model.
    pub engine: Engine,
    /// Whether the masked images are inpainted (`inpaint_telea`, `inpaint_ns`). An inpainted
    /// fill depends on the whole mask, so the incremental path recomputes most of the network
    /// for each masked image and the full network is faster: [`Eval::Auto`] then picks it.
    pub inpainting: bool,
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

/// An ONNX model on a general engine.
pub struct Onnx {
    model: Box<dyn BatchModel + Send>,
    shape: ImageShape,
    layout: InputLayout,
    /// The files holding its external data.
    external: Vec<PathBuf>,
    /// The engine and its version, as recorded: `onnxruntime 1.32.0` or `tract 0.23.9`.
    engine: String,
    /// Whether the outputs are probabilities (the graph ends in a softmax, or `--softmax`).
    probabilities: bool,
}

/// A loaded model.
pub enum Network {
    /// The tutorial CNN.
    Tutorial(Box<Tutorial>),
    /// An ONNX classifier.
    Onnx(Onnx),
}

impl Network {
    /// Load `path` by its extension, telling `report` which engine runs it.
    pub fn load(path: &Path, o: &Options, report: &dyn Reporter) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("onnx") => load_onnx(path, o, report),
            Some(e) if e.eq_ignore_ascii_case("safetensors") => load_tutorial(path, o),
            _ => refuse!(
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
            Self::Onnx(m) => m.model.as_ref(),
        }
    }

    /// The images the model takes.
    pub fn shape(&self) -> ImageShape {
        match self {
            Self::Tutorial { .. } => ImageShape::new(28, 28, 1),
            Self::Onnx(m) => m.shape,
        }
    }

    /// Whether the explained outputs are probabilities (else logits).
    pub fn probabilities(&self) -> bool {
        match self {
            Self::Tutorial(t) => t.head != Head::Logits,
            Self::Onnx(m) => m.probabilities,
        }
    }

    /// What the explained outputs are, for messages and settings.
    pub fn outputs_kind(&self) -> Outputs {
        if self.probabilities() {
            Outputs::Probabilities
        } else {
            Outputs::Logits
        }
    }

    /// How masked images are evaluated: incrementally or in full for the tutorial CNN, by an
    /// ONNX engine otherwise.
    pub fn evaluation(&self) -> Evaluation {
        match self {
            Self::Tutorial(t) if t.incremental.is_some() => Evaluation::Incremental,
            Self::Tutorial(_) => Evaluation::Full,
            Self::Onnx(_) => Evaluation::Onnx,
        }
    }

    /// The ONNX model's input layout (`None` for the tutorial CNN's own path).
    pub fn input_layout(&self) -> Option<InputLayout> {
        match self {
            Self::Tutorial(_) => None,
            Self::Onnx(m) => Some(m.layout),
        }
    }

    /// The files besides the model file that its numbers depend on (ONNX external data).
    pub fn data_files(&self) -> &[PathBuf] {
        match self {
            Self::Tutorial(_) => &[],
            Self::Onnx(m) => &m.external,
        }
    }

    /// What runs the model: `shap-model` (the tutorial CNN's own kernels), or the ONNX
    /// engine with its version.
    pub fn engine(&self) -> &str {
        match self {
            Self::Tutorial(_) => "shap-model",
            Self::Onnx(m) => &m.engine,
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
                let n = images.len() / m.shape.features();
                let mut out = vec![0.0; n * m.model.num_outputs()];
                m.model.eval_batch(images, n, m.shape, &mut out)?;
                Ok(out)
            }
        }
    }
}

fn load_tutorial(path: &Path, o: &Options) -> Result<Network> {
    if o.layout.is_some() || !o.mean.is_empty() || !o.std.is_empty() || o.softmax {
        refuse!(
            "--input-layout, --mean, --std and --softmax are for ONNX models; a tutorial \
             checkpoint takes [0, 1] images and has its own head (see --head)"
        );
    }
    incremental_eval(o)?;
    let device = o.device.open()?;
    let ckpt = shap_model::load(path, &device)?;
    let head = o.head.unwrap_or(ckpt.meta.head);
    Network::from_cnn(&ckpt.cnn, head, o)
}

/// Whether the tutorial CNN runs incrementally, as `o` asks and its device allows.
fn incremental_eval(o: &Options) -> Result<bool> {
    let on_cpu = o.device.is_cpu();
    Ok(match o.eval {
        Eval::Incremental if !on_cpu => refuse!(
            "--eval incremental runs on the CPU; use --eval full or auto, or --device cpu (got --device {})",
            o.device
        ),
        _ => on_cpu && wants_incremental(o),
    })
}

/// Whether `o` asks for the incremental path where the device allows it.
fn wants_incremental(o: &Options) -> bool {
    match o.eval {
        Eval::Incremental => true,
        Eval::Full => false,
        Eval::Auto => !o.inpainting,
    }
}

impl Network {
    /// The tutorial CNN `cnn` explaining `head`, evaluated as `o` asks (`--eval`).
    pub fn from_cnn(cnn: &Cnn, head: Head, o: &Options) -> Result<Self> {
        tutorial(cnn, head, incremental_eval(o)?)
    }

    /// An ONNX model already read, on the engine `o` asks for (the tutorial CNN's graph on
    /// shap-model's kernels with `--onnx-engine auto`).
    pub fn from_onnx(file: OnnxFile, o: &Options, report: &dyn Reporter) -> Result<Self> {
        let device = onnx_device(o)?;
        check_model_input(&file, o)?;
        if device == OrtDevice::Cpu
            && let Some(net) = native_onnx(&file, o, report)?
        {
            return Ok(net);
        }
        general_onnx(file, o, device, report)
    }
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
/// on shap-model's kernels (equal to the general engines' results to float rounding, and much
/// faster).
fn native_onnx(file: &OnnxFile, o: &Options, report: &dyn Reporter) -> Result<Option<Network>> {
    if o.engine != Engine::Auto || !o.mean.is_empty() || !o.std.is_empty() || o.layout.is_some() {
        return Ok(None);
    }
    let Some(w) = file.recognize_tutorial() else {
        return Ok(None);
    };
    if w.softmax && o.softmax {
        // A second softmax is what a general engine would compute: leave it to one.
        return Ok(None);
    }
    let head = if w.softmax || o.softmax {
        Head::Softmax
    } else {
        Head::Logits
    };
    let cnn = tutorial_from_onnx(w.tensors, head)?;
    report.note(&format!(
        "{} is the tutorial CNN: it runs on shap-model's own kernels (--onnx-engine \
         onnxruntime or tract runs it on a general engine)",
        file.path().display()
    ));
    tutorial(&cnn, head, wants_incremental(o)).map(Some)
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

fn load_onnx(path: &Path, o: &Options, report: &dyn Reporter) -> Result<Network> {
    if o.head.is_some() {
        refuse!(
            "--head is for tutorial checkpoints; an ONNX model's outputs are explained as it returns them (add --softmax for probabilities)"
        );
    }
    onnx_device(o)?;
    check_model_file(path, o)?;
    let file = OnnxFile::open(path)?;
    Network::from_onnx(file, o, report)
}

/// An ONNX model on onnxruntime or tract.
fn general_onnx(
    file: OnnxFile,
    o: &Options,
    device: OrtDevice,
    report: &dyn Reporter,
) -> Result<Network> {
    let path = file.path().to_path_buf();
    if o.eval == Eval::Incremental {
        refuse!(
            "--eval incremental is the tutorial CNN's own path; this ONNX model runs on a general engine"
        );
    }
    let probabilities = o.softmax || file.ends_in_softmax();
    if o.softmax && file.ends_in_softmax() {
        report.warning(&format!(
            "{} already ends in a softmax; --softmax applies a second one",
            path.display()
        ));
    }
    let norm = normalize(o, &file)?;
    let layout = file.input_layout(o.layout)?;
    let shape = file.image_shape(o.layout)?;
    let external = file.external_files().to_vec();
    let (model, engine) = match choose_engine(o, device, report)? {
        Some(lib) => on_onnxruntime(&file, o, norm, device, lib, report)?,
        None => on_tract(file, o, norm)?,
    };
    Ok(Network::Onnx(Onnx {
        model,
        shape,
        layout,
        external,
        engine,
        probabilities,
    }))
}

/// What to do about a model too large to load.
const LOAD_HINT: &str =
    "run it on a machine with more memory, or raise --max-memory if more can be had";

/// Refuse, before reading it, a model file whose reading, decoding and loading (about three
/// times its size at once) cannot fit the memory budget.
fn check_model_file(path: &Path, o: &Options) -> Result<()> {
    let Ok(size) = std::fs::metadata(path).map(|m| m.len()) else {
        return Ok(()); // Opening it gives the error.
    };
    MemoryPlan::new()
        .with("the file read and decoded", size.saturating_mul(2))
        .with("the engine's weights", size)
        .check(
            &format!("loading {}", path.display()),
            &memory_budget(o.max_memory),
            LOAD_HINT,
        )?;
    Ok(())
}

/// Refuse a model whose weights (external data included) and blank probe images cannot fit
/// the memory budget, before an engine allocates them.
fn check_model_input(file: &OnnxFile, o: &Options) -> Result<()> {
    // A graph whose image size is not fixed has no probe to plan; the engines refuse it.
    let Ok(shape) = file.image_shape(o.layout) else {
        return Ok(());
    };
    let features = shape.features() as u64;
    let weights = file.size().saturating_add(file.external_bytes());
    MemoryPlan::new()
        .with("the engine's weights", weights.saturating_mul(2))
        // Three blank images checked at load, each with its input, prepared copy and
        // activations at least its own size.
        .with(
            "the images checked at load",
            features.saturating_mul(4 * 3 * 4),
        )
        .check(
            &format!("loading {}", file.path().display()),
            &memory_budget(o.max_memory),
            LOAD_HINT,
        )?;
    Ok(())
}

/// An ONNX model on onnxruntime, and the engine as recorded.
fn on_onnxruntime(
    file: &OnnxFile,
    o: &Options,
    norm: Normalize,
    device: OrtDevice,
    lib: &shap_onnx::OrtLibrary,
    report: &dyn Reporter,
) -> Result<(Box<dyn BatchModel + Send>, String)> {
    let t = OrtThreads::for_work(o.threads, o.concurrent);
    let mut m = OrtClassifier::new(file, o.layout, t, device)?
        .with_normalize(norm)?
        .with_softmax(o.softmax);
    if let Some(rows) = o.batch_size {
        m = m.with_max_rows(rows);
    }
    report.note(&format!(
        "engine onnxruntime {} ({}: {}), {} session(s) x {} thread(s)",
        lib.version,
        lib.source,
        lib.path.display(),
        t.sessions,
        t.intra
    ));
    Ok((Box::new(m), format!("onnxruntime {}", lib.version)))
}

/// An ONNX model on tract, and the engine as recorded.
fn on_tract(
    file: OnnxFile,
    o: &Options,
    norm: Normalize,
) -> Result<(Box<dyn BatchModel + Send>, String)> {
    let mut m = TractClassifier::new(file, o.layout)?
        .with_normalize(norm)?
        .with_softmax(o.softmax);
    if let Some(rows) = o.batch_size {
        m = m.with_max_rows(rows);
    }
    Ok((Box::new(m), format!("tract {}", shap_onnx::TRACT_VERSION)))
}

/// `--mean`/`--std` as a normalisation for the model's channels.
fn normalize(o: &Options, file: &OnnxFile) -> Result<Normalize> {
    let channels = file.image_shape(o.layout)?.channels;
    let mean: &[f32] = if o.mean.is_empty() { &[0.0] } else { &o.mean };
    let std: &[f32] = if o.std.is_empty() { &[1.0] } else { &o.std };
    Normalize::new(channels, 1.0, mean, std).context("--mean/--std do not fit the model")
}

/// Where an ONNX model runs: the CPU, or a CUDA GPU through onnxruntime.
fn onnx_device(o: &Options) -> Result<OrtDevice> {
    match o.device {
        DeviceSpec::Cpu => Ok(OrtDevice::Cpu),
        DeviceSpec::Cuda(n) if o.engine != Engine::Tract => match u32::try_from(n) {
            Ok(n) => Ok(OrtDevice::Cuda(n)),
            Err(_) => refuse!("--device cuda:{n}: N is not a GPU number"),
        },
        _ => refuse!(
            "ONNX models run on the CPU, or on a CUDA GPU through onnxruntime (--onnx-engine \
             auto or onnxruntime); got --device {} with --onnx-engine {}",
            o.device,
            match o.engine {
                Engine::Tract => "tract",
                _ => "auto",
            }
        ),
    }
}

/// The onnxruntime library to run on, or `None` for tract: `--onnx-engine onnxruntime` (or a
/// GPU) must load it; `auto` falls back to tract with a note.
fn choose_engine(
    o: &Options,
    device: OrtDevice,
    report: &dyn Reporter,
) -> Result<Option<&'static shap_onnx::OrtLibrary>> {
    match o.engine {
        Engine::Tract => {
            report.note("engine tract (--onnx-engine tract)");
            Ok(None)
        }
        Engine::Onnxruntime => Ok(Some(shap_onnx::runtime::load(o.library.as_deref())?)),
        Engine::Auto if device != OrtDevice::Cpu => Ok(Some(
            shap_onnx::runtime::load(o.library.as_deref()).context("a GPU needs onnxruntime")?,
        )),
        Engine::Auto => match shap_onnx::runtime::load(o.library.as_deref()) {
            Ok(lib) => Ok(Some(lib)),
            Err(e) => {
                report.note(&format!(
                    "engine tract, as onnxruntime cannot be used: {}",
                    crate::error::chain(&e)
                ));
                Ok(None)
            }
        },
    }
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
            Network::Onnx { .. } => (0..k).map(|i| i.to_string()).collect(),
        });
    };
    let bytes = shap_io::read_bounded(path, 16 * shap_io::MIB, "a labels file")?;
    let Ok(text) = String::from_utf8(bytes) else {
        refuse!("{}: the labels file is not UTF-8 text", path.display());
    };
    // Control characters (an ANSI escape sequence, say) never reach a terminal or a file.
    let names: Vec<String> = text
        .lines()
        .map(|l| crate::printable(l.trim_end()).into_owned())
        .collect();
    if names.len() != k {
        refuse!(
            "{}: {} label line(s) for a model with {k} outputs: give one name per line, one per output",
            path.display(),
            names.len()
        );
    }
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        refuse!("{}: line {} is empty", path.display(), i + 1);
    }
    Ok(names)
}
