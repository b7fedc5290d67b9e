//! Explanations at scale: `--range`, `--shard I/N` (and `auto/N` from a scheduler's
//! variable) in separate processes, and `merge`, which must give exactly one run's result.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::Synthetic as Setup;
use common::{cli_command, s, shap_cli, text};
use shap_explain::Explanation;
/// 40 test images.
fn setup() -> Setup {
    common::synthetic(40)
}

impl Setup {
    /// `explain` over test images 3..13 with `extra` flags, into `npz`.
    fn explain(&self, npz: &Path, extra: &[&str], env: Option<(&str, &str)>) -> Output {
        let mut args = vec![
            "explain",
            "-m",
            s(&self.model),
            "--data-dir",
            s(&self.data),
            "--range",
            "3..13",
            "--npz",
            s(npz),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let mut c = cli_command(&args);
        c.env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID");
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn fails_with(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(needle),
        "{needle:?}: {}",
        text(&out.stderr)
    );
}

/// A value clap's parser refuses: exit 2, the problem named, nothing run.
fn usage_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(needle),
        "{needle:?}: {}",
        text(&out.stderr)
    );
}

fn same_results(a: &Explanation, b: &Explanation) {
    assert_eq!(a.values, b.values);
    assert_eq!(a.base_values, b.base_values);
    assert_eq!(a.fx, b.fx);
    assert_eq!(a.output_indices, b.output_indices);
    assert_eq!(a.output_names, b.output_names);
    assert_eq!(a.data, b.data);
    assert_eq!(a.images, b.images);
    assert_eq!(a.evals, b.evals);
    let run = |e: &Explanation| {
        let mut v = e.settings.clone();
        v.retain(|s| s.name != "incremental_work_fraction");
        v
    };
    assert_eq!(run(a), run(b));
}

#[test]
fn shards_in_separate_processes_merge_into_one_run_bit_for_bit() {
    let t = setup();
    for algorithm in [
        &["--algorithm", "partition", "--max-evals", "60"][..],
        &["--algorithm", "permutation", "--max-evals", "1569"],
    ] {
        let single = t.path("single.npz");
        ok(&t.explain(&single, algorithm, None));
        let mut parts = Vec::new();
        for i in 0..3 {
            let part = t.path(&format!("part{i}.npz"));
            let mut extra = algorithm.to_vec();
            let shard = format!("{i}/3");
            extra.extend(["--shard", &shard]);
            ok(&t.explain(&part, &extra, None));
            parts.push(part);
        }
        let merged = t.path("merged.npz");
        // In any order.
        ok(&shap_cli(&[
            "merge",
            "-o",
            s(&merged),
            s(&parts[2]),
            s(&parts[0]),
            s(&parts[1]),
        ]));
        let one = Explanation::load_npz(&single).unwrap();
        let all = Explanation::load_npz(&merged).unwrap();
        assert_eq!(all.num_images, 10);
        assert_eq!(all.images[0].index, Some(3));
        same_results(&one, &all);
    }
}

#[test]
fn auto_shards_read_the_schedulers_variable() {
    let t = setup();
    let by_hand = t.path("hand.npz");
    ok(&t.explain(&by_hand, &["--shard", "1/2"], None));
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        let auto = t.path("auto.npz");
        let out = t.explain(&auto, &["--shard", "auto/2"], Some((var, "1")));
        ok(&out);
        let note = format!("shard 1/2 from {var}");
        assert_eq!(
            text(&out.stderr).matches(&note).count(),
            1,
            "{}",
            text(&out.stderr)
        );
        let (a, b) = (
            Explanation::load_npz(&by_hand).unwrap(),
            Explanation::load_npz(&auto).unwrap(),
        );
        same_results(&a, &b);
    }
}

