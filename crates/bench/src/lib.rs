//! # hookmq-bench
//!
//! Tools for the benchmarks in `bench/`:
//! - `hookmq-bench`: the load generator (publish/subscribe with latency, idle connections,
//!   retained-heavy subscribe), on the project's own codec; prints JSON.
//! - `hookmq-bench-receiver`: the minimal webhook receiver whose raw capacity (measured with
//!   `wrk`) is the limit hookmq's delivery is compared against.
//! - `hookmq-reliability`: the reliability harness (outage, crash, stop, bound, refusals),
//!   printing a report.
//!
//! ## Layout
//! - [`client`]: a lean MQTT client (batched writes, in-place decoding).
//! - [`load`]: the scenarios.
//! - [`reliability`]: the harness's receiver, node, publishers and checks.

pub mod client;
pub mod load;
pub mod reliability;
