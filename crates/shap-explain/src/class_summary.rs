//! Per-class summary of many explanations: for each predicted class, the mean SHAP map of that
//! class and the mean absolute map, over the images predicted as that class
//! (docs/outputs-and-explanations.md#per-class-summary).

use serde::{Deserialize, Serialize};

use crate::{ExplainError, Explanation, Result};

/// The maps of one predicted class. Maps are `(H, W, C)` row-major, like an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMaps {
    /// The class (model output) index.
    pub class: usize,
    /// Its name, as the explanation records it.
    pub name: String,
    /// Images predicted as this class.
    pub predicted: usize,
    /// Those whose explanation includes this class (the maps average these).
    pub with_values: usize,
    /// Those whose explained outputs leave this class out (a top-k that missed it, or
    /// `--classes` without it): not in the maps.
    pub without_values: usize,
    /// Mean of the `with_values` images.
    pub mean_image: Vec<f64>,
    /// Mean SHAP value of this class per feature; `None` when `with_values` is 0.
    pub mean: Option<Vec<f64>>,
    /// Mean absolute SHAP value of this class per feature; `None` when `with_values` is 0.
    pub mean_abs: Option<Vec<f64>>,
}

/// Per-class maps of an explanation: what `shap-cli summary --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// Image shape `[H, W, C]`.
    pub shape: [usize; 3],
    /// Images in the explanation.
    pub images: usize,
    /// Images whose predicted class is not among their explained outputs (all classes
    /// together).
    pub without_values: usize,
    /// One entry per predicted class, by class index.
    pub classes: Vec<ClassMaps>,
}

/// Sums over the images of one class.
struct Acc {
    name: String,
    predicted: usize,
    with_values: usize,
    image: Vec<f64>,
    sum: Vec<f64>,
    abs: Vec<f64>,
}

/// Group the images of `e` by predicted class and average, per class, the values of that
/// class (signed and absolute) and the images.
///
/// Errors ([`ExplainError::Missing`]): no images, arrays that do not fit the shape, or an
/// image without a recorded predicted class (an `.npz` written by shap itself, or one without image records).
pub fn class_summary(e: &Explanation) -> Result<ClassSummary> {
    if e.num_images == 0 {
        return Err(ExplainError::Missing(
            "the explanation holds no images".into(),
        ));
    }
    let m = e.num_features();
    let mut accs: std::collections::BTreeMap<usize, Acc> = Default::default();
    for i in 0..e.num_images {
        let crate::Class { index: class, name } = predicted(e, i)?;
        let name = if name.is_empty() {
            class.to_string()
        } else {
            name
        };
        let acc = accs.entry(class).or_insert_with(|| Acc {
            name,
            predicted: 0,
            with_values: 0,
            image: vec![0.0; m],
            sum: vec![0.0; m],
            abs: vec![0.0; m],
        });
        acc.predicted += 1;
        let k = e.num_outputs;
        let Some(o) = e.output_indices[i * k..(i + 1) * k]
            .iter()
            .position(|&c| c == class)
        else {
            continue;
        };
        acc.with_values += 1;
        let pixels = &e.data[i * m..(i + 1) * m];
        for (f, v) in e.value_map(i, o).into_iter().enumerate() {
            acc.sum[f] += v;
            acc.abs[f] += v.abs();
            acc.image[f] += f64::from(pixels[f]);
        }
    }
    let classes: Vec<ClassMaps> = accs.into_iter().map(|(c, a)| maps(c, a)).collect();
    Ok(ClassSummary {
        shape: [e.shape.height, e.shape.width, e.shape.channels],
        images: e.num_images,
        without_values: classes.iter().map(|c| c.without_values).sum(),
        classes,
    })
}

/// The recorded prediction of image `i`, or why there is none.
fn predicted(e: &Explanation, i: usize) -> Result<crate::Class> {
    e.images
        .get(i)
        .and_then(|info| info.predicted.as_ref().map(|p| p.class.clone()))
        .ok_or_else(|| {
            ExplainError::Missing(format!(
                "image {i} has no predicted class recorded (an .npz from shap itself, or without \
                 image records): explain the images with `shap-cli explain --npz`, which stores \
                 the predictions"
            ))
        })
}

fn maps(class: usize, a: Acc) -> ClassMaps {
    let n = a.with_values as f64;
    let mean = |v: Vec<f64>| v.into_iter().map(|x| x / n).collect::<Vec<f64>>();
    let has = a.with_values > 0;
    ClassMaps {
        class,
        name: a.name,
        predicted: a.predicted,
        with_values: a.with_values,
        without_values: a.predicted - a.with_values,
        mean_image: if has { mean(a.image) } else { a.image },
        mean: has.then(|| mean(a.sum)),
        mean_abs: has.then(|| mean(a.abs)),
    }
}

/// `n` and `word`, plural when `n` is not 1.
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The summary as text: images per predicted class, and those without values.
impl std::fmt::Display for ClassSummary {
    fn fmt(&self, o: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(o, "{} by predicted class:", count(self.images, "image"))?;
        for c in &self.classes {
            let note = match c.without_values {
                0 => String::new(),
                n => format!("  ({n} without values for this class: not in the maps)"),
            };
            let n = count(c.predicted, "image");
            write!(o, "\n  {:<14} {n:>12}{note}", c.name)?;
        }
        if self.without_values > 0 {
            let have = match self.without_values {
                1 => "1 image has".to_string(),
                n => format!("{n} images have"),
            };
            write!(
                o,
                "\n  {have} no values for their predicted class (explain them with a larger \
                 --top-k, or --all-classes)"
            )?;
        }
        Ok(())
    }
}
