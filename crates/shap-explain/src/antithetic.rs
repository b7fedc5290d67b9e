//! The antithetic permutation passes of one image, as a [`Job`]
//! (`docs/permutation-explainer.md`).
//!
//! A pass over an order `o` evaluates `2M + 1` masks: row `t <= M` has the first `t` features
//! of `o` on (row `M` is `f(x)`), row `M + t` has features `o[t..]` on. Feature `o[t]` gets
//! `f(row t+1) - f(row t)` forward and `f(row M+t) - f(row M+t+1)` backward. Rows are streamed
//! in chunks, so memory is `O(M * k)` for the `k` selected outputs, never `O(M * K)` or
//! `O(passes * M)`: the outputs are chosen from a first one-row request for `f(x)` (which
//! then stands in for row `M` of the first pass), and each pass's order is drawn when the
//! pass starts.

use std::sync::{Mutex, PoisonError};

use rand_chacha::ChaCha8Rng;

use crate::driver::RowResult;
use crate::eval::{Counters, Job, MAX_BATCH_FLOATS};
use crate::rng::{NumpyLegacyNormal, numpy_tree_order, seeded_tree_order};
use crate::{OutputSelection, Result};
use shap_mask::PartitionTree;

/// Where a job's orders come from.
pub(crate) enum Orders<'a> {
    /// Given in advance, one per pass.
    Given(&'a [Vec<usize>]),
    /// Drawn from the image's own generator.
    Seeded(Box<ChaCha8Rng>),
    /// Drawn from one NumPy-legacy stream shared by the images, in image order.
    Numpy(&'a Mutex<NumpyLegacyNormal>),
}

/// Settings shared by the jobs of all images.
pub(crate) struct PassSettings<'a> {
    pub tree: &'a PartitionTree,
    pub passes: usize,
    pub outputs: &'a OutputSelection,
    pub std_errors: bool,
    /// Number of model outputs `K`.
    pub k_all: usize,
}

impl PassSettings<'_> {
    /// Rows per request: bounded so that masks and outputs of one request stay within
    /// [`MAX_BATCH_FLOATS`] values.
    pub(crate) fn chunk(&self) -> usize {
        let m = self.tree.num_features();
        (MAX_BATCH_FLOATS / m.max(self.k_all).max(1)).max(1)
    }
}

/// Sums over passes, per feature and selected output.
struct Sums {
    outputs: Vec<usize>,
    /// `f(x)` for all outputs (row `M` of every pass).
    fx_all: Vec<f32>,
    acc: Vec<f64>,
    /// Welford state of the per-pass estimates (empty without standard errors).
    fwd: Vec<f64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
    base: Vec<f64>,
}

/// The passes of one image.
pub(crate) struct PassJob<'a> {
    s: &'a PassSettings<'a>,
    orders: Orders<'a>,
    sums: Option<Sums>,
    order: Vec<usize>,
    pass: usize,
    /// Next row of the pass to evaluate, and the row count of the pending request.
    row: usize,
    pending: usize,
    /// Selected outputs of the row before `row`.
    prev: Vec<f64>,
}

impl<'a> PassJob<'a> {
    pub(crate) fn new(s: &'a PassSettings<'a>, orders: Orders<'a>) -> Self {
        Self {
            s,
            orders,
            sums: None,
            order: Vec::new(),
            pass: 0,
            row: 0,
            pending: 0,
            prev: Vec::new(),
        }
    }

    fn m(&self) -> usize {
        self.s.tree.num_features()
    }

    /// The order of pass `self.pass`.
    fn draw_order(&mut self) -> Vec<usize> {
        let tree = self.s.tree;
        match &mut self.orders {
            Orders::Given(all) => all
                .get(self.pass)
                .expect("explain_with_orders sets an image's passes to its number of orders")
                .clone(),
            Orders::Seeded(rng) => seeded_tree_order(tree, rng),
            // The generator is plain data, whole even if a panic poisoned the lock (that panic
            // ends the explanation anyway).
            Orders::Numpy(rng) => numpy_tree_order(
                tree,
                &mut rng.lock().unwrap_or_else(PoisonError::into_inner),
            ),
        }
    }

