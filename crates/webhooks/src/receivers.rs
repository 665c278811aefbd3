//! A webhook's receivers: `url` and the `urls` after it, each with its own health (status
//! and circuit) and counters, and the `url_strategy` that gives each lane one.
//!
//! A lane sends to one receiver at a time, so a client's events (one lane) reach the
//! receivers in order whichever gets them. `round_robin` homes lane i on receiver i mod n,
//! `failover` homes every lane on the first. A lane whose receiver's circuit is open turns
//! to the next receiver, counting on from its home, that is usable (circuit closed, or a
//! probe due), and back to its home as soon as that is usable again. It changes receiver
//! only with nothing in flight (its window drains first), so a move sends nothing twice.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::Serialize;

use crate::{
    health::{Health, HealthSnapshot, State},
    spec::{UrlStrategy, WebhookSpec},
};

/// One receiver and what its webhook knows of it.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// The URL as the spec gives it.
    url: String,
    /// Its status and circuit.
    pub(crate) health: Health,
    /// Requests settled (answered, failed or timed out).
    requests: AtomicU64,
    /// Of those, the ones that were not answered 2xx.
    failed_requests: AtomicU64,
    /// Events it took (answered 2xx).
    delivered: AtomicU64,
    /// Lanes sending to it now.
    lanes: AtomicUsize,
}

impl Receiver {
    /// One request settled: answered 2xx with `events` in it, or not (`events` 0, `ok` false).
    /// Relaxed: counters read for display only.
    pub(crate) fn settled(&self, ok: bool, events: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.delivered.fetch_add(events as u64, Ordering::Relaxed);
        } else {
            self.failed_requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests settled so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// One receiver as the API, CLI and dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReceiverStatus {
    /// Its URL.
    pub url: String,
    /// Its status, last error, failures in a row and since when.
    #[serde(flatten)]
    pub status: HealthSnapshot,
    /// Lanes sending to it now.
    pub lanes: usize,
    /// Requests settled since the node started (answered, failed or timed out).
    pub requests: u64,
    /// Of those, the ones not answered 2xx.
    pub failed_requests: u64,
    /// Events it took (answered 2xx) since the node started.
    pub delivered: u64,
}

/// A webhook's receivers, in the spec's order.
#[derive(Debug)]
pub(crate) struct Receivers {
    list: Vec<Arc<Receiver>>,
    strategy: UrlStrategy,
}

impl Receivers {
    /// The receivers of `spec` (already validated). A URL at the same place in `previous`
    /// keeps its receiver, with its status, circuit and counters.
    pub(crate) fn new(spec: &WebhookSpec, previous: Option<&Self>) -> Self {
        let list = spec
            .receiver_urls()
            .into_iter()
            .enumerate()
            .map(|(index, (_, url))| {
                previous
                    .and_then(|old| old.list.get(index))
                    .filter(|old| old.url == url)
                    .map_or_else(
                        || {
                            Arc::new(Receiver {
                                url: url.to_owned(),
                                health: Health::new(&spec.name, index),
                                requests: AtomicU64::new(0),
                                failed_requests: AtomicU64::new(0),
                                delivered: AtomicU64::new(0),
                                lanes: AtomicUsize::new(0),
                            })
                        },
                        Arc::clone,
                    )
            })
            .collect();
        Self {
            list,
            strategy: spec.url_strategy,
        }
    }

    /// How many there are (at least one).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Receiver `index` (the first one past the end).
    pub(crate) fn get(&self, index: usize) -> &Arc<Receiver> {
        self.list.get(index).unwrap_or(&self.list[0])
    }

    /// All of them, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Receiver>> {
        self.list.iter()
    }

    /// Where `lane` sends while its home is usable.
    pub(crate) fn home(&self, lane: usize) -> usize {
        match self.strategy {
            UrlStrategy::RoundRobin => lane % self.list.len(),
            UrlStrategy::Failover => 0,
        }
    }

    /// Where `lane` should send now: counting on from its home, the first receiver that is
    /// usable; its home when none is (it waits there for a probe).
    pub(crate) fn preferred(&self, lane: usize) -> usize {
        let home = self.home(lane);
        let n = self.list.len();
        if n == 1 {
            return 0;
        }
        (0..n)
            .map(|step| (home + step) % n)
            .find(|&index| self.list[index].health.usable())
            .unwrap_or(home)
    }

    /// `wait`, or less if a receiver's probe is due sooner (a lane waiting for its own
    /// receiver's circuit then looks again at the others).
    pub(crate) fn first_probe_within(&self, wait: Duration) -> Duration {
        self.list
            .iter()
            .filter_map(|receiver| receiver.health.probe_due_in())
            .fold(wait, Duration::min)
    }

    /// A seat for a lane on receiver `index`: counted in its `lanes` while it lives.
    pub(crate) fn seat(&self, index: usize) -> Seat {
        let receiver = Arc::clone(self.get(index));
        receiver.lanes.fetch_add(1, Ordering::Relaxed);
        Seat { receiver, index }
    }

