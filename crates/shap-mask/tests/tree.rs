//! Golden tests: our partition tree against shap 0.51's `masker.clustering`
//! (fixtures written by `fixtures/gen_tree_fixtures.py`).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use shap_mask::{ImageShape, PartitionTree};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Minimal reader for a little-endian float64 C-order `.npy` file.
fn read_npy_f64(name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).unwrap();
    assert!(header.contains("'descr': '<f8'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_str = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_str
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f64> = bytes[start + hlen..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

/// Parses the `"leaves"` object of a tree JSON fixture: node id -> sorted leaf ids.
fn read_leaf_sets(name: &str) -> Vec<(usize, Vec<usize>)> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let body = text.split("\"leaves\":").nth(1).unwrap();
    let mut out = Vec::new();
    for part in body.split(']') {
        let Some((key, list)) = part.split_once(':') else {
            continue;
        };
        let key: String = key.chars().filter(|c| c.is_ascii_digit()).collect();
        let list = list.trim().trim_start_matches('[');
        let leaves: Vec<usize> = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect();
        out.push((key.parse().unwrap(), leaves));
    }
    out
}

const SHAPES: [(usize, usize, usize); 5] =
    [(2, 2, 1), (4, 4, 1), (3, 5, 1), (2, 2, 3), (28, 28, 1)];

#[test]
fn linkage_matches_shap() {
    for (h, w, c) in SHAPES {
        let tree = PartitionTree::new(ImageShape::new(h, w, c)).unwrap();
        let (shape, data) = read_npy_f64(&format!("tree_{h}x{w}x{c}.npy"));
        let m = h * w * c;
        assert_eq!(shape, vec![m - 1, 4]);
        let ours: Vec<f64> = tree.linkage().iter().flatten().copied().collect();
        assert_eq!(ours, data, "linkage differs for ({h},{w},{c})");
        assert_eq!(tree.num_features(), m);
        assert_eq!(tree.root(), 2 * m - 2);
        assert_eq!(tree.size(tree.root()), m);
    }
}

#[test]
fn leaf_sets_match_shap() {
    for (h, w, c) in SHAPES.iter().copied().filter(|s| s.0 * s.1 * s.2 <= 64) {
        let tree = PartitionTree::new(ImageShape::new(h, w, c)).unwrap();
        let sets = read_leaf_sets(&format!("tree_{h}x{w}x{c}.json"));
        assert_eq!(sets.len(), tree.num_nodes());
        for (node, expected) in sets {
            let mut got = tree.leaves(node).to_vec();
            got.sort_unstable();
            assert_eq!(got, expected, "node {node} of ({h},{w},{c})");
        }
    }
}

#[test]
fn structure_invariants_28x28() {
    let tree = PartitionTree::new(ImageShape::new(28, 28, 1)).unwrap();
    let m = 784;
    // Leaf order is a permutation of the features and every node is a contiguous block.
    let mut seen = vec![false; m];
    for &l in tree.leaf_order() {
        assert!(!seen[l]);
        seen[l] = true;
    }
    for node in m..tree.num_nodes() {
        let (l, r) = tree.children(node).unwrap();
        assert!(l < node && r < node);
        assert_eq!(tree.size(node), tree.size(l) + tree.size(r));
        assert_eq!(tree.depth(l), tree.depth(node) + 1);
        let (s, e) = tree.leaf_range(node).unwrap();
        assert_eq!(tree.leaf_range(l).unwrap(), (s, s + tree.size(l)));
        assert_eq!(tree.leaf_range(r).unwrap(), (s + tree.size(l), e));
    }
    // docs/partition-tree.md#examples: root children are rows 14..27 (left) and rows 0..13 (right) in feature space.
    let (l, r) = tree.children(tree.root()).unwrap();
    assert_eq!((l, r), (1565, 1564));
    assert!(tree.leaves(l).iter().all(|&f| f / 28 >= 14));
    assert!(tree.leaves(r).iter().all(|&f| f / 28 < 14));
    assert!(tree.children(0).is_none());
    assert!(tree.leaves(10_000).is_empty());
}

#[test]
fn odd_and_degenerate_shapes() {
    let one = PartitionTree::new(ImageShape::new(1, 1, 1)).unwrap();
    assert_eq!(one.root(), 0);
    assert!(one.linkage().is_empty());
    assert_eq!(one.leaves(0), &[0]);
    let t = PartitionTree::new(ImageShape::new(7, 5, 2)).unwrap();
    assert_eq!(t.linkage().len(), 69);
    assert_eq!(t.size(t.root()), 70);
    assert!(PartitionTree::new(ImageShape::new(0, 5, 1)).is_err());
    assert!(PartitionTree::new(ImageShape::new(usize::MAX, 3, 1)).is_err());
}

#[test]
fn trees_too_large_for_memory_are_errors_not_aborts() {
    use shap_mask::TreeError;
    // 2^60 features pass the numbering guard; no machine can hold their tree.
    let huge = ImageShape::new(1 << 30, 1 << 30, 1);
    match PartitionTree::new(huge) {
        Err(TreeError::Memory { bytes, .. }) => assert!(bytes >= 1 << 60),
        other => panic!("{other:?}"),
    }
    // Past the guard: refused before any allocation.
    let past = ImageShape::new(usize::MAX / 2, 3, 1);
    assert!(matches!(
        PartitionTree::new(past),
        Err(TreeError::TooLarge(_))
    ));
}
