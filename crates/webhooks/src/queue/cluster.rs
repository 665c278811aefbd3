//! The cluster buffer (`buffer = "cluster"`): a webhook's events wait in the cluster's work
//! queue (`hookmq_cluster::work`), a JetStream stream every node running the webhook
//! helps to drain, so the events of a node that dies are delivered by the others.
//!
//! - **In**: the sink's events go to `outgoing` (bounded by `queue_capacity`; full, new
//!   events are dropped and counted, as in memory), and a publisher task stores them in
//!   the stream in batches, in the partition of their client (so a client's events keep
//!   their order), each with its `webhook-id` (given here, so every node sends the same
//!   one) and a publish id of its own (so storing it again is a no-op, while a replayed
//!   dead letter, a new publish, is stored). An event is safe from a crash of this node
//!   once stored; with `sync_before_ack` the PUBACK waits for that
//!   ([`ClusterQueue::stored`]). One the stream refuses for good (too large for NATS, the
//!   stream at `max_buffer_bytes`) is dropped and counted.
//! - **Out**: the partitions this node reads give their events to the local lanes
//!   (partition `p` to lane `p % lanes`, so a client stays in one lane), at most the
//!   window per partition; settling an event acknowledges it in the stream. A partition
//!   that stops being read here takes what waits of it along, unacknowledged; an event of
//!   it given back (a retry) is forgotten too, for the next reader.
//! - **Versions**: a new version of the webhook with a cluster buffer publishes only once
//!   the previous version's publisher has stored what it had, so a client's events keep
//!   their order across an update.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use hookmq_broker::{hooks::Durable, message::MessageIdGenerator};
use hookmq_cluster::{
    ClusterHandle,
    work::{AckToken, PARTITIONS, Published, Work, WorkQueue, WorkQueueConfig, WorkSink},
};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{MemoryQueue, Queue, Queued, Wait, client_key, record};

/// Events stored in one publish at most.
const PUBLISH_BATCH: usize = 256;
/// How long a closed queue keeps publishing what it took before it gives up on it.
const FLUSH: Duration = Duration::from_secs(5);

/// An event waiting to be stored.
#[derive(Debug)]
struct Outgoing {
    partition: usize,
    item: Queued,
    /// Its publish id, once it was sent (kept, so sending it again is a no-op).
    publish_id: Option<String>,
}

/// A webhook's events in the cluster's work queue.
#[derive(Debug)]
pub struct ClusterQueue {
    /// Taken from the partitions read here, waiting for a lane worker.
    local: MemoryQueue,
    /// Events of this node's clients waiting to be stored (bounded by `capacity`).
    /// parking_lot: pushes and takes are pointer moves, never held across `.await`.
    outgoing: Mutex<VecDeque<Outgoing>>,
    /// Of those, taken by the publisher and not stored yet.
    publishing: AtomicUsize,
    capacity: usize,
    /// Wakes the publisher.
    wake: Notify,
    /// What [`ClusterQueue::stored`] waits on.
    progress: Arc<Progress>,
    /// Events taken from the stream and not settled, by stream sequence.
    held: Mutex<HashMap<u64, (usize, AckToken)>>,
    held_per_partition: Vec<AtomicUsize>,
    /// Per partition: read here now.
    reading: Vec<AtomicBool>,
    /// Events dropped here: refused by the stream, undecodable, or not stored in time
    /// when the queue closed.
    lost: AtomicU64,
    closed: AtomicBool,
    work: OnceLock<WorkQueue>,
}

/// Events accepted and events stored (or given up) so far: [`ClusterQueue::stored`] waits
/// for the second to reach the first. `finished`: the publisher ended.
#[derive(Debug, Default)]
struct Progress {
    accepted: AtomicU64,
    done: AtomicU64,
    finished: AtomicBool,
    changed: Notify,
}

