//! Packets from the client: PUBLISH and its acknowledgements, SUBSCRIBE, UNSUBSCRIBE,
//! PINGREQ and DISCONNECT.

use std::sync::{Arc, atomic::Ordering};

use hookmq_codec::{
    ByteString, Disconnect, Packet, PubResponse, Publish, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, UnsubAck, Unsubscribe, decode, topic,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Close, Connection};
use crate::{
    hooks::{AuthzAction, AuthzResult, EventData, EventKind, PacketProperties},
    message::{Message, MessageParts},
    persist::Record,
    router::Subscriber,
    session::{SubscriptionRecord, inflight::Stage, mailbox::Delivery},
};

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Decodes and handles every whole packet in the read buffer.
    pub(super) fn handle_input(&mut self) -> Result<(), Close> {
        let max = self.shared.config.mqtt.max_packet_size;
        loop {
            if let Some(rate) = &mut self.publish_rate
                && !self.read_buf.is_empty()
            {
                let now = tokio::time::Instant::now();
                if let Err(wait) = rate.ready(now) {
                    self.paused_until = Some(now + wait);
                    self.shared
                        .stats
                        .publish_rate_waits
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
            match decode(&mut self.read_buf, Some(self.version), max) {
                Ok(Some(packet)) => {
                    if let (Packet::Publish(_), Some(rate)) = (&packet, &mut self.publish_rate) {
                        rate.take();
                    }
                    self.handle_packet(packet)?;
                }
                Ok(None) => return Ok(()),
                Err(error) => {
                    tracing::debug!(client = %self.client.client_id, %error, "bad packet");
                    return Err(Close::Violation(error.reason_code()));
                }
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish),
            Packet::PubAck(ack) => {
                self.on_puback(&ack);
                Ok(())
            }
            Packet::PubRec(ack) => {
                self.on_pubrec(ack);
                Ok(())
            }
            Packet::PubRel(ack) => {
                self.on_pubrel(&ack);
                Ok(())
            }
            Packet::PubComp(ack) => {
                self.on_pubcomp(&ack);
                Ok(())
            }
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => {
                self.on_unsubscribe(unsubscribe);
                Ok(())
            }
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => Err(self.on_disconnect(disconnect)),
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
            Packet::Connect(_)
            // Enhanced authentication is not offered, so AUTH is never expected.
            | Packet::Auth(_)
            // Server-to-client packets.
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(Close::Violation(ReasonCode::PROTOCOL_ERROR)),
        }
    }

    fn on_publish(&mut self, publish: Publish) -> Result<(), Close> {
        self.shared
            .stats
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        let config = &self.shared.config.mqtt;
        let Publish {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            mut properties,
            payload,
        } = publish;
        let topic = match properties.topic_alias.take() {
            None => topic,
            Some(alias) if alias == 0 || alias > config.max_topic_alias => {
                // [MQTT-3.3.2-9]
                return Err(Close::Violation(ReasonCode::TOPIC_ALIAS_INVALID));
            }
            Some(alias) if topic.is_empty() => match self.aliases_in.get(&alias) {
                Some(topic) => topic.clone(),
                None => return Err(Close::Violation(ReasonCode::PROTOCOL_ERROR)),
            },
            Some(alias) => {
                self.aliases_in.insert(alias, topic.clone());
                topic
            }
        };
        if !topic::is_valid_name(&topic) {
            return Err(Close::Violation(ReasonCode::TOPIC_NAME_INVALID));
        }
        if qos > self.shared.max_qos() {
            // [MQTT-3.2.2-11]
            return Err(Close::Violation(ReasonCode::QOS_NOT_SUPPORTED));
        }
        if retain && !config.retain_available {
            // [MQTT-3.2.2-14]
            return Err(Close::Violation(ReasonCode::RETAIN_NOT_SUPPORTED));
        }
        if !properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: only the server puts subscription identifiers in a PUBLISH.
            return Err(Close::Violation(ReasonCode::PROTOCOL_ERROR));
        }
        // The rules see the client's own topic; routing, the mounted one.
        let (topic, client_topic) = match &self.client.mountpoint {
            Some(mountpoint) => (super::mount::topic(mountpoint, &topic), Some(topic)),
            None => (topic, None),
        };
        let message = Message::received(
            self.shared.ids.next_id(),
            MessageParts {
                topic,
                payload,
                qos,
                retain,
                dup,
                properties,
            },
            Arc::clone(&self.publisher),
        );
        if qos == QoS::ExactlyOnce {
            if self.state.awaiting_release.contains_key(&packet_id) {
                // [MQTT-4.3.3-10]: a resent QoS 2 PUBLISH is acknowledged, not routed again.
                let reason_code = if dup {
                    ReasonCode::SUCCESS
                } else {
                    self.drop_message(message, "packet_identifier_inuse");
                    ReasonCode::PACKET_IDENTIFIER_IN_USE
                };
                let reason_code = if self.version.is_v5() {
                    reason_code
                } else {
                    ReasonCode::SUCCESS
                };
                self.send(&Packet::PubRec(PubResponse {
                    packet_id,
                    reason_code,
                    ..Default::default()
                }));
                return Ok(());
            }
            if self.state.awaiting_release.len() >= usize::from(config.receive_maximum) {
                // [MQTT-3.3.4-9]
                self.drop_message(message, "receive_maximum_exceeded");
                return Err(Close::Violation(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED));
            }
        }
        // A mounted topic past MQTT's 65,535 bytes could not be sent to anyone.
        let refusal = if too_many_levels(&message.topic, config.max_topic_levels)
            || message.topic.len() > usize::from(u16::MAX)
        {
            self.shared
                .stats
                .publishes_refused
                .fetch_add(1, Ordering::Relaxed);
            Some(ReasonCode::TOPIC_NAME_INVALID)
        } else if self.authorize(
            AuthzAction::Publish,
            // The rules see, and events report, the client's own topic.
            client_topic.as_ref().unwrap_or(&message.topic),
            client_topic.as_ref().unwrap_or(&message.topic),
        ) == AuthzResult::Deny
        {
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if message.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&message.payload).is_err()
        {
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
        } else {
            None
        };
        let reason_code = match refusal {
            Some(code) => code,
            None => {
                let routed = self.shared.publish(Arc::new(message), &mut self.events);
                self.sync_owed |= routed.stored && qos != QoS::AtMostOnce;
                if routed.matched == 0 && !routed.elsewhere {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                } else {
                    ReasonCode::SUCCESS
                }
            }
        };
        // v3 has no way to say no: a refused message is acknowledged and dropped.
        let reason_code = if self.version.is_v5() {
            reason_code
        } else {
            ReasonCode::SUCCESS
        };
        let response = PubResponse {
            packet_id,
            reason_code,
            ..Default::default()
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.acks_owed = true;
                self.send(&Packet::PubAck(response));
            }
            QoS::ExactlyOnce => {
                if !reason_code.is_error() {
                    let seq = self.shared.journal_of(&self.state).map_or(0, |log| {
                        log.append(Record::AwaitingRelease {
                            session_id: self.state.id,
                            packet_id,
                        })
                    });
                    self.sync_owed |= seq != 0;
                    self.state.awaiting_release.insert(packet_id, seq);
                }
                self.acks_owed = true;
                self.send(&Packet::PubRec(response));
            }
        }
        Ok(())
    }

    /// Reports a message refused before routing.
    fn drop_message(&mut self, message: Message, reason: &'static str) {
        if self.events.wants(EventKind::MessageDropped) {
            self.events.emit_message(
                EventKind::MessageDropped,
                None,
                Arc::new(message),
                |message| EventData::MessageDropped { message, reason },
            );
        }
    }

    /// Decides an action, through this connection's cache, and reports the decision.
    /// `checked` is what the rules see; `reported` is what the event names.
    fn authorize(
        &mut self,
        action: AuthzAction,
        checked: &ByteString,
        reported: &ByteString,
    ) -> AuthzResult {
        let (result, source) = if self.shared.access.acl.is_none() {
            // Without rules the decision is the configured default: nothing to cache.
            self.shared.authorize(&self.client, action, checked)
        } else {
            let key = (action, checked.clone());
            if let Some(&(result, _)) = self.authz_cache.get(&key) {
                // As EMQX: a decision from the cache is reported as coming from it.
                (result, "cache")
            } else {
                let decision = self.shared.authorize(&self.client, action, checked);
                let capacity = self.shared.config.authz.cache_size;
                if capacity > 0 {
                    if self.authz_cache.len() >= capacity {
                        self.authz_cache.clear();
                    }
                    self.authz_cache.insert(key, decision);
                }
                decision
            }
        };
        self.events.emit_with(EventKind::CheckAuthzComplete, || {
            EventData::CheckAuthzComplete {
                client: Arc::clone(&self.client),
                action,
                topic: reported.clone(),
                source,
                result,
            }
        });
        result
    }

    fn on_puback(&mut self, ack: &PubResponse) {
        match self.state.outbound.get_mut(ack.packet_id) {
            Some(entry) if entry.stage == Stage::AwaitingPubAck => {
                if let Some(entry) = self.state.outbound.remove(ack.packet_id) {
                    self.forget_stored(entry.stored_seqs());
                    if let Some(delivery) = entry.delivery {
                        self.report_acked(delivery, &ack.properties);
                    }
                }
            }
            _ => {
                tracing::debug!(client = %self.client.client_id, id = ack.packet_id, "unexpected PUBACK")
            }
        }
    }

    fn on_pubrec(&mut self, ack: PubResponse) {
        let packet_id = ack.packet_id;
        let stage = self.state.outbound.get_mut(packet_id).map(|e| e.stage);
        match stage {
            Some(Stage::AwaitingPubRec) if ack.reason_code.is_error() => {
                // The client refused the message: it is finished.
                if let Some(entry) = self.state.outbound.remove(packet_id) {
                    self.forget_stored(entry.stored_seqs());
                }
            }
            Some(Stage::AwaitingPubRec) => {
                let released = self.shared.journal_of(&self.state).map_or(0, |log| {
                    log.append(Record::Released {
                        session_id: self.state.id,
                        packet_id,
                    })
                });
                if let Some(entry) = self.state.outbound.get_mut(packet_id) {
                    entry.stage = Stage::AwaitingPubComp;
                    let done = entry.stored_seqs();
                    entry.stored = released;
                    let delivery = entry.delivery.take();
                    self.forget_stored(done);
                    if let Some(delivery) = delivery {
                        self.report_acked(delivery, &ack.properties);
                    }
                }
                self.send(&Packet::PubRel(PubResponse::new(packet_id)));
            }
            Some(Stage::AwaitingPubComp) => self.send(&Packet::PubRel(PubResponse::new(packet_id))),
            _ => self.send(&Packet::PubRel(PubResponse {
                packet_id,
                reason_code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                ..Default::default()
            })),
        }
    }

    fn on_pubrel(&mut self, ack: &PubResponse) {
        let reason_code = if let Some(seq) = self.state.awaiting_release.remove(&ack.packet_id) {
            self.forget_stored([seq]);
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.send(&Packet::PubComp(PubResponse {
            packet_id: ack.packet_id,
            reason_code,
            ..Default::default()
        }));
    }

    fn on_pubcomp(&mut self, ack: &PubResponse) {
        if self
            .state
            .outbound
            .get_mut(ack.packet_id)
            .is_some_and(|e| e.stage == Stage::AwaitingPubComp)
            && let Some(entry) = self.state.outbound.remove(ack.packet_id)
        {
            self.forget_stored(entry.stored_seqs());
        }
    }

    /// Tells the broker's journal that the records `seqs` (0: none) are done with.
    pub(super) fn forget_stored(&self, seqs: impl IntoIterator<Item = u64>) {
        if let Some(log) = &self.shared.persist {
            log.acknowledge(seqs);
        }
    }

    /// Writes the session's record again after its subscriptions changed, if it is kept;
    /// the SUBACK or UNSUBACK then waits for the disk.
    fn save_session(&mut self) {
        if let Some(log) = self.shared.journal_of(&self.state) {
            log.save_session(&mut self.state, &self.client, self.will.as_deref());
            self.sync_owed = true;
        }
    }

    fn report_acked(&mut self, delivery: Delivery, properties: &hookmq_codec::Properties) {
        let client = &self.client;
        self.events
            .emit_message(EventKind::MessageAcked, None, delivery.message, |message| {
                EventData::MessageAcked {
                    client: Arc::clone(client),
                    qos: delivery.qos,
                    message,
                    properties: PacketProperties::copy(properties),
                }
            });
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), Close> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config.mqtt;
        let subscription_id = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        let mut reason_codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained = Vec::new();
        for mut request in subscribe.subscriptions {
            // The client's own filter is checked, and reported in events, as it sent it.
            let own_filter = request.filter.clone();
            if topic::parse_subscription(&own_filter).is_err() {
                reason_codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let mountpoint = self.client.mountpoint.clone();
            if let Some(mountpoint) = &mountpoint {
                request.filter = super::mount::filter(mountpoint, &request.filter);
            }
            let Ok(parsed) = topic::parse_subscription(&request.filter)
                .map_err(drop)
                .and_then(|parsed| {
                    (request.filter.len() <= usize::from(u16::MAX))
                        .then_some(parsed)
                        .ok_or(())
                })
            else {
                reason_codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            };
            if too_many_levels(parsed.filter, config.max_topic_levels) {
                shared
                    .stats
                    .subscriptions_refused
                    .fetch_add(1, Ordering::Relaxed);
                reason_codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            if parsed.group.is_some() && !config.shared_subscription {
                reason_codes.push(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
                continue;
            }
            if topic::has_wildcard(parsed.filter) && !config.wildcard_subscription {
                reason_codes.push(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
                continue;
            }
            if parsed.group.is_some() && request.options.no_local {
                // [MQTT-3.8.3-4]
                return Err(Close::Violation(ReasonCode::PROTOCOL_ERROR));
            }
            // The rules see the client's own filter.
            let own = mountpoint
                .as_deref()
                .and_then(|mp| parsed.filter.strip_prefix(mp))
                .unwrap_or(parsed.filter);
            let checked = ByteString::from(own);
            if self.authorize(AuthzAction::Subscribe, &checked, &own_filter) == AuthzResult::Deny {
                reason_codes.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            if config.max_subscriptions > 0
                && self.state.subscriptions.len() >= config.max_subscriptions
                && !self.state.subscriptions.contains_key(&request.filter)
            {
                shared
                    .stats
                    .subscriptions_refused
                    .fetch_add(1, Ordering::Relaxed);
                reason_codes.push(ReasonCode::QUOTA_EXCEEDED);
                continue;
            }
            let mut options = request.options;
            options.qos = options.qos.min(self.shared.max_qos());
            let existed = self.shared.router.subscribe(
                parsed.filter,
                parsed.group,
                Subscriber {
                    session_id: self.state.id,
                    mailbox: Arc::clone(&self.state.mailbox),
                    options,
                    subscription_id,
                },
            );
            self.state.subscriptions.insert(
                request.filter.clone(),
                SubscriptionRecord {
                    options,
                    subscription_id,
                },
            );
            self.events.emit_with(EventKind::SessionSubscribed, || {
                EventData::SessionSubscribed {
                    client: Arc::clone(&self.client),
                    filter: request.filter.clone(),
                    options,
                    properties: PacketProperties::copy(&subscribe.properties),
                }
            });
            // [MQTT-3.3.1-9..11]; shared subscriptions never get retained messages.
            let send_retained = parsed.group.is_none()
                && config.retain_available
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained.extend(
                    self.shared
                        .retained
                        .matching(parsed.filter)
                        .into_iter()
                        .map(|message| Delivery {
                            qos: message.qos.min(options.qos),
                            retain: true,
                            subscription_ids: subscription_id.into(),
                            message,
                            stored: 0,
                        }),
                );
            }
            reason_codes.push(ReasonCode(options.qos.as_u8()));
        }
        self.save_session();
        self.send(&Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes,
            ..Default::default()
        }));
        for delivery in retained {
            self.shared
                .deliver(&self.state.mailbox, delivery, &mut self.events);
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut reason_codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in unsubscribe.filters {
            let filter = match &self.client.mountpoint {
                Some(mountpoint) if topic::parse_subscription(&filter).is_ok() => {
                    super::mount::filter(mountpoint, &filter)
                }
                _ => filter,
            };
            let removed = self.state.subscriptions.remove(&filter);
            let existed = removed.is_some();
            if let Some(record) = removed {
                if let Ok(parsed) = topic::parse_subscription(&filter) {
                    self.shared
                        .router
                        .unsubscribe(parsed.filter, parsed.group, self.state.id);
                }
                self.events.emit_with(EventKind::SessionUnsubscribed, || {
                    EventData::SessionUnsubscribed {
                        client: Arc::clone(&self.client),
                        filter: filter.clone(),
                        qos: record.options.qos,
                        properties: PacketProperties::copy(&unsubscribe.properties),
                    }
                });
            }
            reason_codes.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        self.save_session();
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes,
            ..Default::default()
        }));
    }

    fn on_disconnect(&mut self, disconnect: Disconnect) -> Close {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.state.expiry_interval == 0 && expiry != 0 {
                // [MQTT-3.14.2-2]
                return Close::Violation(ReasonCode::PROTOCOL_ERROR);
            }
            let max = u32::try_from(
                self.shared
                    .config
                    .mqtt
                    .max_session_expiry_interval
                    .as_secs(),
            )
            .unwrap_or(u32::MAX);
            self.state.expiry_interval = expiry.min(max);
        }
        Close::Client {
            publish_will: disconnect.reason_code == ReasonCode::DISCONNECT_WITH_WILL,
            properties: Box::new(disconnect.properties),
        }
    }
}

/// Whether `topic` has more than `max` levels. A topic of fewer bytes than `max` cannot,
/// so the common case costs a length comparison.
pub(super) fn too_many_levels(topic: &str, max: usize) -> bool {
    topic.len() >= max && topic.bytes().filter(|b| *b == b'/').count() >= max
}
