//! Check an output before the work, write it atomically, read it back with a limit.
//!
//! `cargo run --release -p shap-io --example write_safely -- OUT.json` (or `-` for stdout).

use std::path::PathBuf;

use shap_io::{OutputSpec, check_distinct, read_bounded, validate_output, write_atomic};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "example.json".into()),
    );
    // Before any work: the folder exists and is writable, the output is not an input.
    validate_output(&out, OutputSpec::text("OUT"))?;
    check_distinct(&[("OUT", &out)], &[])?;
    // The work, then the write: a reader sees the old file or the whole new one.
    write_atomic(&out, |w| writeln!(w, "{{\"answer\": 42}}"))?;
    if out.as_path() != std::path::Path::new(shap_io::STDOUT) {
        let back = read_bounded(&out, 1 << 20, "a small JSON file")?;
        eprintln!("wrote {} ({} bytes)", out.display(), back.len());
    }
    Ok(())
}
