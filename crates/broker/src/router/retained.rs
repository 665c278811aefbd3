//! Retained messages: the last retained message of each topic, kept in the broker's journal
//! when persistence is on.

use std::{collections::HashMap, sync::Arc, time::Instant};

use hookmq_codec::{ByteString, topic};
use parking_lot::RwLock;

use crate::{
    message::Message,
    persist::{Record, StateLog},
};

/// A retained message and the sequence number of its record (0: not kept on disk).
type Entry = (Arc<Message>, u64);

/// The retained store. A `RwLock`ed map: stores are rare next to reads at subscribe time.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    messages: RwLock<HashMap<ByteString, Entry>>,
    log: Option<Arc<StateLog>>,
}

impl Retained {
    /// A store that keeps its messages in `log`, if given.
    pub(crate) fn new(log: Option<Arc<StateLog>>) -> Self {
        Self {
            messages: RwLock::default(),
            log,
        }
    }

    /// Stores `message` for its topic, or clears the topic when the payload is empty.
    /// Returns whether the journal was written (an acknowledgement should wait for it).
    pub(crate) fn store(&self, message: &Arc<Message>) -> bool {
        if message.payload.is_empty() {
            return self.clear(&message.topic);
        }
        let mut messages = self.messages.write();
        // Appended under the map's lock, so the journal has the topic's changes in order.
        let seq = self
            .log
            .as_ref()
            .map_or(0, |log| log.append(Record::Retained(Arc::clone(message))));
        let old = messages.insert(message.topic.clone(), (Arc::clone(message), seq));
        let written = seq != 0;
        let old_seq = old.map_or(0, |(_, seq)| seq);
        if let Some(log) = &self.log
            && old_seq != 0
        {
            log.acknowledge([old_seq]);
            return true;
        }
        written
    }

    /// Whether `topic`'s retained message is message `id`.
    pub(crate) fn holds(&self, topic: &str, id: crate::message::MessageId) -> bool {
        self.messages
            .read()
            .get(topic)
            .is_some_and(|(message, _)| message.id == id)
    }

    /// Clears `topic`'s retained message. Returns whether the journal was written.
    pub(crate) fn clear(&self, topic: &str) -> bool {
        let old = self.messages.write().remove(topic);
        let old_seq = old.map_or(0, |(_, seq)| seq);
        match &self.log {
            Some(log) if old_seq != 0 => {
                log.acknowledge([old_seq]);
                true
            }
            _ => false,
        }
    }

    /// Puts back a message recovered from the journal (record `seq`).
    pub(crate) fn restore(&self, message: Arc<Message>, seq: u64) {
        self.messages
            .write()
            .insert(message.topic.clone(), (message, seq));
    }

    /// The unexpired retained messages matching `filter`.
    pub(crate) fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let now = Instant::now();
        let messages = self.messages.read();
        if !topic::has_wildcard(filter) {
            return messages
                .get(filter)
                .filter(|(m, _)| !m.is_expired(now))
                .map(|(m, _)| Arc::clone(m))
                .into_iter()
                .collect();
        }
        messages
            .iter()
            .filter(|(name, (m, _))| topic::matches(filter, name) && !m.is_expired(now))
            .map(|(_, (m, _))| Arc::clone(m))
            .collect()
    }

    /// Number of retained topics.
    pub(crate) fn len(&self) -> usize {
        self.messages.read().len()
    }

    /// Drops expired messages; called periodically.
    pub(crate) fn purge_expired(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        self.messages.write().retain(|_, (m, seq)| {
            let keep = !m.is_expired(now);
            if !keep {
                expired.push(*seq);
            }
            keep
        });
        if let Some(log) = &self.log {
            log.acknowledge(expired);
        }
    }
}
