//! # hookmq-webhooks
//!
//! Turns the broker's events into HTTP requests to the user's server, in EMQX's format.
//!
//! ## Layout (svix's split)
//! - [`spec`]: the webhook resource and its validation.
//! - [`trigger`]: which events a webhook takes (kinds, then topic filters).
//! - [`render`]: EMQX's JSON body ([`render::emqx`]) and `${field}` templates.
//! - [`queue`]: the bounded per-webhook queue, in lanes by client (per-client order).
//! - The append-only segment log under a disk-buffered webhook's queue is `hookmq_journal`
//!   (shared with the broker's persistent sessions).
//! - [`delivery`]: the lane worker, one path for both transports: prepare (render, id,
//!   signature), send (pipelined on an `http` lane's connection, pooled for `https`), settle
//!   in order (go-back on a retry); [`delivery::retry`] classifies answers and decides
//!   retries by the event's age.
//! - [`client`]: connections: a keep-alive one per busy `http` lane, hyper-util's pool for
//!   `https` (HTTP/2 when offered), rustls, TCP_NODELAY; [`egress`]: the networks requests
//!   may reach, checked on resolved addresses at connect time.
//! - [`wire`]: HTTP/1.1 requests out and answers in, for the pipelined lanes (httparse).
//! - [`deadletter`]: events given up, kept (bounded by bytes) with their last attempt, for
//!   inspection and replay.
//! - [`sign`]: Standard Webhooks signatures; [`seal`]: secrets sealed at rest.
//! - [`metrics`]: counters, rates and latency per webhook.
//! - [`attempts`]: the last attempts per webhook (answer or error, latency).
//! - [`health`]: a receiver's status from the webhook's own attempts, and the circuit
//!   that stops lanes hammering a receiver that keeps failing.
//! - [`receivers`]: a webhook's URLs (`url`, `urls`), each with its health and counters,
//!   and which one each lane sends to (`url_strategy`: round robin or failover).
//! - `webhook`: one running webhook, and the hook sink the broker calls inline with each run
//!   of a connection's events (match, then one lock and one wake-up per lane).
//! - [`store`]: each webhook's directory under the data directory (saved spec, counters,
//!   journal).
//! - [`engine`]: the webhooks' management (create, update, enable, delete; each webhook's
//!   attachment to the broker's hook) and the delivery threads.
//! - [`samples`]: sample events for tests and the event catalogue.
//!
//! The broker never waits for a webhook: a webhook's sink only matches and queues, a full
//! queue drops (and counts, `dropped.queue_full`) what it cannot hold, and delivery runs on
//! its own threads at the lowest priority (nice 19).

pub mod attempts;
pub mod client;
pub mod deadletter;
pub mod delivery;
pub mod egress;
pub mod engine;
pub mod health;
pub mod metrics;
pub mod queue;
pub mod receivers;
pub mod render;
pub mod samples;
pub mod seal;
pub mod sign;
pub mod spec;
pub mod store;
pub mod trigger;
mod webhook;
pub mod wire;

pub use egress::{Egress, EgressConfig};
pub use engine::{
    DeadLetterPage, DeadLetterView, EngineError, ProbeResult, ReplayReport, ShutdownReport,
    WebhookEngine, WebhookStatus,
};
pub use metrics::MetricsSnapshot;
pub use receivers::ReceiverStatus;
pub use spec::{SpecError, WebhookSpec};
