//! Outgoing QoS 1 and 2 messages between PUBLISH and their final acknowledgement.

use std::collections::HashMap;

use super::mailbox::Delivery;

/// Where an outgoing QoS 1/2 message stands.
#[allow(clippy::enum_variant_names)] // the spec's names for the three waits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// QoS 1, PUBLISH sent, waiting for PUBACK.
    AwaitingPubAck,
    /// QoS 2, PUBLISH sent, waiting for PUBREC.
    AwaitingPubRec,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    AwaitingPubComp,
}

/// One message in flight.
#[derive(Debug, Clone)]
pub(crate) struct InflightEntry {
    pub(crate) delivery: Delivery,
    pub(crate) stage: Stage,
    /// Order of first sending, to resend in order after a reconnect.
    sequence: u64,
}

/// The in-flight window of a session towards its client.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    entries: HashMap<u16, InflightEntry>,
    last_packet_id: u16,
    sequence: u64,
}

impl Inflight {
    /// Number of messages in flight.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records `delivery` under a fresh packet id and returns the id, or `None` if all 65,535
    /// ids are taken.
    pub(crate) fn insert(&mut self, delivery: Delivery, stage: Stage) -> Option<u16> {
        if self.entries.len() >= usize::from(u16::MAX) {
            return None;
        }
        let mut id = self.last_packet_id;
        loop {
            id = id.wrapping_add(1).max(1);
            if !self.entries.contains_key(&id) {
                break;
            }
        }
        self.last_packet_id = id;
        self.sequence += 1;
        self.entries.insert(
            id,
            InflightEntry {
                delivery,
                stage,
                sequence: self.sequence,
            },
        );
        Some(id)
    }

    /// The entry of `packet_id`.
    pub(crate) fn get_mut(&mut self, packet_id: u16) -> Option<&mut InflightEntry> {
        self.entries.get_mut(&packet_id)
    }

    /// Removes and returns the entry of `packet_id`.
    pub(crate) fn remove(&mut self, packet_id: u16) -> Option<InflightEntry> {
        self.entries.remove(&packet_id)
    }

    /// Every entry with its packet id, in the order first sent.
    pub(crate) fn in_order(&self) -> Vec<(u16, InflightEntry)> {
        let mut all: Vec<(u16, InflightEntry)> = self
            .entries
            .iter()
            .map(|(id, e)| (*id, e.clone()))
            .collect();
        all.sort_by_key(|(_, e)| e.sequence);
        all
    }
}
