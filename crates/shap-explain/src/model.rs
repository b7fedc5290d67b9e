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
/// Room for an incremental path: masked images of one explanation differ from each other
/// only in blocks of the partition tree. A model that can exploit this (recompute early
/// convolutions only near the changed block) can be supported by adding a provided method
/// with a default that calls `eval_batch`, e.g. `eval_masked(reference, images, changed
/// boxes, ...)`; existing implementations keep working unchanged.
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
