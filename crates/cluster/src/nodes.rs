//! Who is in the cluster: every node answers `<prefix>.nodes` with what it is, and asking
//! gathers the answers that come within a short window. No node keeps a list that could go
//! stale: a node that does not answer is not in the cluster.

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;
use hookmq_broker::BrokerHandle;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// How long asking waits for answers.
const GATHER: Duration = Duration::from_millis(300);
/// Answers taken at most (a bound on what one question can bring).
const MOST_NODES: usize = 1024;

/// One node as it describes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its `node.name`.
    pub node: String,
    /// hookmq's version there.
    pub version: String,
    /// When it joined, ms since the epoch.
    pub started_at: u64,
    /// Open MQTT connections there.
    pub connections: usize,
    /// Subscriptions there.
    #[serde(default)]
    pub subscriptions: usize,
    /// Each webhook's metrics there, by name (as the webhooks layer reports them).
    #[serde(default)]
    pub webhooks: BTreeMap<String, serde_json::Value>,
}

/// What a layer above reports of each webhook on this node (its metrics, as JSON).
pub type WebhookReporter = Arc<dyn Fn() -> BTreeMap<String, serde_json::Value> + Send + Sync>;

/// Where the reporter goes once the webhooks layer gives it. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ReporterSlot(Arc<OnceLock<WebhookReporter>>);

impl std::fmt::Debug for ReporterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReporterSlot")
    }
}

impl ReporterSlot {
    /// Keeps `report` (the first one given stays).
    pub(crate) fn set(&self, report: WebhookReporter) {
        let _ = self.0.set(report);
    }

    fn report(&self) -> BTreeMap<String, serde_json::Value> {
        self.0.get().map(|report| report()).unwrap_or_default()
    }
}

/// Answers the cluster's `nodes` questions for this node.
pub(crate) async fn answer(
    client: Client,
    mut questions: Subscriber,
    broker: BrokerHandle,
    started_at: u64,
    reporter: ReporterSlot,
    stop: CancellationToken,
) {
    while let Some(question) = crate::link::next_until(&mut questions, &stop).await {
        let Some(reply) = question.reply else {
            continue;
        };
        let stats = broker.stats();
        let info = NodeInfo {
            node: broker.node_name().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at,
            connections: stats.connections,
            subscriptions: stats.subscriptions,
            webhooks: reporter.report(),
        };
        if let Ok(json) = serde_json::to_vec(&info)
            && let Err(error) = client.publish(reply, json.into()).await
        {
            tracing::warn!(%error, "this node's answer to who is in the cluster was not sent");
        }
    }
}

/// Every node that answers within [`GATHER`], sorted by name.
pub(crate) async fn gather(client: &Client, subject: String) -> Vec<NodeInfo> {
    let inbox = client.new_inbox();
    let Ok(mut answers) = client.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if client
        .publish_with_reply(subject, inbox, Bytes::new())
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut nodes = Vec::new();
    let deadline = tokio::time::Instant::now() + GATHER;
    while nodes.len() < MOST_NODES {
        let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await else {
            break;
        };
        if let Ok(info) = serde_json::from_slice::<NodeInfo>(&answer.payload) {
            nodes.push(info);
        }
    }
    let _ = answers.unsubscribe().await;
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    nodes
}