#[test]
fn bad_ranges_shards_and_merges_are_clear_errors() {
    let t = setup();
    let npz = t.path("e.npz");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "-m",
            s(&t.model),
            "--data-dir",
            s(&t.data),
            "--npz",
            s(&npz),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let mut c = cli_command(&args);
        c.env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID");
        c.output().unwrap()
    };
    usage_error(&run(&["--range", "5..5"]), "expected A..B with A < B");
    usage_error(&run(&["--range", "9..2"]), "expected A..B with A < B");
    fails_with(
        &run(&["--range", "30..41"]),
        "goes past the test set (40 images)",
    );
    fails_with(
        &run(&["--range", "0..4", "--shard", "4/4"]),
        "the index must be below 4",
    );
    usage_error(
        &run(&["--range", "0..4", "--shard", "0/0"]),
        "expected I/N or auto/N with N >= 1",
    );
    fails_with(
        &run(&["--range", "0..4", "--shard", "auto/2"]),
        "needs JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID",
    );
    fails_with(
        &run(&["--range", "0..4", "--shard", "0/2", "--shap-compat"]),
        "cannot be combined with --shap-compat",
    );
    assert!(!npz.exists());
    // Merging: a missing part, a part twice, parts of different runs, a whole run.
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| {
            let p = t.path(&format!("p{i}.npz"));
            ok(&t.explain(&p, &["--shard", &format!("{i}/2")], None));
            p
        })
        .collect();
    let other = t.path("other.npz");
    ok(&t.explain(&other, &["--shard", "1/2", "--seed", "7"], None));
    let whole = t.path("whole.npz");
    ok(&t.explain(&whole, &[], None));
    let out = t.path("m.npz");
    let merge = |p: &[&Path]| {
        let mut a = vec!["merge", "-o", s(&out)];
        a.extend(p.iter().map(|x| s(x)));
        shap_cli(&a)
    };
    fails_with(
        &merge(&[&parts[0]]),
        "images 5..10 of the selection are in no part",
    );
    fails_with(
        &merge(&[&parts[1]]),
        "images 0..5 of the selection are in no part",
    );
    fails_with(
        &merge(&[&parts[0], &parts[0], &parts[1]]),
        "images 0..5 are in two parts",
    );
    fails_with(&merge(&[&parts[0], &other]), "with seed = 7");
    fails_with(&merge(&[&whole]), "not a part of a sharded run");
    assert!(!out.exists());
}

/// `explain` with `args` and no scheduler variables but `env`.
fn explain_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = cli_command(args);
    c.env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn parts_of_different_selections_are_not_merged() {
    let t = setup();
    let part = |name: &str, range: &str, shard: &str| {
        let p = t.path(name);
        ok(&explain_with(
            &[
                "explain",
                "-m",
                s(&t.model),
                "--data-dir",
                s(&t.data),
                "--range",
                range,
                "--shard",
                shard,
                "--max-evals",
                "30",
                "--npz",
                s(&p),
                "--quiet",
            ],
            &[],
        ));
        p
    };
    let (a, b) = (
        part("a.npz", "0..20", "0/2"),
        part("b.npz", "20..40", "1/2"),
    );
    let out = t.path("m.npz");
    fails_with(
        &shap_cli(&["merge", "-o", s(&out), s(&a), s(&b)]),
        "come from different selections",
    );
    assert!(!out.exists());
    // The parts of one selection still merge.
    let b = part("b0.npz", "0..20", "1/2");
    ok(&shap_cli(&["merge", "-o", s(&out), s(&a), s(&b)]));
    assert_eq!(Explanation::load_npz(&out).unwrap().num_images, 20);
}

