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

use hookmq_codec::SubscriptionOptions;
use parking_lot::RwLock;

pub(crate) use retained::Retained;

use crate::session::mailbox::Mailbox;

/// One session's subscription to one filter, as the router keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session_id: u64,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) options: SubscriptionOptions,
    pub(crate) subscription_id: Option<u32>,
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
}

impl Router {
    /// Adds or replaces a subscription; returns whether it existed.
    pub(crate) fn subscribe(&self, filter: &str, group: Option<&str>, sub: Subscriber) -> bool {
        let existed = self.trie.write().entry(filter).upsert(group, sub);
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
            .modify(filter, |subs| subs.remove(group, session_id))
            .unwrap_or(false);
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Calls `deliver` for every subscription matching `topic` (one member per shared group)
    /// and returns how many there were.
    pub(crate) fn route(&self, topic: &str, mut deliver: impl FnMut(&Subscriber)) -> usize {
        let mut matched = 0;
        let trie = self.trie.read();
        trie.matches(topic, &mut |subs| {
            for sub in &subs.direct {
                matched += 1;
                deliver(sub);
            }
            for group in &subs.shared {
                if let Some(sub) = group.pick() {
                    matched += 1;
                    deliver(sub);
                }
            }
        });
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

    fn matched(router: &Router, topic: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        router.route(topic, |s| ids.push(s.session_id));
        ids.sort_unstable();
        ids
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
            router.route("t/x", |s| {
                counts[usize::try_from(s.session_id).unwrap_or(0)] += 1
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
