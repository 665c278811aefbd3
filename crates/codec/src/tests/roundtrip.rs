//! Round trips of many generated packets: encode, decode, compare. A small deterministic
//! generator stands in for a property-testing crate.

use bytes::{BufMut, Bytes, BytesMut};

use super::{decode_all, encode_checked};
use crate::ProtocolVersion::{V3_1, V3_1_1, V5};
use crate::properties::id;
use crate::rules::{self, PropertyContext};
use crate::{
    Auth, ByteString, ConnAck, Connect, Disconnect, EncodeError, Packet, Properties,
    ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, SubscriptionRequest, UnsubAck, Unsubscribe, Will, encode, encoded_len,
};

/// xorshift64*: deterministic, good enough to vary packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn u16(&mut self) -> u16 {
        (self.next() >> 48) as u16
    }

    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }

    fn non_zero_u16(&mut self) -> u16 {
        self.u16().max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn qos(&mut self) -> QoS {
        self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
    }

    /// A string of up to `max` characters, some of them multi-byte.
    fn string(&mut self, max: usize) -> String {
        const CHARS: &[char] = &['a', 'b', 'z', '0', '/', ' ', '$', 'é', '€', '😀', '\u{7F}'];
        (0..self.below(max + 1)).map(|_| self.pick(CHARS)).collect()
    }

    /// A valid topic name: not empty, no wildcard.
    fn topic(&mut self) -> ByteString {
        let mut topic = self.string(12);
        if topic.is_empty() {
            topic.push('t');
        }
        ByteString::from(topic)
    }

    /// A topic filter (the codec does not check wildcard placement).
    fn filter(&mut self) -> ByteString {
        let mut filter = self.string(8);
        match self.below(4) {
            0 => filter.push_str("/#"),
            1 => filter.push_str("/+"),
            _ => filter.push('x'),
        }
        ByteString::from(filter)
    }

    fn bytes(&mut self, max: usize) -> Bytes {
        let mut out = BytesMut::new();
        for _ in 0..self.below(max + 1) {
            out.put_u8(self.next() as u8);
        }
        out.freeze()
    }

    fn reason(&mut self, valid: fn(u8) -> bool) -> ReasonCode {
        let codes: Vec<u8> = (0..=255u8).filter(|code| valid(*code)).collect();
        ReasonCode(self.pick(&codes))
    }

    /// Valid properties for `ctx`, each present with probability 1/3.
    fn properties(&mut self, ctx: PropertyContext) -> Properties {
        let mut p = Properties::default();
        let maybe = |rng: &mut Self, property: u8| ctx.allows(property) && rng.chance(3);
        if maybe(self, id::PAYLOAD_FORMAT_INDICATOR) {
            p.payload_format_indicator = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::MESSAGE_EXPIRY_INTERVAL) {
            p.message_expiry_interval = Some(self.u32());
        }
        if maybe(self, id::CONTENT_TYPE) {
            p.content_type = Some(self.string(10));
        }
        if maybe(self, id::RESPONSE_TOPIC) {
            p.response_topic = Some(self.topic().to_string());
        }
        if maybe(self, id::CORRELATION_DATA) {
            p.correlation_data = Some(self.bytes(10));
        }
        if maybe(self, id::SUBSCRIPTION_IDENTIFIER) {
            let count = if ctx.repeats_subscription_id() {
                1 + self.below(3)
            } else {
                1
            };
            for _ in 0..count {
                let value = self.u32() % crate::MAX_REMAINING_LENGTH as u32;
                p.subscription_identifiers.push(value.max(1));
            }
        }
        if maybe(self, id::SESSION_EXPIRY_INTERVAL) {
            p.session_expiry_interval = Some(self.u32());
        }
        if maybe(self, id::ASSIGNED_CLIENT_IDENTIFIER) {
            p.assigned_client_identifier = Some(self.string(10));
        }
        if maybe(self, id::SERVER_KEEP_ALIVE) {
            p.server_keep_alive = Some(self.u16());
        }
        if maybe(self, id::AUTHENTICATION_METHOD) {
            p.authentication_method = Some(self.string(10));
        }
        if maybe(self, id::AUTHENTICATION_DATA) {
            p.authentication_data = Some(self.bytes(10));
        }
        if maybe(self, id::REQUEST_PROBLEM_INFORMATION) {
            p.request_problem_information = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::WILL_DELAY_INTERVAL) {
            p.will_delay_interval = Some(self.u32());
        }
        if maybe(self, id::REQUEST_RESPONSE_INFORMATION) {
            p.request_response_information = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::RESPONSE_INFORMATION) {
            p.response_information = Some(self.string(10));
        }
        if maybe(self, id::SERVER_REFERENCE) {
            p.server_reference = Some(self.string(10));
        }
        if maybe(self, id::REASON_STRING) {
            p.reason_string = Some(self.string(10));
        }
        if maybe(self, id::RECEIVE_MAXIMUM) {
            p.receive_maximum = Some(self.non_zero_u16());
        }
        if maybe(self, id::TOPIC_ALIAS_MAXIMUM) {
            p.topic_alias_maximum = Some(self.u16());
        }
        if maybe(self, id::TOPIC_ALIAS) {
            p.topic_alias = Some(self.non_zero_u16());
        }
        if maybe(self, id::MAXIMUM_QOS) {
            p.maximum_qos = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::RETAIN_AVAILABLE) {
            p.retain_available = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::USER_PROPERTY) {
            for _ in 0..1 + self.below(3) {
                let pair = (self.string(5), self.string(5));
                p.user_properties.push(pair);
            }
        }
        if maybe(self, id::MAXIMUM_PACKET_SIZE) {
            p.maximum_packet_size = Some(self.u32().max(1));
        }
        if maybe(self, id::WILDCARD_SUBSCRIPTION_AVAILABLE) {
            p.wildcard_subscription_available = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::SUBSCRIPTION_IDENTIFIER_AVAILABLE) {
            p.subscription_identifier_available = Some(self.pick(&[0, 1]));
        }
        if maybe(self, id::SHARED_SUBSCRIPTION_AVAILABLE) {
            p.shared_subscription_available = Some(self.pick(&[0, 1]));
        }
        p
    }

    /// Properties in v5, none before.
    fn props(&mut self, version: ProtocolVersion, ctx: PropertyContext) -> Properties {
        if version.is_v5() {
            self.properties(ctx)
        } else {
            Properties::default()
        }
    }

    fn packet_id(&mut self) -> u16 {
        self.non_zero_u16()
    }

    fn pub_response(&mut self, version: ProtocolVersion, name: &'static str) -> PubResponse {
        let valid = if matches!(name, "PUBACK" | "PUBREC") {
            rules::puback_reason
        } else {
            rules::pubrel_reason
        };
        let v5 = version.is_v5();
        PubResponse {
            packet_id: self.packet_id(),
            reason_code: if v5 && self.chance(2) {
                self.reason(valid)
            } else {
                ReasonCode::SUCCESS
            },
            properties: self.props(version, PropertyContext::PubResponse(name)),
        }
    }

    /// A valid packet of a random type for `version`.
    fn packet(&mut self, version: ProtocolVersion) -> Packet {
        let v5 = version.is_v5();
        match self.below(if v5 { 15 } else { 14 }) {
            0 => Packet::Connect(Box::new(self.connect(version))),
            1 => {
                let reason_code = if v5 {
                    self.reason(rules::connack_reason)
                } else {
                    let code = u8::try_from(self.below(6)).unwrap_or(0);
                    ReasonCode::from_v3_connack(code).unwrap_or_default()
                };
                Packet::ConnAck(ConnAck {
                    session_present: !reason_code.is_error() && self.chance(2),
                    reason_code,
                    properties: self.props(version, PropertyContext::ConnAck),
                })
            }
            2 => Packet::Publish(self.publish(version)),
            3 => Packet::PubAck(self.pub_response(version, "PUBACK")),
            4 => Packet::PubRec(self.pub_response(version, "PUBREC")),
            5 => Packet::PubRel(self.pub_response(version, "PUBREL")),
            6 => Packet::PubComp(self.pub_response(version, "PUBCOMP")),
            7 => Packet::Subscribe(Subscribe {
                packet_id: self.packet_id(),
                properties: self.props(version, PropertyContext::Subscribe),
                subscriptions: (0..1 + self.below(4))
                    .map(|_| SubscriptionRequest {
                        filter: self.filter(),
                        options: self.options(v5),
                    })
                    .collect(),
            }),
            8 => {
                let valid = if v5 {
                    rules::suback_reason
                } else {
                    rules::suback_reason_v3
                };
                Packet::SubAck(SubAck {
                    packet_id: self.packet_id(),
                    properties: self.props(version, PropertyContext::SubAck),
                    reason_codes: (0..self.below(5)).map(|_| self.reason(valid)).collect(),
                })
            }
            9 => Packet::Unsubscribe(Unsubscribe {
                packet_id: self.packet_id(),
                properties: self.props(version, PropertyContext::Unsubscribe),
                filters: (0..1 + self.below(4)).map(|_| self.filter()).collect(),
            }),
            10 => Packet::UnsubAck(UnsubAck {
                packet_id: self.packet_id(),
                properties: self.props(version, PropertyContext::UnsubAck),
                reason_codes: if v5 {
                    (0..self.below(5))
                        .map(|_| self.reason(rules::unsuback_reason))
                        .collect()
                } else {
                    Vec::new()
                },
            }),
            11 => Packet::PingReq,
            12 => Packet::PingResp,
            13 => Packet::Disconnect(Disconnect {
                reason_code: if v5 {
                    self.reason(rules::disconnect_reason)
                } else {
                    ReasonCode::NORMAL_DISCONNECTION
                },
                properties: self.props(version, PropertyContext::Disconnect),
            }),
            _ => Packet::Auth(Auth {
                reason_code: self.reason(rules::auth_reason),
                properties: self.properties(PropertyContext::Auth),
            }),
        }
    }

    fn connect(&mut self, version: ProtocolVersion) -> Connect {
        let will = self.chance(2).then(|| Will {
            topic: self.topic(),
            payload: self.bytes(20),
            qos: self.qos(),
            retain: self.chance(2),
            properties: self.props(version, PropertyContext::Will),
        });
        let username = self.chance(2).then(|| self.string(8));
        // Before v5 a password needs a user name.
        let password =
            (self.chance(2) && (version.is_v5() || username.is_some())).then(|| self.bytes(8));
        Connect {
            protocol: version,
            clean_start: self.chance(2),
            keep_alive: self.u16(),
            properties: self.props(version, PropertyContext::Connect),
            client_id: self.string(23),
            will,
            username,
            password,
        }
    }

    fn publish(&mut self, version: ProtocolVersion) -> Publish {
        let qos = self.qos();
        let mut properties = self.props(version, PropertyContext::Publish);
        let topic = if version.is_v5() && self.chance(4) {
            // Empty topic name with a topic alias.
            properties.topic_alias = Some(self.non_zero_u16());
            ByteString::new()
        } else {
            self.topic()
        };
        Publish {
            dup: qos != QoS::AtMostOnce && self.chance(2),
            qos,
            retain: self.chance(2),
            topic,
            packet_id: if qos == QoS::AtMostOnce {
                0
            } else {
                self.packet_id()
            },
            properties,
            payload: self.bytes(40),
        }
    }

    fn options(&mut self, v5: bool) -> SubscriptionOptions {
        let qos = self.qos();
        if !v5 {
            return SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            };
        }
        SubscriptionOptions {
            qos,
            no_local: self.chance(2),
            retain_as_published: self.chance(2),
            retain_handling: self.pick(&[
                RetainHandling::SendAtSubscribe,
                RetainHandling::SendIfNew,
                RetainHandling::DoNotSend,
            ]),
        }
    }
}

