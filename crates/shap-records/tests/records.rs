//! The records read files that earlier versions of `shap-cli` wrote (the fixtures are the
//! `history.json` and `evaluation.json` of a full `cargo xtask reproduce` and the output of
//! `shap-cli data --json`, all written before the records had types), and what they write
//! reads back as the same value.

use shap_records::{
    DatasetRecord, EvaluationRecord, Head, History, Outputs, Preset, TrainConfig, UnknownName,
};

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    serde_json::from_str(&serde_json::to_string_pretty(value).expect("encode")).expect("decode")
}

#[test]
fn a_training_history_written_before_the_types_reads_and_round_trips() {
    let h: History = fixture("history.json");
    assert_eq!(h.config, TrainConfig::preset(Preset::Keras));
    assert_eq!(h.train_examples, 60_000);
    assert_eq!(h.epochs.len(), 10);
    assert_eq!(
        h.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let last = h.epochs.last().expect("epochs");
    assert!(last.test_accuracy.is_some_and(|a| (0.85..1.0).contains(&a)));
    assert!(last.to_string().starts_with("epoch 10: loss "));
    assert_eq!(round_trip(&h), h);
}

#[test]
fn an_evaluation_written_before_the_types_reads_and_round_trips() {
    let e: EvaluationRecord = fixture("evaluation.json");
    assert_eq!((e.scores.n, e.scores.accuracy), (10_000, 0.9072));
    assert_eq!(e.output, Outputs::Probabilities);
    assert_eq!(
        (e.meta.head, e.meta.preset.as_str()),
        (Head::Softmax, "keras")
    );
    assert_eq!(e.first_correct, [0, 1, 2, 3]);
    assert_eq!(e.first_wrong.len(), 4);
    let counted: usize = e.scores.confusion.iter().flatten().sum();
    let correct: usize = (0..10).map(|i| e.scores.confusion[i][i]).sum();
    assert_eq!(counted, e.scores.n);
    assert_eq!(correct as f64 / e.scores.n as f64, e.scores.accuracy);
    assert_eq!(e.scores.classes.len(), 10);
    assert!(e.report_text.contains("weighted avg"));
    assert_eq!(round_trip(&e), e);
}

#[test]
fn a_dataset_description_written_before_the_types_reads_and_round_trips() {
    let d: DatasetRecord = fixture("data.json");
    assert_eq!((d.train.count, d.test.count), (60_000, 10_000));
    assert_eq!((d.test.rows, d.test.cols), (28, 28));
    assert_eq!(d.classes.len(), 10);
    assert_eq!(d.train.histogram, vec![6_000; 10]);
    assert_eq!(round_trip(&d), d);
}

#[test]
fn names_parse_to_their_choices_and_refuse_others() {
    assert_eq!("logits".parse::<Head>(), Ok(Head::Logits));
    assert_eq!("probabilities".parse::<Head>(), Ok(Head::Softmax));
    assert_eq!("flax".parse::<Preset>(), Ok(Preset::Flax));
    let err: UnknownName = "relu".parse::<Head>().expect_err("not a head");
    assert_eq!(
        err.to_string(),
        "unknown output head \"relu\" (expected softmax or logits)"
    );
    assert!("Keras".parse::<Preset>().is_err(), "names are lowercase");
    for head in [Head::Softmax, Head::Logits] {
        assert_eq!(Head::from(Outputs::from(head)), head);
        assert_eq!(head.to_string().parse::<Head>(), Ok(head));
    }
    assert_eq!(Outputs::from(Head::Softmax).name(), "probabilities");
}
