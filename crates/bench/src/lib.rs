//! # hookmq-bench
//!
//! Tools for the benchmarks in `bench/`: `hookmq-bench-receiver`, the minimal webhook
//! receiver whose raw capacity (measured with `wrk`) is the limit hookmq's delivery is
//! compared against.
