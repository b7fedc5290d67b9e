//! Which images a run explains: image files, or Fashion-MNIST test images picked by index,
//! range, or the first correct or wrong predictions; the shard of them a job takes; and the
//! digests that tie a journal or a finished file to exactly these images.

use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use shap_data::FashionMnist;
use shap_explain::{Class, ImageInfo, ImageShape, Prediction};

use crate::error::{Context, Result, refuse};
use crate::model::Network;
use crate::slicing::{ResolvedShard, shard_range};
use crate::{Reporter, digest};

/// Which images to explain.
#[derive(Debug, Clone, PartialEq)]
pub enum Images {
    /// Image files (PNG or JPEG), converted to the model's channels and resized to its input.
    Files(Vec<PathBuf>),
    /// Fashion-MNIST test images, from `data_dir` or the usual search.
    Test {
        /// The folder of the IDX files.
        data_dir: Option<PathBuf>,
        /// Which of them.
        pick: TestImages,
    },
}

/// Which test images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestImages {
    /// These indices, in this order.
    Indices(Vec<usize>),
    /// Every image of the range (or of the test set).
    All(Option<Range<usize>>),
    /// The first `n` correctly predicted images of the range, in index order.
    Correct(usize, Option<Range<usize>>),
    /// The first `n` wrongly predicted images of the range, in index order.
    Wrong(usize, Option<Range<usize>>),
}

impl Images {
    /// How many images may be explained at once when they are counted up front (files and
    /// indices); `usize::MAX` otherwise.
    pub fn known_count(&self) -> usize {
        match self {
            Self::Files(f) => f.len(),
            Self::Test {
                pick: TestImages::Indices(v),
                ..
            } => v.len(),
            Self::Test { .. } => usize::MAX,
        }
    }
}

/// One image to explain: where it comes from and its label (its pixels are read per chunk,
/// [`Selection::pixels`]).
#[derive(Debug, Clone)]
pub struct Item {
    /// Test-set index, or `None` for an image file.
    pub index: Option<usize>,
    /// `test[12]`, or the file's name.
    pub source: String,
    /// The true class, when known.
    pub label: Option<u8>,
}

/// The images to explain, in order.
pub struct Selection {
    items: Vec<Item>,
    /// The decoded image files, one per item; empty for test images.
    files: Vec<Vec<f32>>,
    test: Option<shap_data::Split>,
}

impl Selection {
    /// Select `images` for `net`, telling `report` about files converted to fit it.
    pub fn new(images: &Images, net: &Network, report: &dyn Reporter) -> Result<Self> {
        let shape = net.shape();
        let (data_dir, pick) = match images {
            Images::Files(paths) => {
                let (items, files) = paths
                    .iter()
                    .map(|p| image_item(p, shape, report))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .unzip();
                return Ok(Self {
                    items,
                    files,
                    test: None,
                });
            }
            Images::Test { data_dir, pick } => (data_dir, pick),
        };
        if shape != ImageShape::new(28, 28, 1) {
            refuse!(
                "the model takes {shape} images; Fashion-MNIST test images are 28x28x1: explain \
                 image files with --image"
            );
        }
        let test = FashionMnist::load(data_dir.as_deref())
            .context("loading Fashion-MNIST")?
            .test;
        let indices = test_indices(pick, net, &test)?;
        if indices.is_empty() {
            refuse!(
                "no images to explain (the test set has fewer correct/wrong predictions than \
                 asked?)"
            );
        }
        let items = indices
            .into_iter()
            .map(|i| Item {
                index: Some(i),
                source: format!("test[{i}]"),
                label: test.labels().get(i).copied(),
            })
            .collect();
        Ok(Self {
            items,
            files: Vec::new(),
            test: Some(test),
        })
    }

    /// How many images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The images, in order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The pixels of images `r`, one after the other.
    pub fn pixels(&self, r: Range<usize>) -> Result<Vec<f32>> {
        let Some(test) = &self.test else {
            return Ok(self.files.get(r).unwrap_or(&[]).concat());
        };
        let ids: Vec<usize> = self.items[r].iter().filter_map(|i| i.index).collect();
        Ok(test.images_f32(&ids)?)
    }

    /// SHA-256 of the images' sources and pixels, read 1,000 images at a time: what a journal
    /// and a finished file are checked against.
    pub fn digest(&self) -> Result<String> {
        let mut pixels = Sha256::new();
        for start in (0..self.len()).step_by(1000) {
            let block = self.pixels(start..(start + 1000).min(self.len()))?;
            block.iter().for_each(|p| pixels.update(p.to_le_bytes()));
        }
        let sources: Vec<String> = self.items.iter().map(|i| i.source.clone()).collect();
        Ok(digest::selection_hex(&sources, pixels))
    }

    /// SHA-256 of the sources alone (`test[12]`, file names), one a line: cheap (no pixels),
    /// and the same in every shard of one run.
    pub fn sources_sha256(&self) -> String {
        let mut h = Sha256::new();
        for i in &self.items {
            h.update(i.source.as_bytes());
            h.update(b"\n");
        }
        digest::hex(&h.finalize())
    }

    /// The shard's slice of the selection, and its positions in the whole.
    pub fn shard(self, shard: ResolvedShard) -> Result<(Self, Range<usize>)> {
        let total = self.len();
        let range = shard_range(shard.index, shard.count, total);
        if range.is_empty() {
            refuse!(
                "shard {}/{} of {total} images is empty: use fewer shards",
                shard.index,
                shard.count
            );
        }
        Ok((self.slice(range.clone()), range))
    }

