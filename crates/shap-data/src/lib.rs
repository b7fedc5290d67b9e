//! # shap-data: the Fashion-MNIST dataset
//!
//! Loads Fashion-MNIST (60,000 train and 10,000 test greyscale 28x28 images of ten clothing
//! classes, [`CLASS_NAMES`]) from IDX files, gzip-compressed or plain, and hands it out as u8
//! buffers ([`Split`]) with helpers for f32 batches in `[0, 1]` and seeded, deterministic
//! shuffling ([`shuffled_batches`]).
//!
//! ## Where the data comes from
//! [`FashionMnist::load`] searches, in this order:
//! 1. an explicit directory (the API argument, `shap-cli --data-dir`); when one is given it is
//!    the only place tried;
//! 2. the directory in the environment variable `FASHION_MNIST_DIR`;
//! 3. `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`);
//! 4. the hf-hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`),
//!    holding the parquet conversion of `zalando-datasets/fashion_mnist`;
//! 5. a download of that conversion through hf-hub (skipped when `HF_HUB_OFFLINE=1`).
//!
//! Place 4 needs the Cargo feature `hub-cache` (a parquet reader; on by default), place 5 the
//! off-by-default feature `hub` (which adds hf-hub and its HTTP stack, a much bigger
//! build). A place that is absent (variable unset,
//! directory missing or without any dataset file) is skipped; a place that holds the files but
//! in a broken state stops the search with that file's error, so damage is never hidden by a
//! fallback. When nothing is found, [`DataError::NotFound`] lists every place tried and the
//! fixes.
//!
//! Directories hold `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (the names of Zalando's release and
//! the Debian package), each optionally ending in `.gz`; `train-images.idx3-ubyte`-style
//! names are accepted too. Compression is detected from the content.
//!
//! ## Bad input
//! Every problem is a typed [`DataError`] naming the file: corrupt or truncated gzip, wrong
//! magic number, a header whose dimensions disagree with the data, image and label counts that
//! disagree, a label above 9, a missing file, an unreadable directory. Headers are never
//! trusted for allocation: a header claiming billions of images costs nothing before the data
//! proves it.
//!
//! ## Example
//! ```no_run
//! use shap_data::{CLASS_NAMES, FashionMnist, shuffled_batches};
//!
//! let data = FashionMnist::load(None)?;
//! println!("found in {}: {} train, {} test", data.source, data.train.len(), data.test.len());
//! println!("first test image is a {}", CLASS_NAMES[usize::from(data.test.labels()[0])]);
//! for batch in shuffled_batches(data.train.len(), 256, 42)?.iter().take(1) {
//!     let x = data.train.images_f32(batch)?; // 256*28*28 floats in [0, 1]
//!     let y = data.train.labels_at(batch)?;
//!     assert_eq!((x.len(), y.len()), (256 * 28 * 28, 256));
//! }
//! # Ok::<(), shap_data::DataError>(())
//! ```

mod batch;
mod error;
pub mod hub;
pub mod idx;
mod images;
mod split;

use std::fmt;
use std::path::{Path, PathBuf};

pub use batch::shuffled_batches;
pub use error::DataError;
pub use images::{MAX_IMAGE_SIDE, UserImage, encode_grey_png, load_image, load_image_as_is};
pub use split::Split;

/// The ten class names, indexed by label.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Rows of a Fashion-MNIST image.
pub const IMAGE_ROWS: usize = 28;
/// Columns of a Fashion-MNIST image.
pub const IMAGE_COLS: usize = 28;
/// Images in the train split.
pub const TRAIN_LEN: usize = 60_000;
/// Images in the test split.
pub const TEST_LEN: usize = 10_000;

