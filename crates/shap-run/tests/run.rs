//! The run crate as a library: a run, its resume after an interruption, the refusal of another
//! run's journal, shards merged into the whole run, and the settings a file records.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use common::{Recorder, fixture};
use shap_explain::{Explanation, OutputSelection};
use shap_run::{ExplainRun, Outcome, RunSettings, Shard, explain};

fn done(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Done { .. })
}

#[test]
fn an_interrupted_run_resumes_to_the_same_bytes_and_records_its_settings() {
    let f = fixture(6);
    let (whole, resumed) = (f.path("whole.npz"), f.path("resumed.npz"));
    let report = explain(&f.run(0..6, &whole), &Recorder::new(usize::MAX)).expect("run");
    assert!(done(&report.outcome));
    let e = Explanation::load_npz(&whole).expect("load");
    assert_eq!(e.num_images, 6);
    assert_eq!(
        RunSettings::from_record(&e.settings).expect("settings"),
        report.settings
    );
    assert_eq!(report.settings.seed, 3);
    assert_eq!(report.settings.classes, OutputSelection::TopK(2));

    // Interrupted in the third image: the first chunk (two images) is in the journal.
    let run = f.run(0..6, &resumed);
    let crash = std::panic::catch_unwind(|| explain(&run, &Recorder::new(2)));
    assert!(crash.is_err(), "the run was not interrupted");
    assert!(!resumed.exists());
    let recorder = Recorder::new(usize::MAX);
    let report = explain(&run, &recorder).expect("resume");
    assert!(done(&report.outcome));
    assert!(
        recorder
            .notes()
            .iter()
            .any(|n| n.starts_with("resumed: 1 of 3 chunks")),
        "{:?}",
        recorder.notes()
    );
    assert_eq!(
        recorder.images.load(Ordering::SeqCst),
        4,
        "only the missing chunks"
    );
    let bytes = |p: &Path| std::fs::read(p).expect("read");
    assert!(
        bytes(&whole) == bytes(&resumed),
        "a resumed run gives other bytes"
    );

    // The same run again computes nothing.
    let again = explain(&run, &Recorder::new(0)).expect("again");
    assert!(matches!(again.outcome, Outcome::AlreadyComplete(_)));
}

#[test]
fn a_journal_of_another_run_is_refused_naming_the_difference() {
    let f = fixture(4);
    let npz = f.path("x.npz");
    let run = f.run(0..4, &npz);
    assert!(std::panic::catch_unwind(|| explain(&run, &Recorder::new(2))).is_err());
    let other = ExplainRun { seed: 4, ..run };
    let err = explain(&other, &Recorder::new(usize::MAX))
        .err()
        .expect("refused");
    let text = err.root().to_string();
    assert!(matches!(err.root(), shap_run::Error::Refused(_)), "{err:?}");
    assert_eq!(err.to_string(), "explaining");
    assert!(text.contains("seed = 3, this run has seed = 4"), "{text}");
}

#[test]
fn shards_merge_into_the_whole_run_byte_for_byte() {
    let f = fixture(5);
    let whole = f.path("whole.npz");
    explain(&f.run(0..5, &whole), &Recorder::new(usize::MAX)).expect("whole");
    let parts: Vec<PathBuf> = (0..3).map(|i| f.path(&format!("part-{i}.npz"))).collect();
    for (i, p) in parts.iter().enumerate().rev() {
        let run = ExplainRun {
            shard: Some(Shard {
                index: Some(i),
                count: 3,
            }),
            ..f.run(0..5, p)
        };
        explain(&run, &Recorder::new(usize::MAX)).expect("shard");
    }
    let merged_path = f.path("merged.npz");
    let merged = shap_run::merge(&parts, &merged_path).expect("merge");
    assert_eq!(merged.images, 5);
    let bytes = |p: &Path| std::fs::read(p).expect("read");
    assert!(
        bytes(&whole) == bytes(&merged_path),
        "merged parts differ from the whole run"
    );

    // Two parts of one shard are refused.
    let twice = [parts[0].clone(), parts[0].clone(), parts[1].clone()];
    let err = shap_run::merge(&twice, &f.path("bad.npz"))
        .err()
        .expect("refused");
    assert!(err.root().to_string().contains("in two parts"), "{err}");
}

#[test]
fn settings_are_checked_before_any_work() {
    let f = fixture(2);
    let npz = f.path("x.npz");
    let bad = [
        ExplainRun {
            chunk: Some(0),
            ..f.run(0..2, &npz)
        },
        ExplainRun {
            shap_compat: true,
            shard: "0/2".parse().ok(),
            ..f.run(0..2, &npz)
        },
        ExplainRun {
            outputs: Some(OutputSelection::TopK(11)),
            ..f.run(0..2, &npz)
        },
        ExplainRun {
            max_evals: Some(usize::MAX),
            ..f.run(0..2, &npz)
        },
    ];
    for run in bad {
        let recorder = Recorder::new(0);
        assert!(explain(&run, &recorder).is_err());
        assert!(!npz.exists() && !f.path("x.npz.parts").exists());
    }
}
