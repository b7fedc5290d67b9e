//! `Split` helpers and seeded batching.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shap_data::{DataError, Split, shuffled_batches};

fn split(n: usize) -> Split {
    Split::new(pixels(n), labels(n), 28, 28).unwrap()
}

#[test]
fn accessors() {
    let s = split(12);
    assert_eq!(
        (s.len(), s.rows(), s.cols(), s.image_len()),
        (12, 28, 28, 784)
    );
    assert!(!s.is_empty());
    assert_eq!(s.image(3).unwrap(), &pixels(12)[3 * 784..4 * 784]);
    assert!(s.image(12).is_none());
    assert_eq!(s.label(11), Some(1));
    assert_eq!(s.label(12), None);
    assert!(Split::new(vec![], vec![], 28, 28).unwrap().is_empty());
}

#[test]
fn new_rejects_inconsistent_buffers() {
    assert!(matches!(
        Split::new(pixels(2), labels(3), 28, 28),
        Err(DataError::InvalidSplit(_))
    ));
    assert!(matches!(
        Split::new(pixels(2), labels(2), 0, 28),
        Err(DataError::InvalidSplit(_))
    ));
    let mut l = labels(2);
    l[1] = 200;
    let e = Split::new(pixels(2), l, 28, 28).unwrap_err();
    assert!(e.to_string().contains("label 200 at index 1"), "{e}");
}

#[test]
fn f32_batches_scale_to_unit_range() {
    let s = split(5);
    let x = s.images_f32(&[4, 0, 4]).unwrap();
    assert_eq!(x.len(), 3 * 784);
    let px = pixels(5);
    for (k, &v) in x.iter().enumerate() {
        let src = [4usize, 0, 4][k / 784];
        let p = px[src * 784 + k % 784];
        assert_eq!(v, p as f32 / 255.0);
        assert!((0.0..=1.0).contains(&v));
    }
    assert_eq!(s.images_f32_nchw(&[4, 0, 4]).unwrap(), x);
    assert_eq!(s.labels_at(&[4, 0, 4]).unwrap(), vec![4, 0, 4]);
    let all = s.all_f32();
    assert_eq!(all, s.images_f32(&[0, 1, 2, 3, 4]).unwrap());
    assert!(s.images_f32(&[]).unwrap().is_empty());
}

#[test]
fn out_of_range_indices_are_errors() {
    let s = split(5);
    for r in [
        s.images_f32(&[0, 5]).map(|_| ()),
        s.labels_at(&[7]).map(|_| ()),
        s.select(&[9]).map(|_| ()),
    ] {
        match r {
            Err(DataError::IndexOutOfRange { len: 5, index }) => assert!(index >= 5),
            other => panic!("expected IndexOutOfRange, got {other:?}"),
        }
    }
}

#[test]
fn take_select_and_histogram() {
    let s = split(25);
    let t = s.take(7);
    assert_eq!(t.len(), 7);
    assert_eq!(t.images(), &s.images()[..7 * 784]);
    assert_eq!(s.take(1000), s);
    assert!(s.take(0).is_empty());
    let sel = s.select(&[3, 1]).unwrap();
    assert_eq!(sel.labels(), &[3, 1]);
    assert_eq!(sel.image(0), s.image(3));
    assert_eq!(s.class_histogram(), [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
    assert_eq!(s.class_histogram().iter().sum::<usize>(), 25);
}

#[test]
fn batches_are_a_seeded_partition() {
    let b = shuffled_batches(1000, 64, 7).unwrap();
    assert_eq!(b.len(), 16);
    assert!(b[..15].iter().all(|x| x.len() == 64));
    assert_eq!(b[15].len(), 1000 - 15 * 64);
    let mut all = b.concat();
    assert_ne!(all, (0..1000).collect::<Vec<_>>(), "not shuffled");
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());

    // Same seed, same batches; another seed (next epoch), another order.
    assert_eq!(shuffled_batches(1000, 64, 7).unwrap(), b);
    assert_ne!(shuffled_batches(1000, 64, 8).unwrap(), b);
    // The order does not depend on the batch size.
    assert_eq!(
        shuffled_batches(1000, 1000, 7).unwrap().concat(),
        b.concat()
    );

    assert!(shuffled_batches(0, 4, 1).unwrap().is_empty());
    assert!(matches!(
        shuffled_batches(10, 0, 1),
        Err(DataError::ZeroBatchSize)
    ));
}
