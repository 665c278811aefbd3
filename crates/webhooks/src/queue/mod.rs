//! The delivery queue of one webhook: events waiting, split into lanes by client.
//!
//! A lane is delivered by one worker, in order, so a client's events (always in the same
//! lane) reach the receiver in the order they happened, while other lanes proceed in
//! parallel. [`Queue`] is the seam between the webhook and where its events wait:
//! [`MemoryQueue`] keeps them in memory only; a disk-backed queue also writes them to a
//! journal, and forgets them there when they are settled; [`ClusterQueue`] keeps them in
//! the cluster's work queue, which every node running the webhook drains.

mod cluster;
mod disk;
mod memory;
pub mod record;
mod writer;

use std::{future::Future, pin::Pin, sync::Arc};

use hookmq_broker::{hooks::Event, message::MessageId};

pub use cluster::ClusterQueue;
pub use disk::DiskQueue;
pub use memory::MemoryQueue;
pub use writer::{Journal, Live, WriteWindow};

/// An event waiting for delivery.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The event.
    pub event: Arc<Event>,
    /// Its delivery id (`webhook-id` is `evt_` and its hex), the same on every attempt and,
    /// for a journaled event, after a restart. Made at the first attempt when the queue
    /// did not give one (off the publish path).
    pub id: Option<MessageId>,
    /// The queue's own number for the event (its journal sequence number; 0 in memory).
    pub seq: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was queued again by hand (a dead letter replayed), ms since the epoch; 0
    /// otherwise. `request_ttl` counts from it when later than the event.
    pub requeued_at: u64,
}

impl Queued {
    /// A new event, not yet attempted.
    #[must_use]
    pub const fn new(event: Arc<Event>) -> Self {
        Self {
            event,
            id: None,
            seq: 0,
            attempts: 0,
            requeued_at: 0,
        }
    }
}

/// What [`Queue::wait`] returns: resolves when the lane may have an event, or the queue
/// closed.
pub type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where a webhook's events wait.
///
/// An event is taken out for delivery ([`Queue::take`]), then either put back at its lane's
/// head ([`Queue::put_back`], a retry or an interrupted delivery) or settled
/// ([`Queue::settle`]): delivered, failed or dropped, so the queue may forget it for good.
/// The publish path only calls [`Queue::push_many`] and [`Queue::room`], which never wait.
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Adds a run of events in order, each to its lane's tail; returns how many did not go
    /// in because the queue was full or closed (they are dropped, and settled).
    fn push_many(&self, items: Vec<(usize, Queued)>) -> usize;
    /// Puts a run of older events (oldest first) at the heads of their lanes, ahead of what
    /// waits there, as far as the bound allows: the oldest are kept. Returns how many did not
    /// fit (they are dropped, and settled).
    fn push_front_run(&self, items: Vec<(usize, Queued)>) -> usize;
    /// Places events recovered after a restart (oldest first, each to its lane's tail)
    /// whatever the bound: nothing kept through a restart is dropped for room.
    fn restore(&self, items: Vec<(usize, Queued)>);
    /// The next event of `lane` if one waits now (`None` also once closed).
    fn take(&self, lane: usize) -> Option<Queued>;
    /// Gives back an event taken from `lane`, to its head (ignores the bound).
    fn put_back(&self, lane: usize, item: Queued);
    /// The event taken out reached its end (delivered, failed, dead-lettered or dropped):
    /// it is forgotten, also after a restart.
    fn settle(&self, item: &Queued);
    /// Resolves when `lane` may have an event or the queue closed; an event pushed after a
    /// `take` that found none wakes it.
    fn wait(&self, lane: usize) -> Wait<'_>;
    /// Events waiting in all lanes.
    fn len(&self) -> usize;
    /// Of those, events kept on disk only (a disk buffer past its memory bound).
    fn on_disk_only(&self) -> usize {
        0
    }
    /// How many more events fit now (0 when closed); a hint, as others push concurrently.
    fn room(&self) -> usize;
    /// Whether no event waits.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of lanes.
    fn lanes(&self) -> usize;
    /// Stops taking and handing out events; waits resolve.
    fn close(&self);
    /// Whether [`Queue::close`] was called.
    fn is_closed(&self) -> bool;
    /// Removes every waiting event, lane by lane in order (for a new version to adopt, or to
    /// count as dropped); they are not settled.
    fn drain(&self) -> Vec<Queued>;
    /// Takes over what `older` (the previous version's queue, stopped) still holds, ahead of
    /// what this one took since: `lane_for` places each event. Returns how many were
    /// dropped because they did not fit. By default: `older` closes and drains, and what it
    /// had goes to the heads of this queue's lanes.
    fn adopt(&self, older: &dyn Queue, lane_for: &mut dyn FnMut(&Queued) -> usize) -> usize {
        older.close();
        push_drained(self, older, lane_for)
    }
    /// Events it could not read back (a damaged record), dropped.
    fn lost(&self) -> u64 {
        0
    }
    /// This queue as a disk buffer, if it is one.
    fn as_disk(&self) -> Option<&DiskQueue> {
        None
    }
    /// This queue as a cluster buffer, if it is one.
    fn as_cluster(&self) -> Option<&ClusterQueue> {
        None
    }
}

/// Drains `older` (closed) into the heads of `queue`'s lanes, each event where `lane_for`
/// puts it; returns how many did not fit.
fn push_drained<Q: Queue + ?Sized>(
    queue: &Q,
    older: &dyn Queue,
    lane_for: &mut dyn FnMut(&Queued) -> usize,
) -> usize {
    let placed: Vec<(usize, Queued)> = older
        .drain()
        .into_iter()
        .map(|item| (lane_for(&item), item))
        .collect();
    queue.push_front_run(placed)
}

/// The lane of a client: FNV-1a of its id (a few nanoseconds for a short id, on the
/// publish path; lanes only spread load, so no keyed hash is needed).
#[must_use]
pub fn lane_of(client_id: &str, lanes: usize) -> usize {
    lane_of_key(client_key(client_id), lanes)
}

/// The hash [`lane_of`] takes a client's lane from, whatever the number of lanes.
#[must_use]
pub fn client_key(client_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The lane of a client key among `lanes`.
#[must_use]
pub fn lane_of_key(key: u64, lanes: usize) -> usize {
    usize::try_from(key % lanes.max(1) as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_stable() {
        assert_eq!(lane_of("client-a", 16), lane_of("client-a", 16));
        assert!(lane_of("client-b", 16) < 16);
        assert_eq!(lane_of("x", 1), 0);
    }
}
