//! Two explanations every explainer should beat (docs/metrics.md, "Comparing explanations"):
//! plain occlusion, and random values. Each is built for the images and classes of an
//! existing explanation, so the metrics score all of them on the same footing.

use rand::Rng;
use rayon::prelude::*;

use super::{Changed, eval_images, rng};
use crate::faithfulness::at_image;
use crate::{BatchModel, ConfigError, Explanation, ImageMasker, MaskedImages, Result};

/// The occlusion patch of an image: `max(H, W) / 7`, rounded up (4 pixels for 28 x 28, 32 for
/// 224 x 224), so about 49 patches cover any image.
pub fn default_patch(height: usize, width: usize) -> usize {
    height.max(width).div_ceil(7).max(1)
}

/// `like` with its values replaced by occlusion (Zeiler and Fergus 2014): the image is tiled
/// with `patch x patch` squares from the top left (the last row and column may be narrower),
/// each hidden in turn with `masker`, and every feature of a square gets the drop of each
/// explained class's output, `f(x) - f(x with the square hidden)`, divided by the square's
/// features (so the values of a square sum to its drop). One model row per square and image.
/// Base values and `f(x)` stay `like`'s; the images run in parallel.
pub fn occlusion<M, K>(
    model: &M,
    like: &Explanation,
    masker: &K,
    patch: usize,
) -> Result<Explanation>
where
    M: BatchModel + ?Sized,
    K: ImageMasker + Sync,
{
    if patch == 0 {
        return Err(
            ConfigError::Metric("occlusion: the patch must be at least 1 pixel".into()).into(),
        );
    }
    let per_image = (0..like.num_images)
        .into_par_iter()
        .map(|i| occlude_image(model, like, masker, patch, i))
        .collect::<Result<Vec<_>>>()?;
    Ok(with_values(like, per_image.concat()))
}

/// One image's occlusion values, `(M, k)`.
fn occlude_image<M, K>(
    model: &M,
    like: &Explanation,
    masker: &K,
    patch: usize,
    i: usize,
) -> Result<Vec<f64>>
where
    M: BatchModel + ?Sized,
    K: ImageMasker + Sync,
{
    let shape = like.shape;
    let (m, c, k) = (shape.features(), shape.channels, like.num_outputs);
    let original = &like.data[i * m..(i + 1) * m];
    let squares = squares(shape.height, shape.width, patch);
    let rows = 1 + squares.len();
    let mut keeps = vec![true; rows * m];
    for (s, pixels) in squares.iter().enumerate() {
        let row = &mut keeps[(s + 1) * m..(s + 2) * m];
        pixels
            .iter()
            .for_each(|&px| row[px * c..(px + 1) * c].fill(false));
    }
    let prepared = masker
        .prepare(original, shape)
        .map_err(|e| at_image(e, i))?;
    let mut images = vec![0.0f32; rows * m];
    prepared
        .fill_batch(&keeps, &mut images)
        .map_err(|e| at_image(e, i))?;
    let changed = Changed {
        original,
        keeps: &keeps,
        images: &images,
        n: rows,
    };
    let out = eval_images(model, changed, shape, i)?;
    let outputs = model.num_outputs();
    let classes = &like.output_indices[i * k..(i + 1) * k];
    let mut values = vec![0.0; m * k];
    for (s, pixels) in squares.iter().enumerate() {
        let features = (pixels.len() * c) as f64;
        for (o, &cls) in classes.iter().enumerate() {
            let drop = f64::from(out[cls]) - f64::from(out[(s + 1) * outputs + cls]);
            for &px in pixels {
                for f in px * c..(px + 1) * c {
                    values[f * k + o] = drop / features;
                }
            }
        }
    }
    Ok(values)
}

/// The pixels of each square of the tiling, row by row.
fn squares(height: usize, width: usize, patch: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for top in (0..height).step_by(patch) {
        for left in (0..width).step_by(patch) {
            let pixels = (top..(top + patch).min(height))
                .flat_map(|y| (left..(left + patch).min(width)).map(move |x| y * width + x))
                .collect();
            out.push(pixels);
        }
    }
    out
}

/// `like` with its values replaced by independent standard normal draws (ChaCha8 from `seed`,
/// stream = the image's position): an explanation that knows nothing of the model.
pub fn random(like: &Explanation, seed: u64) -> Explanation {
    let per_image = like.num_features() * like.num_outputs;
    let values = (0..like.num_images)
        .flat_map(|i| {
            let mut r = rng(seed, i as u64);
            (0..per_image)
                .map(|_| {
                    let (u1, u2): (f64, f64) = (1.0 - r.random::<f64>(), r.random());
                    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    with_values(like, values)
}

/// `like` with other values: the images, classes, `f(x)` and base values the metrics check and
/// score against are `like`'s. Such an explanation is for scoring, not for saving: it keeps
/// `like`'s algorithm and settings.
fn with_values(like: &Explanation, values: Vec<f64>) -> Explanation {
    Explanation {
        values,
        std_errors: None,
        ..like.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squares_tile_the_image_once() {
        let s = squares(5, 7, 3);
        assert_eq!(s.len(), 2 * 3);
        let mut all: Vec<usize> = s.concat();
        all.sort_unstable();
        assert_eq!(all, (0..35).collect::<Vec<_>>());
        assert_eq!(s[0], [0, 1, 2, 7, 8, 9, 14, 15, 16]);
        assert_eq!(s[5], [27, 34]);
        assert_eq!(
            (
                default_patch(28, 28),
                default_patch(224, 224),
                default_patch(3, 2)
            ),
            (4, 32, 1)
        );
    }
}
