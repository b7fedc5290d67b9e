//! Temporary timing probe.
#![allow(clippy::unwrap_used, missing_docs)]
use shap_model::conv::{self, ConvGeom};
use std::time::Instant;
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let n = 256;
    let g1 = ConvGeom { cin: 1, cout: 32, h: 28, w: 28 };
    let g2 = ConvGeom { cin: 32, cout: 16, h: 28, w: 28 };
    let x = shap_model::bench::synthetic_images(n);
    let w1: Vec<f32> = (0..g1.weight_len()).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let w2: Vec<f32> = (0..g2.weight_len()).map(|i| ((i % 5) as f32 - 2.0) * 0.05).collect();
    let b1 = vec![0.01f32; 32];
    let b2 = vec![0.01f32; 16];
    for _ in 0..2 {
        let t = Instant::now();
        let a1 = conv::forward_batch(g1, &x, &w1, &b1, true);
        let t1 = t.elapsed();
        let a2 = conv::forward_batch(g2, &a1, &w2, &b2, true);
        let t2 = t.elapsed();
        let gy = vec![0.01f32; a2.len()];
        let gr2 = conv::backward_batch(g2, &a1, &w2, &a2, &gy, true, true);
        let t3 = t.elapsed();
        let _gr1 = conv::backward_batch(g1, &x, &w1, &a1, gr2.dx.as_ref().unwrap(), true, false);
        let t4 = t.elapsed();
        let _ = conv::backward_batch(g2, &a1, &w2, &a2, &gy, true, false);
        println!("bwd2 dw-only {:?}", t.elapsed() - t4);
        println!("fwd1 {:?} fwd2 {:?} bwd2 {:?} bwd1 {:?}", t1, t2 - t1, t3 - t2, t4 - t3);
    }
    // Full step pieces via candle.
    let dev = candle_core::Device::Cpu;
    let cnn = shap_model::Cnn::new(0, shap_model::Head::Softmax, &dev).unwrap();
    let xt = candle_core::Tensor::from_vec(x.clone(), (n, 1, 28, 28), &dev).unwrap();
    let y = candle_core::Tensor::from_vec((0..n as u32).map(|i| i % 10).collect::<Vec<_>>(), n, &dev).unwrap();
    use candle_nn::Optimizer;
    let mut opt = candle_nn::AdamW::new(cnn.vars(), candle_nn::ParamsAdamW { weight_decay: 0.0, ..Default::default() }).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let logits = cnn.logits(&xt).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let t1 = t.elapsed();
        let grads = loss.backward().unwrap();
        let t2 = t.elapsed();
        opt.step(&grads).unwrap();
        let t3 = t.elapsed();
        println!("step: fwd {:?} bwd {:?} adam {:?}", t1, t2 - t1, t3 - t2);
    }
}
