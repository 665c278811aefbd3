//! The OpenAPI document, served at `GET /api/v5/openapi.json`.
//!
//! Every route is registered through utoipa-axum's `OpenApiRouter` (see `lib.rs`), so the
//! document and the router are built from the same list and cannot drift. The webhook
//! resources live in `hookmq-webhooks`, which knows nothing of OpenAPI: their schemas are
//! described here (`*Doc` types, never constructed), and the API tests check them against
//! real answers.

use std::{collections::BTreeMap, sync::OnceLock};

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The document's root: title, version, security schemes.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "hookmq management API",
        description = "Manage an hookmq node: webhooks, clients, subscriptions, users, API keys, \
                       metrics. Authenticate with `Authorization: Bearer <token>` from \
                       `POST /api/v5/login`, or with HTTP Basic `api_key:api_secret` of an API key. \
                       Errors are `{\"code\",\"message\"}`, plus `field` for bad input.",
    ),
    modifiers(&SecuritySchemes),
)]
pub(crate) struct ApiDoc;

/// Adds the `bearer` and `basic` security schemes the operations refer to.
#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.version = crate::stats::VERSION.to_owned();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// Makes operation ids unique: utoipa names an operation after its handler (`list` and
/// `show` in several modules), so each is named after its method and path instead
/// (`get_webhooks_name_metrics` for `GET /api/v5/webhooks/{name}/metrics`).
pub(crate) fn unique_operation_ids(document: &mut utoipa::openapi::OpenApi) {
    for (path, item) in &mut document.paths.paths {
        let words: Vec<&str> = path
            .trim_start_matches(crate::BASE_PATH)
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|word| !word.is_empty())
            .collect();
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
            ("head", &mut item.head),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                operation.operation_id = Some(format!("{method}_{}", words.join("_")));
            }
        }
    }
}

/// `/openapi.json`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(document))
}

/// This document (no authentication).
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn document() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&crate::openapi()).unwrap_or_else(|_| "{}".to_owned())
    });
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// HTTP method of a webhook's requests.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only
pub(crate) enum MethodDoc {
    /// The default.
    Post,
    /// With the body too.
    Put,
    /// No body.
    Get,
    /// No body.
    Delete,
}

/// How a webhook with several URLs shares its events: either way a client's events stay in
/// order, and a lane whose receiver's circuit is open turns to the next one that answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub(crate) enum UrlStrategyDoc {
    /// Lane i sends to URL i mod n: the load is shared (needs `max_inflight` ≥ the URLs).
    RoundRobin,
    /// Every lane sends to the first URL whose circuit is closed.
    Failover,
}

/// How the MQTT payload is written in the body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only
pub(crate) enum PayloadEncodingDoc {
    /// As a string (the default, like EMQX).
    Plain,
    /// Base64, so binary payloads survive.
    Base64,
}

/// Where queued events wait.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only
pub(crate) enum BufferDoc {
    /// In memory and journaled under the data directory (the default): survives a crash or
    /// a restart.
    Disk,
    /// In memory only.
    Memory,
    /// In the cluster's work queue (NATS JetStream), delivered by every node running the
    /// webhook; survives the loss of a node. Needs `[cluster] nats_url` (else 400).
    Cluster,
}

/// What a disk buffer does at `max_buffer_bytes`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub(crate) enum OverflowDoc {
    /// Drop the new event (the default).
    DropNew,
    /// Drop the oldest queued event.
    DropOldest,
}

/// TLS settings for `https` URLs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TlsDoc {
    /// Verify the server's certificate (default true).
    verify: Option<bool>,
    /// PEM CA file to trust instead of the bundled web roots.
    ca_file: Option<String>,
    /// PEM client certificate chain.
    certfile: Option<String>,
    /// PEM private key of the client certificate.
    keyfile: Option<String>,
}

