//! EMQX's `http` connector, `http` action and rule, with EMQX's field names and defaults
//! (`emqx_bridge_http_connector`, `emqx_bridge_http_schema`, `emqx_rule_api_schema`). They
//! are stored as given, defaults filled in; EMQX fields hookmq has no use for are accepted
//! and shown back, and any other field is refused by name.

use std::collections::BTreeMap;

use hookmq_broker::duration;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The only connector and action type hookmq has, as ids write it.
pub(crate) const HTTP: &str = "http";

fn yes() -> bool {
    true
}

/// EMQX's connector headers when none are given.
fn connector_headers() -> BTreeMap<String, String> {
    [
        ("accept", "application/json"),
        ("cache-control", "no-cache"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("keep-alive", "timeout=5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn text(value: &str) -> String {
    value.to_owned()
}
fn fifteen_seconds() -> String {
    text("15s")
}
fn pool_size() -> u32 {
    8
}
fn random() -> String {
    text("random")
}
fn pipelining() -> u32 {
    100
}
fn post() -> String {
    text("post")
}
fn worker_pool_size() -> u32 {
    16
}
fn inflight_window() -> u32 {
    100
}
fn max_buffer_bytes() -> String {
    text("256MB")
}
fn infinity() -> String {
    text("infinity")
}
fn max_retries() -> u32 {
    2
}
fn verify_peer() -> String {
    text("verify_peer")
}

/// The only connector and action type hookmq has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub(crate) enum Type {
    /// `http`.
    #[default]
    #[serde(rename = "http")]
    Http,
}

/// The connector's `ssl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Ssl {
    /// Ignored: an `https` URL is TLS, an `http` one is not.
    #[serde(default)]
    pub(crate) enable: bool,
    /// `verify_peer` (hookmq's default: EMQX's is `verify_none`) or `verify_none`.
    #[serde(default = "verify_peer")]
    #[schema(pattern = "^(verify_peer|verify_none)$")]
    pub(crate) verify: String,
    /// CA certificates file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cacertfile: Option<String>,
    /// Client certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) certfile: Option<String>,
    /// Client key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keyfile: Option<String>,
    /// EMQX's other TLS options (`versions`, `ciphers`, `server_name_indication`, ...),
    /// kept and shown back; hookmq uses rustls's defaults.
    #[serde(flatten)]
    pub(crate) other: Map<String, Value>,
}

impl Default for Ssl {
    fn default() -> Self {
        Self {
            enable: false,
            verify: verify_peer(),
            cacertfile: None,
            certfile: None,
            keyfile: None,
            other: Map::new(),
        }
    }
}

/// A connector's `resource_opts`: shown back (an action's settings rule its webhook).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorOpts {
    /// EMQX's connector health check interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) health_check_interval: Option<String>,
    /// EMQX's start option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start_after_created: Option<bool>,
    /// EMQX's start option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start_timeout: Option<String>,
}

/// An `http` connector: where requests go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Connector {
    /// Always `http`.
    #[serde(rename = "type")]
    pub(crate) kind: Type,
    /// Its name; the id is `http:<name>`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]
    pub(crate) name: String,
    /// Off: its actions deliver nothing.
    #[serde(default = "yes")]
    pub(crate) enable: bool,
    /// A note.
    #[serde(default)]
    pub(crate) description: String,
    /// The receiver's URL (EMQX keeps its path, not its query).
    pub(crate) url: String,
    /// Headers of every request; the action's win.
    #[serde(default = "connector_headers")]
    pub(crate) headers: BTreeMap<String, String>,
    /// Time allowed to connect (`15s`).
    #[serde(default = "fifteen_seconds")]
    pub(crate) connect_timeout: String,
    /// Idle connections kept.
    #[serde(default = "pool_size")]
    #[schema(minimum = 1)]
    pub(crate) pool_size: u32,
    /// Shown back; hookmq picks a lane by client id.
    #[serde(default = "random")]
    #[schema(pattern = "^(random|hash)$")]
    pub(crate) pool_type: String,
    /// Requests sent on a connection before the first answer.
    #[serde(default = "pipelining")]
    #[schema(minimum = 1, maximum = 1024)]
    pub(crate) enable_pipelining: u32,
    /// TLS.
    #[serde(default)]
    pub(crate) ssl: Ssl,
    /// EMQX's start and health options, shown back.
    #[serde(default)]
    pub(crate) resource_opts: ConnectorOpts,
    /// Labels, shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<Vec<String>>,
}

/// An action's `parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Parameters {
    /// Joined onto the connector's URL; starting with `?`, its query.
    #[serde(default)]
    pub(crate) path: String,
    /// `post`, `put`, `get` or `delete`.
    #[serde(default = "post")]
    #[schema(pattern = "^(post|put|get|delete)$")]
    pub(crate) method: String,
    /// Headers over the connector's (EMQX's five by default, as the connector's).
    #[serde(default = "connector_headers")]
    pub(crate) headers: BTreeMap<String, String>,
    /// Body template; absent: the whole event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<String>,
    /// Shown back; unused, as in EMQX (hookmq retries by `retry_max_age`).
    #[serde(default = "max_retries")]
    pub(crate) max_retries: u32,
    /// Deprecated in EMQX; when given, the time allowed for one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_timeout: Option<String>,
}

