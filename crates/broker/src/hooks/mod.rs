//! The event hook: the contract between the broker and everything that listens to it.
//!
//! Sessions call [`Hooks::wants`] before building an event (one atomic load when nobody
//! listens) and [`Hooks::emit`] to hand it over. Emission never waits. A listener is either
//! - a **sink** ([`HookSink`], [`Hooks::attach`]): called inline by the emitting session, so
//!   nothing sits between the session and the sink that could overflow; the sink must return
//!   at once (queue the event and wake its own workers), or
//! - a **channel** ([`Hooks::subscribe`]): a bounded channel whose overflow is dropped and
//!   counted in [`Hooks::dropped`] (per listener too, see [`HookReceiver::dropped`]).
//!
//! A session emits from its own task in the order things happen, and both kinds of listener
//! take events in call order, so every listener sees a client's events in order. Connections
//! gather the events of one read or one mailbox wake-up in a [`HookBatch`] and hand them
//! over together before they wait again ([`HookSink::on_events`]).

mod batch;
mod client;
mod event;

use std::sync::{
    Arc, Weak,
    atomic::{AtomicU32, AtomicU64, Ordering},
};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

pub use batch::HookBatch;
pub use client::{ClientAttrs, reading_format_1};
pub use event::{
    AlarmEvent, AuthzAction, AuthzResult, ClientInfo, Event, EventData, EventKind, EventMask,
};

pub use crate::message::PacketProperties;

use crate::message::now_ms;

/// A listener called inline, on the emitting session's task, for every event of its mask.
///
/// It runs on the publish path: it must not wait, block, do I/O or call back into the
/// broker. Taking a short lock to queue the event is fine.
pub trait HookSink: Send + Sync + 'static {
    /// Takes one event.
    fn on_event(&self, event: &Arc<Event>);

    /// Takes a run of events from one task, in the order they happened. The run may hold
    /// kinds outside `mask` (the sink's mask), which the sink skips. By default, calls
    /// [`HookSink::on_event`] for each event of the mask.
    fn on_events(&self, mask: EventMask, events: &[Arc<Event>]) {
        for event in events {
            if mask.contains(event.kind()) {
                self.on_event(event);
            }
        }
    }

    /// Whether the sink could take another event now. When no listener of a kind has room,
    /// a [`HookBatch`] does not build the event: it calls [`HookSink::on_skipped`] on each
    /// of them instead, so a stalled consumer costs the emitter next to nothing. By
    /// default, always.
    fn has_room(&self) -> bool {
        true
    }

    /// An event of `kind` (about a message on `topic`, for message events) that this sink
    /// wants was not built because no listener had room: count it as dropped.
    fn on_skipped(&self, kind: EventKind, topic: Option<&str>) {
        let _ = (kind, topic);
    }

    /// For a sink that keeps what it takes on disk and asks publishers to wait for it: a
    /// future that resolves once everything it took so far is written (or could not be, so
    /// a failing disk never stops MQTT). A connection awaits it before it acknowledges the
    /// QoS 1/2 PUBLISHes whose events the sink took. By default, none.
    fn durable(&self) -> Option<Durable> {
        None
    }
}

/// What [`HookSink::durable`] returns.
pub type Durable = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a listener's events go.
#[derive(Clone)]
enum Target {
    Channel(mpsc::Sender<Arc<Event>>),
    Sink(Arc<dyn HookSink>),
}

#[derive(Clone)]
struct Listener {
    id: u64,
    mask: EventMask,
    target: Target,
    dropped: Arc<AtomicU64>,
}

impl Listener {
    fn has_room(&self) -> bool {
        match &self.target {
            Target::Sink(sink) => sink.has_room(),
            Target::Channel(sender) => sender.capacity() > 0,
        }
    }
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
    /// waits: sinks take it inline; a channel that is full misses the event, and it is
    /// counted.
    pub fn emit(&self, data: EventData) {
        if self.wants(data.kind()) {
            self.dispatch(now_ms(), data);
        }
    }

    /// Builds and emits the event only if someone wants `kind`.
    #[inline]
    pub fn emit_with(&self, kind: EventKind, build: impl FnOnce() -> EventData) {
        if self.wants(kind) {
            self.dispatch(now_ms(), build());
        }
    }

