//! A run's settings, typed, and the one codec between them and what an explanation file
//! records: a list of names and text values in the `.npz` (and the journal), the same values
//! as numbers and booleans in the JSON summary. Files written by earlier versions decode too:
//! a setting they did not record takes the value those versions used.

use std::ops::Range;

use shap_explain::{Algorithm, Compat, InputLayout, OutputSelection, Settings};
use shap_mask::MaskerSpec;

use crate::error::{Result, refuse};

/// How the model evaluated masked images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// The tutorial CNN, recomputing only what each changed pixel reaches.
    Incremental,
    /// The tutorial CNN, every masked image through the whole network.
    Full,
    /// An ONNX graph on a general engine.
    Onnx,
}

impl Evaluation {
    /// `incremental`, `full` or `onnx`, as recorded.
    pub fn name(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::Full => "full",
            Self::Onnx => "onnx",
        }
    }
}

/// What the explained outputs are (the record type that evaluations also write).
pub use shap_records::Outputs;

/// Which model a run explained: its file name and the SHA-256 of its numbers (the file, and
/// any external data files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    /// The model's file name (no folder).
    pub file_name: String,
    /// [`crate::digest::sha256_files`] of the model.
    pub sha256: String,
}

/// Everything that decides a run's numbers. Two runs with equal settings over the same images
/// compute the same values; a journal or a finished file of other settings is never reused.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Partition or Permutation.
    pub algorithm: Algorithm,
    /// The masker, in shap's spelling.
    pub masker: MaskerSpec,
    /// Model evaluations per image; `None` for the algorithm's default.
    pub max_evals: Option<usize>,
    /// The seed of the orders and tie-breaks.
    pub seed: u64,
    /// Ours, or shap 0.51's exact behaviour.
    pub compat: Compat,
    /// How masked images were evaluated.
    pub evaluation: Evaluation,
    /// What ran the model: `shap-model`, `onnxruntime 1.32.0`, `tract 0.23.9`.
    pub engine: String,
    /// Masked images per model call; `None` for one call per image.
    pub batch_size: Option<usize>,
    /// Probabilities or logits.
    pub outputs: Outputs,
    /// Which classes each image explains.
    pub classes: OutputSelection,
    /// The ONNX input layout (`None` for the tutorial CNN).
    pub input_layout: Option<InputLayout>,
    /// Per-channel mean subtracted after masking (empty: none).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by (empty: none).
    pub std: Vec<f32>,
    /// Whether a softmax was applied to an ONNX model's outputs.
    pub softmax: bool,
    /// SHA-256 of the class-names file, when one was given.
    pub labels_sha256: Option<String>,
    /// The model.
    pub model: ModelIdentity,
}

/// Where a shard sits in the whole selection, and which selection it is a slice of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its images' positions in the whole selection.
    pub positions: Range<usize>,
    /// The whole selection's size.
    pub selection: usize,
    /// SHA-256 of the whole selection's sources ([`crate::Selection::sources_sha256`]).
    pub sources_sha256: String,
}

/// The recorded names of [`Placement`]'s fields.
pub(crate) const POSITIONS: &str = "positions";
pub(crate) const SELECTION: &str = "selection";
pub(crate) const SELECTION_SOURCES: &str = "selection_sources_sha256";
/// Recorded in the final file's summary: the incremental path's share of a full evaluation's
/// work over all chunks (a statistic of the processes that ran, not a setting).
pub const WORK_FRACTION: &str = "incremental_work_fraction";

