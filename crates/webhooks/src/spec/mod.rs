//! The webhook resource: what a `[[webhooks]]` entry and the REST API create.
//!
//! Every field but `name` and `url` has a default, so `{"name":"my_webhook","url":"http://…"}`
//! is a complete webhook on all events. [`WebhookSpec::validate`] names the field at fault.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use hookmq_broker::{duration, hooks::EventKind};
use serde::{Deserialize, Serialize};

mod validate;

/// HTTP method of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// POST (default): the body is sent.
    #[default]
    Post,
    /// PUT: the body is sent.
    Put,
    /// GET: no body.
    Get,
    /// DELETE: no body.
    Delete,
}

impl Method {
    /// The `http` crate's method.
    #[must_use]
    pub fn as_http(self) -> http::Method {
        match self {
            Self::Post => http::Method::POST,
            Self::Put => http::Method::PUT,
            Self::Get => http::Method::GET,
            Self::Delete => http::Method::DELETE,
        }
    }

    /// Whether requests carry a body.
    #[must_use]
    pub const fn has_body(self) -> bool {
        matches!(self, Self::Post | Self::Put)
    }
}

/// How the MQTT payload appears in the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncoding {
    /// As a string, like EMQX (invalid UTF-8 becomes U+FFFD).
    #[default]
    Plain,
    /// Standard base64, so binary payloads survive.
    Base64,
}

/// Where a webhook's queued events wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Buffer {
    /// In memory and in a journal under the data directory (default): queued and in-flight
    /// events survive a crash or a restart.
    #[default]
    Disk,
    /// In memory only: lost to a crash or a restart.
    Memory,
    /// In the cluster's work queue (NATS JetStream; needs `[cluster] nats_url`): every node
    /// running the webhook delivers from it, a client's events in order, and the events of
    /// a node that dies or stops are delivered by the others.
    Cluster,
}

/// How a webhook with several URLs (`url` and `urls`) shares its events among them. Either
/// way a lane sends to one receiver at a time, so a client's events (one lane) stay in
/// order, and a lane whose receiver's circuit is open moves to the next receiver whose
/// circuit is closed, back as soon as its own is usable again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UrlStrategy {
    /// Lane i sends to URL i mod n (the default): the load is shared.
    #[default]
    RoundRobin,
    /// Every lane sends to the first URL whose circuit is closed: the others stand by.
    Failover,
}

/// What a disk buffer does when its journal reaches `max_buffer_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// New events are dropped (the default: what was accepted stays, in order).
    #[default]
    DropNew,
    /// The oldest queued event is dropped for each new one (the journal shrinks as whole
    /// segments empty), as EMQX does.
    DropOldest,
}

/// Several events in one request (no peer batches HTTP deliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSpec {
    /// Events one request carries at most; 1 (the default) sends one request per event.
    /// A batch takes a lane's events in order, so each client's order holds across
    /// batches, and is retried whole.
    pub max_events: usize,
    /// How long a lane waits for a batch to fill once it has fewer than `max_events`
    /// events; 0 sends what is queued at once (batches then fill only under load).
    #[serde(with = "duration")]
    pub max_wait: Duration,
    /// How a batch's body holds its events, each rendered as alone (the body template
    /// applies per event).
    pub format: BatchFormat,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            max_events: 1,
            max_wait: Duration::ZERO,
            format: BatchFormat::JsonArray,
        }
    }
}

/// The body of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchFormat {
    /// A JSON array of the events' bodies (each must be JSON, as the default body is).
    #[default]
    JsonArray,
    /// The events' bodies one per line (newline-delimited JSON).
    Ndjson,
}

/// The most events one batch carries.
const MAX_BATCH_EVENTS: usize = 10_000;
/// The longest a batch waits to fill.
const MAX_BATCH_WAIT: Duration = Duration::from_secs(10);
/// URLs a webhook sends to at most (`url` and `urls`).
const MAX_RECEIVERS: usize = 16;

