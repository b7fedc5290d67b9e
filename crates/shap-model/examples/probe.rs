//! Temporary timing probe (thread CPU time, single thread).
#![allow(clippy::unwrap_used, missing_docs)]
use shap_model::conv::{self, ConvGeom};
#[global_allocator]
static GLOBAL: shap_model::bench::FastAllocator = shap_model::bench::FastAllocator;
#[repr(C)]
struct Ts {
    s: i64,
    ns: i64,
}
unsafe extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Ts) -> i32;
}
fn cpu_ns() -> u64 {
    let mut t = Ts { s: 0, ns: 0 };
    unsafe { clock_gettime(3, &mut t) };
    (t.s * 1_000_000_000 + t.ns) as u64
}
fn time<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let t = cpu_ns();
    let r = f();
    println!("{name:>14}: {:7.2} ms cpu", (cpu_ns() - t) as f64 / 1e6);
    r
}
fn main() {
    let n = 64;
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
    let x = shap_model::bench::synthetic_images(n);
    let w1: Vec<f32> = (0..g1.weight_len())
        .map(|i| ((i % 7) as f32 - 3.0) * 0.1)
        .collect();
    let w2: Vec<f32> = (0..g2.weight_len())
        .map(|i| ((i % 5) as f32 - 2.0) * 0.05)
        .collect();
    let b1 = vec![0.01f32; 32];
    let b2 = vec![0.01f32; 16];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .unwrap();
    pool.install(|| {
        for _ in 0..3 {
            let a1 = time("fwd1", || conv::forward_batch(g1, &x, &w1, &b1, true));
            let a2 = time("fwd2", || conv::forward_batch(g2, &a1, &w2, &b2, true));
            let gy = vec![0.01f32; a2.len()];
            let mut cols = vec![0f32; 288 * 28 * 28];
            time("im2col x", || {
                for i in 0..n {
                    for r in 0..4 {
                        conv::im2col(&a1[i * 25088..], 32, 28, 28, r * 7, r * 7 + 7, &mut cols);
                    }
                }
            });
            time("bwd2 dw", || {
                conv::backward_batch(g2, &a1, &w2, &a2, &gy, true, false)
            });
            let gr2 = time("bwd2 dw+dx", || {
                conv::backward_batch(g2, &a1, &w2, &a2, &gy, true, true)
            });
            time("bwd1", || {
                conv::backward_batch(g1, &x, &w1, &a1, gr2.dx.as_ref().unwrap(), true, false)
            });
            println!();
        }
        let mut st = shap_model::bench::TrainStep::new(n).unwrap();
        for _ in 0..3 {
            time("train step", || st.step().unwrap());
            time("autograd step", || st.step_autograd().unwrap());
        }
    });
}
