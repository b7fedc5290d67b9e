//! The network as a batch function for the explainers.

use shap_explain::{BatchModel, ImageShape, ModelError};

use crate::Error;
use crate::model::{CLASSES, Cnn, CpuWeights, HEIGHT, Head, PIXELS, WIDTH};

/// Default number of images evaluated per call into the network.
pub const DEFAULT_CHUNK: usize = 512;

enum Backend {
    Cpu(CpuWeights),
    Device(Cnn),
}

/// A [`BatchModel`] over a snapshot of a [`Cnn`]: `(n, 28, 28, 1)` f32 images in, `n x 10`
/// outputs (softmax or logits, per the head) out.
///
/// On the CPU it runs the per-image fast path, so outputs for an image are identical whatever
/// batch it arrives in; on a GPU it runs the Candle graph in chunks of [`ModelFn::chunk`]
/// images. The weights are copied when the adapter is built: later training does not affect it.
pub struct ModelFn {
    backend: Backend,
    head: Head,
    chunk: usize,
}

impl ModelFn {
    /// Snapshot `cnn` with its own head.
    pub fn new(cnn: &Cnn) -> Result<Self, Error> {
        Self::with_head(cnn, cnn.head())
    }

    /// Snapshot `cnn`, producing outputs for `head`.
    pub fn with_head(cnn: &Cnn, head: Head) -> Result<Self, Error> {
        let backend = if cnn.device().is_cpu() {
            let mut w = cnn.cpu_weights()?;
            w.head = head;
            Backend::Cpu(w)
        } else {
            let mut c = cnn.clone();
            c.set_head(head);
            Backend::Device(c)
        };
        Ok(Self {
            backend,
            head,
            chunk: DEFAULT_CHUNK,
        })
    }

    /// Set how many images are evaluated per network call (at least 1).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// Images per network call.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// The output head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Evaluate `images.len() / 784` images, returning `n * 10` outputs.
    pub fn predict(&self, images: &[f32]) -> Result<Vec<f32>, Error> {
        let n = images.len() / PIXELS;
        if n * PIXELS != images.len() {
            return Err(Error::Input(format!(
                "{} values is not a whole number of 28x28 images",
                images.len()
            )));
        }
        let mut out = vec![0f32; n * CLASSES];
        self.eval_into(images, &mut out)?;
        Ok(out)
    }

    fn eval_into(&self, images: &[f32], out: &mut [f32]) -> Result<(), Error> {
        shap_explain::in_row_chunks(images, out, (PIXELS, CLASSES), self.chunk, |x, _, o| {
            match &self.backend {
                Backend::Cpu(w) => w.forward(x, o),
                Backend::Device(c) => {
                    let y = c.predict(x, self.head, self.chunk)?;
                    o.copy_from_slice(&y);
                    Ok(())
                }
            }
        })
    }
}

impl BatchModel for ModelFn {
    fn num_outputs(&self) -> usize {
        CLASSES
    }

    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        check_batch(n, shape, images.len(), out.len())?;
        self.eval_into(images, out).map_err(ModelError::backend)
    }

    /// On a GPU, gather the masks of several images into calls of [`ModelFn::chunk`] rows;
    /// the CPU path is fastest one image's masks at a time.
    fn batch_rows(&self) -> Option<usize> {
        match self.backend {
            Backend::Cpu(_) => None,
            Backend::Device(_) => Some(self.chunk),
        }
    }
}

/// Check that `images` and `out` values fit `n` images of the CNN's `(28, 28, 1)` shape.
pub(crate) fn check_batch(
    n: usize,
    shape: ImageShape,
    images: usize,
    out: usize,
) -> Result<(), ModelError> {
    if shape != ImageShape::new(HEIGHT, WIDTH, 1) {
        return Err(ModelError::Shape(format!(
            "the CNN takes (28, 28, 1) images, got {shape}"
        )));
    }
    if images != n * PIXELS || out != n * CLASSES {
        return Err(ModelError::Shape(format!(
            "{n} images need {} input and {} output values, got {images} and {out}",
            n * PIXELS,
            n * CLASSES,
        )));
    }
    Ok(())
}