/// An action's `resource_opts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionOpts {
    /// Lanes delivering at once (hookmq's `max_inflight`).
    #[serde(default = "worker_pool_size")]
    #[schema(minimum = 1, maximum = 1024)]
    pub(crate) worker_pool_size: u32,
    /// Events older than this are dropped unsent; `infinity` (hookmq's default) never.
    #[serde(default = "infinity", alias = "request_timeout")]
    pub(crate) request_ttl: String,
    /// How often an idle or failing receiver is checked.
    #[serde(default = "fifteen_seconds")]
    pub(crate) health_check_interval: String,
    /// Shown back: a hookmq lane keeps a client's events in order.
    #[serde(default = "inflight_window", alias = "async_inflight_window")]
    #[schema(minimum = 1)]
    pub(crate) inflight_window: u32,
    /// Bytes the buffer takes at most (`256MB`, `1GB`).
    #[serde(default = "max_buffer_bytes", alias = "max_queue_bytes")]
    #[schema(pattern = "^[0-9]{1,12} *([KkMmGg]?[Bb])?$")]
    pub(crate) max_buffer_bytes: String,
    /// `memory_only` keeps events in memory only; by default hookmq keeps them on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(memory_only|volatile_offload)$")]
    pub(crate) buffer_mode: Option<String>,
    /// Shown back: hookmq never makes a publisher wait for a receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(sync|async)$")]
    pub(crate) query_mode: Option<String>,
    /// EMQX's internal tuning, shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) buffer_seg_bytes: Option<String>,
    /// EMQX's internal tuning, shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metrics_flush_interval: Option<String>,
    /// EMQX's internal tuning, shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resume_interval: Option<String>,
}

impl Default for ActionOpts {
    fn default() -> Self {
        Self {
            worker_pool_size: worker_pool_size(),
            request_ttl: infinity(),
            health_check_interval: fifteen_seconds(),
            inflight_window: inflight_window(),
            max_buffer_bytes: max_buffer_bytes(),
            buffer_mode: None,
            query_mode: None,
            buffer_seg_bytes: None,
            metrics_flush_interval: None,
            resume_interval: None,
        }
    }
}

/// An `http` action: what is sent, through which connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Action {
    /// Always `http`.
    #[serde(rename = "type")]
    pub(crate) kind: Type,
    /// Its name; the id is `http:<name>`. Its webhook is named the same, without `_WH_D`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]
    pub(crate) name: String,
    /// The connector's name.
    pub(crate) connector: String,
    /// Off: nothing is delivered.
    #[serde(default = "yes")]
    pub(crate) enable: bool,
    /// A note.
    #[serde(default)]
    pub(crate) description: String,
    /// The request.
    pub(crate) parameters: Parameters,
    /// The buffer.
    #[serde(default)]
    pub(crate) resource_opts: ActionOpts,
    /// When it was created, ms since the epoch (set by hookmq).
    #[serde(default)]
    pub(crate) created_at: u64,
    /// When it last changed, ms since the epoch (set by hookmq).
    #[serde(default)]
    pub(crate) last_modified_at: u64,
    /// Labels, shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<Vec<String>>,
}

/// A rule: which events go to which actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    /// Its id (8 hex digits made up when absent).
    #[serde(default)]
    #[schema(min_length = 1)]
    pub(crate) id: String,
    /// A name for people.
    #[serde(default)]
    pub(crate) name: String,
    /// `SELECT * FROM "<topic filter>", "$events/<event>", ... [WHERE topic =~ '<filter>' or ...]`.
    pub(crate) sql: String,
    /// `http:<action>` ids.
    #[serde(default)]
    #[schema(inline, value_type = Vec<String>)]
    pub(crate) actions: Vec<String>,
    /// Off: it selects nothing.
    #[serde(default = "yes")]
    pub(crate) enable: bool,
    /// A note (the Webhook page's).
    #[serde(default)]
    pub(crate) description: String,
    /// Kept, not shown (as EMQX).
    #[serde(default)]
    pub(crate) metadata: Map<String, Value>,
    /// When it was created, ms since the epoch (set by hookmq).
    #[serde(default)]
    pub(crate) created_at: u64,
    /// When it last changed, ms since the epoch (set by hookmq).
    #[serde(default)]
    pub(crate) last_modified_at: u64,
}

/// Parses EMQX's byte sizes: `256MB`, `1GB`, `512KB` (units of 1024), or bytes.
pub(crate) fn byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A duration field, or 400 naming it.
pub(crate) fn duration_of(text: &str, field: &str) -> Result<std::time::Duration, ApiError> {
    duration::parse(text).map_err(|reason| ApiError::bad_field(field, reason))
}

