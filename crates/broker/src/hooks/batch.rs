//! Events gathered by one task between two waits and handed to listeners together.

use std::sync::Arc;

use super::{Event, EventData, EventKind, Hooks};
use crate::message::now_ms;

/// A task's pending events. A connection emits into its batch while it handles what one read
/// or one mailbox wake-up brought, and flushes before it waits again: listeners then take
/// the whole run at once (one listener-list read, one queue lock and one wake-up per run),
/// in the order the events happened. Dropping the batch flushes it.
///
/// The events of one run are stamped with one clock reading, taken at the first: a run
/// never spans a wait, so they happened within the same moment at millisecond resolution.
#[derive(Debug)]
pub struct HookBatch {
    hooks: Arc<Hooks>,
    pending: Vec<Arc<Event>>,
    /// The run's time, ms since the epoch, read at its first stamped event.
    now: Option<u64>,
}

impl HookBatch {
    /// An empty batch for `hooks`.
    #[must_use]
    pub fn new(hooks: Arc<Hooks>) -> Self {
        Self {
            hooks,
            pending: Vec::new(),
            now: None,
        }
    }

    /// Builds the event, stamped with the run's time, only if some listener wants `kind`.
    #[inline]
    pub fn emit_with(&mut self, kind: EventKind, build: impl FnOnce() -> EventData) {
        if self.hooks.wants(kind) {
            let now = *self.now.get_or_insert_with(now_ms);
            self.push(now, build());
        }
    }

    /// Like [`HookBatch::emit_with`], stamped `timestamp` (ms since the epoch).
    #[inline]
    pub fn emit_with_at(
        &mut self,
        kind: EventKind,
        timestamp: impl FnOnce() -> u64,
        build: impl FnOnce() -> EventData,
    ) {
        if self.hooks.wants(kind) {
            self.push(timestamp(), build());
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
        if !self.pending.is_empty() {
            self.hooks.dispatch_batch(&self.pending);
            self.pending.clear();
        }
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