/// TLS settings for `https` URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSpec {
    /// Verify the server's certificate (against `ca_file`, or the bundled web roots).
    pub verify: bool,
    /// PEM file of CA certificates to trust instead of the bundled web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers that ask for one.
    pub certfile: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub keyfile: Option<PathBuf>,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            verify: true,
            ca_file: None,
            certfile: None,
            keyfile: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn all_events() -> Vec<String> {
    vec!["*".into()]
}
fn all_topics() -> Vec<String> {
    vec!["#".into()]
}
fn default_headers() -> BTreeMap<String, String> {
    BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())])
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
fn connect_timeout() -> Duration {
    secs(15)
}
fn request_timeout() -> Duration {
    secs(15)
}
fn retry_backoff() -> Duration {
    secs(1)
}
fn retry_max_backoff() -> Duration {
    secs(60)
}
const fn pool_size() -> usize {
    8
}
const fn max_inflight() -> usize {
    16
}
const fn pipelining() -> usize {
    16
}
fn retry_max_age() -> Duration {
    secs(86_400)
}
fn health_check_interval() -> Duration {
    secs(15)
}
const fn queue_capacity() -> usize {
    10_000
}
const fn max_dead_letter_bytes() -> u64 {
    64 << 20
}
const fn max_buffer_bytes() -> u64 {
    1 << 30
}

/// Longest connect or request timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest retry delay accepted.
const MAX_BACKOFF: Duration = Duration::from_secs(86_400);
/// Longest `retry_max_age` accepted: a year.
const MAX_RETRY_AGE: Duration = Duration::from_secs(365 * 86_400);

