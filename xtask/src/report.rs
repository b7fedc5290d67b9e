//! `report.md` and `report.html`: the run laid out like the tutorial.
//!
//! The report is a list of [`Block`]s rendered twice, as Markdown and as a self-contained HTML
//! page (figures referenced by relative path, no scripts, no network).

use anyhow::Result;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// One explanation run (`shap-cli explain --json` summary) and how it was asked for.
pub struct Explained {
    /// File stem of its outputs (`<name>.npz`, `.json`, `.png`).
    pub name: String,
    /// `partition` or `permutation`.
    pub algorithm: String,
    /// Masker spec, shap spelling.
    pub masker: String,
    /// `correct` or `wrong`.
    pub group: String,
    /// The JSON summary written by `shap-cli explain --json`.
    pub summary: Value,
}

impl Explained {
    /// One-line note: images, evaluations, worst efficiency error, time.
    pub fn note(&self) -> String {
        let images = self.images();
        let evals: u64 = images
            .iter()
            .filter_map(|i| i.get("evals").and_then(Value::as_u64))
            .sum();
        let eff = images
            .iter()
            .filter_map(|i| i.get("efficiency_error").and_then(Value::as_f64))
            .fold(0.0f64, f64::max);
        let secs = self
            .summary
            .get("total_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        format!(
            "{} images, {evals} evals, max efficiency error {eff:.1e}, {secs:.2} s",
            images.len()
        )
    }

    fn images(&self) -> Vec<&Value> {
        self.summary
            .get("images")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }
}

/// Everything the report shows.
pub struct Report {
    preset: String,
    quick: bool,
    seed: u64,
    /// `shap-cli data --json`.
    pub data: Option<Value>,
    /// The training history JSON.
    pub history: Option<Value>,
    /// `shap-cli evaluate --json`.
    pub evaluation: Option<Value>,
    /// Every explanation run, in order.
    pub explanations: Vec<Explained>,
    /// Step name, time, note.
    pub steps: Vec<(String, Duration, String)>,
}

enum Block {
    H(u8, String),
    P(String),
    Pre(String),
    Img(String, String),
    Table(Vec<String>, Vec<Vec<String>>),
}

