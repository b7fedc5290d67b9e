//! The model interface the explainers call.

use shap_mask::ImageShape;

/// Why a model evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model's runtime (Candle, an ONNX runtime, user code) failed; the cause is kept.
    #[error("the model's runtime failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The buffers handed to the model do not fit `n` images of the given shape.
    #[error("model input/output size mismatch: {0}")]
    Shape(String),
}

impl ModelError {
    /// Wrap a runtime error, keeping it as the cause.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }

    /// Check an `eval_batch` call against a model that takes images of `takes` and gives `k`
    /// outputs: `n` images of `shape` in `images` values, room for `out` outputs.
    pub fn check_batch(
        takes: ImageShape,
        k: usize,
        shape: ImageShape,
        n: usize,
        images: usize,
        out: usize,
    ) -> Result<(), Self> {
        if shape == takes
            && Some(images) == n.checked_mul(takes.features())
            && Some(out) == n.checked_mul(k)
        {
            return Ok(());
        }
        Err(Self::Shape(format!(
            "the model takes {takes} images and gives {k} outputs; got {n} images of {shape} in \
             {images} values with room for {out} outputs"
        )))
    }
}

/// A model the explainers can call on a batch of images.
///
/// `images` holds `n` images back to back, each `shape.features()` f32 values in (H, W, C)
/// order. The model writes `n * num_outputs()` f32 values into `out`, row-major `(n, K)`.
/// Implementations must be deterministic for identical inputs, whatever the batch size.
///
/// By default the explainers send all masks of one Owen step (up to 10) or of one permutation
/// pass (`2M + 1`, split beyond 4M values) in a single call; images are explained in parallel,
/// so `eval_batch` is called from several threads at once. A model that wants larger calls (a
/// GPU, an ONNX runtime) returns `Some(n)` from [`BatchModel::batch_rows`]: the explainers then
/// gather the masks of several images into calls of up to `n` rows. Results are the same
/// either way, bit for bit, as long as the model itself gives each row the same output
/// whatever batch it arrives in.
///
/// Incremental evaluation: masked images of one explanation differ from each other only in
/// blocks of the partition tree, so a model that can exploit this (recompute its first
/// convolutions only near the changed pixels, say) overrides [`BatchModel::eval_masked`], which
/// the explainers call with the masks beside the masked images. Its default is `eval_batch`.
pub trait BatchModel: Sync {
    /// Number of outputs `K` per image.
    fn num_outputs(&self) -> usize;

    /// Evaluate `n` images. `images.len() == n * shape.features()`, `out.len() == n * K`.
    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError>;

    /// Evaluate the masked images of one explained image, knowing the masks that produced
    /// them. The explainers always call this; override it for an incremental path. It must
    /// return what `eval_batch(batch.images, batch.n, batch.shape, out)` returns (the default
    /// does exactly that). `out.len() == batch.n * K`.
    fn eval_masked(&self, batch: MaskedBatch<'_>, out: &mut [f32]) -> Result<(), ModelError> {
        self.eval_batch(batch.images, batch.n, batch.shape, out)
    }

    /// Rows per model call when gathering masks across explained images; `None` (the
    /// default) evaluates each image's masks on their own, from many threads, through
    /// [`BatchModel::eval_masked`]. With `Some(n)` the explainers call
    /// [`BatchModel::eval_batch`] with up to `n` rows mixing several images.
    fn batch_rows(&self) -> Option<usize> {
        None
    }
}

/// Call `f(images, n, out)` on consecutive pieces of at most `rows` images: the one row
/// chunking of every adapter (Candle, ONNX), so a model's calls never pass its `batch_rows`.
/// `images` holds whole images of `features` values and `out` their `k` outputs each.
pub fn in_row_chunks<E>(
    images: &[f32],
    out: &mut [f32],
    (features, k): (usize, usize),
    rows: usize,
    mut f: impl FnMut(&[f32], usize, &mut [f32]) -> Result<(), E>,
) -> Result<(), E> {
    let (m, rows) = (features.max(1), rows.max(1));
    for (x, o) in images.chunks(rows * m).zip(out.chunks_mut(rows * k)) {
        f(x, x.len() / m, o)?;
    }
    Ok(())
}

/// One model call's worth of masked versions of a single explained image, with the masks that
/// produced them: what an incremental model needs ([`BatchModel::eval_masked`]).
#[derive(Debug, Clone, Copy)]
pub struct MaskedBatch<'a> {
    /// The explained image, `shape.features()` values in (H, W, C) order.
    pub original: &'a [f32],
    /// `n` masks back to back, `shape.features()` bools each (`true` = feature kept).
    pub keeps: &'a [bool],
    /// The `n` masked images the masker made from `original` and `keeps`.
    pub images: &'a [f32],
    /// Number of images.
    pub n: usize,
    /// Shape of every image.
    pub shape: ImageShape,
}

/// Adapts a closure `(images, n, shape, out) -> Result<(), ModelError>` into a [`BatchModel`].
pub struct FnModel<F> {
    num_outputs: usize,
    batch_rows: Option<usize>,
    f: F,
}

impl<F> FnModel<F>
where
    F: Fn(&[f32], usize, ImageShape, &mut [f32]) -> Result<(), ModelError> + Sync,
{
    /// Wrap `f`, which produces `num_outputs` values per image.
    pub fn new(num_outputs: usize, f: F) -> Self {
        Self {
            num_outputs,
            batch_rows: None,
            f,
        }
    }

    /// Ask the explainers to gather masks across images into calls of up to `rows` rows
    /// (at least 1); see [`BatchModel::batch_rows`].
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = Some(rows.max(1));
        self
    }
}

impl<F> BatchModel for FnModel<F>
where
    F: Fn(&[f32], usize, ImageShape, &mut [f32]) -> Result<(), ModelError> + Sync,
{
    fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        (self.f)(images, n, shape, out)
    }

    fn batch_rows(&self) -> Option<usize> {
        self.batch_rows
    }
}
