//! Which events a webhook takes: a mask of event kinds, then topic filters for message events.

use hookmq_broker::hooks::{Event, EventMask};
use hookmq_codec::topic;

use crate::spec::{SpecError, WebhookSpec};

/// A compiled trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The kinds selected.
    pub mask: EventMask,
    /// Filters message events must match; `#` alone means every non-`$` topic.
    filters: Vec<String>,
}

impl Trigger {
    /// Compiles a spec's `events` and `topics`.
    ///
    /// # Errors
    /// An unknown event name.
    pub fn new(spec: &WebhookSpec) -> Result<Self, SpecError> {
        Ok(Self {
            mask: spec.event_kinds()?.into_iter().collect(),
            filters: spec.topics.clone(),
        })
    }

    /// Whether the webhook wants `event`.
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        let kind = event.kind();
        if !self.mask.contains(kind) {
            return false;
        }
        match event.topic() {
            Some(name) if kind.is_message_event() => self
                .filters
                .iter()
                .any(|filter| topic::matches(filter, name)),
            _ => true,
        }
    }
}
