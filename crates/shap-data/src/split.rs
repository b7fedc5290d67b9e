//! One split (train or test) of the dataset.

use crate::{DataError, NUM_CLASSES};

/// One split of the dataset: `len()` images of `rows() x cols()` u8 pixels (image after image,
/// each row-major) and one label `0..=9` per image.
///
/// The invariants (buffer lengths agree, every label is a class) are checked on construction,
/// so the accessors never fail on a valid `Split`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

/// `x / 255` for every byte value, in f32 (the same rounding as `np.float32(x) / 255`).
fn scale_table() -> [f32; 256] {
    let mut t = [0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f32 / 255.0;
    }
    t
}

impl Split {
    /// Builds a split from raw buffers: `images` holds `labels.len()` images of `rows x cols`.
    ///
    /// # Errors
    /// [`DataError::InvalidSplit`] if a dimension is zero, the buffer lengths do not fit together,
    /// or a label is above 9.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> Result<Self, DataError> {
        if rows == 0 || cols == 0 {
            return Err(DataError::InvalidSplit(format!(
                "image size {rows}x{cols} has a zero side"
            )));
        }
        let expected = labels.len().checked_mul(rows * cols);
        if expected != Some(images.len()) {
            return Err(DataError::InvalidSplit(format!(
                "{} labels need {} pixels of {rows}x{cols} images, got {}",
                labels.len(),
                labels.len().saturating_mul(rows * cols),
                images.len()
            )));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= NUM_CLASSES)
        {
            return Err(DataError::InvalidSplit(format!(
                "label {l} at index {i} is not a class 0..=9"
            )));
        }
        Ok(Self {
            images,
            labels,
            rows,
            cols,
        })
    }

    /// Number of images (and labels).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Rows per image (28 for Fashion-MNIST).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns per image (28 for Fashion-MNIST).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image, `rows * cols`.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// All pixels: `len() * rows() * cols()` bytes, image after image, each row-major.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels, one class index `0..=9` per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `i` (`rows * cols` bytes, row-major), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        let start = i.checked_mul(n)?;
        self.images.get(start..start.checked_add(n)?)
    }

    /// The label of image `i`, or `None` past the end.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.get(i).copied()
    }

    fn check_indices(&self, indices: &[usize]) -> Result<(), DataError> {
        match indices.iter().find(|&&i| i >= self.len()) {
            Some(&index) => Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            }),
            None => Ok(()),
        }
    }

    /// The images at `indices` as f32 in `[0, 1]` (`x / 255`), shape `(indices.len(), rows, cols, 1)`
    /// (NHWC). With one channel this is the same buffer as NCHW `(n, 1, rows, cols)`.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] if any index is `>= len()`; nothing is returned then.
    pub fn images_f32(&self, indices: &[usize]) -> Result<Vec<f32>, DataError> {
        self.check_indices(indices)?;
        let table = scale_table();
        let n = self.image_len();
        let mut out = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            if let Some(img) = self.image(i) {
                out.extend(img.iter().map(|&p| table[usize::from(p)]));
            }
        }
        Ok(out)
    }

    /// Same buffer as [`Split::images_f32`], named for NCHW `(n, 1, rows, cols)` callers.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] if any index is `>= len()`.
    pub fn images_f32_nchw(&self, indices: &[usize]) -> Result<Vec<f32>, DataError> {
        self.images_f32(indices)
    }

    /// The labels at `indices`.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] if any index is `>= len()`.
    pub fn labels_at(&self, indices: &[usize]) -> Result<Vec<u8>, DataError> {
        self.check_indices(indices)?;
        Ok(indices.iter().filter_map(|&i| self.label(i)).collect())
    }

    /// Every image as f32 in `[0, 1]`, shape `(len, rows, cols, 1)` (equivalently NCHW with C=1).
    pub fn all_f32(&self) -> Vec<f32> {
        let table = scale_table();
        self.images.iter().map(|&p| table[usize::from(p)]).collect()
    }

    /// A new split with the first `min(n, len())` images and labels (`n` past the end is not an
    /// error: the whole split is copied).
    pub fn take(&self, n: usize) -> Split {
        let n = n.min(self.len());
        Split {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// A new split holding the images at `indices`, in that order (repeats allowed).
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] if any index is `>= len()`.
    pub fn select(&self, indices: &[usize]) -> Result<Split, DataError> {
        self.check_indices(indices)?;
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            if let Some(img) = self.image(i) {
                images.extend_from_slice(img);
            }
        }
        Ok(Split {
            images,
            labels: self.labels_at(indices)?,
            rows: self.rows,
            cols: self.cols,
        })
    }

    /// How many images of each class `0..=9` the split holds.
    pub fn class_histogram(&self) -> [usize; NUM_CLASSES] {
        let mut h = [0usize; NUM_CLASSES];
        for &l in &self.labels {
            if let Some(c) = h.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        h
    }
}