/// An object whose values are checked once it is read.
pub(crate) trait Checked {
    /// Refuses values hookmq cannot use, naming the field.
    fn check(&self) -> Result<(), ApiError>;
}

impl Checked for Connector {
    fn check(&self) -> Result<(), ApiError> {
        if !hookmq_webhooks::spec::valid_name(&self.name) {
            return Err(ApiError::bad_field("name", NAME_RULE));
        }
        duration_of(&self.connect_timeout, "connect_timeout")?;
        if self.ssl.other.contains_key("password") {
            return Err(ApiError::bad_field(
                "ssl.password",
                "key files with a passphrase are not supported: give an unencrypted keyfile",
            ));
        }
        check_url(&self.url)?;
        if !["verify_peer", "verify_none"].contains(&self.ssl.verify.as_str()) {
            return Err(ApiError::bad_field(
                "ssl.verify",
                "use verify_peer or verify_none",
            ));
        }
        if self.pool_size == 0 {
            return Err(ApiError::bad_field("pool_size", "must be at least 1"));
        }
        if !(1..=1024).contains(&self.enable_pipelining) {
            return Err(ApiError::bad_field("enable_pipelining", "1 to 1024"));
        }
        Ok(())
    }
}

/// Refuses a URL a webhook could not use, as the webhook's own check words it.
fn check_url(url: &str) -> Result<(), ApiError> {
    let probe = serde_json::json!({"name": "probe", "url": url});
    let spec: hookmq_webhooks::WebhookSpec =
        serde_json::from_value(probe).map_err(|e| ApiError::bad_field("url", e))?;
    match spec.validate() {
        Err(error) if error.field == "url" => Err(ApiError::bad_field("url", error.reason)),
        _ => Ok(()),
    }
}

/// What a name may be.
const NAME_RULE: &str = "use letters, digits, - and _, starting with a letter or digit";

impl Checked for Action {
    fn check(&self) -> Result<(), ApiError> {
        if !hookmq_webhooks::spec::valid_name(&self.name) {
            return Err(ApiError::bad_field("name", NAME_RULE));
        }
        if !["post", "put", "get", "delete"].contains(&self.parameters.method.as_str()) {
            return Err(ApiError::bad_field(
                "parameters.method",
                "use post, put, get or delete",
            ));
        }
        if let Some(timeout) = &self.parameters.request_timeout {
            duration_of(timeout, "parameters.request_timeout")?;
        }
        let opts = &self.resource_opts;
        if opts.request_ttl != "infinity" {
            duration_of(&opts.request_ttl, "resource_opts.request_ttl")?;
        }
        duration_of(
            &opts.health_check_interval,
            "resource_opts.health_check_interval",
        )?;
        if byte_size(&opts.max_buffer_bytes).is_none() {
            return Err(ApiError::bad_field(
                "resource_opts.max_buffer_bytes",
                "a size like 256MB, 1GB or 512KB",
            ));
        }
        for (field, value, allowed) in [
            (
                "buffer_mode",
                &opts.buffer_mode,
                ["memory_only", "volatile_offload"],
            ),
            ("query_mode", &opts.query_mode, ["sync", "async"]),
        ] {
            if let Some(value) = value
                && !allowed.contains(&value.as_str())
            {
                return Err(ApiError::bad_field(
                    format!("resource_opts.{field}"),
                    format!("use {} or {}", allowed[0], allowed[1]),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_read_as_emqx_writes_them() {
        assert_eq!(byte_size("256MB"), Some(256 << 20));
        assert_eq!(byte_size("1GB"), Some(1 << 30));
        assert_eq!(byte_size("512kb"), Some(512 << 10));
        assert_eq!(byte_size("1000"), Some(1000));
        assert_eq!(byte_size("lots"), None);
        assert_eq!(byte_size("5TB"), None);
    }

    #[test]
    fn defaults_are_emqxs() {
        let connector: Connector = serde_json::from_value(
            serde_json::json!({"type": "http", "name": "c", "url": "http://x"}),
        )
        .expect("connector");
        assert_eq!(connector.headers.len(), 5);
        assert_eq!((connector.pool_size, connector.enable_pipelining), (8, 100));
        connector.check().expect("valid");
        let action: Action = serde_json::from_value(serde_json::json!({
            "type": "http", "name": "a", "connector": "c", "parameters": {}
        }))
        .expect("action");
        assert_eq!(action.parameters.method, "post");
        assert_eq!(action.resource_opts.worker_pool_size, 16);
        action.check().expect("valid");
        let unknown = serde_json::from_value::<Action>(serde_json::json!({
            "type": "http", "name": "a", "connector": "c", "parameters": {"colour": 1}
        }));
        assert!(unknown.is_err(), "unknown fields are refused");
    }
}
