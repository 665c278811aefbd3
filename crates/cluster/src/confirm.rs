//! Confirming that forwarded messages reached NATS, so that a QoS 1/2 PUBACK goes only for
//! a message this node's death can no longer keep from the other nodes.
//!
//! Messages are counted as they enter the forwarding queue (`queued`) and as the publisher
//! hands them to the NATS client (`sent`), both in queue order. A connection that owes
//! acknowledgements waits until `confirmed` reaches the count it saw. The confirmer turns
//! `sent` into `confirmed` with one round trip through the NATS server on the same
//! connection: the server answers it after it has taken every message sent before it, and
//! from then on delivers them to the other nodes whether or not this node lives. One round
//! trip confirms everything sent before it, however many connections wait.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_nats::{Client, client::RequestErrorKind};
use bytes::Bytes;
use futures_util::{StreamExt as _, stream::FuturesOrdered};
use hookmq_broker::hooks::Durable;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long one round trip may take before it is tried again.
const ROUND_TRIP: Duration = Duration::from_secs(2);
/// The pause after a failed round trip.
const RETRY: Duration = Duration::from_millis(100);
/// Round trips on their way at once at most.
const IN_FLIGHT: usize = 4;

/// How many times the NATS connection was lost: async-nats drops what it had not written
/// when it reconnects, so nothing sent before a loss is confirmed by a round trip after it.
#[derive(Debug, Default)]
pub(crate) struct Losses {
    count: AtomicU64,
    changed: Notify,
}

impl Losses {
    /// The connection was lost.
    pub(crate) fn lost(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn now(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
}

/// The counts, and what waits on them.
#[derive(Debug)]
pub(crate) struct Confirmations {
    /// Messages taken by the forwarding queue so far. A mutex, not an atomic: the push and
    /// the count happen together, so a count read after a push covers every message queued
    /// before it (parking_lot, held for one `try_send`).
    queued: Mutex<u64>,
    /// Messages the publisher has handed to the NATS client (or given up), in queue order.
    sent: AtomicU64,
    sent_changed: Notify,
    /// Messages the NATS server has confirmed taking.
    confirmed: AtomicU64,
    confirmed_changed: Notify,
    /// The highest count a connection waits for.
    wanted: AtomicU64,
    wanted_changed: Notify,
    /// How long a connection waits at most (`cluster.forward_confirm_timeout`); zero: never.
    timeout: Duration,
    /// Waits that ended at `timeout` or at a lost connection: acknowledgements sent before
    /// NATS confirmed.
    unconfirmed: AtomicU64,
    losses: std::sync::Arc<Losses>,
}

impl Confirmations {
    pub(crate) fn new(timeout: Duration, losses: std::sync::Arc<Losses>) -> Self {
        Self {
            queued: Mutex::new(0),
            sent: AtomicU64::new(0),
            sent_changed: Notify::new(),
            confirmed: AtomicU64::new(0),
            confirmed_changed: Notify::new(),
            wanted: AtomicU64::new(0),
            wanted_changed: Notify::new(),
            timeout,
            unconfirmed: AtomicU64::new(0),
            losses,
        }
    }

    /// Runs `push` (a `try_send` into the forwarding queue) and counts what it took.
    pub(crate) fn queue(&self, push: impl FnOnce() -> bool) -> bool {
        let mut queued = self.queued.lock();
        let taken = push();
        if taken {
            *queued += 1;
        }
        taken
    }

    /// The publisher took one message from the queue and sent it (or gave it up).
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::AcqRel);
        self.sent_changed.notify_one();
    }

    /// Waits that gave up.
    pub(crate) fn unconfirmed(&self) -> u64 {
        self.unconfirmed.load(Ordering::Relaxed)
    }

    /// A future that resolves once NATS has confirmed every message queued so far, or after
    /// the timeout (counted); `None` when there is nothing to wait for.
    pub(crate) fn wait(self: &std::sync::Arc<Self>) -> Option<Durable> {
        if self.timeout.is_zero() {
            return None;
        }
        let target = *self.queued.lock();
        if self.confirmed.load(Ordering::Acquire) >= target {
            return None;
        }
        self.wanted.fetch_max(target, Ordering::AcqRel);
        self.wanted_changed.notify_one();
        let this = std::sync::Arc::clone(self);
        let epoch = self.losses.now();
        Some(Box::pin(async move {
            let confirmed = async {
                loop {
                    let changed = this.confirmed_changed.notified();
                    let lost = this.losses.changed.notified();
                    if this.losses.now() != epoch {
                        return false;
                    }
                    if this.confirmed.load(Ordering::Acquire) >= target {
                        return true;
                    }
                    tokio::select! {
                        () = changed => {}
                        () = lost => {}
                    }
                }
            };
            if !tokio::time::timeout(this.timeout, confirmed)
                .await
                .unwrap_or(false)
            {
                this.unconfirmed.fetch_add(1, Ordering::Relaxed);
            }
        }))
    }

