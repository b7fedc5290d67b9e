//! The Owen recursion of the Partition explainer for one image, as a [`Job`]: it asks for
//! `f(all hidden)` and `f(x)`, then for one step of up to `batch_size` masks at a time, and
//! credits every node with what its children add (`docs/partition-explainer.md`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use crate::FixedContext;
use crate::driver::RowResult;
use crate::eval::{Counters, Job};
use crate::rng::NumpyLegacyNormal;
use crate::{OutputSelection, Result};
use shap_mask::PartitionTree;

/// The settings of one Partition explanation, shared by the jobs of all images.
pub(crate) struct OwenSettings<'a> {
    pub tree: &'a PartitionTree,
    pub budget: usize,
    pub batch_size: usize,
    pub fixed_context: FixedContext,
    pub v040_budget: bool,
    pub outputs: &'a OutputSelection,
    /// Number of model outputs `K`.
    pub k_all: usize,
}

/// Where equal priorities get their tie-break values.
#[derive(Clone, Copy)]
pub(crate) enum Ties<'a> {
    /// All zero: first pushed, first expanded.
    Fifo,
    /// Draws from one NumPy-legacy stream shared by the images, in image order.
    Numpy(&'a Mutex<NumpyLegacyNormal>),
}

impl Ties<'_> {
    fn draw(&self) -> f64 {
        match self {
            Self::Fifo => 0.0,
            // The generator is plain data, whole even if a panic poisoned the lock (that panic
            // ends the explanation anyway).
            Self::Numpy(rng) => rng.lock().unwrap_or_else(PoisonError::into_inner).randn(),
        }
    }
}

/// One queue entry: context mask `m`, `lo = f(m)`, `hi = f(m ∪ node)`, weight `w`.
struct Item {
    prio: f64,
    tie: f64,
    tick: u64,
    mask: Vec<u64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    node: usize,
    w: f64,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    /// Reversed so that `BinaryHeap` (a max-heap) pops the smallest `(prio, tie, tick)`.
    /// IEEE comparison: `-0.0 == 0.0`, as in Python.
    fn cmp(&self, other: &Self) -> Ordering {
        let key = self
            .prio
            .partial_cmp(&other.prio)
            .unwrap_or(Ordering::Equal)
            .then(self.tie.partial_cmp(&other.tie).unwrap_or(Ordering::Equal))
            .then(self.tick.cmp(&other.tick));
        key.reverse()
    }
}

fn set_bits(mask: &mut [u64], leaves: &[usize]) {
    for &f in leaves {
        if let Some(w) = mask.get_mut(f / 64) {
            *w |= 1u64 << (f % 64);
        }
    }
}

fn fill_row(row: &mut [bool], mask: &[u64], extra: &[usize]) {
    for (chunk, &word) in row.chunks_mut(64).zip(mask) {
        for (b, r) in chunk.iter_mut().enumerate() {
            *r = (word >> b) & 1 == 1;
        }
    }
    for &f in extra {
        if let Some(r) = row.get_mut(f) {
            *r = true;
        }
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    // NumPy's np.max(np.abs(b - a)): NaN never occurs (outputs are checked finite).
    a.iter()
        .zip(b)
        .map(|(x, y)| (y - x).abs())
        .fold(f64::NEG_INFINITY, f64::max)
}

/// What the job has learnt from `f(all hidden)` and `f(x)`.
struct Started {
    outputs: Vec<usize>,
    f00: Vec<f64>,
    f11: Vec<f64>,
    /// Credit per node and selected output, `(nodes, k)`.
    dv: Vec<f64>,
}

/// The Owen recursion for one image.
pub(crate) struct OwenJob<'a> {
    s: &'a OwenSettings<'a>,
    ties: Ties<'a>,
    started: Option<Started>,
    heap: BinaryHeap<Item>,
    tick: u64,
    /// Evaluations spent on expansions (the budget counts these).
    evals: usize,
    /// The pending step: nodes to expand with their two children.
    batch: Vec<(Item, usize, usize)>,
}

impl<'a> OwenJob<'a> {
    pub(crate) fn new(s: &'a OwenSettings<'a>, ties: Ties<'a>) -> Self {
        Self {
            s,
            ties,
            started: None,
            heap: BinaryHeap::new(),
            tick: 0,
            evals: 0,
            batch: Vec::with_capacity(s.batch_size / 2 + 1),
        }
    }

    /// Take `f(all hidden)` and `f(x)`, pick the outputs and queue the root.
    fn start(&mut self, out: &[f32]) -> Result<()> {
        let k_all = self.s.k_all;
        let all: Vec<f64> = out.iter().map(|&v| f64::from(v)).collect();
        let outputs = self.s.outputs.resolve(&all[k_all..2 * k_all])?;
        let f00: Vec<f64> = outputs.iter().map(|&o| all[o]).collect();
        let f11: Vec<f64> = outputs.iter().map(|&o| all[k_all + o]).collect();
        let words = self.s.tree.num_features().div_ceil(64);
        self.heap.push(Item {
            prio: 0.0,
            tie: 0.0,
            tick: 0,
            mask: vec![0u64; words],
            lo: f00.clone(),
            hi: f11.clone(),
            node: self.s.tree.root(),
            w: 1.0,
        });
        self.tick = 1;
        let dv = crate::memory::filled(
            self.s.tree.num_nodes().saturating_mul(outputs.len()),
            0.0f64,
            "the recursion state of an image",
        )?;
        self.started = Some(Started {
            outputs,
            f00,
            f11,
            dv,
        });
        Ok(())
    }

    /// Add `(hi - lo) * w` of `it` to its node's credit.
    fn credit(dv: &mut [f64], it: &Item) {
        let k = it.lo.len();
        for o in 0..k {
            dv[it.node * k + o] += (it.hi[o] - it.lo[o]) * it.w;
        }
    }