    /// The webhook's status: its best receiver's (connected before connecting before
    /// disconnected; the first of equals), so it is `disconnected` only when every receiver
    /// is; `stopped` when the webhook is disabled.
    pub(crate) fn status(&self, enabled: bool) -> HealthSnapshot {
        let rank = |state: State| match state {
            State::Connected => 0,
            State::Connecting => 1,
            State::Disconnected | State::Stopped => 2,
        };
        let mut best = self.list[0].health.snapshot();
        for receiver in &self.list[1..] {
            let snapshot = receiver.health.snapshot();
            if rank(snapshot.state) < rank(best.state) {
                best = snapshot;
            }
        }
        if !enabled {
            best.state = State::Stopped;
        }
        best
    }

    /// Each receiver as shown; `stopped` when the webhook is disabled.
    pub(crate) fn statuses(&self, enabled: bool) -> Vec<ReceiverStatus> {
        self.list
            .iter()
            .map(|receiver| {
                let mut status = receiver.health.snapshot();
                if !enabled {
                    status.state = State::Stopped;
                }
                ReceiverStatus {
                    url: receiver.url.clone(),
                    status,
                    lanes: receiver.lanes.load(Ordering::Relaxed),
                    requests: receiver.requests(),
                    failed_requests: receiver.failed_requests.load(Ordering::Relaxed),
                    delivered: receiver.delivered.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// A lane's place on a receiver.
#[derive(Debug)]
pub(crate) struct Seat {
    receiver: Arc<Receiver>,
    index: usize,
}

impl Seat {
    /// The receiver's place in the list.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The receiver.
    pub(crate) fn receiver(&self) -> &Receiver {
        &self.receiver
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.receiver.lanes.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::OPEN_AFTER;

    fn receivers(strategy: UrlStrategy) -> Receivers {
        let mut spec = WebhookSpec::new("w", "http://a/");
        spec.urls = vec!["http://b/".into(), "http://c/".into()];
        spec.url_strategy = strategy;
        Receivers::new(&spec, None)
    }

    fn open(receiver: &Receiver) {
        for _ in 0..OPEN_AFTER {
            receiver.health.failed("down", Duration::from_secs(60));
        }
    }

    #[test]
    fn round_robin_spreads_lanes_and_moves_them_on_from_an_open_circuit() {
        let receivers = receivers(UrlStrategy::RoundRobin);
        let homes: Vec<usize> = (0..6).map(|lane| receivers.preferred(lane)).collect();
        assert_eq!(homes, [0, 1, 2, 0, 1, 2]);
        open(receivers.get(1));
        let now: Vec<usize> = (0..6).map(|lane| receivers.preferred(lane)).collect();
        assert_eq!(now, [0, 2, 2, 0, 2, 2], "lanes of b move on to c");
        receivers.get(1).health.answered();
        assert_eq!(receivers.preferred(1), 1, "and back home");
    }

    #[test]
    fn failover_keeps_every_lane_on_the_first_usable_receiver() {
        let receivers = receivers(UrlStrategy::Failover);
        assert!((0..4).all(|lane| receivers.preferred(lane) == 0));
        open(receivers.get(0));
        assert!((0..4).all(|lane| receivers.preferred(lane) == 1));
        open(receivers.get(1));
        assert!((0..4).all(|lane| receivers.preferred(lane) == 2));
        open(receivers.get(2));
        assert!(
            (0..4).all(|lane| receivers.preferred(lane) == 0),
            "none usable: home"
        );
        assert_eq!(receivers.status(true).state, State::Disconnected);
    }

    #[test]
    fn the_status_is_the_best_receivers_and_seats_are_counted() {
        let receivers = receivers(UrlStrategy::RoundRobin);
        assert_eq!(receivers.status(true).state, State::Connecting);
        open(receivers.get(0));
        receivers.get(2).health.answered();
        assert_eq!(receivers.status(true).state, State::Connected);
        let seat = receivers.seat(2);
        assert_eq!(receivers.statuses(true)[2].lanes, 1);
        drop(seat);
        let shown = receivers.statuses(false);
        assert_eq!((shown[2].lanes, shown[2].status.state), (0, State::Stopped));
    }

    #[test]
    fn a_url_kept_in_place_keeps_its_receiver() {
        let first = receivers(UrlStrategy::RoundRobin);
        first.get(1).settled(true, 3);
        let mut spec = WebhookSpec::new("w", "http://a/");
        spec.urls = vec!["http://b/".into(), "http://d/".into()];
        let next = Receivers::new(&spec, Some(&first));
        assert!(Arc::ptr_eq(next.get(1), first.get(1)));
        assert!(!Arc::ptr_eq(next.get(2), first.get(2)));
        assert_eq!(next.statuses(true)[1].delivered, 3);
    }
}
