//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading or batching Fashion-MNIST.
///
/// Each variant that concerns a file names it, so a message such as
/// `wrong magic number 0x00000801 in /data/train-images-idx3-ubyte.gz (expected 0x00000803, an IDX image file)`
/// says both what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file refused by `shap-io` (too large, not writable, ...); its OS errors become
    /// [`DataError::Io`].
    #[error(transparent)]
    Output(shap_io::IoError),
    /// The dataset was found nowhere; lists every place tried and how to fix it.
    #[error("{}", not_found_message(tried))]
    NotFound {
        /// One line per place tried, in search order: `"<place>: <why it was not used>"`.
        tried: Vec<String>,
    },

    /// A directory that was named explicitly does not exist.
    #[error("directory {path} does not exist")]
    DirNotFound {
        /// The directory.
        path: PathBuf,
    },

    /// A path that should be a directory is something else (a file, for example).
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },

    /// A directory exists but cannot be listed.
    #[error("cannot read directory {path}")]
    UnreadableDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A data file is missing from a directory.
    #[error("missing file in {dir}: none of {tried} exists", tried = .tried.join(", "))]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file names tried, in order.
        tried: Vec<String>,
    },

    /// An image file could not be decoded (not PNG or JPEG, corrupt, or beyond the limits).
    #[error("cannot decode image {path}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    /// An image file ends before its image does (a cut-off download or copy).
    #[error("{}: the {format} file ends early: its image data is incomplete", path.display())]
    ImageTruncated {
        /// The file.
        path: PathBuf,
        /// `JPEG` or `PNG`.
        format: &'static str,
    },

    /// An image file is larger than the loader accepts.
    #[error("image {path} is {width}x{height} pixels; at most {limit}x{limit} are accepted")]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The largest side accepted.
        limit: u32,
    },

    /// A model input that no image file can become (zero or huge sides, 2 or 4 channels...).
    #[error("cannot make a {height}x{width}x{channels} model input from an image file")]
    ImageRequest {
        /// Requested height.
        height: usize,
        /// Requested width.
        width: usize,
        /// Requested channels (1 or 3 are possible).
        channels: usize,
    },

    /// An image could not be encoded (a grey PNG of the wrong size).
    #[error("cannot encode a {height}x{width} grey PNG")]
    Encode {
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// The encoder's error, when it gave one (else the pixels did not fit the size).
        #[source]
        source: Option<image::ImageError>,
    },

    /// A file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Gzip data is corrupt (bad header, bad deflate stream or checksum) or cut short.
    #[error("corrupt or truncated gzip data in {path}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },

    /// The file does not start with the expected IDX magic number.
    #[error(
        "wrong magic number {found:#010x} in {path} (expected {expected:#010x}, an IDX {kind} file)"
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// `"image"` or `"label"`.
        kind: &'static str,
    },

    /// The IDX header is unusable (too short, zero or absurd dimensions).
    #[error("bad IDX header in {path}: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The header's dimensions do not match the amount of data in the file.
    #[error(
        "size mismatch in {path}: the header promises {expected} data bytes ({what}) but the gzip data holds more (a corrupt or different file; decompression stopped there)"
    )]
    LongerThanHeader {
        /// The file.
        path: PathBuf,
        /// The header, in words (`"60000 images of 28x28"`).
        what: String,
        /// Data bytes the header promises.
        expected: u64,
    },

    /// The data after the header is shorter or longer than the header promises.
    #[error(
        "size mismatch in {path}: the header promises {expected} data bytes ({what}) but the file holds {actual}"
    )]
    LengthMismatch {
        /// The file.
        path: PathBuf,
        /// The header, in words (`"60000 images of 28x28"`).
        what: String,
        /// Data bytes the header promises.
        expected: u64,
        /// Data bytes found.
        actual: u64,
    },

    /// Image and label files hold different numbers of items.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Number of images.
        n_images: usize,
        /// The label file.
        labels: PathBuf,
        /// Number of labels.
        n_labels: usize,
    },

    /// A label is not a class index 0..=9.
    #[error("label {label} at index {index} in {path} is not a class 0..=9")]
    BadLabel {
        /// The file (or `<memory>` for data built in memory).
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// The label value.
        label: u8,
    },

    /// Images are not the size this dataset needs.
    #[error("{path} holds {rows}x{cols} images; Fashion-MNIST needs 28x28")]
    WrongImageSize {
        /// The file.
        path: PathBuf,
        /// Rows in the file.
        rows: usize,
        /// Columns in the file.
        cols: usize,
    },

    /// In-memory data whose buffer lengths do not fit together.
    #[error("invalid split: {0}")]
    InvalidSplit(String),

    /// An image index past the end of a split.
    #[error("index {index} out of range for a split of {len} images")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The split's length.
        len: usize,
    },

    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,

    /// A parquet file from the hf-hub cache could not be read.
    #[error("cannot read parquet file {path}: {reason}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn not_found_message(tried: &[String]) -> String {
    let mut s = String::from("Fashion-MNIST was not found. Places tried, in order:\n");
    for (i, t) in tried.iter().enumerate() {
        s.push_str(&format!("  {}. {t}\n", i + 1));
    }
    s.push_str(
        "Fixes: install the Debian package (`apt-get install dataset-fashion-mnist`, \
         files in /usr/share/datasets/fashion-mnist), or set FASHION_MNIST_DIR \
         (or pass --data-dir) to a directory holding train-images-idx3-ubyte, \
         train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte \
         (gzip-compressed `.gz` or plain)",
    );
    if !cfg!(feature = "hub-cache") {
        s.push_str(
            ", or rebuild with `--features hub` to read the hf-hub cache and download \
             (`--features hub-cache`, on by default, reads the cache only)",
        );
    } else if !cfg!(feature = "hub") {
        s.push_str(", or rebuild with `--features hub` to download into the hf-hub cache");
    }
    s
}

impl From<shap_io::IoError> for DataError {
    fn from(e: shap_io::IoError) -> Self {
        match e {
            shap_io::IoError::Os { path, source, .. } => Self::Io { path, source },
            other => Self::Output(other),
        }
    }
}
