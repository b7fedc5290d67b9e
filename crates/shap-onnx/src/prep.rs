//! What both engines do around the model: normalise the masked images, lay them out as the
//! model wants, cut a large request into calls, and apply the optional softmax.

use shap_explain::{ImageShape, InputLayout, ModelError, Normalize};

/// The preprocessing and postprocessing of one model.
#[derive(Debug, Clone)]
pub(crate) struct Prep {
    pub shape: ImageShape,
    pub layout: InputLayout,
    pub norm: Normalize,
    pub softmax: bool,
    /// Outputs per image, `K` (0 until probed).
    pub k: usize,
}

impl Prep {
    pub fn new(shape: ImageShape, layout: InputLayout) -> Self {
        Self {
            shape,
            layout,
            norm: Normalize::identity(shape.channels),
            softmax: false,
            k: 0,
        }
    }

    /// Use `norm` (checked against the images' channels) before the model sees the images.
    pub fn set_normalize(&mut self, norm: Normalize) -> Result<(), crate::OnnxError> {
        norm.check_channels(self.shape.channels)
            .map_err(crate::OnnxError::Config)?;
        self.norm = norm;
        Ok(())
    }

    /// The model's input dims for `n` images.
    pub fn dims(&self, n: usize) -> [usize; 4] {
        let s = self.shape;
        match self.layout {
            InputLayout::Nchw => [n, s.channels, s.height, s.width],
            InputLayout::Nhwc => [n, s.height, s.width, s.channels],
        }
    }

    /// `n` pixel-space (H, W, C) images, normalised and in the model's layout, padded with
    /// zero images to `rows` images.
    pub fn input(&self, images: &[f32], rows: usize) -> Vec<f32> {
        let mut px = images.to_vec();
        self.norm.apply(&mut px);
        let mut data = Vec::with_capacity(rows * self.shape.features());
        self.layout.arrange(&px, self.shape, &mut data);
        data.resize(rows * self.shape.features(), 0.0);
        data
    }

    /// Copy the first `out.len()` model outputs (of `rows` rows) into `out`, softmaxed when
    /// asked.
    pub fn output(&self, y: &[f32], rows: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let k = self.k;
        if y.len() != rows * k {
            return Err(ModelError::Shape(format!(
                "the model returned {} values for {rows} images of {k} outputs",
                y.len()
            )));
        }
        out.copy_from_slice(&y[..out.len()]);
        if self.softmax {
            out.chunks_exact_mut(k).for_each(softmax);
        }
        Ok(())
    }

    /// Call `f(images, n, out)` on consecutive pieces of at most `rows` images.
    pub fn in_calls(
        &self,
        images: &[f32],
        out: &mut [f32],
        rows: usize,
        f: impl FnMut(&[f32], usize, &mut [f32]) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let sizes = (self.shape.features(), self.k);
        shap_explain::in_row_chunks(images, out, sizes, rows, f)
    }
}

/// Softmax of one row, in place (max-subtracted, f32 like the model's outputs).
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}
