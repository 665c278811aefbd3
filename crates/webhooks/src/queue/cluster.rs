//! The cluster buffer (`buffer = "cluster"`): a webhook's events wait in the cluster's work
//! queue (`hookmq_cluster::work`), a JetStream stream every node running the webhook
//! helps to drain, so the events of a node that dies are delivered by the others.
//!
//! - **In**: the sink's events go to `outgoing` (bounded by `queue_capacity`; full, new
//!   events are dropped and counted, as in memory), and a publisher task stores them in
//!   the stream in batches, each with its `webhook-id` (given here, so every node sends
//!   the same one) and in the partition of its client (so a client's events keep their
//!   order). An event is safe from a crash of this node once stored; with
//!   `sync_before_ack` the PUBACK waits for that ([`ClusterQueue::stored`]).
//! - **Out**: the partitions this node holds the lease of give their events to the local
//!   lanes (partition `p` to lane `p % lanes`, so a client stays in one lane), at most the
//!   window per partition; settling an event acknowledges it in the stream. A partition
//!   that moves to another node takes what it had here with it, unacknowledged.

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
    work::{AckToken, PARTITIONS, Work, WorkQueue, WorkQueueConfig, WorkSink},
};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{MemoryQueue, Queue, Queued, Wait, client_key, record};

/// Events stored in one publish at most.
const PUBLISH_BATCH: usize = 256;
/// How long a closed queue keeps publishing what it took before it gives up on it.
const FLUSH: Duration = Duration::from_secs(5);

/// A webhook's events in the cluster's work queue.
#[derive(Debug)]
pub struct ClusterQueue {
    /// Taken from this node's partitions, waiting for a lane worker.
    local: MemoryQueue,
    /// Events of this node's clients waiting to be stored, by partition (bounded by
    /// `capacity`). parking_lot: pushes and takes are pointer moves, never across `.await`.
    outgoing: Mutex<VecDeque<(usize, Queued)>>,
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
    /// Events that did not decode (acknowledged and dropped).
    lost: AtomicU64,
    closed: AtomicBool,
    work: OnceLock<WorkQueue>,
}

/// Events accepted and events stored (or given up) so far: [`ClusterQueue::stored`] waits
/// for the second to reach the first.
#[derive(Debug, Default)]
struct Progress {
    accepted: AtomicU64,
    done: AtomicU64,
    changed: Notify,
}

/// The partition of an event: by its client.
fn partition_of(item: &Queued) -> usize {
    usize::try_from(client_key(item.event.client_id()) % PARTITIONS as u64).unwrap_or(0)
}

impl ClusterQueue {
    /// The queue of webhook `name`: `lanes` lanes here, at most `capacity` events waiting to
    /// be stored, at most `window` events per partition taken from the stream, which holds
    /// `max_bytes` at most.
    #[must_use]
    pub fn start(
        cluster: &ClusterHandle,
        name: &str,
        lanes: usize,
        capacity: usize,
        max_bytes: u64,
        ids: Arc<MessageIdGenerator>,
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
        tokio::spawn(publish(Arc::clone(&queue), work, ids));
        queue
    }