#[test]
fn auto_shards_refuse_two_disagreeing_variables_and_ignore_empty_ones() {
    let t = setup();
    let npz = t.path("e.npz");
    let both = [("JOB_COMPLETION_INDEX", "0"), ("SLURM_ARRAY_TASK_ID", "1")];
    let out = t.explain(&npz, &["--shard", "auto/2"], None);
    fails_with(&out, "needs JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID");
    let run = |env: &[(&str, &str)]| {
        let args = [
            "explain",
            "-m",
            s(&t.model),
            "--data-dir",
            s(&t.data),
            "--range",
            "3..13",
            "--shard",
            "auto/2",
            "--max-evals",
            "30",
            "--npz",
            s(&npz),
            "--quiet",
        ];
        explain_with(&args, env)
    };
    fails_with(
        &run(&both),
        "JOB_COMPLETION_INDEX=0 and SLURM_ARRAY_TASK_ID=1",
    );
    assert!(!npz.exists());
    let out = run(&[("JOB_COMPLETION_INDEX", ""), ("SLURM_ARRAY_TASK_ID", "1")]);
    ok(&out);
    assert!(text(&out.stderr).contains("shard 1/2 from SLURM_ARRAY_TASK_ID"));
    let out = run(&[("JOB_COMPLETION_INDEX", "1"), ("SLURM_ARRAY_TASK_ID", "1")]);
    ok(&out);
    assert!(text(&out.stderr).contains("shard 1/2 from JOB_COMPLETION_INDEX"));
}

#[test]
fn a_huge_range_bound_is_too_large_not_misordered() {
    let t = setup();
    let npz = t.path("e.npz");
    let out = explain_with(
        &[
            "explain",
            "-m",
            s(&t.model),
            "--data-dir",
            s(&t.data),
            "--range",
            "0..99999999999999999999",
            "--npz",
            s(&npz),
        ],
        &[],
    );
    usage_error(&out, "99999999999999999999 is too large");
}

#[test]
fn a_corrupt_part_is_named_first() {
    let t = setup();
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| {
            let p = t.path(&format!("p{i}.npz"));
            ok(&t.explain(
                &p,
                &["--shard", &format!("{i}/2"), "--max-evals", "30"],
                None,
            ));
            p
        })
        .collect();
    // Flip a byte in the middle of the second part's values (its largest array).
    let mut bytes = std::fs::read(&parts[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&parts[1], bytes).unwrap();
    let out = t.path("m.npz");
    let merged = shap_cli(&["merge", "-o", s(&out), s(&parts[0]), s(&parts[1])]);
    fails_with(&merged, &format!("{}: ", parts[1].display()));
    assert!(
        !text(&merged.stderr).contains(&format!("{}:", out.display())),
        "{}",
        text(&merged.stderr)
    );
    assert!(!out.exists());
}

/// `--range A..B` with `--correct N` / `--wrong N`: the first N such test images of the
/// range, in index order (the real test set, as the README's examples).
#[test]
fn range_composes_with_correct_and_wrong_on_the_real_test_set() {
    let Some(_) = common::real_data() else { return };
    let t = setup();
    let run = |npz: &Path, extra: &[&str]| {
        let mut args = vec![
            "explain",
            "-m",
            s(&t.model),
            "--range",
            "100..160",
            "--top-k",
            "1",
            "--max-evals",
            "20",
            "--npz",
            s(npz),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        explain_with(&args, &[])
    };
    let all = t.path("all.npz");
    ok(&run(&all, &[]));
    let all = Explanation::load_npz(&all).unwrap();
    let hit = |i: &shap_explain::ImageInfo| {
        i.label.as_ref().map(|l| l.index) == i.predicted.as_ref().map(|p| p.class.index)
    };
    let first = |right: bool| -> Vec<Option<usize>> {
        let v = all.images.iter().filter(|i| hit(i) == right);
        v.map(|i| i.index).take(3).collect()
    };
    for (flag, right) in [("--wrong", false), ("--correct", true)] {
        let want = first(right);
        let npz = t.path("some.npz");
        // The seeded model gets some of 100..160 right and some wrong, not contiguously.
        assert!(!want.is_empty(), "{flag}: none in 100..160");
        let n = want.len().to_string();
        ok(&run(&npz, &[flag, &n]));
        let got = Explanation::load_npz(&npz).unwrap();
        let got: Vec<Option<usize>> = got.images.iter().map(|i| i.index).collect();
        assert_eq!(got, want, "{flag} {n} in 100..160");
    }
    assert!(
        !first(false).is_empty(),
        "an untrained model gets some wrong"
    );
}