    fn dispatch(&self, timestamp: u64, data: EventData) {
        let event = Arc::new(Event { timestamp, data });
        self.dispatch_batch(&self.listeners.load(), std::slice::from_ref(&event));
    }

    /// Whether some listener of `kind` in `listeners` has room for the event now. When none
    /// has, each is told it missed the event (a channel counts it as dropped).
    fn admit(&self, listeners: &[Listener], kind: EventKind, topic: Option<&str>) -> bool {
        let mut wanted = listeners.iter().filter(|l| l.mask.contains(kind));
        if wanted.clone().any(Listener::has_room) {
            return true;
        }
        for listener in wanted.by_ref() {
            match &listener.target {
                Target::Sink(sink) => sink.on_skipped(kind, topic),
                Target::Channel(_) => {
                    listener.dropped.fetch_add(1, Ordering::Relaxed);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        false
    }

    /// Hands a run of events (see [`HookBatch`]; a single event is a run of one) to
    /// `listeners`, the list the run was admitted against: one read of the listener list for
    /// the whole run.
    fn dispatch_batch(&self, listeners: &[Listener], events: &[Arc<Event>]) {
        for listener in listeners {
            match &listener.target {
                Target::Sink(sink) => sink.on_events(listener.mask, events),
                Target::Channel(sender) => {
                    for event in events {
                        if !listener.mask.contains(event.kind()) {
                            continue;
                        }
                        if let Err(mpsc::error::TrySendError::Full(_)) =
                            sender.try_send(Arc::clone(event))
                        {
                            listener.dropped.fetch_add(1, Ordering::Relaxed);
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    }

    /// Starts listening to the kinds in `mask`, with a channel of `capacity` events.
    /// Listening stops when the receiver is dropped.
    #[must_use]
    pub fn subscribe(self: &Arc<Self>, mask: EventMask, capacity: usize) -> HookReceiver {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let id = self.add(mask, Target::Channel(sender), Arc::clone(&dropped));
        HookReceiver {
            id,
            receiver,
            hooks: Arc::downgrade(self),
            dropped,
        }
    }

    /// Calls `sink` inline for every event in `mask` until the attachment is dropped.
    #[must_use]
    pub fn attach(self: &Arc<Self>, mask: EventMask, sink: Arc<dyn HookSink>) -> HookAttachment {
        let id = self.add(mask, Target::Sink(sink), Arc::default());
        HookAttachment {
            control: HookControl {
                id,
                hooks: Arc::downgrade(self),
            },
        }
    }

    fn add(&self, mask: EventMask, target: Target, dropped: Arc<AtomicU64>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.listeners.rcu(|list| {
            let mut next = Vec::clone(list);
            next.push(Listener {
                id,
                mask,
                target: target.clone(),
                dropped: Arc::clone(&dropped),
            });
            next
        });
        self.refresh_interest();
        id
    }

    /// Gives listener `id` a new sink and mask in one swap.
    fn replace(&self, id: u64, mask: EventMask, sink: &Arc<dyn HookSink>) {
        self.listeners.rcu(|list| {
            list.iter()
                .map(|l| {
                    if l.id == id {
                        Listener {
                            mask,
                            target: Target::Sink(Arc::clone(sink)),
                            ..l.clone()
                        }
                    } else {
                        l.clone()
                    }
                })
                .collect::<Vec<_>>()
        });
        self.refresh_interest();
    }

    /// Sets the mask of listener `id`, or removes it (`None`).
    fn update(&self, id: u64, mask: Option<EventMask>) {
        self.listeners.rcu(|list| {
            list.iter()
                .filter(|l| l.id != id || mask.is_some())
                .map(|l| Listener {
                    mask: if l.id == id {
                        mask.unwrap_or(l.mask)
                    } else {
                        l.mask
                    },
                    ..l.clone()
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

    /// A future that resolves once every sink that asks for it has written what it took so
    /// far (see [`HookSink::durable`]); `None` when no sink asks.
    pub fn durable(&self) -> Option<Durable> {
        let mut waits: Vec<Durable> = self
            .listeners
            .load()
            .iter()
            .filter_map(|listener| match &listener.target {
                Target::Sink(sink) => sink.durable(),
                Target::Channel(_) => None,
            })
            .collect();
        match waits.len() {
            0 => None,
            1 => waits.pop(),
            _ => Some(Box::pin(async move {
                for wait in waits {
                    wait.await;
                }
            })),
        }
    }

    /// Events no channel listener could take because its channel was full, since start.
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

impl Drop for HookReceiver {
    fn drop(&mut self) {
        if let Some(hooks) = self.hooks.upgrade() {
            hooks.update(self.id, None);
        }
    }
}

/// An attached [`HookSink`]; dropping it detaches the sink.
#[derive(Debug)]
pub struct HookAttachment {
    control: HookControl,
}

impl HookAttachment {
    /// Receive exactly the kinds in `mask` from now on.
    pub fn set_mask(&self, mask: EventMask) {
        self.control.set_mask(mask);
    }

    /// From now on, `sink` takes the kinds in `mask` in place of the attached sink: one
    /// swap, so every event goes to exactly one of the two.
    pub fn replace(&self, mask: EventMask, sink: Arc<dyn HookSink>) {
        if let Some(hooks) = self.control.hooks.upgrade() {
            hooks.replace(self.control.id, mask, &sink);
        }
    }
}

impl Drop for HookAttachment {
    fn drop(&mut self) {
        if let Some(hooks) = self.control.hooks.upgrade() {
            hooks.update(self.control.id, None);
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

#[cfg(test)]
mod tests {
    use hookmq_codec::ReasonCode;

    use super::*;

    fn client() -> Arc<ClientInfo> {
        ClientInfo::for_test("c", 1)
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

    #[derive(Default)]
    struct Recorder(parking_lot::Mutex<Vec<EventKind>>);

    impl HookSink for Recorder {
        fn on_event(&self, event: &Arc<Event>) {
            self.0.lock().push(event.kind());
        }
    }

    #[test]
    fn sinks_take_every_event_inline_until_detached() {
        let hooks = Arc::new(Hooks::default());
        let recorder = Arc::new(Recorder::default());
        let attachment = hooks.attach(
            EventMask::NONE.with(EventKind::ClientConnected),
            Arc::clone(&recorder) as Arc<dyn HookSink>,
        );
        // Far more than any channel bound: a sink has nothing to overflow.
        for _ in 0..100_000 {
            hooks.emit(EventData::ClientConnected { client: client() });
        }
        hooks.emit(EventData::ClientConnack {
            client: client(),
            reason_code: ReasonCode::SUCCESS,
        });
        assert_eq!(recorder.0.lock().len(), 100_000);
        assert_eq!(hooks.dropped(), 0);
        attachment.set_mask(EventMask::NONE.with(EventKind::ClientConnack));
        assert!(!hooks.wants(EventKind::ClientConnected));
        hooks.emit(EventData::ClientConnack {
            client: client(),
            reason_code: ReasonCode::SUCCESS,
        });
        assert_eq!(recorder.0.lock().last(), Some(&EventKind::ClientConnack));
        drop(attachment);
        assert!(!hooks.wants(EventKind::ClientConnack));
        assert_eq!(
            Arc::strong_count(&recorder),
            1,
            "the hook let go of the sink"
        );
    }

    #[test]
    fn a_replaced_sink_gets_nothing_more() {
        let hooks = Arc::new(Hooks::default());
        let (old, new) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let connected = EventMask::NONE.with(EventKind::ClientConnected);
        let attachment = hooks.attach(connected, Arc::clone(&old) as Arc<dyn HookSink>);
        hooks.emit(EventData::ClientConnected { client: client() });
        attachment.replace(
            connected.with(EventKind::ClientConnack),
            Arc::clone(&new) as Arc<dyn HookSink>,
        );
        hooks.emit(EventData::ClientConnected { client: client() });
        hooks.emit(EventData::ClientConnack {
            client: client(),
            reason_code: ReasonCode::SUCCESS,
        });
        assert_eq!(*old.0.lock(), [EventKind::ClientConnected]);
        assert_eq!(
            *new.0.lock(),
            [EventKind::ClientConnected, EventKind::ClientConnack]
        );
        assert_eq!(
            Arc::strong_count(&old),
            1,
            "the hook let go of the old sink"
        );
        drop(attachment);
        assert!(!hooks.wants(EventKind::ClientConnected));
    }

    #[tokio::test]
    async fn a_batch_reaches_listeners_at_flush_in_order() {
        let hooks = Arc::new(Hooks::default());
        let recorder = Arc::new(Recorder::default());
        let _attachment = hooks.attach(
            EventMask::NONE.with(EventKind::ClientConnack),
            Arc::clone(&recorder) as Arc<dyn HookSink>,
        );
        let mut rx = hooks.subscribe(EventMask::NONE.with(EventKind::ClientConnected), 8);
        let mut batch = HookBatch::new(Arc::clone(&hooks));
        let connack = |code| EventData::ClientConnack {
            client: client(),
            reason_code: code,
        };
        batch.emit_with(EventKind::ClientConnack, || connack(ReasonCode::SUCCESS));
        batch.emit_with(EventKind::ClientConnected, || EventData::ClientConnected {
            client: client(),
        });
        batch.emit_with(EventKind::ClientConnack, || {
            connack(ReasonCode::NOT_AUTHORIZED)
        });
        batch.emit_with(EventKind::SessionSubscribed, || {
            unreachable!("nobody listens to session.subscribed: not built")
        });
        assert_eq!(batch.len(), 3);
        assert!(recorder.0.lock().is_empty(), "nothing before the flush");
        assert!(rx.try_recv().is_none());
        batch.flush();
        assert!(batch.is_empty());
        assert_eq!(
            *recorder.0.lock(),
            [EventKind::ClientConnack, EventKind::ClientConnack],
            "the sink's kinds only, in order"
        );
        assert_eq!(
            rx.recv().await.map(|e| e.kind()),
            Some(EventKind::ClientConnected)
        );
        assert!(rx.try_recv().is_none());
        // A long run flushes on its own; dropping the batch flushes the rest.
        for _ in 0..300 {
            batch.emit_with(EventKind::ClientConnack, || connack(ReasonCode::SUCCESS));
        }
        assert!(recorder.0.lock().len() >= 2 + 256);
        drop(batch);
        assert_eq!(recorder.0.lock().len(), 302);
    }

    /// A sink with no room: records what it was given and what it was told it missed.
    #[derive(Default)]
    struct Full(parking_lot::Mutex<Vec<String>>);

    impl HookSink for Full {
        fn on_event(&self, event: &Arc<Event>) {
            self.0.lock().push(format!("got {}", event.kind().name()));
        }
        fn has_room(&self) -> bool {
            false
        }
        fn on_skipped(&self, kind: EventKind, topic: Option<&str>) {
            self.0
                .lock()
                .push(format!("skipped {} {topic:?}", kind.name()));
        }
    }

    #[test]
    fn events_nobody_has_room_for_are_counted_not_built() {
        let hooks = Arc::new(Hooks::default());
        let full = Arc::new(Full::default());
        let _attachment = hooks.attach(EventMask::ALL, Arc::clone(&full) as Arc<dyn HookSink>);
        let mut rx = hooks.subscribe(EventMask::NONE.with(EventKind::MessageAcked), 1);
        let mut batch = HookBatch::new(Arc::clone(&hooks));
        batch.emit_with(EventKind::ClientConnected, || {
            unreachable!("no listener has room: not built")
        });
        let message = Arc::new(crate::message::Message::for_test(
            1,
            "a/b",
            0,
            hookmq_codec::QoS::AtMostOnce,
        ));
        batch.emit_message(EventKind::MessagePublish, None, &message, |_| {
            unreachable!("not built")
        });
        // The channel has room for one acked event: built and given to both, then skipped.
        for _ in 0..2 {
            batch.emit_message(EventKind::MessageAcked, None, &message, |m| {
                EventData::MessageAcked {
                    client: client(),
                    message: Arc::clone(m),
                    qos: hookmq_codec::QoS::AtLeastOnce,
                    properties: PacketProperties::default(),
                }
            });
            batch.flush();
        }
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
        assert_eq!(
            rx.dropped(),
            1,
            "the channel counted the one it had no room for"
        );
        assert_eq!(
            *full.0.lock(),
            [
                "skipped client.connected None",
                "skipped message.publish Some(\"a/b\")",
                "got message.acked",
                "skipped message.acked Some(\"a/b\")",
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventMask::ALL.0.count_ones(), 14);
    }
}
