//! One CLI vocabulary: `--head` (with `--output` as a hidden old name), `--json FILE` with `-`
//! for standard output, short flags, shell completions.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{on_a_terminal, onnx_fixture, shap_cli, text, write_dataset};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn head_and_its_old_name_output() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("e.json");
    let (model, img) = (
        onnx_fixture("tutorial.safetensors"),
        onnx_fixture("images/grey_0.png"),
    );
    for (flag, note) in [("--head", false), ("--output", true)] {
        let out = shap_cli(&[
            "explain",
            "-m",
            &model,
            "--image",
            &img,
            flag,
            "logits",
            "--max-evals",
            "40",
            "--json",
            s(&json),
            "--quiet",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(v["settings"]["outputs"], "logits", "{flag}");
        assert_eq!(
            text(&out.stderr).contains("--output is now called --head"),
            note,
            "{flag}"
        );
    }
    let out = shap_cli(&["explain", "-m", &model, "--image", &img, "--head", "odds"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown choice");
    assert!(
        text(&out.stderr).contains("probabilities"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn data_json_goes_to_a_file_or_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 20, 10);
    let file = dir.path().join("d.json");
    let out = shap_cli(&["data", "--data-dir", s(&data), "--json", s(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["test"]["count"], 10);
    for args in [vec!["--json", "-"], vec!["--json"]] {
        let mut a = vec!["data", "--data-dir", s(&data)];
        a.extend(args);
        let out = shap_cli(&a);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["train"]["count"], 20);
    }
}

#[test]
fn completions_for_known_shells_and_an_error_for_others() {
    for (shell, needle) in [
        ("bash", "complete -F _shap__cli"),
        ("zsh", "#compdef shap-cli"),
        ("fish", "complete -c shap-cli"),
    ] {
        let out = shap_cli(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(needle), "{shell}");
        assert!(text(&out.stdout).contains("explain"), "{shell}");
    }
    let out = shap_cli(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid value 'tcsh'"));
    assert!(text(&out.stderr).contains("bash, elvish, fish, powershell, zsh"));
    assert!(out.stdout.is_empty());
}

/// What bash offers on Tab after `words` (the last one being completed), by running the
/// generated completion function as bash's `complete -F` calls it.
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = words[cword - 1];
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _shap__cli shap-cli '{}' '{prev}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_subcommands_flags_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shap-cli.bash");
    let out = shap_cli(&["completions", "bash"]);
    assert!(out.status.success());
    std::fs::write(&script, &out.stdout).unwrap();
    let offers = |words: &[&str]| bash_completes(&script, words);
    assert_eq!(offers(&["shap-cli", "expl"]), ["explain"]);
    assert_eq!(offers(&["shap-cli", "explain", "--mas"]), ["--masker"]);
    let algorithms = offers(&["shap-cli", "explain", "--algorithm", ""]);
    assert_eq!(algorithms, ["partition", "permutation"]);
    let engines = offers(&["shap-cli", "explain", "--onnx-engine", ""]);
    assert_eq!(engines, ["auto", "onnxruntime", "tract"]);
    assert!(offers(&["shap-cli", "train", "--"]).contains(&"--epochs".to_string()));
}

/// Whether `shell` is installed; when not, say the test is skipped (CI installs it).
fn have(shell: &str) -> bool {
    let ok = std::process::Command::new(shell)
        .arg("-c")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: {shell} is not installed");
    }
    ok
}

#[test]
fn fish_completes_flags_and_values() {
    if !have("fish") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shap-cli.fish");
    std::fs::write(&script, shap_cli(&["completions", "fish"]).stdout).unwrap();
    let offers = |line: &str| {
        let program = format!("source '{}'; complete -C '{line}'", script.display());
        let out = std::process::Command::new("fish")
            .args(["-c", &program])
            .output()
            .unwrap();
        // `complete -C` prints one candidate per line, a tab and its description after it.
        let words: Vec<String> = text(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect();
        words
    };
    assert_eq!(offers("shap-cli explain --mas"), ["--masker"]);
    assert_eq!(
        offers("shap-cli explain --algorithm "),
        ["partition", "permutation"]
    );
    assert_eq!(offers("shap-cli expl"), ["explain"]);
}

#[test]
fn zsh_completes_flags() {
    if !have("zsh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("_shap-cli"),
        shap_cli(&["completions", "zsh"]).stdout,
    )
    .unwrap();
    // An interactive zsh on a pseudo-terminal (zsh/zpty) with the script on fpath: type a
    // partial flag and Tab, then read back the line as completed.
    let program = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT="> "; fpath=({} $fpath); autoload -U compinit; compinit -u -D'
sleep 1
zpty -w -n z $'shap-cli explain --mas\t'
sleep 2
all=""
while zpty -r -t z chunk; do all+=$chunk; done
print -r -- "$all"
zpty -d z"#,
        dir.path().display()
    );
    let out = std::process::Command::new("timeout")
        .args(["60", "zsh", "-f", "-c", &program])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(shown.contains("shap-cli explain --masker"), "{shown:?}");
}

#[test]
fn the_top_level_help_says_what_the_tool_is_for_in_pipeline_order() {
    let out = shap_cli(&["--help"]);
    let help = text(&out.stdout);
    assert!(
        help.starts_with("Explain image classifiers with SHAP"),
        "{help}"
    );
    let at = |c: &str| help.find(&format!("\n  {c} ")).unwrap_or(usize::MAX);
    let order = ["data", "train", "evaluate", "mask", "explain", "plot"].map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{help}");
    let out = shap_cli(&[
        "explain", "--device", "tpu", "-m", "x.onnx", "--image", "x.png",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected cpu, cuda, cuda:N, metal or metal:N"));
}

#[test]
fn evaluate_shows_progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_dataset(&data, 10, 30);
    let model = onnx_fixture("tutorial.safetensors");
    let args = ["evaluate", "-m", &model, "--data-dir", s(&data)];
    let shown = on_a_terminal(&args);
    assert!(shown.contains("30/30 test images"), "{shown}");
    let piped = shap_cli(&args);
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert!(!text(&piped.stderr).contains("test images"));
}

#[test]
fn thread_counts_the_pool_cannot_take_are_clear_errors() {
    // RAYON_NUM_THREADS=2500 used to panic inside rayon (exit 101) before any command ran.
    for var in ["2500", "0", "x"] {
        let out = common::cli_command(&["evaluate", "--model", "/nonexistent.safetensors"])
            .env("RAYON_NUM_THREADS", var)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}: {err}");
        assert!(
            err.contains("give a thread count from 1 to 1024"),
            "{var}: {err}"
        );
        assert!(!err.contains("internal failure"), "{err}");
    }
}
