//! The model a command explains: the tutorial CNN from a `shap-cli train` checkpoint
//! (`.safetensors`), or any ONNX image classifier (`.onnx`), chosen by the file's extension.
//! For ONNX, which engine runs it (`--onnx-engine`): docs/onnx-engines.md.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use shap_explain::memory::{Bytes, MemoryBudget, MemoryPlan};
use shap_explain::{BatchModel, ImageShape, InputLayout, Normalize};
use shap_model::{Cnn, Head, IncrementalCnn, ModelFn};
use shap_onnx::{OnnxFile, OrtClassifier, OrtDevice, OrtThreads, TractClassifier};

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
    /// graph on onnxruntime when its library is found, else tract.
    Auto,
    /// Every graph on onnxruntime (an error when its library cannot be loaded).
    Onnxruntime,
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
    /// other graph on onnxruntime when its library is found (see --onnxruntime), else tract.
    /// `onnxruntime`: every graph on onnxruntime. `tract`: every graph through tract (pure
    /// Rust, nothing to install).
    #[arg(long, value_enum, default_value = "auto")]
    pub onnx_engine: Engine,
    /// ONNX: the onnxruntime library (libonnxruntime.so...) [default: $ORT_DYLIB_PATH, else
    /// the one in the `onnxruntime` Python package of the python3 on PATH].
    #[arg(long, value_name = "LIB")]
    pub onnxruntime: Option<PathBuf>,
    /// ONNX: masked images per model call, gathered across the images explained together
    /// [default: 16 on onnxruntime on the CPU, 64 on a GPU or tract]. A model whose graph
    /// fixes its batch size runs at that size.
    #[arg(long, value_name = "N", value_parser = clap::builder::ValueParser::new(parse_batch_size))]
    pub batch_size: Option<usize>,
    /// Threads in all [default: $RAYON_NUM_THREADS, else one per core]. onnxruntime's threads
    /// count in it: one session per image explained at once, or one session using every
    /// thread when one image is explained at a time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Most memory the whole process may use (4G, 512M) [default: what the machine has: the
    /// memory available, the cgroup's limit, `ulimit -v`]. A model too large to load within it
    /// is refused before it is read, and `explain` also refuses an explanation estimated above
    /// it before any work (docs/memory.md).
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<shap_explain::memory::Bytes>,
}

impl ModelFlags {
    /// The loading options these flags describe, with `head` as the head asked for and at
    /// most `concurrent` model calls at a time.
    pub fn options(&self, head: Option<super::common::HeadArg>, concurrent: usize) -> Options<'_> {
        Options {
            library: self.onnxruntime.as_deref(),
            batch_size: self.batch_size,
            threads: rayon::current_num_threads(),
            concurrent,
            device: &self.device,
            eval: self.eval,
            head,
            layout: self.input_layout,
            mean: &self.mean,
            std: &self.std,
            softmax: self.softmax,
            engine: self.onnx_engine,
            max_memory: self.max_memory,
        }
    }
}

/// The memory a run may still use: `--max-memory` within what the machine has.
pub fn memory_budget(max: Option<Bytes>) -> MemoryBudget {
    max.map_or_else(MemoryBudget::detect, MemoryBudget::at_most)
}

/// `--batch-size`'s parser: 1 to 4096.
fn parse_batch_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err(format!("'{s}': give a number of images from 1 to 4096")),
    }
}

/// `--input-layout`'s parser.
fn parse_layout(s: &str) -> Result<InputLayout, String> {
    s.parse()
        .map_err(|e: shap_explain::ExplainError| e.to_string())
}

