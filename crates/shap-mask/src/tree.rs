//! shap's image partition tree (`shap.maskers.Image(...).clustering`), built exactly as shap
//! builds it, with cheap node -> leaf-set lookups for the explainers.
//!
//! The tree recursively halves the longest side of the image box (rows win ties, the smaller
//! half goes left; channels are split only once a box is a single pixel). Nodes are numbered in
//! the pop order of a heap keyed on `(-size, r0, r1, c0, c1, ch0, ch1)`, from `2M-2` (the root)
//! down to `0`. Because leaves pop last in increasing flat order, geometric cell `p` receives leaf
//! id `M-1-p`: shap's 180° relabelling (see `docs/partition-tree.md`). Leaf id `j` stands for
//! feature `j` (mask element `j` applies to image element `j`), so the node sets below are in
//! feature space, which is what the explainers need.
//!
//! ```
//! use shap_mask::{ImageShape, PartitionTree};
//! let tree = PartitionTree::new(ImageShape::new(2, 2, 1)).unwrap();
//! assert_eq!(tree.root(), 6);
//! assert_eq!(tree.linkage()[0], [1.0, 0.0, 0.0, 2.0]);
//! let mut leaves = tree.leaves(4).to_vec();
//! leaves.sort();
//! assert_eq!(leaves, vec![0, 1]);
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::ImageShape;

/// Why a partition tree cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The image has no features (a zero dimension).
    #[error("cannot build a partition tree for the empty image shape {0}")]
    EmptyShape(ImageShape),
    /// The number of features overflows the node numbering (2M-1 must fit in usize).
    #[error("image shape {0} has too many features for a partition tree")]
    TooLarge(ImageShape),
    /// The tree's buffers could not be allocated.
    #[error("cannot allocate the {bytes} bytes of the partition tree of image shape {shape}")]
    Memory {
        /// The image shape.
        shape: ImageShape,
        /// Bytes asked for.
        bytes: usize,
    },
}

/// `n` copies of `v`, or `None` when they cannot be allocated (never an abort).
fn filled<T: Clone>(n: usize, v: T) -> Option<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).ok()?;
    out.resize(n, v);
    Some(out)
}

/// shap's hierarchical image partition: a binary tree over the `M = H*W*C` features.
///
/// Node ids follow scipy's linkage convention: leaves are `0..M`, internal node `M + i` is
/// described by linkage row `i`, and the root is `2M - 2`. Children always have smaller ids
/// than their parents. For every node, [`PartitionTree::leaves`] returns its leaf ids as a
/// contiguous slice of one depth-first (left child first) leaf order, so lookups are O(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTree {
    shape: ImageShape,
    m: usize,
    /// `children[i]` = (left, right) of internal node `M + i`.
    children: Vec<[usize; 2]>,
    /// Leaf ids in depth-first order, left subtree first.
    leaf_order: Vec<usize>,
    /// `ranges[node]` = half-open range of `leaf_order` holding that node's leaves.
    ranges: Vec<(usize, usize)>,
    /// Depth of each node (root 0).
    depths: Vec<usize>,
}

/// Heap key for one box: `(-size, r0, r1, c0, c1, ch0, ch1)`, plus its parent row and side.
type HeapEntry = Reverse<(i128, [usize; 6], isize, bool)>;