/// One webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Unique name: letters, digits, `-` and `_`, starting with a letter or digit. Reported
    /// as `metadata.rule_id`.
    pub name: String,
    /// A note for people.
    #[serde(default)]
    pub description: String,
    /// Whether it delivers.
    #[serde(default = "yes")]
    pub enable: bool,
    /// Event names it fires on (`message.publish`, `client.connected`, ...), or `["*"]` for
    /// all messages and events.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    /// Topic filters message events must match (`#` does not match `$` topics).
    #[serde(default = "all_topics")]
    pub topics: Vec<String>,
    /// Leave out the message events of `$SYS` messages even when a filter matches them
    /// (EMQX's `rule_engine.ignore_sys_message`, here per webhook; on by default, as EMQX's).
    #[serde(default = "yes")]
    pub ignore_sys_message: bool,
    /// HTTP method.
    #[serde(default)]
    pub method: Method,
    /// `http://` or `https://` URL; `${field}` placeholders allowed in path and query.
    pub url: String,
    /// More receivers after `url`, written the same way (EMQX issue 6463): `url_strategy`
    /// shares the events among them. Each has its own status, circuit and counters.
    #[serde(default)]
    pub urls: Vec<String>,
    /// With `urls`: `round_robin` (lanes spread over the URLs) or `failover` (all on the
    /// first URL that answers).
    #[serde(default)]
    pub url_strategy: UrlStrategy,
    /// Request headers; values may hold placeholders.
    #[serde(default = "default_headers")]
    pub headers: BTreeMap<String, String>,
    /// Body template; absent: the whole event as EMQX's JSON.
    #[serde(default)]
    pub body: Option<String>,
    /// How the MQTT payload is written in the body.
    #[serde(default)]
    pub payload_encoding: PayloadEncoding,
    /// Standard Webhooks secret (`whsec_` + base64); when set, requests are signed.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// Time allowed to open a connection.
    #[serde(default = "connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Time allowed for one request, response included.
    #[serde(default = "request_timeout", with = "duration")]
    pub request_timeout: Duration,
    /// Idle keep-alive connections kept open to the receiver.
    #[serde(default = "pool_size")]
    pub pool_size: usize,
    /// Lanes delivering at once, each on its own connection; a client's events always take
    /// the same lane, so they stay in order. EMQX's name, `worker_pool_size`, is taken too.
    #[serde(default = "max_inflight", alias = "worker_pool_size")]
    pub max_inflight: usize,
    /// Requests a lane sends on its `http` connection before the first of them is answered
    /// (HTTP/1.1 pipelining, as EMQX's `enable_pipelining`, a name taken too); 1 sends one
    /// at a time. Answers
    /// come back in order; when one asks for a retry, the requests sent after it on that
    /// connection are sent again after it, so a client's events still arrive in order.
    #[serde(default = "pipelining", alias = "enable_pipelining")]
    pub pipelining: usize,
    /// Keep each client's events in order (one request at a time per client). `false`
    /// spreads events over all `max_inflight` lanes, for more throughput from few clients.
    #[serde(default = "yes")]
    pub ordered: bool,
    /// Retryable failures (connection errors, timeouts, 408, 429, 5xx) are retried until
    /// the event is this old (counted from when it happened, across restarts); then it
    /// fails. A client's later events wait behind its retried one.
    #[serde(default = "retry_max_age", with = "duration")]
    pub retry_max_age: Duration,
    /// At most this many retries after the first attempt, when set; by default only
    /// `retry_max_age` ends retries.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// EMQX's `request_ttl`, when set: an event older than this (counted from when it
    /// happened) is dropped instead of sent (`dropped.expired`), and an answer that comes
    /// after it counts as `late_reply`, neither delivered nor failed. By default none:
    /// hookmq drops nothing for age (`retry_max_age` ends retries with a dead letter).
    #[serde(default, with = "duration::option")]
    pub request_ttl: Option<Duration>,
    /// Once the receiver has failed 5 attempts in a row its circuit opens (`disconnected`):
    /// lanes stop sending and one request probes it this often until it answers.
    #[serde(default = "health_check_interval", with = "duration")]
    pub health_check_interval: Duration,
    /// First retry delay; doubled each retry, with ±20% jitter.
    #[serde(default = "retry_backoff", with = "duration")]
    pub retry_backoff: Duration,
    /// Longest retry delay (a `Retry-After` may ask for more, up to one hour).
    #[serde(default = "retry_max_backoff", with = "duration")]
    pub retry_max_backoff: Duration,
    /// Events kept in memory at most. A memory buffer drops new events past it (counted in
    /// `dropped.queue_full`); a disk buffer keeps further ones on disk only, up to
    /// `max_buffer_bytes`.
    #[serde(default = "queue_capacity")]
    pub queue_capacity: usize,
    /// Where queued events wait: `disk` (also journaled under the data directory, so they
    /// survive a crash or a restart) or `memory`.
    #[serde(default)]
    pub buffer: Buffer,
    /// Bytes of journal a disk buffer takes at most; past it, `overflow` decides.
    #[serde(default = "max_buffer_bytes")]
    pub max_buffer_bytes: u64,
    /// At `max_buffer_bytes`: `drop_new` (the default) or `drop_oldest`, each dropped event
    /// counted in `dropped.queue_full`.
    #[serde(default)]
    pub overflow: Overflow,
    /// A disk buffer's QoS 1/2 PUBLISHes are acknowledged (PUBACK, PUBREC) only once the
    /// events they caused are on disk (a cluster buffer's: stored in the cluster): the
    /// publisher waits for the local disk (about one group commit) or NATS, never for a
    /// receiver. Off: events reach the disk within about one
    /// group commit after the acknowledgement.
    #[serde(default)]
    pub sync_before_ack: bool,
    /// Bytes of dead letters (events given up, with their last attempt) kept at most, under
    /// the data directory; past it the oldest are dropped and counted. 0 keeps none.
    #[serde(default = "max_dead_letter_bytes")]
    pub max_dead_letter_bytes: u64,
    /// TLS settings for `https` URLs.
    #[serde(default)]
    pub tls: TlsSpec,
    /// Several events per request.
    #[serde(default)]
    pub batch: BatchSpec,
}

/// A field with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The field, e.g. `url` or `headers.x-token`.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl SpecError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Whether `name` is a valid webhook name.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 128
}

/// What listings, the CLI and `config check` show instead of a secret.
pub const REDACTED: &str = "******";

/// Whether a header's value is a secret (sealed at rest, shown as [`REDACTED`]): any name
/// that says it carries credentials: `authorization`, `proxy-authorization`, `cookie`, and
/// names with `auth`, `token`, `secret`, `key`, `password` or `signature` in them.
#[must_use]
pub fn is_secret_header(name: &str) -> bool {
    const MARKS: [&str; 7] = [
        "auth",
        "cookie",
        "token",
        "secret",
        "key",
        "password",
        "signature",
    ];
    let name = name.to_ascii_lowercase();
    MARKS.iter().any(|mark| name.contains(mark))
}

