//! Metrics that say how far to trust an explanation, beside the deletion and insertion curves:
//! MuFidelity and ROAD (docs/metrics.md), and the model-randomisation sanity check
//! ([`sanity`]). Both take a saved [`Explanation`] and the model it
//! was made with, score the classes [`Target`] chooses, and run images in parallel with
//! results that do not depend on the thread count.

pub mod baselines;
pub mod compare;
mod mufidelity;
mod road;
pub mod sanity;
pub mod stats;

pub use mufidelity::{
    MAX_SAMPLES, MuFidelity, MuFidelityImage, MuFidelityReport, MuFidelityScore, MuFidelityScorer,
    Samples,
};
pub use road::{Road, RoadCurves, RoadImage, RoadReport, RoadScore, RoadScorer};

use serde::{Deserialize, Serialize};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(crate) use crate::faithfulness::{Changed, eval_images};
use crate::faithfulness::{check_recorded_fx, pixel_scores, scored_outputs};
use crate::{BatchModel, ExplainError, Explanation, Result, Target};

/// The metrics of an explanation: what `shap-cli metrics --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// MuFidelity, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mufidelity: Option<MuFidelityReport>,
    /// ROAD, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub road: Option<RoadReport>,
}

/// The metrics' tables, one after the other.
impl std::fmt::Display for MetricsReport {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(m) = &self.mufidelity {
            writeln!(o, "{m}")?;
        }
        if let Some(r) = &self.road {
            writeln!(o, "{r}")?;
        }
        write!(
            o,
            "  MuFidelity near 1 and a large ROAD gap (LeRF above MoRF): the explanation ranks \
             pixels as the model uses them"
        )
    }
}

/// One image of an explanation as a metric sees it: its pixels, its random stream, and the
/// classes to score with their per-pixel attributions.
pub(crate) struct Subject<'a> {
    /// The image, `H x W x C`.
    pub image: &'a [f32],
    /// Its position in the explanation.
    pub position: usize,
    /// The random stream of its draws: the dataset index when recorded, else the position.
    pub stream: u64,
    /// Its dataset index, when recorded.
    pub index: Option<usize>,
    /// Where it came from.
    pub source: String,
    /// The scored classes.
    pub classes: Vec<ScoredClass>,
}

/// One scored class of an image.
pub(crate) struct ScoredClass {
    /// The model output index.
    pub class: usize,
    /// Its name, as the explanation records it.
    pub name: String,
    /// Per pixel, the sum of the channels' values for the class.
    pub phi: Vec<f64>,
}

/// Image `i` of `e` with the classes `target` scores.
pub(crate) fn subject(e: &Explanation, i: usize, target: Target) -> Subject<'_> {
    let (m, k) = (e.num_features(), e.num_outputs);
    let info = e.images.get(i).cloned().unwrap_or_default();
    let classes = scored_outputs(e, i, target)
        .into_iter()
        .map(|o| ScoredClass {
            class: e.output_indices[i * k + o],
            name: e
                .output_names
                .get(i)
                .and_then(|n| n.get(o))
                .cloned()
                .unwrap_or_default(),
            phi: pixel_scores(&e.value_map(i, o), e.shape.channels),
        })
        .collect();
    Subject {
        image: e.data.get(i * m..(i + 1) * m).unwrap_or(&[]),
        position: i,
        stream: info.index.unwrap_or(i) as u64,
        index: info.index,
        source: info.source,
        classes,
    }
}

/// The ChaCha8 generator of a metric's draws for one image.
pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The model's outputs on the unmodified image `i`, checked against the `f(x)` the explanation
/// recorded (an explanation is scored with the model it was made with).
pub(crate) fn checked_outputs<M: BatchModel + ?Sized>(
    model: &M,
    e: &Explanation,
    s: &Subject<'_>,
) -> Result<Vec<f32>> {
    let keeps = vec![true; s.image.len()];
    let unchanged = Changed {
        original: s.image,
        keeps: &keeps,
        images: s.image,
        n: 1,
    };
    let out = eval_images(model, unchanged, e.shape, s.position)?;
    check_recorded_fx(e, s.position, &out)?;
    Ok(out)
}

/// The mean of `f` over every scored class of every image; 0 when none.
pub(crate) fn mean_over<T>(images: &[Vec<T>], f: impl Fn(&T) -> f64) -> f64 {
    let all: Vec<f64> = images.iter().flatten().map(f).collect();
    if all.is_empty() {
        0.0
    } else {
        all.iter().sum::<f64>() / all.len() as f64
    }
}

/// The error when no image had a class to score.
pub(crate) fn nothing_scored() -> ExplainError {
    ExplainError::Missing(
        "no image's predicted class is among its explained classes: explain them with --top-k, \
         or score another target (explained, all)"
            .into(),
    )
}
