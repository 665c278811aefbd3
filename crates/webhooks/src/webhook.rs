//! One running webhook: its compiled spec, client, queue, metrics and lane workers.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hookmq_broker::{
    hooks::{Durable, Event, EventKind, EventMask, HookSink},
    message::MessageIdGenerator,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use hookmq_broker::message::now_ms;
use tokio::sync::Notify;

use hookmq_cluster::ClusterHandle;
use hookmq_journal::{JournalError, Location};

use crate::{
    attempts::AttemptLog,
    client::{HttpClient, RESPONSE_KEPT},
    deadletter::{self, DeadLetter, DeadLetterStore, LastAttempt},
    delivery::{Stop, run_lane},
    egress::Egress,
    engine::EngineError,
    metrics::{BufferState, Metrics, failure},
    queue::{ClusterQueue, DiskQueue, Journal, MemoryQueue, Queue, Queued, lane_of, record},
    receivers::Receivers,
    render::Renderer,
    sign::Signer,
    spec::{Buffer, SpecError, WebhookSpec},
    store::WebhookFiles,
    trigger::Trigger,
};

/// The broker calls an enabled webhook inline, on the emitting session's task, for each event
/// of its trigger's kinds: a topic-filter check and a short lock on one lane, never a wait.
/// There is no channel in between, so the only bound an event meets is the webhook's own
/// queue, whose overflow it counts (`dropped.queue_full`).
impl HookSink for Webhook {
    fn on_event(&self, event: &Arc<Event>) {
        self.on_events(self.trigger.mask, std::slice::from_ref(event));
    }

    /// A run of one task's events: the matching ones go in with one lock per lane they touch
    /// (a connection's run is mostly its own client's, so one lane) and one wake-up each.
    /// `mask` is what the hook holds this webhook's listener to: its trigger's kinds, or
    /// none while it is disabled. The hook hands every run to every listener, so events
    /// outside it are skipped here.
    fn on_events(&self, mask: EventMask, events: &[Arc<Event>]) {
        // Events beyond the queue's free room now are dropped without being copied in (a
        // stalled receiver costs the publisher as little as possible); `push_many` still
        // enforces the bound for the rest, as other tasks push at the same time.
        let room = self.queue.room();
        let mut items: Vec<(usize, Queued)> = Vec::with_capacity(events.len().min(room));
        let mut lanes = LaneChooser::new(self);
        let mut matched = 0;
        for event in events {
            if !mask.contains(event.kind()) || !self.trigger.matches(event) {
                continue;
            }
            matched += 1;
            if items.len() < room {
                let item = Queued::new(Arc::clone(event));
                items.push((lanes.lane(&item), item));
            }
        }
        if matched == 0 {
            return;
        }
        let over = matched - items.len();
        // Counted before they can be delivered, so `matched` always covers the outcomes.
        self.metrics.matched(matched as u64);
        let dropped = over + self.queue.push_many(items);
        self.metrics.dropped_queue_full(dropped as u64);
    }

    fn has_room(&self) -> bool {
        self.queue.room() > 0
    }

    /// With `sync_before_ack`: the journal has written (or the cluster stored) everything
    /// given to it so far.
    fn durable(&self) -> Option<Durable> {
        if !self.spec.sync_before_ack {
            return None;
        }
        if let Some(queue) = self.queue.as_cluster() {
            return Some(queue.stored());
        }
        let journal = self.journal.as_ref()?;
        Some(Box::pin(journal.written()))
    }

    /// An event the broker did not build, as no listener had room: matched and dropped.
    fn on_skipped(&self, kind: EventKind, topic: Option<&str>) {
        if self.trigger.matches_kind(kind, topic) {
            self.metrics.skipped();
        }
    }
}

/// Picks lanes for a run of events: by client when the webhook is ordered (remembering the
/// last client, as runs repeat it), else in turns of [`UNORDERED_RUN`] events per lane.
struct LaneChooser<'a> {
    webhook: &'a Webhook,
    last_client: Option<(*const u8, usize, usize)>,
    unordered: Option<(usize, usize)>,
}

/// Events an unordered webhook puts in one lane before it moves to the next.
const UNORDERED_RUN: usize = 16;