impl Report {
    /// An empty report for one run.
    pub fn new(preset: &str, quick: bool, seed: u64) -> Self {
        Self {
            preset: preset.into(),
            quick,
            seed,
            data: None,
            history: None,
            evaluation: None,
            explanations: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Write `report.md` and `report.html` into `dir` (atomically: temp file + rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let blocks = self.blocks(dir);
        write_atomic(&dir.join("report.md"), &render_md(&blocks))?;
        write_atomic(
            &dir.join("report.html"),
            &render_html(&blocks, &self.title()),
        )?;
        Ok(())
    }

    fn title(&self) -> String {
        format!(
            "SHAP values for image classification: {} tutorial{}",
            if self.preset == "flax" {
                "Flax"
            } else {
                "Keras"
            },
            if self.quick { " (quick run)" } else { "" }
        )
    }

    fn blocks(&self, dir: &Path) -> Vec<Block> {
        let mut b = vec![Block::H(1, self.title())];
        b.push(Block::P(format!(
            "Reproduced in Rust with Candle (model) and shap-toolkit (explainers). Preset `{}`, seed {}.{}",
            self.preset,
            self.seed,
            if self.quick { " Quick mode: training on a 6,000-image subset for one epoch and two images per explanation; numbers are not the tutorial's." } else { "" }
        )));

        b.push(Block::H(2, "1. Load the data".into()));
        if let Some(d) = &self.data {
            let source = d.get("source").and_then(Value::as_str).unwrap_or("?");
            let count = |split: &str| {
                d.get(split)
                    .and_then(|s| s.get("count"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            b.push(Block::P(format!(
                "Fashion-MNIST found at: {source}. {} training and {} test images of 28×28 pixels.",
                count("train"),
                count("test")
            )));
            let hist = |split: &str, i: usize| {
                fmt_value(
                    d.get(split)
                        .and_then(|s| s.get("histogram"))
                        .and_then(|h| h.get(i)),
                )
            };
            let rows = d
                .get("classes")
                .and_then(Value::as_array)
                .map(|classes| {
                    classes
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            vec![
                                i.to_string(),
                                c.as_str().unwrap_or("").to_string(),
                                hist("train", i),
                                hist("test", i),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            b.push(Block::Table(
                vec![
                    "label".into(),
                    "class".into(),
                    "train".into(),
                    "test".into(),
                ],
                rows,
            ));
        }

        b.push(Block::H(2, "2. Build and train the model".into()));
        b.push(Block::P(
            "Conv2d(1→32, 3×3, same) + ReLU → Conv2d(32→16, 3×3, same) + ReLU → flatten → Linear(12544→10); 130,394 parameters.".into(),
        ));
        if let Some(h) = &self.history {
            let epochs = h
                .get("epochs")
                .and_then(Value::as_array)
                .or_else(|| h.as_array())
                .cloned()
                .unwrap_or_default();
            let cols = [
                "epoch",
                "train_loss",
                "train_accuracy",
                "test_loss",
                "test_accuracy",
                "seconds",
            ];
            let rows = epochs
                .iter()
                .map(|e| cols.iter().map(|c| fmt_value(e.get(*c))).collect())
                .collect();
            b.push(Block::Table(
                cols.iter().map(|s| s.to_string()).collect(),
                rows,
            ));
        }
        push_img(&mut b, dir, "training_curves.png", "Training curves");

        b.push(Block::H(2, "3. Evaluate".into()));
        if let Some(e) = &self.evaluation {
            if let Some(acc) = e.get("accuracy").and_then(Value::as_f64) {
                b.push(Block::P(format!("Test accuracy: **{acc:.4}**")));
            }
            if let Some(text) = e.get("report_text").and_then(Value::as_str) {
                b.push(Block::P("Classification report:".into()));
                b.push(Block::Pre(text.to_string()));
            }
            if let Some(text) = e.get("confusion_text").and_then(Value::as_str) {
                b.push(Block::P(
                    "Confusion matrix (rows: true class, columns: predicted):".into(),
                ));
                b.push(Block::Pre(text.to_string()));
            }
        }
        push_img(&mut b, dir, "confusion_matrix.png", "Confusion matrix");

        let sections = [
            (
                "partition",
                "correct",
                "4. Partition explainer: correct predictions",
            ),
            (
                "partition",
                "wrong",
                "5. Partition explainer: wrong predictions",
            ),
            (
                "permutation",
                "correct",
                "6. Permutation explainer: correct predictions",
            ),
            (
                "permutation",
                "wrong",
                "7. Permutation explainer: wrong predictions",
            ),
        ];
        for (alg, group, heading) in sections {
            b.push(Block::H(2, heading.into()));
            for e in self
                .explanations
                .iter()
                .filter(|e| e.algorithm == alg && e.group == group)
            {
                b.push(Block::H(3, format!("Masker `{}`", e.masker)));
                b.push(Block::P(e.note()));
                let cols = [
                    "image",
                    "true",
                    "predicted",
                    "probability",
                    "explained classes",
                    "evals",
                    "efficiency error",
                    "seconds",
                ];
                let rows = e
                    .images()
                    .iter()
                    .map(|i| {
                        vec![
                            fmt_value(i.get("index")),
                            fmt_value(i.get("true_name")),
                            fmt_value(i.get("predicted_name")),
                            fmt_value(i.get("probability")),
                            i.get("class_names")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                })
                                .unwrap_or_default(),
                            fmt_value(i.get("evals")),
                            fmt_value(i.get("efficiency_error")),
                            fmt_value(i.get("seconds")),
                        ]
                    })
                    .collect();
                b.push(Block::Table(
                    cols.iter().map(|s| s.to_string()).collect(),
                    rows,
                ));
                push_img(
                    &mut b,
                    dir,
                    &format!("{}.png", e.name),
                    &format!("{} {} ({})", e.algorithm, e.group, e.masker),
                );
            }
        }

        b.push(Block::H(2, "Step times".into()));
        let rows = self
            .steps
            .iter()
            .map(|(n, d, note)| vec![n.clone(), format!("{:.1}", d.as_secs_f64()), note.clone()])
            .collect();
        b.push(Block::Table(
            vec!["step".into(), "seconds".into(), "note".into()],
            rows,
        ));
        b
    }
}

fn push_img(b: &mut Vec<Block>, dir: &Path, file: &str, alt: &str) {
    if dir.join(file).is_file() {
        b.push(Block::Img(file.into(), alt.into()));
    } else {
        b.push(Block::P(format!("({file} was not produced)")));
    }
}

fn fmt_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) if f != 0.0 && f.abs() < 1e-3 => format!("{f:.1e}"),
            (_, _, Some(f)) => format!("{f:.4}"),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

fn render_md(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::H(l, t) => {
                let _ = writeln!(s, "{} {t}\n", "#".repeat(usize::from(*l)));
            }
            Block::P(t) => {
                let _ = writeln!(s, "{t}\n");
            }
            Block::Pre(t) => {
                let _ = writeln!(s, "```text\n{t}\n```\n");
            }
            Block::Img(f, alt) => {
                let _ = writeln!(s, "![{alt}]({f})\n");
            }
            Block::Table(h, rows) => {
                let _ = writeln!(s, "| {} |", h.join(" | "));
                let _ = writeln!(s, "|{}", "---|".repeat(h.len()));
                for r in rows {
                    let _ = writeln!(s, "| {} |", r.join(" | "));
                }
                s.push('\n');
            }
        }
    }
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline `code` and **bold** for paragraphs (the only Markdown the report uses).
fn inline(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(t).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<b>{p}</b>");
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

fn render_html(blocks: &[Block], title: &str) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
         body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th{{background:#f4f4f4}}pre{{background:#f7f7f7;padding:1em;overflow-x:auto}}img{{max-width:100%;border:1px solid #eee}}\
         </style></head><body>\n",
        esc(title)
    );
    for b in blocks {
        match b {
            Block::H(l, t) => {
                let _ = writeln!(s, "<h{l}>{}</h{l}>", inline(t));
            }
            Block::P(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Pre(t) => {
                let _ = writeln!(s, "<pre>{}</pre>", esc(t));
            }
            Block::Img(f, alt) => {
                let _ = writeln!(
                    s,
                    "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                    esc(f),
                    esc(alt),
                    esc(alt)
                );
            }
            Block::Table(h, rows) => {
                s.push_str("<table><tr>");
                for c in h {
                    let _ = write!(s, "<th>{}</th>", esc(c));
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        let _ = write!(s, "<td>{}</td>", esc(c));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}

/// Write `text` to `path` with the workspace's one output writer (`shap_io`: temporary file
/// + rename; devices, FIFOs and symlinks are never replaced).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    Ok(shap_io::write_bytes(path, text.as_bytes())?)
}
