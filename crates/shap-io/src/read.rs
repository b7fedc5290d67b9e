//! The one bounded reader for input files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{IoError, os};

/// Read `path` whole, refusing more than `limit` bytes. A regular file's size is checked
/// before anything is read; anything else (a character device such as `/dev/zero`, a FIFO)
/// is read up to `limit + 1` bytes and refused past `limit`. `what` names the contents in
/// the error (`"a checkpoint"`).
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, IoError> {
    let file = File::open(path).map_err(os("opening", path))?;
    let meta = file.metadata().map_err(os("inspecting", path))?;
    if meta.is_dir() {
        return Err(os("reading", path)(std::io::ErrorKind::IsADirectory.into()));
    }
    let too_large = || IoError::TooLarge {
        path: path.to_path_buf(),
        what: what.to_string(),
        limit,
    };
    if meta.is_file() && meta.len() > limit {
        return Err(too_large());
    }
    let expected = if meta.is_file() { meta.len() } else { 0 };
    read_capped(file, expected, limit)
        .map_err(os("reading", path))?
        .ok_or_else(too_large)
}

/// Read `r` to its end into a buffer sized for `expected` bytes; `None` past `limit` bytes.
/// The buffer never grows beyond `limit + 1` bytes, and a failed allocation is an error
/// (`OutOfMemory`), not an abort.
fn read_capped(mut r: impl Read, expected: u64, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    reserve(&mut out, usize::try_from(expected).unwrap_or(cap).min(cap))?;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(Some(out)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.len() + n > cap.saturating_sub(1) {
            return Ok(None);
        }
        if out.capacity() < out.len() + n {
            let want = out.capacity().saturating_mul(2).clamp(out.len() + n, cap);
            reserve(&mut out, want)?;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Grow `v`'s capacity to `total` bytes, reporting a failed allocation as an error.
fn reserve(v: &mut Vec<u8>, total: usize) -> std::io::Result<()> {
    v.try_reserve_exact(total.saturating_sub(v.len()))
        .map_err(|_| std::io::ErrorKind::OutOfMemory.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_input_stops_at_the_limit() {
        let endless = std::io::repeat(7);
        assert_eq!(read_capped(endless, 0, 1000).unwrap(), None);
        let exact = std::io::repeat(7).take(1000);
        assert_eq!(
            read_capped(exact, 0, 1000).unwrap().map(|v| v.len()),
            Some(1000)
        );
        let over = std::io::repeat(7).take(1001);
        assert_eq!(read_capped(over, 5000, 1000).unwrap(), None);
    }
}
