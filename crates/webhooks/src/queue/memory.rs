//! The in-memory queue: lanes of events, bounded across all lanes.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use super::{Queue, Queued, Wait};

#[derive(Debug, Default)]
struct Lane {
    /// parking_lot mutex: pushes and takes are pointer moves, never held across `.await`.
    items: Mutex<VecDeque<Queued>>,
    /// Wakes the lane's worker: a push stores a permit if it is not waiting, so a push
    /// between its `take` and its `wait` is not missed.
    notify: Notify,
}

/// The in-memory queue: bounded across all lanes; a full queue drops new events.
#[derive(Debug)]
pub struct MemoryQueue {
    lanes: Vec<Lane>,
    len: AtomicUsize,
    capacity: usize,
    closed: AtomicBool,
}

impl MemoryQueue {
    /// A queue of `lanes` lanes holding at most `capacity` events.
    #[must_use]
    pub fn new(lanes: usize, capacity: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1)).map(|_| Lane::default()).collect(),
            len: AtomicUsize::new(0),
            capacity,
            closed: AtomicBool::new(false),
        }
    }

    fn lane(&self, lane: usize) -> &Lane {
        &self.lanes[lane % self.lanes.len()]
    }

    /// Adds one event to `lane`'s tail; gives it back if the queue is full or closed.
    ///
    /// # Errors
    /// The item, when it was not queued.
    pub fn push(&self, lane: usize, item: Queued) -> Result<(), Queued> {
        if self.reserve_up_to(1) == 0 {
            return Err(item);
        }
        self.push_reserved(std::iter::once((lane, item)))
            .pop()
            .map_or(Ok(()), Err)
    }

    /// Whether the queue closed after a slot was taken; called with a lane locked, it gives
    /// the slot back. A push that took its slot before `close` but locks its lane after a
    /// `drain` would otherwise leave its event where nobody takes it.
    fn closed_under_lock(&self) -> bool {
        let closed = self.closed.load(Ordering::Acquire);
        if closed {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
        closed
    }

    /// Takes up to `wanted` slots at once (none when closed); returns how many it took.
    pub(crate) fn reserve_up_to(&self, wanted: usize) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        // Full: a plain read, so a queue that drops does not bounce the counter's cache line.
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            return 0;
        }
        // Take them all in one step, then give back what went past the bound: concurrent
        // pushes never take the queue past it, and a run keeps a prefix of itself (never a
        // later event without the earlier ones).
        let before = self.len.fetch_add(wanted, Ordering::AcqRel);
        let taken = wanted.min(self.capacity.saturating_sub(before));
        if taken < wanted {
            self.len.fetch_sub(wanted - taken, Ordering::AcqRel);
        }
        taken
    }

    /// Adds events whose slots [`MemoryQueue::reserve_up_to`] took, in order, each to its
    /// lane's tail: a run of one lane under one lock with one wake-up. Returns the events
    /// that found the queue closed (their slots are given back).
    pub(crate) fn push_reserved(
        &self,
        items: impl IntoIterator<Item = (usize, Queued)>,
    ) -> Vec<Queued> {
        let mut refused = Vec::new();
        let mut open: Option<(&Lane, MutexGuard<'_, VecDeque<Queued>>)> = None;
        for (lane, item) in items {
            let lane = self.lane(lane);
            match &mut open {
                Some((current, tail)) if std::ptr::eq(*current, lane) => tail.push_back(item),
                _ => {
                    if let Some((previous, tail)) = open.take() {
                        drop(tail);
                        previous.notify.notify_one();
                    }
                    let mut tail = lane.items.lock();
                    if self.closed_under_lock() {
                        refused.push(item);
                        continue;
                    }
                    tail.push_back(item);
                    open = Some((lane, tail));
                }
            }
        }
        if let Some((lane, tail)) = open {
            drop(tail);
            lane.notify.notify_one();
        }
        refused
    }

    /// Wakes `lane`'s worker (an event for it waits elsewhere, on disk).
    pub(crate) fn notify(&self, lane: usize) {
        self.lane(lane).notify.notify_one();
    }

    /// Removes the events waiting in `lane`, in order.
    pub(crate) fn drain_lane(&self, lane: usize) -> Vec<Queued> {
        let mut items = self.lane(lane).items.lock();
        self.len.fetch_sub(items.len(), Ordering::AcqRel);
        items.drain(..).collect()
    }

    /// [`Queue::put_back`] if `keep` says so, asked under the lane's lock (so a concurrent
    /// [`MemoryQueue::remove_from_lane`] sees the event or `keep`'s new answer); else gives
    /// the event back.
    pub(crate) fn put_back_if(
        &self,
        lane: usize,
        item: Queued,
        keep: impl FnOnce() -> bool,
    ) -> Option<Queued> {
        let lane = self.lane(lane);
        let mut items = lane.items.lock();
        if !keep() {
            return Some(item);
        }
        self.len.fetch_add(1, Ordering::AcqRel);
        items.push_front(item);
        drop(items);
        lane.notify.notify_one();
        None
    }

    /// Removes the events of `lane` that `keep` refuses, under the lane's lock (so the rest
    /// keep their places); returns them.
    pub(crate) fn remove_from_lane(
        &self,
        lane: usize,
        mut keep: impl FnMut(&Queued) -> bool,
    ) -> Vec<Queued> {
        let mut items = self.lane(lane).items.lock();
        let mut removed = Vec::new();
        items.retain(|item| {
            let kept = keep(item);
            if !kept {
                removed.push(item.clone());
            }
            kept
        });
        self.len.fetch_sub(removed.len(), Ordering::AcqRel);
        removed
    }

    /// Removes the oldest waiting event (the lowest sequence number at a lane's head) if it
    /// is older than `limit`. Each lane is looked at under its own lock, so under concurrent
    /// takes it is the oldest give or take an event.
    pub(crate) fn take_oldest_before(&self, limit: Option<u64>) -> Option<Queued> {
        let (seq, lane) = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(i, lane)| lane.items.lock().front().map(|item| (item.seq, i)))
            .min()?;
        if limit.is_some_and(|limit| seq >= limit) {
            return None;
        }
        let mut items = self.lanes[lane].items.lock();
        if items.front().map(|item| item.seq) != Some(seq) {
            return None;
        }
        let item = items.pop_front()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        Some(item)
    }

    /// Gives back `count` slots taken and not used.
    pub(crate) fn release(&self, count: usize) {
        if count > 0 {
            self.len.fetch_sub(count, Ordering::AcqRel);
        }
    }

    /// Takes `count` slots whatever the bound (events that must not be lost); they are given
    /// back as usual when the events are taken or found the queue closed.
    pub(crate) fn force_reserve(&self, count: usize) {
        self.len.fetch_add(count, Ordering::AcqRel);
    }

    /// [`Queue::push_front_run`], giving back the events that did not go in: the newest
    /// ones when the bound is reached, and, if the queue closes meanwhile, the rest.
    pub(crate) fn push_front_returning(&self, mut items: Vec<(usize, Queued)>) -> Vec<Queued> {
        let kept = self.reserve_up_to(items.len());
        let mut refused: Vec<Queued> = items.drain(kept..).map(|(_, item)| item).collect();
        refused.extend(self.push_front_reserved(items));
        refused
    }

    /// Puts a run of events whose slots are taken at the heads of their lanes, oldest
    /// first; gives back those that found the queue closed (their slots are given back).
    pub(crate) fn push_front_reserved(&self, items: Vec<(usize, Queued)>) -> Vec<Queued> {
        let mut refused = Vec::new();
        // Newest first, each at its lane's head: every lane ends up oldest first.
        let mut newest_first = items.into_iter().rev();
        while let Some((lane, item)) = newest_first.next() {
            let lane = self.lane(lane);
            let mut waiting = lane.items.lock();
            if self.closed_under_lock() {
                // Closed meanwhile: the slots of the rest go back too.
                let rest: Vec<Queued> = newest_first.map(|(_, item)| item).collect();
                self.len.fetch_sub(rest.len(), Ordering::AcqRel);
                refused.push(item);
                refused.extend(rest);
                return refused;
            }
            waiting.push_front(item);
            drop(waiting);
            lane.notify.notify_one();
        }
        refused
    }
}