/// Environment variable naming a directory with the IDX files.
pub const ENV_DIR: &str = "FASHION_MNIST_DIR";
/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Where a dataset was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataSource {
    /// A directory given explicitly (API argument or `--data-dir`).
    Directory(PathBuf),
    /// The directory named by `FASHION_MNIST_DIR`.
    EnvDir(PathBuf),
    /// The system directory of the Debian package.
    SystemDir(PathBuf),
    /// Parquet files already in the hf-hub cache (the snapshot directory).
    HubCache(PathBuf),
    /// Parquet files just downloaded through hf-hub (the snapshot directory).
    HubDownload(PathBuf),
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Directory(p) | DataSource::SystemDir(p) => {
                write!(f, "directory {}", p.display())
            }
            DataSource::EnvDir(p) => write!(f, "{ENV_DIR}={}", p.display()),
            DataSource::HubCache(p) => write!(f, "hf-hub cache {}", p.display()),
            DataSource::HubDownload(p) => write!(f, "hf-hub download into {}", p.display()),
        }
    }
}

impl DataSource {
    /// How the files were found, as [`shap_records::DatasetRecord::source_kind`] records it.
    pub fn kind(&self) -> &'static str {
        match self {
            DataSource::Directory(_) => "directory",
            DataSource::EnvDir(_) => "env",
            DataSource::SystemDir(_) => "system",
            DataSource::HubCache(_) => "hub-cache",
            DataSource::HubDownload(_) => "hub-download",
        }
    }
}

/// The places [`FashionMnist::load_from`] searches. [`SearchPaths::from_env`] fills it from the
/// environment; tests and embedders can build one by hand to control every place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPaths {
    /// An explicit directory: when set, the only place tried.
    pub explicit_dir: Option<PathBuf>,
    /// The `FASHION_MNIST_DIR` directory.
    pub env_dir: Option<PathBuf>,
    /// The system directory ([`SYSTEM_DIR`]).
    pub system_dir: Option<PathBuf>,
    /// The hf-hub cache directory.
    pub hub_cache: Option<PathBuf>,
    /// Whether to try a download through hf-hub (into `hub_cache`). Has an effect only with the
    /// `hub` feature; [`SearchPaths::from_env`] turns it off when `HF_HUB_OFFLINE` is set.
    pub download: bool,
    /// Another hub server than the default (hf-hub also reads `HF_ENDPOINT`).
    pub hub_endpoint: Option<String>,
}

impl SearchPaths {
    /// The standard search: `explicit_dir`, `FASHION_MNIST_DIR`, [`SYSTEM_DIR`], the hf-hub cache
    /// ([`hub::hub_cache_dir`]) and, with the `hub` feature, a download.
    pub fn from_env(explicit_dir: Option<&Path>) -> Self {
        SearchPaths {
            explicit_dir: explicit_dir.map(Path::to_path_buf),
            env_dir: std::env::var_os(ENV_DIR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            system_dir: Some(PathBuf::from(SYSTEM_DIR)),
            hub_cache: hub::hub_cache_dir(),
            download: cfg!(feature = "hub") && !hub_offline(),
            hub_endpoint: None,
        }
    }

    /// Nothing to search (every place off); set the fields you want.
    pub fn none() -> Self {
        SearchPaths {
            explicit_dir: None,
            env_dir: None,
            system_dir: None,
            hub_cache: None,
            download: false,
            hub_endpoint: None,
        }
    }
}

/// True when `HF_HUB_OFFLINE` asks for no network access (as in Python's `huggingface_hub`).
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The dataset: both splits and where they were found.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    /// The 60,000 training images.
    pub train: Split,
    /// The 10,000 test images.
    pub test: Split,
    /// Where the data was found.
    pub source: DataSource,
}

/// The four IDX files in a directory.
struct IdxFiles {
    train_images: PathBuf,
    train_labels: PathBuf,
    test_images: PathBuf,
    test_labels: PathBuf,
}

/// Base names of the four files, each with an alternative spelling.
const FILE_STEMS: [[&str; 2]; 4] = [
    ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
    ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
    ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
];

/// A directory either holds (some of) the files or is absent, with the reason.
enum Probe {
    Absent(String),
    Found(IdxFiles),
}

