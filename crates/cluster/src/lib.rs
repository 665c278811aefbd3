//! # hookmq-cluster
//!
//! hookmq nodes cooperating through NATS: a PUBLISH on any node reaches the matching
//! subscribers on every node. Each node subscribes to the NATS subjects of the filters its
//! own clients subscribed to (`subject`), so only messages someone wants cross the wire;
//! it forwards its clients' publishes on the subject of their topic, and routes what other
//! nodes forward to its own subscribers.
//!
//! ## Layout
//! - [`ClusterConfig`]: the `[cluster]` section.
//! - `subject`: MQTT topics and filters as NATS subjects.
//! - `link`: the forwarding queue (the broker's [`hookmq_broker::peers::Peers`]), the
//!   task that publishes it, the interest task that subscribes and the tasks that receive.
//! - `confirm`: a QoS 1/2 acknowledgement waits until NATS has taken what was forwarded.
//! - `sessions`: a persistent session moving to the node its client connected to.
//! - [`shared`]: state every node sees ([`SharedMap`], a JetStream key-value bucket) and
//!   follows, for the layers above (retained messages here, webhooks in hookmq-webhooks).
//! - `retained`: retained messages in a shared map, mirrored by every node.
//! - [`work`]: work queues every live node helps to drain ([`work::WorkQueue`], a
//!   JetStream work-queue stream in partitions, each read by the node holding its lease),
//!   for the webhooks' cluster buffer.
//! - `nodes`: every node answers who it is; asking gathers the answers ([`NodeInfo`]).
//! - [`ask`]: questions a layer above answers on every node (cluster-wide lists).
//! - [`Cluster`]: joining (connection, node name check) and its status; [`ClusterHandle`]
//!   for the API.
//!
//! Between nodes, messages go over core NATS; a QoS 1/2 PUBLISH is acknowledged once the
//! NATS server has taken it (so this node's death no longer loses it).
//! A node that loses NATS keeps serving its own clients and catches up on interest when
//! NATS is back.

pub mod ask;
mod confirm;
mod link;
mod nodes;
mod retained;
mod sessions;
pub mod shared;
pub mod subject;
pub mod work;

pub use nodes::{NodeInfo, WebhookReporter};
pub use shared::{Followed, SharedMap};

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{ConnectOptions, Event, connection::State};
use bytes::Bytes;
use hookmq_broker::BrokerHandle;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The `[cluster]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS servers, as a list or one comma-separated string
    /// (`HOOKMQ_CLUSTER__NATS_URL=nats://a:4222,nats://b:4222`). Empty (the default): a
    /// single node, no NATS.
    #[serde(deserialize_with = "hookmq_broker::config::string_list")]
    pub nats_url: Vec<String>,
    /// The first token of every subject hookmq uses, so several clusters can share NATS.
    pub subject_prefix: String,
    /// NATS servers that keep a copy of each of hookmq's JetStream streams (retained
    /// messages, webhooks, cluster buffers): 1 (the default) for a single NATS server; 3
    /// for a three-server JetStream cluster that must lose nothing when one server dies.
    pub replicas: usize,
    /// Messages waiting to be forwarded at most; past it new ones are not forwarded (each
    /// counted in `forward_dropped` and summarised in the log), and local subscribers still
    /// get them.
    pub forward_queue: usize,
    /// How long a QoS 1/2 PUBACK (and PUBREC) waits at most for NATS to confirm it took
    /// the message on its way to the other nodes, so that a message this node acknowledged
    /// reaches them even if this node dies right after (default `5s`). Past it the
    /// acknowledgement goes anyway, counted in `forward_unconfirmed`; `0s`: never wait
    /// (a little faster, and a message acknowledged just before this node dies may not
    /// reach the other nodes). While NATS is away nothing waits.
    #[serde(with = "hookmq_broker::duration")]
    pub forward_confirm_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: Vec::new(),
            subject_prefix: "hookmq".into(),
            replicas: 1,
            forward_queue: 65_536,
            forward_confirm_timeout: Duration::from_secs(5),
        }
    }
}

impl ClusterConfig {
    /// Whether this node joins a cluster.
    #[must_use]
    pub fn enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }
}

/// Why the node could not join.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS could not be reached in time.
    #[error("cluster.nats_url: cannot reach NATS at {urls}: {reason}")]
    Connect {
        /// The servers tried.
        urls: String,
        /// What went wrong.
        reason: String,
    },
    /// Another running node has this node's name.
    #[error(
        "node.name: {0} is the name of another running node of the cluster; give each node its own"
    )]
    NameTaken(String),
    /// A NATS subscription failed.
    #[error("cluster: {0}")]
    Nats(String),
}

