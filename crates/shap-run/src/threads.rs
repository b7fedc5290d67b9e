//! The process's thread pool, sized once before any work.

use crate::error::{Error, Result, refuse};

/// The most threads a run starts.
pub const MAX_THREADS: usize = 1024;

/// Start rayon's global pool with `threads`, else `RAYON_NUM_THREADS`, else one thread per
/// core, and return the count. A count outside `1..=1024` (from either source), or a pool the
/// system cannot start, is an error naming the count, not a crash.
pub fn start_global_pool(threads: Option<usize>) -> Result<usize> {
    let n = match threads {
        Some(n) => n,
        None => match std::env::var("RAYON_NUM_THREADS") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(n) => n,
                Err(_) => {
                    refuse!("RAYON_NUM_THREADS={v:?}: give a thread count from 1 to {MAX_THREADS}")
                }
            },
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    };
    if !(1..=MAX_THREADS).contains(&n) {
        refuse!("{n} threads: give a thread count from 1 to {MAX_THREADS}");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|source| Error::Threads { count: n, source })?;
    Ok(n)
}
