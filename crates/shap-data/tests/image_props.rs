//! Property test of the image reader on truncated files: a JPEG or PNG cut anywhere before its
//! end is refused (never decoded with the missing part filled in), and the whole file loads.
//! `PROPTEST_CASES` sets the number of cases.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn asset(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(name);
    std::fs::read(p).unwrap()
}

fn load(name: &str, bytes: &[u8]) -> Result<shap_data::UserImage, shap_data::DataError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    shap_data::load_image(&path, 32, 32, 3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn a_cut_image_is_refused(jpeg in any::<bool>(), keep in 0.0f64..1.0) {
        let (name, bytes) = if jpeg {
            ("cut.jpg", asset("rgb/hillside.jpg"))
        } else {
            ("cut.png", asset("fashion-mnist/test_0_ankle-boot.png"))
        };
        prop_assert!(load(name, &bytes).is_ok());
        let cut = ((keep * bytes.len() as f64) as usize).min(bytes.len() - 1);
        prop_assert!(load(name, &bytes[..cut]).is_err(), "{} cut to {} of {} bytes", name, cut, bytes.len());
    }
}