/// How long joining waits for NATS before giving up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's membership of a cluster.
#[derive(Debug)]
pub struct Cluster {
    handle: ClusterHandle,
    stop: CancellationToken,
}

/// What the API asks of the cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    client: async_nats::Client,
    /// What this node says of its webhooks when asked who it is.
    reporter: nodes::ReporterSlot,
    node: String,
    prefix: String,
    replicas: usize,
    link: Arc<link::Link>,
    /// Messages NATS delivered here that a full subscription channel dropped.
    receive_dropped: Arc<AtomicU64>,
}

impl ClusterHandle {
    /// Whether NATS is connected now.
    #[must_use]
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The NATS servers' addresses as this node knows them (the one it uses first).
    #[must_use]
    pub fn server(&self) -> String {
        let info = self.client.server_info();
        format!("{}:{}", info.host, info.port)
    }

    /// Messages (and connection notices) not forwarded because the forwarding queue was
    /// full.
    #[must_use]
    pub fn forward_dropped(&self) -> u64 {
        self.link.dropped()
    }

    /// Messages NATS delivered to this node that it dropped because the subscription's
    /// channel was full (NATS calls it a slow consumer: the node could not keep up).
    #[must_use]
    pub fn receive_dropped(&self) -> u64 {
        self.receive_dropped.load(Ordering::Relaxed)
    }

    /// QoS 1/2 acknowledgements sent before NATS confirmed their messages
    /// (`forward_confirm_timeout` passed).
    #[must_use]
    pub fn forward_unconfirmed(&self) -> u64 {
        self.link.unconfirmed()
    }

    /// The shared map `<prefix>_<what>` (made if it does not exist yet).
    ///
    /// # Errors
    /// [`ClusterError::Nats`] when NATS (with JetStream) cannot be reached.
    pub async fn shared_map(&self, what: &str) -> Result<SharedMap, ClusterError> {
        SharedMap::open(
            self.client.clone(),
            &format!("{}_{what}", self.prefix),
            self.replicas,
        )
        .await
    }

    /// Starts this node's part of the work queue `config.name`: it publishes there and
    /// takes its share of the partitions, giving their items to `sink`.
    #[must_use]
    pub fn work_queue(
        &self,
        config: work::WorkQueueConfig,
        sink: Arc<dyn work::WorkSink>,
    ) -> work::WorkQueue {
        work::WorkQueue::start(
            self.client.clone(),
            self.node.clone(),
            self.prefix.clone(),
            self.replicas,
            config,
            sink,
        )
    }

    /// Has this node report its webhooks' metrics (`report`) when asked who it is; the
    /// first reporter given stays.
    pub fn report_webhooks(&self, report: WebhookReporter) {
        self.reporter.set(report);
    }

    /// Has this node answer the questions on `topic` (one NATS token) with `answerer`, as
    /// every node and as itself ([`ClusterHandle::ask_everyone`], [`ClusterHandle::ask_node`]).
    ///
    /// # Errors
    /// [`ClusterError::Nats`] when the subscriptions fail.
    pub async fn answer(&self, topic: &str, answerer: ask::Answerer) -> Result<(), ClusterError> {
        for subject in [
            ask::everyone(&self.prefix, topic),
            ask::one(&self.prefix, topic, &self.node),
        ] {
            let questions = self
                .client
                .subscribe(subject)
                .await
                .map_err(|e| ClusterError::Nats(e.to_string()))?;
            tokio::spawn(ask::answer(
                self.client.clone(),
                self.node.clone(),
                questions,
                Arc::clone(&answerer),
            ));
        }
        Ok(())
    }

    /// Every node's answer to `question` on `topic`, by node name, sorted: those that come
    /// within 300 ms (this one's included while NATS is up).
    pub async fn ask_everyone(&self, topic: &str, question: Vec<u8>) -> Vec<(String, Bytes)> {
        ask::gather(
            &self.client,
            ask::everyone(&self.prefix, topic),
            question.into(),
        )
        .await
    }

    /// `node`'s answer to `question` on `topic`, if it comes within 2 s.
    pub async fn ask_node(&self, node: &str, topic: &str, question: Vec<u8>) -> Option<Bytes> {
        ask::ask_one(
            &self.client,
            ask::one(&self.prefix, topic, node),
            question.into(),
        )
        .await
    }

    /// Every node that answers within 300 ms (this one included while NATS is up), by name.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        nodes::gather(&self.client, format!("{}.nodes", self.prefix)).await
    }
}

