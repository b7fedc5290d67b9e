//! Where a training step's time goes, phase by phase, at batch 256 on synthetic data:
//! conv1/conv2 forward, the conv2 backward (weight gradient alone, then with the input
//! gradient), the conv1 backward, the whole hand-written step (the dense layer and the
//! softmax are what is left once the convolutions are subtracted) and candle-nn's AdamW update
//! (which training replaced with the crate's own Adam; it takes well under a millisecond).
//! Phases are interleaved round by round; wall time is the median over rounds, CPU time (all
//! threads, from `/proc/self/stat`'s 10 ms ticks) the mean, which a shared machine disturbs
//! less.
//!
//! `cargo run --release -p shap-model --example epoch_profile [-- ROUNDS]`

use std::time::Instant;

use candle_core::Device;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use shap_model::conv::{self, ConvGeom};
use shap_model::{Cnn, Head, bench};

#[global_allocator]
static GLOBAL: shap_model::bench::FastAllocator = shap_model::bench::FastAllocator;

const BATCH: usize = 256;

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 10 ms ticks).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let g1 = ConvGeom {
        cin: 1,
        cout: 32,
        h: 28,
        w: 28,
    };
    let g2 = ConvGeom {
        cin: 32,
        cout: 16,
        h: 28,
        w: 28,
    };
    let cnn = Cnn::new(0, Head::Softmax, &Device::Cpu)?;
    let w = cnn.cpu_weights()?;
    let [w1, b1, w2, b2, _, _] = &w.tensors;
    let x = bench::synthetic_images(BATCH);
    let y: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    let a1 = conv::forward_batch(g1, &x, w1, b1, true);
    let a2 = conv::forward_batch(g2, &a1, w2, b2, true);
    let gy2: Vec<f32> = a2
        .iter()
        .enumerate()
        .map(|(i, _)| ((i % 7) as f32 - 3.0) * 1e-3)
        .collect();
    let gy1: Vec<f32> = a1
        .iter()
        .enumerate()
        .map(|(i, _)| ((i % 5) as f32 - 2.0) * 1e-3)
        .collect();
    let params = ParamsAdamW {
        lr: 1e-3,
        eps: 1e-7,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(cnn.vars(), params)?;
    let grads = cnn.cpu_loss_and_grads(&x, &y)?;
    type Phase<'a> = (
        &'a str,
        Box<dyn FnMut() -> Result<(), Box<dyn std::error::Error>> + 'a>,
    );
    let mut phases: Vec<Phase> = vec![
        (
            "conv1 forward",
            Box::new(|| {
                conv::forward_batch(g1, &x, w1, b1, true);
                Ok(())
            }),
        ),
        (
            "conv2 forward",
            Box::new(|| {
                conv::forward_batch(g2, &a1, w2, b2, true);
                Ok(())
            }),
        ),
        (
            "conv2 backward dW",
            Box::new(|| {
                conv::backward_batch(g2, &a1, w2, &a2, &gy2, true, false);
                Ok(())
            }),
        ),
        (
            "conv2 backward dW+dX",
            Box::new(|| {
                conv::backward_batch(g2, &a1, w2, &a2, &gy2, true, true);
                Ok(())
            }),
        ),
        (
            "conv1 backward dW",
            Box::new(|| {
                conv::backward_batch(g1, &x, w1, &a1, &gy1, true, false);
                Ok(())
            }),
        ),
        (
            "whole loss+grads",
            Box::new(|| {
                cnn.cpu_loss_and_grads(&x, &y)?;
                Ok(())
            }),
        ),
        (
            "candle AdamW step",
            Box::new(|| {
                opt.step(&cnn.grad_store(grads.grads.clone())?)?;
                Ok(())
            }),
        ),
    ];
    let mut times = vec![Vec::new(); phases.len()];
    let mut cpu = vec![0f64; phases.len()];
    for round in 0..=rounds {
        for (i, (_, f)) in phases.iter_mut().enumerate() {
            let (t, c) = (Instant::now(), cpu_seconds());
            f()?;
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
            if round > 0 {
                cpu[i] += (cpu_seconds() - c) * 1e3 / rounds as f64;
            }
        }
    }
    let med: Vec<f64> = times.iter_mut().map(|t| median(&mut t[1..])).collect();
    println!("phase                  wall ms (median)  CPU ms (mean, all threads), batch {BATCH}");
    for (((name, _), m), c) in phases.iter().zip(&med).zip(&cpu) {
        println!("{name:<22} {m:>8.2} {c:>14.1}");
    }
    let convs = |v: &[f64]| v[0] + v[1] + v[3] + v[4];
    println!(
        "{:<22} {:>8.2} {:>14.1}   (whole minus the four conv phases)",
        "dense+softmax+rest",
        med[5] - convs(&med),
        cpu[5] - convs(&cpu)
    );
    Ok(())
}
