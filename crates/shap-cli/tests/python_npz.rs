//! `shap-cli plot` reads what Python writes (`np.savez_compressed`, a minimal shap export;
//! fixtures from `fixtures/gen_python_npz.py`), and our own `.npz` describes itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{shap_cli, text};
use shap_explain::Explanation;
use shap_explain::npz::write_npz;
use shap_io::npy::{NpyArray, NpyData};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn minimal_shap_exports_plot_and_what_is_missing_is_computed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, names) in [
        ("shap_min.npz", vec!["up", "mean", "corner"]),
        ("shap_min_no_names.npz", vec!["0", "1", "2"]),
    ] {
        let e = Explanation::load_npz(fixture(name)).unwrap();
        assert_eq!((e.num_images, e.num_outputs), (2, 3), "{name}");
        assert_eq!(e.output_names[1], names, "{name}");
        assert_eq!(e.output_indices, vec![0, 1, 2, 0, 1, 2]);
        // f(x) is computed from the efficiency identity.
        assert!(e.max_efficiency_error() < 1e-12, "{name}");
        let fig = dir.path().join(format!("{name}.png"));
        let out = shap_cli(&["plot", "--npz", s(&fixture(name)), "--out", s(&fig)]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(std::fs::metadata(&fig).unwrap().len() > 1000);
    }
}

#[test]
fn our_npz_keeps_titles_sources_and_settings_for_a_replot() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shap-onnx/fixtures");
    let npz = dir.path().join("e.npz");
    let out = shap_cli(&[
        "explain",
        "--model",
        s(&onnx.join("tutorial.safetensors")),
        "--image",
        s(&onnx.join("images/grey_0.png")),
        "--max-evals",
        "80",
        "--npz",
        s(&npz),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e = Explanation::load_npz(&npz).unwrap();
    let info = &e.images[0];
    assert_eq!(info.source, "grey_0.png");
    assert_eq!((info.index, info.label.clone()), (None, None));
    let p = info.predicted.clone().unwrap();
    assert_eq!(p.class.name, shap_data::CLASS_NAMES[p.class.index]);
    assert_eq!(
        info.title,
        format!("pred: {} ({:.2})", p.class.name, p.score)
    );
    assert_eq!(e.setting("masker"), Some("blur(28,28)"));
    assert_eq!(e.setting("max_evals"), Some("80"));
    assert_eq!(e.setting("model"), Some("tutorial.safetensors"));
    assert_eq!(e.setting("model_sha256").map(str::len), Some(64));
    // A re-plot draws the stored title (SVG keeps text as text).
    let svg = dir.path().join("again.svg");
    let out = shap_cli(&["plot", "--npz", s(&npz), "--out", s(&svg)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.contains(&info.title),
        "the re-plot lost the title {:?}",
        info.title
    );
}

#[test]
fn an_npz_missing_what_cannot_be_computed_is_an_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no_data.npz");
    let values = NpyArray {
        shape: vec![1, 2, 2, 1, 1],
        data: NpyData::F64(vec![0.1, 0.2, 0.3, 0.4]),
    };
    let base = NpyArray {
        shape: vec![1, 1],
        data: NpyData::F64(vec![0.5]),
    };
    write_npz(&bad, &[("values", values), ("base_values", base)]).unwrap();
    let fig = dir.path().join("f.png");
    let out = shap_cli(&["plot", "--npz", s(&bad), "--out", s(&fig)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing array 'data'"),
        "{}",
        text(&out.stderr)
    );
    assert!(!fig.exists());
}
