//! Metrics that say how far to trust an explanation, beside the deletion and insertion curves:
//! MuFidelity and ROAD (docs/metrics.md). Both take a saved [`Explanation`] and the model it
//! was made with, score the classes [`Target`] chooses, and run images in parallel with
//! results that do not depend on the thread count.

mod mufidelity;
mod road;
pub mod stats;

pub use mufidelity::{
    MuFidelity, MuFidelityImage, MuFidelityReport, MuFidelityScore, MuFidelityScorer, Samples,
};
pub use road::{Road, RoadCurves, RoadImage, RoadReport, RoadScore, RoadScorer};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::faithfulness::{check_recorded_fx, pixel_scores, scored_outputs};
use crate::{BatchModel, ExplainError, Explanation, ImageShape, Result, Target};

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

/// The model's outputs on `n` images (`images`, each `shape`), in calls of its `batch_rows`;
/// a failure or a non-finite output is an error naming explanation image `image`.
pub(crate) fn eval_images<M: BatchModel + ?Sized>(
    model: &M,
    images: &[f32],
    n: usize,
    shape: ImageShape,
    image: usize,
) -> Result<Vec<f32>> {
    let (m, k) = (shape.features(), model.num_outputs());
    let mut out = vec![0.0f32; n * k];
    let chunk = model.batch_rows().unwrap_or(n).max(1);
    for start in (0..n).step_by(chunk) {
        let rows = chunk.min(n - start);
        model
            .eval_batch(
                &images[start * m..(start + rows) * m],
                rows,
                shape,
                &mut out[start * k..(start + rows) * k],
            )
            .map_err(|source| ExplainError::Model { image, source })?;
    }
    if let Some(j) = out.iter().position(|v| !v.is_finite()) {
        return Err(ExplainError::NonFinite {
            image,
            output: j % k,
            value: out[j],
        });
    }
    Ok(out)
}

/// The model's outputs on the unmodified image `i`, checked against the `f(x)` the explanation
/// recorded (an explanation is scored with the model it was made with).
pub(crate) fn checked_outputs<M: BatchModel + ?Sized>(
    model: &M,
    e: &Explanation,
    s: &Subject<'_>,
) -> Result<Vec<f32>> {
    let out = eval_images(model, s.image, 1, e.shape, s.position)?;
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
