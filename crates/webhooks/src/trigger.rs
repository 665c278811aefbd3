//! Which events a webhook takes: a mask of event kinds, then topic filters for message events.

use hookmq_broker::hooks::{Event, EventKind, EventMask};
use hookmq_codec::topic;

use crate::spec::{SpecError, WebhookSpec};

/// A compiled trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The kinds selected.
    pub mask: EventMask,
    /// Filters message events must match; `#` alone means every non-`$` topic.
    filters: Vec<String>,
    /// The filters take every topic not starting with `$` (one of them is `#`) and no
    /// `$`-topic (none starts with `$`): the common case, decided by the first byte.
    all_but_dollar: bool,
    /// Leave out `$SYS/` topics (`ignore_sys_message`).
    ignore_sys: bool,
}

impl Trigger {
    /// Compiles a spec's `events` and `topics`.
    ///
    /// # Errors
    /// An unknown event name.
    pub fn new(spec: &WebhookSpec) -> Result<Self, SpecError> {
        let filters = spec.topics.clone();
        let all_but_dollar =
            filters.iter().any(|f| f == "#") && !filters.iter().any(|f| f.starts_with('$'));
        Ok(Self {
            mask: spec.event_kinds()?.into_iter().collect(),
            filters,
            all_but_dollar,
            ignore_sys: spec.ignore_sys_message,
        })
    }

    /// Whether the webhook wants `event`.
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_kind(event.kind(), event.topic())
    }

    /// Whether the webhook wants an event of `kind`, about a message on `topic` for message
    /// events (what the broker knows of an event it did not build).
    #[must_use]
    pub fn matches_kind(&self, kind: EventKind, topic: Option<&str>) -> bool {
        if !self.mask.contains(kind) {
            return false;
        }
        match topic {
            Some(name) if kind.is_message_event() => {
                if self.ignore_sys && name.starts_with("$SYS/") {
                    return false;
                }
                if self.all_but_dollar {
                    return !name.starts_with('$');
                }
                self.filters
                    .iter()
                    .any(|filter| topic::matches(filter, name))
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hookmq_broker::{hooks::EventData, message::Message};

    use super::*;
    use crate::samples::sample;

    fn publish_on(topic: &str) -> Event {
        let mut event = sample(EventKind::MessagePublish, "n");
        if let EventData::MessagePublish { message } = &mut event.data {
            *message = Arc::new(Message {
                topic: topic.into(),
                ..Message::clone(message)
            });
        }
        event
    }

    fn trigger(topics: &[&str]) -> Trigger {
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.topics = topics.iter().map(|t| (*t).to_owned()).collect();
        Trigger::new(&spec).expect("valid")
    }

    #[test]
    fn topic_filters_apply_to_message_events_only() {
        let all = trigger(&["#"]);
        assert!(all.matches(&publish_on("a/b")));
        assert!(!all.matches(&publish_on("$SYS/x")), "`#` skips $-topics");
        let with_sys = trigger(&["#", "$SYS/#"]);
        assert!(
            !with_sys.matches(&publish_on("$SYS/x")),
            "ignore_sys_message, by default"
        );
        assert!(with_sys.matches(&publish_on("a")));
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.topics = vec!["$SYS/#".into()];
        spec.ignore_sys_message = false;
        let taking = Trigger::new(&spec).expect("valid");
        assert!(taking.matches(&publish_on("$SYS/x")));
        let some = trigger(&["a/+", "b/#"]);
        assert!(some.matches(&publish_on("a/1")));
        assert!(some.matches(&publish_on("b")));
        assert!(!some.matches(&publish_on("a/1/2")));
        assert!(!some.matches(&publish_on("c")));
        assert!(
            some.matches(&sample(EventKind::ClientConnected, "n")),
            "client events have no topic to filter"
        );
    }
}
