//! Property tests of the safetensors checkpoint reader: corrupted headers, metadata and
//! tensors never panic, and whatever loads has every weight finite. Each case parses about
//! 0.5 MB (one checkpoint). `PROPTEST_CASES` sets the number of cases.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::OnceLock;

use candle_core::Device;
use proptest::prelude::*;
use shap_model::checkpoint::{from_bytes, to_bytes};
use shap_model::{CheckpointMeta, Cnn, Head};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let cnn = Cnn::seeded(1, Head::Softmax, &Device::Cpu).unwrap();
        to_bytes(&cnn, &CheckpointMeta::default()).unwrap()
    })
}

fn header_len() -> usize {
    u64::from_le_bytes(valid()[..8].try_into().unwrap()) as usize
}

/// Load `bytes` as a checkpoint; `Err` holds the message. Whatever loads is finite.
fn load(bytes: &[u8]) -> Result<(), String> {
    let ck =
        from_bytes(bytes, Path::new("m.safetensors"), &Device::Cpu).map_err(|e| e.to_string())?;
    for (name, t) in ck.cnn.named_tensors() {
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| e.to_string())?;
        assert!(v.iter().all(|v| v.is_finite()), "{name}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    #[test]
    fn edited_json_headers_never_panic(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(b"{}[]\":,0123456789-eE.FUI8 ".to_vec())),
            1..4,
        ),
    ) {
        let mut bytes = valid().to_vec();
        let end = 8 + header_len();
        for (at, b) in edits {
            let i = 8 + at.index(end - 8);
            bytes[i] = b;
        }
        let _ = load(&bytes);
    }

    #[test]
    fn arbitrary_headers_never_panic(header in "\\PC{0,200}", len_delta in -8i64..8, tail in 0usize..64) {
        let h = header.as_bytes();
        let claimed = (h.len() as i64 + len_delta).max(0) as u64;
        let mut bytes = claimed.to_le_bytes().to_vec();
        bytes.extend_from_slice(h);
        bytes.extend(std::iter::repeat_n(0u8, tail));
        prop_assert!(load(&bytes).is_err());
    }

    #[test]
    fn corrupted_weights_load_only_when_finite(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = valid().to_vec();
        let start = 8 + header_len();
        for (at, b) in edits {
            let i = start + at.index(bytes.len() - start);
            bytes[i] = b;
        }
        let _ = load(&bytes);
    }

    #[test]
    fn a_huge_claimed_header_length_is_refused(len in any::<u64>()) {
        let mut bytes = valid().to_vec();
        bytes[..8].copy_from_slice(&len.to_le_bytes());
        if len as usize != header_len() {
            prop_assert!(load(&bytes).is_err());
        }
    }
}