/// Several events per request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchDoc {
    /// Events one request carries at most (default 1: one request per event; at most
    /// 10000). Above 1 the method is post or put and the URL and headers hold no `${field}`.
    #[schema(nullable = false, minimum = 1, maximum = 10000)]
    max_events: Option<u64>,
    /// How long a lane waits for a batch to fill (default `0s`: what is queued goes at
    /// once; at most `10s`).
    #[schema(nullable = false)]
    max_wait: Option<String>,
    /// `json_array` (default: a JSON array of the events' bodies) or `ndjson` (one per line).
    #[schema(nullable = false)]
    format: Option<BatchFormatDoc>,
}

/// How a batch's body holds its events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only
pub(crate) enum BatchFormatDoc {
    /// A JSON array.
    JsonArray,
    /// Newline-delimited JSON.
    Ndjson,
}

/// A webhook. Every field but `name` and `url` has a default; durations are text like
/// `500ms`, `15s`, `5m`, `2h` or a number of seconds. Secrets (`signing_secret`,
/// `authorization` headers) are shown as `******`; sending `******` back keeps them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookSpecDoc {
    /// Unique name: letters, digits, `-` and `_`, starting with a letter or digit.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]
    name: String,
    /// A note for people.
    #[schema(nullable = false)]
    description: Option<String>,
    /// Whether it delivers (default true).
    #[schema(nullable = false)]
    enable: Option<bool>,
    /// Event names (see `GET /webhook_events`), or `["*"]` (the default) for all.
    #[schema(nullable = false)]
    events: Option<Vec<String>>,
    /// Topic filters message events must match (default `["#"]`).
    #[schema(nullable = false)]
    topics: Option<Vec<String>>,
    /// Leave out the message events of `$SYS` messages even when a filter matches them
    /// (default true, as EMQX's `rule_engine.ignore_sys_message`).
    #[schema(nullable = false)]
    ignore_sys_message: Option<bool>,
    /// HTTP method (default post).
    #[schema(nullable = false)]
    method: Option<MethodDoc>,
    /// `http://` or `https://` URL; `${field}` allowed in path and query.
    url: String,
    /// More receivers after `url` (at most 15), written the same way; each has its own
    /// status and counters (`receivers`).
    #[schema(nullable = false)]
    urls: Option<Vec<String>>,
    /// How events are shared among `url` and `urls` (default `round_robin`).
    #[schema(nullable = false)]
    url_strategy: Option<UrlStrategyDoc>,
    /// Request headers; values may hold `${field}`.
    #[schema(nullable = false)]
    headers: Option<BTreeMap<String, String>>,
    /// Body template; absent: the whole event as EMQX's JSON.
    body: Option<String>,
    /// How the payload is written (default plain).
    #[schema(nullable = false)]
    payload_encoding: Option<PayloadEncodingDoc>,
    /// Standard Webhooks secret `whsec_…`: requests are signed.
    signing_secret: Option<String>,
    /// Time to connect (default `15s`).
    #[schema(nullable = false)]
    connect_timeout: Option<String>,
    /// Time for one request (default `15s`).
    #[schema(nullable = false)]
    request_timeout: Option<String>,
    /// Idle connections kept (default 8).
    #[schema(nullable = false, minimum = 1)]
    pool_size: Option<u64>,
    /// Lanes delivering at once, a connection each (default 16, at most 1024).
    #[schema(nullable = false, minimum = 1, maximum = 1024)]
    max_inflight: Option<u64>,
    /// Requests pipelined on a lane's `http` connection before the first is answered
    /// (default 16, at most 1024; 1: one at a time).
    #[schema(nullable = false, minimum = 1, maximum = 1024)]
    pipelining: Option<u64>,
    /// Keep each client's events in order (default true).
    #[schema(nullable = false)]
    ordered: Option<bool>,
    /// Retryable failures are retried until the event is this old (default `24h`, at most a
    /// year); then it fails.
    #[schema(nullable = false)]
    retry_max_age: Option<String>,
    /// At most this many retries after the first attempt (default none: only
    /// `retry_max_age` ends retries).
    max_retries: Option<u32>,
    /// EMQX's `request_ttl` (default none): an event older than this is dropped instead of
    /// sent (`dropped.expired`), and an answer after it counts as `late_reply`.
    request_ttl: Option<String>,
    /// After 5 failures in a row, one request probes the receiver this often (default
    /// `15s`) until it answers.
    #[schema(nullable = false)]
    health_check_interval: Option<String>,
    /// First retry delay (default `1s`).
    #[schema(nullable = false)]
    retry_backoff: Option<String>,
    /// Longest retry delay (default `60s`).
    #[schema(nullable = false)]
    retry_max_backoff: Option<String>,
    /// Events waiting at most (default 10000).
    #[schema(nullable = false, minimum = 1)]
    queue_capacity: Option<u64>,
    /// Where queued events wait (default disk).
    #[schema(nullable = false)]
    buffer: Option<BufferDoc>,
    /// Bytes of journal a disk buffer takes at most (default 1 GiB); past it, `overflow`.
    #[schema(nullable = false)]
    max_buffer_bytes: Option<u64>,
    /// At `max_buffer_bytes`: drop the new event (`drop_new`, the default) or the oldest
    /// queued one (`drop_oldest`), counted in `dropped.queue_full`.
    #[schema(nullable = false)]
    overflow: Option<OverflowDoc>,
    /// A disk (or cluster) buffer's QoS 1/2 PUBLISHes are acknowledged only once their
    /// events are on disk (stored in the cluster) (default false).
    #[schema(nullable = false)]
    sync_before_ack: Option<bool>,
    /// Bytes of dead letters kept at most (default 64 MiB); past it the oldest are dropped.
    #[schema(nullable = false)]
    max_dead_letter_bytes: Option<u64>,
    /// TLS settings.
    #[schema(nullable = false)]
    tls: Option<TlsDoc>,
    /// Several events per request.
    #[schema(nullable = false)]
    batch: Option<BatchDoc>,
}

