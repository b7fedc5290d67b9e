//! Criterion bench `plot` (placeholder until its issue lands).
fn main() {}