    /// Pop the next step's nodes (crediting leaves on the way); credit everything left once
    /// the budget is spent. Returns the number of masks to evaluate.
    fn plan_step(&mut self) -> usize {
        let Some(st) = self.started.as_mut() else {
            return 0;
        };
        let (budget, batch_size) = (self.s.budget, self.s.batch_size);
        while !self.heap.is_empty() {
            if self.evals >= budget {
                while let Some(it) = self.heap.pop() {
                    Self::credit(&mut st.dv, &it);
                }
                break;
            }
            loop {
                let pending = 2 * self.batch.len();
                let room = if self.s.v040_budget {
                    self.evals < budget
                } else {
                    self.evals + pending < budget
                };
                if self.heap.is_empty() || pending >= batch_size || !room {
                    break;
                }
                let Some(it) = self.heap.pop() else { break };
                match self.s.tree.children(it.node) {
                    None => Self::credit(&mut st.dv, &it),
                    Some((l, r)) => self.batch.push((it, l, r)),
                }
            }
            if !self.batch.is_empty() {
                return 2 * self.batch.len();
            }
        }
        0
    }

    /// Queue a child context.
    fn push(&mut self, mask: Vec<u64>, lo: Vec<f64>, hi: Vec<f64>, node: usize, w: f64) {
        let prio = -max_abs_diff(&lo, &hi) * w;
        let tie = self.ties.draw();
        self.heap.push(Item {
            prio,
            tie,
            tick: self.tick,
            mask,
            lo,
            hi,
            node,
            w,
        });
        self.tick += 1;
    }

    /// Credit one expanded node and queue its children, from `f_l = f(mask ∪ left)` and
    /// `f_r = f(mask ∪ right)`.
    fn expand(&mut self, it: Item, l: usize, r: usize, f_l: Vec<f64>, f_r: Vec<f64>) {
        let fc = self.s.fixed_context;
        let w = it.w;
        let nw = if fc == FixedContext::Both { w / 2.0 } else { w };
        let k = f_l.len();
        let inter: Vec<f64> = (0..k)
            .map(|o| (it.hi[o] - f_l[o] - f_r[o] + it.lo[o]) * w)
            .collect();
        let node = it.node;
        let tree = self.s.tree;
        let mut mask_l = it.mask.clone();
        set_bits(&mut mask_l, tree.leaves(l));
        let mut mask_r = it.mask.clone();
        set_bits(&mut mask_r, tree.leaves(r));
        if matches!(fc, FixedContext::Both | FixedContext::Absent) {
            if let Some(st) = self.started.as_mut() {
                for (d, i) in st.dv[node * k..(node + 1) * k].iter_mut().zip(&inter) {
                    *d += i;
                }
            }
            self.push(it.mask.clone(), it.lo.clone(), f_l.clone(), l, nw);
            self.push(it.mask, it.lo, f_r.clone(), r, nw);
        }
        if matches!(fc, FixedContext::Both | FixedContext::Present) {
            if let Some(st) = self.started.as_mut() {
                for (d, i) in st.dv[node * k..(node + 1) * k].iter_mut().zip(&inter) {
                    *d -= i;
                }
            }
            self.push(mask_r, f_r, it.hi.clone(), l, nw);
            self.push(mask_l, f_l, it.hi, r, nw);
        }
    }

    /// Spread internal credit over the leaves (`lower_credit`) and build the image's result.
    pub(crate) fn finish(self, c: Counters) -> RowResult {
        let st = self.started.expect(
            "the schedules finish a job only after next_rows returned 0, which it does only \
             once f00 and f11 have started it",
        );
        let tree = self.s.tree;
        let k = st.outputs.len();
        let mut vals = st.dv;
        for node in (tree.num_features()..tree.num_nodes()).rev() {
            let Some((l, r)) = tree.children(node) else {
                continue;
            };
            let g = tree.size(node) as f64;
            let (sl, sr) = (tree.size(l) as f64, tree.size(r) as f64);
            for o in 0..k {
                let v = vals[node * k + o];
                vals[l * k + o] += v * sl / g;
                vals[r * k + o] += v * sr / g;
            }
        }
        vals.truncate(tree.num_features() * k);
        RowResult {
            values: vals,
            std_errors: None,
            base: st.f00,
            fx: st.f11,
            outputs: st.outputs,
            counters: c,
        }
    }
}

impl Job for OwenJob<'_> {
    fn next_rows(&mut self) -> Result<usize> {
        if self.started.is_none() {
            return Ok(2);
        }
        Ok(self.plan_step())
    }

    fn fill(&self, r: usize, row: &mut [bool]) {
        if self.started.is_none() {
            // f(all hidden), then f(x).
            row.fill(r == 1);
            return;
        }
        if let Some((it, l, rt)) = self.batch.get(r / 2) {
            let child = if r.is_multiple_of(2) { *l } else { *rt };
            fill_row(row, &it.mask, self.s.tree.leaves(child));
        }
    }

    fn receive(&mut self, out: &[f32]) -> Result<()> {
        if self.started.is_none() {
            return self.start(out);
        }
        let k_all = self.s.k_all;
        self.evals += 2 * self.batch.len();
        let batch = std::mem::take(&mut self.batch);
        let outputs = self
            .started
            .as_ref()
            .map(|s| s.outputs.clone())
            .unwrap_or_default();
        let pick = |row: usize| -> Vec<f64> {
            outputs
                .iter()
                .map(|&o| f64::from(out[row * k_all + o]))
                .collect()
        };
        for (t, (it, l, r)) in batch.into_iter().enumerate() {
            self.expand(it, l, r, pick(2 * t), pick(2 * t + 1));
        }
        Ok(())
    }
}
