//! The runs behind `train`, `evaluate`, `faithfulness` and `mask`, as a library: what they
//! return, what they write, and what they refuse before any work.

mod common;

use common::{Recorder, fixture};
use shap_explain::{BatchModel, Explanation, Faithfulness, Target};
use shap_mask::{ImageShape, MaskMode, Masker};
use shap_model::{DeviceSpec, Head, ModelFn, Preset, TrainConfig, TrainEvent};
use shap_records::History;
use shap_run::mask::{MaskRun, MaskSource};
use shap_run::{
    Error, EvaluateRun, FaithfulnessRun, Options, TrainRun, TrainStep, evaluate, explain,
    faithfulness, train,
};

fn train_run(data: &std::path::Path, epochs: usize, limit: Option<usize>) -> TrainRun {
    TrainRun {
        config: TrainConfig {
            epochs,
            batch_size: 4,
            ..TrainConfig::preset(Preset::Keras)
        },
        limit,
        device: DeviceSpec::Cpu,
        data_dir: Some(data.to_path_buf()),
    }
}

#[test]
fn training_reports_each_step_and_saves_what_reads_back() {
    let f = fixture(20);
    let mut steps = Vec::new();
    let trained = train(&train_run(&f.data, 2, Some(8)), |s| {
        steps.push(match s {
            TrainStep::Started { parameters, images } => format!("start {parameters} {images}"),
            TrainStep::Progress(TrainEvent::Batch { epoch, batch, .. }) => {
                format!("batch {epoch}.{batch}")
            }
            TrainStep::Progress(TrainEvent::Epoch(e)) => format!("epoch {}", e.epoch),
        })
    })
    .expect("train");
    let expected = [
        "start 130394 8",
        "batch 1.1",
        "batch 1.2",
        "epoch 1",
        "batch 2.1",
        "batch 2.2",
        "epoch 2",
    ];
    assert_eq!(steps, expected);
    assert_eq!(trained.history.train_examples, 8);
    assert_eq!(trained.history.epochs.len(), 2);
    assert_eq!(
        (trained.meta.preset.as_str(), trained.meta.epochs),
        ("keras", 2)
    );
    let (ckpt, history) = (f.path("t.safetensors"), f.path("history.json"));
    trained.save(&ckpt, Some(&history)).expect("save");
    let read: History =
        serde_json::from_slice(&std::fs::read(&history).expect("history")).expect("json");
    assert_eq!(read, trained.history);
    let loaded = shap_model::load(&ckpt, &candle_core::Device::Cpu).expect("load");
    assert_eq!(loaded.meta, trained.meta);
}

#[test]
fn training_settings_are_refused_before_the_data_is_read() {
    let nowhere = std::path::Path::new("/nonexistent/fashion-mnist");
    let limit = train(&train_run(nowhere, 1, Some(0)), |_| {}).expect_err("limit 0");
    assert!(matches!(limit.root(), Error::Refused(m) if m.contains("--limit")));
    let epochs = train(&train_run(nowhere, 0, None), |_| {}).expect_err("0 epochs");
    assert!(
        matches!(epochs.root(), Error::Model(e) if e.to_string().contains("epochs")),
        "{epochs:?}"
    );
}

#[test]
fn an_evaluation_agrees_with_the_model_and_round_trips() {
    let f = fixture(30);
    let run = EvaluateRun {
        model: f.model.clone(),
        head: None,
        device: DeviceSpec::Cpu,
        data_dir: Some(f.data.clone()),
        digits: 3,
    };
    let mut seen = Vec::new();
    let (e, _) = evaluate(&run, |done, total| seen.push((done, total))).expect("evaluate");
    assert_eq!(seen.last(), Some(&(30, 30)));
    assert_eq!(e.scores.n, 30);
    assert_eq!(e.scores.confusion.iter().flatten().sum::<usize>(), 30);
    let trace: usize = (0..10).map(|i| e.scores.confusion[i][i]).sum();
    assert_eq!(e.scores.accuracy, trace as f64 / 30.0);
    // The first correct and wrong images are what the network predicts for them (the test
    // image i has label i % 10).
    let cnn = shap_model::load(&f.model, &candle_core::Device::Cpu).expect("load");
    let model = ModelFn::with_head(&cnn.cnn, Head::Softmax).expect("model");
    let data = shap_data::FashionMnist::load(Some(&f.data)).expect("data");
    let predicted = |i: usize| {
        let x = data.test.images_f32(&[i]).expect("image");
        let mut out = vec![0f32; 10];
        model
            .eval_batch(&x, 1, ImageShape::new(28, 28, 1), &mut out)
            .expect("eval");
        (0..10).fold(0, |b, k| if out[k] > out[b] { k } else { b })
    };
    assert!(e.first_correct.iter().all(|&i| predicted(i) == i % 10));
    assert!(e.first_wrong.iter().all(|&i| predicted(i) != i % 10));
    assert_eq!(e.first_correct.len(), trace.min(4));
    assert_eq!(e.first_wrong.len(), (30 - trace).min(4));
    let json = serde_json::to_string(&e).expect("json");
    assert_eq!(
        serde_json::from_str::<shap_records::EvaluationRecord>(&json).expect("read"),
        e
    );
    let digits = evaluate(
        &EvaluateRun {
            digits: 18,
            model: "/nonexistent.safetensors".into(),
            ..run
        },
        |_, _| {},
    )
    .expect_err("18 digits");
    assert!(matches!(digits, Error::Refused(m) if m.contains("--digits")));
}

