//! The broker's configuration sections, as read from `hookmq.toml` and `HOOKMQ_*` variables.
//!
//! Every field has a default, so an empty file (or none) gives a working broker. Durations are
//! written as `"15s"`, `"500ms"`, `"2h"` or a number of seconds.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::duration;

/// Everything the broker core needs to start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's identity and data directory.
    pub node: NodeConfig,
    /// Where clients connect.
    pub listeners: ListenersConfig,
    /// MQTT protocol limits and session behaviour.
    pub mqtt: MqttConfig,
    /// Who may connect.
    pub auth: AuthConfig,
    /// What connected clients may publish and subscribe to.
    pub authz: AuthzConfig,
    /// What survives a stop or a crash: retained messages and persistent sessions.
    pub persistence: PersistenceConfig,
    /// `$SYS` topics (EMQX's `sys_topics`).
    pub sys_topics: SysTopicsConfig,
    /// Alarms: what a change does, how many past ones are kept (EMQX's `alarm`).
    pub alarm: crate::alarms::AlarmConfig,
    /// System checks that raise alarms (EMQX's `sysmon`).
    pub sysmon: crate::alarms::SysmonConfig,
}

/// `$SYS` topics, as EMQX's `sys_topics`: the broker's own messages about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SysTopicsConfig {
    /// How often `version`, `sysdescr`, `$SYS/brokers` and the counts under `stats/` and
    /// `metrics/` are published; `0s` never.
    #[serde(with = "duration")]
    pub sys_msg_interval: Duration,
    /// How often `uptime` and `datetime` are published; `0s` never.
    #[serde(with = "duration")]
    pub sys_heartbeat_interval: Duration,
    /// Which client events are published under `$SYS/brokers/<node>/clients/<clientid>/`.
    pub sys_event_messages: SysEventMessages,
}

impl Default for SysTopicsConfig {
    fn default() -> Self {
        Self {
            sys_msg_interval: Duration::from_secs(60),
            sys_heartbeat_interval: Duration::from_secs(30),
            sys_event_messages: SysEventMessages::default(),
        }
    }
}

/// The client events published as `$SYS` messages (EMQX's defaults).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SysEventMessages {
    /// `.../connected`, when a client connects.
    pub client_connected: bool,
    /// `.../disconnected`, when it goes away.
    pub client_disconnected: bool,
    /// `.../subscribed`, per subscription made.
    pub client_subscribed: bool,
    /// `.../unsubscribed`, per subscription removed.
    pub client_unsubscribed: bool,
}

impl Default for SysEventMessages {
    fn default() -> Self {
        Self {
            client_connected: true,
            client_disconnected: true,
            client_subscribed: false,
            client_unsubscribed: false,
        }
    }
}

/// The node's identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Node name, reported as `node` in every webhook body.
    pub name: String,
    /// Directory for state that survives a restart (created if missing).
    pub data_dir: PathBuf,
    /// On a stop signal, the time connections get to close, then (in a cluster) the time
    /// the kept sessions of the clients that were connected get to move to the nodes those
    /// clients reconnect to, and then the time webhook requests in flight get to be answered (disk-buffered events not sent by then are
    /// delivered after the next start).
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "hookmq@127.0.0.1".into(),
            data_dir: PathBuf::from("data"),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The four listeners. TLS and WSS start only when a certificate and key are configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenersConfig {
    /// Plain MQTT over TCP.
    pub tcp: ListenerConfig,
    /// MQTT over WebSocket.
    pub ws: ListenerConfig,
    /// MQTT over TLS.
    pub tls: ListenerConfig,
    /// MQTT over WebSocket over TLS.
    pub wss: ListenerConfig,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        let at = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
        Self {
            tcp: ListenerConfig::new(at(1883)),
            ws: ListenerConfig::new(at(8083)),
            tls: ListenerConfig::new(at(8883)),
            wss: ListenerConfig::new(at(8084)),
        }
    }
}

