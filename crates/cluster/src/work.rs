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

use tokio::{task::JoinHandle, time::Instant};

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
/// How long one lease operation may take before the round goes on without it.
const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// A holder that could not renew its lease for this long stops reading the partition, a
/// round before the lease may expire and another node take it.
const STALE_AFTER: Duration = Duration::from_secs(4);
/// How long taking a lease (the lease, the old consumers' deletion, the new consumer) may
/// take; past it the lease is left to expire.
const TAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds a partition given up waits for its events in flight before its lease goes.
const DRAIN_ROUNDS: u32 = 3;
/// How long a fetch waits for items when there are none.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Acknowledgements waiting to be sent at most (past it one is not sent: its item is
/// offered again after [`ACK_WAIT`]).
const ACKS: usize = 65_536;

/// Where the items a node takes go: the layer that does the work.
pub trait WorkSink: Send + Sync + 'static {
    /// Items of `partition` given to this node and not yet acknowledged or forgotten.
    fn held(&self, partition: usize) -> usize;
    /// Whether item `seq` is held here already (offered again after [`ACK_WAIT`], or by a
    /// consumer made afresh); if so, it is acknowledged through `ack` from now on (the
    /// earlier offer's may belong to a deleted consumer).
    fn refresh(&self, seq: u64, ack: &AckToken) -> bool;
    /// An item to do; acknowledge it with [`WorkQueue::ack`] once done.
    fn take(&self, work: Work);
    /// `partition` is read here from now on.
    fn took(&self, partition: usize);
    /// `partition` is no longer read here: forget its items waiting here, without
    /// acknowledging them (its next holder gets them). Those already being done may still
    /// be acknowledged; one given back is forgotten too.
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

/// What became of one item given to [`WorkQueue::publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Stored in the stream.
    Stored,
    /// Refused for good: larger than NATS takes, or the stream is full (`max_bytes`).
    Refused(String),
    /// Not stored now (NATS away, a leader being elected): publish it again.
    Retry,
}

impl Published {
    fn from_error(error: &jetstream::context::PublishError) -> Self {
        use jetstream::context::PublishErrorKind;
        let text = error.to_string();
        match error.kind() {
            PublishErrorKind::MaxPayloadExceeded => Self::Refused(text),
            // JetStream's answer when a stream with discard = new is at its bound.
            PublishErrorKind::Other if text.contains("maximum") => Self::Refused(text),
            _ => Self::Retry,
        }
    }
}

