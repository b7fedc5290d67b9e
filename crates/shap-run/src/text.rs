//! Text for a terminal: names and paths read from files shown without control characters,
//! cut to a width, and counted in words.

use std::io::Write;

/// `text` without control characters (each becomes `?`), so that names read from files or
/// paths cannot move the cursor, recolour or clear a terminal (ANSI escape sequences).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// A writer of text that replaces control characters but newline and tab with `?`, so that
/// text from files cannot move the cursor, recolour or clear a terminal. Formatting hands it
/// whole characters; bytes that are not UTF-8 pass through.
pub struct Printable<W: Write>(pub W);

impl<W: Write> Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text)
                if text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t') =>
            {
                let clean: String = text
                    .chars()
                    .map(|c| {
                        if c.is_control() && c != '\n' && c != '\t' {
                            '?'
                        } else {
                            c
                        }
                    })
                    .collect();
                self.0.write_all(clean.as_bytes())?;
                Ok(buf.len())
            }
            _ => self.0.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `text` cut to at most `width` characters, ending in `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `n` and `word`, plural when `n` is not 1 (`1 image`, `2 images`).
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// One explained image in at most `width` characters: source, true -> predicted class, the
/// score (`score` names it: `p`, `logit`), the explained classes (cut to fit), evaluations,
/// efficiency error and time.
pub fn image_line(r: &shap_explain::ImageSummary, score: &str, width: usize) -> String {
    let name = |n: Option<&str>, w: usize| fit(&printable(n.unwrap_or("-")), w);
    let head = format!(
        "  {:<14} {:<10} -> {:<10} {score}={:.4}",
        fit(&printable(&r.source), 14),
        name(r.true_name.as_deref(), 10),
        name(r.predicted_name.as_deref(), 10),
        r.probability.unwrap_or(f64::NAN),
    );
    let time = r
        .seconds
        .map_or("(earlier)".into(), |t| format!("{t:.3} s"));
    let tail = format!("{} evals  err {:.0e}  {time}", r.evals, r.efficiency_error);
    let room = width.saturating_sub(head.chars().count() + tail.chars().count() + 4);
    let classes = fit(&printable(&r.class_names.join(", ")), room.max(1));
    fit(&format!("{head}  {classes}  {tail}"), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_question_marks() {
        assert_eq!(printable("a\x1b[2Jb\n"), "a?[2Jb?");
        let mut out = Printable(Vec::new());
        write!(out, "x\x1b[31m\ny\tz\r").expect("write");
        assert_eq!(String::from_utf8(out.0).expect("utf-8"), "x?[31m\ny\tz?");
    }

    #[test]
    fn text_is_cut_to_width_and_counted_in_words() {
        assert_eq!(fit("trouser", 7), "trouser");
        assert_eq!(fit("trousers", 7), "trouse…");
        assert_eq!(fit("ab", 0), "");
        assert_eq!(fit("ab", 1), "…");
        assert_eq!(count(1, "image"), "1 image");
        assert_eq!(count(0, "image"), "0 images");
        assert_eq!(count(12, "part"), "12 parts");
    }
}
