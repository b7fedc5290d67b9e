//! The tutorial CNN's sizes and a 3x3 convolution's geometry: what the network
//! ([`crate::model`]), its convolution kernels (`conv`, `avx512`) and its dense layer (`dense`)
//! all need, kept here so that none of them imports another for a constant.

/// Image height.
pub const HEIGHT: usize = 28;
/// Image width.
pub const WIDTH: usize = 28;
/// Pixels per image (one channel).
pub const PIXELS: usize = HEIGHT * WIDTH;
/// Output channels of the first convolution.
pub const CONV1_OUT: usize = 32;
/// Output channels of the second convolution.
pub const CONV2_OUT: usize = 16;
/// Inputs of the dense layer (`16 * 28 * 28`, flattened in (C, H, W) order).
pub const FLAT: usize = CONV2_OUT * PIXELS;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Number of trainable parameters (130,394).
pub const PARAMETERS: usize =
    CONV1_OUT * 9 + CONV1_OUT + CONV2_OUT * CONV1_OUT * 9 + CONV2_OUT + CLASSES * FLAT + CLASSES;
/// Floating-point operations of one forward pass (multiply-adds count as two).
pub const FORWARD_FLOPS: u64 =
    2 * (CONV1_OUT * 9 * PIXELS + CONV2_OUT * CONV1_OUT * 9 * PIXELS + CLASSES * FLAT) as u64;
/// Floating-point operations of one training step per image: forward, both gradients of the
/// second convolution and the dense layer, and the weight gradient of the first convolution.
pub const TRAIN_FLOPS: u64 = FORWARD_FLOPS
    + 2 * (2 * CONV2_OUT * CONV1_OUT * 9 * PIXELS + CONV1_OUT * 9 * PIXELS + 2 * CLASSES * FLAT)
        as u64;

/// Target size in f32 values of one im2col buffer (about 256 KiB, half of a Zen 3 L2).
const COLS_BUDGET: usize = 64 * 1024;

/// Geometry of a 3x3 / stride 1 / padding 1 convolution on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
}

impl ConvGeom {
    /// Pixels per channel.
    pub const fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Values of one input image.
    pub const fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    /// Values of one output image.
    pub const fn out_len(&self) -> usize {
        self.cout * self.h * self.w
    }
    /// Values of the weight tensor `[cout, cin, 3, 3]`.
    pub const fn weight_len(&self) -> usize {
        self.cout * self.cin * 9
    }
    /// Output rows per im2col block for `channels` unfolded channels.
    pub(crate) fn rows_per_block(&self, channels: usize) -> usize {
        let per_row = channels * 9 * self.w;
        (COLS_BUDGET / per_row.max(1)).clamp(1, self.h.max(1))
    }
    /// Scratch size for unfolding `channels` channels.
    pub(crate) fn cols_len(&self, channels: usize) -> usize {
        channels * 9 * self.w * self.rows_per_block(channels)
    }
}