impl<'a> LaneChooser<'a> {
    fn new(webhook: &'a Webhook) -> Self {
        Self {
            webhook,
            last_client: None,
            unordered: None,
        }
    }

    fn lane(&mut self, item: &Queued) -> usize {
        let lanes = self.webhook.queue.lanes();
        if self.webhook.spec.ordered {
            let id = item.event.client_id();
            let key = (id.as_ptr(), id.len());
            match self.last_client {
                Some((ptr, len, lane)) if (ptr, len) == key => lane,
                _ => {
                    let lane = lane_of(id, lanes);
                    self.last_client = Some((key.0, key.1, lane));
                    lane
                }
            }
        } else {
            let (lane, used) = match self.unordered {
                Some((lane, used)) if used < UNORDERED_RUN => (lane, used),
                // Relaxed: any spread over the lanes will do.
                _ => (
                    self.webhook.next_lane.fetch_add(1, Ordering::Relaxed) % lanes,
                    0,
                ),
            };
            self.unordered = Some((lane, used + 1));
            lane
        }
    }
}

/// What a new version found to put in its queue first.
enum Recovered {
    /// Nothing (or the previous version's queue, which it keeps).
    Nothing,
    /// Events read back, to place in memory (a memory buffer taking over a journal).
    Events(Vec<Queued>),
    /// A journal's events, read back as they are placed (a disk buffer opening its journal).
    Journal(Arc<DiskQueue>, Vec<(u64, Location)>),
}

/// A new version's queue, its journal (disk buffer) and what it recovered.
type PlannedQueue = (Arc<dyn Queue>, Option<Arc<Journal>>, Recovered);

/// Where a new version of a webhook keeps its events: the previous version's queue when its
/// shape (lanes, bounds, buffer) is unchanged; else a new queue, on the previous version's
/// journal or one opened now (with the events it held). A memory-buffered webhook that
/// finds a journal of an earlier disk-buffered life takes its events and deletes it, if
/// they fit in memory (else it is refused).
fn plan_queue(
    spec: &WebhookSpec,
    previous: Option<&Webhook>,
    files: &WebhookFiles,
    cluster: Option<&ClusterHandle>,
    ids: &Arc<MessageIdGenerator>,
) -> Result<PlannedQueue, EngineError> {
    if let Some(old) = previous
        && old.queue.lanes() == spec.max_inflight
        && old.spec.queue_capacity == spec.queue_capacity
        && old.spec.buffer == spec.buffer
        && old.spec.max_buffer_bytes == spec.max_buffer_bytes
        && old.spec.overflow == spec.overflow
        && (spec.buffer != Buffer::Cluster || old.spec.enable == spec.enable)
    {
        return Ok((
            Arc::clone(&old.queue),
            old.journal.clone(),
            Recovered::Nothing,
        ));
    }
    let dir = files.journal_dir(&spec.name);
    let storage = |e: JournalError| EngineError::Storage(e.to_string());
    let (lanes, capacity) = (spec.max_inflight, spec.queue_capacity);
    // With a previous version, the new queue takes its events over (`Webhook::adopt`).
    let adopting = previous.is_some();
    let disk = |journal: &Arc<Journal>| {
        Arc::new(DiskQueue::new(
            lanes,
            capacity,
            spec.max_buffer_bytes,
            spec.overflow,
            Arc::clone(journal),
            adopting,
        ))
    };
    Ok(match (spec.buffer, previous) {
        // Disabled, it takes no part in the cluster's work (it has no events either).
        (Buffer::Cluster, _) if !spec.enable => (
            Arc::new(MemoryQueue::new(lanes, capacity)),
            None,
            Recovered::Nothing,
        ),
        (Buffer::Cluster, _) => {
            let cluster = cluster.ok_or_else(|| {
                SpecError::new(
                    "buffer",
                    "\"cluster\" keeps events in the cluster's NATS: set [cluster] nats_url, or use \"disk\"",
                )
            })?;
            let queue: Arc<dyn Queue> = ClusterQueue::start(
                cluster,
                &spec.name,
                (lanes, capacity, spec.max_buffer_bytes),
                Arc::clone(ids),
                previous.and_then(|old| old.queue.as_cluster()),
            );
            (queue, None, Recovered::Nothing)
        }
        (
            Buffer::Disk,
            Some(Webhook {
                journal: Some(journal),
                ..
            }),
        ) => (disk(journal), Some(Arc::clone(journal)), Recovered::Nothing),
        (Buffer::Disk, _) => {
            let (journal, live) = Journal::open(&spec.name, &dir).map_err(storage)?;
            let queue = disk(&journal);
            let recovered = Recovered::Journal(Arc::clone(&queue), live);
            (queue, Some(journal), recovered)
        }
        (Buffer::Memory, None) if dir.exists() => {
            let (journal, live) = Journal::open(&spec.name, &dir).map_err(storage)?;
            if live.len() > capacity {
                // Read into memory they would mostly be dropped: the journal stays as it is.
                return Err(SpecError::new(
                    "buffer",
                    format!(
                        "{} events wait in the disk buffer's journal, more than queue_capacity \
                         ({capacity}) holds in memory: keep buffer = \"disk\" until they are \
                         delivered, or raise queue_capacity",
                        live.len()
                    ),
                )
                .into());
            }
            let events = live
                .into_iter()
                .filter_map(|(seq, location)| match journal.load(seq, location) {
                    Ok(item) => Some(item),
                    Err(error) => {
                        tracing::error!(webhook = %spec.name, seq, %error, "journal: an event could not be read back; it is dropped");
                        None
                    }
                })
                .collect();
            journal.destroy();
            let queue = Arc::new(MemoryQueue::new(lanes, capacity));
            (queue, None, Recovered::Events(events))
        }
        (Buffer::Memory, _) => (
            Arc::new(MemoryQueue::new(lanes, capacity)),
            None,
            Recovered::Nothing,
        ),
    })
}

