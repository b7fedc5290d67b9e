//! The report's building blocks and their two renderings: Markdown (GitHub flavour) and one
//! offline HTML page (inline style, no scripts, figures by relative path).
//!
//! Headings get GitHub's anchors (`slug`), in both renderings, so the table of contents links
//! the same way in `report.md` on a forge and in `report.html` in a browser.

use std::fmt::Write as _;

/// A table: header, rows, and which columns hold numbers (right-aligned; text is left-aligned).
pub struct Table {
    head: Vec<String>,
    numeric: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names; `numeric` lists the number columns.
    pub fn new(head: &[&str], numeric: &[usize]) -> Self {
        Self {
            head: head.iter().map(|s| s.to_string()).collect(),
            numeric: numeric.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Append a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn is_numeric(&self, col: usize) -> bool {
        self.numeric.contains(&col)
    }
}

/// One piece of the report.
pub enum Block {
    /// A heading of level 1..=3.
    H(u8, String),
    /// A paragraph (inline `code` and **bold** allowed).
    P(String),
    /// Preformatted text.
    Pre(String),
    /// A shell command.
    Cmd(String),
    /// A figure: file (relative) and caption.
    Img(String, String),
    /// A table.
    Table(Table),
    /// Small images with captions, in a grid.
    Grid(Vec<(String, String)>),
    /// The table of contents (every level-2 heading).
    Toc,
}

/// GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens.
pub fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every heading's anchor, made unique the way GitHub does (`-1`, `-2`, ... on repeats).
fn anchors(blocks: &[Block]) -> Vec<Option<String>> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    blocks
        .iter()
        .map(|b| match b {
            Block::H(_, t) => {
                let base = slug(t);
                let n = seen.entry(base.clone()).or_insert(0);
                let id = if *n == 0 { base } else { format!("{base}-{n}") };
                *n += 1;
                Some(id)
            }
            _ => None,
        })
        .collect()
}

/// The level-2 headings with their anchors.
fn toc_entries<'a>(blocks: &'a [Block], ids: &'a [Option<String>]) -> Vec<(&'a str, &'a str)> {
    blocks
        .iter()
        .zip(ids)
        .filter_map(|(b, id)| match (b, id) {
            (Block::H(2, t), Some(id)) => Some((t.as_str(), id.as_str())),
            _ => None,
        })
        .collect()
}

/// Split a long command before its flags, with shell line continuations.
fn wrap_command(cmd: &str) -> String {
    if cmd.len() <= 90 {
        return cmd.to_string();
    }
    cmd.replace(" --", " \\\n    --")
}

/// The report as GitHub-flavoured Markdown.
pub fn render_md(blocks: &[Block]) -> String {
    let ids = anchors(blocks);
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
            Block::Cmd(c) => {
                let _ = writeln!(s, "```sh\n{}\n```\n", wrap_command(c));
            }
            Block::Img(f, alt) => {
                let _ = writeln!(s, "![{alt}]({f})\n\n*{alt}*\n");
            }
            Block::Table(t) => md_table(&mut s, t),
            Block::Grid(cells) => md_grid(&mut s, cells),
            Block::Toc => {
                s.push_str("**Contents**\n\n");
                for (t, id) in toc_entries(blocks, &ids) {
                    let _ = writeln!(s, "- [{t}](#{id})");
                }
                s.push('\n');
            }
        }
    }
    s
}

fn md_table(s: &mut String, t: &Table) {
    let _ = writeln!(s, "| {} |", t.head.join(" | "));
    s.push('|');
    for c in 0..t.head.len() {
        s.push_str(if t.is_numeric(c) { "---:|" } else { "---|" });
    }
    s.push('\n');
    for r in &t.rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s.push('\n');
}

fn md_grid(s: &mut String, cells: &[(String, String)]) {
    for chunk in cells.chunks(10) {
        let _ = writeln!(s, "|{}", " |".repeat(chunk.len()));
        let _ = writeln!(s, "|{}", "---|".repeat(chunk.len()));
        let row: Vec<String> = chunk
            .iter()
            .map(|(f, c)| format!("![{c}]({f})<br>{c}"))
            .collect();
        let _ = writeln!(s, "| {} |\n", row.join(" | "));
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline `code`, **bold** and *italic* for paragraphs (the only Markdown the report uses).
fn inline(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(t).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
            continue;
        }
        for (j, p) in part.split("**").enumerate() {
            let p = italic(p);
            if j % 2 == 1 {
                let _ = write!(out, "<b>{p}</b>");
            } else {
                out.push_str(&p);
            }
        }
    }
    out
}

