//! `/stats` (gauges: how many of each thing now), `/metrics` (counters since start) and
//! `/nodes` (this node: name, version, uptime).

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{auth::Authenticated, error::ErrorBody, state::AppState};

/// This build's version.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/stats`, `/metrics`, `/nodes`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(metrics))
        .routes(routes!(nodes))
        .routes(routes!(cluster))
}

/// How many of each thing there are now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stats {
    /// This node.
    node: String,
    /// Open MQTT connections.
    connections: usize,
    /// Sessions, connected or offline.
    sessions: usize,
    /// Subscriptions.
    subscriptions: usize,
    /// Retained messages.
    retained: usize,
    /// Webhooks, enabled or not.
    webhooks: usize,
    /// Webhooks enabled.
    webhooks_enabled: usize,
    /// Events the webhooks' hook could not take (dropped since start).
    hook_events_dropped: u64,
}

/// Totals over webhooks.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct WebhookTotals {
    /// Events the triggers selected.
    matched: u64,
    /// Delivered with a 2xx answer.
    success: u64,
    /// Given up.
    failed: u64,
    /// Retries made.
    retried: u64,
    /// Dropped without delivery.
    dropped: u64,
}

/// One webhook's totals.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookCounts {
    /// The webhook.
    name: String,
    /// Its counts.
    #[serde(flatten)]
    counts: WebhookTotals,
}

/// Counters since start.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Metrics {
    /// This node.
    node: String,
    /// PUBLISH packets received.
    messages_received: u64,
    /// PUBLISH packets sent.
    messages_sent: u64,
    /// Messages that matched no subscriber.
    messages_dropped: u64,
    /// Deliveries dropped (full queue, expired, too large, no-local...).
    deliveries_dropped: u64,
    /// Bytes received.
    bytes_received: u64,
    /// Bytes sent.
    bytes_sent: u64,
    /// Connections accepted.
    connections_accepted: u64,
    /// Connections refused at `mqtt.max_connections`.
    connections_refused: u64,
    /// CONNECTs answered with a failed CONNACK (bad credentials, not authorized, ...).
    connects_refused: u64,
    /// Connections closed for breaking the MQTT protocol.
    protocol_errors: u64,
    /// Connections refused at `mqtt.max_connections_per_address`.
    connections_refused_per_address: u64,
    /// Subscriptions refused at `mqtt.max_subscriptions` or `mqtt.max_topic_levels`.
    subscriptions_refused: u64,
    /// PUBLISHes refused at `mqtt.max_topic_levels`.
    publishes_refused: u64,
    /// Times a connection's reading paused at `mqtt.max_publish_rate`.
    publish_rate_waits: u64,
    /// Events the webhooks' hook could not take.
    hook_events_dropped: u64,
    /// Sums over all webhooks.
    webhooks: WebhookTotals,
    /// Each webhook's counts, by name.
    by_webhook: Vec<WebhookCounts>,
}

/// This node.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeView {
    /// Node name (`[node] name`).
    node: String,
    /// Always `running` when it answers.
    node_status: &'static str,
    /// hookmq's version.
    version: String,
    /// When it started, ms since the epoch.
    started_at: u64,
    /// How long it has run, ms.
    uptime_ms: u64,
    /// Open MQTT connections.
    connections: usize,
    /// Subscriptions.
    subscriptions: usize,
}

/// How many clients, sessions, subscriptions, retained messages and webhooks there are now.
#[utoipa::path(get, path = "/stats", tag = "monitoring",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Gauges", body = Stats),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn stats(_: Authenticated, State(state): State<AppState>) -> Json<Stats> {
    let broker = state.broker();
    let s = broker.stats();
    let webhooks = state.engine.list();
    Json(Stats {
        node: broker.node_name().to_owned(),
        connections: s.connections,
        sessions: s.sessions,
        subscriptions: s.subscriptions,
        retained: s.retained,
        webhooks: webhooks.len(),
        webhooks_enabled: webhooks.iter().filter(|w| w.spec.enable).count(),
        hook_events_dropped: s.hook_events_dropped,
    })
}