/// A webhook, compiled and delivering.
#[derive(Debug)]
pub(crate) struct Webhook {
    /// What it was built from.
    pub(crate) spec: WebhookSpec,
    pub(crate) trigger: Trigger,
    pub(crate) renderer: Renderer,
    pub(crate) client: HttpClient,
    pub(crate) signer: Option<Signer>,
    /// The node's delivery ids, shared by every webhook (one generator keeps them unique).
    pub(crate) ids: Arc<MessageIdGenerator>,
    pub(crate) queue: Arc<dyn Queue>,
    /// The journal under a disk-buffered webhook's queue.
    pub(crate) journal: Option<Arc<Journal>>,
    /// Events given up, kept for inspection and replay (shared with earlier versions).
    pub(crate) dead_letters: Arc<DeadLetterStore>,
    /// Wakes the engine's dead-letter writer.
    dead_letter_writer: Arc<Notify>,
    /// Shared with the webhook's earlier versions, so an update keeps the counts.
    pub(crate) metrics: Arc<Metrics>,
    /// The receivers (`url`, `urls`), each with its status, circuit and counters (shared
    /// with earlier versions that had the same URL in the same place).
    pub(crate) receivers: Receivers,
    /// The last attempts (shared with earlier versions too).
    pub(crate) attempts: Arc<AttemptLog>,
    /// Round-robin cursor for unordered webhooks.
    next_lane: std::sync::atomic::AtomicUsize,
    stop: Stop,
    workers: TaskTracker,
}

/// What a webhook is built with, besides its spec: the engine's parts.
#[derive(Clone, Copy)]
pub(crate) struct Surroundings<'a> {
    /// The node name events carry.
    pub(crate) node: &'a str,
    /// The node's delivery ids.
    pub(crate) ids: &'a Arc<MessageIdGenerator>,
    /// The webhooks' directories.
    pub(crate) files: &'a WebhookFiles,
    /// Wakes the engine's dead-letter writer.
    pub(crate) dead_letter_writer: &'a Arc<Notify>,
    /// The networks requests may reach.
    pub(crate) egress: &'a Egress,
    /// The cluster, for `buffer = "cluster"`.
    pub(crate) cluster: Option<&'a ClusterHandle>,
}

