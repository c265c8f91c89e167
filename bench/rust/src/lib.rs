//! No library: the criterion benchmarks of the host library are in `benches/`
//! (`make bench`, or `cargo bench -p sark-benches`).
