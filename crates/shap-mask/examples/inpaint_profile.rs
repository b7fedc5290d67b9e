//! Time (or profile under callgrind) `inpaint_u8` on the criterion bench's case: a 28x28
//! image-like picture with half the pixels hidden. Prints µs per inpaint (the median of
//! [`RUNS`] runs of ITERS calls each, after one untimed run, on one thread: the statistic
//! `benches/python/cv2_inpaint_time.py` reports for `cv2.inpaint`) and a checksum of the outputs
//! (so speed changes can be checked not to change results).
//!
//! Run: `cargo run --release -p shap-mask --example inpaint_profile -- [telea|ns] [ITERS]`
//! Instructions: `valgrind --tool=callgrind target/release/examples/inpaint_profile telea 100`

use shap_mask::{InpaintMethod, MaskError, inpaint_u8};
use std::hint::black_box;
use std::time::Instant;

const M: usize = 28 * 28;
/// Timed runs; the figure is their median.
const RUNS: usize = 5;

fn main() -> Result<(), MaskError> {
    let mut args = std::env::args().skip(1);
    let method = match args.next().as_deref() {
        Some("ns") => InpaintMethod::Ns,
        _ => InpaintMethod::Telea,
    };
    let iters: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4_000);
    let src: Vec<u8> = (0..M)
        .map(|p| {
            let (r, c) = ((p / 28) as f32, (p % 28) as f32);
            let blob = (-((r - 13.5).powi(2) + (c - 12.0).powi(2)) / 60.0).exp();
            let x = (0.8 * blob + 0.2 * ((r * 0.7).sin() * (c * 1.3).cos()).abs()).min(1.0);
            (x * 255.0).round() as u8
        })
        .collect();
    // 16 seeded masks hiding exactly half of the pixels each.
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let masks: Vec<Vec<bool>> = (0..16)
        .map(|_| {
            let mut m: Vec<bool> = (0..M).map(|j| j < M / 2).collect();
            for j in (1..M).rev() {
                m.swap(j, (next() % (j as u64 + 1)) as usize);
            }
            m
        })
        .collect();
    let mut checksum = 0u64;
    for m in &masks {
        for (i, v) in inpaint_u8(&src, m, 28, 28, method)?.iter().enumerate() {
            checksum = checksum
                .wrapping_mul(31)
                .wrapping_add(u64::from(*v) ^ i as u64);
        }
    }
    let run = || -> Result<f64, MaskError> {
        let start = Instant::now();
        for i in 0..iters {
            black_box(inpaint_u8(
                black_box(&src),
                black_box(&masks[i % masks.len()]),
                28,
                28,
                method,
            )?);
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / iters as f64)
    };
    run()?; // warm-up, untimed
    let mut times = (0..RUNS).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
    times.sort_by(f64::total_cmp);
    let us = times[RUNS / 2];
    println!(
        "{method:?}: {us:.2} us per inpaint (median of {RUNS} runs of {iters}), checksum {checksum:016x}"
    );
    Ok(())
}
