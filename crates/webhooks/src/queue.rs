//! The delivery queue of one webhook: events waiting, split into lanes by client.
//!
//! A lane is delivered by one worker, one request at a time, so a client's events (always in
//! the same lane) reach the receiver in the order they happened, while other lanes proceed in
//! parallel. The [`Queue`] trait is what a disk-backed queue implements later: `pop` hands an
//! event out and `requeue_front` takes back one whose delivery was interrupted.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use hookmq_broker::{hooks::Event, message::MessageId};
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// An event waiting for delivery.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The event.
    pub event: Arc<Event>,
    /// Its delivery id (`webhook-id` is `evt_` and its hex): made at the first attempt, off
    /// the publish path, and kept across retries and requeues.
    pub id: Option<MessageId>,
    /// Attempts made so far (retries are counted against `max_retries`).
    pub attempts: u32,
}

/// A webhook's queue.
pub trait Queue: Send + Sync + 'static {
    /// Adds an event to `lane`'s tail; gives it back if the queue is full or closed.
    ///
    /// # Errors
    /// The item, when it was not queued.
    fn push(&self, lane: usize, item: Queued) -> Result<(), Queued>;
    /// Adds a run of events in order, each to its lane's tail; returns how many did not go
    /// in because the queue was full or closed (they are dropped).
    fn push_many(&self, items: impl Iterator<Item = (usize, Queued)>) -> usize {
        let mut dropped = 0;
        for (lane, item) in items {
            if self.push(lane, item).is_err() {
                dropped += 1;
            }
        }
        dropped
    }
    /// Puts back an event whose delivery was interrupted, at `lane`'s head (ignores the bound).
    fn requeue_front(&self, lane: usize, item: Queued);
    /// Puts a run of older events (oldest first) at the heads of their lanes, ahead of what
    /// waits there, as far as the bound allows: the oldest are kept. Returns how many did not
    /// fit (they are dropped).
    fn push_front_run(&self, items: Vec<(usize, Queued)>) -> usize;
    /// The next event of `lane`, waiting for one; `None` once closed.
    fn pop(&self, lane: usize) -> impl Future<Output = Option<Queued>> + Send;
    /// The next event of `lane` if one waits now (`None` also once closed).
    fn try_pop(&self, lane: usize) -> Option<Queued>;
    /// Events waiting in all lanes.
    fn len(&self) -> usize;
    /// How many more events fit now (0 when closed); a hint, as others push concurrently.
    fn room(&self) -> usize;
    /// Whether no event waits.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of lanes.
    fn lanes(&self) -> usize;
    /// Removes every waiting event, lane by lane in order.
    fn drain(&self) -> Vec<Queued>;
}

/// The lane of a client: FNV-1a of its id (a few nanoseconds for a short id, on the
/// publish path; lanes only spread load, so no keyed hash is needed).
#[must_use]
pub fn lane_of(client_id: &str, lanes: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    usize::try_from(hash % lanes.max(1) as u64).unwrap_or(0)
}

#[derive(Debug, Default)]
struct Lane {
    /// parking_lot mutex: pushes and pops are pointer moves, never held across `.await`.
    items: Mutex<VecDeque<Queued>>,
    /// Wakes the lane's worker.
    notify: Notify,
}

/// The in-memory queue: bounded across all lanes.
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

    /// Stops handing out events; waiting `pop`s return `None`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for lane in &self.lanes {
            lane.notify.notify_waiters();
            lane.notify.notify_one();
        }
    }

    fn lane(&self, lane: usize) -> &Lane {
        &self.lanes[lane % self.lanes.len()]
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

    /// Takes a slot for one more event, if the queue is open and has room.
    fn reserve(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        // Full: a plain read, so a queue that drops does not bounce the counter's cache line.
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            return false;
        }
        // Reserve a slot first so concurrent pushes cannot overshoot the bound.
        if self.len.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Takes up to `wanted` slots at once (none when closed); returns how many it took.
    fn reserve_up_to(&self, wanted: usize) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        let mut taken = 0;
        // A compare-and-swap loop: the slots are taken in one step, so concurrent pushes
        // cannot take the queue past its bound in between.
        let _ = self
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |len| {
                taken = wanted.min(self.capacity.saturating_sub(len));
                Some(len + taken)
            });
        taken
    }
}

impl Queue for MemoryQueue {
    fn push(&self, lane: usize, item: Queued) -> Result<(), Queued> {
        if !self.reserve() {
            return Err(item);
        }
        let lane = self.lane(lane);
        let mut items = lane.items.lock();
        if self.closed_under_lock() {
            return Err(item);
        }
        items.push_back(item);
        drop(items);
        lane.notify.notify_one();
        Ok(())
    }

