//! The report in a real browser: headless Chromium opens a copy of `report.html` with a small
//! check script injected, and the script writes what it found into the page, which Chromium
//! prints with `--dump-dom`. No driver, no network, no extra crate.
//!
//! Checked: every image loaded (`complete` and `naturalWidth > 0`), nothing reached the console
//! as an error (wrapped `console.error`, `window.onerror`, failed resource loads, and Chromium's
//! own console log on stderr, where any message counts), and every in-page link (the table of contents first of all)
//! points at an element that exists. The sections of [`REQUIRED`] (the per-class summary and
//! the faithfulness table) must be there, each with a table of at least one row, its figures,
//! and a number in every number cell. Without Chromium the check says so and is skipped, never
//! passed.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sections the report must show (a level-2 heading containing the text), each with a table
/// of at least one row whose number cells all hold numbers, and at least one figure.
pub const REQUIRED: [&str; 2] = ["Per-class summary", "Faithfulness"];

/// How long Chromium may take to open and check the report.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The result of a browser check that ran (or could not run).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held; the text says what was checked.
    Passed(String),
    /// No browser to run; the text says why.
    Skipped(String),
}

/// Runs first in the page: collects errors, then on `load` writes the findings as JSON into
/// `<pre id="xtask-check">`.
const CHECK_SCRIPT: &str = r#"<script>
(function () {
  var errors = [];
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) {
      errors.push("failed to load <" + t.tagName.toLowerCase() + "> " +
        (t.getAttribute("src") || t.getAttribute("href") || ""));
    } else {
      errors.push("script error: " + e.message);
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + e.reason);
  });
  window.addEventListener("load", function () {
    var list = function (q) { return Array.prototype.slice.call(document.querySelectorAll(q)); };
    var images = list("img");
    var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
      .map(function (i) { return i.getAttribute("src"); });
    var target = function (a) {
      return document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1)));
    };
    var toc = list("nav a[href^='#']");
    var links = list("a[href^='#']");
    var unresolved = links.filter(function (a) { return !target(a); })
      .map(function (a) { return a.getAttribute("href"); });
    var sections = {}, current = null;
    list("body > *").forEach(function (el) {
      if (el.tagName === "H2") {
        current = sections[el.textContent] = { tables: 0, rows: 0, images: 0, bad: [] };
      } else if (current) {
        current.images += el.querySelectorAll("img").length;
        if (el.tagName === "TABLE") {
          current.tables += 1;
          current.rows += el.querySelectorAll("tr").length - 1;
          Array.prototype.forEach.call(el.querySelectorAll("td.n"), function (td) {
            var t = td.textContent.replace(/,/g, "");
            if (!/^-?\d+(\.\d+)?(e-?\d+)?$/.test(t) || !isFinite(parseFloat(t))) {
              current.bad.push(td.textContent);
            }
          });
        }
      }
    });
    var pre = document.createElement("pre");
    pre.id = "xtask-check";
    pre.textContent = JSON.stringify({
      images: images.length, broken: broken, errors: errors,
      toc: toc.length, links: links.length, unresolved: unresolved, sections: sections
    });
    document.body.appendChild(pre);
  });
})();
</script>
"#;

/// Chromium: `$CHROMIUM` when set, else the first of the usual names on PATH.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&paths).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// Open `report` in headless Chromium and check images, console and in-page links.
pub fn check_report(report: &Path) -> Result<Outcome> {
    let Some(chromium) = find_chromium() else {
        return Ok(Outcome::Skipped(
            "Chromium not found (install the Debian package `chromium`, or set CHROMIUM to a Chrome binary)".into(),
        ));
    };
    let html =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let dir = report.parent().unwrap_or(Path::new("."));
    // The copy sits beside the report so its relative image links resolve the same way.
    let copy = dir.join(".report_check.html");
    std::fs::write(&copy, inject(&html)).with_context(|| format!("writing {}", copy.display()))?;
    let profile = temp_profile()?;
    let run = run_chromium(&chromium, &copy, &profile);
    let _ = std::fs::remove_file(&copy);
    let _ = std::fs::remove_dir_all(&profile);
    let (dom, stderr) = run?;
    let found = parse_result(&dom).with_context(|| {
        format!(
            "Chromium did not report the check; its stderr ends with:\n{}",
            tail(&stderr, 20)
        )
    })?;
    judge(&found, &console_errors(&stderr))
}

