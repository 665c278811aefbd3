//! Retained messages: the last retained message of each topic.

use std::{collections::HashMap, sync::Arc, time::Instant};

use hookmq_codec::{ByteString, topic};
use parking_lot::RwLock;

use crate::message::Message;

/// The retained store. A `RwLock`ed map: stores are rare next to reads at subscribe time.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    messages: RwLock<HashMap<ByteString, Arc<Message>>>,
}

impl Retained {
    /// Stores `message` for its topic, or clears the topic when the payload is empty.
    pub(crate) fn store(&self, message: &Arc<Message>) {
        let mut messages = self.messages.write();
        if message.payload.is_empty() {
            messages.remove(&message.topic);
        } else {
            messages.insert(message.topic.clone(), Arc::clone(message));
        }
    }

    /// The unexpired retained messages matching `filter`.
    pub(crate) fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let now = Instant::now();
        let messages = self.messages.read();
        if !topic::has_wildcard(filter) {
            return messages
                .get(filter)
                .filter(|m| !m.is_expired(now))
                .into_iter()
                .cloned()
                .collect();
        }
        messages
            .iter()
            .filter(|(name, m)| topic::matches(filter, name) && !m.is_expired(now))
            .map(|(_, m)| Arc::clone(m))
            .collect()
    }

    /// Number of retained topics.
    pub(crate) fn len(&self) -> usize {
        self.messages.read().len()
    }

    /// Drops expired messages; called periodically.
    pub(crate) fn purge_expired(&self) {
        let now = Instant::now();
        self.messages.write().retain(|_, m| !m.is_expired(now));
    }
}
