//! `shap-cli summary` and `shap-cli faithfulness` as real processes: the JSON schemas, the
//! figures, and bad input (exit 1, a one-line error, nothing written).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{on_a_terminal, s, shap_cli, text};
use shap_explain::Explanation;

struct Setup {
    dir: tempfile::TempDir,
    model: PathBuf,
    /// Test images 0..12 of a synthetic dataset, blur(28,28), top 3.
    npz: PathBuf,
}

fn setup() -> Setup {
    let common::Synthetic { dir, model, data } = common::synthetic(12);
    let npz = dir.path().join("e.npz");
    let out = shap_cli(&[
        "explain",
        "-m",
        s(&model),
        "--data-dir",
        s(&data),
        "--range",
        "0..12",
        "--top-k",
        "3",
        "--max-evals",
        "100",
        "--npz",
        s(&npz),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    Setup { dir, model, npz }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn summary_counts_every_image_and_writes_the_figure() {
    let t = setup();
    let (png, js) = (t.path("summary.png"), t.path("summary.json"));
    let out = shap_cli(&[
        "summary",
        "--npz",
        s(&t.npz),
        "--out",
        s(&png),
        "--json",
        s(&js),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("12 images by predicted class"));
    assert!(image::open(&png).unwrap().width() > 100);
    let v = json(&js);
    assert_eq!(v["images"], 12);
    assert_eq!(v["shape"], serde_json::json!([28, 28, 1]));
    let classes = v["classes"].as_array().unwrap();
    let count = |k: &str| classes.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(count("predicted"), 12);
    // Explained with the top 3, so each image's predicted class has values.
    assert_eq!((count("with_values"), count("without_values")), (12, 0));
    let e = Explanation::load_npz(&t.npz).unwrap();
    for c in classes {
        let class = c["class"].as_u64().unwrap() as usize;
        let mine: Vec<usize> = (0..12)
            .filter(|&i| e.images[i].predicted.as_ref().unwrap().class.index == class)
            .collect();
        assert_eq!(c["predicted"].as_u64().unwrap() as usize, mine.len());
        // Pixel 400 of the mean map is the mean of the images' values for the class.
        let want: f64 = mine
            .iter()
            .map(|&i| {
                let o = e.output_indices[i * 3..i * 3 + 3]
                    .iter()
                    .position(|&x| x == class);
                e.value(i, 400, o.unwrap()).unwrap()
            })
            .sum::<f64>()
            / mine.len() as f64;
        assert!((c["mean"][400].as_f64().unwrap() - want).abs() < 1e-12);
        assert_eq!(c["mean_abs"].as_array().unwrap().len(), 784);
    }
}

#[test]
fn faithfulness_json_schema_and_plot() {
    let t = setup();
    let (js, png) = (t.path("f.json"), t.path("curves.png"));
    let out = shap_cli(&[
        "faithfulness",
        "-m",
        s(&t.model),
        "--npz",
        s(&t.npz),
        "--steps",
        "14",
        "--random",
        "3",
        "--target",
        "all",
        "--json",
        s(&js),
        "--plot",
        s(&png),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("14 steps over 784 pixels, 3 random orders"));
    assert!(text(&out.stdout).contains("faithfulness of the explained classes"));
    assert_eq!(image::open(&png).unwrap().width(), 1000);
    let v = json(&js);
    assert_eq!(
        keys(&v),
        [
            "feature",
            "features",
            "images",
            "masker",
            "mean",
            "mean_curves",
            "random",
            "seed",
            "steps",
            "target"
        ]
    );
    assert_eq!(v["target"], "all");
    assert_eq!(
        (v["masker"].as_str(), v["steps"].as_u64()),
        (Some("blur(28,28)"), Some(14))
    );
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 12);
    assert_eq!(keys(&images[0]), ["classes", "index", "source"]);
    assert_eq!(
        (images[3]["index"].as_u64(), images[3]["source"].as_str()),
        (Some(3), Some("test[3]"))
    );
    let figures = [
        "deletion_auc",
        "insertion_auc",
        "random_deletion_auc",
        "random_insertion_auc",
    ];
    let c0 = &images[0]["classes"][0];
    let mut want = vec!["class", "name"];
    want.extend(figures);
    want.sort_unstable();
    assert_eq!(keys(c0), want);
    assert_eq!(v["mean_curves"]["deletion"].as_array().unwrap().len(), 15);
    // The mean is the mean over every (image, class).
    for f in figures {
        let all: Vec<f64> = images
            .iter()
            .flat_map(|i| {
                i["classes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c[f].as_f64().unwrap())
            })
            .collect();
        assert_eq!(all.len(), 36);
        let mean = all.iter().sum::<f64>() / 36.0;
        assert!((v["mean"][f].as_f64().unwrap() - mean).abs() < 1e-9, "{f}");
    }
    // Deterministic: a second run writes the same file.
    let again = t.path("again.json");
    let out = shap_cli(&[
        "faithfulness",
        "-m",
        s(&t.model),
        "--npz",
        s(&t.npz),
        "--steps",
        "14",
        "--random",
        "3",
        "--target",
        "all",
        "--json",
        s(&again),
        "--quiet",
    ]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(std::fs::read(&js).unwrap(), std::fs::read(&again).unwrap());
}

/// Every bad input: exit 1, one `error:` line naming the problem, no output file.
fn refused(args: &[&str], outputs: &[&Path], needle: &str) {
    let out = shap_cli(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.starts_with("error:") && err.contains(needle),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for p in outputs {
        assert!(!p.exists(), "{args:?} wrote {}", p.display());
    }
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let t = setup();
    let (js, png) = (t.path("out.json"), t.path("out.png"));
    let outs = [js.as_path(), png.as_path()];
    let (m, npz) = (s(&t.model), s(&t.npz));
    let faith = |extra: &[&str]| {
        let mut a = vec!["faithfulness", "-m", m, "--json", s(&js), "--plot", s(&png)];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>, needle: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, &outs, needle)
    };
    run(
        faith(&["--npz", npz, "--steps", "0"]),
        "the curves need at least one step",
    );
    run(
        faith(&["--npz", npz, "--random", "0"]),
        "at least one random order",
    );
    run(
        faith(&["--npz", npz, "--random", "18446744073709551615"]),
        "more than the limit of 10000",
    );
    run(
        faith(&["--npz", npz, "--steps", "785"]),
        "steps must be between 1 and the 784 pixels",
    );
    // A masker that cannot be parsed is a usage error (exit 2), before anything is read.
    let bad_masker = faith(&["--npz", npz, "--masker", "sharpen(3)"]);
    let out = shap_cli(&bad_masker.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown masker"));
    assert!(outs.iter().all(|p| !p.exists()));
    run(faith(&["--npz", npz, "--head", "logits"]), "recorded f(x)");
    let txt = t.path("x.txt");
    refused(
        &[
            "faithfulness",
            "-m",
            m,
            "--npz",
            npz,
            "--json",
            s(&js),
            "--plot",
            s(&txt),
        ],
        &[js.as_path(), txt.as_path()],
        "x.txt",
    );

    // Made for another model shape: an RGB ONNX model's explanation.
    let rgb = t.path("rgb.npz");
    let out = shap_cli(&[
        "explain",
        "-m",
        &common::onnx_fixture("rgb_nchw.onnx"),
        "--image",
        &common::onnx_fixture("images/rgb_0.png"),
        "--masker",
        "blur(8,8)",
        "--top-k",
        "2",
        "--max-evals",
        "60",
        "--npz",
        s(&rgb),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    run(
        faith(&["--npz", s(&rgb)]),
        "the model takes (28, 28, 1) images",
    );
}

#[test]
fn explanations_faithfulness_cannot_score_are_refused() {
    let t = setup();
    let (js, png) = (t.path("out.json"), t.path("out.png"));
    let outs = [js.as_path(), png.as_path()];
    let (m, npz) = (s(&t.model), s(&t.npz));
    let faith = |extra: &[&str]| {
        let mut a = vec!["faithfulness", "-m", m, "--json", s(&js), "--plot", s(&png)];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>, needle: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, &outs, needle)
    };
    // An empty explanation, and shap's own npz (no predictions, no masker).
    let empty = t.path("empty.npz");
    let e = Explanation::load_npz(&t.npz).unwrap();
    let none = Explanation {
        num_images: 0,
        values: vec![],
        base_values: vec![],
        output_indices: vec![],
        output_names: vec![],
        data: vec![],
        fx: vec![],
        evals: vec![],
        efficiency_errors: vec![],
        image_times: vec![],
        images: vec![],
        ..e
    };
    none.save_npz(&empty).unwrap();
    run(faith(&["--npz", s(&empty)]), "no images");
    let shap_npz = format!("{}/fixtures/shap_min.npz", env!("CARGO_MANIFEST_DIR"));
    refused(
        &[
            "summary",
            "--npz",
            &shap_npz,
            "--out",
            s(&png),
            "--json",
            s(&js),
        ],
        &outs,
        "no predicted class recorded",
    );
    refused(
        &[
            "summary",
            "--npz",
            s(&empty),
            "--out",
            s(&png),
            "--json",
            s(&js),
        ],
        &outs,
        "no images",
    );
    refused(
        &["summary", "--npz", npz, "--out", s(&t.path("s.gif"))],
        &outs,
        "s.gif",
    );
    let out = shap_cli(&["summary", "--npz", npz, "--out", s(&png), "--json", npz]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!png.exists());
    assert!(
        Explanation::load_npz(&t.npz).is_ok(),
        "the input is untouched"
    );
}

#[test]
fn a_progress_bar_on_a_terminal_and_json_on_stdout() {
    let t = setup();
    let args = [
        "faithfulness",
        "-m",
        s(&t.model),
        "--npz",
        s(&t.npz),
        "--steps",
        "4",
        "--random",
        "1",
    ];
    let shown = on_a_terminal(&args);
    assert!(shown.contains("12/12 images"), "{shown}");
    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    assert!(!on_a_terminal(&quiet).contains("images"));
    let mut to_stdout = args.to_vec();
    to_stdout.extend(["--json", "-"]);
    let out = shap_cli(&to_stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"], 4);
}

/// A change to one array of an explanation.
type Edit = fn(&mut Explanation, f64);

#[test]
fn results_holding_nan_or_infinity_are_refused_by_every_reader() {
    let t = setup();
    let good = Explanation::load_npz(&t.npz).unwrap();
    let (js, png, merged) = (t.path("out.json"), t.path("out.png"), t.path("merged.npz"));
    let outs = [js.as_path(), png.as_path(), merged.as_path()];
    let edits: [(&str, Edit); 3] = [
        ("values", |e, x| e.values[5] = x),
        ("base_values", |e, x| e.base_values[1] = x),
        ("fx", |e, x| e.fx[0] = x),
    ];
    let shards = shards(&t);
    for (array, edit) in edits {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut e = good.clone();
            edit(&mut e, bad);
            let npz = t.path("bad.npz");
            e.save_npz(&npz).unwrap();
            let npz = s(&npz);
            let needle = format!("'{array}' entry");
            let m = s(&t.model);
            refused(&["summary", "--npz", npz, "--out", s(&png)], &outs, &needle);
            refused(&["plot", "--npz", npz, "--out", s(&png)], &outs, &needle);
            refused(
                &["faithfulness", "-m", m, "--npz", npz, "--json", s(&js)],
                &outs,
                &needle,
            );
            // A shard holding it is refused when merged.
            let mut part = shards[0].clone();
            edit(&mut part, bad);
            part.save_npz(t.path("part1.npz")).unwrap();
            refused(
                &[
                    "merge",
                    s(&t.path("part1.npz")),
                    s(&t.path("part2.npz")),
                    "--out",
                    s(&merged),
                ],
                &outs,
                "finite",
            );
        }
    }
}

/// Shards 0/2 and 1/2 of the setup's images, saved as `part1.npz` and `part2.npz`.
fn shards(t: &Setup) -> Vec<Explanation> {
    let common::Synthetic {
        dir: _keep,
        model,
        data,
    } = common::synthetic(12);
    (1..=2)
        .map(|i| {
            let npz = t.path(&format!("part{i}.npz"));
            let shard = format!("{}/2", i - 1);
            let out = shap_cli(&[
                "explain",
                "-m",
                s(&model),
                "--data-dir",
                s(&data),
                "--range",
                "0..12",
                "--shard",
                &shard,
                "--top-k",
                "3",
                "--max-evals",
                "100",
                "--npz",
                s(&npz),
                "--quiet",
            ]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            Explanation::load_npz(&npz).unwrap()
        })
        .collect()
}

#[test]
fn names_and_paths_from_files_lose_their_control_characters() {
    let t = setup();
    let mut e = Explanation::load_npz(&t.npz).unwrap();
    for names in &mut e.output_names {
        for n in names.iter_mut() {
            *n = format!("\u{1b}[2J\u{1b}[31m{n}\u{7}");
        }
    }
    for image in &mut e.images {
        if let Some(p) = &mut image.predicted {
            p.class.name = format!("\u{1b}[2J\u{1b}[31m{}\u{7}", p.class.name);
        }
    }
    let hostile = t.path("hostile.npz");
    e.save_npz(&hostile).unwrap();
    let out = shap_cli(&[
        "summary",
        "--npz",
        s(&hostile),
        "--out",
        s(&t.path("s.png")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        !shown.chars().any(|c| c.is_control() && c != '\n'),
        "{shown:?}"
    );
    assert!(shown.contains("?[2J?[31m"), "{shown}");
    // A path in an error line.
    let missing = t.path("\u{1b}[2Jgone.npz");
    let out = shap_cli(&[
        "summary",
        "--npz",
        s(&missing),
        "--out",
        s(&t.path("s2.png")),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("?[2Jgone.npz") && !err.contains('\u{1b}'),
        "{err:?}"
    );
}

#[test]
fn the_default_target_is_each_images_predicted_class() {
    let t = setup();
    let js = t.path("f.json");
    let args = [
        "faithfulness",
        "-m",
        s(&t.model),
        "--npz",
        s(&t.npz),
        "--steps",
        "7",
    ];
    let out = shap_cli(&[&args[..], &["--random", "2", "--json", s(&js)]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("faithfulness of the predicted classes"));
    let v = json(&js);
    assert_eq!(v["target"], "predicted");
    let e = Explanation::load_npz(&t.npz).unwrap();
    let images = v["images"].as_array().unwrap();
    for (i, img) in images.iter().enumerate() {
        let classes = img["classes"].as_array().unwrap();
        let predicted = e.images[i].predicted.as_ref().unwrap().class.index;
        assert_eq!(classes.len(), 1, "image {i}");
        assert_eq!(classes[0]["class"].as_u64(), Some(predicted as u64));
    }
    let mean: f64 = images
        .iter()
        .map(|i| i["classes"][0]["deletion_auc"].as_f64().unwrap())
        .sum::<f64>()
        / images.len() as f64;
    assert!((v["mean"]["deletion_auc"].as_f64().unwrap() - mean).abs() < 1e-9);
    // --target explained: each image's first explained class (the top one here).
    let out = shap_cli(&[&args[..], &["--random", "2", "--target", "explained", "-q"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
}
