//! The hf-hub path: the parquet conversion of `zalando-datasets/fashion_mnist`.
//!
//! Finding already-downloaded files in the hf-hub cache is plain path arithmetic and is always
//! compiled. Reading them (parquet rows of PNG bytes + an int64 label) needs the `hub-cache`
//! feature, downloading them the `hub` feature (which includes `hub-cache`).
//!
//! Cache layout (the one hf-hub and Python's `huggingface_hub` share):
//! `<cache>/datasets--zalando-datasets--fashion_mnist/refs/refs/convert/parquet` holds a commit id,
//! and `<cache>/datasets--zalando-datasets--fashion_mnist/snapshots/<id>/fashion_mnist/{train,test}/0000.parquet`
//! are the files.

use std::path::{Path, PathBuf};

/// Owner of the dataset repository on the hub.
pub const HUB_OWNER: &str = "zalando-datasets";
/// Name of the dataset repository on the hub.
pub const HUB_NAME: &str = "fashion_mnist";
/// The revision holding the parquet conversion.
pub const HUB_REVISION: &str = "refs/convert/parquet";
/// Path of the train split inside the repository.
pub const HUB_TRAIN_FILE: &str = "fashion_mnist/train/0000.parquet";
/// Path of the test split inside the repository.
pub const HUB_TEST_FILE: &str = "fashion_mnist/test/0000.parquet";

/// The hf-hub cache directory, resolved like hf-hub does: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`,
/// `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`, `$HOME/.cache/huggingface/hub`.
/// `None` only when none of these variables is set.
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

/// The dataset's folder inside a hub cache.
pub fn repo_cache_dir(cache: &Path) -> PathBuf {
    cache.join(format!("datasets--{HUB_OWNER}--{HUB_NAME}"))
}

