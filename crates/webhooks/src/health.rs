//! A webhook's view of its receiver, from its own attempts: `connecting` until the receiver
//! first answers, `connected` while it answers, and `disconnected` once it has failed
//! [`OPEN_AFTER`] attempts in a row (connection errors, timeouts, 408, 429, 5xx).
//!
//! `disconnected` opens a **circuit**: the lanes stop sending, and one request (a lane's next
//! event) probes the receiver every `health_check_interval`, instead of every lane retrying
//! on its own backoff. The first answer that is not a retryable failure closes it. Changes
//! are logged; the status, with the last error, is shown by the API, CLI and dashboard.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use hookmq_broker::message::now_ms;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

/// Retryable failures in a row that open the circuit.
pub const OPEN_AFTER: u32 = 5;

/// What a webhook knows of its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No answer yet.
    Connecting,
    /// Its last answers were answers (2xx, or a refusal that is not worth retrying).
    Connected,
    /// It keeps failing (the circuit is open, and one request probes it now and then), or
    /// the idle health check could not connect to it.
    Disconnected,
    /// The webhook is disabled: nothing is sent, checked or logged (EMQX's `stopped`).
    Stopped,
}

/// The status as shown.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// `connecting`, `connected`, `disconnected`, or `stopped` (disabled).
    pub state: State,
    /// Why the last failed attempt failed, if one did.
    pub last_error: Option<String>,
    /// Retryable failures in a row.
    pub failures_in_a_row: u32,
    /// Since when the state holds, ms since the epoch.
    pub since: u64,
}

#[derive(Debug)]
struct Inner {
    state: State,
    since: u64,
    in_a_row: u32,
    last_error: Option<String>,
    /// While disconnected: when the next probe may go.
    next_probe: Option<Instant>,
}

/// The receiver's health, shared by a webhook's lanes (and its later versions).
#[derive(Debug)]
pub struct Health {
    name: String,
    /// The receiver's place in the webhook's URLs (0: `url`), for the logs.
    receiver: usize,
    /// parking_lot mutex: a few fields, taken when an attempt fails or the state changes.
    inner: Mutex<Inner>,
    /// Connected with no failure since: an answered attempt changes nothing, so it does not
    /// take the lock (the usual case, once per delivered event across all lanes).
    steady: AtomicBool,
    /// Wakes lanes waiting for the circuit to close.
    closed: Notify,
}

/// Whether a lane may send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// The circuit is closed.
    Send,
    /// It is open and this lane's request is the probe.
    Probe,
    /// It is open: wait this long (or until it closes).
    Wait(Duration),
}

impl Health {
    /// Receiver `receiver` of webhook `name`, not heard from yet.
    #[must_use]
    pub fn new(name: &str, receiver: usize) -> Self {
        Self {
            name: name.to_owned(),
            receiver,
            inner: Mutex::new(Inner {
                state: State::Connecting,
                since: now_ms(),
                in_a_row: 0,
                last_error: None,
                next_probe: None,
            }),
            closed: Notify::new(),
            steady: AtomicBool::new(false),
        }
    }

    /// The status now.
    #[must_use]
    pub fn snapshot(&self) -> HealthSnapshot {
        let inner = self.inner.lock();
        HealthSnapshot {
            state: inner.state,
            last_error: inner.last_error.clone(),
            failures_in_a_row: inner.in_a_row,
            since: inner.since,
        }
    }

    /// May a lane send now? While the circuit is open one lane per `interval` gets to probe.
    pub(crate) fn permit(&self, interval: Duration) -> Permit {
        let mut inner = self.inner.lock();
        let Some(next) = inner.next_probe else {
            return Permit::Send;
        };
        let now = Instant::now();
        if now >= next {
            // This lane probes; the next probe waits a whole interval.
            inner.next_probe = Some(now + interval);
            Permit::Probe
        } else {
            Permit::Wait(next - now)
        }
    }

    /// Whether a lane may turn to this receiver now: its circuit is closed, or a probe is
    /// due (a lane that turns to it still asks for a [`Permit`]).
    pub(crate) fn usable(&self) -> bool {
        if self.steady.load(Ordering::Acquire) {
            return true;
        }
        self.inner
            .lock()
            .next_probe
            .is_none_or(|next| Instant::now() >= next)
    }

