//! Any Candle image classifier as a [`BatchModel`]: a `candle_nn::Module` (or a closure
//! `Fn(&Tensor) -> candle_core::Result<Tensor>`, which Candle makes a `Module`) that maps a
//! batch of images to `(n, K)` scores.
//!
//! The maskers work on pixel-space images in (H, W, C) order, values usually in [0, 1]. The
//! adapter turns each batch into what the network expects: `x * scale`, then per channel
//! `(x - mean[c]) / std[c]` (torchvision's `Normalize`), laid out NCHW or NHWC, on the chosen
//! device ([`Normalize`], [`InputLayout`]); it checks that the network answers `(n, K)`, applies a softmax if asked, and copies
//! the scores back. Calls hold at most [`ClassifierBuilder::max_rows`] images, and the
//! explainers gather the masks of several images into such calls
//! ([`BatchModel::batch_rows`]), which is what a GPU needs.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use shap_explain::{ExplainerConfig, ImageShape};
//! use shap_explain::{InputLayout, Normalize};
//! use shap_model::CandleClassifier;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let conv = candle_nn::conv2d(3, 4, 3, Default::default(), vb.pp("conv"))?;
//! let fc = candle_nn::linear(4, 3, vb.pp("fc"))?;
//! // NCHW in, 3 logits out.
//! let net = move |x: &Tensor| fc.forward(&conv.forward(x)?.relu()?.mean((2, 3))?);
//! let shape = ImageShape::new(12, 10, 3);
//! let model = CandleClassifier::builder(net, shape)
//!     .layout(InputLayout::Nchw)
//!     .normalize(Normalize::new(3, 1.0, &[0.5], &[0.25])?)?
//!     .softmax(true)
//!     .build()?;
//! let image = vec![0.3f32; shape.features()];
//! let explainer = ExplainerConfig::partition().check()?;
//! let e = explainer.explain(&model, &image, shape, &shap_explain::ConstantMasker { value: 0.0 })?;
//! assert_eq!(e.num_outputs, 3);
//! # Ok(()) }
//! ```

use candle_core::{DType, Device, Module, Tensor};
use shap_explain::{BatchModel, ImageShape, InputLayout, ModelError, Normalize};

use crate::Error;

/// Default images per call of the network.
pub const DEFAULT_MAX_ROWS: usize = 64;

/// Builds a [`CandleClassifier`]; see the module docs.
pub struct ClassifierBuilder<M> {
    module: M,
    shape: ImageShape,
    device: Device,
    layout: InputLayout,
    norm: Normalize,
    softmax: bool,
    max_rows: usize,
}