    /// Confirms what is sent whenever a connection waits: a round trip through the NATS
    /// server to `subject`, which nobody answers (the server's "no responders" is the
    /// answer). Up to [`IN_FLIGHT`] round trips overlap, so what is sent while one is on
    /// its way waits one round trip, not the rest of that one and a whole next one.
    pub(crate) async fn confirm(&self, client: Client, subject: String, stop: CancellationToken) {
        let mut trips = FuturesOrdered::new();
        let mut asked = 0;
        loop {
            let (wanted, sent) = (
                self.wanted.load(Ordering::Acquire),
                self.sent.load(Ordering::Acquire),
            );
            if wanted > asked && sent > asked && trips.len() < IN_FLIGHT {
                asked = sent;
                let epoch = self.losses.now();
                trips.push_back(round_trip(client.clone(), subject.clone(), (sent, epoch)));
                continue;
            }
            let wanted_changed = self.wanted_changed.notified();
            let sent_changed = self.sent_changed.notified();
            tokio::select! {
                () = stop.cancelled() => return,
                Some(((upto, epoch), reached)) = trips.next(), if !trips.is_empty() => {
                    // Across a lost connection, what was sent before may be gone.
                    if reached && epoch == self.losses.now() {
                        self.confirmed.fetch_max(upto, Ordering::AcqRel);
                        self.confirmed_changed.notify_waiters();
                    } else {
                        // Asked again from what NATS confirmed, after a pause.
                        asked = asked.min(self.confirmed.load(Ordering::Acquire));
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(RETRY) => {}
                        }
                    }
                }
                () = wanted_changed, if wanted <= asked => {}
                () = sent_changed, if wanted > asked && sent <= asked => {}
            }
        }
    }
}

/// One round trip to `subject`: `(upto, whether NATS answered)`, `upto` being what was
/// sent before it and the connection's losses then.
async fn round_trip(client: Client, subject: String, upto: (u64, u64)) -> ((u64, u64), bool) {
    (upto, reached(&client, subject).await)
}

/// The subject of `node`'s round trips, which nobody answers.
pub(crate) fn subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.confirm.{}", crate::subject::token(node))
}

/// Whether the NATS server has taken everything `client` sent so far: a request to
/// `subject` (see [`subject`]) answered, its "no responders" included, within
/// [`ROUND_TRIP`].
pub(crate) async fn reached(client: &Client, subject: String) -> bool {
    match tokio::time::timeout(ROUND_TRIP, client.request(subject, Bytes::new())).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => error.kind() == RequestErrorKind::NoResponders,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_when_its_messages_are_confirmed_or_at_the_timeout() {
        let losses = Arc::new(Losses::default());
        let confirmations = Arc::new(Confirmations::new(
            Duration::from_secs(5),
            Arc::clone(&losses),
        ));
        assert!(confirmations.wait().is_none(), "nothing queued");
        assert!(confirmations.queue(|| true));
        assert!(
            !confirmations.queue(|| false),
            "a full queue counts nothing"
        );
        let wait = confirmations.wait().expect("one message to confirm");
        assert_eq!(confirmations.wanted.load(Ordering::Acquire), 1);
        confirmations.sent();
        confirmations.confirmed.store(1, Ordering::Release);
        confirmations.confirmed_changed.notify_waiters();
        tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .expect("confirmed before the timeout");
        assert_eq!(confirmations.unconfirmed(), 0);
        assert!(confirmations.queue(|| true));
        let wait = confirmations.wait().expect("a second message");
        wait.await;
        assert_eq!(confirmations.unconfirmed(), 1, "the timeout is counted");
        assert!(confirmations.queue(|| true));
        let wait = confirmations.wait().expect("a third message");
        losses.lost();
        tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .expect("a lost connection ends the wait");
        assert_eq!(confirmations.unconfirmed(), 2, "counted as unconfirmed");
        let off = Arc::new(Confirmations::new(Duration::ZERO, losses));
        assert!(off.queue(|| true));
        assert!(off.wait().is_none(), "a zero timeout never waits");
    }
}