impl RunSettings {
    /// The settings as a file records them, in the order earlier versions wrote them.
    pub fn record(&self) -> Settings {
        let max_evals = match (self.max_evals, self.algorithm) {
            (Some(m), _) => m.to_string(),
            (None, Algorithm::Permutation) => "default (10 passes)".into(),
            (None, Algorithm::Partition) => "default (500)".into(),
        };
        let fields = [
            ("algorithm", self.algorithm.name().to_string()),
            ("masker", self.masker.to_string()),
            ("max_evals", max_evals),
            ("seed", self.seed.to_string()),
            ("shap_compat", self.compat.is_shap().to_string()),
            ("evaluation", self.evaluation.name().to_string()),
            ("engine", self.engine.clone()),
            (
                "batch_size",
                self.batch_size
                    .map_or("per image".into(), |n| n.to_string()),
            ),
            ("outputs", self.outputs.name().to_string()),
            ("classes", classes_text(&self.classes)),
            (
                "input_layout",
                self.input_layout.map_or("-".into(), |l| l.to_string()),
            ),
            ("mean", list_text(&self.mean)),
            ("std", list_text(&self.std)),
            ("softmax", self.softmax.to_string()),
            (
                "labels_sha256",
                self.labels_sha256.clone().unwrap_or_else(|| "-".into()),
            ),
            ("model", self.model.file_name.clone()),
            ("model_sha256", self.model.sha256.clone()),
        ];
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// The settings a file records. `algorithm` and `masker` must be there; anything an
    /// earlier version did not record takes the value it used (no preprocessing, no softmax,
    /// one call per image, the top 5).
    pub fn from_record(record: &Settings) -> Result<Self> {
        let get = |k: &str| record.get(k);
        let Some(algorithm) = get("algorithm") else {
            refuse!("the explanation does not record its algorithm");
        };
        let algorithm = match algorithm {
            "partition" => Algorithm::Partition,
            "permutation" => Algorithm::Permutation,
            other => refuse!("recorded algorithm '{other}' is not partition or permutation"),
        };
        let Some(masker) = get("masker") else {
            refuse!("the explanation does not record the masker it was made with");
        };
        let masker: MaskerSpec = masker.parse()?;
        let number = |k: &str| get(k).and_then(|v| v.parse::<usize>().ok());
        Ok(Self {
            algorithm,
            masker,
            max_evals: number("max_evals"),
            seed: get("seed").and_then(|v| v.parse().ok()).unwrap_or(0),
            compat: if get("shap_compat") == Some("true") {
                Compat::Shap
            } else {
                Compat::Default
            },
            evaluation: match get("evaluation") {
                Some("incremental") => Evaluation::Incremental,
                Some("onnx") => Evaluation::Onnx,
                _ => Evaluation::Full,
            },
            engine: get("engine").unwrap_or("shap-model").to_string(),
            batch_size: number("batch_size"),
            outputs: match get("outputs") {
                Some("logits") => Outputs::Logits,
                _ => Outputs::Probabilities,
            },
            classes: get("classes").map_or(Ok(OutputSelection::default()), parse_classes)?,
            input_layout: get("input_layout").and_then(|l| l.parse().ok()),
            mean: get("mean").map_or(Ok(Vec::new()), parse_list)?,
            std: get("std").map_or(Ok(Vec::new()), parse_list)?,
            softmax: get("softmax") == Some("true"),
            labels_sha256: get("labels_sha256")
                .filter(|v| *v != "-")
                .map(str::to_string),
            model: ModelIdentity {
                file_name: get("model").unwrap_or_default().to_string(),
                sha256: get("model_sha256").unwrap_or_default().to_string(),
            },
        })
    }
}

impl Placement {
    /// The placement as a file records it.
    pub fn record(&self) -> Settings {
        [
            (
                POSITIONS,
                format!("{}..{}", self.positions.start, self.positions.end),
            ),
            (SELECTION, self.selection.to_string()),
            (SELECTION_SOURCES, self.sources_sha256.clone()),
        ]
        .into_iter()
        .collect()
    }

