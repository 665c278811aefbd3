//! The event hook: the contract between the broker and everything that listens to it.
//!
//! Sessions call [`Hooks::wants`] before building an event (one atomic load when nobody
//! listens) and [`Hooks::emit`] to hand it over. Emission never waits: each listener has a
//! bounded channel, and an event that does not fit is dropped and counted in
//! [`Hooks::dropped`] (per listener too, see [`HookReceiver::dropped`]). A session emits from
//! its own task in the order things happen, and each channel is FIFO, so every listener sees a
//! client's events in order.

mod event;

use std::sync::{
    Arc, Weak,
    atomic::{AtomicU32, AtomicU64, Ordering},
};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

pub use event::{AuthzAction, AuthzResult, ClientInfo, Event, EventData, EventKind, EventMask};

use crate::message::now_ms;

struct Listener {
    id: u64,
    mask: EventMask,
    sender: mpsc::Sender<Arc<Event>>,
    dropped: Arc<AtomicU64>,
}

/// The broker's event bus.
pub struct Hooks {
    /// Union of every listener's mask: the cheap "does anyone care" check.
    interest: AtomicU32,
    /// Copy-on-write list: emitters read it lock-free on every event; it changes only when a
    /// listener comes or goes.
    listeners: ArcSwap<Vec<Listener>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("interest", &self.interest.load(Ordering::Relaxed))
            .field("listeners", &self.listeners.load().len())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            interest: AtomicU32::new(0),
            listeners: ArcSwap::from_pointee(Vec::new()),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Hooks {
    /// Whether any listener wants `kind`; build the event only if so.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        // Relaxed: a listener that subscribes concurrently may miss an event emitted at the
        // same instant, which is indistinguishable from subscribing a moment later.
        self.interest.load(Ordering::Relaxed) & kind.bit() != 0
    }