fn probe_dir(dir: &Path) -> Result<Probe, DataError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Probe::Absent("does not exist".into()));
        }
        Err(source) => {
            return Err(DataError::UnreadableDir {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    if !meta.is_dir() {
        return Err(DataError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let unreadable = |source| DataError::UnreadableDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        names.insert(entry.map_err(unreadable)?.file_name());
    }
    // Each file: the first candidate name present, or every candidate name tried.
    let lookups: [Result<PathBuf, Vec<String>>; 4] = FILE_STEMS.map(|stems| {
        let candidates: Vec<String> = stems
            .iter()
            .flat_map(|s| [format!("{s}.gz"), (*s).to_string()])
            .collect();
        candidates
            .iter()
            .find(|c| names.contains(std::ffi::OsStr::new(c.as_str())))
            .map(|name| dir.join(name))
            .ok_or(candidates)
    });
    if lookups.iter().all(Result::is_err) {
        return Ok(Probe::Absent(
            "holds none of the Fashion-MNIST IDX files".into(),
        ));
    }
    let missing = |tried| DataError::MissingFile {
        dir: dir.to_path_buf(),
        tried,
    };
    let [train_images, train_labels, test_images, test_labels] = lookups;
    Ok(Probe::Found(IdxFiles {
        train_images: train_images.map_err(missing)?,
        train_labels: train_labels.map_err(missing)?,
        test_images: test_images.map_err(missing)?,
        test_labels: test_labels.map_err(missing)?,
    }))
}

fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, DataError> {
    let images = idx::read_images(images_path)?;
    if images.rows != IMAGE_ROWS || images.cols != IMAGE_COLS {
        return Err(DataError::WrongImageSize {
            path: images_path.to_path_buf(),
            rows: images.rows,
            cols: images.cols,
        });
    }
    let labels = idx::read_labels(labels_path)?;
    if labels.len() != images.count {
        return Err(DataError::CountMismatch {
            images: images_path.to_path_buf(),
            n_images: images.count,
            labels: labels_path.to_path_buf(),
            n_labels: labels.len(),
        });
    }
    Split::new(images.pixels, labels, images.rows, images.cols)
}

fn load_files(files: &IdxFiles, source: DataSource) -> Result<FashionMnist, DataError> {
    // The two splits are independent: decode them on two threads (the train images dominate).
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| load_split(&files.test_images, &files.test_labels));
        let train = load_split(&files.train_images, &files.train_labels);
        // A panic in the loader is a bug, not bad input: pass it on as it is.
        let test = test
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (train, test)
    });
    Ok(FashionMnist {
        train: train?,
        test: test?,
        source,
    })
}

impl FashionMnist {
    /// Where the dataset was found and what each split holds, as `shap-cli data --json`
    /// writes it.
    pub fn record(&self) -> shap_records::DatasetRecord {
        let split = |s: &Split| shap_records::SplitRecord {
            count: s.len(),
            rows: s.rows(),
            cols: s.cols(),
            histogram: s.class_histogram().to_vec(),
        };
        shap_records::DatasetRecord {
            source: self.source.to_string(),
            source_kind: self.source.kind().to_string(),
            classes: CLASS_NAMES.iter().map(|c| c.to_string()).collect(),
            train: split(&self.train),
            test: split(&self.test),
        }
    }

    /// Finds and loads the dataset, searching the places listed in the crate docs in order,
    /// with `dir` as the explicit directory.
    ///
    /// # Errors
    /// [`DataError::NotFound`] (listing every place tried and the fixes) when no place holds
    /// the dataset; the file's own error when a place holds it in a broken state.
    pub fn load(dir: Option<&Path>) -> Result<Self, DataError> {
        Self::load_from(&SearchPaths::from_env(dir))
    }

    /// Loads the four IDX files (gzip or plain) from one directory.
    ///
    /// # Errors
    /// [`DataError::DirNotFound`], [`DataError::NotADirectory`], [`DataError::UnreadableDir`],
    /// [`DataError::MissingFile`], or any file error (see [`DataError`]).
    pub fn load_dir(dir: &Path) -> Result<Self, DataError> {
        Self::load_dir_as(dir, DataSource::Directory(dir.to_path_buf()))
    }

    fn load_dir_as(dir: &Path, source: DataSource) -> Result<Self, DataError> {
        match probe_dir(dir)? {
            Probe::Found(files) => load_files(&files, source),
            Probe::Absent(_) if !dir.exists() => Err(DataError::DirNotFound {
                path: dir.to_path_buf(),
            }),
            Probe::Absent(_) => Err(DataError::MissingFile {
                dir: dir.to_path_buf(),
                tried: FILE_STEMS[0]
                    .iter()
                    .flat_map(|s| [format!("{s}.gz"), (*s).to_string()])
                    .collect(),
            }),
        }
    }