    /// Images `r` only.
    fn slice(self, r: Range<usize>) -> Self {
        let files = if self.files.is_empty() {
            Vec::new()
        } else {
            self.files[r.clone()].to_vec()
        };
        let items = self.items.into_iter().skip(r.start).take(r.len()).collect();
        Self {
            items,
            files,
            test: self.test,
        }
    }
}

/// The indices `pick` names in the test set.
fn test_indices(pick: &TestImages, net: &Network, test: &shap_data::Split) -> Result<Vec<usize>> {
    let (range, n, correct) = match pick {
        TestImages::Indices(v) => {
            if let Some(bad) = v.iter().find(|&&i| i >= test.len()) {
                refuse!(
                    "test index {bad} is out of range (the test set has {} images)",
                    test.len()
                );
            }
            return Ok(v.clone());
        }
        TestImages::All(r) => (r, None, true),
        TestImages::Correct(n, r) => (r, Some(*n), true),
        TestImages::Wrong(n, r) => (r, Some(*n), false),
    };
    let range = range.clone().unwrap_or(0..test.len());
    if range.end > test.len() {
        refuse!(
            "--range {}..{} goes past the test set ({} images)",
            range.start,
            range.end,
            test.len()
        );
    }
    let Some(n) = n else {
        return Ok(range.collect());
    };
    if n == 0 {
        refuse!("--correct / --wrong need N >= 1");
    }
    let preds = predictions(net, test, range.clone())?;
    let labels = &test.labels()[range.clone()];
    let (right, wrong) = shap_model::pick_examples(&preds, labels, n);
    let picked = if correct { right } else { wrong };
    Ok(picked.into_iter().map(|i| i + range.start).collect())
}

/// The predicted class of each test image in `range`, 1,000 images at a time.
fn predictions(net: &Network, test: &shap_data::Split, range: Range<usize>) -> Result<Vec<usize>> {
    let k = net.model().num_outputs();
    let mut preds = Vec::with_capacity(range.len());
    for start in range.clone().step_by(1000) {
        let ids: Vec<usize> = (start..(start + 1000).min(range.end)).collect();
        let scores = net.scores(&test.images_f32(&ids)?)?;
        preds.extend((0..ids.len()).map(|i| predicted(&scores, i, k).0));
    }
    Ok(preds)
}

/// The predicted class of image `i` from `scores` (`n * K`): index and score.
fn predicted(scores: &[f32], i: usize, k: usize) -> (usize, f32) {
    let p = scores.get(i * k..(i + 1) * k).unwrap_or(&[]);
    let wide: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
    let pred = shap_explain::top_k(&wide, 1).first().copied().unwrap_or(0);
    (pred, p.get(pred).copied().unwrap_or(f32::NAN))
}

/// What is known about image `i` of a chunk: where it came from, its label, the prediction
/// (from `scores`, `n * K`), and its figure title.
pub(crate) fn image_info(item: &Item, i: usize, scores: &[f32], names: &[String]) -> ImageInfo {
    let (pred, prob) = predicted(scores, i, names.len());
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let class = |index: usize| Class {
        index,
        name: name(index),
    };
    let label = item.label.map(|l| class(usize::from(l)));
    let predicted = Prediction {
        class: class(pred),
        score: f64::from(prob),
    };
    let pred_name = &predicted.class.name;
    let title = match &label {
        Some(t) => format!("true: {} | pred: {pred_name} ({prob:.2})", t.name),
        None => format!("pred: {pred_name} ({prob:.2})"),
    };
    ImageInfo {
        index: item.index,
        source: item.source.clone(),
        label,
        predicted: Some(predicted),
        title,
    }
}

/// An image file as the model's input, and its pixels.
fn image_item(path: &Path, shape: ImageShape, report: &dyn Reporter) -> Result<(Item, Vec<f32>)> {
    let img = shap_data::load_image(path, shape.height, shape.width, shape.channels)?;
    if img.resized || img.converted {
        let how = match (img.converted, img.resized) {
            (true, true) => "converted and resized (bilinear)",
            (true, false) => "converted",
            _ => "resized (bilinear)",
        };
        report.note(&format!(
            "{} ({}x{}) was {how} to fit the model's {shape} input",
            path.display(),
            img.original_size.0,
            img.original_size.1,
        ));
    }
    let item = Item {
        index: None,
        source: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        label: None,
    };
    Ok((item, img.pixels))
}

/// The digest of an explanation file's images (its `source` and `data` arrays), equal to
/// [`Selection::digest`] of the selection it explains; every array is read through its size
/// and CRC-32 checks, so a damaged file is an error.
pub(crate) fn npz_digest(npz: &Path) -> Result<String> {
    let sources = match shap_explain::npz::read_array(npz, "source")?.data {
        shap_io::npy::NpyData::Str(v) => v,
        _ => refuse!("'source' is not a string array"),
    };
    let zip = shap_io::npz::NpzReader::open(npz, shap_explain::npz::MAX_NPZ_BYTES)?;
    if !zip.has("data") {
        refuse!("no array 'data'");
    }
    let mut pixels = Sha256::new();
    for name in zip.names() {
        let mut entry = zip.open_entry(name)?;
        let copied = if name == "data" {
            let header = shap_io::npy::read_header(&mut entry)?;
            if header.descr != "<f4" {
                refuse!("'data' is not float32");
            }
            std::io::copy(&mut entry, &mut pixels)
        } else {
            std::io::copy(&mut entry, &mut std::io::sink())
        };
        crate::error::FileContext::file_context(copied, || format!("reading '{name}'"))?;
    }
    Ok(digest::selection_hex(&sources, pixels))
}
