//! What model adapters do to masked images before the network sees them: per-channel
//! normalisation and the NCHW/NHWC layout. The maskers always work on pixel-space images in
//! (H, W, C) order; adapters (the Candle adapter in `shap-model`, the ONNX one in `shap-onnx`)
//! share these two steps.

use std::fmt;
use std::str::FromStr;

use crate::{ConfigError, ExplainError, Result};
use shap_mask::ImageShape;

/// How a network takes its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputLayout {
    /// `(n, C, H, W)`: PyTorch's and Candle's convention.
    #[default]
    Nchw,
    /// `(n, H, W, C)`: Keras's and TensorFlow's convention.
    Nhwc,
}

impl InputLayout {
    /// Write `n` images of `shape` from (H, W, C) order into this layout.
    pub fn arrange(self, images: &[f32], shape: ImageShape, out: &mut Vec<f32>) {
        out.clear();
        match self {
            Self::Nhwc => out.extend_from_slice(images),
            Self::Nchw => {
                let (hw, c) = (shape.height * shape.width, shape.channels);
                for img in images.chunks_exact(shape.features()) {
                    for ch in 0..c {
                        out.extend((0..hw).map(|p| img[p * c + ch]));
                    }
                }
            }
        }
    }
}

impl fmt::Display for InputLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nchw => "nchw",
            Self::Nhwc => "nhwc",
        })
    }
}

impl FromStr for InputLayout {
    type Err = ExplainError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nchw" => Ok(Self::Nchw),
            "nhwc" => Ok(Self::Nhwc),
            _ => Err(ConfigError::Preprocessing(format!(
                "input layout '{s}': expected nchw or nhwc"
            ))
            .into()),
        }
    }
}

/// Per-channel preprocessing `(x * scale - mean[c]) / std[c]` (torchvision's `Normalize`
/// after an optional rescale), checked when built: every value finite, every std and the
/// scale non-zero, one value or one per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    scale: f32,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// ImageNet's per-channel mean (0.485, 0.456, 0.406) and standard deviation (0.229, 0.224,
    /// 0.225) on [0, 1] RGB pixels: what torchvision's and timm's pretrained models expect.
    pub fn imagenet() -> Self {
        Self {
            scale: 1.0,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// No change, for images of `channels` channels.
    pub fn identity(channels: usize) -> Self {
        Self {
            scale: 1.0,
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// `(x * scale - mean[c]) / std[c]` for images of `channels` channels; `mean` and `std`
    /// hold one value (for every channel) or one per channel.
    pub fn new(channels: usize, scale: f32, mean: &[f32], std: &[f32]) -> Result<Self> {
        let per_channel = |what: &str, v: &[f32]| -> Result<Vec<f32>> {
            match v.len() {
                1 => Ok(vec![v[0]; channels]),
                n if n == channels => Ok(v.to_vec()),
                n => Err(ConfigError::Preprocessing(format!(
                    "{what} has {n} values; the images have {channels} channel(s): give 1 or \
                     {channels}"
                ))
                .into()),
            }
        };
        let mean = per_channel("mean", mean)?;
        let std = per_channel("std", std)?;
        if let Some(bad) = mean.iter().find(|m| !m.is_finite()) {
            return Err(
                ConfigError::Preprocessing(format!("mean {bad} is not a finite number")).into(),
            );
        }
        for (what, v) in std.iter().map(|s| ("std", *s)).chain([("scale", scale)]) {
            if !v.is_finite() || v == 0.0 {
                return Err(ConfigError::Preprocessing(format!(
                    "{what} {v} must be a finite, non-zero number"
                ))
                .into());
            }
        }
        Ok(Self { scale, mean, std })
    }

    /// Channels this normalisation is for.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Check that it is for images of `channels` channels.
    pub fn check_channels(&self, channels: usize) -> Result<()> {
        if self.channels() == channels {
            return Ok(());
        }
        Err(ConfigError::Preprocessing(format!(
            "the normalisation is for {} channel(s); the images have {channels}",
            self.channels()
        ))
        .into())
    }

    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        self.scale == 1.0
            && self.mean.iter().all(|&m| m == 0.0)
            && self.std.iter().all(|&s| s == 1.0)
    }

    /// Normalise images in (H, W, C) order in place.
    pub fn apply(&self, images: &mut [f32]) {
        if self.is_identity() {
            return;
        }
        for px in images.chunks_exact_mut(self.mean.len()) {
            for ((x, &m), &s) in px.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x * self.scale - m) / s;
            }
        }
    }
}