/// A webhook with its metrics.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookStatusDoc {
    /// Its definition.
    #[serde(flatten)]
    spec: WebhookSpecDoc,
    /// Its metrics now.
    metrics: MetricsDoc,
    /// Its status: its best receiver's (`disconnected` only when none answers).
    status: HealthDoc,
    /// Each receiver, `url` first, then `urls`.
    receivers: Vec<ReceiverDoc>,
}

/// One of a webhook's receivers. Its counters start at 0 when the node starts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReceiverDoc {
    /// Its URL.
    url: String,
    /// The state.
    state: HealthStateDoc,
    /// Why the last failed attempt failed.
    last_error: Option<String>,
    /// Retryable failures in a row.
    failures_in_a_row: u32,
    /// Since when the state holds, ms since the epoch.
    since: u64,
    /// Lanes sending to it (an idle lane turns to another receiver when it next has events).
    lanes: u64,
    /// Requests settled (answered, failed or timed out).
    requests: u64,
    /// Of those, the ones not answered 2xx.
    failed_requests: u64,
    /// Events it took (answered 2xx).
    delivered: u64,
}

/// What a webhook knows of its receiver.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only
pub(crate) enum HealthStateDoc {
    /// No answer yet.
    Connecting,
    /// It answers.
    Connected,
    /// It failed 5 attempts in a row (the circuit is open: one request probes it every
    /// `health_check_interval`), or refused the idle health check's connection (events
    /// still go).
    Disconnected,
    /// The webhook is disabled: nothing is sent or checked.
    Stopped,
}

/// A webhook's receiver status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthDoc {
    /// The state.
    state: HealthStateDoc,
    /// Why the last failed attempt failed.
    last_error: Option<String>,
    /// Retryable failures in a row.
    failures_in_a_row: u32,
    /// Since when the state holds, ms since the epoch.
    since: u64,
}

/// Latency in milliseconds, estimated from a histogram.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LatencyDoc {
    /// Requests measured.
    count: u64,
    /// Mean.
    mean_ms: f64,
    /// Median (upper bound of its bucket).
    p50_ms: u64,
    /// 90th percentile.
    p90_ms: u64,
    /// 99th percentile.
    p99_ms: u64,
    /// Counts per bucket (aligned with `bounds_ms`, plus one for slower).
    buckets: Vec<u64>,
    /// Bucket upper bounds.
    bounds_ms: Vec<u64>,
}