/// The broker's counters since start, and the webhooks' delivery counts.
#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Counters", body = Metrics),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn metrics(_: Authenticated, State(state): State<AppState>) -> Json<Metrics> {
    let broker = state.broker();
    let s = broker.stats();
    let mut totals = WebhookTotals::default();
    let by_webhook = state
        .engine
        .list()
        .into_iter()
        .map(|w| {
            let m = &w.metrics;
            totals.matched += m.matched;
            totals.success += m.success;
            totals.failed += m.failed;
            totals.retried += m.retried;
            totals.dropped += m.dropped;
            WebhookCounts {
                name: w.spec.name,
                counts: WebhookTotals {
                    matched: m.matched,
                    success: m.success,
                    failed: m.failed,
                    retried: m.retried,
                    dropped: m.dropped,
                },
            }
        })
        .collect();
    Json(Metrics {
        node: broker.node_name().to_owned(),
        messages_received: s.messages_received,
        messages_sent: s.messages_sent,
        messages_dropped: s.messages_dropped_no_subscribers,
        deliveries_dropped: s.deliveries_dropped,
        bytes_received: s.bytes_received,
        bytes_sent: s.bytes_sent,
        connections_accepted: s.connections_accepted,
        connections_refused: s.connections_refused,
        connects_refused: s.connects_refused,
        protocol_errors: s.protocol_errors,
        connections_refused_per_address: s.connections_refused_per_address,
        subscriptions_refused: s.subscriptions_refused,
        publishes_refused: s.publishes_refused,
        publish_rate_waits: s.publish_rate_waits,
        hook_events_dropped: s.hook_events_dropped,
        webhooks: totals,
        by_webhook,
    })
}

/// The nodes: this one, or in a cluster every node that answers within 300 ms.
#[utoipa::path(get, path = "/nodes", tag = "monitoring",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The nodes, by name", body = Vec<NodeView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn nodes(_: Authenticated, State(state): State<AppState>) -> Json<Vec<NodeView>> {
    Json(node_views(&state).await)
}

/// This node alone, or every node of the cluster that answers.
async fn node_views(state: &AppState) -> Vec<NodeView> {
    let here = || {
        let broker = state.broker();
        NodeView {
            node: broker.node_name().to_owned(),
            node_status: "running",
            version: VERSION.to_owned(),
            started_at: state.started_at_ms,
            uptime_ms: u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            connections: broker.stats().connections,
            subscriptions: broker.stats().subscriptions,
        }
    };
    let Some(cluster) = &state.cluster else {
        return vec![here()];
    };
    let mut views: Vec<NodeView> = cluster
        .nodes()
        .await
        .into_iter()
        .map(|info| NodeView {
            node: info.node,
            node_status: "running",
            version: info.version,
            started_at: info.started_at,
            uptime_ms: hookmq_broker::message::now_ms().saturating_sub(info.started_at),
            connections: info.connections,
            subscriptions: info.subscriptions,
        })
        .collect();
    // Without NATS this node still runs: it is listed whatever the others say.
    let name = state.broker().node_name();
    if !views.iter().any(|view| view.node == name) {
        views.push(here());
        views.sort_by(|a, b| a.node.cmp(&b.node));
    }
    views
}

/// The cluster this node is part of: whether it is clustered, its NATS connection, and
/// its nodes (as `/nodes`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClusterView {
    /// Whether `[cluster] nats_url` is set.
    clustered: bool,
    /// `connected` or `disconnected` (NATS); absent for a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<&'static str>,
    /// The NATS server this node talks to; absent for a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    /// Messages not forwarded to the other nodes because this node's forwarding queue was
    /// full (`cluster.forward_queue`); absent for a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    forward_dropped: Option<u64>,
    /// QoS 1/2 acknowledgements sent before NATS confirmed their messages (after
    /// `cluster.forward_confirm_timeout`); absent for a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    forward_unconfirmed: Option<u64>,
    /// Messages from other nodes this node dropped because it could not keep up (a NATS
    /// slow consumer: a subscription's channel was full); absent for a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    receive_dropped: Option<u64>,
    /// The nodes that answered, by name.
    nodes: Vec<NodeView>,
}

/// The cluster: NATS status and nodes.
#[utoipa::path(get, path = "/cluster", tag = "monitoring",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The cluster", body = ClusterView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn cluster(_: Authenticated, State(state): State<AppState>) -> Json<ClusterView> {
    let nodes = node_views(&state).await;
    Json(match &state.cluster {
        None => ClusterView {
            clustered: false,
            nats: None,
            server: None,
            forward_dropped: None,
            forward_unconfirmed: None,
            receive_dropped: None,
            nodes,
        },
        Some(cluster) => ClusterView {
            clustered: true,
            nats: Some(if cluster.connected() {
                "connected"
            } else {
                "disconnected"
            }),
            server: Some(cluster.server()),
            forward_dropped: Some(cluster.forward_dropped()),
            forward_unconfirmed: Some(cluster.forward_unconfirmed()),
            receive_dropped: Some(cluster.receive_dropped()),
            nodes,
        },
    })
}
