//! The other nodes of a cluster, as the broker sees them: where this node's publishes go
//! ([`Peers`], implemented by `hookmq-cluster` over NATS), which filters have subscribers
//! here ([`Interest`], so that only messages someone here wants cross the wire), and how a
//! peer's message is delivered here (`BrokerHandle::route_from_peer`).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::message::Message;

/// Where a node's own publishes go to reach the other nodes.
pub trait Peers: Send + Sync + std::fmt::Debug {
    /// A message published on this node (never one received from a peer). Called on the
    /// publish path: it must not block (queue it, and count what a full queue drops).
    /// `shared_here`: this node gave it to its own shared subscriptions' members already,
    /// so no node's members take it from the cluster. Returns whether it was queued.
    fn forward(&self, message: &Arc<Message>, shared_here: bool) -> bool;

    /// Whether the cluster balances shared subscriptions now (so this node leaves its own
    /// members to it); while it cannot (no NATS), this node delivers to them itself.
    fn balances_shared(&self) -> bool;

    /// A client connected here: the other nodes end its connection there, if any (one
    /// connection per client id, cluster-wide). Must not block.
    fn connected(&self, client_id: &str);

    /// The session of `client_id` from the node that has it (which ends it there), as
    /// `BrokerHandle::hand_over_session` gave it; `None` when no node has one. Asked while
    /// a client that wants its session kept connects here and this node has none.
    fn fetch_session<'a>(&'a self, client_id: &'a str) -> SessionFetch<'a>;

    /// Once the session [`Peers::fetch_session`] gave is rebuilt here: waits until this
    /// node's subscriptions are in the cluster (`BrokerHandle::interest_recorded`), then
    /// returns what the node it came from collected for it meanwhile
    /// (`BrokerHandle::release_session` there).
    fn settle_session<'a>(&'a self, client_id: &'a str) -> SessionFetch<'a>;

    /// Whether the node `node` has a session of `client_id` (connected, offline, or being
    /// connected): `false` only when surely not (it says so, or no node of that name is
    /// there), `true` when unsure (it does not answer in time).
    fn keeps<'a>(&'a self, node: &'a str, client_id: &'a str) -> Answer<'a, bool>;

    /// A future that resolves once the messages forwarded so far have left this node for
    /// good (its death can no longer keep them from the other nodes); `None` when nothing
    /// waits. A connection awaits it before it acknowledges QoS 1/2 PUBLISHes.
    fn forwarded(&self) -> Option<crate::hooks::Durable>;
}

/// What [`Peers::fetch_session`] returns.
pub type SessionFetch<'a> = Answer<'a, Option<Vec<u8>>>;

/// A peer's answer, on its way.
pub type Answer<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The filters that gained their first or lost their last subscriber here since the last
/// look. Changes are coalesced per filter (the last one counts), so the set is bounded by
/// the number of distinct filters, and nothing is lost however late it is read.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    /// Off until a cluster attaches: a single node pays one relaxed load per change.
    enabled: AtomicBool,
    /// Filter → whether it has subscribers now. A short lock per change (taken under the
    /// router's write lock, never the other way round) and per look.
    changes: Mutex<HashMap<String, bool>>,
    /// Woken after each change.
    changed: Notify,
    /// Changes recorded so far (written under `changes`' lock).
    recorded: AtomicU64,
}

impl Interest {
    /// Starts recording, from `current` (every filter with subscribers now).
    pub(crate) fn enable(&self, current: impl IntoIterator<Item = String>) {
        let mut changes = self.changes.lock();
        self.enabled.store(true, Ordering::Release);
        changes.extend(current.into_iter().map(|filter| (filter, true)));
        self.recorded.fetch_add(1, Ordering::AcqRel);
        drop(changes);
        self.changed.notify_one();
    }

    /// `filter` (`group` none) gained its first subscriber (`true`) or lost its last one
    /// (`false`); or `$share/{group}/{filter}` its first or last member.
    pub(crate) fn record(&self, filter: &str, group: Option<&str>, present: bool) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let key = match group {
            None => filter.to_owned(),
            Some(group) => format!("$share/{group}/{filter}"),
        };
        let mut changes = self.changes.lock();
        changes.insert(key, present);
        self.recorded.fetch_add(1, Ordering::AcqRel);
        drop(changes);
        self.changed.notify_one();
    }

    /// The changes since the last call, waiting for one if there is none, with the number
    /// of changes recorded up to them.
    pub(crate) async fn next(&self) -> (HashMap<String, bool>, u64) {
        loop {
            let (changes, upto) = {
                let mut pending = self.changes.lock();
                let changes = std::mem::take(&mut *pending);
                (changes, self.recorded.load(Ordering::Acquire))
            };
            if !changes.is_empty() {
                return (changes, upto);
            }
            self.changed.notified().await;
        }
    }

    /// Changes recorded so far.
    pub(crate) fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_are_kept_from_enabling_and_coalesced() {
        let interest = Interest::default();
        interest.record("ignored/before", None, true);
        interest.enable(["a/#".to_owned()]);
        interest.record("b", None, true);
        interest.record("b", None, false);
        let (changes, upto) = interest.next().await;
        assert_eq!(upto, 3, "one from enabling, two recorded");
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes.get("a/#"), Some(&true));
        assert_eq!(changes.get("b"), Some(&false), "the last change counts");
        interest.record("c", Some("g"), true);
        assert_eq!(interest.next().await.0.get("$share/g/c"), Some(&true));
        assert_eq!(interest.recorded(), 4);
    }
}
