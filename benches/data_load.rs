//! Criterion bench `data_load` (placeholder until its issue lands).
fn main() {}
