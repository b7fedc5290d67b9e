//! The Partition explainer: Owen values over shap's image partition tree, with shap >= 0.41
//! semantics (`SHAP_SPEC.md` section 4).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::driver::{RowResult, assemble, check_inputs, name_fn, prepare_all, run_rows};
use crate::eval::Evaluator;
use crate::explanation::{Algorithm, Explanation};
use crate::rng::NumpyLegacyNormal;
use crate::{BatchModel, ExplainError, ImageMasker, MaskedImages, OutputSelection, Result};
use shap_mask::{ImageShape, PartitionTree};

/// shap's `fixed_context` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FixedContext {
    /// `None` (shap's default): each child is explained with its sibling absent and present,
    /// weights halve at every level (true Owen values when fully expanded).
    #[default]
    Both,
    /// `fixed_context=0`: only "sibling absent" children are expanded.
    Absent,
    /// `fixed_context=1`: only "sibling present" children are expanded.
    Present,
}

/// How equal priorities are ordered in the expansion queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TieBreak {
    /// Deterministic: first pushed, first expanded (independent of threads and model batching).
    #[default]
    Fifo,
    /// shap-compatible: a draw from NumPy's legacy global generator seeded with
    /// `np.random.seed(seed)` right before the explainer call (`SHAP_SPEC.md` Appendix A).
    /// The stream continues across images, so images are explained one after another.
    NumpyLegacy {
        /// The `np.random.seed` value.
        seed: u32,
    },
}

/// The evaluation budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// shap's `max_evals` (total model evaluations including `f(all hidden)` and `f(x)`).
    MaxEvals(usize),
    /// Expand the whole tree: exact Owen values (for fixed context `Both`), at a cost of
    /// [`PartitionExplainer::exact_evals`] evaluations per image: 2,732 for 8x8, 461,484 for
    /// 28x28 (minutes per image with a CNN), so mostly for small images and tests.
    Exact,
}

impl Default for Budget {
    fn default() -> Self {
        Self::MaxEvals(500)
    }
}

/// Partition (Owen value) explainer. Construct with [`PartitionExplainer::default`] and set
/// the public fields; defaults match shap's: 500 evaluations, algorithmic batch of 10 masks,
/// `fixed_context=None`, all outputs.
///
/// ```
/// use shap_explain::{ConstantMasker, FnModel, ImageShape, ModelError, OutputSelection, PartitionExplainer};
/// // A linear model on a 4x4 image with two outputs.
/// let model = FnModel::new(2, |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
///     for i in 0..n {
///         let img = &x[i * s.features()..(i + 1) * s.features()];
///         out[2 * i] = img.iter().sum();
///         out[2 * i + 1] = img[0] - img[15];
///     }
///     Ok::<(), ModelError>(())
/// });
/// let shape = ImageShape::new(4, 4, 1);
/// let images: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
/// let mut explainer = PartitionExplainer::default();
/// explainer.outputs = OutputSelection::TopK(1);
/// let e = explainer.explain(&model, &images, shape, &ConstantMasker { value: 0.0 }).unwrap();
/// assert_eq!(e.output_indices, vec![0]);
/// assert!(e.max_efficiency_error() < 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionExplainer {
    /// Evaluation budget (default `MaxEvals(500)`).
    pub budget: Budget,
    /// Masks per Owen step (shap's `batch_size`, default 10). This is algorithmic: under a
    /// budget it changes which nodes get expanded. The model may receive the rows of several
    /// steps/images in any chunking without changing numbers.
    pub batch_size: usize,
    /// shap's `fixed_context`.
    pub fixed_context: FixedContext,
    /// Tie-breaking of equal priorities.
    pub tie_break: TieBreak,
    /// Which outputs to explain (resolved per image on `f(x)` as produced by the masker).
    pub outputs: OutputSelection,
    /// Names of all `K` model outputs (class labels); default names are the class indices.
    pub output_names: Option<Vec<String>>,
    /// Reproduce shap v0.40's budget rule (`max_evals // 2 - 2`, whole batches).
    pub v040_budget: bool,
}