    /// The placement a part of a sharded run records, checked against its `images`.
    pub fn from_record(record: &Settings, images: usize) -> Result<Self> {
        let get = |k: &str| record.get(k);
        let (Some(p), Some(total)) = (get(POSITIONS), get(SELECTION)) else {
            refuse!(
                "not a part of a sharded run (no positions recorded): explain it with --shard I/N"
            );
        };
        let positions = crate::slicing::parse_range(p).map_err(crate::Error::Refused)?;
        let Ok(selection) = total.parse::<usize>() else {
            refuse!("the recorded selection size '{total}' is not a number");
        };
        if positions.len() != images || positions.end > selection {
            refuse!("its recorded positions {p} do not fit its {images} images");
        }
        Ok(Self {
            positions,
            selection,
            sources_sha256: get(SELECTION_SOURCES).unwrap_or_default().to_string(),
        })
    }
}

/// Which classes each image explains, as recorded: `top 5`, `all` or `3,5`.
fn classes_text(outputs: &OutputSelection) -> String {
    match outputs {
        OutputSelection::TopK(k) => format!("top {k}"),
        other => other.to_string(),
    }
}

fn parse_classes(text: &str) -> Result<OutputSelection> {
    Ok(text.replace("top ", "top").parse()?)
}

/// `--mean`/`--std` values as recorded: `0.485,0.456,0.406`, or `-` when not given.
fn list_text(v: &[f32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    v.join(",")
}

fn parse_list(text: &str) -> Result<Vec<f32>> {
    if text == "-" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|x| match x.parse::<f32>() {
            Ok(v) => Ok(v),
            Err(_) => refuse!("recorded value list '{text}' is not numbers"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onnx_run() -> RunSettings {
        RunSettings {
            algorithm: Algorithm::Permutation,
            masker: "blur(32,32)".parse().expect("spec"),
            max_evals: None,
            seed: 7,
            compat: Compat::Default,
            evaluation: Evaluation::Onnx,
            engine: "onnxruntime 1.32.0".into(),
            batch_size: Some(16),
            outputs: Outputs::Logits,
            classes: OutputSelection::Indices(vec![3, 5]),
            input_layout: Some(InputLayout::Nchw),
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            softmax: true,
            labels_sha256: Some("ab".repeat(32)),
            model: ModelIdentity {
                file_name: "resnet18.onnx".into(),
                sha256: "cd".repeat(32),
            },
        }
    }

    #[test]
    fn settings_survive_their_record() {
        let run = onnx_run();
        assert_eq!(
            RunSettings::from_record(&run.record()).expect("decode"),
            run
        );
        let tutorial = RunSettings {
            algorithm: Algorithm::Partition,
            masker: "inpaint_telea".parse().expect("spec"),
            max_evals: Some(500),
            compat: Compat::Shap,
            evaluation: Evaluation::Incremental,
            engine: "shap-model".into(),
            batch_size: None,
            outputs: Outputs::Probabilities,
            classes: OutputSelection::TopK(5),
            input_layout: None,
            mean: vec![],
            std: vec![],
            softmax: false,
            labels_sha256: None,
            ..run
        };
        assert_eq!(
            RunSettings::from_record(&tutorial.record()).expect("decode"),
            tutorial
        );
    }

    #[test]
    fn the_record_is_what_earlier_versions_wrote() {
        let record = onnx_run().record();
        let get = |k: &str| record.get(k);
        assert_eq!(get("max_evals"), Some("default (10 passes)"));
        assert_eq!(get("classes"), Some("3,5"));
        assert_eq!(get("shap_compat"), Some("false"));
        assert_eq!(get("batch_size"), Some("16"));
        assert_eq!(get("mean"), Some("0.485,0.456,0.406"));
        let names: Vec<&str> = record.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"algorithm"));
        assert_eq!(names.last(), Some(&"model_sha256"));
        assert_eq!(names.len(), 17);
    }

    #[test]
    fn an_old_record_decodes_with_the_values_it_meant() {
        let old: Settings = [
            ("algorithm", "partition"),
            ("masker", "blur(28,28)"),
            ("max_evals", "default (500)"),
            ("seed", "0"),
            ("shap_compat", "true"),
            ("outputs", "logits"),
            ("classes", "top 5"),
        ]
        .into_iter()
        .collect();
        let run = RunSettings::from_record(&old).expect("decode");
        assert_eq!(run.max_evals, None);
        assert_eq!(run.compat, Compat::Shap);
        assert_eq!(run.outputs, Outputs::Logits);
        assert_eq!(run.classes, OutputSelection::TopK(5));
        assert!(run.mean.is_empty() && !run.softmax && run.input_layout.is_none());
        let mut no_masker = old.clone();
        no_masker.retain(|s| s.name != "masker");
        assert!(RunSettings::from_record(&no_masker).is_err());
    }

    #[test]
    fn a_placement_must_fit_its_images() {
        let p = Placement {
            positions: 10..20,
            selection: 40,
            sources_sha256: "ef".repeat(32),
        };
        assert_eq!(Placement::from_record(&p.record(), 10).expect("fits"), p);
        assert!(Placement::from_record(&p.record(), 9).is_err());
        assert!(Placement::from_record(&Settings::new(), 10).is_err());
    }
}