impl Progress {
    async fn wait_finished(&self) {
        loop {
            let changed = self.changed.notified();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }
}

/// The partition of an event: by its client.
fn partition_of(item: &Queued) -> usize {
    usize::try_from(client_key(item.event.client_id()) % PARTITIONS as u64).unwrap_or(0)
}

impl ClusterQueue {
    /// The queue of webhook `name`: `lanes` lanes here, at most `capacity` events waiting to
    /// be stored, a stream of `max_bytes` at most. With `previous` (the previous version's
    /// cluster queue), it publishes once that one's publisher has finished.
    #[must_use]
    pub fn start(
        cluster: &ClusterHandle,
        name: &str,
        (lanes, capacity, max_bytes): (usize, usize, u64),
        ids: Arc<MessageIdGenerator>,
        previous: Option<&Self>,
    ) -> Arc<Self> {
        let lanes = lanes.max(1);
        // Per partition, enough to keep every lane it feeds busy.
        let window = (lanes * 64).div_ceil(PARTITIONS).max(16);
        let queue = Arc::new(Self {
            local: MemoryQueue::new(lanes, usize::MAX / 2),
            outgoing: Mutex::new(VecDeque::new()),
            publishing: AtomicUsize::new(0),
            capacity,
            wake: Notify::new(),
            progress: Arc::default(),
            held: Mutex::new(HashMap::new()),
            held_per_partition: (0..PARTITIONS).map(|_| AtomicUsize::new(0)).collect(),
            reading: (0..PARTITIONS).map(|_| AtomicBool::new(false)).collect(),
            lost: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            work: OnceLock::new(),
        });
        let config = WorkQueueConfig {
            name: format!("webhook-{name}"),
            window,
            max_bytes,
        };
        let work = cluster.work_queue(config, Arc::clone(&queue) as Arc<dyn WorkSink>);
        let _ = queue.work.set(work.clone());
        let before = previous.map(|old| Arc::clone(&old.progress));
        tokio::spawn(publish(Arc::clone(&queue), work, ids, before));
        queue
    }

    /// Resolves once every event accepted so far is stored in the stream (or given up).
    #[must_use]
    pub fn stored(&self) -> Durable {
        let progress = Arc::clone(&self.progress);
        let target = progress.accepted.load(Ordering::Acquire);
        Box::pin(async move {
            loop {
                let changed = progress.changed.notified();
                if progress.done.load(Ordering::Acquire) >= target
                    || progress.finished.load(Ordering::Acquire)
                {
                    return;
                }
                changed.await;
            }
        })
    }

    /// Deletes the stream: the webhook is gone for every node.
    pub async fn destroy(&self) {
        self.close();
        if let Some(work) = self.work.get()
            && let Err(error) = work.destroy().await
        {
            tracing::warn!(%error, "a deleted webhook's cluster queue was not deleted");
        }
    }

    fn settled_outgoing(&self, count: usize) {
        self.progress.done.fetch_add(count as u64, Ordering::AcqRel);
        self.progress.changed.notify_waiters();
    }

