//! Work shared by the nodes: a JetStream work-queue stream that every live node helps to
//! drain, in order within a partition, with nothing lost when a node dies.
//!
//! - Items go to the stream `<prefix>_wq_<name>` on subject `<prefix>.wq.<name>.<p>`, `p`
//!   one of [`PARTITIONS`] (the layer above picks it: a webhook by client, so a client's
//!   events stay in order). A publish is done when JetStream has stored it; its id
//!   (`Nats-Msg-Id`) makes a repeated publish a no-op.
//! - Each partition has one owner at a time: the node holding its **lease**, a key of the
//!   bucket `<prefix>_leases` whose values live [`LEASE_TTL`]. The owner renews it every
//!   [`ROUND`]; a node that dies stops renewing, and the lease expires. Every node running
//!   the queue also renews a member key there, so each knows who else runs it; who should
//!   own a partition is decided by rendezvous hashing over those members, so partitions
//!   spread over them and move little when one comes or goes: a node takes a free lease it
//!   is preferred for, or any lease free for two rounds, and gives up one another member
//!   is preferred for.
//! - The owner of a partition reads it through a durable pull consumer of its own subject
//!   (explicit acks, at most `window` unacknowledged), made afresh when it takes the
//!   lease, so it starts from the oldest item nobody acknowledged, the ones the previous
//!   owner held included: order holds across owners, and an item done but not acknowledged
//!   when its owner died is done again.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{
    HeaderMap, Subject,
    jetstream::{self, consumer::pull, kv, stream},
};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{ClusterError, shared::open_bucket};

/// Partitions of every work queue: the unit of ownership and of order.
pub const PARTITIONS: usize = 64;
/// How long a lease lives without being renewed.
const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often leases are renewed, taken and given up.
const ROUND: Duration = Duration::from_secs(2);
/// How long an item may stay unacknowledged before JetStream offers it again (to its
/// owner, who skips what it holds: see [`WorkSink::holds`]).
const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long a fetch waits for items when there are none.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Acknowledgements waiting to be sent at most (past it one is sent from a task of its own).
const ACKS: usize = 65_536;

/// Where the items a node takes go: the layer that does the work.
pub trait WorkSink: Send + Sync + 'static {
    /// Items of `partition` given to this node and not yet acknowledged or forgotten.
    fn held(&self, partition: usize) -> usize;
    /// Whether item `seq` is held here already (offered again after [`ACK_WAIT`]).
    fn holds(&self, seq: u64) -> bool;
    /// An item to do; acknowledge it with [`WorkQueue::ack`] once done.
    fn take(&self, work: Work);
    /// `partition` is no longer this node's: forget its items held here without
    /// acknowledging them (its next owner gets them).
    fn forget(&self, partition: usize);
}

/// One item given to this node.
#[derive(Debug)]
pub struct Work {
    /// Its partition.
    pub partition: usize,
    /// Its number in the stream (unique, increasing).
    pub seq: u64,
    /// What was published.
    pub payload: Bytes,
    /// Acknowledges it ([`WorkQueue::ack`]).
    pub ack: AckToken,
}

/// What acknowledges one item.
#[derive(Debug, Clone)]
pub struct AckToken {
    partition: usize,
    reply: Option<Subject>,
}

/// A work queue's settings.
#[derive(Debug, Clone)]
pub struct WorkQueueConfig {
    /// Its name (letters, digits, `-`, `_`).
    pub name: String,
    /// Items a node holds unacknowledged per partition at most.
    pub window: usize,
    /// Bytes the stream keeps at most; past it publishing fails (the caller counts it).
    pub max_bytes: u64,
}

/// A work queue shared by the nodes. Cheap to clone; [`WorkQueue::close`] stops this
/// node's part.
#[derive(Clone)]
pub struct WorkQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.inner.config.name)
            .finish()
    }
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    node: String,
    prefix: String,
    config: WorkQueueConfig,
    /// Resolves once the stream exists.
    ready: Notify,
    is_ready: AtomicBool,
    /// Bounded; full, an acknowledgement is sent from a task of its own.
    acks: mpsc::Sender<Subject>,
    /// Per partition: an item was acknowledged (its fetcher may have room again).
    room: Vec<Notify>,
    stop: CancellationToken,
}

impl Inner {
    fn stream_name(&self) -> String {
        format!("{}_wq_{}", self.prefix, self.config.name)
    }

