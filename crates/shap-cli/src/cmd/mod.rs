//! One module per subcommand: each has `Args` (clap) and `run(Args) -> anyhow::Result<()>`.

/// `note: ...` on standard error, with control characters of names and paths as `?`.
macro_rules! note {
    ($($t:tt)*) => {
        eprintln!("note: {}", $crate::cmd::common::printable(&format!($($t)*)))
    };
}

pub mod common;
pub mod compare;
pub mod data;
pub mod evaluate;
pub mod explain;
pub mod faithfulness;
pub mod mask;
pub mod merge;
pub mod metrics;
pub mod model_flags;
pub mod plot;
pub mod sanity;
pub mod summary;
pub mod terminal;
pub mod train;