/// One listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Whether to start it (TLS/WSS also need `certfile` and `keyfile`).
    pub enable: bool,
    /// Address and port to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// WebSocket path (WS and WSS only).
    pub path: String,
    /// PEM certificate chain (TLS and WSS).
    pub certfile: Option<PathBuf>,
    /// PEM private key (TLS and WSS).
    pub keyfile: Option<PathBuf>,
    /// PEM file of the CAs that sign client certificates (TLS and WSS): with it, clients
    /// are asked for a certificate, and one they send must verify.
    pub cacertfile: Option<PathBuf>,
    /// With `cacertfile`: refuse clients that send no certificate (by default they may
    /// still log in as any other client).
    pub fail_if_no_peer_cert: bool,
    /// With `cacertfile`: a verified client certificate authenticates its client, whose
    /// user name becomes the certificate's `cn` (subject common name) or `san` (first DNS
    /// name). None: certificates are verified, and clients authenticate as usual.
    pub peer_cert_as_username: Option<PeerCertField>,
    /// A prefix put before every topic its clients publish to and filter they subscribe
    /// to, and taken off the topics they receive (EMQX's `mountpoint`); `${clientid}`,
    /// `${username}` and `${client_attrs.<name>}` are replaced. Empty: none.
    pub mountpoint: String,
}

/// Which name of a client certificate becomes the user name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PeerCertField {
    /// The subject's common name.
    Cn,
    /// The first DNS subject alternative name.
    San,
}

