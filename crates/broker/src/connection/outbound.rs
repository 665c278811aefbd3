//! Towards the client: deliveries from the mailbox become PUBLISH packets (QoS downgrade,
//! expiry, subscription identifiers, topic aliases, maximum packet size, in-flight window).

use std::{sync::Arc, time::Instant};

use hookmq_codec::{ByteString, Packet, Properties, PubResponse, Publish, QoS, encoded_len};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Connection, DELIVERY_BATCH};
use crate::{
    hooks::{EventData, EventKind},
    persist::Record,
    session::{
        inflight::Stage,
        mailbox::{Delivery, Taken},
    },
};

/// The time of a batch of deliveries: monotonic for expiry, and the wall clock (read once,
/// when an event first needs it) for event timestamps.
struct Clock {
    instant: Instant,
    epoch_ms: std::cell::OnceCell<u64>,
}

impl Clock {
    fn new() -> Self {
        Self {
            instant: Instant::now(),
            epoch_ms: std::cell::OnceCell::new(),
        }
    }

    fn epoch_ms(&self) -> u64 {
        *self.epoch_ms.get_or_init(crate::message::now_ms)
    }
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Turns waiting deliveries into packets, as far as the in-flight window allows.
    pub(super) fn drain_mailbox(&mut self) {
        let window =
            usize::from(self.limits.receive_maximum).saturating_sub(self.state.outbound.len());
        let mut batch = std::mem::take(&mut self.batch);
        let taken = self.state.mailbox.take(&mut batch, DELIVERY_BATCH, window);
        self.more = taken == Taken::BatchFull;
        // One clock for the batch (its deliveries go out within microseconds of each other):
        // expiry is judged, and message.delivered stamped, by it.
        let clock = Clock::new();
        for delivery in batch.drain(..) {
            self.send_delivery(delivery, &clock);
        }
        self.batch = batch;
    }

    /// Sends one delivery, or reports why it cannot be sent.
    fn send_delivery(&mut self, delivery: Delivery, clock: &Clock) {
        let now = clock.instant;
        let message = &delivery.message;
        if message.is_expired(now) {
            return self.drop_delivery(delivery, "expired");
        }
        let mut publish = Publish {
            dup: false,
            qos: delivery.qos,
            retain: delivery.retain,
            topic: self.client_topic(&message.topic),
            packet_id: u16::from(delivery.qos != QoS::AtMostOnce),
            properties: Properties::default(),
            payload: message.payload.clone(),
        };
        if self.version.is_v5() {
            publish.properties = Properties::clone(&message.properties);
            publish.properties.message_expiry_interval = message.remaining_expiry(now);
            publish
                .properties
                .subscription_identifiers
                .extend_from_slice(delivery.subscription_ids.as_slice());
        }
        let mut packet = Packet::Publish(publish);
        // [MQTT-3.1.2-24]: never send a packet larger than the client accepts.
        if u32::try_from(encoded_len(&packet, self.version))
            .map_or(true, |len| len > self.limits.max_packet_size)
        {
            return self.drop_delivery(delivery, "too_large");
        }
        let Packet::Publish(publish) = &mut packet else {
            return;
        };
        if self.limits.topic_alias_maximum > 0 {
            self.apply_topic_alias(publish);
        }
        if delivery.qos != QoS::AtMostOnce {
            let stage = if delivery.qos == QoS::AtLeastOnce {
                Stage::AwaitingPubAck
            } else {
                Stage::AwaitingPubRec
            };
            match self.state.outbound.insert(delivery.clone(), stage) {
                Some(id) => {
                    publish.packet_id = id;
                    if delivery.stored != 0 {
                        self.store_packet_id(delivery.stored, id, stage);
                    }
                }
                None => return self.drop_delivery(delivery, "queue_full"),
            }
        }
        self.send(&packet);
        self.shared
            .stats
            .messages_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (client, qos) = (&self.client, delivery.qos);
        self.events.emit_message(
            EventKind::MessageDelivered,
            Some(clock.epoch_ms()),
            delivery.message,
            |message| EventData::MessageDelivered {
                client: Arc::clone(client),
                qos,
                message,
            },
        );
    }

    /// A topic as this client sees it: without its listener's mountpoint.
    fn client_topic(&self, topic: &ByteString) -> ByteString {
        match &self.client.mountpoint {
            Some(mountpoint) => super::mount::strip(mountpoint, topic),
            None => topic.clone(),
        }
    }

    /// Replaces a known topic by its alias, or sets up a new alias while there are free ones.
    fn apply_topic_alias(&mut self, publish: &mut Publish) {
        if let Some(&alias) = self.aliases_out.get(&publish.topic) {
            publish.properties.topic_alias = Some(alias);
            publish.topic = ByteString::new();
        } else if self.aliases_out.len() < usize::from(self.limits.topic_alias_maximum) {
            let alias = u16::try_from(self.aliases_out.len() + 1).unwrap_or(u16::MAX);
            self.aliases_out.insert(publish.topic.clone(), alias);
            publish.properties.topic_alias = Some(alias);
        }
    }

    /// Records the packet id a delivery of a persistent session goes out with: after a
    /// restart it is sent again under the same id with DUP set [MQTT-4.4.0-1]. A QoS 2
    /// PUBLISH waits for the disk, so the client never gets it under two ids (exactly once);
    /// a QoS 1 one does not (a crash first only costs a duplicate under a new id).
    fn store_packet_id(&mut self, delivery: u64, packet_id: u16, stage: Stage) {
        let Some(log) = self.shared.journal_of(&self.state) else {
            return;
        };
        let seq = log.append(Record::Sent {
            delivery,
            packet_id,
        });
        if let Some(entry) = self.state.outbound.get_mut(packet_id) {
            entry.stored = seq;
        }
        self.sync_owed |= stage == Stage::AwaitingPubRec;
    }

    fn drop_delivery(&mut self, delivery: Delivery, reason: &'static str) {
        self.forget_stored([delivery.stored]);
        self.shared
            .stats
            .deliveries_dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = &self.client;
        self.events.emit_message(
            EventKind::DeliveryDropped,
            None,
            delivery.message,
            |message| EventData::DeliveryDropped {
                client: Arc::clone(client),
                message,
                reason,
            },
        );
    }

    /// [MQTT-4.4.0-1]: after a reconnect, unacknowledged PUBLISH packets go out again with
    /// DUP set, and PUBRELs for messages past PUBREC.
    pub(super) fn resend_inflight(&mut self) {
        for (packet_id, entry) in self.state.outbound.in_order() {
            let packet = match (entry.stage, &entry.delivery) {
                (Stage::AwaitingPubComp, _) | (_, None) => {
                    Packet::PubRel(PubResponse::new(packet_id))
                }
                (Stage::AwaitingPubAck | Stage::AwaitingPubRec, Some(delivery)) => {
                    let message = &delivery.message;
                    let mut properties = Properties::default();
                    if self.version.is_v5() {
                        properties = Properties::clone(&message.properties);
                        properties.message_expiry_interval =
                            message.remaining_expiry(Instant::now());
                        properties
                            .subscription_identifiers
                            .extend_from_slice(delivery.subscription_ids.as_slice());
                    }
                    Packet::Publish(Publish {
                        dup: true,
                        qos: delivery.qos,
                        retain: delivery.retain,
                        topic: self.client_topic(&message.topic),
                        packet_id,
                        properties,
                        payload: message.payload.clone(),
                    })
                }
            };
            self.send(&packet);
        }
    }
}