impl Queue for MemoryQueue {
    fn push_many(&self, mut items: Vec<(usize, Queued)>) -> usize {
        let kept = self.reserve_up_to(items.len());
        let dropped = items.len() - kept;
        items.truncate(kept);
        dropped + self.push_reserved(items).len()
    }

    fn push_front_run(&self, items: Vec<(usize, Queued)>) -> usize {
        self.push_front_returning(items).len()
    }

    fn restore(&self, items: Vec<(usize, Queued)>) {
        self.force_reserve(items.len());
        self.push_reserved(items);
    }

    fn take(&self, lane: usize) -> Option<Queued> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let item = self.lane(lane).items.lock().pop_front()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        Some(item)
    }

    fn put_back(&self, lane: usize, item: Queued) {
        self.len.fetch_add(1, Ordering::AcqRel);
        let lane = self.lane(lane);
        lane.items.lock().push_front(item);
        lane.notify.notify_one();
    }

    /// Nothing to forget: a taken event is only in the worker's hands.
    fn settle(&self, _item: &Queued) {}

    fn wait(&self, lane: usize) -> Wait<'_> {
        let lane = self.lane(lane);
        Box::pin(async move {
            if !self.closed.load(Ordering::Acquire) {
                lane.notify.notified().await;
            }
        })
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn room(&self) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        self.capacity
            .saturating_sub(self.len.load(Ordering::Relaxed))
    }

    fn lanes(&self) -> usize {
        self.lanes.len()
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for lane in &self.lanes {
            lane.notify.notify_waiters();
            lane.notify.notify_one();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn drain(&self) -> Vec<Queued> {
        let mut all = Vec::new();
        for lane in &self.lanes {
            let mut items = lane.items.lock();
            self.len.fetch_sub(items.len(), Ordering::AcqRel);
            all.extend(items.drain(..));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hookmq_broker::{
        hooks::{ClientInfo, Event, EventData},
        message::MessageId,
    };
    use hookmq_codec::ProtocolVersion;

    use super::*;

    fn item(n: u64) -> Queued {
        let client = Arc::new(ClientInfo {
            client_id: "c".into(),
            username: None,
            peer: "127.0.0.1:1".parse().expect("addr"),
            local: "127.0.0.1:1883".parse().expect("addr"),
            protocol: ProtocolVersion::V5,
            keep_alive: 0,
            clean_start: true,
            expiry_interval: 0,
            receive_maximum: 1,
            connect_properties: hookmq_broker::message::PacketProperties::default(),
            connected_at: n,
            session_id: n,
            is_superuser: false,
            client_attrs: Vec::new(),
            mountpoint: None,
        });
        Queued {
            event: Arc::new(Event {
                timestamp: n,
                data: EventData::ClientConnected { client },
            }),
            id: Some(MessageId(u128::from(n))),
            seq: 0,
            attempts: 0,
            requeued_at: 0,
        }
    }

    #[tokio::test]
    async fn bounded_fifo_per_lane_with_requeue() {
        let queue = MemoryQueue::new(2, 3);
        assert!(queue.push(0, item(1)).is_ok());
        assert!(queue.push(0, item(2)).is_ok());
        assert!(queue.push(1, item(3)).is_ok());
        assert!(queue.push(1, item(4)).is_err(), "full");
        assert_eq!(queue.len(), 3);
        let first = queue.take(0).expect("item");
        assert_eq!(first.id, Some(MessageId(1)));
        queue.put_back(0, first);
        assert_eq!(queue.take(0).expect("item").id, Some(MessageId(1)));
        assert_eq!(queue.take(0).expect("item").id, Some(MessageId(2)));
        assert_eq!(queue.drain().len(), 1);
        assert!(queue.is_empty());
        queue.close();
        assert!(queue.take(1).is_none());
        queue.wait(1).await;
    }

    #[tokio::test]
    async fn a_run_goes_in_in_order_and_what_does_not_fit_is_counted() {
        let queue = MemoryQueue::new(2, 4);
        let run = [(0, 1), (0, 2), (1, 3), (0, 4), (1, 5), (0, 6)];
        let dropped = queue.push_many(run.iter().map(|&(lane, n)| (lane, item(n))).collect());
        assert_eq!(dropped, 2, "a bound of 4 takes the first 4");
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.room(), 0);
        let ids = |lane| {
            std::iter::from_fn(|| queue.take(lane))
                .map(|item| item.id)
                .collect::<Vec<_>>()
        };
        let expect = |ns: &[u64]| {
            ns.iter()
                .map(|&n| Some(MessageId(u128::from(n))))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), expect(&[1, 2, 4]));
        assert_eq!(ids(1), expect(&[3]));
        queue.close();
        assert_eq!(queue.push_many(vec![(0, item(7))]), 1, "closed");
    }

    #[test]
    fn a_run_put_in_front_keeps_its_order_and_the_bound() {
        let queue = MemoryQueue::new(2, 4);
        assert!(queue.push(0, item(10)).is_ok());
        let older = vec![(0, item(1)), (1, item(2)), (0, item(3)), (0, item(4))];
        assert_eq!(queue.push_front_run(older), 1, "3 of the 4 fit");
        assert_eq!((queue.len(), queue.room()), (4, 0));
        let ids = |lane| {
            std::iter::from_fn(|| queue.take(lane))
                .map(|item| item.id.map(|id| id.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(0),
            [Some(1), Some(3), Some(10)],
            "older events go first"
        );
        assert_eq!(ids(1), [Some(2)]);
        queue.close();
        assert_eq!(queue.push_front_run(vec![(0, item(5))]), 1, "closed");
        assert_eq!(queue.len(), 0);
    }

    /// Pushes race a `close` and `drain`: every push that succeeded must be in what was
    /// drained, none left behind where no worker takes it, and the count must end at zero.
    #[test]
    fn no_push_lands_after_the_drain_of_a_closed_queue() {
        for round in 0..2_000 {
            let queue = Arc::new(MemoryQueue::new(2, 1_000_000));
            let pushers: Vec<_> = (0..3)
                .map(|thread| {
                    let queue = Arc::clone(&queue);
                    std::thread::spawn(move || {
                        // Until the first refusal: the queue is far from full, so closed.
                        for n in 0.. {
                            let pushed = if n % 2 == 0 {
                                queue.push(thread % 2, item(n)).is_ok()
                            } else {
                                queue.push_many(vec![(thread % 2, item(n))]) == 0
                            };
                            if !pushed {
                                return n;
                            }
                        }
                        unreachable!("the queue closes")
                    })
                })
                .collect();
            while queue.len() < 100 {
                std::hint::spin_loop();
            }
            queue.close();
            let drained = queue.drain().len();
            let accepted: u64 = pushers
                .into_iter()
                .map(|pusher| pusher.join().expect("pusher"))
                .sum();
            let stranded = queue
                .lanes
                .iter()
                .map(|lane| lane.items.lock().len())
                .sum::<usize>();
            assert_eq!(stranded, 0, "round {round}: pushed after the drain");
            assert_eq!(accepted, drained as u64, "round {round}");
            assert_eq!(queue.len(), 0, "round {round}");
        }
    }

    /// A run put in front while the queue closes: every event ends queued (and drained) or
    /// counted as dropped, and every slot is given back.
    #[test]
    fn a_run_put_in_front_while_closing_loses_no_slot() {
        let run = 50_000;
        let mut closed_midway = 0;
        for round in 0..20 {
            let queue = Arc::new(MemoryQueue::new(4, 1_000_000));
            let closer = {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    while queue.lanes[0].items.lock().len() < 1_000 {
                        std::hint::spin_loop();
                    }
                    queue.close();
                })
            };
            let items = (0..run).map(|n| (n as usize % 4, item(n))).collect();
            let dropped = queue.push_front_run(items);
            closer.join().expect("closer");
            closed_midway += usize::from(dropped > 0);
            let drained = queue.drain().len();
            assert_eq!(drained + dropped, run as usize, "round {round}");
            assert_eq!(queue.len(), 0, "round {round}");
        }
        assert!(closed_midway > 0, "the close never came during a run");
    }
}