    /// A run of one lane goes in under one lock, and its worker is woken once.
    fn push_many(&self, items: impl Iterator<Item = (usize, Queued)>) -> usize {
        let mut dropped = 0;
        let mut open: Option<(&Lane, MutexGuard<'_, VecDeque<Queued>>)> = None;
        for (lane, item) in items {
            if !self.reserve() {
                dropped += 1;
                continue;
            }
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
                        dropped += 1;
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
        dropped
    }

    fn requeue_front(&self, lane: usize, item: Queued) {
        self.len.fetch_add(1, Ordering::AcqRel);
        let lane = self.lane(lane);
        lane.items.lock().push_front(item);
        lane.notify.notify_one();
    }

    fn push_front_run(&self, mut items: Vec<(usize, Queued)>) -> usize {
        let kept = self.reserve_up_to(items.len());
        let dropped = items.len() - kept;
        items.truncate(kept);
        // Newest first, each at its lane's head: every lane ends up oldest first.
        let mut newest_first = items.into_iter().rev();
        while let Some((lane, item)) = newest_first.next() {
            let lane = self.lane(lane);
            let mut waiting = lane.items.lock();
            if self.closed_under_lock() {
                // Closed meanwhile: the slots of the rest go back too.
                let rest = newest_first.len();
                self.len.fetch_sub(rest, Ordering::AcqRel);
                return dropped + 1 + rest;
            }
            waiting.push_front(item);
            drop(waiting);
            lane.notify.notify_one();
        }
        dropped
    }

    async fn pop(&self, lane: usize) -> Option<Queued> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(item) = self.try_pop(lane) {
                return Some(item);
            }
            self.lane(lane).notify.notified().await;
        }
    }

    fn try_pop(&self, lane: usize) -> Option<Queued> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let item = self.lane(lane).items.lock().pop_front()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        Some(item)
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
    use hookmq_broker::hooks::{ClientInfo, EventData};
    use hookmq_codec::{Properties, ProtocolVersion};

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
            connect_properties: Properties::default(),
            connected_at: n,
            session_id: n,
        });
        Queued {
            event: Arc::new(Event {
                timestamp: n,
                data: EventData::ClientConnected { client },
            }),
            id: Some(MessageId(u128::from(n))),
            attempts: 0,
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
        let first = queue.pop(0).await.expect("item");
        assert_eq!(first.id, Some(MessageId(1)));
        queue.requeue_front(0, first);
        assert_eq!(queue.pop(0).await.expect("item").id, Some(MessageId(1)));
        assert_eq!(queue.pop(0).await.expect("item").id, Some(MessageId(2)));
        assert_eq!(queue.drain().len(), 1);
        assert!(queue.is_empty());
        queue.close();
        assert!(queue.pop(1).await.is_none());
    }

    #[tokio::test]
    async fn a_run_goes_in_in_order_and_what_does_not_fit_is_counted() {
        let queue = MemoryQueue::new(2, 4);
        let run = [(0, 1), (0, 2), (1, 3), (0, 4), (1, 5), (0, 6)];
        let dropped = queue.push_many(run.iter().map(|&(lane, n)| (lane, item(n))));
        assert_eq!(dropped, 2, "a bound of 4 takes the first 4");
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.room(), 0);
        let ids = |lane| {
            std::iter::from_fn(|| queue.try_pop(lane))
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
        assert_eq!(queue.push_many([(0, item(7))].into_iter()), 1, "closed");
    }

    #[test]
    fn a_run_put_in_front_keeps_its_order_and_the_bound() {
        let queue = MemoryQueue::new(2, 4);
        assert!(queue.push(0, item(10)).is_ok());
        let older = vec![(0, item(1)), (1, item(2)), (0, item(3)), (0, item(4))];
        assert_eq!(queue.push_front_run(older), 1, "3 of the 4 fit");
        assert_eq!((queue.len(), queue.room()), (4, 0));
        let ids = |lane| {
            std::iter::from_fn(|| queue.try_pop(lane))
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
                                queue.push_many([(thread % 2, item(n))].into_iter()) == 0
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

    #[test]
    fn lanes_are_stable() {
        assert_eq!(lane_of("client-a", 16), lane_of("client-a", 16));
        assert!(lane_of("client-b", 16) < 16);
        assert_eq!(lane_of("x", 1), 0);
    }
}