impl Default for PartitionExplainer {
    fn default() -> Self {
        Self {
            budget: Budget::default(),
            batch_size: 10,
            fixed_context: FixedContext::Both,
            tie_break: TieBreak::Fifo,
            outputs: OutputSelection::All,
            output_names: None,
            v040_budget: false,
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

impl PartitionExplainer {
    /// shap 0.51-compatible settings: NumPy-legacy tie-break seeded like `np.random.seed(seed)`
    /// before the call, `max_evals`, all other settings at shap's defaults.
    pub fn shap_compatible(max_evals: usize, seed: u32) -> Self {
        Self {
            budget: Budget::MaxEvals(max_evals),
            tie_break: TieBreak::NumpyLegacy { seed },
            ..Self::default()
        }
    }

    /// Model evaluations per image for [`Budget::Exact`]: `2 + 2 * (number of expansions)`,
    /// where a node at depth `d` is expanded in `2^d` contexts (fixed context `Both`) or once.
    /// Saturates at `usize::MAX`.
    pub fn exact_evals(&self, tree: &PartitionTree) -> usize {
        let mut total: usize = 2;
        for node in tree.num_features()..tree.num_nodes() {
            let contexts = match self.fixed_context {
                FixedContext::Both => 1usize
                    .checked_shl(tree.depth(node) as u32)
                    .unwrap_or(usize::MAX),
                _ => 1,
            };
            total = total.saturating_add(contexts.saturating_mul(2));
        }
        total
    }

    fn owen_budget(&self) -> Result<usize> {
        match self.budget {
            Budget::Exact => Ok(usize::MAX),
            Budget::MaxEvals(me) => {
                let minimum = if self.v040_budget { 4 } else { 2 };
                if me < minimum {
                    return Err(ExplainError::MaxEvalsTooSmall {
                        algorithm: "partition",
                        max_evals: me,
                        minimum,
                    });
                }
                Ok(if self.v040_budget { me / 2 - 2 } else { me - 2 })
            }
        }
    }

    /// Explain `images` (`n` images of `shape`, back to back) with `masker`.
    pub fn explain<M: BatchModel + ?Sized, K: ImageMasker>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        masker: &K,
    ) -> Result<Explanation> {
        check_inputs(model, images, shape, None, self.output_names.as_ref())?;
        let prepared = prepare_all(masker, images, shape)?;
        self.explain_prepared(model, images, shape, &prepared)
    }

    /// Explain images already prepared for masking (`prepared[i]` belongs to image `i`).
    pub fn explain_prepared<M: BatchModel + ?Sized, P: MaskedImages>(
        &self,
        model: &M,
        images: &[f32],
        shape: ImageShape,
        prepared: &[P],
    ) -> Result<Explanation> {
        let t0 = Instant::now();
        let n = check_inputs(
            model,
            images,
            shape,
            Some(prepared.len()),
            self.output_names.as_ref(),
        )?;
        if self.batch_size < 2 {
            return Err(ExplainError::InvalidConfig(format!(
                "partition batch_size must be at least 2 (one node = 2 masks), got {}",
                self.batch_size
            )));
        }
        self.outputs.validate(model.num_outputs())?;
        let budget = self.owen_budget()?;
        let tree = PartitionTree::new(shape).map_err(|_| ExplainError::InvalidShape(shape))?;
        let m = shape.features();
        let image = |i: usize| &images[i * m..(i + 1) * m];
        let rows = match self.tie_break {
            TieBreak::Fifo => run_rows(n, true, |i| {
                self.owen_row(
                    model,
                    &prepared[i],
                    image(i),
                    shape,
                    i,
                    &tree,
                    budget,
                    &mut || 0.0,
                )
            })?,
            TieBreak::NumpyLegacy { seed } => {
                let rng = std::sync::Mutex::new(NumpyLegacyNormal::new(seed));
                run_rows(n, false, |i| {
                    let mut guard = rng.lock().map_err(|_| {
                        ExplainError::InvalidConfig("tie-break generator poisoned".into())
                    })?;
                    self.owen_row(
                        model,
                        &prepared[i],
                        image(i),
                        shape,
                        i,
                        &tree,
                        budget,
                        &mut || guard.randn(),
                    )
                })?
            }
        };
        let names = name_fn(self.output_names.as_ref());
        Ok(assemble(
            Algorithm::Partition,
            shape,
            images,
            rows,
            names,
            t0.elapsed(),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn owen_row<M: BatchModel + ?Sized, P: MaskedImages + ?Sized>(
        &self,
        model: &M,
        prepared: &P,
        original: &[f32],
        shape: ImageShape,
        image: usize,
        tree: &PartitionTree,
        budget: usize,
        tie: &mut dyn FnMut() -> f64,
    ) -> Result<RowResult> {
        let m = shape.features();
        let words = m.div_ceil(64);
        let mut ev = Evaluator::new(model, prepared, original, shape, image);
        let k_all = ev.num_outputs();
        // f(all hidden) and f(nothing hidden), one call.
        let y = ev.eval_rows(2, |r, row| row.fill(r == 1))?;
        let f00_all = &y[..k_all];
        let f11_all = &y[k_all..2 * k_all];
        let outputs = self.outputs.resolve(f11_all)?;
        let k = outputs.len();
        let f00: Vec<f64> = outputs.iter().map(|&o| f00_all[o]).collect();
        let f11: Vec<f64> = outputs.iter().map(|&o| f11_all[o]).collect();

        let n_nodes = tree.num_nodes();
        let mut dv = vec![0.0f64; n_nodes * k];
        let mut heap = BinaryHeap::new();
        let mut tick: u64 = 0;
        heap.push(Item {
            prio: 0.0,
            tie: 0.0,
            tick,
            mask: vec![0u64; words],
            lo: f00.clone(),
            hi: f11.clone(),
            node: tree.root(),
            w: 1.0,
        });
        tick += 1;
        let credit = |dv: &mut [f64], it: &Item| {
            for o in 0..k {
                dv[it.node * k + o] += (it.hi[o] - it.lo[o]) * it.w;
            }
        };
        let mut evals: usize = 0;
        let mut batch: Vec<(Item, usize, usize)> = Vec::with_capacity(self.batch_size / 2 + 1);
        while !heap.is_empty() {
            if evals >= budget {
                while let Some(it) = heap.pop() {
                    credit(&mut dv, &it);
                }
                break;
            }
            batch.clear();
            loop {
                let pending = 2 * batch.len();
                let room = if self.v040_budget {
                    evals < budget
                } else {
                    evals + pending < budget
                };
                if heap.is_empty() || pending >= self.batch_size || !room {
                    break;
                }
                let Some(it) = heap.pop() else { break };
                match tree.children(it.node) {
                    None => credit(&mut dv, &it),
                    Some((l, r)) => batch.push((it, l, r)),
                }
            }
            if batch.is_empty() {
                continue;
            }
            let yb = ev.eval_rows(2 * batch.len(), |row_ix, row| {
                let (it, l, r) = &batch[row_ix / 2];
                let child = if row_ix % 2 == 0 { *l } else { *r };
                fill_row(row, &it.mask, tree.leaves(child));
            })?;
            evals += 2 * batch.len();
            for (t, (it, l, r)) in batch.drain(..).enumerate() {
                let pick = |row: usize| -> Vec<f64> {
                    outputs.iter().map(|&o| yb[row * k_all + o]).collect()
                };
                let f_l = pick(2 * t);
                let f_r = pick(2 * t + 1);
                let w = it.w;
                let nw = if self.fixed_context == FixedContext::Both {
                    w / 2.0
                } else {
                    w
                };
                let inter: Vec<f64> = (0..k)
                    .map(|o| (it.hi[o] - f_l[o] - f_r[o] + it.lo[o]) * w)
                    .collect();
                let node = it.node;
                let absent = matches!(
                    self.fixed_context,
                    FixedContext::Both | FixedContext::Absent
                );
                let present = matches!(
                    self.fixed_context,
                    FixedContext::Both | FixedContext::Present
                );
                let mut push = |heap: &mut BinaryHeap<Item>,
                                mask: Vec<u64>,
                                lo: Vec<f64>,
                                hi: Vec<f64>,
                                child: usize| {
                    let prio = -max_abs_diff(&lo, &hi) * nw;
                    let tie_v = tie();
                    heap.push(Item {
                        prio,
                        tie: tie_v,
                        tick,
                        mask,
                        lo,
                        hi,
                        node: child,
                        w: nw,
                    });
                    tick += 1;
                };
                let mut mask_l = it.mask.clone();
                set_bits(&mut mask_l, tree.leaves(l));
                let mut mask_r = it.mask.clone();
                set_bits(&mut mask_r, tree.leaves(r));
                if absent {
                    for o in 0..k {
                        dv[node * k + o] += inter[o];
                    }
                    push(&mut heap, it.mask.clone(), it.lo.clone(), f_l.clone(), l);
                    push(&mut heap, it.mask, it.lo, f_r.clone(), r);
                }
                if present {
                    for o in 0..k {
                        dv[node * k + o] -= inter[o];
                    }
                    push(&mut heap, mask_r, f_r, it.hi.clone(), l);
                    push(&mut heap, mask_l, f_l, it.hi, r);
                }
            }
        }
        // lower_credit: spread each internal node's credit over its children by leaf count.
        let mut vals = dv;
        for node in (tree.num_features()..n_nodes).rev() {
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
        vals.truncate(m * k);
        Ok(RowResult {
            values: vals,
            std_errors: None,
            base: f00,
            fx: f11,
            outputs,
            evals: ev.evals,
            calls: ev.calls,
            model_time: ev.model_time,
            elapsed: std::time::Duration::ZERO,
        })
    }
}
