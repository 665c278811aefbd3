//! A session's queue of messages waiting to be sent: filled by publishers' tasks through the
//! router, drained by the session's connection task.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use hookmq_codec::QoS;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{
    config::QUEUED_MESSAGE_OVERHEAD,
    hooks::ClientInfo,
    message::Message,
    persist::{Record, StateLog, record::DeliveryRecord},
};

/// One message on its way to one subscription.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The shared message.
    pub(crate) message: Arc<Message>,
    /// QoS to send with: min(published, granted).
    pub(crate) qos: QoS,
    /// Retain flag to send (retain-as-published, or set for retained messages).
    pub(crate) retain: bool,
    /// The identifiers (v5) of the client's subscriptions it matched.
    pub(crate) subscription_ids: SubscriptionIds,
    /// Sequence number of the record that keeps it in the broker's journal (a QoS 1/2
    /// delivery to a persistent session), 0 for none.
    pub(crate) stored: u64,
}

/// The subscription identifiers a delivery carries: none or one without an allocation, more
/// when the message matched several subscriptions of the client [MQTT-3.3.4-3].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum SubscriptionIds {
    /// No identifier.
    #[default]
    None,
    /// One.
    One(u32),
    /// Several, in the order the subscriptions matched.
    Many(Arc<[u32]>),
}

impl SubscriptionIds {
    /// The identifiers in `ids`.
    pub(crate) fn from_slice(ids: &[u32]) -> Self {
        match ids {
            [] => Self::None,
            [one] => Self::One(*one),
            more => Self::Many(more.into()),
        }
    }

    /// Every identifier.
    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            Self::None => &[],
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }
}

impl From<Option<u32>> for SubscriptionIds {
    fn from(id: Option<u32>) -> Self {
        id.map_or(Self::None, Self::One)
    }
}

/// What became of a pushed delivery.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Queued for sending (`stored`: also written to the broker's journal).
    Queued { stored: bool },
    /// Deliveries were dropped to keep the queue's bounds (`queue_full`: queued ones, or the
    /// new one), or the new one was refused (`qos0_msg`). The subscriber is named for the
    /// events.
    Dropped {
        victims: Vec<Delivery>,
        reason: &'static str,
        subscriber: Arc<ClientInfo>,
        /// The new delivery was queued and written to the broker's journal.
        stored: bool,
    },
    /// The session has ended.
    Closed,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Delivery>,
    /// What the queued deliveries cost, by [`Delivery::cost`].
    bytes: usize,
    /// Queued QoS 0 deliveries (the first to go at a bound).
    qos0: usize,
    closed: bool,
    /// The subscriber as of its last connection, for `delivery.dropped` events.
    client: Arc<ClientInfo>,
}

impl State {
    fn push_back(&mut self, delivery: Delivery) {
        self.bytes += delivery.cost();
        self.qos0 += usize::from(delivery.qos == QoS::AtMostOnce);
        self.queue.push_back(delivery);
    }

    fn pop_front(&mut self) -> Option<Delivery> {
        let delivery = self.queue.pop_front()?;
        self.forget(&delivery);
        Some(delivery)
    }

    fn forget(&mut self, delivery: &Delivery) {
        self.bytes -= delivery.cost();
        self.qos0 -= usize::from(delivery.qos == QoS::AtMostOnce);
    }

    /// Drops a delivery to make room: the oldest QoS 0 one among the [`EVICTION_SCAN`]
    /// oldest (its sender accepted that it may be lost), else the oldest.
    fn evict(&mut self) -> Option<Delivery> {
        if self.qos0 > 0
            && let Some(at) = self
                .queue
                .iter()
                .take(EVICTION_SCAN)
                .position(|d| d.qos == QoS::AtMostOnce)
            && let Some(victim) = self.queue.remove(at)
        {
            self.forget(&victim);
            return Some(victim);
        }
        self.pop_front()
    }
}

fn dropped(state: &State, victims: Vec<Delivery>, reason: &'static str, stored: bool) -> Pushed {
    Pushed::Dropped {
        victims,
        reason,
        subscriber: Arc::clone(&state.client),
        stored,
    }
}