fn italic(t: &str) -> String {
    let parts: Vec<&str> = t.split('*').collect();
    if parts.len().is_multiple_of(2) {
        return t.to_string(); // unbalanced: a literal asterisk
    }
    let mut out = String::new();
    for (k, p) in parts.iter().enumerate() {
        if k % 2 == 1 {
            let _ = write!(out, "<i>{p}</i>");
        } else {
            out.push_str(p);
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
pre{background:#f7f7f7;padding:1em;overflow-x:auto}pre.cmd{background:#1f2430;color:#e6e6e6}\
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}figcaption{color:#555;font-size:90%}\
nav{background:#f7f7f7;padding:.5em 1.5em;border-left:4px solid #88a}\
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0;width:96px;text-align:center}\
.grid img{width:84px;height:84px;image-rendering:pixelated}";

/// The report as one offline HTML page.
pub fn render_html(blocks: &[Block], title: &str) -> String {
    let ids = anchors(blocks);
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n",
        esc(title)
    );
    for (b, id) in blocks.iter().zip(&ids) {
        match b {
            Block::H(l, t) => {
                let id = id.as_deref().unwrap_or_default();
                let _ = writeln!(s, "<h{l} id=\"{}\">{}</h{l}>", esc(id), inline(t));
            }
            Block::P(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Pre(t) => {
                let _ = writeln!(s, "<pre>{}</pre>", esc(t));
            }
            Block::Cmd(c) => {
                let _ = writeln!(
                    s,
                    "<pre class=\"cmd\"><code>{}</code></pre>",
                    esc(&wrap_command(c))
                );
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
            Block::Table(t) => html_table(&mut s, t),
            Block::Grid(cells) => html_grid(&mut s, cells),
            Block::Toc => {
                s.push_str("<nav id=\"contents\"><b>Contents</b><ul>\n");
                for (t, id) in toc_entries(blocks, &ids) {
                    let _ = writeln!(s, "<li><a href=\"#{}\">{}</a></li>", esc(id), inline(t));
                }
                s.push_str("</ul></nav>\n");
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}

fn html_table(s: &mut String, t: &Table) {
    let class = |c: usize| if t.is_numeric(c) { " class=\"n\"" } else { "" };
    s.push_str("<table><tr>");
    for (c, h) in t.head.iter().enumerate() {
        let _ = write!(s, "<th{}>{}</th>", class(c), esc(h));
    }
    s.push_str("</tr>\n");
    for r in &t.rows {
        s.push_str("<tr>");
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(s, "<td{}>{}</td>", class(c), inline(cell));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

fn html_grid(s: &mut String, cells: &[(String, String)]) {
    s.push_str("<div class=\"grid\">\n");
    for (f, c) in cells {
        let _ = writeln!(
            s,
            "<figure><img src=\"{}\" alt=\"{}\" width=\"84\" height=\"84\"><figcaption>{}</figcaption></figure>",
            esc(f),
            esc(c),
            esc(c)
        );
    }
    s.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Block> {
        let mut t = Table::new(&["class", "count"], &[1]);
        t.row(vec!["Coat".into(), "6,000".into()]);
        vec![
            Block::H(1, "Title".into()),
            Block::Toc,
            Block::H(2, "1. Load the data".into()),
            Block::Table(t),
            Block::H(2, "4. Partition: correct".into()),
            Block::H(3, "Masker `blur(28,28)`".into()),
            Block::H(3, "Masker `blur(28,28)`".into()),
            Block::Cmd("shap-cli explain --model m --masker 'blur(28,28)' --top-k 5 --plot a.png --npz a.npz --json a.json".into()),
        ]
    }

    #[test]
    fn slugs_follow_github() {
        assert_eq!(
            slug("4. Partition explainer: correct predictions"),
            "4-partition-explainer-correct-predictions"
        );
        assert_eq!(slug("Masker `blur(28,28)`"), "masker-blur2828");
    }

    #[test]
    fn toc_links_every_section_in_both_renderings() {
        let html = render_html(&sample(), "t");
        assert!(html.contains("<a href=\"#1-load-the-data\">"));
        assert!(html.contains("<h2 id=\"1-load-the-data\">"));
        assert!(html.contains("<h2 id=\"4-partition-correct\">"));
        assert!(html.contains("id=\"masker-blur2828-1\""));
        let md = render_md(&sample());
        assert!(md.contains("- [1. Load the data](#1-load-the-data)"));
    }

    #[test]
    fn text_left_numbers_right() {
        let html = render_html(&sample(), "t");
        assert!(html.contains("<td>Coat</td><td class=\"n\">6,000</td>"));
        assert!(render_md(&sample()).contains("|---|---:|"));
    }

    #[test]
    fn long_commands_wrap_before_flags() {
        let md = render_md(&sample());
        assert!(md.contains("shap-cli explain \\\n    --model m \\\n    --masker 'blur(28,28)'"));
    }
}