impl ListenerConfig {
    fn new(bind: SocketAddr) -> Self {
        Self {
            enable: true,
            bind,
            path: "/mqtt".into(),
            certfile: None,
            keyfile: None,
            cacertfile: None,
            fail_if_no_peer_cert: false,
            peer_cert_as_username: None,
            mountpoint: String::new(),
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self::new(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// What a queued message counts towards `max_queue_bytes` besides its topic and payload:
/// roughly the memory of the structures that hold it.
pub const QUEUED_MESSAGE_OVERHEAD: usize = 256;

/// MQTT limits and session behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Most connections open at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Most connections open at once from one source address (IPv6: one /64); further
    /// ones are closed at accept and counted in `connections_refused_per_address`. 0: no
    /// limit.
    pub max_connections_per_address: usize,
    /// Most subscriptions one session may hold; a SUBSCRIBE past it is refused per filter
    /// (v5 reason 0x97 quota exceeded, v3 0x80) and counted in `subscriptions_refused`.
    /// 0: no limit.
    pub max_subscriptions: usize,
    /// Most levels in a topic name or filter (EMQX's default, 128). A filter past it is
    /// refused (0x8F topic filter invalid; v3 0x80); a PUBLISH past it is refused (v5 QoS
    /// 1/2: 0x90 topic name invalid) or dropped, and counted in `publishes_refused`.
    pub max_topic_levels: usize,
    /// PUBLISH packets one connection may send per second, with bursts of as many; past
    /// it the broker stops reading from that connection until the rate allows (TCP pushes
    /// back on the client; nothing is dropped), counted in `publish_rate_waits`. 0: no
    /// limit.
    pub max_publish_rate: u32,
    /// Time a new connection has to send CONNECT before it is closed.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Largest packet accepted from a client (advertised in CONNACK to v5 clients).
    pub max_packet_size: u32,
    /// Longest client identifier accepted.
    pub max_clientid_len: usize,
    /// Most QoS 1/2 messages a client may have unacknowledged towards the broker (v5
    /// Receive Maximum advertised in CONNACK).
    pub receive_maximum: u16,
    /// Most QoS 1/2 messages in flight towards a client whose CONNECT gave no Receive Maximum.
    pub max_inflight: u16,
    /// Microseconds a streaming connection holds a write of several packets to gather what
    /// comes meanwhile into one TCP segment (0: every write goes at once). A client waiting
    /// for each answer is never held, nor answers to a client whose publish window is narrow
    /// (see `connection::coalesce`). It spares a client that
    /// streams wake-ups and syscalls, at the cost of up to this much latency and of the
    /// broker's worker yielding while it holds (BENCHMARKS.md, issue 17).
    pub write_coalesce_us: u64,
    /// Highest topic alias a client may use towards the broker (0 disables aliases).
    pub max_topic_alias: u16,
    /// Most messages waiting in the queue of a session without a connection. At the bound
    /// (and when a session loses its connection with more queued) the oldest QoS 0 message
    /// is dropped first, else the oldest, and reported as `delivery.dropped` with reason
    /// `queue_full`. A connected session's queue drops only past both this and
    /// `max_queue_bytes`, so a live subscriber a little slower than its publisher gets a
    /// burst of small messages whole.
    pub max_queue_len: usize,
    /// How many bytes a connected session's queue may hold past `max_queue_len` messages:
    /// each message counts its topic and payload plus [`QUEUED_MESSAGE_OVERHEAD`] (a burst
    /// of 20,000 small messages takes about 5 MiB). At the bound: as `max_queue_len`.
    pub max_queue_bytes: usize,
    /// Whether QoS 0 messages are queued for offline sessions (if not: `delivery.dropped`,
    /// reason `qos0_msg`).
    pub queue_qos0: bool,
    /// Session expiry given to MQTT 3.x clients that connect with clean session = false.
    #[serde(with = "duration")]
    pub session_expiry_interval: Duration,
    /// Longest session expiry a v5 client may ask for.
    #[serde(with = "duration")]
    pub max_session_expiry_interval: Duration,
    /// Keep-alive the broker imposes on v5 clients (Server Keep Alive); none by default.
    #[serde(default, with = "duration::option")]
    pub server_keep_alive: Option<Duration>,
    /// A client is disconnected after `keepalive_multiplier × keep-alive` of silence.
    pub keepalive_multiplier: f32,
    /// Whether retained messages are stored.
    pub retain_available: bool,
    /// Whether subscriptions may use `+` and `#`.
    pub wildcard_subscription: bool,
    /// Whether `$share/{group}/{filter}` subscriptions are accepted.
    pub shared_subscription: bool,
    /// Highest QoS granted.
    pub max_qos: u8,
    /// Response Information returned to v5 clients that request it; `${clientid}` is
    /// replaced. Empty: none is returned.
    pub response_information: String,
    /// Attributes set at connect (EMQX's `client_attrs_init`; see
    /// [`crate::client_attrs`]), reported as `client_attrs` in events.
    pub client_attrs_init: Vec<crate::client_attrs::ClientAttrInit>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            max_connections: 1_000_000,
            max_connections_per_address: 0,
            max_subscriptions: 0,
            max_topic_levels: 128,
            max_publish_rate: 0,
            connect_timeout: Duration::from_secs(10),
            max_packet_size: 1024 * 1024,
            max_clientid_len: 65_535,
            receive_maximum: 32,
            max_inflight: 32,
            write_coalesce_us: 100,
            max_topic_alias: 65_535,
            max_queue_len: 1000,
            max_queue_bytes: 64 << 20,
            queue_qos0: true,
            session_expiry_interval: Duration::from_secs(2 * 3600),
            max_session_expiry_interval: Duration::from_secs(u32::MAX.into()),
            server_keep_alive: None,
            keepalive_multiplier: 1.5,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            max_qos: 2,
            response_information: String::new(),
            client_attrs_init: Vec::new(),
        }
    }
}

/// Authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether clients without a user name may connect.
    pub allow_anonymous: bool,
    /// A password file (`hookmq user add` writes it); when set, clients that give a user
    /// name must give that user's password.
    pub password_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            password_file: None,
        }
    }
}

/// What a rule-less decision falls back to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NoMatch {
    /// Allow what no rule denies.
    #[default]
    Allow,
    /// Deny what no rule allows.
    Deny,
}

/// Authorization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzConfig {
    /// An ACL file of rules (first match wins).
    pub acl_file: Option<PathBuf>,
    /// Decision when no rule matches (or no file is set).
    pub no_match: NoMatch,
    /// Decisions remembered per client, so repeated topics skip the rules.
    pub cache_size: usize,
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            acl_file: None,
            no_match: NoMatch::Allow,
            cache_size: 32,
        }
    }
}

