//! Property tests of the strict `.npy` header parser: never a panic, NumPy's headers
//! round-trip, and any change to a valid header is either rejected or parsed as written.
//! `PROPTEST_CASES` sets the number of cases (default 1000 per property).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shap_io::npy::{NpyHeader, parse_header, split};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The header NumPy writes for `h` (padding and final newline included).
fn numpy_header(h: &NpyHeader) -> String {
    let shape = match h.shape.as_slice() {
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let order = if h.fortran_order { "True" } else { "False" };
    let mut s = format!(
        "{{'descr': '{}', 'fortran_order': {order}, 'shape': {shape}, }}",
        h.descr
    );
    s.push_str(&" ".repeat((64 - (s.len() + 11) % 64) % 64));
    s.push('\n');
    s
}

fn header() -> impl Strategy<Value = NpyHeader> {
    (
        prop::sample::select(vec!["<f4", "<f8", "|b1", "|u1", "<i8", "<U12"]),
        any::<bool>(),
        prop::collection::vec(0usize..100_000, 0..5),
    )
        .prop_map(|(d, f, shape)| NpyHeader {
            descr: d.to_string(),
            fortran_order: f,
            shape,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,120}") {
        let _ = parse_header(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&b);
        let _ = split(&with_magic);
        let _ = split(&b);
    }

    #[test]
    fn numpy_headers_round_trip(h in header()) {
        prop_assert_eq!(parse_header(&numpy_header(&h)).unwrap(), h);
    }

    #[test]
    fn edited_headers_are_rejected_or_read_as_written(
        h in header(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(b"{}(),:' \"0123456789TFx-".to_vec()),
        insert in any::<bool>(),
    ) {
        let mut text = numpy_header(&h).into_bytes();
        let i = at.index(text.len());
        if insert { text.insert(i, byte) } else { text[i] = byte }
        let text = String::from_utf8(text).unwrap();
        if let Ok(parsed) = parse_header(&text) {
            // What parses is a header in its own right: written back, it reads the same.
            prop_assert_eq!(parse_header(&numpy_header(&parsed)).unwrap(), parsed);
        }
    }
}
