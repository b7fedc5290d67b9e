//! The fused conv op against Candle's stock conv2d, and finite differences (unit tests: the
//! kernels are crate-private).

use crate::conv::{self, Conv3x3Relu, ConvGeom};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("to_vec")
}

/// Forward, dW, db and dX of the custom op match stock conv2d + bias + ReLU.
fn check_against_stock(n: usize, cin: usize, cout: usize, h: usize, w: usize, seed: u64) {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xv = rand_vec(&mut rng, n * cin * h * w);
    let wv = rand_vec(&mut rng, cout * cin * 9);
    let bv = rand_vec(&mut rng, cout);
    // A random linear functional of the output as the loss, so every gradient entry matters.
    let rv = rand_vec(&mut rng, n * cout * h * w);
    let r = Tensor::from_vec(rv, (n, cout, h, w), &dev).expect("r");

    let run = |custom: bool| {
        let x = Var::from_vec(xv.clone(), (n, cin, h, w), &dev).expect("x");
        let wt = Var::from_vec(wv.clone(), (cout, cin, 3, 3), &dev).expect("w");
        let b = Var::from_vec(bv.clone(), cout, &dev).expect("b");
        let y = if custom {
            x.as_tensor()
                .apply_op3(
                    wt.as_tensor(),
                    b.as_tensor(),
                    Conv3x3Relu {
                        input_grad: true,
                        relu: true,
                    },
                )
                .expect("custom")
        } else {
            x.as_tensor()
                .conv2d(wt.as_tensor(), 1, 1, 1, 1)
                .and_then(|y| y.broadcast_add(&b.as_tensor().reshape((1, cout, 1, 1))?))
                .and_then(|y| y.relu())
                .expect("stock")
        };
        let loss = (&y * &r).and_then(|t| t.sum_all()).expect("loss");
        let g = loss.backward().expect("backward");
        let grad = |v: &Var| flat(g.get(v.as_tensor()).expect("grad"));
        (flat(&y), grad(&x), grad(&wt), grad(&b))
    };
    let (y1, dx1, dw1, db1) = run(true);
    let (y2, dx2, dw2, db2) = run(false);
    assert_eq!(y1.len(), y2.len());
    assert!(max_rel(&y1, &y2) < 1e-5, "forward {}", max_rel(&y1, &y2));
    assert!(max_rel(&dx1, &dx2) < 1e-4, "dx {}", max_rel(&dx1, &dx2));
    assert!(max_rel(&dw1, &dw2) < 1e-4, "dw {}", max_rel(&dw1, &dw2));
    assert!(max_rel(&db1, &db2) < 1e-4, "db {}", max_rel(&db1, &db2));
}

#[test]
fn matches_stock_conv2d_small_shapes() {
    check_against_stock(3, 2, 4, 5, 6, 1);
    check_against_stock(1, 1, 3, 1, 1, 2);
    // More images than one backward task, and rows split over several im2col blocks.
    check_against_stock(11, 3, 2, 40, 7, 3);
}

#[test]
fn matches_stock_conv2d_model_shapes() {
    check_against_stock(2, 32, 16, 28, 28, 4);
    check_against_stock(2, 1, 32, 28, 28, 5);
}

#[test]
fn gradients_match_finite_differences() {
    let g = ConvGeom {
        cin: 2,
        cout: 3,
        h: 4,
        w: 5,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 2;
    let x: Vec<f64> = (0..n * g.in_len())
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    let w: Vec<f64> = (0..g.weight_len())
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    let b: Vec<f64> = (0..g.cout).map(|_| rng.random::<f64>() * 0.2).collect();
    let r: Vec<f64> = (0..n * g.out_len())
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    // loss = sum(r * conv(x)) without ReLU (smooth), computed in f64 directly.
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let mut s = 0.0;
        for i in 0..n {
            for co in 0..g.cout {
                for y in 0..g.h {
                    for xx in 0..g.w {
                        let mut v = b[co];
                        for ci in 0..g.cin {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let sy = y as isize + ky as isize - 1;
                                    let sx = xx as isize + kx as isize - 1;
                                    if sy < 0 || sx < 0 || sy >= g.h as isize || sx >= g.w as isize
                                    {
                                        continue;
                                    }
                                    v += w[((co * g.cin + ci) * 3 + ky) * 3 + kx]
                                        * x[i * g.in_len()
                                            + (ci * g.h + sy as usize) * g.w
                                            + sx as usize];
                                }
                            }
                        }
                        s += v * r[i * g.out_len() + (co * g.h + y) * g.w + xx];
                    }
                }
            }
        }
        s
    };
    let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let y = conv::forward_batch(g, &to32(&x), &to32(&w), &to32(&b), false);
    let grads = conv::backward_batch(g, &to32(&x), &to32(&w), &y, &to32(&r), false, true);
    let eps = 1e-5;
    let fd = |f: &dyn Fn(f64) -> f64| (f(eps) - f(-eps)) / (2.0 * eps);
    let dx = grads.dx.expect("dx requested");
    for j in 0..x.len() {
        let num = fd(&|e| {
            let mut xp = x.clone();
            xp[j] += e;
            loss(&xp, &w, &b)
        });
        assert!(
            (num - f64::from(dx[j])).abs() < 1e-3,
            "dx[{j}]: {num} vs {}",
            dx[j]
        );
    }
    for j in 0..w.len() {
        let num = fd(&|e| {
            let mut wp = w.clone();
            wp[j] += e;
            loss(&x, &wp, &b)
        });
        assert!(
            (num - f64::from(grads.dw[j])).abs() < 1e-3,
            "dw[{j}]: {num} vs {}",
            grads.dw[j]
        );
    }
    for j in 0..b.len() {
        let num = fd(&|e| {
            let mut bp = b.clone();
            bp[j] += e;
            loss(&x, &w, &bp)
        });
        assert!(
            (num - f64::from(grads.db[j])).abs() < 1e-3,
            "db[{j}]: {num} vs {}",
            grads.db[j]
        );
    }
}

#[test]
fn input_gradient_is_skipped_when_not_needed() {
    let g = ConvGeom {
        cin: 1,
        cout: 2,
        h: 3,
        w: 3,
    };
    let x = vec![0.5f32; 2 * g.in_len()];
    let w = vec![0.1f32; g.weight_len()];
    let y = conv::forward_batch(g, &x, &w, &[0.0, 0.0], true);
    let grads = conv::backward_batch(g, &x, &w, &y, &vec![1.0; y.len()], true, false);
    assert!(grads.dx.is_none());
    // Every output is positive, so the bias gradient counts all 2 x 9 output pixels.
    assert!((grads.db[0] - 18.0).abs() < 1e-5);
}

#[test]
fn backward_is_independent_of_thread_count() {
    let g = ConvGeom {
        cin: 4,
        cout: 3,
        h: 9,
        w: 9,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 21;
    let x = rand_vec(&mut rng, n * g.in_len());
    let w = rand_vec(&mut rng, g.weight_len());
    let gy = rand_vec(&mut rng, n * g.out_len());
    let y = conv::forward_batch(g, &x, &w, &[0.1, 0.0, -0.1], true);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| conv::backward_batch(g, &x, &w, &y, &gy, true, true))
    };
    let a = run(1);
    let b = run(3);
    assert_eq!(a.dw, b.dw);
    assert_eq!(a.db, b.db);
    assert_eq!(a.dx, b.dx);
}
