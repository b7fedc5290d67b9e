//! Criterion bench `masking` (placeholder until its issue lands).
fn main() {}