/// How far from the head a full queue looks for a QoS 0 delivery to drop: the publisher's
/// task pays for the search under the queue's lock, so it stays short whatever the queue
/// holds (hundreds of thousands of deliveries fit in `max_queue_bytes`).
const EVICTION_SCAN: usize = 256;

/// The bounds of a session's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueLimits {
    /// Most deliveries while the session has no connection; while it has one, the queue
    /// also holds this many whatever their size.
    pub(crate) len: usize,
    /// Most bytes ([`Delivery::cost`]) of a connected session's queue past `len` deliveries.
    pub(crate) bytes: usize,
}

impl Delivery {
    /// What a queued delivery counts towards its queue's byte bound: its topic and payload
    /// (shared with other subscribers, counted by each queue that holds them) and
    /// [`QUEUED_MESSAGE_OVERHEAD`] for the structures around them.
    pub(crate) fn cost(&self) -> usize {
        self.message.topic.len() + self.message.payload.len() + QUEUED_MESSAGE_OVERHEAD
    }
}

/// Why [`Mailbox::take`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The queue is empty.
    All,
    /// `max` deliveries were taken and more wait.
    BatchFull,
    /// The next delivery needs an in-flight slot and none is free.
    WindowFull,
}

/// The queue of one session ([`QueueLimits`]): without a connection bounded by count; with
/// one, it drops only past both the count and the byte bound, so a connected subscriber a
/// little slower than its publisher gets a burst of small messages whole. At a bound the
/// oldest QoS 0 delivery (among the oldest few hundred) is dropped, else the oldest (EMQX
/// drops the oldest), and reported.
#[derive(Debug)]
pub(crate) struct Mailbox {
    limits: QueueLimits,
    queue_qos0_offline: bool,
    /// The session's number, for the records of its deliveries.
    session_id: u64,
    /// The broker's journal, when persistence is on.
    log: Option<Arc<StateLog>>,
    /// The session outlives its connection: its QoS 1/2 deliveries are written to `log`.
    /// Changed only by the session's owner, under the lock; read under it by pushes.
    durable: AtomicBool,
    /// Read without the lock by shared-subscription member selection.
    online: AtomicBool,
    /// parking_lot mutex: critical sections are a few pointer moves, never across `.await`.
    state: Mutex<State>,
    /// Wakes the connection task when the queue goes from empty to non-empty.
    notify: Notify,
}

