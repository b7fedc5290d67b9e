//! The flags that say how to load and run a model, shared by `explain` and `faithfulness`;
//! the loading policy itself is shap-run's (`shap_run::model`, docs/onnx-engines.md).

use std::path::{Path, PathBuf};

use shap_io::OutputSpec;

use shap_explain::InputLayout;
use shap_model::{DeviceSpec, Head};
use shap_run::{Engine, Eval, Options};

/// A saved explanation to score and the model it was made with: the flags `faithfulness` and
/// `metrics` share.
#[derive(clap::Args)]
pub struct ScoredFlags {
    /// The model the explanation was made with (.safetensors or .onnx, loaded as `explain`
    /// loads it; give the same --head/--mean/--std/--softmax).
    #[arg(short, long, value_name = "MODEL.safetensors|MODEL.onnx")]
    pub model: PathBuf,
    /// The explanation (`shap-cli explain --npz`).
    #[arg(long, value_name = "EXPLANATION.npz")]
    pub npz: PathBuf,
    /// Which classes to score: each image's predicted class, its first explained class, or
    /// every explained class.
    #[arg(long, value_enum, default_value = "predicted")]
    pub target: shap_explain::Target,
    /// Seed of the random draws (orders, subsets, noise).
    #[arg(long, default_value_t = super::common::DEFAULT_SEED)]
    pub seed: u64,
    /// Write the scores (per image and class, and their means) as JSON.
    #[arg(long, value_name = "SCORES.json")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub net: ModelFlags,
}

impl ScoredFlags {
    /// Check `--json` and the command's other outputs, apart from each other and from the
    /// inputs.
    pub fn check_outputs(&self, others: &[(Option<&Path>, OutputSpec<'_>)]) -> anyhow::Result<()> {
        let mut outputs = vec![(self.json.as_deref(), OutputSpec::text("--json"))];
        outputs.extend_from_slice(others);
        let inputs = [("--model", self.model.as_path()), ("--npz", &self.npz)];
        Ok(shap_io::check_outputs(&outputs, &inputs)?)
    }
}

/// How to load and run a model: the flags `explain`, `faithfulness` and `metrics` share.
#[derive(clap::Args)]
pub struct ModelFlags {
    #[command(flatten)]
    pub head: super::common::HeadFlags,
    /// Device for the model: cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// How the CNN evaluates masked images. `incremental` (CPU only): each masked image starts
    /// from the closest one already evaluated and only the positions its changed pixels reach
    /// are recomputed; bit-identical to its own full evaluation whatever the history, batch or
    /// thread count, and equal to `full` to float rounding (about 1e-7), several times faster
    /// with blur or constant maskers and the Permutation explainer. `full`: every masked image
    /// through the whole network. `auto`: incremental on the CPU, except that `explain` with an
    /// inpainting masker runs the full network (inpainted fills move pixels far from each mask
    /// difference, so there the full network is faster); full on a GPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub eval: Eval,
    /// ONNX: the model's input layout, when its input shape does not say (default: NCHW when
    /// the dimension after the batch is 1 or 3, NHWC otherwise).
    #[arg(long, value_name = "nchw|nhwc")]
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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch_size: Option<u16>,
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
    /// The loading options these flags describe, with `head` as the head asked for (else the
    /// checkpoint's own), on every thread of the pool.
    pub fn options(&self, head: Option<Head>) -> Options {
        Options {
            library: self.onnxruntime.clone(),
            batch_size: self.batch_size.map(usize::from),
            threads: rayon::current_num_threads(),
            concurrent: usize::MAX,
            device: self.device,
            eval: self.eval,
            head,
            layout: self.input_layout,
            mean: self.mean.clone(),
            std: self.std.clone(),
            softmax: self.softmax,
            engine: self.onnx_engine,
            inpainting: false,
            max_memory: self.max_memory,
        }
    }
}
