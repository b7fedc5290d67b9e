//! `A..B` ranges of test indices and `I/N` shards of a selection, parsed once from text (a
//! front end uses these as its value parsers) into typed values.

use std::ops::Range;
use std::str::FromStr;

use crate::error::{Context, Result, refuse};

/// Parse `A..B` (A inclusive, B exclusive, A < B).
pub fn parse_range(s: &str) -> std::result::Result<Range<usize>, String> {
    let bad = || format!("'{s}': expected A..B with A < B (test indices, B exclusive)");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let number = |v: &str| -> std::result::Result<usize, String> {
        v.trim().parse().map_err(|e: std::num::ParseIntError| {
            if *e.kind() == std::num::IntErrorKind::PosOverflow {
                format!("'{s}': {} is too large (at most {})", v.trim(), usize::MAX)
            } else {
                bad()
            }
        })
    };
    let (a, b) = (number(a)?, number(b)?);
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

/// `I/N` (the I-th of N contiguous slices) or `auto/N` (I from the scheduler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// The index, or `None` for `auto`.
    pub index: Option<usize>,
    /// The number of shards.
    pub count: usize,
}

/// The variables `auto/N` reads, in order: a Kubernetes Indexed Job's, then a Slurm array's.
pub const SHARD_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// A shard with its index known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedShard {
    /// Which slice, below `count`.
    pub index: usize,
    /// The number of slices.
    pub count: usize,
    /// The scheduler variable the index was read from (`auto/N`).
    pub from: Option<&'static str>,
}

impl Shard {
    /// The index and count, reading the scheduler's variable for `auto`.
    pub fn resolve(&self) -> Result<ResolvedShard> {
        let (index, from) = match self.index {
            Some(i) => (i, None),
            None => {
                let (i, var) = self.scheduler_index()?;
                (i, Some(var))
            }
        };
        if index >= self.count {
            refuse!(
                "shard {index}/{}: the index must be below {}",
                self.count,
                self.count
            );
        }
        Ok(ResolvedShard {
            index,
            count: self.count,
            from,
        })
    }

    /// The index `auto/N` reads from the scheduler's variable (an empty one counts as unset);
    /// both set to different values is an error.
    fn scheduler_index(&self) -> Result<(usize, &'static str)> {
        let set: Vec<(&'static str, String)> = SHARD_VARIABLES
            .iter()
            .filter_map(|v| std::env::var(v).ok().map(|x| (*v, x.trim().to_string())))
            .filter(|(_, x)| !x.is_empty())
            .collect();
        let Some((var, value)) = set.first() else {
            refuse!(
                "--shard auto/{} needs {} or {} to be set (a Kubernetes Indexed Job or a Slurm \
                 array job sets one)",
                self.count,
                SHARD_VARIABLES[0],
                SHARD_VARIABLES[1]
            );
        };
        if let Some((other, theirs)) = set.iter().find(|(_, x)| x != value) {
            refuse!(
                "--shard auto/{}: {var}={value} and {other}={theirs} disagree: unset one",
                self.count
            );
        }
        let i: usize = value
            .parse()
            .ok()
            .with_context(|| format!("{var}={value} is not a shard index"))?;
        Ok((i, var))
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` or `auto/N` (N >= 1).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("'{s}': expected I/N or auto/N with N >= 1");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(bad());
        }
        let index = match i.trim() {
            "auto" => None,
            v => Some(v.parse().map_err(|_| bad())?),
        };
        Ok(Self { index, count })
    }
}

/// The positions of the `index`-th of `count` contiguous slices of `total` items.
pub fn shard_range(index: usize, count: usize, total: usize) -> Range<usize> {
    (index * total / count)..((index + 1) * total / count)
}
