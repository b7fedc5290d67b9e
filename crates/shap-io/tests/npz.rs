//! The streaming `.npz` writer and reader: round trip, layout, and damaged archives.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use shap_io::npz::{NpzReader, NpzWriter};

fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = NpzWriter::new(Vec::new());
    for (name, data) in entries {
        w.entry(name, |o| o.write_all(data)).unwrap();
    }
    w.finish().unwrap()
}

fn open(bytes: &[u8]) -> (tempfile::TempDir, Result<NpzReader, shap_io::IoError>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npz");
    std::fs::write(&p, bytes).unwrap();
    let r = NpzReader::open(&p, 1 << 20);
    (dir, r)
}

#[test]
fn entries_round_trip_with_data_descriptors() {
    let bytes = archive(&[("a", &[1u8; 100]), ("b", &[2u8; 50])]);
    // Per entry: local header 30 + name 5, descriptor 16, central record 46 + name 5; end 22.
    assert_eq!(bytes.len(), 2 * (35 + 16 + 51) + 150 + 22);
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 0x0008);
    let (_d, r) = open(&bytes);
    let r = r.unwrap();
    assert_eq!(r.names(), ["a", "b"]);
    assert_eq!(r.read_entry("b", 1000).unwrap(), vec![2u8; 50]);
    let mut s = Vec::new();
    r.open_entry("a").unwrap().read_to_end(&mut s).unwrap();
    assert_eq!(s, vec![1u8; 100]);
    assert!(matches!(
        r.read_entry("a", 99),
        Err(shap_io::IoError::TooLarge { .. })
    ));
}

#[test]
fn a_flipped_data_byte_fails_the_crc_check() {
    let mut bytes = archive(&[("a", &[7u8; 64])]);
    bytes[35 + 10] ^= 1;
    let (_d, r) = open(&bytes);
    let err = r.unwrap().read_entry("a", 1000).unwrap_err().to_string();
    assert!(err.contains("CRC-32"), "{err}");
}

#[test]
fn overlapping_entries_and_truncation_are_refused_at_open() {
    let bytes = archive(&[("a", &[1u8; 10]), ("b", &[2u8; 10])]);
    // Point the second central record at the first local header.
    let mut bad = bytes.clone();
    let eocd = bad.len() - 22;
    let cd = u32::from_le_bytes(bad[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let second = cd + 46 + 5;
    let first_local = bad[cd + 42..cd + 46].to_vec();
    bad[second + 42..second + 46].copy_from_slice(&first_local);
    let (_d, r) = open(&bad);
    let err = r.err().unwrap().to_string();
    assert!(err.contains("overlap"), "{err}");
    let (_d, r) = open(&bytes[..bytes.len() - 30]);
    assert!(r.is_err());
}