    /// Choose the outputs from `f(x)` and set up the sums.
    fn start(&mut self, fx: &[f32]) -> Result<()> {
        let all: Vec<f64> = fx.iter().map(|&v| f64::from(v)).collect();
        let outputs = self.s.outputs.resolve(&all)?;
        let size = self.m() * outputs.len();
        let se = |on: bool| if on { vec![0.0; size] } else { Vec::new() };
        let want_se = self.s.std_errors && self.s.passes >= 2;
        self.sums = Some(Sums {
            outputs,
            fx_all: fx.to_vec(),
            acc: vec![0.0; size],
            fwd: se(want_se),
            mean: se(want_se),
            m2: se(want_se),
            base: Vec::new(),
        });
        self.order = self.draw_order();
        Ok(())
    }

    /// Fold row `self.row` of the current pass (all `K` outputs in `y`) into the sums.
    fn take_row(&mut self, y: &[f32]) -> Result<()> {
        let m = self.m();
        let (r, pass) = (self.row, self.pass);
        let Some(s) = self.sums.as_mut() else {
            return Ok(());
        };
        let k = s.outputs.len();
        let cur: Vec<f64> = s.outputs.iter().map(|&o| f64::from(y[o])).collect();
        if r == 0 {
            s.base.clone_from(&cur);
        } else if r <= m {
            let f = self.order[r - 1];
            for (o, (c, p)) in cur.iter().zip(&self.prev).enumerate() {
                let d = c - p;
                s.acc[f * k + o] += d;
                if let Some(x) = s.fwd.get_mut(f * k + o) {
                    *x = d;
                }
            }
        } else {
            let f = self.order[r - m - 1];
            let cnt = (pass + 1) as f64;
            for (o, (c, p)) in cur.iter().zip(&self.prev).enumerate() {
                let j = f * k + o;
                let d = p - c;
                s.acc[j] += d;
                if let Some(&fwd) = s.fwd.get(j) {
                    // Welford update with this pass's estimate of the value.
                    let x = (fwd + d) / 2.0;
                    let dm = x - s.mean[j];
                    s.mean[j] += dm / cnt;
                    s.m2[j] += dm * (x - s.mean[j]);
                }
            }
        }
        self.prev = cur;
        self.row += 1;
        if self.row == 2 * m + 1 {
            self.pass += 1;
            self.row = 0;
            if self.pass < self.s.passes {
                self.order = self.draw_order();
            }
        }
        Ok(())
    }

    /// The image's result: mean contribution per feature over both directions of all passes.
    pub(crate) fn finish(self, c: Counters) -> RowResult {
        let s = self.sums.expect(
            "the schedules finish a job only after next_rows returned 0, which it does only \
             once f(x) has started it",
        );
        let passes = self.s.passes as f64;
        let denom = 2.0 * passes;
        let values = s.acc.iter().map(|a| a / denom).collect();
        let std_errors = (!s.m2.is_empty()).then(|| {
            s.m2.iter()
                .map(|v| (v / (passes - 1.0)).max(0.0).sqrt() / passes.sqrt())
                .collect()
        });
        let fx = s.outputs.iter().map(|&o| f64::from(s.fx_all[o])).collect();
        RowResult {
            values,
            std_errors,
            base: s.base,
            fx,
            outputs: s.outputs,
            counters: c,
        }
    }
}

impl Job for PassJob<'_> {
    fn next_rows(&mut self) -> Result<usize> {
        let m = self.m();
        let Some(sums) = &self.sums else {
            // First, f(x) alone.
            self.pending = 1;
            return Ok(1);
        };
        if self.pass == 0 && self.row == m {
            // Row M of the first pass is the f(x) already evaluated.
            let fx = sums.fx_all.clone();
            self.take_row(&fx)?;
        }
        if self.pass >= self.s.passes {
            return Ok(0);
        }
        let mut end = (self.row + self.s.chunk()).min(2 * m + 1);
        if self.pass == 0 && self.row < m {
            end = end.min(m);
        }
        self.pending = end - self.row;
        Ok(self.pending)
    }

    fn fill(&self, r: usize, row: &mut [bool]) {
        let m = self.m();
        if self.sums.is_none() {
            row.fill(true);
            return;
        }
        let t = self.row + r;
        let on = if t <= m {
            &self.order[..t]
        } else {
            &self.order[t - m..]
        };
        for &f in on {
            if let Some(b) = row.get_mut(f) {
                *b = true;
            }
        }
    }

    fn receive(&mut self, out: &[f32]) -> Result<()> {
        let k_all = self.s.k_all;
        if self.sums.is_none() {
            return self.start(&out[..k_all]);
        }
        for r in 0..self.pending {
            self.take_row(&out[r * k_all..(r + 1) * k_all])?;
        }
        Ok(())
    }
}