impl Cluster {
    /// Connects to NATS, checks that no running node has this node's name, and starts
    /// forwarding `broker`'s publishes and receiving the other nodes'.
    ///
    /// # Errors
    /// [`ClusterError`] naming the setting at fault.
    pub async fn join(config: &ClusterConfig, broker: BrokerHandle) -> Result<Self, ClusterError> {
        let node = broker.node_name().to_owned();
        let logged_node = node.clone();
        let losses = Arc::new(confirm::Losses::default());
        let told_losses = Arc::clone(&losses);
        let receive_dropped = Arc::new(AtomicU64::new(0));
        let counted_drops = Arc::clone(&receive_dropped);
        let client = ConnectOptions::new()
            .name(format!("hookmq {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let node = logged_node.clone();
                if matches!(event, Event::Disconnected) {
                    told_losses.lost();
                }
                // One event per message dropped: counted, and told in the 10 s summary.
                if matches!(event, Event::SlowConsumer(_)) {
                    counted_drops.fetch_add(1, Ordering::Relaxed);
                }
                async move {
                    match event {
                        Event::SlowConsumer(_) => {}
                        Event::Disconnected => tracing::warn!(
                            %node,
                            "lost NATS: serving this node's clients only until it is back"
                        ),
                        Event::Connected => tracing::info!(%node, "connected to NATS"),
                        other => tracing::info!(%node, event = %other, "NATS"),
                    }
                }
            })
            .connect(config.nats_url.clone())
            .await
            .map_err(|e| connect_error(config, e))?;
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        while client.connection_state() != State::Connected {
            if tokio::time::Instant::now() >= deadline {
                return Err(connect_error(config, "no connection within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stop = CancellationToken::new();
        let link = link::Link::start(
            config,
            &node,
            (client.clone(), losses),
            broker.clone(),
            stop.clone(),
        )
        .await?;
        let prefix = config.subject_prefix.clone();
        let questions = client
            .subscribe(format!("{prefix}.nodes"))
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
        let reporter = nodes::ReporterSlot::default();
        tokio::spawn(nodes::answer(
            client.clone(),
            questions,
            broker,
            hookmq_broker::message::now_ms(),
            reporter.clone(),
            stop.clone(),
        ));
        tracing::info!(%node, servers = %config.nats_url.join(","), "joined the cluster");
        tokio::spawn(summarise(
            Arc::clone(&link),
            Arc::clone(&receive_dropped),
            stop.clone(),
        ));
        Ok(Self {
            handle: ClusterHandle {
                client,
                reporter,
                node,
                prefix,
                replicas: config.replicas,
                link,
                receive_dropped,
            },
            stop,
        })
    }

    /// What the API asks of the cluster.
    #[must_use]
    pub fn handle(&self) -> ClusterHandle {
        self.handle.clone()
    }

    /// Stops forwarding and receiving.
    pub async fn leave(self) {
        self.stop.cancel();
        let _ = self.handle.client.drain().await;
    }
}

/// Logs, at most every 10 s, how many messages the full forwarding queue did not forward.
async fn summarise(link: Arc<link::Link>, received: Arc<AtomicU64>, stop: CancellationToken) {
    const DROPS: [&str; 2] = [
        "messages not forwarded to the cluster in the last 10 s: the forwarding queue was full (cluster.forward_queue)",
        "messages from other nodes dropped in the last 10 s: this node could not keep up (a NATS slow consumer)",
    ];
    let every = Duration::from_secs(10);
    let mut told = [0u64; 2];
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let counts = [link.dropped(), received.load(Ordering::Relaxed)];
        for ((now, told), what) in counts.into_iter().zip(&mut told).zip(DROPS) {
            if now > *told {
                tracing::warn!(count = now - *told, total = now, "{what}");
            }
            *told = now;
        }
    }
}

fn connect_error(config: &ClusterConfig, reason: impl std::fmt::Display) -> ClusterError {
    ClusterError::Connect {
        urls: config.nats_url.join(","),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_as_a_list_or_a_comma_separated_string() {
        let from_list: ClusterConfig =
            serde_json::from_str(r#"{"nats_url": ["nats://a:1", "nats://b:2"]}"#).expect("list");
        let from_text: ClusterConfig =
            serde_json::from_str(r#"{"nats_url": "nats://a:1, nats://b:2"}"#).expect("text");
        assert_eq!(from_list, from_text);
        assert!(from_list.enabled());
        assert!(!ClusterConfig::default().enabled());
    }
}
