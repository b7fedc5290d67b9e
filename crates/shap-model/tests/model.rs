//! Model, training, checkpoint, evaluation and adapter tests.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use shap_explain::{BatchModel, ImageShape};
use shap_model::{
    CheckpointMeta, Cnn, Dataset, Error, Head, ModelFn, PARAMETERS, Preset, TENSORS, TrainConfig,
    Trainer, checkpoint, evaluate, pick_examples,
};

/// The network's tensors as host vectors, in `TENSORS` order.
fn host(cnn: &Cnn) -> Vec<Vec<f32>> {
    cnn.named_tensors()
        .into_iter()
        .map(|(_, t)| flat(&t))
        .collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("host values")
}

/// Deterministic pseudo-images (values in `[0, 1]`).
fn synthetic_images(n: usize) -> Vec<f32> {
    (0..n * 784)
        .map(|i| ((i * 2_654_435_761usize) % 256) as f32 / 255.0)
        .collect()
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("shap-model-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

#[test]
fn architecture_has_the_tutorial_parameter_count() {
    let cnn = Cnn::seeded(1, Head::Softmax, &Device::Cpu).expect("cnn");
    assert_eq!(cnn.num_parameters(), 130_394);
    assert_eq!(PARAMETERS, 130_394);
    let names: Vec<_> = cnn
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect();
    assert_eq!(names[0], ("conv1.weight", vec![32, 1, 3, 3]));
    assert_eq!(names[4], ("fc.weight", vec![10, 12544]));
}

#[test]
fn init_is_seeded_glorot_with_zero_biases() {
    let a = host(&Cnn::seeded(7, Head::Softmax, &Device::Cpu).expect("a"));
    let b = host(&Cnn::seeded(7, Head::Softmax, &Device::Cpu).expect("b"));
    let c = host(&Cnn::seeded(8, Head::Softmax, &Device::Cpu).expect("c"));
    assert_eq!(a, b);
    assert_ne!(a[0], c[0]);
    // conv2: fan_in 288, fan_out 144 -> limit sqrt(6/432).
    let limit = (6.0f32 / 432.0).sqrt();
    let w2 = &a[2];
    assert!(w2.iter().all(|v| v.abs() <= limit));
    assert!(w2.iter().any(|v| v.abs() > 0.9 * limit));
    let mean: f32 = w2.iter().sum::<f32>() / w2.len() as f32;
    assert!(mean.abs() < 0.01);
    assert!(a[1].iter().chain(&a[3]).chain(&a[5]).all(|&v| v == 0.0));
}

#[test]
fn fast_inference_matches_candle_graph_and_batching() {
    let dev = Device::Cpu;
    let cnn = Cnn::seeded(3, Head::Softmax, &dev).expect("cnn");
    let n = 5;
    let x = synthetic_images(n);
    let t = candle_core::Tensor::from_vec(x.clone(), (n, 28, 28, 1), &dev).expect("t");
    let graph = cnn
        .forward(&t)
        .expect("forward")
        .flatten_all()
        .and_then(|y| y.to_vec1::<f32>())
        .expect("graph");
    let fast = ModelFn::new(&cnn).expect("m").predict(&x).expect("fast");
    for (a, b) in graph.iter().zip(&fast) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // The adapter gives the same outputs whatever the chunking.
    let m1 = ModelFn::new(&cnn).expect("m").with_chunk(2);
    let m2 = ModelFn::new(&cnn).expect("m");
    let shape = ImageShape::new(28, 28, 1);
    let mut o1 = vec![0f32; n * 10];
    let mut o2 = vec![0f32; n * 10];
    m1.eval_batch(&x, n, shape, &mut o1).expect("eval");
    m2.eval_batch(&x, n, shape, &mut o2).expect("eval");
    assert_eq!(o1, o2);
    let mut single = vec![0f32; 10];
    m2.eval_batch(&x[784..2 * 784], 1, shape, &mut single)
        .expect("eval");
    assert_eq!(&o1[10..20], &single[..]);
    assert!(
        o1.chunks(10)
            .all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5)
    );
    // Logits head: softmax of the logits gives the probabilities.
    let ml = ModelFn::with_head(&cnn, Head::Logits).expect("m");
    let lg = ml.predict(&x).expect("logits");
    let row = &lg[..10];
    let mx = row.iter().copied().fold(f32::MIN, f32::max);
    let s: f32 = row.iter().map(|v| (v - mx).exp()).sum();
    assert!(((row[0] - mx).exp() / s - o1[0]).abs() < 1e-6);
    // Wrong shapes are errors, not panics.
    let err = m2.eval_batch(&x, n, ImageShape::new(28, 28, 3), &mut o1);
    assert!(err.is_err());
    assert!(m2.eval_batch(&x, n + 1, shape, &mut o1).is_err());
}

fn synthetic(n: usize) -> (Vec<u8>, Vec<u8>) {
    // Class c: a bright horizontal bar at rows 2c..2c+3 plus a deterministic texture.
    let mut images = vec![0u8; n * 784];
    let mut labels = vec![0u8; n];
    for i in 0..n {
        let c = (i * 7 + i / 3) % 10;
        labels[i] = c as u8;
        for r in 0..28 {
            for col in 0..28 {
                let noise = ((i * 31 + r * 17 + col * 13) % 64) as u8;
                let bar = if r >= 2 * c + 2 && r < 2 * c + 5 {
                    180
                } else {
                    0
                };
                images[i * 784 + r * 28 + col] = bar + noise;
            }
        }
    }
    (images, labels)
}

#[test]
fn training_is_deterministic_and_learns_synthetic_data() {
    let (images, labels) = synthetic(300);
    let data = Dataset::new(&images, &labels).expect("data");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        ..TrainConfig::preset(Preset::Keras)
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| {
                let cnn = Cnn::seeded(cfg.seed, cfg.head, &Device::Cpu).expect("cnn");
                let h = Trainer::new(cfg.clone())
                    .expect("config")
                    .train(&cnn, &data, Some(&data), |_| {})
                    .expect("train");
                (host(&cnn), h)
            })
    };
    let (w1, h1) = run(1);
    let (w2, h2) = run(2);
    assert_eq!(w1, w2, "weights differ between 1 and 2 threads");
    assert_eq!(h1.epochs[1].train_loss, h2.epochs[1].train_loss);
    assert_eq!(h1.epochs.len(), 2);
    let acc = h1.epochs[1].test_accuracy.expect("test acc");
    assert!(acc > 0.5, "accuracy {acc}");
    assert!(h1.epochs[1].train_loss < h1.epochs[0].train_loss);
    let json = serde_json::to_string(&h1).expect("json");
    assert!(json.contains("\"test_accuracy\""));
}

