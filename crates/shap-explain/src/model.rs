//! The model interface the explainers call.

use shap_mask::ImageShape;

/// Why a model evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model (or its adapter) reported a failure.
    #[error("model evaluation failed: {0}")]
    Failed(String),
    /// The buffers handed to the model do not fit `n` images of the given shape.
    #[error("model input/output size mismatch: {0}")]
    Shape(String),
}

/// A model the explainers can call on a batch of images.
///
/// `images` holds `n` images back to back, each `shape.features()` f32 values in (H, W, C)
/// order. The model writes `n * num_outputs()` f32 values into `out`, row-major `(n, K)`.
/// Implementations must be deterministic for identical inputs, whatever the batch size.
///
/// The explainers send all masks of one Owen step (up to 10) or of one permutation pass
/// (`2M + 1`) in a single call; images are explained in parallel, so `eval_batch` is called
/// from several threads at once. An adapter may split a call into chunks of its own.
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
    f: F,
}

impl<F> FnModel<F>
where
    F: Fn(&[f32], usize, ImageShape, &mut [f32]) -> Result<(), ModelError> + Sync,
{
    /// Wrap `f`, which produces `num_outputs` values per image.
    pub fn new(num_outputs: usize, f: F) -> Self {
        Self { num_outputs, f }
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
}
