//! Property tests of the `.npz` reader: corrupted directories, overlapping entries and
//! arbitrary bytes never panic, never decode a byte twice, and valid archives round-trip.
//! Each case reads a file of a few KB. `PROPTEST_CASES` sets the number of cases.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shap_explain::npz::{read_npz, write_npz};
use shap_io::npy::{NpyArray, NpyData};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn array() -> impl Strategy<Value = NpyArray> {
    prop::collection::vec(1usize..5, 1..4).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (
            Just(shape),
            prop_oneof![
                prop::collection::vec(-1e9f64..1e9, n).prop_map(NpyData::F64),
                prop::collection::vec(any::<i64>(), n).prop_map(NpyData::I64),
                prop::collection::vec("[a-z]{0,6}", n).prop_map(NpyData::Str),
            ],
        )
            .prop_map(|(shape, data)| NpyArray { shape, data })
    })
}

fn archive() -> impl Strategy<Value = Vec<(String, NpyArray)>> {
    prop::collection::vec(array(), 1..4).prop_map(|arrays| {
        arrays
            .into_iter()
            .enumerate()
            .map(|(i, a)| (format!("a{i}"), a))
            .collect()
    })
}

fn write(dir: &std::path::Path, entries: &[(String, NpyArray)]) -> std::path::PathBuf {
    let p = dir.join("e.npz");
    let refs: Vec<(&str, NpyArray)> = entries
        .iter()
        .map(|(n, a)| (n.as_str(), a.clone()))
        .collect();
    write_npz(&p, &refs).unwrap();
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn valid_archives_round_trip(entries in archive()) {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), &entries);
        prop_assert_eq!(read_npz(&p).unwrap(), entries);
    }

    #[test]
    fn corrupted_archives_never_panic_nor_decode_more_than_the_file(
        entries in archive(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), &entries);
        let mut bytes = std::fs::read(&p).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(read) = read_npz(&p) {
            let decoded: usize = read.iter().map(|(_, a)| match &a.data {
                NpyData::F64(v) => v.len() * 8,
                NpyData::F32(v) => v.len() * 4,
                NpyData::I64(v) => v.len() * 8,
                NpyData::Str(v) => v.iter().map(|s| s.len()).sum(),
                NpyData::Bool(v) => v.len(),
                NpyData::U8(v) => v.len(),
            }).sum();
            prop_assert!(decoded <= bytes.len(), "decoded {} bytes from a {}-byte file", decoded, bytes.len());
        }
    }

    #[test]
    fn central_directory_offsets_pointing_anywhere_are_safe(
        entries in archive(),
        target in any::<prop::sample::Index>(),
        which in any::<prop::sample::Index>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), &entries);
        let mut bytes = std::fs::read(&p).unwrap();
        // Point one central-directory entry's local-header offset at an arbitrary byte.
        let eocd = bytes.len() - 22;
        let mut at = u32::from_le_bytes(bytes[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        for _ in 0..which.index(entries.len()) {
            let nlen = u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
            at += 46 + nlen;
        }
        let off = target.index(bytes.len()) as u32;
        bytes[at + 42..at + 46].copy_from_slice(&off.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(read) = read_npz(&p) {
            prop_assert_eq!(read.len(), entries.len());
        }
    }
}