/// What the user said about the model besides its file.
pub struct Options<'a> {
    /// `--onnxruntime`.
    pub library: Option<&'a Path>,
    /// `--batch-size`.
    pub batch_size: Option<usize>,
    /// Threads in all.
    pub threads: usize,
    /// `--max-memory`.
    pub max_memory: Option<Bytes>,
    /// Model calls that may run at once (1 when images are explained one after another).
    pub concurrent: usize,
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
    pub fn outputs_kind(&self) -> &'static str {
        if self.probabilities() {
            "probabilities"
        } else {
            "logits"
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
/// on shap-model's kernels (equal to the general engines' results to float rounding, and much
/// faster).
fn native_onnx(file: &OnnxFile, o: &Options<'_>) -> Result<Option<Network>> {
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
    note!(
        "{} is the tutorial CNN: it runs on shap-model's own kernels (--onnx-engine \
         onnxruntime or tract runs it on a general engine)",
        file.path().display()
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
    let device = onnx_device(o)?;
    check_model_file(path, o)?;
    let file = OnnxFile::open(path)?;
    check_model_input(&file, o)?;
    if device == OrtDevice::Cpu
        && let Some(net) = native_onnx(&file, o)?
    {
        return Ok(net);
    }
    if o.eval == Eval::Incremental {
        bail!(
            "--eval incremental is the tutorial CNN's own path; this ONNX model runs on a general engine"
        );
    }
    let probabilities = o.softmax || file.ends_in_softmax();
    if o.softmax && file.ends_in_softmax() {
        warning!(
            "{} already ends in a softmax; --softmax applies a second one",
            path.display()
        );
    }
    let norm = normalize(o, &file)?;
    let layout = file.input_layout(o.layout)?;
    let shape = file.image_shape(o.layout)?;
    let external = file.external_files().to_vec();
    let (model, engine) = match choose_engine(o, device)? {
        Some(lib) => on_onnxruntime(&file, o, norm, device, lib)?,
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
fn check_model_file(path: &Path, o: &Options<'_>) -> Result<()> {
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
fn check_model_input(file: &OnnxFile, o: &Options<'_>) -> Result<()> {
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
    o: &Options<'_>,
    norm: Normalize,
    device: OrtDevice,
    lib: &shap_onnx::OrtLibrary,
) -> Result<(Box<dyn BatchModel + Send>, String)> {
    let t = OrtThreads::for_work(o.threads, o.concurrent);
    let mut m = OrtClassifier::new(file, o.layout, t, device)?
        .with_normalize(norm)?
        .with_softmax(o.softmax);
    if let Some(rows) = o.batch_size {
        m = m.with_max_rows(rows);
    }
    note!(
        "engine onnxruntime {} ({}: {}), {} session(s) x {} thread(s)",
        lib.version,
        lib.source,
        lib.path.display(),
        t.sessions,
        t.intra
    );
    Ok((Box::new(m), format!("onnxruntime {}", lib.version)))
}

/// An ONNX model on tract, and the engine as recorded.
fn on_tract(
    file: OnnxFile,
    o: &Options<'_>,
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
fn normalize(o: &Options<'_>, file: &OnnxFile) -> Result<Normalize> {
    let channels = file.image_shape(o.layout)?.channels;
    let mean: &[f32] = if o.mean.is_empty() { &[0.0] } else { o.mean };
    let std: &[f32] = if o.std.is_empty() { &[1.0] } else { o.std };
    Normalize::new(channels, 1.0, mean, std).context("--mean/--std do not fit the model")
}

/// Where an ONNX model runs: the CPU, or a CUDA GPU through onnxruntime.
fn onnx_device(o: &Options<'_>) -> Result<OrtDevice> {
    let (kind, index) = o.device.split_once(':').unwrap_or((o.device, "0"));
    match kind {
        "cpu" => Ok(OrtDevice::Cpu),
        "cuda" if o.engine != Engine::Tract => Ok(OrtDevice::Cuda(
            index
                .parse()
                .context("--device cuda:N: N is not a GPU number")?,
        )),
        _ => bail!(
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
    o: &Options<'_>,
    device: OrtDevice,
) -> Result<Option<&'static shap_onnx::OrtLibrary>> {
    match o.engine {
        Engine::Tract => {
            note!("engine tract (--onnx-engine tract)");
            Ok(None)
        }
        Engine::Onnxruntime => Ok(Some(shap_onnx::runtime::load(o.library)?)),
        Engine::Auto if device != OrtDevice::Cpu => Ok(Some(
            shap_onnx::runtime::load(o.library).context("a GPU needs onnxruntime")?,
        )),
        Engine::Auto => match shap_onnx::runtime::load(o.library) {
            Ok(lib) => Ok(Some(lib)),
            Err(e) => {
                note!(
                    "engine tract, as onnxruntime cannot be used: {:#}",
                    anyhow::Error::from(e)
                );
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
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{}: the labels file is not UTF-8 text", path.display()))?;
    // Control characters (an ANSI escape sequence, say) never reach a terminal or a file.
    let names: Vec<String> = text
        .lines()
        .map(|l| super::common::printable(l.trim_end()).into_owned())
        .collect();
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
