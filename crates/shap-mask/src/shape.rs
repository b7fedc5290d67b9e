//! Image shapes.

/// The shape of one image, `(height, width, channels)`, stored row-major with channels last
/// (flat index `(r * width + c) * channels + ch`, as in shap and NumPy's C order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// Rows (axis 0).
    pub height: usize,
    /// Columns (axis 1).
    pub width: usize,
    /// Channels (axis 2).
    pub channels: usize,
}

impl ImageShape {
    /// A new shape; no validation (see [`ImageShape::features`]).
    pub const fn new(height: usize, width: usize, channels: usize) -> Self {
        Self {
            height,
            width,
            channels,
        }
    }

    /// Number of features `M = height * width * channels` (one per value).
    pub const fn features(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Number of pixels `height * width`.
    pub const fn pixels(&self) -> usize {
        self.height * self.width
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, {})", self.height, self.width, self.channels)
    }
}