    /// Adds events to the outgoing queue, at its back or (`front`) its head, as far as the
    /// bound allows (`bounded`) or whatever it is. Returns how many did not go in.
    fn push_outgoing(&self, items: Vec<(usize, Queued)>, front: bool, bounded: bool) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return items.len();
        }
        let mut outgoing = self.outgoing.lock();
        let room = if bounded {
            self.capacity.saturating_sub(outgoing.len())
        } else {
            usize::MAX
        };
        let total = items.len();
        let kept = total.min(room);
        let taken = items.into_iter().take(kept).map(|(_, item)| Outgoing {
            partition: partition_of(&item),
            item,
            publish_id: None,
        });
        if front {
            let taken: Vec<Outgoing> = taken.collect();
            for entry in taken.into_iter().rev() {
                outgoing.push_front(entry);
            }
        } else {
            outgoing.extend(taken);
        }
        drop(outgoing);
        self.progress
            .accepted
            .fetch_add(kept as u64, Ordering::AcqRel);
        self.wake.notify_one();
        total - kept
    }

    /// Forgets a held event without acknowledging it.
    fn unhold(&self, seq: u64) {
        if let Some((partition, _)) = self.held.lock().remove(&seq) {
            self.held_per_partition[partition].fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Publish ids: this queue's own prefix (node-unique: a random number) and a counter.
struct PublishIds {
    prefix: String,
    next: u64,
}

impl PublishIds {
    fn new() -> Self {
        Self {
            prefix: format!("{:016x}", rand::random::<u64>()),
            next: 0,
        }
    }

    fn next(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.prefix, self.next)
    }
}

/// Stores the outgoing events in the stream, a batch at a time, once the previous
/// version's publisher is done, until the queue closes (then for up to [`FLUSH`] more).
async fn publish(
    queue: Arc<ClusterQueue>,
    work: WorkQueue,
    ids: Arc<MessageIdGenerator>,
    before: Option<Arc<Progress>>,
) {
    if let Some(before) = before {
        // Closed first (a version that never ran): nothing of its own to order.
        while !queue.closed.load(Ordering::Acquire) {
            tokio::select! {
                () = before.wait_finished() => break,
                () = queue.wake.notified() => {}
            }
        }
    }
    let mut publish_ids = PublishIds::new();
    let mut closed_at = None;
    loop {
        let mut batch: Vec<Outgoing> = {
            let mut outgoing = queue.outgoing.lock();
            let count = outgoing.len().min(PUBLISH_BATCH);
            queue.publishing.store(count, Ordering::Release);
            outgoing.drain(..count).collect()
        };
        if batch.is_empty() {
            if queue.closed.load(Ordering::Acquire) {
                break;
            }
            queue.wake.notified().await;
            continue;
        }
        let mut items = Vec::with_capacity(batch.len());
        for entry in &mut batch {
            let id = *entry.item.id.get_or_insert_with(|| ids.next_id());
            let publish_id = entry
                .publish_id
                .get_or_insert_with(|| publish_ids.next())
                .clone();
            let mut bytes = Vec::new();
            if let Err(error) = record::encode(Some(id), &entry.item.event, &mut bytes) {
                tracing::error!(%error, "a webhook event does not encode");
            }
            items.push((entry.partition, publish_id, bytes.into()));
        }
        let outcomes = work.publish(items).await;
        let retry_from = outcomes
            .iter()
            .position(|outcome| *outcome == Published::Retry)
            .unwrap_or(batch.len());
        for outcome in &outcomes[..retry_from] {
            if let Published::Refused(reason) = outcome {
                queue.lost.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%reason, "a webhook event refused by the cluster: dropped");
            }
        }
        let again: Vec<Outgoing> = batch.drain(retry_from..).collect();
        let retrying = !again.is_empty();
        {
            let mut outgoing = queue.outgoing.lock();
            for entry in again.into_iter().rev() {
                outgoing.push_front(entry);
            }
            queue.publishing.store(0, Ordering::Release);
        }
        queue.settled_outgoing(retry_from);
        if retrying {
            if queue.closed.load(Ordering::Acquire)
                && closed_at
                    .get_or_insert_with(tokio::time::Instant::now)
                    .elapsed()
                    > FLUSH
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let left = {
        let mut outgoing = queue.outgoing.lock();
        let left = outgoing.len();
        outgoing.clear();
        left
    };
    if left > 0 {
        queue.lost.fetch_add(left as u64, Ordering::Relaxed);
        tracing::warn!(
            events = left,
            "webhook events not stored in the cluster before the queue closed: dropped"
        );
    }
    queue.progress.finished.store(true, Ordering::Release);
    queue.progress.changed.notify_waiters();
}

impl WorkSink for ClusterQueue {
    fn held(&self, partition: usize) -> usize {
        self.held_per_partition
            .get(partition)
            .map_or(0, |held| held.load(Ordering::Acquire))
    }

    fn refresh(&self, seq: u64, ack: &AckToken) -> bool {
        match self.held.lock().get_mut(&seq) {
            Some((_, token)) => {
                *token = ack.clone();
                true
            }
            None => false,
        }
    }

    fn took(&self, partition: usize) {
        self.reading[partition].store(true, Ordering::Release);
    }

    fn take(&self, work: Work) {
        let Ok((id, event)) = record::decode(&work.payload) else {
            tracing::error!(
                seq = work.seq,
                "a webhook event in the cluster queue does not decode: dropped"
            );
            self.lost.fetch_add(1, Ordering::Relaxed);
            if let Some(queue) = self.work.get() {
                queue.ack(work.ack);
            }
            return;
        };
        let item = Queued {
            event: Arc::new(event),
            id,
            seq: work.seq,
            attempts: 0,
            requeued_at: 0,
        };
        self.held
            .lock()
            .insert(work.seq, (work.partition, work.ack));
        self.held_per_partition[work.partition].fetch_add(1, Ordering::AcqRel);
        let lane = work.partition % self.local.lanes();
        self.local.restore(vec![(lane, item)]);
    }

    fn forget(&self, partition: usize) {
        self.reading[partition].store(false, Ordering::Release);
        let lane = partition % self.local.lanes();
        let removed = self
            .local
            .remove_from_lane(lane, |item| partition_of(item) != partition);
        for item in removed {
            self.unhold(item.seq);
        }
    }
}

impl Queue for ClusterQueue {
    fn push_many(&self, items: Vec<(usize, Queued)>) -> usize {
        self.push_outgoing(items, false, true)
    }

    fn push_front_run(&self, items: Vec<(usize, Queued)>) -> usize {
        self.push_outgoing(items, true, false)
    }

    fn restore(&self, items: Vec<(usize, Queued)>) {
        self.push_outgoing(items, false, false);
    }

    fn take(&self, lane: usize) -> Option<Queued> {
        self.local.take(lane)
    }

    /// An event of a partition no longer read here is forgotten: its next reader has it.
    fn put_back(&self, lane: usize, item: Queued) {
        let reading = &self.reading[partition_of(&item)];
        if let Some(item) = self
            .local
            .put_back_if(lane, item, || reading.load(Ordering::Acquire))
        {
            self.unhold(item.seq);
        }
    }

    fn settle(&self, item: &Queued) {
        let Some((partition, token)) = self.held.lock().remove(&item.seq) else {
            // Forgotten meanwhile: its partition's next reader has it.
            return;
        };
        self.held_per_partition[partition].fetch_sub(1, Ordering::AcqRel);
        if let Some(work) = self.work.get() {
            work.ack(token);
        }
    }

    fn wait(&self, lane: usize) -> Wait<'_> {
        self.local.wait(lane)
    }

    fn len(&self) -> usize {
        self.outgoing.lock().len() + self.publishing.load(Ordering::Acquire) + self.local.len()
    }

    fn room(&self) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        self.capacity.saturating_sub(self.outgoing.lock().len())
    }

    fn lanes(&self) -> usize {
        self.local.lanes()
    }

    /// Stops taking events and gives this node's partitions up (what it read goes to the
    /// other nodes, unacknowledged); what waits to be stored is stored for a few seconds
    /// more.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.local.close();
        if let Some(work) = self.work.get() {
            work.close();
        }
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// What is not stored yet (the rest is in the stream, for whoever reads its partition).
    fn drain(&self) -> Vec<Queued> {
        let _ = self.local.drain();
        self.outgoing
            .lock()
            .drain(..)
            .map(|entry| entry.item)
            .collect()
    }

    /// The previous version's cluster queue stores what it has itself (this one's
    /// publisher waits for it); any other queue's events are stored ahead of this one's.
    fn adopt(&self, older: &dyn Queue, lane_for: &mut dyn FnMut(&Queued) -> usize) -> usize {
        older.close();
        if older.as_cluster().is_some() {
            return 0;
        }
        let placed: Vec<(usize, Queued)> = older
            .drain()
            .into_iter()
            .map(|item| (lane_for(&item), item))
            .collect();
        self.push_front_run(placed)
    }

    fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn as_cluster(&self) -> Option<&Self> {
        Some(self)
    }
}
