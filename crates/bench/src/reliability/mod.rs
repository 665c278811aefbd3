//! The reliability harness (`hookmq-reliability`): hookmq and a receiver as processes and
//! tasks, through outages, crashes, stops, bounds and refusals, with a report of what arrived.
//!
//! - [`node`]: the `hookmq` process and its API.
//! - [`receiver`]: a recording webhook receiver that can refuse or go down.
//! - [`publish`]: QoS 1 publishers; what they got acknowledged is what must arrive.
//! - [`check`]: what arrived against what was acknowledged.

pub mod check;
pub mod node;
pub mod publish;
pub mod receiver;
