//! Shared test helpers: the fixtures' "quad" model and fixture access.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use shap_explain::npz::read_npz;
use shap_explain::{BatchModel, ImageShape, ModelError};
use shap_io::npy::NpyArray;

pub const K: usize = 10;

/// Same formula as `weight` in `fixtures/gen_explain_fixtures.py`.
pub fn weight(j: u64, k: u64, salt: u64, scale: f64) -> f64 {
    let v = ((j * 31 + k * 17 + salt) * 2_654_435_761) % 1000;
    (v as f64 / 1000.0 - 0.5) * scale
}

/// `out = f32(z1 + z2*z2 + b)`, `z = sum_j x_j W[j]` accumulated in f64 feature by feature.
pub struct QuadModel {
    pub m: usize,
    pub w1: Vec<f64>,
    pub w2: Vec<f64>,
    pub b: Vec<f64>,
}

impl QuadModel {
    pub fn new(m: usize) -> Self {
        let mut w1 = Vec::with_capacity(m * K);
        let mut w2 = Vec::with_capacity(m * K);
        for j in 0..m as u64 {
            for k in 0..K as u64 {
                w1.push(weight(j, k, 7, 0.05));
                w2.push(weight(j, k, 3, 0.05));
            }
        }
        let b = (0..K as u64).map(|k| weight(0, k, 11, 0.2)).collect();
        Self { m, w1, w2, b }
    }
}

impl BatchModel for QuadModel {
    fn num_outputs(&self) -> usize {
        K
    }
    fn eval_batch(
        &self,
        images: &[f32],
        n: usize,
        shape: ImageShape,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let m = shape.features();
        if m != self.m || images.len() != n * m || out.len() != n * K {
            return Err(ModelError::Shape(format!("{} images of {shape}", n)));
        }
        for (img, o) in images.chunks_exact(m).zip(out.chunks_exact_mut(K)) {
            let mut z1 = [0.0f64; K];
            let mut z2 = [0.0f64; K];
            for (j, &x) in img.iter().enumerate() {
                let x = f64::from(x);
                for k in 0..K {
                    z1[k] += x * self.w1[j * K + k];
                    z2[k] += x * self.w2[j * K + k];
                }
            }
            for k in 0..K {
                o[k] = (z1[k] + z2[k] * z2[k] + self.b[k]) as f32;
            }
        }
        Ok(())
    }
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn load(name: &str) -> Vec<(String, NpyArray)> {
    read_npz(&fixture(name)).unwrap()
}

pub fn get<'a>(arrays: &'a [(String, NpyArray)], key: &str) -> &'a NpyArray {
    &arrays
        .iter()
        .find(|(n, _)| n == key)
        .unwrap_or_else(|| panic!("missing {key}"))
        .1
}