impl<M: Module + Sync> ClassifierBuilder<M> {
    /// Run the network on this device (default: the CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The network's input layout (default NCHW).
    pub fn layout(mut self, layout: InputLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Preprocess the masked images with `norm` (torchvision's `Normalize`, with a rescale);
    /// default: none. Its channel count must be the images'.
    pub fn normalize(mut self, norm: Normalize) -> Result<Self, Error> {
        norm.check_channels(self.shape.channels)
            .map_err(|e| Error::Config(e.to_string()))?;
        self.norm = norm;
        Ok(self)
    }

    /// Apply a softmax to the network's outputs (default: explain them as returned).
    pub fn softmax(mut self, softmax: bool) -> Self {
        self.softmax = softmax;
        self
    }

    /// At most this many images per network call (default [`DEFAULT_MAX_ROWS`]; at least 1).
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows.max(1);
        self
    }

    /// Check the network on one blank image (it must answer `(1, K)` with `K >= 1`) and build
    /// the adapter.
    pub fn build(self) -> Result<CandleClassifier<M>, Error> {
        let mut c = CandleClassifier {
            module: self.module,
            shape: self.shape,
            device: self.device,
            layout: self.layout,
            norm: self.norm,
            softmax: self.softmax,
            max_rows: self.max_rows,
            num_outputs: 0,
        };
        let probe = c.forward(&vec![0.0; self.shape.features()], 1)?;
        if probe.is_empty() {
            return Err(Error::Input("the network returned no outputs".into()));
        }
        c.num_outputs = probe.len();
        Ok(c)
    }
}

/// A Candle image classifier as a [`BatchModel`]; see the module docs.
pub struct CandleClassifier<M> {
    module: M,
    shape: ImageShape,
    device: Device,
    layout: InputLayout,
    norm: Normalize,
    softmax: bool,
    max_rows: usize,
    num_outputs: usize,
}

impl<M: Module + Sync> CandleClassifier<M> {
    /// Start building an adapter for `module` on images of `shape` (pixel space, (H, W, C)).
    pub fn builder(module: M, shape: ImageShape) -> ClassifierBuilder<M> {
        ClassifierBuilder {
            module,
            shape,
            device: Device::Cpu,
            layout: InputLayout::default(),
            norm: Normalize::identity(shape.channels),
            softmax: false,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }

    /// The image shape the adapter takes.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Explain a batch of images given as a Candle tensor in the network's own layout
    /// (`(n, C, H, W)` for NCHW, `(n, H, W, C)` for NHWC, as [`ClassifierBuilder::layout`]
    /// says), in pixel space (before normalisation; [0, 1] for the inpainting maskers), on
    /// any device and of any float dtype.
    ///
    /// ```
    /// # use candle_core::{DType, Device, Module, Tensor};
    /// # use candle_nn::{VarBuilder, VarMap};
    /// # use shap_explain::{Explainer, ImageShape, InputLayout, Normalize};
    /// # use shap_model::CandleClassifier;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let vars = VarMap::new();
    /// # let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    /// # let fc = candle_nn::linear(3, 4, vb.pp("fc"))?;
    /// # let net = move |x: &Tensor| fc.forward(&x.mean((2, 3))?);
    /// let model = CandleClassifier::builder(net, ImageShape::new(16, 16, 3))
    ///     .layout(InputLayout::Nchw)
    ///     .normalize(Normalize::imagenet())?
    ///     .build()?;
    /// let explainer = Explainer::partition("blur(8,8)").max_evals(100).top_k(2).build()?;
    /// let images = Tensor::rand(0f32, 1f32, (2, 3, 16, 16), &Device::Cpu)?;
    /// let e = model.explain(&explainer, &images)?;
    /// assert_eq!((e.num_images, e.num_outputs), (2, 2));
    /// # Ok(()) }
    /// ```
    pub fn explain(
        &self,
        explainer: &shap_explain::MaskedExplainer,
        images: &Tensor,
    ) -> Result<shap_explain::Explanation, Error> {
        let s = self.shape;
        let want = |n| match self.layout {
            InputLayout::Nchw => vec![n, s.channels, s.height, s.width],
            InputLayout::Nhwc => vec![n, s.height, s.width, s.channels],
        };
        let dims = images.dims().to_vec();
        if dims.len() != 4 || dims != want(dims[0]) {
            return Err(Error::Input(format!(
                "images of shape {dims:?}; this classifier takes ({}) batches {:?}",
                match self.layout {
                    InputLayout::Nchw => "N, C, H, W",
                    InputLayout::Nhwc => "N, H, W, C",
                },
                want(0).get(1..).unwrap_or(&[])
            )));
        }
        let hwc = match self.layout {
            InputLayout::Nchw => images.permute((0, 2, 3, 1))?,
            InputLayout::Nhwc => images.clone(),
        };
        let pixels = hwc.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(explainer.explain(self, &pixels, s)?)
    }

    /// The values of `e` as a tensor in this classifier's layout, on its device: `(n, k, C, H,
    /// W)` for NCHW and `(n, k, H, W, C)` for NHWC (image, explained output, then one map in
    /// the layout the network takes), in f32. `e.output_indices` says which output each `k`
    /// is.
    ///
    /// ```
    /// # use candle_core::{DType, Device, Module, Tensor};
    /// # use candle_nn::{VarBuilder, VarMap};
    /// # use shap_explain::{Explainer, ImageShape, InputLayout};
    /// # use shap_model::CandleClassifier;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let vars = VarMap::new();
    /// # let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    /// # let fc = candle_nn::linear(3, 4, vb.pp("fc"))?;
    /// # let net = move |x: &Tensor| fc.forward(&x.mean((2, 3))?);
    /// let model = CandleClassifier::builder(net, ImageShape::new(8, 8, 3))
    ///     .layout(InputLayout::Nchw)
    ///     .build()?;
    /// let explainer = Explainer::partition("0").max_evals(60).top_k(2).build()?;
    /// let e = model.explain(&explainer, &Tensor::rand(0f32, 1f32, (2, 3, 8, 8), &Device::Cpu)?)?;
    /// let v = model.values(&e)?;
    /// assert_eq!(v.dims(), &[2, 2, 3, 8, 8]);
    /// // Image 1, its second explained output, channel 0, row 4, column 5:
    /// let one = v.get(1)?.get(1)?.get(0)?.get(4)?.get(5)?.to_scalar::<f32>()?;
    /// assert_eq!(f64::from(one), e.value(1, (4 * 8 + 5) * 3, 1).unwrap() as f32 as f64);
    /// # Ok(()) }
    /// ```
    pub fn values(&self, e: &shap_explain::Explanation) -> Result<Tensor, Error> {
        let s = e.shape;
        let (n, k) = (e.num_images, e.num_outputs);
        let flat: Vec<f32> = e.values.iter().map(|&v| v as f32).collect();
        // Stored (n, H, W, C, k): outputs to the front, then the network's layout.
        let t = Tensor::from_vec(flat, (n, s.height, s.width, s.channels, k), &self.device)?;
        let t = match self.layout {
            InputLayout::Nchw => t.permute((0, 4, 3, 1, 2))?,
            InputLayout::Nhwc => t.permute((0, 4, 1, 2, 3))?,
        };
        Ok(t.contiguous()?)
    }

    /// Evaluate `n` images (at most `max_rows`), returning `n * K` scores.
    fn forward(&self, images: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        let s = self.shape;
        let mut data = images.to_vec();
        self.norm.apply(&mut data);
        let x = Tensor::from_vec(data, (n, s.height, s.width, s.channels), &self.device)?;
        let x = match self.layout {
            InputLayout::Nhwc => x,
            InputLayout::Nchw => x.permute((0, 3, 1, 2))?.contiguous()?,
        };
        let y = self.module.forward(&x)?;
        let dims = y.dims().to_vec();
        if dims.len() != 2 || dims[0] != n || (self.num_outputs != 0 && dims[1] != self.num_outputs)
        {
            return Err(Error::Input(format!(
                "the network returned shape {dims:?} for {n} images; expected ({n}, K){}",
                if self.num_outputs != 0 {
                    format!(" with K = {}", self.num_outputs)
                } else {
                    String::new()
                }
            )));
        }
        let y = if self.softmax {
            candle_nn::ops::softmax_last_dim(&y.to_dtype(DType::F32)?)?
        } else {
            y.to_dtype(DType::F32)?
        };
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }
}

impl<M: Module + Sync> BatchModel for CandleClassifier<M> {
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
        let (m, k) = (self.shape.features(), self.num_outputs);
        ModelError::check_batch(self.shape, k, shape, n, images.len(), out.len())?;
        shap_explain::in_row_chunks(images, out, (m, k), self.max_rows, |x, n, o| {
            let y = self.forward(x, n).map_err(ModelError::backend)?;
            o.copy_from_slice(&y);
            Ok(())
        })
    }

    fn batch_rows(&self) -> Option<usize> {
        Some(self.max_rows)
    }
}
