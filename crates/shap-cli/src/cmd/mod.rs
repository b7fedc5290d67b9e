//! One module per subcommand: each has `Args` (clap) and `run(Args) -> anyhow::Result<()>`.

mod chunks;
pub mod common;
pub mod data;
pub mod evaluate;
pub mod explain;
pub mod faithfulness;
mod journal;
pub mod mask;
pub mod merge;
pub mod network;
pub mod plot;
pub mod summary;
pub mod train;
