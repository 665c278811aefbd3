//! Routing: which sessions a topic reaches, and the retained messages.
//!
//! The trie sits behind one `RwLock`: every publisher's task matches against it at once under
//! the read lock (routing is the hot, parallel path) and SUBSCRIBE/UNSUBSCRIBE take the write
//! lock briefly. Matching hands each subscriber to a callback, so nothing is collected or
//! allocated per message.

mod retained;
mod trie;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use hookmq_codec::{QoS, SubscriptionOptions};
use parking_lot::RwLock;

pub(crate) use retained::Retained;

use crate::session::mailbox::{Mailbox, SubscriptionIds};

/// One session's subscription to one filter, as the router keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session_id: u64,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) options: SubscriptionOptions,
    pub(crate) subscription_id: Option<u32>,
}

/// Where [`Router::route`] sends a message.
#[derive(Debug)]
pub(crate) enum Route<'a> {
    /// To this subscription; with an [`Overlap`], it stands for every subscription of its
    /// session the topic matched.
    To(&'a Subscriber, Option<Overlap>),
    /// Not to this subscription: its no-local option excludes the publisher's own session.
    NoLocal(&'a Subscriber),
}

/// Several subscriptions of one session that a topic matched, delivered as one message at
/// the highest QoS granted, carrying every subscription identifier [MQTT-3.3.4-2, 3].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overlap {
    /// The highest QoS granted by the matching subscriptions.
    pub(crate) qos: QoS,
    /// Whether any of them keeps the retain flag as published.
    pub(crate) retain_as_published: bool,
    /// Their identifiers.
    pub(crate) subscription_ids: SubscriptionIds,
}

impl Overlap {
    fn of(subs: &[&Subscriber]) -> Self {
        let ids: Vec<u32> = subs.iter().filter_map(|s| s.subscription_id).collect();
        Self {
            qos: subs.iter().map(|s| s.options.qos).max().unwrap_or_default(),
            retain_as_published: subs.iter().any(|s| s.options.retain_as_published),
            subscription_ids: SubscriptionIds::from_slice(&ids),
        }
    }
}

/// One subscription's route for a message from session `publisher`.
fn route_one(sub: &Subscriber, publisher: u64) -> Route<'_> {
    if sub.options.no_local && sub.session_id == publisher {
        Route::NoLocal(sub)
    } else {
        Route::To(sub, None)
    }
}

/// The members of one `$share/{group}/{filter}`; each message goes to one of them.
#[derive(Debug)]
pub(crate) struct SharedGroup {
    name: Box<str>,
    members: Vec<Subscriber>,
    /// Round-robin cursor; Relaxed is enough, fairness is approximate by design.
    next: AtomicUsize,
}

impl SharedGroup {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            members: Vec::new(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next member in turn, preferring connected ones.
    fn pick(&self) -> Option<&Subscriber> {
        let count = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| &self.members[(start + i) % count])
            .find(|m| m.mailbox.is_online())
            .or_else(|| self.members.get(start % count.max(1)))
    }
}

/// The subscribers of one filter.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    direct: Vec<Subscriber>,
    shared: Vec<SharedGroup>,
}

/// A row of the subscription listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// The filter (with `$share/{group}/` for shared subscriptions).
    pub filter: String,
    /// The subscribing session's number.
    pub session_id: u64,
    /// The subscribing session's client id (right for offline sessions too).
    pub client_id: Arc<str>,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// The subscription trie.
#[derive(Debug, Default)]
pub(crate) struct Router {
    trie: RwLock<trie::Node>,
    count: AtomicUsize,
    /// Filters gaining or losing their direct subscribers, and shared subscriptions their
    /// members, for the other nodes of a cluster.
    pub(crate) interest: crate::peers::Interest,
}

