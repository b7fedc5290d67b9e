//! One module per `cargo xtask` command (the benchmark groups beside `bench`), as burn's xtask
//! lays them out. What several commands share (running processes, the report, its rendering,
//! the sample images, onnxruntime's install) stays one level up.

pub mod bench;
pub mod bench_common;
pub mod bench_keras;
pub mod bench_onnx;
pub mod bench_real;
pub mod browser;
pub mod cuda;
pub mod package;
pub mod reproduce;
pub mod slurm;
pub mod test;