/// What acknowledges one item.
#[derive(Debug, Clone)]
pub struct AckToken {
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
    /// NATS servers keeping a copy of the stream and the leases.
    replicas: usize,
    /// Resolves once the stream exists.
    ready: Notify,
    is_ready: AtomicBool,
    /// Bounded ([`ACKS`]); full, an acknowledgement is not sent.
    acks: mpsc::Sender<Subject>,
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
        replicas: usize,
        config: WorkQueueConfig,
        sink: Arc<dyn WorkSink>,
    ) -> Self {
        let (acks, pending_acks) = mpsc::channel(ACKS);
        let inner = Arc::new(Inner {
            js: jetstream::new(client.clone()),
            client,
            node,
            prefix,
            replicas,
            config,
            ready: Notify::new(),
            is_ready: AtomicBool::new(false),
            acks,
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
    /// awaited, and says what became of each, in order. The id (`Nats-Msg-Id`) makes
    /// storing an item again within two minutes a no-op, so everything from the first
    /// [`Published::Retry`] on can be published again as it is.
    pub async fn publish(&self, items: Vec<(usize, String, Bytes)>) -> Vec<Published> {
        let inner = &self.inner;
        let mut outcomes = Vec::with_capacity(items.len());
        if !self.wait_ready().await {
            outcomes.resize(items.len(), Published::Retry);
            return outcomes;
        }
        let mut pending = Vec::with_capacity(items.len());
        for (partition, id, payload) in items {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            let subject = inner.subject(partition % PARTITIONS);
            pending.push(
                inner
                    .js
                    .publish_with_headers(subject, headers, payload)
                    .await,
            );
        }
        for sent in pending {
            let stored = match sent {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            outcomes.push(match stored {
                Ok(_) => Published::Stored,
                Err(error) => Published::from_error(&error),
            });
        }
        outcomes
    }

    /// Waits until the stream exists; `false` if the queue closed first.
    async fn wait_ready(&self) -> bool {
        let inner = &self.inner;
        loop {
            let ready = inner.ready.notified();
            if inner.is_ready.load(Ordering::Acquire) {
                return true;
            }
            tokio::select! {
                () = ready => {}
                () = inner.stop.cancelled() => return inner.is_ready.load(Ordering::Acquire),
            }
        }
    }

    /// Acknowledges an item: done, never offered again.
    pub fn ack(&self, token: AckToken) {
        let Some(reply) = token.reply else { return };
        if self.inner.acks.try_send(reply).is_err() {
            // NATS far behind: the item is offered again after the ack wait, and done
            // again (at least once).
            tracing::debug!(queue = %self.inner.config.name, "acknowledgement not sent: too many waiting");
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

/// One partition held here.
struct Owned {
    /// Its lease's revision.
    revision: u64,
    /// When the last renewal that succeeded was sent (shared with the fetcher, which stops
    /// reading once it is [`STALE_AFTER`] old).
    renewed: Arc<parking_lot::Mutex<Instant>>,
    /// Stops its fetcher.
    fetching: CancellationToken,
    fetcher: Option<JoinHandle<()>>,
    /// Given up: not read any more; the lease goes once nothing taken from it is in flight
    /// (or after [`DRAIN_ROUNDS`]).
    draining: Option<u32>,
}

impl Owned {
    /// Stops reading the partition (waits for its fetcher, so nothing more reaches the
    /// sink) and has the sink forget what waits of it.
    async fn stop_reading(&mut self, sink: &dyn WorkSink, partition: usize) {
        self.fetching.cancel();
        if let Some(fetcher) = self.fetcher.take() {
            let _ = fetcher.await;
        }
        sink.forget(partition);
    }
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
    let mut round = Round {
        inner: &inner,
        sink: &sink,
        stream: &stream,
        leases: &leases,
        owned: (0..PARTITIONS).map(|_| None).collect(),
        free_rounds: [0; PARTITIONS],
        member_revision: None,
    };
    loop {
        round.run().await;
        tokio::select! {
            () = inner.stop.cancelled() => break,
            () = tokio::time::sleep(ROUND) => {}
        }
    }
    round.give_all_up().await;
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
            num_replicas: inner.replicas.max(1),
            ..Default::default()
        })
        .await?;
    let leases = open_bucket(
        inner.client.clone(),
        &format!("{}_leases", inner.prefix),
        LEASE_TTL,
        inner.replicas,
    )
    .await?;
    Ok((stream, leases))
}

/// Runs `operation` for at most [`OP_TIMEOUT`]; `None` when it took longer.
async fn bounded<T>(operation: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(OP_TIMEOUT, operation).await.ok()
}

/// The lease keeping of one queue on this node.
struct Round<'a> {
    inner: &'a Arc<Inner>,
    sink: &'a Arc<dyn WorkSink>,
    stream: &'a stream::Stream,
    leases: &'a kv::Store,
    owned: Vec<Option<Owned>>,
    /// Per partition, rounds its lease has been seen free.
    free_rounds: [u32; PARTITIONS],
    /// The revision of this node's member key, as last written.
    member_revision: Option<u64>,
}

impl Round<'_> {
    /// Renews what is held, then (when the bucket can be read) gives up and takes leases.
    async fn run(&mut self) {
        self.renew().await;
        let here = Bytes::from(self.inner.node.clone());
        if let Some(Ok(revision)) = bounded(self.leases.put(self.inner.member_key(), here)).await {
            self.member_revision = Some(revision);
        }
        let Some(Ok((held, members))) = bounded(self.listing()).await else {
            return;
        };
        let inner = self.inner;
        let mut live: Vec<String> = members.into_iter().collect();
        if !live.contains(&inner.node) {
            live.push(inner.node.clone());
        }
        let mut wanted = Vec::new();
        for partition in 0..PARTITIONS {
            let preferred = preferred(&live, &inner.config.name, partition);
            let mine = preferred == Some(inner.node.as_str());
            let free = !held.contains(&inner.lease_key(partition));
            self.free_rounds[partition] = if free {
                self.free_rounds[partition].saturating_add(1)
            } else {
                0
            };
            match &mut self.owned[partition] {
                Some(owned) => match owned.draining {
                    None if !mine => {
                        owned.draining = Some(0);
                        owned.stop_reading(self.sink.as_ref(), partition).await;
                    }
                    Some(rounds) if self.sink.held(partition) == 0 || rounds >= DRAIN_ROUNDS => {
                        self.release(partition).await;
                    }
                    Some(rounds) => owned.draining = Some(rounds + 1),
                    None => {}
                },
                None if free && (mine || self.free_rounds[partition] >= 2) => {
                    wanted.push(partition);
                }
                None => {}
            }
        }
        // Bounded as a whole: a round that waited on an election would leave the leases
        // held here unrenewed.
        let this = &*self;
        let takes = wanted.into_iter().map(|p| async move {
            tokio::time::timeout(TAKE_TIMEOUT, this.take(p))
                .await
                .ok()
                .flatten()
        });
        let taken = futures_util::future::join_all(takes).await;
        for (partition, owned) in taken.into_iter().flatten() {
            self.owned[partition] = Some(owned);
        }
    }

    /// Renews every lease held, all at once. One another node holds now is lost; one that
    /// could not be renewed for [`STALE_AFTER`] is no longer read, as it may expire.
    async fn renew(&mut self) {
        let node = Bytes::from(self.inner.node.clone());
        let (inner, leases) = (self.inner, self.leases);
        let renewals = self
            .owned
            .iter()
            .enumerate()
            .filter_map(|(partition, owned)| {
                let owned = owned.as_ref()?;
                let key = inner.lease_key(partition);
                let (revision, value) = (owned.revision, node.clone());
                Some(async move {
                    let sent = Instant::now();
                    let answer = bounded(leases.update(key, value, revision)).await;
                    (partition, sent, answer)
                })
            });
        for (partition, sent, answer) in futures_util::future::join_all(renewals).await {
            let Some(owned) = self.owned[partition].as_mut() else {
                continue;
            };
            let lost = match answer {
                Some(Ok(revision)) => {
                    owned.revision = revision;
                    *owned.renewed.lock() = sent;
                    continue;
                }
                Some(Err(error)) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    format!("another node holds it: {error}")
                }
                _ if owned.renewed.lock().elapsed() < STALE_AFTER => continue,
                Some(Err(error)) => format!("not renewed in time: {error}"),
                None => "not renewed in time".to_owned(),
            };
            tracing::warn!(queue = %self.inner.config.name, partition, reason = %lost, "gave a work partition up");
            owned.stop_reading(self.sink.as_ref(), partition).await;
            self.owned[partition] = None;
        }
    }

    /// Deletes a lease held here (only if it is still this node's).
    async fn release(&mut self, partition: usize) {
        if let Some(mut owned) = self.owned[partition].take() {
            owned.stop_reading(self.sink.as_ref(), partition).await;
            let key = self.inner.lease_key(partition);
            let _ = bounded(
                self.leases
                    .delete_expect_revision(key, Some(owned.revision)),
            )
            .await;
        }
    }

    /// At close: stops reading and deletes every lease held here, and the member key.
    async fn give_all_up(&mut self) {
        for partition in 0..PARTITIONS {
            self.release(partition).await;
        }
        if let Some(revision) = self.member_revision {
            let _ = bounded(
                self.leases
                    .delete_expect_revision(self.inner.member_key(), Some(revision)),
            )
            .await;
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

    /// Takes a free lease and starts reading the partition from its oldest item, through a
    /// consumer of its own (the previous holder's is deleted, so a holder that has not
    /// noticed it lost the lease reads nothing more).
    async fn take(&self, partition: usize) -> Option<(usize, Owned)> {
        let key = self.inner.lease_key(partition);
        let sent = Instant::now();
        let node = Bytes::from(self.inner.node.clone());
        let revision = bounded(self.leases.create(&key, node)).await?.ok()?;
        let made = self.fresh_consumer(partition, revision).await;
        let consumer = match made {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(queue = %self.inner.config.name, partition, %error, "cannot read a work partition");
                let _ = bounded(self.leases.delete_expect_revision(&key, Some(revision))).await;
                return None;
            }
        };
        self.sink.took(partition);
        let fetching = self.inner.stop.child_token();
        let renewed = Arc::new(parking_lot::Mutex::new(sent));
        let fetcher = tokio::spawn(fetch(
            Arc::clone(self.inner),
            Arc::clone(self.sink),
            (partition, Arc::clone(&renewed)),
            consumer,
            fetching.clone(),
        ));
        Some((
            partition,
            Owned {
                revision,
                renewed,
                fetching,
                fetcher: Some(fetcher),
                draining: None,
            },
        ))
    }

    /// Deletes the partition's consumers and makes one named after the lease's revision:
    /// it starts at the oldest item not acknowledged, whoever had taken it.
    async fn fresh_consumer(
        &self,
        partition: usize,
        revision: u64,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
        let prefix = format!("p{partition}-");
        let mut names = self.stream.consumer_names();
        let mut old = Vec::new();
        while let Some(name) = names.next().await {
            let name = name?;
            if name.starts_with(&prefix) {
                old.push(name);
            }
        }
        for name in old {
            self.stream.delete_consumer(&name).await?;
        }
        Ok(self
            .stream
            .create_consumer(pull::Config {
                durable_name: Some(format!("{prefix}{revision}")),
                filter_subject: self.inner.subject(partition),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: i64::try_from(self.inner.config.window.max(1)).unwrap_or(1),
                ..Default::default()
            })
            .await?)
    }
}

/// Reads an owned partition while this node holds it, through one continuous pull: the
/// consumer's `max_ack_pending` (the window) bounds what is taken and not acknowledged.
/// Each item goes to the sink once.
async fn fetch(
    inner: Arc<Inner>,
    sink: Arc<dyn WorkSink>,
    (partition, renewed): (usize, Arc<parking_lot::Mutex<Instant>>),
    consumer: jetstream::consumer::Consumer<pull::Config>,
    stop: CancellationToken,
) {
    let window = inner.config.window.max(1);
    // A lease not renewed for STALE_AFTER may expire and go to another node: stop first.
    let stale = || renewed.lock().elapsed() >= STALE_AFTER;
    while !stop.is_cancelled() && !stale() {
        let pulled = tokio::select! {
            () = stop.cancelled() => return,
            pulled = consumer
                .stream()
                .max_messages_per_batch(window)
                .expires(FETCH_WAIT)
                .messages() => pulled,
        };
        let mut messages = match pulled {
            Ok(messages) => messages,
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
                biased;
                () = stop.cancelled() => return,
                message = messages.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                // A missed heartbeat or the like: the pull goes on.
                Some(Err(error)) => {
                    tracing::debug!(%error, "work pull");
                    continue;
                }
                None => break,
            };
            if stop.is_cancelled() || stale() {
                return;
            }
            let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                continue;
            };
            let ack = AckToken {
                reply: message.reply.clone(),
            };
            if sink.refresh(seq, &ack) {
                continue;
            }
            sink.take(Work {
                partition,
                seq,
                payload: message.payload.clone(),
                ack,
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