impl Router {
    /// Adds or replaces a subscription; returns whether it existed.
    pub(crate) fn subscribe(&self, filter: &str, group: Option<&str>, sub: Subscriber) -> bool {
        let existed = {
            let mut trie = self.trie.write();
            let subscribers = trie.entry(filter);
            if !subscribers.has(group) {
                // Under the trie's lock, so a concurrent last unsubscribe cannot record
                // its `false` after this `true`.
                self.interest.record(filter, group, true);
            }
            subscribers.upsert(group, sub)
        };
        if !existed {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        existed
    }

    /// Removes a subscription; returns whether it existed.
    pub(crate) fn unsubscribe(&self, filter: &str, group: Option<&str>, session_id: u64) -> bool {
        let removed = self
            .trie
            .write()
            .modify(filter, |subs| {
                let removed = subs.remove(group, session_id);
                if removed && !subs.has(group) {
                    // Under the trie's lock, as in `subscribe`.
                    self.interest.record(filter, group, false);
                }
                removed
            })
            .unwrap_or(false);
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Starts recording interest changes, from every filter with direct subscribers and
    /// every `$share/{group}/{filter}` with members now. Under the trie's read lock: a
    /// subscription made meanwhile is either in this list or recorded as a change.
    pub(crate) fn enable_interest(&self) {
        let trie = self.trie.read();
        let mut keys = std::collections::BTreeSet::new();
        trie.for_each(&mut Vec::new(), &mut |filter, subs| {
            if !subs.direct.is_empty() {
                keys.insert(filter.clone());
            }
            for group in &subs.shared {
                keys.insert(format!("$share/{}/{filter}", group.name));
            }
        });
        self.interest.enable(keys);
        drop(trie);
    }

    /// Delivers a message to one member of the shared subscription `$share/{group}/{filter}`
    /// here (another node's message that NATS gave this node's members); returns whether
    /// one took it.
    pub(crate) fn route_shared(
        &self,
        filter: &str,
        group: &str,
        mut deliver: impl FnMut(Route<'_>),
    ) -> bool {
        let trie = self.trie.read();
        let member = trie
            .find(filter)
            .and_then(|subs| subs.shared.iter().find(|g| &*g.name == group))
            .and_then(SharedGroup::pick);
        // No session here published it: no-local never applies.
        member.map(|sub| deliver(route_one(sub, 0))).is_some()
    }

    /// Calls `deliver` with where a message on `topic` from session `publisher` goes: one
    /// member per shared group, and one route per session among the other subscriptions
    /// (several filters of one session that match are merged: [`Overlap`]). Returns how many
    /// subscriptions matched.
    pub(crate) fn route(
        &self,
        topic: &str,
        publisher: u64,
        shared: bool,
        mut deliver: impl FnMut(Route<'_>),
    ) -> usize {
        let mut matched = 0;
        let trie = self.trie.read();
        // Overlaps are only possible when more than one filter matched: the usual single
        // filter goes straight through, without collecting anything.
        let mut first: Option<&Subscribers> = None;
        let mut more: Vec<&Subscribers> = Vec::new();
        trie.matches(topic, &mut |subs| {
            // A shared subscription's message is its own, whatever else the member has.
            // In a cluster, NATS balances shared subscriptions instead (`shared` false).
            for group in subs.shared.iter().filter(|_| shared) {
                if let Some(sub) = group.pick() {
                    matched += 1;
                    deliver(route_one(sub, publisher));
                }
            }
            if subs.direct.is_empty() {
            } else if first.is_none() {
                first = Some(subs);
            } else {
                more.push(subs);
            }
        });
        let Some(first) = first else {
            return matched;
        };
        if more.is_empty() {
            for sub in &first.direct {
                matched += 1;
                deliver(route_one(sub, publisher));
            }
            return matched;
        }
        let mut all: Vec<&Subscriber> = std::iter::once(first)
            .chain(more)
            .flat_map(|subs| &subs.direct)
            .collect();
        matched += all.len();
        // Stable: a session's subscriptions stay in the order they matched.
        all.sort_by_key(|sub| sub.session_id);
        let mut eligible = Vec::new();
        for session in all.chunk_by(|a, b| a.session_id == b.session_id) {
            eligible.clear();
            for sub in session {
                match route_one(sub, publisher) {
                    Route::To(sub, _) => eligible.push(sub),
                    excluded @ Route::NoLocal(_) => deliver(excluded),
                }
            }
            match eligible.as_slice() {
                [] => {}
                [one] => deliver(Route::To(one, None)),
                several => deliver(Route::To(several[0], Some(Overlap::of(several)))),
            }
        }
        matched
    }

    /// Number of subscriptions.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Every subscription, for listings.
    pub(crate) fn list(&self) -> Vec<SubscriptionRow> {
        let mut rows = Vec::new();
        let trie = self.trie.read();
        trie.for_each(&mut Vec::new(), &mut |filter, subs| {
            for sub in &subs.direct {
                rows.push(SubscriptionRow {
                    filter: filter.clone(),
                    session_id: sub.session_id,
                    client_id: Arc::clone(&sub.mailbox.client().client_id),
                    options: sub.options,
                });
            }
            for group in &subs.shared {
                for sub in &group.members {
                    rows.push(SubscriptionRow {
                        filter: format!("$share/{}/{filter}", group.name),
                        session_id: sub.session_id,
                        client_id: Arc::clone(&sub.mailbox.client().client_id),
                        options: sub.options,
                    });
                }
            }
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hooks::ClientInfo, session::mailbox::QueueLimits};

    fn sub(session_id: u64) -> Subscriber {
        let client = ClientInfo::for_test(&format!("c{session_id}"), session_id);
        Subscriber {
            session_id,
            mailbox: Arc::new(Mailbox::new(
                QueueLimits {
                    len: 10,
                    bytes: 1 << 20,
                },
                true,
                client,
                None,
            )),
            options: SubscriptionOptions::default(),
            subscription_id: None,
        }
    }

    /// The sessions a message from the broker (session 0) on `topic` goes to.
    fn matched(router: &Router, topic: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        router.route(topic, 0, true, |route| {
            if let Route::To(s, _) = route {
                ids.push(s.session_id);
            }
        });
        ids.sort_unstable();
        ids
    }

    fn sub_with(session_id: u64, qos: QoS, id: Option<u32>, no_local: bool) -> Subscriber {
        let mut sub = sub(session_id);
        sub.options.qos = qos;
        sub.options.no_local = no_local;
        sub.subscription_id = id;
        sub
    }

    #[test]
    fn overlapping_subscriptions_of_a_session_give_one_route() {
        let router = Router::default();
        router.subscribe("a/b", None, sub_with(1, QoS::AtMostOnce, Some(1), false));
        router.subscribe("a/+", None, sub_with(1, QoS::ExactlyOnce, None, false));
        router.subscribe("#", None, sub_with(1, QoS::AtLeastOnce, Some(3), false));
        router.subscribe("a/#", None, sub_with(2, QoS::AtLeastOnce, Some(7), false));
        router.subscribe(
            "a/b",
            Some("g"),
            sub_with(1, QoS::AtMostOnce, Some(9), false),
        );
        let mut routes = Vec::new();
        let matched = router.route("a/b", 0, true, |route| match route {
            Route::To(s, overlap) => routes.push((s.session_id, s.subscription_id, overlap)),
            Route::NoLocal(_) => panic!("no no-local subscription"),
        });
        assert_eq!(matched, 5, "every subscription counts as matched");
        routes.sort_by_key(|(session, id, _)| (*session, *id));
        assert_eq!(routes.len(), 3, "{routes:?}");
        // The shared subscription is a copy of its own [MQTT-4.8.2].
        assert_eq!(routes[1], (1, Some(9), None));
        let (session, _, Some(overlap)) = &routes[0] else {
            panic!("session 1's three filters merged: {routes:?}")
        };
        assert_eq!(*session, 1);
        assert_eq!(
            overlap.qos,
            QoS::ExactlyOnce,
            "the highest QoS [MQTT-3.3.4-2]"
        );
        let mut ids = overlap.subscription_ids.as_slice().to_vec();
        ids.sort_unstable();
        assert_eq!(ids, [1, 3], "every identifier [MQTT-3.3.4-3]");
        assert_eq!(routes[2], (2, Some(7), None), "one filter: no overlap");
    }

    #[test]
    fn no_local_excludes_only_its_own_subscription_of_an_overlap() {
        let router = Router::default();
        router.subscribe("a/b", None, sub_with(1, QoS::AtLeastOnce, Some(1), true));
        router.subscribe("a/#", None, sub_with(1, QoS::AtMostOnce, Some(2), false));
        let (mut to, mut excluded) = (Vec::new(), Vec::new());
        router.route("a/b", 1, true, |route| match route {
            Route::To(s, overlap) => to.push((s.subscription_id, overlap)),
            Route::NoLocal(s) => excluded.push(s.subscription_id),
        });
        assert_eq!(excluded, [Some(1)]);
        assert_eq!(to, [(Some(2), None)]);
    }

    #[test]
    fn wildcards_and_dollar_topics() {
        let router = Router::default();
        router.subscribe("a/b", None, sub(1));
        router.subscribe("a/+", None, sub(2));
        router.subscribe("a/#", None, sub(3));
        router.subscribe("#", None, sub(4));
        router.subscribe("+/+/c", None, sub(5));
        router.subscribe("$SYS/#", None, sub(6));
        assert_eq!(matched(&router, "a/b"), vec![1, 2, 3, 4]);
        assert_eq!(matched(&router, "a"), vec![3, 4]);
        assert_eq!(matched(&router, "a/b/c"), vec![3, 4, 5]);
        assert_eq!(matched(&router, "$SYS/x"), vec![6]);
        assert_eq!(router.len(), 6);
    }

    #[test]
    fn unsubscribe_prunes() {
        let router = Router::default();
        assert!(!router.subscribe("a/+/c", None, sub(1)));
        assert!(
            router.subscribe("a/+/c", None, sub(1)),
            "second subscribe replaces"
        );
        assert_eq!(router.len(), 1);
        assert!(router.unsubscribe("a/+/c", None, 1));
        assert!(!router.unsubscribe("a/+/c", None, 1));
        assert!(matched(&router, "a/b/c").is_empty());
        assert_eq!(router.len(), 0);
        assert!(router.list().is_empty());
    }

    #[test]
    fn shared_groups_take_turns() {
        let router = Router::default();
        router.subscribe("t/#", Some("g"), sub(1));
        router.subscribe("t/#", Some("g"), sub(2));
        router.subscribe("t/#", None, sub(3));
        let mut counts = [0; 4];
        for _ in 0..10 {
            router.route("t/x", 0, true, |route| {
                if let Route::To(s, _) = route {
                    counts[usize::try_from(s.session_id).unwrap_or(0)] += 1;
                }
            });
        }
        assert_eq!(counts[1] + counts[2], 10);
        assert_eq!(counts[1], 5);
        assert_eq!(counts[3], 10);
        let mut filters: Vec<String> = router.list().into_iter().map(|r| r.filter).collect();
        filters.sort();
        assert_eq!(filters, vec!["$share/g/t/#", "$share/g/t/#", "t/#"]);
    }
}