impl Mailbox {
    pub(crate) fn new(
        limits: QueueLimits,
        queue_qos0_offline: bool,
        client: Arc<ClientInfo>,
        log: Option<Arc<StateLog>>,
    ) -> Self {
        Self {
            limits,
            queue_qos0_offline,
            session_id: client.session_id,
            log,
            durable: AtomicBool::new(false),
            online: AtomicBool::new(true),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                qos0: 0,
                closed: false,
                client,
            }),
            notify: Notify::new(),
        }
    }

    /// Appends a delivery, dropping what the bounds require (see [`Mailbox`]): the oldest
    /// QoS 0 delivery near the head first (the new one itself if no queued one is QoS 0),
    /// else the oldest.
    pub(crate) fn push(&self, delivery: Delivery) -> Pushed {
        let mut state = self.state.lock();
        if state.closed {
            return Pushed::Closed;
        }
        let online = self.is_online();
        let qos0 = delivery.qos == QoS::AtMostOnce;
        if qos0 && !self.queue_qos0_offline && !online {
            return dropped(&state, vec![delivery], "qos0_msg", false);
        }
        let cost = delivery.cost();
        // Connected, past both bounds (the count alone was the bound before bytes were
        // counted, so no queue keeps less than it did); without a connection, past the count.
        let over = |state: &State| {
            state.queue.len() >= self.limits.len
                && (!online || state.bytes + cost > self.limits.bytes)
        };
        let mut victims = Vec::new();
        while over(&state) {
            if qos0 && state.qos0 == 0 {
                self.forget(&victims);
                victims.push(delivery);
                return dropped(&state, victims, "queue_full", false);
            }
            victims.extend(state.evict());
        }
        self.forget(&victims);
        let mut delivery = delivery;
        self.store(&mut delivery);
        let stored = delivery.stored != 0;
        let was_empty = state.queue.is_empty();
        state.push_back(delivery);
        let pushed = if victims.is_empty() {
            Pushed::Queued { stored }
        } else {
            dropped(&state, victims, "queue_full", stored)
        };
        drop(state);
        if was_empty {
            self.notify.notify_one();
        }
        pushed
    }

    /// Moves deliveries to `out`, oldest first, at most `max` of them, taking a QoS 1/2
    /// delivery only while `window` (free in-flight slots) allows; stops at the first one that
    /// does not fit so order is kept.
    pub(crate) fn take(&self, out: &mut Vec<Delivery>, max: usize, mut window: usize) -> Taken {
        let mut state = self.state.lock();
        loop {
            match state.queue.front() {
                None => return Taken::All,
                Some(_) if out.len() >= max => return Taken::BatchFull,
                Some(front) if front.qos != QoS::AtMostOnce => {
                    if window == 0 {
                        return Taken::WindowFull;
                    }
                    window -= 1;
                }
                Some(_) => {}
            }
            if let Some(delivery) = state.pop_front() {
                out.push(delivery);
            }
        }
    }

    /// Resolves when a delivery arrives in an empty queue (or has arrived since the last wait).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Marks the session connected (as `client`).
    pub(crate) fn set_online(&self, client: Arc<ClientInfo>) {
        self.online.store(true, Ordering::Relaxed);
        self.state.lock().client = client;
    }

    /// Marks the session without a connection. With `trim`, what its queue holds past the
    /// offline bound is dropped now, oldest QoS 0 first, and returned with the subscriber to
    /// report.
    pub(crate) fn set_offline(&self, trim: bool) -> (Vec<Delivery>, Arc<ClientInfo>) {
        let mut state = self.state.lock();
        self.online.store(false, Ordering::Relaxed);
        let mut dropped = Vec::new();
        while trim && state.queue.len() > self.limits.len {
            dropped.extend(state.evict());
        }
        self.forget(&dropped);
        (dropped, Arc::clone(&state.client))
    }

    /// Whether the session has a connection.
    pub(crate) fn is_online(&self) -> bool {
        // Relaxed: only a preference for shared-subscription picks.
        self.online.load(Ordering::Relaxed)
    }

    /// Ends the session: later pushes are refused; what is queued is returned (and no
    /// longer kept on disk).
    pub(crate) fn close(&self) -> Vec<Delivery> {
        let mut state = self.state.lock();
        state.closed = true;
        state.bytes = 0;
        state.qos0 = 0;
        let queued: Vec<Delivery> = state.queue.drain(..).collect();
        self.forget(&queued);
        queued
    }

    /// Writes a QoS 1/2 delivery of a durable session to the journal.
    fn store(&self, delivery: &mut Delivery) {
        if delivery.qos == QoS::AtMostOnce
            || delivery.stored != 0
            || !self.durable.load(Ordering::Relaxed)
        {
            return;
        }
        if let Some(log) = &self.log {
            delivery.stored = log.append(Record::Delivery(DeliveryRecord {
                session_id: self.session_id,
                message: Arc::clone(&delivery.message),
                qos: delivery.qos,
                retain: delivery.retain,
                subscription_ids: delivery.subscription_ids.as_slice().to_vec(),
            }));
        }
    }

    /// The journal no longer needs to keep `deliveries` (dropped, or the session ended).
    fn forget(&self, deliveries: &[Delivery]) {
        if let Some(log) = &self.log
            && deliveries.iter().any(|d| d.stored != 0)
        {
            log.acknowledge(deliveries.iter().map(|d| d.stored));
        }
    }

    /// Makes the session durable (its queued QoS 1/2 deliveries are written now) or not.
    pub(crate) fn set_durable(&self, durable: bool) {
        let mut state = self.state.lock();
        self.durable.store(durable, Ordering::Relaxed);
        if durable {
            let mut queue = std::mem::take(&mut state.queue);
            for delivery in &mut queue {
                self.store(delivery);
            }
            state.queue = queue;
        }
    }

    /// Puts `held` (oldest first) after the first `at` queued deliveries, leaving out the
    /// messages queued already: what the node a session moved from held for it while the
    /// session's subscriptions reached NATS here, between what came with the session and
    /// what was routed here since. Returns how many were added.
    pub(crate) fn insert_unseen(&self, at: usize, held: Vec<Delivery>) -> usize {
        let mut state = self.state.lock();
        let seen: std::collections::HashSet<_> = state.queue.iter().map(|d| d.message.id).collect();
        let at = at.min(state.queue.len());
        let tail = state.queue.split_off(at);
        let mut added = 0;
        for delivery in held {
            if seen.contains(&delivery.message.id) {
                continue;
            }
            state.bytes += delivery.cost();
            state.qos0 += usize::from(delivery.qos == QoS::AtMostOnce);
            state.queue.push_back(delivery);
            added += 1;
        }
        state.queue.extend(tail);
        added
    }

    /// Puts back a delivery recovered from the journal, behind those already restored.
    pub(crate) fn restore(&self, delivery: Delivery) {
        self.state.lock().push_back(delivery);
    }

    /// The subscriber as of its last connection.
    pub(crate) fn client(&self) -> Arc<ClientInfo> {
        Arc::clone(&self.state.lock().client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Arc<ClientInfo> {
        ClientInfo::for_test("sub", 1)
    }

    /// A delivery of `payload_len` bytes, told apart by its id.
    fn delivery(id: u128, qos: QoS, payload_len: usize) -> Delivery {
        Delivery {
            message: Arc::new(Message::for_test(id, "t", payload_len, qos)),
            qos,
            retain: false,
            subscription_ids: SubscriptionIds::None,
            stored: 0,
        }
    }

    fn mailbox(len: usize, bytes: usize) -> Mailbox {
        Mailbox::new(QueueLimits { len, bytes }, true, client(), None)
    }

    fn ids(mailbox: &Mailbox) -> Vec<u128> {
        let mut out = Vec::new();
        mailbox.take(&mut out, usize::MAX, usize::MAX);
        out.iter().map(|d| d.message.id.0).collect()
    }

    fn dropped_ids(pushed: Pushed) -> Vec<u128> {
        match pushed {
            Pushed::Dropped { victims, .. } => victims.iter().map(|d| d.message.id.0).collect(),
            Pushed::Queued { .. } => Vec::new(),
            Pushed::Closed => panic!("closed"),
        }
    }

    #[test]
    fn held_deliveries_go_after_the_moved_ones_without_the_ones_queued_already() {
        let mailbox = mailbox(100, usize::MAX);
        let _ = mailbox.push(delivery(3, QoS::AtLeastOnce, 4));
        let _ = mailbox.push(delivery(4, QoS::AtLeastOnce, 4));
        let held = vec![
            delivery(1, QoS::AtLeastOnce, 4),
            delivery(2, QoS::AtMostOnce, 4),
            delivery(3, QoS::AtLeastOnce, 4),
        ];
        assert_eq!(
            mailbox.insert_unseen(1, held),
            2,
            "3 was queued here already"
        );
        assert_eq!(
            ids(&mailbox),
            [3, 1, 2, 4],
            "after the first, before the rest"
        );
    }

    #[test]
    fn a_connected_session_takes_a_burst_past_the_offline_count() {
        let mailbox = mailbox(10, 64 << 20);
        for id in 0..20_000 {
            assert!(matches!(
                mailbox.push(delivery(id, QoS::AtMostOnce, 10)),
                Pushed::Queued { .. }
            ));
        }
        assert_eq!(ids(&mailbox), (0..20_000).collect::<Vec<_>>());
    }

    #[test]
    fn at_the_byte_bound_the_oldest_qos0_goes_first() {
        let cost = delivery(0, QoS::AtMostOnce, 100).cost();
        let mailbox = mailbox(1, 4 * cost);
        for (id, qos) in [
            (1, QoS::AtLeastOnce),
            (2, QoS::AtMostOnce),
            (3, QoS::AtLeastOnce),
            (4, QoS::AtMostOnce),
        ] {
            assert!(matches!(
                mailbox.push(delivery(id, qos, 100)),
                Pushed::Queued { .. }
            ));
        }
        assert_eq!(
            dropped_ids(mailbox.push(delivery(5, QoS::AtLeastOnce, 100))),
            [2]
        );
        // Twice the size: two go, the remaining QoS 0 one, then the oldest.
        assert_eq!(
            dropped_ids(mailbox.push(delivery(6, QoS::ExactlyOnce, 100 + cost))),
            [4, 1]
        );
        assert_eq!(ids(&mailbox), [3, 5, 6]);
    }

    #[test]
    fn a_qos0_delivery_far_from_the_head_is_not_searched_for() {
        let cost = delivery(0, QoS::AtLeastOnce, 10).cost();
        let mailbox = mailbox(1, (EVICTION_SCAN + 1) * cost);
        for id in 0..EVICTION_SCAN as u128 {
            mailbox.push(delivery(id, QoS::AtLeastOnce, 10));
        }
        mailbox.push(delivery(1000, QoS::AtMostOnce, 10));
        assert_eq!(
            dropped_ids(mailbox.push(delivery(1001, QoS::AtLeastOnce, 10))),
            [0]
        );
    }

    #[test]
    fn a_qos0_delivery_gives_way_to_queued_qos1_ones() {
        let cost = delivery(0, QoS::AtLeastOnce, 10).cost();
        let mailbox = mailbox(1, 2 * cost);
        mailbox.push(delivery(1, QoS::AtLeastOnce, 10));
        mailbox.push(delivery(2, QoS::AtLeastOnce, 10));
        assert_eq!(
            dropped_ids(mailbox.push(delivery(3, QoS::AtMostOnce, 10))),
            [3]
        );
        assert_eq!(ids(&mailbox), [1, 2]);
    }

    #[test]
    fn the_count_bound_holds_whatever_the_sizes() {
        let mailbox = mailbox(2, 100);
        for id in 1..=2 {
            assert!(matches!(
                mailbox.push(delivery(id, QoS::AtLeastOnce, 1000)),
                Pushed::Queued { .. }
            ));
        }
        assert_eq!(
            dropped_ids(mailbox.push(delivery(3, QoS::AtLeastOnce, 1000))),
            [1]
        );
        assert_eq!(ids(&mailbox), [2, 3]);
    }

    #[test]
    fn a_delivery_alone_is_kept_whatever_its_size() {
        let mailbox = mailbox(1, 100);
        assert!(matches!(
            mailbox.push(delivery(1, QoS::AtLeastOnce, 1000)),
            Pushed::Queued { .. }
        ));
        assert_eq!(
            dropped_ids(mailbox.push(delivery(2, QoS::AtLeastOnce, 1000))),
            [1]
        );
        assert_eq!(ids(&mailbox), [2]);
    }

    #[test]
    fn going_offline_trims_to_the_offline_count_qos0_first() {
        let mailbox = mailbox(3, 64 << 20);
        for id in 0..6 {
            let qos = if id % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            };
            mailbox.push(delivery(id, qos, 10));
        }
        let (dropped, subscriber) = mailbox.set_offline(true);
        assert_eq!(subscriber.client_id.as_ref(), "sub");
        assert_eq!(
            dropped.iter().map(|d| d.message.id.0).collect::<Vec<_>>(),
            [1, 3, 5]
        );
        // Offline, the count bounds the queue: the oldest goes.
        assert_eq!(
            dropped_ids(mailbox.push(delivery(6, QoS::AtLeastOnce, 10))),
            [0]
        );
        assert_eq!(ids(&mailbox), [2, 4, 6]);
    }
}