/// The cached train and test parquet files, or why they are not usable (for the "tried" list).
pub(crate) fn cached_files(cache: &Path) -> Result<(PathBuf, PathBuf), String> {
    let repo = repo_cache_dir(cache);
    if !repo.is_dir() {
        return Err(format!("no {} folder", display_name(&repo)));
    }
    let ref_path = repo.join("refs").join(HUB_REVISION);
    let commit = match std::fs::read_to_string(&ref_path) {
        Ok(s) => s.trim().to_string(),
        Err(e) => return Err(format!("cannot read {}: {e}", ref_path.display())),
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.contains("..") {
        return Err(format!("{} does not hold a commit id", ref_path.display()));
    }
    let snap = repo.join("snapshots").join(&commit);
    let train = snap.join(HUB_TRAIN_FILE);
    let test = snap.join(HUB_TEST_FILE);
    for f in [&train, &test] {
        if !f.is_file() {
            return Err(format!("snapshot {commit} lacks {}", f.display()));
        }
    }
    Ok((train, test))
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(feature = "hub")]
pub(crate) use download::download;
#[cfg(feature = "hub-cache")]
pub(crate) use parquet_split::read_parquet_split;

#[cfg(feature = "hub-cache")]
mod parquet_split {
    use std::path::Path;

    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use crate::{DataError, IMAGE_COLS, IMAGE_ROWS, NUM_CLASSES, Split};

    /// Rows preallocated at most, whatever the parquet footer claims (Fashion-MNIST has 60000).
    const MAX_PREALLOC_ROWS: usize = 70_000;

    fn perr(path: &Path, reason: impl std::fmt::Display) -> DataError {
        DataError::Parquet {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// The largest parquet file read (the whole Fashion-MNIST test split is about 5 MiB).
    const MAX_PARQUET_BYTES: u64 = 512 * shap_io::MIB;

    /// Reads one split from a parquet file with columns `image` (a struct with PNG `bytes`, or
    /// plain PNG bytes) and `label` (an integer class).
    pub(crate) fn read_parquet_split(path: &Path) -> Result<Split, DataError> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        // A regular file of a bounded size: the reader seeks around in it, and its row count
        // is never trusted for an allocation beyond MAX_PREALLOC_ROWS.
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() || meta.len() > MAX_PARQUET_BYTES {
            return Err(perr(
                path,
                format!(
                    "not a regular file of at most {} MiB",
                    MAX_PARQUET_BYTES / shap_io::MIB
                ),
            ));
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let reader = SerializedFileReader::new(file).map_err(|e| perr(path, e))?;
        let claimed = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        let prealloc = claimed.min(MAX_PREALLOC_ROWS);
        let mut images = Vec::with_capacity(prealloc * IMAGE_ROWS * IMAGE_COLS);
        let mut labels = Vec::with_capacity(prealloc);
        let rows = reader.get_row_iter(None).map_err(|e| perr(path, e))?;
        for (index, row) in rows.enumerate() {
            let row = row.map_err(|e| perr(path, format!("row {index}: {e}")))?;
            let mut png: Option<&[u8]> = None;
            let mut label: Option<i64> = None;
            for (name, field) in row.get_column_iter() {
                match (name.as_str(), field) {
                    ("image", Field::Bytes(b)) => png = Some(b.data()),
                    ("image", Field::Group(g)) => {
                        for (n, f) in g.get_column_iter() {
                            if let ("bytes", Field::Bytes(b)) = (n.as_str(), f) {
                                png = Some(b.data());
                            }
                        }
                    }
                    ("label", Field::Long(v)) => label = Some(*v),
                    ("label", Field::Int(v)) => label = Some(i64::from(*v)),
                    ("label", Field::Short(v)) => label = Some(i64::from(*v)),
                    ("label", Field::Byte(v)) => label = Some(i64::from(*v)),
                    ("label", Field::UByte(v)) => label = Some(i64::from(*v)),
                    _ => {}
                }
            }
            let png = png.ok_or_else(|| perr(path, format!("row {index} has no image bytes")))?;
            let label =
                label.ok_or_else(|| perr(path, format!("row {index} has no integer label")))?;
            let label = u8::try_from(label)
                .ok()
                .filter(|&l| usize::from(l) < NUM_CLASSES)
                .ok_or_else(|| DataError::BadLabel {
                    path: path.to_path_buf(),
                    index,
                    label: u8::try_from(label.clamp(0, 255)).unwrap_or(u8::MAX),
                })?;
            let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
                .map_err(|e| perr(path, format!("row {index}: bad PNG: {e}")))?;
            if img.width() as usize != IMAGE_COLS || img.height() as usize != IMAGE_ROWS {
                return Err(DataError::WrongImageSize {
                    path: path.to_path_buf(),
                    rows: img.height() as usize,
                    cols: img.width() as usize,
                });
            }
            images.extend_from_slice(img.to_luma8().as_raw());
            labels.push(label);
        }
        Split::new(images, labels, IMAGE_ROWS, IMAGE_COLS)
    }
}

#[cfg(feature = "hub")]
mod download {
    use std::path::{Path, PathBuf};

    use super::{HUB_NAME, HUB_OWNER, HUB_REVISION, HUB_TEST_FILE, HUB_TRAIN_FILE};

    /// Downloads the two parquet files into the hub cache `cache` (or, with `endpoint`, from
    /// another hub server) and returns their paths. Errors are returned as text for the
    /// "tried" list.
    pub(crate) fn download(
        cache: &Path,
        endpoint: Option<&str>,
    ) -> Result<(PathBuf, PathBuf), String> {
        let mut builder = hf_hub::HFClient::builder().cache_dir(cache);
        if let Some(e) = endpoint {
            builder = builder.endpoint(e);
        }
        let client = builder.build_sync().map_err(|e| e.to_string())?;
        let repo = client.dataset(HUB_OWNER, HUB_NAME);
        let get = |file: &str| {
            repo.download_file()
                .filename(file)
                .revision(HUB_REVISION)
                .send()
                .map_err(|e| format!("{file}: {e}"))
        };
        Ok((get(HUB_TRAIN_FILE)?, get(HUB_TEST_FILE)?))
    }
}