#[test]
fn nan_loss_stops_training_with_epoch_and_batch() {
    let (images, labels) = synthetic(40);
    let data = Dataset::new(&images, &labels).expect("data");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 16,
        ..TrainConfig::preset(Preset::Flax)
    };
    let cnn = Cnn::seeded(1, cfg.head, &Device::Cpu).expect("cnn");
    let fc_bias = &cnn.vars()[5];
    let mut b = flat(fc_bias.as_tensor());
    b[3] = f32::NAN;
    fc_bias
        .set(&Tensor::from_vec(b, 10, &Device::Cpu).expect("t"))
        .expect("set");
    match Trainer::new(cfg.clone())
        .expect("config")
        .train(&cnn, &data, None, |_| {})
    {
        Err(Error::NonFinite {
            epoch: 1, batch: 1, ..
        }) => {}
        other => panic!("expected NonFinite at epoch 1 batch 1, got {other:?}"),
    }
}

#[test]
fn bad_datasets_and_configs_are_errors() {
    assert!(Dataset::new(&[0u8; 784], &[1, 2]).is_err());
    assert!(Dataset::new(&[0u8; 784], &[10]).is_err());
    let (images, labels) = synthetic(4);
    let data = Dataset::new(&images, &labels).expect("data");
    let cnn = Cnn::seeded(1, Head::Softmax, &Device::Cpu).expect("cnn");
    let cfg = TrainConfig {
        batch_size: 0,
        ..TrainConfig::preset(Preset::Keras)
    };
    let err = Trainer::new(cfg).expect_err("batch size 0");
    assert!(err.to_string().contains("batch size"), "{err}");
    let _ = (&cnn, &data);
    for (lr, eps) in [(0.0, 1e-7), (f64::NAN, 1e-7), (1e-3, 0.0)] {
        let bad = TrainConfig {
            lr,
            eps,
            ..TrainConfig::preset(Preset::Keras)
        };
        assert!(Trainer::new(bad).is_err(), "lr {lr} eps {eps}");
    }
    assert!(shap_model::device("tpu").is_err());
    #[cfg(not(feature = "cuda"))]
    {
        let e = shap_model::device("cuda").expect_err("no cuda").to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}

#[test]
fn checkpoint_round_trip_and_strict_loading() {
    let dir = tmp_dir("ckpt");
    let path = dir.join("m.safetensors");
    let cnn = Cnn::seeded(5, Head::Logits, &Device::Cpu).expect("cnn");
    let meta = CheckpointMeta {
        preset: "flax".into(),
        head: Head::Logits,
        seed: 5,
        epochs: 3,
    };
    shap_model::save(&cnn, &meta, &path).expect("save");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(leftovers.len(), 1);
    let back = shap_model::load(&path, &Device::Cpu).expect("load");
    assert_eq!(back.meta, meta);
    assert_eq!(back.cnn.head(), Head::Logits);
    assert_eq!(host(&back.cnn), host(&cnn));

    let write = |tensors: Vec<(&str, Vec<usize>)>, p: &Path| {
        let bufs: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()])
            .collect();
        let views: Vec<_> = tensors
            .iter()
            .zip(&bufs)
            .map(|((n, s), b)| {
                (
                    *n,
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                        .expect("view"),
                )
            })
            .collect();
        std::fs::write(p, safetensors::serialize(views, None).expect("ser")).expect("write");
    };
    let full: Vec<(&str, Vec<usize>)> = TENSORS.iter().map(|(n, s)| (*n, s.to_vec())).collect();

    let p = dir.join("missing.safetensors");
    write(full[1..].to_vec(), &p);
    let e = shap_model::load(&p, &Device::Cpu).expect_err("missing");
    assert!(
        matches!(e, Error::MissingTensor { ref name, .. } if name == "conv1.weight"),
        "{e}"
    );
    assert!(e.to_string().contains("[32, 1, 3, 3]"), "{e}");

    let p = dir.join("extra.safetensors");
    let mut extra = full.clone();
    extra.push(("fc2.weight", vec![2, 2]));
    write(extra, &p);
    let e = shap_model::load(&p, &Device::Cpu).expect_err("extra");
    assert!(
        e.to_string().contains("fc2.weight") && e.to_string().contains("[2, 2]"),
        "{e}"
    );

    let p = dir.join("shape.safetensors");
    let mut bad = full.clone();
    bad[4].1 = vec![12544, 10];
    write(bad, &p);
    let e = shap_model::load(&p, &Device::Cpu).expect_err("shape");
    let s = e.to_string();
    assert!(
        s.contains("fc.weight") && s.contains("[12544, 10]") && s.contains("[10, 12544]"),
        "{s}"
    );

    // Files without metadata load with the softmax head.
    let p = dir.join("plain.safetensors");
    write(full, &p);
    let c = shap_model::load(&p, &Device::Cpu).expect("plain");
    assert_eq!(c.meta.head, Head::Softmax);

    let p = dir.join("garbage.safetensors");
    std::fs::write(&p, b"not a checkpoint").expect("write");
    let e = shap_model::load(&p, &Device::Cpu).expect_err("garbage");
    assert!(matches!(e, Error::Safetensors { .. }), "{e}");
    // The parser's error is kept as the cause.
    assert!(std::error::Error::source(&e).is_some());
    assert!(matches!(
        shap_model::load(&dir.join("absent.safetensors"), &Device::Cpu),
        Err(Error::Io { .. })
    ));
    let _ = checkpoint::FORMAT;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn evaluation_matches_hand_counts_and_sklearn_layout() {
    // 4 examples: labels 0,0,1,2; predictions 0,1,1,1.
    let mut out = vec![0f32; 40];
    for (i, p) in [0usize, 1, 1, 1].iter().enumerate() {
        out[i * 10 + p] = 1.0;
    }
    let labels = [0u8, 0, 1, 2];
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let e = evaluate(&out, &labels, &names).expect("eval");
    assert_eq!(e.scores.accuracy, 0.5);
    assert_eq!(e.scores.confusion[0][0], 1);
    assert_eq!(e.scores.confusion[0][1], 1);
    assert_eq!(e.scores.confusion[2][1], 1);
    assert_eq!(e.scores.classes[0].precision, 1.0);
    assert_eq!(e.scores.classes[0].recall, 0.5);
    assert!((e.scores.classes[1].precision - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(e.scores.classes[2].f1, 0.0);
    assert_eq!(e.scores.classes[3].support, 0);
    // weighted avg of precision: (2*1 + 1*(1/3) + 1*0) / 4
    assert!((e.scores.weighted_avg.precision - (2.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
    // macro avg over all 10 classes (sklearn with labels=range(10)).
    assert!((e.scores.macro_avg.precision - (1.0 + 1.0 / 3.0) / 10.0).abs() < 1e-12);
    // Golden text from scikit-learn (fixtures/report_ref.py).
    let golden = include_str!("../fixtures/classification_report.txt");
    assert_eq!(e.scores.report(2), golden);
    let (right, wrong) = pick_examples(&e.predictions, &labels, 1);
    assert_eq!((right, wrong), (vec![0], vec![1]));
    assert!(evaluate(&out[..30], &labels, &names).is_err());
}

/// Real Fashion-MNIST: 2,000 training images, one epoch, accuracy clearly above chance.
#[test]
fn trains_on_real_data_subset() {
    let data = match shap_data::FashionMnist::load(None) {
        Ok(d) => d,
        Err(e) if std::env::var("SHAP_SKIP_REAL_DATA").as_deref() == Ok("1") => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("Fashion-MNIST not found ({e}); set SHAP_SKIP_REAL_DATA=1 to skip"),
    };
    let train_set = Dataset::new(data.train.images(), data.train.labels())
        .expect("train")
        .take(2000);
    let test = Dataset::new(data.test.images(), data.test.labels())
        .expect("test")
        .take(2000);
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::preset(Preset::Keras)
    };
    let cnn = Cnn::seeded(cfg.seed, cfg.head, &Device::Cpu).expect("cnn");
    let h = Trainer::new(cfg.clone())
        .expect("config")
        .train(&cnn, &train_set, Some(&test), |_| {})
        .expect("train");
    let acc = h.epochs[0].test_accuracy.expect("acc");
    assert!(
        acc > 0.5,
        "test accuracy {acc} after one epoch on 2,000 images"
    );
    let out = ModelFn::new(&cnn)
        .expect("m")
        .predict(&test.images_f32())
        .expect("predict");
    let e = evaluate(&out, test.labels(), &shap_data::CLASS_NAMES).expect("eval");
    assert!((e.scores.accuracy - acc).abs() < 1e-12);
}

#[test]
fn hand_written_gradients_match_candle_autograd() {
    let dev = Device::Cpu;
    let cnn = Cnn::seeded(13, Head::Softmax, &dev).expect("cnn");
    let n = 19; // more than one dense-layer chunk, not a multiple of it
    let x = synthetic_images(n);
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % 10).collect();
    let hand = cnn.cpu_loss_and_grads(&x, &labels).expect("hand");
    let xt = candle_core::Tensor::from_vec(x.clone(), (n, 1, 28, 28), &dev).expect("x");
    let yt = candle_core::Tensor::from_vec(labels.clone(), n, &dev).expect("y");
    let logits = cnn.logits(&xt).expect("logits");
    let loss = candle_nn::loss::cross_entropy(&logits, &yt).expect("loss");
    let grads = loss.backward().expect("backward");
    let lv = loss.to_scalar::<f32>().expect("scalar");
    assert!(
        (hand.loss - lv).abs() < 1e-5 * lv.abs().max(1.0),
        "{} vs {lv}",
        hand.loss
    );
    let lg = logits
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("lg");
    for (a, b) in hand.logits.iter().zip(&lg) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let hand_grads = |store: &candle_core::backprop::GradStore| -> Vec<Vec<f32>> {
        cnn.vars()
            .iter()
            .map(|v| flat(store.get(v.as_tensor()).expect("hand grad")))
            .collect()
    };
    let hand_flat = hand_grads(&hand.grads);
    for ((name, _), (v, h)) in TENSORS.iter().zip(cnn.vars().iter().zip(&hand_flat)) {
        let g = flat(grads.get(v.as_tensor()).expect("grad"));
        let scale = g.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let err = g.iter().zip(h).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(err < 1e-4, "{name}: relative error {err}");
    }
    // Same inputs, different thread counts: identical gradients.
    let other = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .expect("pool")
        .install(|| cnn.cpu_loss_and_grads(&x, &labels).expect("hand"));
    assert_eq!(hand_grads(&other.grads), hand_flat);
    assert!(cnn.cpu_loss_and_grads(&x, &[10; 19]).is_err());
}

/// The sanity check's cascade: each step re-initialises one more layer from the output down,
/// with the values a new network of the same seed starts from.
#[test]
fn randomised_layers_come_from_a_seeded_network_one_more_at_each_step() {
    let trained = Cnn::seeded(1, Head::Logits, &Device::Cpu).expect("network");
    let fresh = host(&Cnn::seeded(9, Head::Logits, &Device::Cpu).expect("network"));
    let original = host(&trained);
    assert_eq!(shap_model::LAYERS, ["fc", "conv2", "conv1"]);
    for top in 0..=3 {
        let r = host(&trained.randomised(top, 9).expect("randomised"));
        // TENSORS order: conv1 w/b, conv2 w/b, fc w/b; layer l of LAYERS is tensors 4-2l.
        for (t, values) in r.iter().enumerate() {
            let random = (2 - t / 2) < top;
            let want = if random { &fresh[t] } else { &original[t] };
            assert_eq!(values, want, "top {top}, tensor {}", TENSORS[t].0);
        }
    }
    assert!(matches!(trained.randomised(4, 9), Err(Error::Config(_))));
}
