//! The crate's error type.

use std::path::PathBuf;

use crate::ImageShape;

/// Everything that can go wrong in `shap-mask`: bad masker specs, bad images or masks, and
/// `.npy` input/output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaskError {
    /// A file refused by `shap-io` (too large, not writable, ...); its OS errors become
    /// [`MaskError::Io`].
    #[error(transparent)]
    Output(shap_io::IoError),
    /// A masker spec string could not be parsed.
    #[error(
        "invalid masker spec {spec:?}: {reason}; valid forms are `blur(KW,KH)` with integer kernel \
         width and height >= 1, `inpaint_telea`, `inpaint_ns`, or a finite number such as `0.5`"
    )]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image has a zero dimension (or its size overflows `usize`).
    #[error("image shape {shape} is empty or too large: every dimension must be >= 1")]
    EmptyImage {
        /// The offending shape.
        shape: ImageShape,
    },
    /// The image buffer length does not match the shape.
    #[error("image buffer has {actual} values but shape {shape} needs {expected}")]
    ImageLength {
        /// The shape given.
        shape: ImageShape,
        /// `H*W*C`.
        expected: usize,
        /// The buffer length.
        actual: usize,
    },
    /// The image holds a NaN or an infinity.
    #[error("image value at flat index {index} is not finite ({value})")]
    NonFinite {
        /// Flat index (C order) of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A constant background that is NaN or infinite.
    #[error("constant background value {value} is not finite")]
    NonFiniteConstant {
        /// The value.
        value: f32,
    },
    /// A blur kernel with a zero side.
    #[error("blur kernel ({kw},{kh}) has a zero side; both sides must be >= 1")]
    ZeroKernel {
        /// Kernel width (columns).
        kw: usize,
        /// Kernel height (rows).
        kh: usize,
    },
    /// A blur kernel larger than the image allows (`kw <= 2W-1`, `kh <= 2H-1`).
    #[error(
        "blur kernel ({kw},{kh}) is too large for image shape {shape}: at most ({max_kw},{max_kh}) \
         (2*side-1, beyond which the reflected border would wrap more than once)"
    )]
    KernelTooLarge {
        /// Kernel width (columns).
        kw: usize,
        /// Kernel height (rows).
        kh: usize,
        /// The image shape.
        shape: ImageShape,
        /// Largest allowed width.
        max_kw: usize,
        /// Largest allowed height.
        max_kh: usize,
    },
    /// Inpainting needs at least 2 rows and 2 columns (OpenCV reads out of bounds otherwise).
    #[error("inpainting needs an image of at least 2x2 pixels, got shape {shape}")]
    ImageTooSmall {
        /// The image shape.
        shape: ImageShape,
    },
    /// shap-compatible inpainting only exists for 1 or 3 channels (cv2.inpaint's formats).
    #[error(
        "shap-compatible inpainting supports 1 or 3 channels (cv2.inpaint rejects others), got shape \
         {shape}; use the default mode for other channel counts"
    )]
    UnsupportedChannels {
        /// The image shape.
        shape: ImageShape,
    },
    /// Linear imputation with every pixel removed: nothing to impute from.
    #[error("every pixel is removed: linear imputation needs at least one kept pixel")]
    NothingKept,
    /// A mask (or fill map) of the wrong length.
    #[error("mask has {actual} entries but {expected} were expected")]
    MaskLength {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// A batch of masks whose length is not a multiple of `M`, or an output buffer of the wrong size.
    #[error(
        "batch of {keeps} mask entries and an output of {out} values do not describe whole images of \
         {features} features (both must be the same multiple of {features})"
    )]
    BatchLength {
        /// `keeps.len()`.
        keeps: usize,
        /// `out.len()`.
        out: usize,
        /// Features per image `M`.
        features: usize,
    },
    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `.npy` file that this crate cannot read, or data that cannot be written.
    #[error("{}: {reason}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<shap_io::IoError> for MaskError {
    fn from(e: shap_io::IoError) -> Self {
        match e {
            shap_io::IoError::Os { path, source, .. } => Self::Io { path, source },
            other => Self::Output(other),
        }
    }
}