impl Webhook {
    /// Compiles `spec`. `previous` hands over metrics and, when the lane count, the queue
    /// bound and the buffer are the same, the queue itself (else its journal, if any). A
    /// disk-buffered webhook without one opens its journal under `data_dir`, and the events
    /// it still held go first in its queue.
    pub(crate) fn build(
        spec: WebhookSpec,
        previous: Option<&Self>,
        around: &Surroundings<'_>,
    ) -> Result<Self, EngineError> {
        let Surroundings {
            node,
            ids,
            files,
            dead_letter_writer,
            egress,
            cluster,
        } = *around;
        let ids = Arc::clone(ids);
        spec.validate()?;
        let trigger = Trigger::new(&spec)?;
        let renderer = Renderer::new(&spec, node)?;
        let client = HttpClient::new(&spec, egress)?;
        let signer = spec
            .signing_secret
            .as_deref()
            .map(Signer::new)
            .transpose()?;
        let dead_letters = match previous {
            Some(old) => {
                old.dead_letters.set_max_bytes(spec.max_dead_letter_bytes);
                Arc::clone(&old.dead_letters)
            }
            None => Arc::new(
                DeadLetterStore::open(&files.dir(&spec.name), spec.max_dead_letter_bytes)
                    .map_err(|e| EngineError::Storage(e.to_string()))?,
            ),
        };
        let (queue, journal, recovered) = plan_queue(&spec, previous, files, cluster, &ids)?;
        let attempts = previous.map_or_else(Arc::default, |old| Arc::clone(&old.attempts));
        let receivers = Receivers::new(&spec, previous.map(|old| &old.receivers));
        let metrics = match previous {
            Some(old) => Arc::clone(&old.metrics),
            None => Arc::new(
                files
                    .load_metrics(&spec.name)
                    .map_or_else(Metrics::default, |saved| Metrics::restored(&saved)),
            ),
        };
        let webhook = Self {
            spec,
            trigger,
            renderer,
            client,
            signer,
            ids,
            queue,
            journal,
            dead_letters,
            dead_letter_writer: Arc::clone(dead_letter_writer),
            metrics,
            receivers,
            attempts,
            next_lane: std::sync::atomic::AtomicUsize::new(0),
            stop: Stop {
                now: CancellationToken::new(),
                finish: CancellationToken::new(),
            },
            workers: TaskTracker::new(),
        };
        // Matched before the restart: counted again so the books balance.
        let mut lanes = LaneChooser::new(&webhook);
        match recovered {
            Recovered::Nothing => {}
            Recovered::Events(events) => {
                webhook.metrics.matched(events.len() as u64);
                let placed = events
                    .into_iter()
                    .map(|item| (lanes.lane(&item), item))
                    .collect();
                webhook.queue.restore(placed);
            }
            Recovered::Journal(queue, live) => {
                let count = live.len();
                let unreadable = queue.restore_journal(live, |item| lanes.lane(item));
                webhook.metrics.matched((count - unreadable) as u64);
            }
        }
        Ok(webhook)
    }

    /// Starts one worker per lane on `runtime`.
    pub(crate) fn start(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        if !self.spec.enable {
            return;
        }
        for lane in 0..self.queue.lanes() {
            let (webhook, stop) = (Arc::clone(self), self.stop.clone());
            self.workers
                .spawn_on(run_lane(webhook, lane, stop), runtime);
        }
        // One check per receiver, so one that does not answer holds up no other's.
        for index in 0..self.receivers.len() {
            let (webhook, stop) = (Arc::clone(self), self.stop.clone());
            self.workers
                .spawn_on(check_health(webhook, index, stop), runtime);
        }
    }

    /// Stops the workers and waits for them; interrupted deliveries go back to the queue.
    pub(crate) async fn stop(&self) {
        self.stop.now.cancel();
        self.workers.close();
        self.workers.wait().await;
    }

    /// Lets the workers settle what they have in flight (a memory buffer: also what it
    /// queues) for at most `within`, then stops them.
    pub(crate) async fn finish(&self, within: Duration) {
        self.stop.finish.cancel();
        self.workers.close();
        if tokio::time::timeout(within, self.workers.wait())
            .await
            .is_err()
        {
            self.stop().await;
        }
    }

