//! The attempt log: a webhook's last attempts (when, which event, the answer or the error,
//! how long), so a user sees why a receiver fails without reading logs.
//!
//! Lanes record into shards of their own (lane modulo [`SHARDS`]), so recording is an
//! uncontended lock; a listing merges the shards by time. Each shard keeps [`KEPT`], so the
//! merge holds at least the last [`KEPT`] attempts of the webhook.

use std::collections::VecDeque;

use hookmq_broker::{hooks::EventKind, message::MessageId};
use parking_lot::Mutex;
use serde::Serialize;

/// Attempts kept per shard, and listed at most.
pub const KEPT: usize = 100;
/// Shards lanes record into.
const SHARDS: usize = 16;

/// One attempt as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// When its answer (or failure) came, ms since the epoch.
    pub at: u64,
    /// The event's `webhook-id`.
    pub webhook_id: String,
    /// The event's name.
    pub event: &'static str,
    /// The answer's status, if there was one.
    pub status: Option<u16>,
    /// From sending to the answer (or the failure), ms.
    pub latency_ms: u64,
    /// What went wrong, for an attempt that did not succeed.
    pub error: Option<String>,
}

/// An attempt as recorded (the id is formatted only when listed).
#[derive(Debug, Clone)]
struct Record {
    at: u64,
    id: Option<MessageId>,
    event: EventKind,
    status: Option<u16>,
    latency_ms: u64,
    error: Option<String>,
}

/// A webhook's attempt log (shared by its versions).
#[derive(Debug)]
pub struct AttemptLog {
    /// parking_lot mutexes: one lane per shard mostly, so an uncontended lock and a push.
    shards: Vec<Mutex<VecDeque<Record>>>,
}

impl Default for AttemptLog {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(VecDeque::new())).collect(),
        }
    }
}

impl AttemptLog {
    /// Records an attempt of `lane`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        lane: usize,
        at: u64,
        id: Option<MessageId>,
        event: EventKind,
        status: Option<u16>,
        latency_ms: u64,
        error: Option<String>,
    ) {
        let mut shard = self.shards[lane % SHARDS].lock();
        if shard.len() >= KEPT {
            shard.pop_front();
        }
        shard.push_back(Record {
            at,
            id,
            event,
            status,
            latency_ms,
            error,
        });
    }

    /// The last `limit` attempts (at most [`KEPT`]), newest first.
    #[must_use]
    pub fn recent(&self, limit: usize) -> Vec<Attempt> {
        let mut all: Vec<Record> = self
            .shards
            .iter()
            .flat_map(|shard| shard.lock().iter().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.at));
        all.truncate(limit.min(KEPT));
        all.into_iter()
            .map(|r| Attempt {
                at: r.at,
                webhook_id: r.id.map(|id| format!("evt_{id}")).unwrap_or_default(),
                event: r.event.name(),
                status: r.status,
                latency_ms: r.latency_ms,
                error: r.error,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_attempts_newest_first_across_lanes() {
        let log = AttemptLog::default();
        for n in 0..300u64 {
            let error = (n % 2 == 1).then(|| "HTTP 503".to_owned());
            let status = Some(if n % 2 == 1 { 503 } else { 200 });
            let lane = usize::try_from(n % 3).expect("small");
            log.record(
                lane,
                n,
                Some(MessageId(n.into())),
                EventKind::MessagePublish,
                status,
                1,
                error,
            );
        }
        let recent = log.recent(1000);
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].at, 299);
        assert!(recent.windows(2).all(|w| w[0].at > w[1].at));
        assert_eq!(recent[0].error.as_deref(), Some("HTTP 503"));
        assert_eq!(recent[1].status, Some(200));
        assert_eq!(log.recent(5).len(), 5);
    }
}
