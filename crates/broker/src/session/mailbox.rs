//! A session's queue of messages waiting to be sent: filled by publishers' tasks through the
//! router, drained by the session's connection task.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use hookmq_codec::QoS;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{hooks::ClientInfo, message::Message};

/// One message on its way to one subscription.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The shared message.
    pub(crate) message: Arc<Message>,
    /// QoS to send with: min(published, granted).
    pub(crate) qos: QoS,
    /// Retain flag to send (retain-as-published, or set for retained messages).
    pub(crate) retain: bool,
    /// The subscription's identifier (v5), if it has one.
    pub(crate) subscription_id: Option<u32>,
}

/// What became of a pushed delivery.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Queued for sending.
    Queued,
    /// Queued, but the oldest waiting delivery was dropped to make room (`queue_full`), or
    /// the delivery itself was refused (`qos0_msg`). The subscriber is named for the event.
    Dropped {
        victim: Delivery,
        reason: &'static str,
        subscriber: Arc<ClientInfo>,
    },
    /// The session has ended.
    Closed,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Delivery>,
    closed: bool,
    /// The subscriber as of its last connection, for `delivery.dropped` events.
    client: Arc<ClientInfo>,
}

/// Why [`Mailbox::take`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The queue is empty.
    All,
    /// `max` deliveries were taken and more wait.
    BatchFull,
    /// The next delivery needs an in-flight slot and none is free.
    WindowFull,
}

/// The queue of one session. Bounded by `capacity`: when full, the oldest delivery is
/// dropped (as EMQX does) and reported.
#[derive(Debug)]
pub(crate) struct Mailbox {
    capacity: usize,
    queue_qos0_offline: bool,
    /// Read without the lock by shared-subscription member selection.
    online: AtomicBool,
    /// parking_lot mutex: critical sections are a few pointer moves, never across `.await`.
    state: Mutex<State>,
    /// Wakes the connection task when the queue goes from empty to non-empty.
    notify: Notify,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize, queue_qos0_offline: bool, client: Arc<ClientInfo>) -> Self {
        Self {
            capacity,
            queue_qos0_offline,
            online: AtomicBool::new(true),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                client,
            }),
            notify: Notify::new(),
        }
    }

    /// Appends a delivery.
    pub(crate) fn push(&self, delivery: Delivery) -> Pushed {
        let mut state = self.state.lock();
        if state.closed {
            return Pushed::Closed;
        }
        if delivery.qos == QoS::AtMostOnce && !self.queue_qos0_offline && !self.is_online() {
            let subscriber = Arc::clone(&state.client);
            return Pushed::Dropped {
                victim: delivery,
                reason: "qos0_msg",
                subscriber,
            };
        }
        let was_empty = state.queue.is_empty();
        let dropped = if state.queue.len() >= self.capacity {
            state.queue.pop_front()
        } else {
            None
        };
        state.queue.push_back(delivery);
        let subscriber = dropped.as_ref().map(|_| Arc::clone(&state.client));
        drop(state);
        if was_empty {
            self.notify.notify_one();
        }
        match (dropped, subscriber) {
            (Some(victim), Some(subscriber)) => Pushed::Dropped {
                victim,
                reason: "queue_full",
                subscriber,
            },
            _ => Pushed::Queued,
        }
    }

    /// Moves deliveries to `out`, oldest first, at most `max` of them, taking a QoS 1/2
    /// delivery only while `window` (free in-flight slots) allows; stops at the first one that
    /// does not fit so order is kept.
    pub(crate) fn take(&self, out: &mut Vec<Delivery>, max: usize, mut window: usize) -> Taken {
        let mut state = self.state.lock();
        loop {
            match state.queue.front() {
                None => return Taken::All,
                Some(_) if out.len() >= max => return Taken::BatchFull,
                Some(front) if front.qos != QoS::AtMostOnce => {
                    if window == 0 {
                        return Taken::WindowFull;
                    }
                    window -= 1;
                }
                Some(_) => {}
            }
            if let Some(delivery) = state.queue.pop_front() {
                out.push(delivery);
            }
        }
    }

    /// Resolves when a delivery arrives in an empty queue (or has arrived since the last wait).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Marks the session connected (as `client`) or not.
    pub(crate) fn set_online(&self, online: bool, client: Option<Arc<ClientInfo>>) {
        self.online.store(online, Ordering::Relaxed);
        if let Some(client) = client {
            self.state.lock().client = client;
        }
    }

    /// Whether the session has a connection.
    pub(crate) fn is_online(&self) -> bool {
        // Relaxed: only a preference for shared-subscription picks.
        self.online.load(Ordering::Relaxed)
    }

    /// Ends the session: later pushes are refused; what is queued is returned.
    pub(crate) fn close(&self) -> Vec<Delivery> {
        let mut state = self.state.lock();
        state.closed = true;
        state.queue.drain(..).collect()
    }

    /// The subscriber as of its last connection.
    pub(crate) fn client(&self) -> Arc<ClientInfo> {
        Arc::clone(&self.state.lock().client)
    }
}