    fn subject(&self, partition: usize) -> String {
        format!("{}.wq.{}.{partition}", self.prefix, self.config.name)
    }

    fn lease_key(&self, partition: usize) -> String {
        format!("{}.p.{partition}", self.config.name)
    }

    /// The prefix of the queue's member keys; a key ends with the node's name in base64url.
    fn member_prefix(&self) -> String {
        format!("{}.n.", self.config.name)
    }

    fn member_key(&self) -> String {
        let node = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.node);
        format!("{}{node}", self.member_prefix())
    }
}

impl WorkQueue {
    pub(crate) fn start(
        client: async_nats::Client,
        node: String,
        prefix: String,
        config: WorkQueueConfig,
        sink: Arc<dyn WorkSink>,
    ) -> Self {
        let (acks, pending_acks) = mpsc::channel(ACKS);
        let inner = Arc::new(Inner {
            js: jetstream::new(client.clone()),
            client,
            node,
            prefix,
            config,
            ready: Notify::new(),
            is_ready: AtomicBool::new(false),
            acks,
            room: (0..PARTITIONS).map(|_| Notify::new()).collect(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(send_acks(
            inner.client.clone(),
            pending_acks,
            inner.stop.clone(),
        ));
        tokio::spawn(own_partitions(Arc::clone(&inner), sink));
        Self { inner }
    }

    /// Stores `items` (partition, id, payload) in the stream, all sent before any is
    /// awaited; done when JetStream has stored every one.
    ///
    /// # Errors
    /// [`ClusterError::Nats`] when one was not stored (NATS away, the stream full): publish
    /// them all again, the ids make the stored ones no-ops.
    pub async fn publish(&self, items: Vec<(usize, String, Bytes)>) -> Result<(), ClusterError> {
        let inner = &self.inner;
        while !inner.is_ready.load(Ordering::Acquire) {
            let ready = inner.ready.notified();
            if inner.is_ready.load(Ordering::Acquire) {
                break;
            }
            tokio::select! {
                () = ready => {}
                () = inner.stop.cancelled() => return Err(ClusterError::Nats("work queue closed".into())),
            }
        }
        let failed = |e: &dyn std::fmt::Display| {
            ClusterError::Nats(format!("work queue {}: {e}", inner.config.name))
        };
        let mut stored = Vec::with_capacity(items.len());
        for (partition, id, payload) in items {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            let ack = inner
                .js
                .publish_with_headers(inner.subject(partition % PARTITIONS), headers, payload)
                .await
                .map_err(|e| failed(&e))?;
            stored.push(ack);
        }
        for ack in stored {
            ack.await.map_err(|e| failed(&e))?;
        }
        Ok(())
    }

    /// Acknowledges an item: done, never offered again.
    pub fn ack(&self, token: AckToken) {
        let Some(reply) = token.reply else { return };
        if let Err(mpsc::error::TrySendError::Full(reply)) = self.inner.acks.try_send(reply) {
            let client = self.inner.client.clone();
            tokio::spawn(async move {
                let _ = client.publish(reply, Bytes::from_static(b"+ACK")).await;
            });
        }
        if let Some(room) = self.inner.room.get(token.partition) {
            room.notify_one();
        }
    }

    /// Stops taking items and gives this node's leases up, so other nodes take its
    /// partitions at once (what it held and did not acknowledge goes to them).
    pub fn close(&self) {
        self.inner.stop.cancel();
    }

    /// Deletes the stream and everything waiting in it (the work is gone for every node).
    ///
    /// # Errors
    /// [`ClusterError::Nats`] when NATS does not delete it.
    pub async fn destroy(&self) -> Result<(), ClusterError> {
        self.close();
        match self.inner.js.delete_stream(self.inner.stream_name()).await {
            Ok(_) => Ok(()),
            Err(error) if error.to_string().contains("not found") => Ok(()),
            Err(error) => Err(ClusterError::Nats(error.to_string())),
        }
    }
}

/// Sends acknowledgements in order until the queue closes (and then what is left).
async fn send_acks(
    client: async_nats::Client,
    mut acks: mpsc::Receiver<Subject>,
    stop: CancellationToken,
) {
    loop {
        let reply = tokio::select! {
            reply = acks.recv() => reply,
            () = stop.cancelled() => None,
        };
        let Some(reply) = reply else { break };
        let _ = client.publish(reply, Bytes::from_static(b"+ACK")).await;
    }
    while let Ok(reply) = acks.try_recv() {
        let _ = client.publish(reply, Bytes::from_static(b"+ACK")).await;
    }
    let _ = client.flush().await;
}

/// The node `partition` of queue `name` prefers among `nodes`: the highest hash of the
/// three (rendezvous hashing; FNV-1a, as every node must compute the same).
fn preferred<'a>(nodes: &'a [String], name: &str, partition: usize) -> Option<&'a str> {
    nodes
        .iter()
        .max_by_key(|node| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in node
                .bytes()
                .chain([0])
                .chain(name.bytes())
                .chain(partition.to_le_bytes())
            {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            // FNV's low bits mix poorly: finish like splitmix64.
            hash ^= hash >> 31;
            hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            hash ^ (hash >> 29)
        })
        .map(String::as_str)
}

/// One partition owned here: its lease's revision and its fetcher's stop.
struct Owned {
    revision: u64,
    fetching: CancellationToken,
}

/// Makes the stream, then renews, takes and gives up leases every [`ROUND`] until the
/// queue closes; then gives every lease up.
async fn own_partitions(inner: Arc<Inner>, sink: Arc<dyn WorkSink>) {
    let (stream, leases) = loop {
        match prepare(&inner).await {
            Ok(made) => break made,
            Err(error) => {
                tracing::warn!(queue = %inner.config.name, %error, "work queue not ready; trying again");
            }
        }
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    inner.is_ready.store(true, Ordering::Release);
    inner.ready.notify_waiters();
    let mut owned: Vec<Option<Owned>> = (0..PARTITIONS).map(|_| None).collect();
    let mut free_rounds = [0_u32; PARTITIONS];
    loop {
        let round = Round {
            inner: &inner,
            sink: &sink,
            stream: &stream,
            leases: &leases,
        };
        round.run(&mut owned, &mut free_rounds).await;
        tokio::select! {
            () = inner.stop.cancelled() => break,
            () = tokio::time::sleep(ROUND) => {}
        }
    }
    for (partition, slot) in owned.iter_mut().enumerate() {
        if let Some(owned) = slot.take() {
            owned.fetching.cancel();
            sink.forget(partition);
            let _ = leases.delete(inner.lease_key(partition)).await;
        }
    }
    let _ = leases.delete(inner.member_key()).await;
}

async fn prepare(inner: &Inner) -> Result<(stream::Stream, kv::Store), async_nats::Error> {
    let stream = inner
        .js
        .get_or_create_stream(stream::Config {
            name: inner.stream_name(),
            subjects: vec![format!("{}.wq.{}.*", inner.prefix, inner.config.name)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            max_bytes: i64::try_from(inner.config.max_bytes).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let leases = open_bucket(
        inner.client.clone(),
        &format!("{}_leases", inner.prefix),
        LEASE_TTL,
    )
    .await?;
    Ok((stream, leases))
}

/// One round of lease keeping.
struct Round<'a> {
    inner: &'a Arc<Inner>,
    sink: &'a Arc<dyn WorkSink>,
    stream: &'a stream::Stream,
    leases: &'a kv::Store,
}

impl Round<'_> {
    async fn run(&self, owned: &mut [Option<Owned>], free_rounds: &mut [u32; PARTITIONS]) {
        let inner = self.inner;
        let here = Bytes::from(inner.node.clone());
        if self.leases.put(inner.member_key(), here).await.is_err() {
            return;
        }
        let Ok((held, members)) = self.listing().await else {
            return;
        };
        let mut live: Vec<String> = members.into_iter().collect();
        if !live.contains(&inner.node) {
            live.push(inner.node.clone());
        }
        for partition in 0..PARTITIONS {
            if inner.stop.is_cancelled() {
                return;
            }
            let key = inner.lease_key(partition);
            let preferred = preferred(&live, &inner.config.name, partition);
            let mine = preferred == Some(inner.node.as_str());
            free_rounds[partition] = if held.contains(&key) {
                0
            } else {
                free_rounds[partition].saturating_add(1)
            };
            if let Some(current) = owned[partition].take() {
                owned[partition] = self.keep(partition, current, mine).await;
            } else if mine || free_rounds[partition] >= 2 {
                owned[partition] = self.take(partition).await;
            }
        }
    }

    /// The queue's lease keys held now, and its members (nodes running it).
    async fn listing(&self) -> Result<(HashSet<String>, BTreeSet<String>), ()> {
        let leases = format!("{}.p.", self.inner.config.name);
        let members = self.inner.member_prefix();
        let mut keys = self.leases.keys().await.map_err(drop)?;
        let (mut held, mut names) = (HashSet::new(), BTreeSet::new());
        while let Some(key) = keys.next().await {
            let key = key.map_err(drop)?;
            if key.starts_with(&leases) {
                held.insert(key);
            } else if let Some(name) = key.strip_prefix(&members) {
                let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(name);
                if let Some(name) = name.ok().and_then(|n| String::from_utf8(n).ok()) {
                    names.insert(name);
                }
            }
        }
        Ok((held, names))
    }

    /// Renews a lease this node holds, or gives it up to the preferred node.
    async fn keep(&self, partition: usize, current: Owned, mine: bool) -> Option<Owned> {
        let key = self.inner.lease_key(partition);
        if !mine {
            current.fetching.cancel();
            self.sink.forget(partition);
            let _ = self.leases.delete(&key).await;
            return None;
        }
        let value = Bytes::from(self.inner.node.clone());
        match self.leases.update(&key, value, current.revision).await {
            Ok(revision) => Some(Owned {
                revision,
                fetching: current.fetching,
            }),
            Err(error) => {
                tracing::warn!(queue = %self.inner.config.name, partition, %error, "lost a work partition's lease");
                current.fetching.cancel();
                self.sink.forget(partition);
                None
            }
        }
    }

    /// Takes a free lease and starts reading the partition from its oldest item.
    async fn take(&self, partition: usize) -> Option<Owned> {
        let key = self.inner.lease_key(partition);
        let revision = self
            .leases
            .create(&key, Bytes::from(self.inner.node.clone()))
            .await
            .ok()?;
        let consumer = format!("p{partition}");
        // Made afresh: it starts at the oldest item not acknowledged, whoever held it.
        let _ = self.stream.delete_consumer(&consumer).await;
        let made = self
            .stream
            .create_consumer(pull::Config {
                durable_name: Some(consumer),
                filter_subject: self.inner.subject(partition),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: i64::try_from(self.inner.config.window.max(1)).unwrap_or(1),
                ..Default::default()
            })
            .await;
        let consumer = match made {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(queue = %self.inner.config.name, partition, %error, "cannot read a work partition");
                let _ = self.leases.delete(&key).await;
                return None;
            }
        };
        let fetching = self.inner.stop.child_token();
        tokio::spawn(fetch(
            Arc::clone(self.inner),
            Arc::clone(self.sink),
            partition,
            consumer,
            fetching.clone(),
        ));
        Some(Owned { revision, fetching })
    }
}

/// Reads an owned partition while this node holds it: as many items as the window has
/// room for, each given to the sink once.
async fn fetch(
    inner: Arc<Inner>,
    sink: Arc<dyn WorkSink>,
    partition: usize,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    stop: CancellationToken,
) {
    let window = inner.config.window.max(1);
    while !stop.is_cancelled() {
        let room = window.saturating_sub(sink.held(partition));
        if room == 0 {
            tokio::select! {
                () = stop.cancelled() => return,
                () = inner.room[partition].notified() => {}
                // A forget may have made room without an acknowledgement.
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let batch = consumer
            .batch()
            .max_messages(room)
            .expires(FETCH_WAIT)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::debug!(%error, "work fetch failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = batch.next() => message,
            };
            let Some(Ok(message)) = message else { break };
            let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                continue;
            };
            if sink.holds(seq) {
                continue;
            }
            sink.take(Work {
                partition,
                seq,
                payload: message.payload.clone(),
                ack: AckToken {
                    partition,
                    reply: message.reply.clone(),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_the_nodes_and_move_little() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut per_node = std::collections::HashMap::new();
        let mut moved = 0;
        for partition in 0..PARTITIONS {
            let owner = preferred(&three, "hook", partition).expect("owner");
            *per_node.entry(owner).or_insert(0) += 1;
            let after = preferred(&two, "hook", partition).expect("owner");
            if owner != "c" && after != owner {
                moved += 1;
            }
        }
        assert_eq!(per_node.len(), 3, "{per_node:?}");
        assert!(per_node.values().all(|&n| n >= 10), "{per_node:?}");
        assert_eq!(moved, 0, "only c's partitions move when c goes");
        assert_eq!(preferred(&[], "hook", 0), None);
    }
}
