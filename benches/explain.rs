//! Criterion bench `explain` (placeholder until its issue lands).
fn main() {}