impl WebhookSpec {
    /// This spec with its secrets (signing secret, secret header values) replaced by
    /// [`REDACTED`].
    #[must_use]
    pub fn redacted(mut self) -> Self {
        if self.signing_secret.is_some() {
            self.signing_secret = Some(REDACTED.into());
        }
        for (name, value) in &mut self.headers {
            if is_secret_header(name) {
                REDACTED.clone_into(value);
            }
        }
        self
    }

    /// Applies `change` to each secret value (signing secret, secret header values) with
    /// the field it is in (`signing_secret`, `headers.<name>`).
    ///
    /// # Errors
    /// The first error of `change`.
    pub fn map_secrets<E>(
        &mut self,
        mut change: impl FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<(), E> {
        if let Some(secret) = &mut self.signing_secret {
            *secret = change("signing_secret", secret)?;
        }
        for (name, value) in &mut self.headers {
            if is_secret_header(name) {
                *value = change(&format!("headers.{name}"), value)?;
            }
        }
        Ok(())
    }

    /// A spec with every default, for `name` and `url`.
    #[must_use]
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: String::new(),
            enable: true,
            events: all_events(),
            topics: all_topics(),
            method: Method::default(),
            url: url.to_owned(),
            urls: Vec::new(),
            url_strategy: UrlStrategy::default(),
            headers: default_headers(),
            body: None,
            payload_encoding: PayloadEncoding::default(),
            signing_secret: None,
            connect_timeout: connect_timeout(),
            request_timeout: request_timeout(),
            pool_size: pool_size(),
            max_inflight: max_inflight(),
            pipelining: pipelining(),
            ordered: true,
            retry_max_age: retry_max_age(),
            max_retries: None,
            request_ttl: None,
            ignore_sys_message: true,
            health_check_interval: health_check_interval(),
            retry_backoff: retry_backoff(),
            retry_max_backoff: retry_max_backoff(),
            queue_capacity: queue_capacity(),
            buffer: Buffer::default(),
            max_buffer_bytes: max_buffer_bytes(),
            overflow: Overflow::default(),
            sync_before_ack: false,
            max_dead_letter_bytes: max_dead_letter_bytes(),
            tls: TlsSpec::default(),
            batch: BatchSpec::default(),
        }
    }

    /// The event kinds selected.
    ///
    /// # Errors
    /// An unknown event name, naming its index.
    pub fn event_kinds(&self) -> Result<Vec<EventKind>, SpecError> {
        if self.events.iter().any(|e| e == "*") {
            return Ok(EventKind::ALL.to_vec());
        }
        self.events
            .iter()
            .enumerate()
            .map(|(i, name)| {
                EventKind::from_name(name).ok_or_else(|| {
                    SpecError::new(format!("events[{i}]"), format!("unknown event `{name}`"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use test_case::test_case;

    use super::*;

    #[test_case("my_webhook" => true; "underscore")]
    #[test_case("a-1" => true; "dash")]
    #[test_case("_x" => false; "leading underscore")]
    #[test_case("" => false; "empty")]
    #[test_case("a b" => false; "space")]
    fn names(name: &str) -> bool {
        valid_name(name)
    }

    #[test]
    fn emqxs_names_of_the_pool_settings_are_taken() {
        let spec: WebhookSpec = serde_json::from_str(
            r#"{"name":"w","url":"http://h/","worker_pool_size":4,"enable_pipelining":1}"#,
        )
        .expect("parses");
        assert_eq!((spec.max_inflight, spec.pipelining), (4, 1));
    }

    #[test]
    fn minimal_json_gets_the_defaults() {
        let spec: WebhookSpec =
            serde_json::from_str(r#"{"name":"w","url":"http://localhost:5000"}"#).expect("parses");
        assert_eq!(spec, WebhookSpec::new("w", "http://localhost:5000"));
        assert!(spec.validate().is_ok());
        assert_eq!(spec.event_kinds().expect("kinds").len(), 14);
    }

    #[test]
    fn errors_name_the_field() {
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.events = vec!["client.connected".into(), "client.teleported".into()];
        assert_eq!(spec.validate().expect_err("bad event").field, "events[1]");
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.headers.insert("x-evil".into(), "a\r\nb: c".into());
        assert_eq!(spec.validate().expect_err("crlf").field, "headers.x-evil");
        let mut spec = WebhookSpec::new("w", "ftp://h/");
        assert_eq!(spec.validate().expect_err("scheme").field, "url");
        spec.url = "http://${clientid}.example/".into();
        assert_eq!(spec.validate().expect_err("host template").field, "url");
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.retry_max_backoff = Duration::from_secs(u64::MAX);
        assert_eq!(
            spec.validate().expect_err("huge backoff").field,
            "retry_max_backoff"
        );
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.topics = vec!["a/#/b".into()];
        assert_eq!(spec.validate().expect_err("filter").field, "topics[0]");
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.request_ttl = Some(Duration::ZERO);
        assert_eq!(spec.validate().expect_err("zero ttl").field, "request_ttl");
        let spec: WebhookSpec =
            serde_json::from_str(r#"{"name":"w","url":"http://h","request_ttl":"45s"}"#)
                .expect("parses");
        assert_eq!(spec.request_ttl, Some(Duration::from_secs(45)));
        let error =
            serde_json::from_str::<WebhookSpec>(r#"{"name":"w","url":"http://h","colour":1}"#)
                .expect_err("unknown field");
        assert!(error.to_string().contains("colour"));
    }

    #[test]
    fn batches_need_a_body_and_the_same_url_and_headers_for_every_event() {
        let spec: WebhookSpec = serde_json::from_str(
            r#"{"name":"w","url":"http://h/in","batch":{"max_events":100,"max_wait":"10ms","format":"ndjson"}}"#,
        )
        .expect("parses");
        assert_eq!(spec.batch.max_events, 100);
        assert_eq!(spec.batch.max_wait, Duration::from_millis(10));
        assert_eq!(spec.batch.format, BatchFormat::Ndjson);
        assert!(spec.validate().is_ok());
        let field = |change: fn(&mut WebhookSpec)| {
            let mut batched = spec.clone();
            change(&mut batched);
            batched.validate().expect_err("invalid").field
        };
        assert_eq!(field(|s| s.batch.max_events = 0), "batch.max_events");
        assert_eq!(field(|s| s.batch.max_events = 10_001), "batch.max_events");
        assert_eq!(
            field(|s| s.batch.max_wait = Duration::from_secs(11)),
            "batch.max_wait"
        );
        assert_eq!(field(|s| s.method = Method::Get), "batch.max_events");
        assert_eq!(field(|s| s.url = "http://h/${clientid}".into()), "url");
        assert_eq!(
            field(|s| s.request_ttl = Some(Duration::from_millis(10))),
            "request_ttl"
        );
        assert_eq!(
            field(|s| {
                s.headers.insert("x-client".into(), "${clientid}".into());
            }),
            "headers.x-client"
        );
        let mut single = spec.clone();
        single.batch.max_events = 1;
        single.url = "http://h/${clientid}".into();
        assert!(
            single.validate().is_ok(),
            "one event per request: placeholders as ever"
        );
    }

    #[test]
    fn more_urls_are_checked_each_under_its_own_field() {
        let spec: WebhookSpec = serde_json::from_str(
            r#"{"name":"w","url":"http://a/in","urls":["https://b/in"],"url_strategy":"failover"}"#,
        )
        .expect("parses");
        assert_eq!(spec.url_strategy, UrlStrategy::Failover);
        assert!(spec.validate().is_ok());
        let field = |change: fn(&mut WebhookSpec)| {
            let mut more = spec.clone();
            change(&mut more);
            more.validate().expect_err("invalid").field
        };
        assert_eq!(field(|s| s.urls.push("ftp://c/".into())), "urls[1]");
        assert_eq!(field(|s| s.urls.push("http://a/in".into())), "urls[1]");
        assert_eq!(
            field(|s| s.urls = (0..16).map(|i| format!("http://h{i}/")).collect()),
            "urls"
        );
        assert_eq!(
            field(|s| {
                s.url_strategy = UrlStrategy::RoundRobin;
                s.max_inflight = 1;
            }),
            "max_inflight"
        );
        assert_eq!(
            field(|s| {
                s.batch.max_events = 10;
                s.urls[0] = "http://b/${clientid}".into();
            }),
            "urls[0]"
        );
        let shown = serde_json::to_value(WebhookSpec::new("w", "http://a/")).expect("json");
        assert_eq!(shown["urls"], serde_json::json!([]));
        assert_eq!(shown["url_strategy"], "round_robin");
    }
}
