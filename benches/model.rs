//! Criterion bench `model` (placeholder until its issue lands).
fn main() {}
