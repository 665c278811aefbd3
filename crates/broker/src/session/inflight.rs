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
    /// The message, until the client has it (PUBACK, PUBREC): a PUBREL needs only the id.
    pub(crate) delivery: Option<Delivery>,
    pub(crate) stage: Stage,
    /// Records of a persistent session that keep this entry (see `persist`), 0 for none: the
    /// QoS 2 PUBLISH's packet id (`Sent`) or, past PUBREC, the PUBREL owed (`Released`).
    /// The delivery's own record is [`Delivery::stored`].
    pub(crate) stored: u64,
    /// Order of first sending, to resend in order after a reconnect.
    sequence: u64,
}

impl InflightEntry {
    /// Every record that keeps this entry.
    pub(crate) fn stored_seqs(&self) -> [u64; 2] {
        [self.stored, self.delivery.as_ref().map_or(0, |d| d.stored)]
    }
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
        self.restore(id, Some(delivery), stage, 0);
        Some(id)
    }

    /// Records an entry under the packet id it had before a restart.
    pub(crate) fn restore(
        &mut self,
        packet_id: u16,
        delivery: Option<Delivery>,
        stage: Stage,
        stored: u64,
    ) {
        self.last_packet_id = packet_id;
        self.sequence += 1;
        self.entries.insert(
            packet_id,
            InflightEntry {
                delivery,
                stage,
                stored,
                sequence: self.sequence,
            },
        );
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

    /// Every entry with its packet id, to change in place.
    pub(crate) fn entries_mut(&mut self) -> impl Iterator<Item = (u16, &mut InflightEntry)> {
        self.entries.iter_mut().map(|(id, entry)| (*id, entry))
    }

    /// The records that keep the entries of a persistent session.
    pub(crate) fn stored_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.values().flat_map(InflightEntry::stored_seqs)
    }
}