    /// While the circuit is open: how long until its next probe is due (zero if it is).
    pub(crate) fn probe_due_in(&self) -> Option<Duration> {
        if self.steady.load(Ordering::Acquire) {
            return None;
        }
        let next = self.inner.lock().next_probe?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    /// Resolves when the circuit closes (or at once if it is closed when polled first).
    pub(crate) async fn wait_closed(&self, at_most: Duration) {
        let closed = self.closed.notified();
        if self.inner.lock().next_probe.is_none() {
            return;
        }
        let _ = tokio::time::timeout(at_most, closed).await;
    }

    /// An attempt got an answer that is not a retryable failure: the receiver is there.
    pub(crate) fn answered(&self) {
        if self.steady.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.inner.lock();
        inner.in_a_row = 0;
        self.steady.store(true, Ordering::Release);
        if inner.state == State::Connected {
            return;
        }
        if inner.next_probe.is_some() {
            tracing::info!(webhook = %self.name, receiver = self.receiver, "receiver answers again: circuit closed");
        }
        inner.state = State::Connected;
        inner.since = now_ms();
        inner.next_probe = None;
        drop(inner);
        self.closed.notify_waiters();
    }

    /// The idle health check reached the receiver: it shows `connected` if it was not heard
    /// from yet or only refused the check; a circuit opened by failed requests stays open
    /// until one is answered, unless nothing waits to go (`idle`), when it closes too (it
    /// has nothing left to hold back, and the status should not stay `disconnected`).
    pub(crate) fn reachable(&self, idle: bool) {
        let mut inner = self.inner.lock();
        let circuit_open = inner.next_probe.is_some();
        match inner.state {
            State::Connecting => {}
            State::Disconnected if !circuit_open => {
                tracing::info!(webhook = %self.name, receiver = self.receiver, "receiver reachable again");
            }
            State::Disconnected if idle => {
                tracing::info!(webhook = %self.name, receiver = self.receiver, "receiver reachable and nothing waits: circuit closed");
                inner.in_a_row = 0;
                inner.next_probe = None;
            }
            State::Disconnected | State::Connected | State::Stopped => return,
        }
        inner.state = State::Connected;
        inner.since = now_ms();
        drop(inner);
        if circuit_open {
            self.closed.notify_waiters();
        }
    }

    /// The idle health check could not reach the receiver (`error`): it shows
    /// `disconnected`, as EMQX's check marks it. Delivery is unchanged: events still go, and
    /// the circuit opens only once requests fail [`OPEN_AFTER`] times in a row.
    pub(crate) fn unreachable(&self, error: &str) {
        let mut inner = self.inner.lock();
        self.steady.store(false, Ordering::Release);
        error.clone_into(inner.last_error.get_or_insert_with(String::new));
        if inner.state != State::Disconnected {
            tracing::warn!(webhook = %self.name, receiver = self.receiver, error, "receiver unreachable");
            inner.state = State::Disconnected;
            inner.since = now_ms();
        }
    }

    /// An attempt failed in a way worth retrying (`error`); after [`OPEN_AFTER`] in a row the
    /// circuit opens, probing every `interval`.
    pub(crate) fn failed(&self, error: &str, interval: Duration) {
        let mut inner = self.inner.lock();
        self.steady.store(false, Ordering::Release);
        inner.in_a_row = inner.in_a_row.saturating_add(1);
        error.clone_into(inner.last_error.get_or_insert_with(String::new));
        if inner.in_a_row < OPEN_AFTER {
            return;
        }
        if inner.next_probe.is_none() {
            tracing::warn!(
                webhook = %self.name, receiver = self.receiver,
                error,
                failures = inner.in_a_row,
                probe_every = ?interval,
                "receiver keeps failing: circuit open, probing it instead of sending"
            );
        }
        if inner.state != State::Disconnected {
            inner.state = State::Disconnected;
            inner.since = now_ms();
        }
        inner.next_probe = Some(Instant::now() + interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_open_the_circuit_and_an_answer_closes_it() {
        let health = Health::new("w", 0);
        let interval = Duration::from_secs(60);
        assert_eq!(health.snapshot().state, State::Connecting);
        health.answered();
        assert_eq!(health.snapshot().state, State::Connected);
        for n in 1..OPEN_AFTER {
            health.failed("connection refused", interval);
            assert_eq!(health.snapshot().state, State::Connected, "{n} failures");
            assert_eq!(health.permit(interval), Permit::Send);
        }
        health.failed("connection refused", interval);
        let snapshot = health.snapshot();
        assert_eq!(snapshot.state, State::Disconnected);
        assert_eq!(snapshot.last_error.as_deref(), Some("connection refused"));
        assert!(matches!(health.permit(interval), Permit::Wait(_)));
        // A failed probe keeps it open; one that is answered closes it.
        health.failed("timed out", interval);
        assert_eq!(health.snapshot().state, State::Disconnected);
        health.answered();
        assert_eq!(health.snapshot().state, State::Connected);
        assert_eq!(health.permit(interval), Permit::Send);
    }

    #[test]
    fn one_lane_probes_per_interval() {
        let health = Health::new("w", 0);
        for _ in 0..OPEN_AFTER {
            health.failed("down", Duration::ZERO);
        }
        let interval = Duration::from_secs(60);
        assert_eq!(health.permit(interval), Permit::Probe, "due at once");
        assert!(
            matches!(health.permit(interval), Permit::Wait(left) if left > Duration::from_secs(59))
        );
    }
}