    /// Moves what `older` still queues into this webhook's queue (when they differ), ahead of
    /// what this version queued since it was attached, so each client's events stay in order.
    pub(crate) fn adopt(&self, older: &Self) {
        if Arc::ptr_eq(&self.queue, &older.queue) {
            return;
        }
        // Already matched and counted by the older version: what fits now is kept (lane by
        // lane, each event at the head of its new lane) and the rest is counted as dropped
        // (a client whose older events do not fit may then see a gap before the events the
        // new version took). Closed first: a run still admitted against the older version's
        // listener entry is then counted as dropped, not left in a queue nobody delivers.
        let mut lanes = LaneChooser::new(self);
        let dropped = self
            .queue
            .adopt(older.queue.as_ref(), &mut |item| lanes.lane(item));
        self.metrics.dropped_queue_full(dropped as u64);
    }

    /// The metrics now.
    #[must_use]
    pub(crate) fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        let mut snapshot = self.metrics.snapshot(self.queue.len());
        // Events a disk buffer could not read back left the queue: counted as dropped.
        snapshot.dropped += self.queue.lost();
        snapshot.buffer = self.journal.as_ref().map(|journal| BufferState {
            disk_bytes: journal.disk_bytes(),
            unwritten: journal.unwritten(),
            on_disk_only: self.queue.on_disk_only() as u64,
            write_errors: journal.write_errors(),
            write_window: journal.write_window(),
        });
        snapshot.dead_letters = self.dead_letters.count();
        snapshot.dead_letters_dropped = self.dead_letters.dropped();
        snapshot
    }

    /// Puts replayed events (oldest first) at the tails of their lanes, as far as there is
    /// room; returns how many went in (the first ones).
    pub(crate) fn requeue(&self, items: Vec<Queued>) -> usize {
        let count = items.len();
        let mut lanes = LaneChooser::new(self);
        let placed: Vec<(usize, Queued)> = items
            .into_iter()
            .map(|item| (lanes.lane(&item), item))
            .collect();
        let queued = count - self.queue.push_many(placed);
        self.metrics.matched(queued as u64);
        queued
    }

    /// Gives up on `item` (a non-retryable answer, too old to retry, or not renderable): it
    /// is counted as failed and becomes a dead letter; the queue forgets it once the dead
    /// letter is stored.
    pub(crate) fn give_up(
        &self,
        item: Queued,
        status: Option<u16>,
        reason: String,
        response: &[u8],
    ) {
        let event = item.event.kind().name();
        tracing::debug!(webhook = %self.spec.name, event, %reason, "delivery failed");
        self.metrics
            .failed(failure(event, status, reason.clone(), item.attempts));
        let mut record = Vec::new();
        if let Err(error) = record::encode(item.id, &item.event, &mut record) {
            tracing::error!(webhook = %self.spec.name, %error, "dead letter not kept: the event does not encode");
            self.queue.settle(&item);
            return;
        }
        let mut response = String::from_utf8_lossy(response).into_owned();
        response.truncate(RESPONSE_KEPT);
        let letter = DeadLetter {
            id: 0,
            attempt: LastAttempt {
                webhook_id: item.id.map(|id| format!("evt_{id}")).unwrap_or_default(),
                event: event.to_owned(),
                happened_at: item.event.timestamp,
                failed_at: now_ms(),
                attempts: item.attempts,
                status,
                response,
                reason,
            },
            record,
        };
        self.dead_letters.push(deadletter::Pending { letter, item });
        self.dead_letter_writer.notify_one();
    }
}

