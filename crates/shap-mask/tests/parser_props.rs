//! Property tests of the `.npy` reader and the masker spec parser: no panic on any input,
//! valid arrays round-trip, and a file is accepted only when its header and data agree.
//! Each case allocates at most a few KB. `PROPTEST_CASES` sets the number of cases.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;
use shap_io::npy::{NpyArray, NpyData};
use shap_mask::MaskerSpec;
use shap_mask::npy;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn array() -> impl Strategy<Value = NpyArray> {
    prop::collection::vec(1usize..6, 0..4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (
            Just(shape),
            prop_oneof![
                prop::collection::vec(any::<bool>(), n).prop_map(NpyData::Bool),
                prop::collection::vec(any::<u8>(), n).prop_map(NpyData::U8),
                prop::collection::vec(-1e6f32..1e6, n).prop_map(NpyData::F32),
                prop::collection::vec(any::<i64>(), n).prop_map(NpyData::I64),
            ],
        )
            .prop_map(|(shape, data)| NpyArray { shape, data })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(600)))]

    #[test]
    fn valid_arrays_round_trip(a in array()) {
        let bytes = npy::encode(&a).unwrap();
        prop_assert_eq!(npy::parse(&bytes, Path::new("x.npy")).unwrap(), a);
    }

    #[test]
    fn corrupted_files_never_panic_and_keep_header_and_data_consistent(
        a in array(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = npy::encode(&a).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(read) = npy::parse(&bytes, Path::new("x.npy")) {
            let count: usize = read.shape.iter().product();
            prop_assert_eq!(read.len(), count);
        }
    }

    #[test]
    fn masker_specs_never_panic(s in "\\PC{0,40}") {
        let _ = s.parse::<MaskerSpec>();
    }

    #[test]
    fn masker_specs_round_trip(kw in 1usize..200, kh in 1usize..200, v in -1e6f32..1e6) {
        for spec in [MaskerSpec::Blur { kw, kh }, MaskerSpec::Constant(v)] {
            prop_assert_eq!(spec.to_string().parse::<MaskerSpec>().unwrap(), spec);
        }
        let text = format!("blur( {kw} ,{kh} )");
        prop_assert_eq!(text.parse::<MaskerSpec>().unwrap(), MaskerSpec::Blur { kw, kh });
    }
}

/// `.npy` bytes with `header` as the header dict and `data` after it.
fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    h.push_str(&" ".repeat((64 - (h.len() + 11) % 64) % 64));
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn headers_numpy_would_not_write_are_refused() {
    let ok = with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
        &[1, 2],
    );
    assert!(npy::parse(&ok, Path::new("ok.npy")).is_ok());
    for header in [
        "{'descr': '<f8', 'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
        "{'note': {'descr': '<f8'}, 'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2) }",
    ] {
        let e = npy::parse(&with_header(header, &[1, 2]), Path::new("bad.npy")).unwrap_err();
        assert!(e.to_string().contains("bad.npy"), "{e}");
    }
}