    /// Resolves once every event accepted so far is stored in the stream (or given up, the
    /// queue closed).
    #[must_use]
    pub fn stored(&self) -> Durable {
        let progress = Arc::clone(&self.progress);
        let target = progress.accepted.load(Ordering::Acquire);
        Box::pin(async move {
            loop {
                let changed = progress.changed.notified();
                if progress.done.load(Ordering::Acquire) >= target {
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

    /// Adds events to the outgoing queue, at its back or (`front`) its head, ignoring the
    /// bound (`bounded`: only as far as it allows). Returns how many did not go in.
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
        let taken = items
            .into_iter()
            .take(kept)
            .map(|(_, item)| (partition_of(&item), item));
        if front {
            let taken: Vec<_> = taken.collect();
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
}

/// Stores the outgoing events in the stream, a batch at a time, until the queue closes
/// (then for up to [`FLUSH`] more).
async fn publish(queue: Arc<ClusterQueue>, work: WorkQueue, ids: Arc<MessageIdGenerator>) {
    let mut closed_at = None;
    loop {
        let batch: Vec<(usize, Queued)> = {
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
        let mut kept = Vec::with_capacity(batch.len());
        for (partition, mut item) in batch {
            let id = *item.id.get_or_insert_with(|| ids.next_id());
            let mut bytes = Vec::new();
            if record::encode(Some(id), &item.event, &mut bytes).is_ok() {
                items.push((partition, id.to_string(), bytes.into()));
            }
            kept.push((partition, item));
        }
        let count = kept.len();
        match work.publish(items).await {
            Ok(()) => {
                queue.publishing.store(0, Ordering::Release);
                queue.settled_outgoing(count);
            }
            Err(error) => {
                tracing::debug!(%error, "webhook events not stored in the cluster yet");
                {
                    let mut outgoing = queue.outgoing.lock();
                    for entry in kept.into_iter().rev() {
                        outgoing.push_front(entry);
                    }
                    queue.publishing.store(0, Ordering::Release);
                }
                if queue.closed.load(Ordering::Acquire)
                    && closed_at
                        .get_or_insert_with(tokio::time::Instant::now)
                        .elapsed()
                        > FLUSH
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let left = {
        let mut outgoing = queue.outgoing.lock();
        let left = outgoing.len();
        outgoing.clear();
        left
    };
    if left > 0 {
        tracing::warn!(
            events = left,
            "webhook events not stored in the cluster before the queue closed: dropped"
        );
    }
    // Nothing more will be stored: waiters go.
    queue.settled_outgoing(usize::MAX / 2);
}

impl WorkSink for ClusterQueue {
    fn held(&self, partition: usize) -> usize {
        self.held_per_partition
            .get(partition)
            .map_or(0, |held| held.load(Ordering::Acquire))
    }

    fn holds(&self, seq: u64) -> bool {
        self.held.lock().contains_key(&seq)
    }

    fn take(&self, work: Work) {
        let decoded = record::decode(&work.payload);
        let Ok((id, event)) = decoded else {
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
        };
        self.held
            .lock()
            .insert(work.seq, (work.partition, work.ack));
        self.held_per_partition[work.partition].fetch_add(1, Ordering::AcqRel);
        let lane = work.partition % self.local.lanes();
        self.local.restore(vec![(lane, item)]);
    }

    fn forget(&self, partition: usize) {
        let forgotten: Vec<u64> = {
            let mut held = self.held.lock();
            let seqs: Vec<u64> = held
                .iter()
                .filter(|(_, (p, _))| *p == partition)
                .map(|(seq, _)| *seq)
                .collect();
            for seq in &seqs {
                held.remove(seq);
            }
            seqs
        };
        self.held_per_partition[partition].fetch_sub(forgotten.len(), Ordering::AcqRel);
        let lane = partition % self.local.lanes();
        let kept: Vec<(usize, Queued)> = self
            .local
            .drain_lane(lane)
            .into_iter()
            .filter(|item| partition_of(item) != partition)
            .map(|item| (lane, item))
            .collect();
        self.local.restore(kept);
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

    fn put_back(&self, lane: usize, item: Queued) {
        self.local.put_back(lane, item);
    }

    fn settle(&self, item: &Queued) {
        let Some((partition, token)) = self.held.lock().remove(&item.seq) else {
            // Its partition moved to another node meanwhile: that node has it.
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

    /// Stops taking events and gives this node's partitions up (what it held goes to the
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

    /// What is not stored yet: the rest is in the stream, for whoever holds its partition.
    fn drain(&self) -> Vec<Queued> {
        let _ = self.local.drain();
        self.outgoing
            .lock()
            .drain(..)
            .map(|(_, item)| item)
            .collect()
    }

    fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn as_cluster(&self) -> Option<&Self> {
        Some(self)
    }
}
