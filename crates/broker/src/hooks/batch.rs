//! Events gathered by one task between two waits and handed to listeners together.

use std::{borrow::Borrow, sync::Arc};

use super::{Event, EventData, EventKind, Hooks, Listener};
use crate::message::{Message, now_ms};

/// A task's pending events. A connection emits into its batch while it handles what one read
/// or one mailbox wake-up brought, and flushes before it waits again: listeners then take
/// the whole run at once (one listener-list read, one queue lock and one wake-up per run),
/// in the order the events happened. Dropping the batch flushes it.
///
/// The events of one run are stamped with one clock reading, taken at the first: a run
/// never spans a wait, so they happened within the same moment at millisecond resolution.
///
/// An event is built only when some listener of its kind has room for it now
/// ([`HookSink::has_room`](super::HookSink::has_room)); otherwise the listeners count it as
/// dropped without it ever existing, so a full webhook queue costs a publisher a few loads
/// and two counter increments per event.
pub struct HookBatch {
    hooks: Arc<Hooks>,
    pending: Vec<Arc<Event>>,
    /// The run's time, ms since the epoch, read at its first stamped event.
    now: Option<u64>,
    /// The listener list the run was admitted against, read at its first event.
    listeners: Option<Arc<Vec<Listener>>>,
}

impl std::fmt::Debug for HookBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookBatch")
            .field("pending", &self.pending.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl HookBatch {
    /// An empty batch for `hooks`.
    #[must_use]
    pub fn new(hooks: Arc<Hooks>) -> Self {
        Self {
            hooks,
            pending: Vec::new(),
            now: None,
            listeners: None,
        }
    }

    /// Whether to build an event of `kind` (on `topic`): someone wants it and has room.
    #[inline]
    fn admit(&mut self, kind: EventKind, topic: Option<&str>) -> bool {
        if !self.hooks.wants(kind) {
            return false;
        }
        let listeners = self
            .listeners
            .get_or_insert_with(|| self.hooks.listeners.load_full());
        self.hooks.admit(listeners, kind, topic)
    }

    /// Whether some listener wants `kind` (one relaxed load), before anything is prepared.
    #[must_use]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.hooks.wants(kind)
    }

    fn run_time(&mut self) -> u64 {
        *self.now.get_or_insert_with(now_ms)
    }

    /// Builds a client event, stamped with the run's time, if some listener of `kind` wants
    /// it and has room.
    #[inline]
    pub fn emit_with(&mut self, kind: EventKind, build: impl FnOnce() -> EventData) {
        if self.admit(kind, None) {
            let now = self.run_time();
            self.push(now, build());
        }
    }

    /// Builds a message event from `message` (an `Arc<Message>` or a reference to one;
    /// listeners filter on its topic), stamped `at` (ms since the epoch) or the run's time,
    /// if some listener of `kind` wants it and has room.
    #[inline]
    pub fn emit_message<M: Borrow<Arc<Message>>>(
        &mut self,
        kind: EventKind,
        at: Option<u64>,
        message: M,
        build: impl FnOnce(M) -> EventData,
    ) {
        if self.admit(kind, Some(&*message.borrow().topic)) {
            let now = at.unwrap_or_else(|| self.run_time());
            self.push(now, build(message));
        }
    }

    fn push(&mut self, timestamp: u64, data: EventData) {
        self.pending.push(Arc::new(Event { timestamp, data }));
        // A task that emits without waiting (a long run of pipelined packets) still hands
        // its events over in runs of bounded size.
        if self.pending.len() >= MAX_PENDING {
            self.flush();
        }
    }

    /// Hands the pending events to the listeners.
    pub fn flush(&mut self) {
        self.now = None;
        let listeners = self.listeners.take();
        if self.pending.is_empty() {
            return;
        }
        // The list the run was admitted against (always there once an event was built).
        let listeners = listeners.unwrap_or_else(|| self.hooks.listeners.load_full());
        self.hooks.dispatch_batch(&listeners, &self.pending);
        self.pending.clear();
    }

    /// Events waiting for the next flush.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no event waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Most events a batch holds before it flushes on its own.
const MAX_PENDING: usize = 256;

impl Drop for HookBatch {
    fn drop(&mut self) {
        self.flush();
    }
}