/// A configuration value that is well-typed but unusable.
/// `[persistence]`: retained messages and sessions that outlive their connection (session
/// expiry > 0, or clean session = false) kept in `<data_dir>/broker/`, recovered at start.
/// Clean sessions and QoS 0 messages never touch the disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConfig {
    /// Whether anything is kept (off: every restart starts empty, as without a data dir).
    pub enable: bool,
    /// When what an acknowledgement promises is on disk.
    pub sync: SyncPolicy,
    /// With `sync = "interval"`, the longest time between two syncs (what a crash may lose).
    #[serde(with = "duration")]
    pub sync_interval: Duration,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            enable: true,
            sync: SyncPolicy::BeforeAck,
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// When persisted state reaches the disk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// A PUBACK, PUBREC or SUBACK that promises something kept (a retained message, a QoS 1/2
    /// message queued for a persistent session, a subscription of one) is written only once
    /// it is on disk; thousands of publishes share one `fdatasync` (group commit). A crash
    /// loses nothing acknowledged.
    BeforeAck,
    /// Written as it comes, synced every `sync_interval`; acknowledgements do not wait
    /// (unless the writer falls 262,144 records behind: then they wait as with
    /// `before_ack`, so a slow disk holds publishers back instead of filling memory). A
    /// crash may lose the last interval; a stop loses nothing.
    Interval,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    /// Dotted key, e.g. `mqtt.max_qos`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Config {
    /// Checks values that types alone cannot.
    ///
    /// # Errors
    /// The first invalid key, with the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let m = &self.mqtt;
        if m.max_qos > 2 {
            return bad("mqtt.max_qos", "must be 0, 1 or 2");
        }
        if m.receive_maximum == 0 {
            return bad("mqtt.receive_maximum", "must be at least 1");
        }
        if m.write_coalesce_us > 10_000 {
            return bad("mqtt.write_coalesce_us", "at most 10000 (10 ms)");
        }
        if m.max_inflight == 0 {
            return bad("mqtt.max_inflight", "must be at least 1");
        }
        if m.max_packet_size < 64 {
            return bad("mqtt.max_packet_size", "must be at least 64 bytes");
        }
        if m.keepalive_multiplier.is_nan() || m.keepalive_multiplier < 1.0 {
            return bad("mqtt.keepalive_multiplier", "must be at least 1.0");
        }
        if m.max_topic_levels == 0 {
            return bad("mqtt.max_topic_levels", "must be at least 1");
        }
        if m.max_connections == 0 {
            return bad("mqtt.max_connections", "must be at least 1");
        }
        if m.max_queue_bytes == 0 {
            return bad("mqtt.max_queue_bytes", "must be at least 1");
        }
        if m.max_queue_len == 0 {
            return bad("mqtt.max_queue_len", "must be at least 1");
        }
        for (i, rule) in m.client_attrs_init.iter().enumerate() {
            if let Err((field, reason)) = crate::client_attrs::check(rule) {
                return Err(ConfigError {
                    key: format!("mqtt.client_attrs_init[{i}].{field}"),
                    reason,
                });
            }
        }
        if self.persistence.sync_interval.is_zero() {
            return bad("persistence.sync_interval", "must be more than 0");
        }
        if self.node.name.is_empty() {
            return bad("node.name", "must not be empty");
        }
        for (name, listener) in [("ws", &self.listeners.ws), ("wss", &self.listeners.wss)] {
            if !listener.path.starts_with('/') {
                return Err(ConfigError {
                    key: format!("listeners.{name}.path"),
                    reason: "must start with /".into(),
                });
            }
        }
        for (name, listener) in [("tls", &self.listeners.tls), ("wss", &self.listeners.wss)] {
            if listener.certfile.is_some() != listener.keyfile.is_some() {
                return Err(ConfigError {
                    key: format!("listeners.{name}.keyfile"),
                    reason: "certfile and keyfile must be set together".into(),
                });
            }
            let needs_ca =
                listener.fail_if_no_peer_cert || listener.peer_cert_as_username.is_some();
            if needs_ca && listener.cacertfile.is_none() {
                return Err(ConfigError {
                    key: format!("listeners.{name}.cacertfile"),
                    reason: "client certificates need the CA that signs them".into(),
                });
            }
        }
        Ok(())
    }
}

/// A list of strings in a configuration file, or one string of them separated by commas (as
/// an environment variable gives it): `["a", "b"]` or `"a, b"`. Items are trimmed and empty
/// ones dropped. For `#[serde(deserialize_with = ...)]`.
///
/// # Errors
/// Neither a list of strings nor a string.
pub fn string_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Strings {
        List(Vec<String>),
        Text(String),
    }
    let items = match Strings::deserialize(deserializer)? {
        Strings::List(list) => list,
        Strings::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}