    /// Emits `data` stamped with the current time to every listener that wants it. Never
    /// waits: a listener whose channel is full misses the event, and it is counted.
    pub fn emit(&self, data: EventData) {
        let kind = data.kind();
        if !self.wants(kind) {
            return;
        }
        let event = Arc::new(Event {
            timestamp: now_ms(),
            data,
        });
        for listener in self.listeners.load().iter() {
            if listener.mask.contains(kind)
                && let Err(mpsc::error::TrySendError::Full(_)) =
                    listener.sender.try_send(Arc::clone(&event))
            {
                listener.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Builds and emits the event only if someone wants `kind`.
    #[inline]
    pub fn emit_with(&self, kind: EventKind, build: impl FnOnce() -> EventData) {
        if self.wants(kind) {
            self.emit(build());
        }
    }

    /// Starts listening to the kinds in `mask`, with a channel of `capacity` events.
    /// Listening stops when the receiver is dropped.
    #[must_use]
    pub fn subscribe(self: &Arc<Self>, mask: EventMask, capacity: usize) -> HookReceiver {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        self.listeners.rcu(|list| {
            let mut next: Vec<Listener> = list
                .iter()
                .map(|l| Listener {
                    id: l.id,
                    mask: l.mask,
                    sender: l.sender.clone(),
                    dropped: Arc::clone(&l.dropped),
                })
                .collect();
            next.push(Listener {
                id,
                mask,
                sender: sender.clone(),
                dropped: Arc::clone(&dropped),
            });
            next
        });
        self.refresh_interest();
        HookReceiver {
            id,
            receiver,
            hooks: Arc::downgrade(self),
            dropped,
        }
    }

    fn update(&self, id: u64, mask: Option<EventMask>) {
        self.listeners.rcu(|list| {
            list.iter()
                .filter(|l| l.id != id || mask.is_some())
                .map(|l| Listener {
                    id: l.id,
                    mask: if l.id == id {
                        mask.unwrap_or(l.mask)
                    } else {
                        l.mask
                    },
                    sender: l.sender.clone(),
                    dropped: Arc::clone(&l.dropped),
                })
                .collect::<Vec<_>>()
        });
        self.refresh_interest();
    }

    fn refresh_interest(&self) {
        let mask = self
            .listeners
            .load()
            .iter()
            .fold(0, |acc, l| acc | l.mask.0);
        self.interest.store(mask, Ordering::Relaxed);
    }

    /// Events no listener could take because its channel was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The receiving end of a hook subscription.
#[derive(Debug)]
pub struct HookReceiver {
    id: u64,
    receiver: mpsc::Receiver<Arc<Event>>,
    hooks: Weak<Hooks>,
    dropped: Arc<AtomicU64>,
}

impl HookReceiver {
    /// The next event; `None` once the broker is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.receiver.recv().await
    }

    /// Up to `limit` events at once into `buffer`; 0 once the broker is gone.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Arc<Event>>, limit: usize) -> usize {
        self.receiver.recv_many(buffer, limit).await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.receiver.try_recv().ok()
    }

    /// Events this listener missed because its channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A handle that changes which kinds this listener receives, usable while another task
    /// owns the receiver.
    #[must_use]
    pub fn control(&self) -> HookControl {
        HookControl {
            id: self.id,
            hooks: Weak::clone(&self.hooks),
        }
    }
}

/// Changes the mask of one listener (see [`HookReceiver::control`]).
#[derive(Debug, Clone)]
pub struct HookControl {
    id: u64,
    hooks: Weak<Hooks>,
}

impl HookControl {
    /// Receive exactly the kinds in `mask` from now on.
    pub fn set_mask(&self, mask: EventMask) {
        if let Some(hooks) = self.hooks.upgrade() {
            hooks.update(self.id, Some(mask));
        }
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        if let Some(hooks) = self.hooks.upgrade() {
            hooks.update(self.id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hookmq_codec::{ProtocolVersion, ReasonCode};

    use super::*;

    fn client() -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            client_id: "c".into(),
            username: None,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            local: SocketAddr::from(([127, 0, 0, 1], 1883)),
            protocol: ProtocolVersion::V5,
            keep_alive: 60,
            clean_start: true,
            expiry_interval: 0,
            receive_maximum: 32,
            connect_properties: hookmq_codec::Properties::default(),
            connected_at: 0,
            session_id: 1,
        })
    }

    #[tokio::test]
    async fn interest_follows_listeners() {
        let hooks = Arc::new(Hooks::default());
        assert!(!hooks.wants(EventKind::ClientConnected));
        let mut rx = hooks.subscribe(EventMask::NONE.with(EventKind::ClientConnected), 4);
        assert!(hooks.wants(EventKind::ClientConnected));
        assert!(!hooks.wants(EventKind::MessagePublish));
        hooks.emit(EventData::ClientConnected { client: client() });
        hooks.emit(EventData::ClientConnack {
            client: client(),
            reason_code: ReasonCode::SUCCESS,
        });
        let event = rx.recv().await.expect("an event");
        assert_eq!(event.kind(), EventKind::ClientConnected);
        assert!(rx.try_recv().is_none(), "connack was not subscribed");
        rx.control()
            .set_mask(EventMask::NONE.with(EventKind::ClientConnack));
        assert!(!hooks.wants(EventKind::ClientConnected));
        assert!(hooks.wants(EventKind::ClientConnack));
        drop(rx);
        assert!(!hooks.wants(EventKind::ClientConnack));
        assert!(!hooks.wants(EventKind::ClientConnected));
    }

    #[tokio::test]
    async fn full_channel_drops_and_counts() {
        let hooks = Arc::new(Hooks::default());
        let mut rx = hooks.subscribe(EventMask::ALL, 2);
        for _ in 0..5 {
            hooks.emit(EventData::ClientConnected { client: client() });
        }
        assert_eq!(hooks.dropped(), 3);
        assert_eq!(rx.dropped(), 3);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_some());
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventMask::ALL.0.count_ones(), 12);
    }
}