/// One failed delivery.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FailureDoc {
    /// When, ms since the epoch.
    at: u64,
    /// The event's name.
    event: String,
    /// HTTP status, when the receiver answered.
    status: Option<u16>,
    /// Why it failed.
    reason: String,
    /// Attempts made.
    attempts: u32,
}

/// A webhook's metrics; `matched = success + failed + dropped + queuing + inflight`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MetricsDoc {
    /// Events the trigger selected.
    matched: u64,
    /// Delivered with a 2xx answer.
    success: u64,
    /// Given up.
    failed: u64,
    /// Retries made.
    retried: u64,
    /// Dropped without delivery, all reasons.
    dropped: u64,
    /// Dropped because the queue was full.
    #[serde(rename = "dropped.queue_full")]
    dropped_queue_full: u64,
    /// Dropped because they were older than `request_ttl` before they were sent.
    #[serde(rename = "dropped.expired")]
    dropped_expired: u64,
    /// Answered after `request_ttl`: neither delivered nor failed.
    late_reply: u64,
    /// Waiting in the queue.
    queuing: u64,
    /// Being delivered.
    inflight: u64,
    /// Matched per second over the last 5 s.
    rate: f64,
    /// Highest rate seen.
    rate_max: f64,
    /// Mean rate over the last 5 minutes.
    rate_last5m: f64,
    /// Request latency.
    latency: LatencyDoc,
    /// The latest failures, newest first.
    last_failures: Vec<FailureDoc>,
    /// The disk buffer (absent for a memory buffer).
    buffer: Option<BufferStateDoc>,
    /// Dead letters kept now.
    dead_letters: u64,
    /// Dead letters dropped at their bound, oldest first.
    #[serde(rename = "dead_letters.dropped")]
    dead_letters_dropped: u64,
}

/// A webhook's metrics on the node answering, and on each node.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookMetricsDoc {
    #[serde(flatten)]
    metrics: MetricsDoc,
    /// Each node's metrics of the webhook (this node alone without a cluster), by node.
    node_metrics: Vec<NodeMetricsDoc>,
}

/// One node's metrics of a webhook.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeMetricsDoc {
    /// The node.
    node: String,
    /// Its metrics.
    metrics: MetricsDoc,
}

/// A disk buffer's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BufferStateDoc {
    /// Bytes its journal takes on disk.
    disk_bytes: u64,
    /// Events queued or in flight that are not yet on disk (written within milliseconds).
    unwritten: u64,
    /// Queued events kept on disk only (past `queue_capacity` in memory).
    on_disk_only: u64,
    /// Groups of events that could not be written (a full disk): they stay in memory.
    write_errors: u64,
    /// How long events waited between happening and reaching the disk, over the groups
    /// written (histogram bucket bounds, ms; null past 1 s); null before any group.
    write_window: Option<WriteWindowDoc>,
}

/// The wait of each written group's oldest event, from happening to on disk.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WriteWindowDoc {
    /// Groups written.
    groups: u64,
    /// Median, ms (a bucket's upper bound).
    p50_ms: Option<u64>,
    /// 99th percentile, ms.
    p99_ms: Option<u64>,
    /// The slowest, ms.
    max_ms: Option<u64>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptDoc {
    /// When its answer (or failure) came, ms since the epoch.
    at: u64,
    /// The event's `webhook-id`.
    webhook_id: String,
    /// The event's name.
    event: String,
    /// The answer's status, if there was one.
    status: Option<u16>,
    /// From sending to the answer (or the failure), ms.
    latency_ms: u64,
    /// What went wrong, for an attempt that did not succeed.
    error: Option<String>,
}

/// What a test request found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeResultDoc {
    /// Whether the receiver answered 2xx.
    success: bool,
    /// Its status code, if it answered.
    status: Option<u16>,
    /// Time to the answer, ms.
    latency_ms: u64,
    /// The start of its body.
    body: String,
    /// What went wrong, if anything.
    error: Option<String>,
}