impl PartitionTree {
    /// Build shap's partition tree for `shape` (any `(H, W, C)` with no zero dimension).
    pub fn new(shape: ImageShape) -> Result<Self, TreeError> {
        let (h, w, c) = (shape.height, shape.width, shape.channels);
        let m = h
            .checked_mul(w)
            .and_then(|x| x.checked_mul(c))
            .ok_or(TreeError::TooLarge(shape))?;
        if m == 0 {
            return Err(TreeError::EmptyShape(shape));
        }
        if m.checked_mul(2).is_none() || m > (isize::MAX as usize) / 4 {
            return Err(TreeError::TooLarge(shape));
        }
        let no_memory = |bytes: usize| TreeError::Memory { shape, bytes };
        let mut children =
            filled(m - 1, [0usize; 2]).ok_or_else(|| no_memory(m.saturating_mul(16)))?;
        // At most M boxes are ever pending: they are disjoint and non-empty.
        let mut heap: BinaryHeap<HeapEntry> = BinaryHeap::new();
        heap.try_reserve_exact(m)
            .map_err(|_| no_memory(m.saturating_mul(size_of::<HeapEntry>())))?;
        heap.push(Reverse((0, [0, h, 0, w, 0, c], -1, false)));
        // `next` runs from M-2 down to -(M) + ... ; the node id is next + M.
        let mut next: isize = m as isize - 2;
        while let Some(Reverse((_, b, parent, is_left))) = heap.pop() {
            let id = (next + m as isize) as usize;
            if parent >= 0 {
                let row = parent as usize;
                if let Some(ch) = children.get_mut(row) {
                    ch[if is_left { 0 } else { 1 }] = id;
                }
            }
            let [r0, r1, c0, c1, z0, z1] = b;
            let (hr, wc, hc) = (r1 - r0, c1 - c0, z1 - z0);
            if !(hr == 1 && wc == 1 && hc == 1) {
                let mut left = b;
                let mut right = b;
                if hr >= wc && hr > 1 {
                    let mid = r0 + hr / 2;
                    left[1] = mid;
                    right[0] = mid;
                } else if wc > 1 {
                    let mid = c0 + wc / 2;
                    left[3] = mid;
                    right[2] = mid;
                } else {
                    let mid = z0 + hc / 2;
                    left[5] = mid;
                    right[4] = mid;
                }
                for (bx, side) in [(left, true), (right, false)] {
                    let size = (bx[1] - bx[0]) * (bx[3] - bx[2]) * (bx[5] - bx[4]);
                    heap.push(Reverse((-(size as i128), bx, next, side)));
                }
            }
            next -= 1;
        }
        let n_nodes = 2 * m - 1;
        // Depth-first leaf order (left first) and per-node ranges, iteratively.
        let mut leaf_order = Vec::new();
        leaf_order
            .try_reserve_exact(m)
            .map_err(|_| no_memory(m.saturating_mul(8)))?;
        let mut ranges = filled(n_nodes, (0usize, 0usize))
            .ok_or_else(|| no_memory(n_nodes.saturating_mul(16)))?;
        let mut depths =
            filled(n_nodes, 0usize).ok_or_else(|| no_memory(n_nodes.saturating_mul(8)))?;
        // Stack of (node, visited_children).
        let mut stack: Vec<(usize, bool)> = vec![(n_nodes - 1, false)];
        while let Some((node, done)) = stack.pop() {
            if node < m {
                if let Some(r) = ranges.get_mut(node) {
                    *r = (leaf_order.len(), leaf_order.len() + 1);
                }
                leaf_order.push(node);
                continue;
            }
            let [l, r] = children[node - m];
            if done {
                let start = ranges[l].0;
                let end = ranges[r].1;
                ranges[node] = (start, end);
            } else {
                let d = depths[node];
                depths[l] = d + 1;
                depths[r] = d + 1;
                stack.push((node, true));
                stack.push((r, false));
                stack.push((l, false));
            }
        }
        Ok(Self {
            shape,
            m,
            children,
            leaf_order,
            ranges,
            depths,
        })
    }

    /// The image shape the tree was built for.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Number of features (leaves) `M`.
    pub fn num_features(&self) -> usize {
        self.m
    }

    /// Number of nodes, `2M - 1`.
    pub fn num_nodes(&self) -> usize {
        2 * self.m - 1
    }

    /// The root's id, `2M - 2`.
    pub fn root(&self) -> usize {
        2 * self.m - 2
    }

    /// True when `node` is a leaf (`node < M`).
    pub fn is_leaf(&self, node: usize) -> bool {
        node < self.m
    }

    /// The (left, right) children of an internal node; `None` for leaves and unknown ids.
    pub fn children(&self, node: usize) -> Option<(usize, usize)> {
        let row = node.checked_sub(self.m)?;
        self.children.get(row).map(|c| (c[0], c[1]))
    }

    /// Number of leaves under `node` (1 for a leaf, 0 for an unknown id).
    pub fn size(&self, node: usize) -> usize {
        self.ranges.get(node).map_or(0, |(s, e)| e - s)
    }

    /// Depth of `node` below the root (root = 0; 0 for an unknown id).
    pub fn depth(&self, node: usize) -> usize {
        self.depths.get(node).copied().unwrap_or(0)
    }

    /// Largest leaf depth.
    pub fn max_depth(&self) -> usize {
        self.depths.iter().copied().max().unwrap_or(0)
    }

    /// The leaf ids (= feature indices) under `node`, in depth-first order, left subtree first.
    /// Empty for an unknown id.
    pub fn leaves(&self, node: usize) -> &[usize] {
        match self.ranges.get(node) {
            Some(&(s, e)) => self.leaf_order.get(s..e).unwrap_or(&[]),
            None => &[],
        }
    }

    /// All leaf ids in depth-first order (left first): every node's leaves form a contiguous
    /// block of this order.
    pub fn leaf_order(&self) -> &[usize] {
        &self.leaf_order
    }

    /// The half-open range of [`PartitionTree::leaf_order`] covering `node`'s leaves.
    pub fn leaf_range(&self, node: usize) -> Option<(usize, usize)> {
        self.ranges.get(node).copied()
    }

    /// shap's linkage matrix: `M-1` rows `[left, right, 0.0, size]` as f64, row `i` describing
    /// internal node `M + i` (identical to `shap.maskers.Image(..., shape).clustering`).
    pub fn linkage(&self) -> Vec<[f64; 4]> {
        self.children
            .iter()
            .enumerate()
            .map(|(i, &[l, r])| [l as f64, r as f64, 0.0, self.size(self.m + i) as f64])
            .collect()
    }
}