/// At start, then every `health_check_interval` in which no request to it was settled,
/// checks that receiver `index` accepts connections (as EMQX's connector health check), so
/// the status shown is true while no event flows to it. Deliveries tell the status
/// themselves. Ends with the webhook's version (a disabled webhook has none running:
/// nothing is checked or logged).
async fn check_health(webhook: Arc<Webhook>, index: usize, stop: Stop) {
    let interval = webhook.spec.health_check_interval;
    let Ok(origin) = webhook.renderer.origin(index) else {
        return;
    };
    let receiver = Arc::clone(webhook.receivers.get(index));
    // With several receivers, a circuit that failed requests opened stays open until a
    // probe is answered: the others keep the queue empty, and a receiver that accepts
    // connections but fails requests would otherwise be tried again for every event.
    let alone = webhook.receivers.len() == 1;
    let mut settled_before = None;
    loop {
        let settled = receiver.requests();
        if settled_before.is_none_or(|before| before == settled) {
            let reached = tokio::select! {
                () = stop.now.cancelled() => return,
                reached = webhook.client.reach(&origin) => reached,
            };
            match reached {
                Ok(()) => receiver.health.reachable(
                    alone && webhook.queue.is_empty() && webhook.metrics.in_flight() == 0,
                ),
                Err(error) => receiver.health.unreachable(&error.to_string()),
            }
        }
        settled_before = Some(settled);
        tokio::select! {
            () = stop.now.cancelled() => return,
            () = stop.finish.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample;

    fn event(timestamp: u64) -> Arc<Event> {
        let mut event = sample(EventKind::MessagePublish, "n");
        event.timestamp = timestamp;
        Arc::new(event)
    }

    fn surroundings<'a>(
        ids: &'a Arc<MessageIdGenerator>,
        files: &'a WebhookFiles,
        writer: &'a Arc<Notify>,
    ) -> Surroundings<'a> {
        static EGRESS: std::sync::OnceLock<Egress> = std::sync::OnceLock::new();
        Surroundings {
            node: "n",
            ids,
            files,
            dead_letter_writer: writer,
            egress: EGRESS.get_or_init(Egress::default),
            cluster: None,
        }
    }

    fn build(max_inflight: usize, queue_capacity: usize, previous: Option<&Webhook>) -> Webhook {
        let mut spec = WebhookSpec::new("w", "http://127.0.0.1:9/");
        spec.max_inflight = max_inflight;
        spec.queue_capacity = queue_capacity;
        spec.buffer = Buffer::Memory;
        let ids = Arc::new(MessageIdGenerator::new("n"));
        let dir = tempfile::tempdir().expect("dir");
        let files = WebhookFiles::new(dir.path(), crate::seal::Sealer::ephemeral());
        let writer = Arc::new(Notify::new());
        Webhook::build(spec, previous, &surroundings(&ids, &files, &writer)).expect("valid spec")
    }

    fn timestamps(webhook: &Webhook) -> Vec<u64> {
        webhook
            .queue
            .drain()
            .iter()
            .map(|item| item.event.timestamp)
            .collect()
    }

    #[tokio::test]
    async fn an_adopted_queue_goes_ahead_of_events_queued_since_the_swap() {
        let old = build(2, 100, None);
        old.on_event(&event(1));
        old.on_event(&event(2));
        // A new lane count rebuilds the queue; the new version is attached before the old
        // one has stopped, so an event can reach it first.
        let new = build(3, 100, Some(&old));
        new.on_event(&event(3));
        new.adopt(&old);
        assert_eq!(timestamps(&new), [1, 2, 3]);
        assert_eq!(new.metrics().dropped_queue_full, 0);
        // An event that still reaches the older version is counted, not stranded.
        old.on_event(&event(4));
        let metrics = new.metrics();
        assert_eq!((metrics.matched, metrics.dropped_queue_full), (4, 1));
    }

    #[tokio::test]
    async fn what_no_longer_fits_is_counted_as_dropped() {
        let old = build(2, 100, None);
        for t in 1..=3 {
            old.on_event(&event(t));
        }
        let new = build(2, 2, Some(&old));
        new.on_event(&event(4));
        new.adopt(&old);
        assert_eq!(timestamps(&new), [1, 4]);
        assert_eq!(new.metrics().dropped_queue_full, 2);
    }

    /// A run larger than memory's room goes to a disk buffer whole: nothing is cut at
    /// memory's bound while the disk has room.
    #[tokio::test]
    async fn a_disk_buffer_takes_a_run_past_its_memory_bound() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spec = WebhookSpec::new("w", "http://127.0.0.1:9/");
        spec.queue_capacity = 2;
        let ids = Arc::new(MessageIdGenerator::new("n"));
        let files = WebhookFiles::new(dir.path(), crate::seal::Sealer::ephemeral());
        let writer = Arc::new(Notify::new());
        let webhook =
            Webhook::build(spec, None, &surroundings(&ids, &files, &writer)).expect("builds");
        let run: Vec<Arc<Event>> = (0..10).map(event).collect();
        webhook.on_events(webhook.trigger.mask, &run);
        let metrics = webhook.metrics();
        assert_eq!(
            (metrics.matched, metrics.dropped, metrics.queuing),
            (10, 0, 10)
        );
    }
}