    /// Loads both splits from the hf-hub parquet files (`train` and `test`).
    ///
    /// # Errors
    /// [`DataError::Parquet`] for unreadable parquet or PNG data, [`DataError::BadLabel`],
    /// [`DataError::WrongImageSize`], [`DataError::Io`].
    #[cfg(feature = "hub-cache")]
    pub fn load_parquet(train: &Path, test: &Path, source: DataSource) -> Result<Self, DataError> {
        Ok(FashionMnist {
            train: hub::read_parquet_split(train)?,
            test: hub::read_parquet_split(test)?,
            source,
        })
    }

    /// Searches the places in `paths`, in order (see the crate docs).
    ///
    /// # Errors
    /// As [`FashionMnist::load`].
    pub fn load_from(paths: &SearchPaths) -> Result<Self, DataError> {
        let mut tried = Vec::new();

        if let Some(dir) = &paths.explicit_dir {
            return match probe_dir(dir)? {
                Probe::Found(files) => load_files(&files, DataSource::Directory(dir.clone())),
                Probe::Absent(why) => {
                    tried.push(format!(
                        "directory {} (given explicitly, so no other place was searched): {why}",
                        dir.display()
                    ));
                    Err(DataError::NotFound { tried })
                }
            };
        }

        match &paths.env_dir {
            Some(dir) => match probe_dir(dir)? {
                Probe::Found(files) => return load_files(&files, DataSource::EnvDir(dir.clone())),
                Probe::Absent(why) => tried.push(format!("{ENV_DIR}={}: {why}", dir.display())),
            },
            None => tried.push(format!("{ENV_DIR}: not set")),
        }

        if let Some(dir) = &paths.system_dir {
            match probe_dir(dir)? {
                Probe::Found(files) => {
                    return load_files(&files, DataSource::SystemDir(dir.clone()));
                }
                Probe::Absent(why) => tried.push(format!(
                    "directory {} (Debian package dataset-fashion-mnist): {why}",
                    dir.display()
                )),
            }
        }

        match &paths.hub_cache {
            Some(cache) => match hub::cached_files(cache) {
                #[cfg(feature = "hub-cache")]
                Ok((train, test)) => {
                    let snap = train.ancestors().nth(3).unwrap_or(cache).to_path_buf();
                    return Self::load_parquet(&train, &test, DataSource::HubCache(snap));
                }
                #[cfg(not(feature = "hub-cache"))]
                Ok((train, _)) => tried.push(format!(
                    "hf-hub cache {}: holds the parquet files ({}), but this build cannot read \
                     them: rebuild with `--features hub-cache` (or `hub`)",
                    cache.display(),
                    train.display()
                )),
                Err(why) => tried.push(format!("hf-hub cache {}: {why}", cache.display())),
            },
            None => {
                tried.push("hf-hub cache: no HF_HUB_CACHE, HF_HOME or HOME to locate it".into())
            }
        }

        let place = format!(
            "hf-hub download of {}/{} (revision {})",
            hub::HUB_OWNER,
            hub::HUB_NAME,
            hub::HUB_REVISION
        );
        if !cfg!(feature = "hub") {
            tried.push(format!(
                "{place}: not built in (rebuild with `--features hub`)"
            ));
        } else if !paths.download {
            tried.push(format!(
                "{place}: switched off (HF_HUB_OFFLINE, or SearchPaths::download = false)"
            ));
        } else {
            #[cfg(feature = "hub")]
            match &paths.hub_cache {
                None => tried.push(format!("{place}: no cache directory to download into")),
                Some(cache) => match hub::download(cache, paths.hub_endpoint.as_deref()) {
                    Ok((train, test)) => {
                        let snap = train.ancestors().nth(3).unwrap_or(cache).to_path_buf();
                        return Self::load_parquet(&train, &test, DataSource::HubDownload(snap));
                    }
                    Err(why) => tried.push(format!("{place}: failed: {why}")),
                },
            }
        }

        Err(DataError::NotFound { tried })
    }
}
