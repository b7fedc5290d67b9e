//! The sample images in the repository's `assets/` (see `assets/README.md`) are what they
//! claim, and the README's `--image` demos run on them.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;
use common::{onnx_fixture, real_data, shap_cli, text};

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// (test index, file) of every grey sample.
const GREY: [(usize, &str); 4] = [
    (0, "fashion-mnist/test_0_ankle-boot.png"),
    (1, "fashion-mnist/test_1_pullover.png"),
    (2, "fashion-mnist/test_2_trouser.png"),
    (4, "fashion-mnist/test_4_shirt.png"),
];

#[test]
fn grey_samples_are_the_test_images_their_names_say() {
    let Some(data) = real_data() else { return };
    for (index, file) in GREY {
        let img = image::open(asset(file)).unwrap();
        let image::DynamicImage::ImageLuma8(grey) = img else {
            panic!("{file} is not 8-bit grey")
        };
        assert_eq!(grey.dimensions(), (28, 28), "{file}");
        assert_eq!(
            Some(grey.as_raw().as_slice()),
            data.test.image(index),
            "{file}"
        );
        let class = shap_data::CLASS_NAMES[usize::from(data.test.labels()[index])];
        let slug = class.to_lowercase().replace([' ', '/'], "-");
        assert!(
            file.ends_with(&format!("test_{index}_{slug}.png")),
            "{file}: {class}"
        );
    }
}

/// `explain --image` on a sample gives the values `explain --indices` gives for its test image.
#[test]
fn explaining_a_sample_equals_explaining_its_test_index() {
    if real_data().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let cnn =
        shap_model::Cnn::seeded(5, shap_model::Head::Softmax, &candle_core::Device::Cpu).unwrap();
    shap_model::save(&cnn, &shap_model::CheckpointMeta::default(), &model).unwrap();
    let run = |which: &[&str], npz: &Path| {
        let mut args = vec!["explain", "--model", s(&model), "--max-evals", "200"];
        args.extend_from_slice(which);
        args.extend_from_slice(&["--npz", s(npz), "--quiet"]);
        let out = shap_cli(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        shap_explain::Explanation::load_npz(npz).unwrap()
    };
    let (index, file) = GREY[1];
    let from_file = run(&["--image", s(&asset(file))], &dir.path().join("a.npz"));
    let from_set = run(
        &["--indices", &index.to_string()],
        &dir.path().join("b.npz"),
    );
    assert_eq!(from_file.data, from_set.data);
    assert_eq!(from_file.output_indices, from_set.output_indices);
    assert_eq!(from_file.values, from_set.values);
}

/// The README's RGB demo: the 128x96 photo through the 32x24 RGB ONNX fixture.
#[test]
fn the_rgb_sample_runs_through_an_rgb_model() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("e.json");
    let photo = asset("rgb/hillside.jpg");
    let img = image::open(&photo).unwrap();
    assert_eq!(
        (img.width(), img.height(), img.color().channel_count()),
        (128, 96, 3)
    );
    let out = shap_cli(&[
        "explain",
        "--model",
        &onnx_fixture("rgb_nchw.onnx"),
        "--image",
        s(&photo),
        "--mean",
        "0.485,0.456,0.406",
        "--std",
        "0.229,0.224,0.225",
        "--labels",
        &onnx_fixture("labels_rgb.txt"),
        "--masker",
        "blur(8,8)",
        "--top-k",
        "3",
        "--json",
        s(&json),
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("hillside.jpg (128x96) was resized"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let row = &v["images"][0];
    assert_eq!(row["classes"].as_array().unwrap().len(), 3);
    assert!(row["efficiency_error"].as_f64().unwrap() <= 1e-5);
}