#[test]
fn generated_packets_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for version in [V3_1, V3_1_1, V5] {
        for _ in 0..3000 {
            let packet = rng.packet(version);
            let bytes = encode_checked(&packet, version);
            let decode_version = if matches!(packet, Packet::Connect(_)) {
                None
            } else {
                Some(version)
            };
            let decoded = decode_all(&bytes, decode_version);
            assert_eq!(decoded, Ok(Some(packet)), "{version:?}: {bytes:02X?}");
        }
    }
}

#[test]
fn encode_errors_leave_the_buffer_unchanged() {
    let long = "x".repeat(70_000);
    let cases: Vec<(Packet, ProtocolVersion, EncodeError)> = vec![
        (
            Packet::Publish(Publish {
                topic: ByteString::from(long.clone()),
                ..Publish::default()
            }),
            V3_1_1,
            EncodeError::FieldTooLong(70_000),
        ),
        (
            Packet::PubAck(PubResponse {
                packet_id: 1,
                reason_code: ReasonCode::SUCCESS,
                properties: Properties {
                    reason_string: Some(long),
                    ..Properties::default()
                },
            }),
            V5,
            EncodeError::FieldTooLong(70_000),
        ),
        (
            Packet::Auth(Auth::default()),
            V3_1_1,
            EncodeError::NotInVersion("AUTH"),
        ),
        (
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties {
                    subscription_identifiers: vec![268_435_456],
                    ..Properties::default()
                },
                subscriptions: vec![SubscriptionRequest::default()],
            }),
            V5,
            EncodeError::VariableIntegerTooLarge(268_435_456),
        ),
        (
            Packet::Publish(Publish {
                topic: ByteString::from_static("t"),
                payload: Bytes::from(vec![0u8; crate::MAX_REMAINING_LENGTH]),
                ..Publish::default()
            }),
            V3_1_1,
            EncodeError::PacketTooLarge(crate::MAX_REMAINING_LENGTH + 3),
        ),
    ];
    for (packet, version, error) in cases {
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(encode(&packet, version, &mut buf), Err(error));
        assert_eq!(&buf[..], b"abc");
    }
    assert_eq!(encoded_len(&Packet::Auth(Auth::default()), V3_1_1), 0);
}

#[test]
fn encode_appends() {
    let mut buf = BytesMut::from(&b"abc"[..]);
    let written = encode(&Packet::PingReq, V5, &mut buf).expect("encodes");
    assert_eq!(written, 2);
    assert_eq!(&buf[..], b"abc\xC0\x00");
}

#[test]
fn remaining_length_boundaries() {
    // Payload sizes around the 1, 2, 3 and 4 byte remaining lengths.
    for payload_len in [
        0, 122, 123, 124, 16_378, 16_379, 16_380, 2_097_146, 2_097_147,
    ] {
        let packet = Packet::Publish(Publish {
            topic: ByteString::from_static("t"),
            payload: Bytes::from(vec![7u8; payload_len]),
            ..Publish::default()
        });
        let bytes = encode_checked(&packet, V3_1_1);
        let remaining = payload_len + 3;
        let header = match remaining {
            0..=127 => 2,
            128..=16_383 => 3,
            16_384..=2_097_151 => 4,
            _ => 5,
        };
        assert_eq!(bytes.len(), header + remaining, "payload {payload_len}");
        assert_eq!(decode_all(&bytes, Some(V3_1_1)), Ok(Some(packet)));
    }
}