#[test]
fn faithfulness_scores_a_saved_explanation_with_its_recorded_masker() {
    let f = fixture(4);
    let npz = f.path("e.npz");
    explain(&f.run(0..2, &npz), &Recorder::new(usize::MAX)).expect("explain");
    let scoring = Faithfulness {
        steps: 4,
        random: 2,
        seed: 1,
        target: Target::All,
    };
    let run = FaithfulnessRun {
        model: f.model.clone(),
        npz: npz.clone(),
        options: Options {
            threads: 1,
            ..Options::default()
        },
        masker: None,
        scoring,
    };
    let report = faithfulness(&run, &Recorder::new(usize::MAX)).expect("score");
    assert_eq!(report.masker, "blur(10,10)");
    assert_eq!(report.images.len(), 2);
    assert!(report.images.iter().all(|i| i.classes.len() == 2));
    // The same scores as the scorer called directly on the full network, to float rounding
    // (the run evaluates the tutorial CNN incrementally).
    let e = Explanation::load_npz(&npz).expect("npz");
    let cnn = shap_model::load(&f.model, &candle_core::Device::Cpu).expect("load");
    let model = ModelFn::new(&cnn.cnn).expect("model");
    let masker = Masker::new("blur(10,10)".parse().expect("spec"), MaskMode::Default);
    let direct = scoring
        .check()
        .expect("settings")
        .score(&model, &e, &masker)
        .expect("direct");
    let (a, b) = (report.mean, direct.mean);
    for (x, y) in [
        (a.deletion_auc, b.deletion_auc),
        (a.insertion_auc, b.insertion_auc),
        (a.random_deletion_auc, b.random_deletion_auc),
        (a.random_insertion_auc, b.random_insertion_auc),
    ] {
        assert!((x - y).abs() < 1e-5, "{x} against {y}");
    }
    let no_steps = FaithfulnessRun {
        scoring: Faithfulness {
            steps: 0,
            ..scoring
        },
        ..run
    };
    let err = faithfulness(&no_steps, &Recorder::new(0)).expect_err("0 steps");
    assert!(err.to_string().contains("--steps 0"), "{err}");
}

#[test]
fn a_masked_image_keeps_exactly_the_pixels_kept() {
    let f = fixture(1);
    let (h, w) = (5, 6);
    let pixels: Vec<f32> = (0..h * w).map(|k| k as f32 / 29.0).collect();
    let png = f.path("in.png");
    std::fs::write(
        &png,
        shap_data::encode_grey_png(&pixels, h, w).expect("png"),
    )
    .expect("write");
    let keep: Vec<bool> = (0..h * w).map(|k| k % 3 != 0).collect();
    let keep_path = f.path("keep.npy");
    shap_mask::npy::write_bool(&keep_path, &[h, w], &keep).expect("keep");
    let run = MaskRun {
        masker: "0.25".parse().expect("spec"),
        mode: MaskMode::Default,
        source: MaskSource::File(png.clone()),
        keep: keep_path,
    };
    let m = shap_run::mask::mask(&run, &Recorder::new(0)).expect("mask");
    assert_eq!((m.shape.height, m.shape.width, m.kept), (h, w, 20));
    for (k, (&v, &kept)) in m.pixels.iter().zip(&keep).enumerate() {
        let original = (pixels[k] * 255.0).round() / 255.0;
        let want = if kept { original } else { 0.25 };
        assert!((v - want).abs() < 1e-6, "pixel {k}: {v} against {want}");
    }
    let wrong = f.path("wrong.npy");
    shap_mask::npy::write_bool(&wrong, &[w, h], &keep).expect("wrong");
    let err = shap_run::mask::mask(&MaskRun { keep: wrong, ..run }, &Recorder::new(0))
        .expect_err("transposed mask");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn thread_counts_outside_the_range_are_refused() {
    for n in [0, 1025] {
        let err = shap_run::threads::start_global_pool(Some(n)).expect_err("refused");
        assert!(matches!(err, Error::Refused(m) if m.starts_with(&format!("{n} threads"))));
    }
}

#[test]
fn metrics_score_a_saved_explanation_and_need_a_metric() {
    let f = fixture(4);
    let npz = f.path("e.npz");
    explain(&f.run(0..3, &npz), &Recorder::new(usize::MAX)).expect("explain");
    let run = shap_run::MetricsRun {
        model: f.model.clone(),
        npz,
        options: Options {
            threads: 1,
            ..Options::default()
        },
        mufidelity: Some(shap_explain::MuFidelity {
            samples: 10,
            target: Target::All,
            ..Default::default()
        }),
        road: Some(shap_explain::Road {
            percentages: vec![30, 60],
            target: Target::All,
            ..Default::default()
        }),
    };
    let report = shap_run::metrics(&run, &Recorder::new(usize::MAX)).expect("metrics");
    let mu = report.mufidelity.as_ref().expect("mufidelity");
    let road = report.road.as_ref().expect("road");
    assert_eq!((mu.images.len(), road.images.len()), (3, 3));
    assert!(mu.images.iter().all(|i| i.classes.len() == 2));
    assert!(road.images[0].classes[0].curves.morf.len() == 2);
    assert!(report.to_string().starts_with("MuFidelity: 10 samples"));
    let none = shap_run::MetricsRun {
        mufidelity: None,
        road: None,
        ..run
    };
    let err = shap_run::metrics(&none, &Recorder::new(0)).expect_err("no metric");
    assert!(matches!(err, Error::Refused(m) if m.contains("no metric")));
}