/// The report with the check script as the first thing in `<head>`.
fn inject(html: &str) -> String {
    match html.find("<head>") {
        Some(i) => format!("{}{CHECK_SCRIPT}{}", &html[..i + 6], &html[i + 6..]),
        None => format!("{CHECK_SCRIPT}{html}"),
    }
}

/// A new, empty Chromium profile directory.
fn temp_profile() -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("xtask-chromium-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Run Chromium on `page` with `--dump-dom`, at most [`TIMEOUT`]; returns (stdout, stderr).
fn run_chromium(chromium: &Path, page: &Path, profile: &Path) -> Result<(String, String)> {
    let page = std::fs::canonicalize(page)?;
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c.arg("--dump-dom")
        .arg(format!("file://{}", page.display()));
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout ends Chromium's helper processes too.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c
        .spawn()
        .with_context(|| format!("starting {}", chromium.display()))?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let t0 = Instant::now();
    while child.try_wait()?.is_none() {
        if t0.elapsed() > TIMEOUT {
            crate::sh::kill_group(&mut child);
            bail!("Chromium did not finish within {} s", TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A helper process still holding the pipes must not hold us: wait a little, then end the
    // group.
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = || deadline.saturating_duration_since(Instant::now());
    let (stdout, stderr) = (out.recv_timeout(left()), err.recv_timeout(left()));
    if stdout.is_err() || stderr.is_err() {
        crate::sh::kill_group(&mut child);
    }
    Ok((stdout.unwrap_or_default(), stderr.unwrap_or_default()))
}

/// Read a child's pipe to the end on a thread (so a full pipe never blocks the child); the
/// text arrives on the returned channel.
fn reader<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// The JSON the check script left in `<pre id="xtask-check">`.
fn parse_result(dom: &str) -> Result<Value> {
    let start = dom
        .find("<pre id=\"xtask-check\">")
        .context("no <pre id=\"xtask-check\"> in the dumped page")?;
    let body = &dom[start + "<pre id=\"xtask-check\">".len()..];
    let end = body.find("</pre>").context("unterminated check result")?;
    let text = body[..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&text).context("parsing the check result")
}

/// Console messages Chromium logged (`--enable-logging=stderr` logs every level as
/// `INFO:CONSOLE`). The report has no scripts of its own and the check script writes nothing
/// to the console, so any message at all is counted.
fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(|l| l.trim().to_string())
        .collect()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Pass or fail from what the page and Chromium's log said.
fn judge(found: &Value, logged: &[String]) -> Result<Outcome> {
    let count = |k: &str| found.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut problems = Vec::new();
    let broken = strings(found, "broken");
    if !broken.is_empty() {
        problems.push(format!("images that did not load: {broken:?}"));
    }
    let errors: Vec<String> = strings(found, "errors")
        .into_iter()
        .chain(logged.iter().cloned())
        .collect();
    if !errors.is_empty() {
        problems.push(format!("console errors: {errors:?}"));
    }
    let unresolved = strings(found, "unresolved");
    if !unresolved.is_empty() {
        problems.push(format!("in-page links with no target: {unresolved:?}"));
    }
    if count("images") == 0 {
        problems.push("the page has no images".into());
    }
    if count("toc") == 0 {
        problems.push("the page has no table of contents".into());
    }
    problems.extend(section_problems(found));
    if !problems.is_empty() {
        bail!("the report failed in Chromium: {}", problems.join("; "));
    }
    Ok(Outcome::Passed(format!(
        "{} images loaded, no console errors, {} table-of-contents links and {} in-page links in all resolve, sections {} shown with tables, numbers and figures",
        count("images"),
        count("toc"),
        count("links"),
        REQUIRED.join(" and ")
    )))
}

/// What is wrong with the [`REQUIRED`] sections, as the page showed them.
fn section_problems(found: &Value) -> Vec<String> {
    let sections = found.get("sections").and_then(Value::as_object);
    let mut problems = Vec::new();
    for want in REQUIRED {
        let Some(sec) = sections
            .and_then(|s| s.iter().find(|(h, _)| h.contains(want)))
            .map(|(_, v)| v)
        else {
            problems.push(format!("no section \"{want}\""));
            continue;
        };
        let count = |k: &str| sec.get(k).and_then(Value::as_u64).unwrap_or(0);
        if count("tables") == 0 || count("rows") == 0 {
            problems.push(format!("section \"{want}\" has no table rows"));
        }
        if count("images") == 0 {
            problems.push(format!("section \"{want}\" has no figure"));
        }
        let bad = strings(sec, "bad");
        if !bad.is_empty() {
            problems.push(format!(
                "section \"{want}\" shows non-numbers in number cells: {bad:?}"
            ));
        }
    }
    problems
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `cargo xtask test`'s step: check the report, print one line, and say whether it passed
/// (`false` when skipped).
pub fn test_step(report: &Path) -> Result<bool> {
    eprintln!("==> headless Chromium: {}", report.display());
    match check_report(report)? {
        Outcome::Passed(what) => {
            eprintln!("    passed: {what}");
            Ok(true)
        }
        Outcome::Skipped(why) => {
            eprintln!("    SKIPPED (not passed): {why}");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real thing, when Chromium is installed: a made-up report passes, and fails once
    /// one of its images is gone.
    #[test]
    fn a_report_in_chromium() -> Result<()> {
        if find_chromium().is_none() {
            eprintln!("skipped (not passed): Chromium not found");
            return Ok(());
        }
        let dir = std::env::temp_dir().join(format!("xtask-browser-{}", std::process::id()));
        crate::report::tests::fake_report(&dir)?;
        let report = dir.join("report.html");
        assert!(matches!(check_report(&report)?, Outcome::Passed(_)));
        std::fs::remove_file(dir.join("samples/train_0.png"))?;
        let err = check_report(&report)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("samples/train_0.png"), "{err}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn script_goes_first_in_head() {
        let page = inject("<html><head><title>t</title></head><body></body></html>");
        assert!(page.starts_with("<html><head><script>"));
        assert!(page.contains("</script>\n<title>t</title>"));
    }

    #[test]
    fn result_is_read_back_from_the_dom() -> Result<()> {
        let dom = "<body><p>x</p><pre id=\"xtask-check\">{\"images\":3,\"broken\":[],\"errors\":[\"a &lt;b&gt; &amp; c\"],\"toc\":2,\"links\":2,\"unresolved\":[]}</pre></body>";
        let v = parse_result(dom)?;
        assert_eq!(strings(&v, "errors"), vec!["a <b> & c".to_string()]);
        assert!(judge(&v, &[]).is_err());
        assert!(parse_result("<body></body>").is_err());
        Ok(())
    }

    /// The sections part of a passing check result.
    fn sections() -> Value {
        let good = serde_json::json!({"tables": 1, "rows": 3, "images": 1, "bad": []});
        serde_json::json!({"8. Per-class summary of the first 1,000 test images": good, "9. Faithfulness: deletion and insertion": good})
    }

    #[test]
    fn required_sections() {
        let mut v = serde_json::json!({"sections": sections()});
        assert!(section_problems(&v).is_empty());
        v["sections"]["9. Faithfulness: deletion and insertion"]["bad"] = serde_json::json!([""]);
        v["sections"]["8. Per-class summary of the first 1,000 test images"]["images"] = 0.into();
        let p = section_problems(&v);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("non-numbers"), "{p:?}");
        let none = section_problems(&serde_json::json!({"sections": {}}));
        assert_eq!(none.len(), 2);
        assert!(none[0].contains("no section \"Per-class summary\""));
    }

    #[test]
    fn verdicts() -> Result<()> {
        let ok = serde_json::json!({"images": 3, "broken": [], "errors": [], "toc": 2, "links": 2, "unresolved": [], "sections": sections()});
        assert!(matches!(judge(&ok, &[])?, Outcome::Passed(_)));
        assert!(judge(&ok, &["[1:ERROR:CONSOLE(3)] \"boom\"".into()]).is_err());
        let broken = serde_json::json!({"images": 3, "broken": ["a.png"], "errors": [], "toc": 2, "links": 2, "unresolved": [], "sections": sections()});
        assert!(judge(&broken, &[]).is_err());
        let dangling = serde_json::json!({"images": 3, "broken": [], "errors": [], "toc": 2, "links": 2, "unresolved": ["#x"], "sections": sections()});
        assert!(judge(&dangling, &[]).is_err());
        Ok(())
    }

    #[test]
    fn console_lines_are_picked_from_stderr() {
        let log = "[1:ERROR:dbus/bus.cc:405] no bus\n[2:INFO:CONSOLE:1] \"bad\", source: file:///r.html (1)\nother";
        assert_eq!(console_errors(log).len(), 1);
    }
}
