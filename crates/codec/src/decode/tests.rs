//! Malformed and invalid input: each case gives the exact [`DecodeError`].
//!
//! Packets are written by hand; `frame` only adds the fixed header.

use bytes::BytesMut;
use test_case::test_case;

use crate::{DecodeError, Packet, ProtocolVersion, ReasonCode, decode};

const NONE: Option<ProtocolVersion> = None;
const V31: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1);
const V3: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1_1);
const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);

/// `first`, a one-byte remaining length, then `body`.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(body.len()).expect("short test packet");
    assert!(len < 128, "short test packet");
    [&[first, len][..], body].concat()
}

/// A 3.1.1 CONNECT with `flags`, keep alive 0, and `payload`.
fn connect3(flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(
        0x10,
        &[&b"\x00\x04MQTT\x04"[..], &[flags], b"\x00\x00", payload].concat(),
    )
}

/// A v5 CONNECT with `flags`, keep alive 0, `props` (after their length), then `payload`.
fn connect5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let pl = u8::try_from(props.len()).expect("short properties");
    frame(
        0x10,
        &[
            &b"\x00\x04MQTT\x05"[..],
            &[flags],
            b"\x00\x00",
            &[pl],
            props,
            payload,
        ]
        .concat(),
    )
}

/// A CONNECT with this protocol name and level, otherwise valid for 3.1.1.
fn connect_named(name: &[u8], level: u8) -> Vec<u8> {
    let len = u8::try_from(name.len()).expect("short name");
    frame(
        0x10,
        &[&[0, len][..], name, &[level, 0x02, 0, 0], b"\x00\x01c"].concat(),
    )
}

/// A v5 PUBLISH QoS 0 to topic `t` with these properties (after their length).
fn publish5(props: &[u8]) -> Vec<u8> {
    let pl = u8::try_from(props.len()).expect("short properties");
    frame(0x30, &[&b"\x00\x01t"[..], &[pl], props].concat())
}

/// A v5 packet of type `first` that starts with packet id 1 and these properties.
fn with_id_props(first: u8, props: &[u8], rest: &[u8]) -> Vec<u8> {
    let pl = u8::try_from(props.len()).expect("short properties");
    frame(first, &[&b"\x00\x01"[..], &[pl], props, rest].concat())
}

fn not_allowed(property: u8, packet: &'static str) -> DecodeError {
    DecodeError::PropertyNotAllowed { property, packet }
}

fn bad_reason(code: u8, packet: &'static str) -> DecodeError {
    DecodeError::InvalidReasonCode { code, packet }
}

// Fixed header.
#[test_case(V5, vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] => DecodeError::MalformedVariableInteger; "remaining length of five bytes")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x80\x80\x80\x80\x01") => DecodeError::MalformedVariableInteger; "property length of five bytes")]
#[test_case(V5, publish5(b"\x0B\x80\x80\x80\x80\x01") => DecodeError::MalformedVariableInteger; "subscription identifier of five bytes")]
#[test_case(V5, vec![0x00, 0x00] => DecodeError::UnknownPacketType(0); "packet type 0")]
#[test_case(V3, vec![0xF0, 0x00] => DecodeError::UnknownPacketType(15); "auth in 3.1.1")]
#[test_case(V31, vec![0xF0, 0x00] => DecodeError::UnknownPacketType(15); "auth in 3.1")]
#[test_case(NONE, vec![0xC0, 0x00] => DecodeError::FirstPacketNotConnect; "pingreq first")]
#[test_case(NONE, vec![0xF0, 0x00] => DecodeError::FirstPacketNotConnect; "auth first")]
#[test_case(NONE, frame(0x20, b"\x00\x00") => DecodeError::FirstPacketNotConnect; "connack first")]
#[test_case(V5, frame(0x60, b"\x00\x01") => DecodeError::InvalidHeaderFlags { packet_type: 6, flags: 0 }; "pubrel flags 0")]
#[test_case(V3, frame(0x80, b"\x00\x01\x00\x01a\x00") => DecodeError::InvalidHeaderFlags { packet_type: 8, flags: 0 }; "subscribe flags 0")]
#[test_case(V5, frame(0xA3, b"\x00\x01\x00\x00\x01a") => DecodeError::InvalidHeaderFlags { packet_type: 10, flags: 3 }; "unsubscribe flags 3")]
#[test_case(NONE, vec![0x12, 0x00] => DecodeError::InvalidHeaderFlags { packet_type: 1, flags: 2 }; "connect flags 2")]
#[test_case(V3, frame(0x41, b"\x00\x01") => DecodeError::InvalidHeaderFlags { packet_type: 4, flags: 1 }; "puback flags 1")]
#[test_case(V5, vec![0xC8, 0x00] => DecodeError::InvalidHeaderFlags { packet_type: 12, flags: 8 }; "pingreq flags 8")]
#[test_case(V5, vec![0xE1, 0x00] => DecodeError::InvalidHeaderFlags { packet_type: 14, flags: 1 }; "disconnect flags 1")]
#[test_case(V3, frame(0x22, b"\x00\x00") => DecodeError::InvalidHeaderFlags { packet_type: 2, flags: 2 }; "connack flags 2")]
// Remaining length against content.
#[test_case(V3, frame(0x40, b"\x00\x01\x00") => DecodeError::LengthMismatch; "v3 puback with a trailing byte")]
#[test_case(V5, frame(0x40, b"\x00") => DecodeError::LengthMismatch; "puback shorter than its packet id")]
#[test_case(V5, frame(0xC0, b"\x00") => DecodeError::LengthMismatch; "pingreq with a body")]
#[test_case(V3, frame(0xE0, b"\x00") => DecodeError::LengthMismatch; "v3 disconnect with a body")]
#[test_case(V3, frame(0x20, b"\x00\x00\x00") => DecodeError::LengthMismatch; "v3 connack too long")]
#[test_case(V3, frame(0x20, b"\x00") => DecodeError::LengthMismatch; "v3 connack too short")]
#[test_case(V5, frame(0x20, b"\x00\x00") => DecodeError::LengthMismatch; "v5 connack without property length")]
#[test_case(V3, frame(0x30, b"\x00\x05a") => DecodeError::LengthMismatch; "topic longer than the packet")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x05") => DecodeError::LengthMismatch; "property length beyond the packet")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x02\x1F\x00\x00") => DecodeError::LengthMismatch; "property crossing the property length")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x00\x00") => DecodeError::LengthMismatch; "byte after the properties")]
#[test_case(V3, frame(0xB0, b"\x00\x01\x00") => DecodeError::LengthMismatch; "v3 unsuback with a reason code")]
#[test_case(V3, frame(0x82, b"\x00\x01\x00\x01a") => DecodeError::LengthMismatch; "filter without options")]
#[test_case(NONE, connect3(0x82, b"\x00\x01c") => DecodeError::LengthMismatch; "user name flag without user name")]
#[test_case(NONE, connect3(0x02, b"\x00\x01cX") => DecodeError::LengthMismatch; "connect with a trailing byte")]
#[test_case(NONE, connect3(0x06, b"\x00\x01c\x00\x01t") => DecodeError::LengthMismatch; "will without payload")]
// UTF-8 and U+0000.
#[test_case(V3, frame(0x30, b"\x00\x02\xC3\x28") => DecodeError::InvalidUtf8; "topic not utf8")]
#[test_case(V3, frame(0x30, b"\x00\x03\xED\xA0\x80") => DecodeError::InvalidUtf8; "topic with a surrogate")]
#[test_case(NONE, connect3(0x02, b"\x00\x01\xFF") => DecodeError::InvalidUtf8; "client id not utf8")]
#[test_case(NONE, connect3(0x82, b"\x00\x01c\x00\x01\x80") => DecodeError::InvalidUtf8; "user name not utf8")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x06\x26\x00\x01\xFE\x00\x00") => DecodeError::InvalidUtf8; "user property key not utf8")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x08\x26\x00\x01k\x00\x02\xC0\x80") => DecodeError::InvalidUtf8; "user property value overlong")]
#[test_case(V5, publish5(b"\x03\x00\x01\xFF") => DecodeError::InvalidUtf8; "content type not utf8")]
#[test_case(V3, frame(0x82, b"\x00\x01\x00\x01\xFF\x00") => DecodeError::InvalidUtf8; "filter not utf8")]
#[test_case(V3, frame(0x30, b"\x00\x02a\x00") => DecodeError::NullCharacter; "topic with null")]
#[test_case(NONE, connect3(0x02, b"\x00\x01\x00") => DecodeError::NullCharacter; "client id with null")]
#[test_case(V5, frame(0x40, b"\x00\x01\x80\x04\x1F\x00\x01\x00") => DecodeError::NullCharacter; "reason string with null")]
#[test_case(V3, frame(0xA2, b"\x00\x01\x00\x02\x00a") => DecodeError::NullCharacter; "unsubscribe filter with null")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x07\x26\x00\x01k\x00\x01\x00") => DecodeError::NullCharacter; "user property value with null")]
// CONNECT.
#[test_case(NONE, connect_named(b"MQTT", 3) => DecodeError::InvalidProtocolName; "MQTT level 3")]
#[test_case(NONE, connect_named(b"MQIsdp", 4) => DecodeError::InvalidProtocolName; "MQIsdp level 4")]
#[test_case(NONE, connect_named(b"MQIsdp", 5) => DecodeError::InvalidProtocolName; "MQIsdp level 5")]
#[test_case(NONE, connect_named(b"MQTX", 4) => DecodeError::InvalidProtocolName; "unknown name")]
#[test_case(NONE, connect_named(b"mqtt", 4) => DecodeError::InvalidProtocolName; "lower case name")]
#[test_case(NONE, connect_named(b"MQTT", 6) => DecodeError::UnsupportedProtocolVersion(6); "level 6")]
#[test_case(NONE, connect_named(b"MQTT", 0x84) => DecodeError::UnsupportedProtocolVersion(0x84); "bridge level")]
#[test_case(NONE, connect_named(b"MQIsdp", 2) => DecodeError::UnsupportedProtocolVersion(2); "MQIsdp level 2")]
#[test_case(NONE, connect3(0x03, b"\x00\x01c") => DecodeError::ConnectReservedFlag; "reserved flag 3.1.1")]
#[test_case(NONE, connect5(0x01, b"", b"\x00\x01c") => DecodeError::ConnectReservedFlag; "reserved flag 5")]
#[test_case(NONE, connect3(0x1E, b"\x00\x01c\x00\x01t\x00\x00") => DecodeError::InvalidWillFlags; "will qos 3")]
#[test_case(NONE, connect3(0x0A, b"\x00\x01c") => DecodeError::InvalidWillFlags; "will qos without will")]
#[test_case(NONE, connect3(0x12, b"\x00\x01c") => DecodeError::InvalidWillFlags; "will qos 2 without will")]
#[test_case(NONE, connect3(0x22, b"\x00\x01c") => DecodeError::InvalidWillFlags; "will retain without will")]
#[test_case(NONE, connect3(0x42, b"\x00\x01c\x00\x01p") => DecodeError::PasswordWithoutUsername; "password without user name 3.1.1")]
#[test_case(NONE, frame(0x10, b"\x00\x06MQIsdp\x03\x42\x00\x00\x00\x01c\x00\x01p") => DecodeError::PasswordWithoutUsername; "password without user name 3.1")]
#[test_case(NONE, connect3(0x06, b"\x00\x01c\x00\x03w/#\x00\x00") => DecodeError::WildcardInTopicName; "will topic with wildcard")]
#[test_case(NONE, connect3(0x06, b"\x00\x01c\x00\x00\x00\x00") => DecodeError::EmptyTopicName; "empty will topic")]
// PUBLISH.
#[test_case(V5, frame(0x36, b"\x00\x01t\x00\x01\x00") => DecodeError::InvalidQoS; "qos 3")]
#[test_case(V3, frame(0x38, b"\x00\x01t") => DecodeError::DupWithQoS0; "dup with qos 0")]
#[test_case(V5, frame(0x39, b"\x00\x01t\x00") => DecodeError::DupWithQoS0; "dup retain with qos 0")]
#[test_case(V3, frame(0x30, b"\x00\x03a/+") => DecodeError::WildcardInTopicName; "plus in topic")]
#[test_case(V5, frame(0x30, b"\x00\x01#\x00") => DecodeError::WildcardInTopicName; "hash topic")]
#[test_case(V3, frame(0x30, b"\x00\x00x") => DecodeError::EmptyTopicName; "empty topic v3")]
#[test_case(V5, frame(0x30, b"\x00\x00\x00x") => DecodeError::EmptyTopicName; "empty topic v5 without alias")]
#[test_case(V3, frame(0x32, b"\x00\x01t\x00\x00") => DecodeError::ZeroPacketId; "publish qos 1 id 0")]
#[test_case(V5, frame(0x34, b"\x00\x01t\x00\x00\x00") => DecodeError::ZeroPacketId; "publish qos 2 id 0")]
// Packet identifiers of the other packets.
#[test_case(V3, frame(0x40, b"\x00\x00") => DecodeError::ZeroPacketId; "puback id 0")]
#[test_case(V5, frame(0x50, b"\x00\x00") => DecodeError::ZeroPacketId; "pubrec id 0")]
#[test_case(V5, frame(0x62, b"\x00\x00") => DecodeError::ZeroPacketId; "pubrel id 0")]
#[test_case(V3, frame(0x70, b"\x00\x00") => DecodeError::ZeroPacketId; "pubcomp id 0")]
#[test_case(V3, frame(0x82, b"\x00\x00\x00\x01a\x00") => DecodeError::ZeroPacketId; "subscribe id 0")]
#[test_case(V3, frame(0x90, b"\x00\x00\x00") => DecodeError::ZeroPacketId; "suback id 0")]
#[test_case(V5, frame(0xA2, b"\x00\x00\x00\x00\x01a") => DecodeError::ZeroPacketId; "unsubscribe id 0")]
#[test_case(V3, frame(0xB0, b"\x00\x00") => DecodeError::ZeroPacketId; "unsuback id 0")]
// SUBSCRIBE and UNSUBSCRIBE.
#[test_case(V3, frame(0x82, b"\x00\x01") => DecodeError::EmptySubscribe; "empty subscribe v3")]
#[test_case(V5, frame(0x82, b"\x00\x01\x00") => DecodeError::EmptySubscribe; "empty subscribe v5")]
#[test_case(V3, frame(0xA2, b"\x00\x01") => DecodeError::EmptyUnsubscribe; "empty unsubscribe v3")]
#[test_case(V5, frame(0xA2, b"\x00\x01\x00") => DecodeError::EmptyUnsubscribe; "empty unsubscribe v5")]
#[test_case(V3, frame(0x82, b"\x00\x01\x00\x01a\x04") => DecodeError::SubscriptionOptionsReserved; "v3 no local bit")]
#[test_case(V31, frame(0x82, b"\x00\x01\x00\x01a\x80") => DecodeError::SubscriptionOptionsReserved; "v3.1 top bit")]
#[test_case(V5, frame(0x82, b"\x00\x01\x00\x00\x01a\x40") => DecodeError::SubscriptionOptionsReserved; "v5 bit 6")]
#[test_case(V5, frame(0x82, b"\x00\x01\x00\x00\x01a\x81") => DecodeError::SubscriptionOptionsReserved; "v5 bit 7")]
#[test_case(V3, frame(0x82, b"\x00\x01\x00\x01a\x03") => DecodeError::InvalidSubscriptionOptions; "v3 qos 3")]
#[test_case(V5, frame(0x82, b"\x00\x01\x00\x00\x01a\x03") => DecodeError::InvalidSubscriptionOptions; "v5 qos 3")]
#[test_case(V5, frame(0x82, b"\x00\x01\x00\x00\x01a\x30") => DecodeError::InvalidSubscriptionOptions; "retain handling 3")]
// Properties.
#[test_case(V5, publish5(b"\x04\x00") => DecodeError::UnknownProperty(0x04); "unknown property 4")]
#[test_case(V5, publish5(b"\x00") => DecodeError::UnknownProperty(0x00); "property 0")]
#[test_case(NONE, connect5(0x02, b"\x80\x01", b"\x00\x01c") => DecodeError::UnknownProperty(0x80); "two byte property id")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x02\x2B\x00") => DecodeError::UnknownProperty(0x2B); "property 0x2B")]
#[test_case(NONE, connect5(0x02, b"\x23\x00\x01", b"\x00\x01c") => not_allowed(0x23, "CONNECT"); "topic alias in connect")]
#[test_case(NONE, connect5(0x02, b"\x18\x00\x00\x00\x01", b"\x00\x01c") => not_allowed(0x18, "CONNECT"); "will delay in connect")]
#[test_case(NONE, connect5(0x06, b"", b"\x00\x01c\x05\x11\x00\x00\x00\x01\x00\x01t\x00\x00") => not_allowed(0x11, "CONNECT will properties"); "session expiry in will")]
#[test_case(V5, publish5(b"\x18\x00\x00\x00\x01") => not_allowed(0x18, "PUBLISH"); "will delay in publish")]
#[test_case(V5, publish5(b"\x11\x00\x00\x00\x01") => not_allowed(0x11, "PUBLISH"); "session expiry in publish")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x05\x11\x00\x00\x00\x01") => not_allowed(0x11, "PUBACK"); "session expiry in puback")]
#[test_case(V5, frame(0x62, b"\x00\x01\x00\x02\x23\x00") => not_allowed(0x23, "PUBREL"); "topic alias in pubrel")]
#[test_case(V5, with_id_props(0xA2, b"\x0B\x01", b"\x00\x01a") => not_allowed(0x0B, "UNSUBSCRIBE"); "subscription id in unsubscribe")]
#[test_case(V5, with_id_props(0x82, b"\x1F\x00\x00", b"\x00\x01a\x00") => not_allowed(0x1F, "SUBSCRIBE"); "reason string in subscribe")]
#[test_case(V5, with_id_props(0x90, b"\x0B\x01", b"\x00") => not_allowed(0x0B, "SUBACK"); "subscription id in suback")]
#[test_case(V5, frame(0xE0, b"\x00\x02\x24\x01") => not_allowed(0x24, "DISCONNECT"); "maximum qos in disconnect")]
#[test_case(V5, frame(0xF0, b"\x18\x03\x23\x00\x01") => not_allowed(0x23, "AUTH"); "topic alias in auth")]
#[test_case(V5, frame(0x20, b"\x00\x00\x03\x03\x00\x00") => not_allowed(0x03, "CONNACK"); "content type in connack")]
#[test_case(V5, publish5(b"\x23\x00\x01\x23\x00\x02") => DecodeError::DuplicateProperty(0x23); "topic alias twice")]
#[test_case(V5, with_id_props(0x82, b"\x0B\x01\x0B\x02", b"\x00\x01a\x00") => DecodeError::DuplicateProperty(0x0B); "subscription id twice in subscribe")]
#[test_case(V5, frame(0x40, b"\x00\x01\x00\x06\x1F\x00\x00\x1F\x00\x00") => DecodeError::DuplicateProperty(0x1F); "reason string twice")]
#[test_case(NONE, connect5(0x02, b"\x11\x00\x00\x00\x01\x11\x00\x00\x00\x01", b"\x00\x01c") => DecodeError::DuplicateProperty(0x11); "session expiry twice")]
#[test_case(V5, frame(0xF0, b"\x18\x06\x15\x00\x00\x15\x00\x00") => DecodeError::DuplicateProperty(0x15); "authentication method twice")]
#[test_case(NONE, connect5(0x06, b"", b"\x00\x01c\x06\x09\x00\x00\x09\x00\x00\x00\x01t\x00\x00") => DecodeError::DuplicateProperty(0x09); "correlation data twice in will")]
#[test_case(V5, frame(0x20, b"\x00\x00\x04\x24\x00\x24\x01") => DecodeError::DuplicateProperty(0x24); "maximum qos twice")]
#[test_case(NONE, connect5(0x02, b"\x21\x00\x00", b"\x00\x01c") => DecodeError::InvalidPropertyValue(0x21); "receive maximum 0")]
#[test_case(V5, frame(0x20, b"\x00\x00\x05\x27\x00\x00\x00\x00") => DecodeError::InvalidPropertyValue(0x27); "maximum packet size 0")]
#[test_case(V5, publish5(b"\x23\x00\x00") => DecodeError::InvalidPropertyValue(0x23); "topic alias 0")]
#[test_case(V5, with_id_props(0x82, b"\x0B\x00", b"\x00\x01a\x00") => DecodeError::InvalidPropertyValue(0x0B); "subscription id 0")]
#[test_case(V5, publish5(b"\x0B\x80\x00") => DecodeError::InvalidPropertyValue(0x0B); "subscription id 0 non-minimal")]
#[test_case(V5, publish5(b"\x01\x02") => DecodeError::InvalidPropertyValue(0x01); "payload format 2")]
#[test_case(NONE, connect5(0x02, b"\x17\x02", b"\x00\x01c") => DecodeError::InvalidPropertyValue(0x17); "request problem information 2")]
#[test_case(NONE, connect5(0x02, b"\x19\xFF", b"\x00\x01c") => DecodeError::InvalidPropertyValue(0x19); "request response information 255")]
#[test_case(V5, frame(0x20, b"\x00\x00\x02\x24\x02") => DecodeError::InvalidPropertyValue(0x24); "maximum qos 2")]
#[test_case(V5, frame(0x20, b"\x00\x00\x02\x25\x02") => DecodeError::InvalidPropertyValue(0x25); "retain available 2")]
#[test_case(V5, frame(0x20, b"\x00\x00\x02\x28\x02") => DecodeError::InvalidPropertyValue(0x28); "wildcard available 2")]
#[test_case(V5, frame(0x20, b"\x00\x00\x02\x29\x03") => DecodeError::InvalidPropertyValue(0x29); "subscription ids available 3")]
#[test_case(V5, frame(0x20, b"\x00\x00\x02\x2A\xFF") => DecodeError::InvalidPropertyValue(0x2A); "shared available 255")]
#[test_case(V5, publish5(b"\x08\x00\x03a/#") => DecodeError::InvalidPropertyValue(0x08); "response topic with wildcard")]
// Reason codes.
#[test_case(V5, frame(0x40, b"\x00\x01\x92") => bad_reason(0x92, "PUBACK"); "puback 0x92")]
#[test_case(V5, frame(0x50, b"\x00\x01\x01") => bad_reason(0x01, "PUBREC"); "pubrec 0x01")]
#[test_case(V5, frame(0x62, b"\x00\x01\x10") => bad_reason(0x10, "PUBREL"); "pubrel 0x10")]
#[test_case(V5, frame(0x70, b"\x00\x01\x80\x00") => bad_reason(0x80, "PUBCOMP"); "pubcomp 0x80")]
#[test_case(V5, frame(0xE0, b"\x05") => bad_reason(0x05, "DISCONNECT"); "disconnect 0x05")]
#[test_case(V5, frame(0xE0, b"\x84\x00") => bad_reason(0x84, "DISCONNECT"); "disconnect 0x84")]
#[test_case(V5, frame(0xF0, b"\x01") => bad_reason(0x01, "AUTH"); "auth 0x01")]
#[test_case(V3, frame(0x90, b"\x00\x01\x03") => bad_reason(0x03, "SUBACK"); "v3 suback 3")]
#[test_case(V3, frame(0x90, b"\x00\x01\x87") => bad_reason(0x87, "SUBACK"); "v3 suback 0x87")]
#[test_case(V5, frame(0x90, b"\x00\x01\x00\x84") => bad_reason(0x84, "SUBACK"); "v5 suback 0x84")]
#[test_case(V5, frame(0xB0, b"\x00\x01\x00\x01") => bad_reason(0x01, "UNSUBACK"); "unsuback 0x01")]
#[test_case(V3, frame(0x20, b"\x00\x06") => bad_reason(0x06, "CONNACK"); "v3 connack 6")]
#[test_case(V5, frame(0x20, b"\x00\x8B\x00") => bad_reason(0x8B, "CONNACK"); "v5 connack 0x8B")]
#[test_case(V3, frame(0x20, b"\x02\x00") => DecodeError::InvalidConnAckFlags(0x02); "connack reserved flag")]
#[test_case(V5, frame(0x20, b"\x80\x00\x00") => DecodeError::InvalidConnAckFlags(0x80); "connack top flag")]
#[test_case(V3, frame(0x20, b"\x01\x05") => DecodeError::InvalidConnAckFlags(0x01); "v3 session present with refusal")]
#[test_case(V5, frame(0x20, b"\x01\x87\x00") => DecodeError::InvalidConnAckFlags(0x01); "v5 session present with failure")]
fn malformed(version: Option<ProtocolVersion>, bytes: Vec<u8>) -> DecodeError {
    let mut buf = BytesMut::from(&bytes[..]);
    decode(&mut buf, version, u32::MAX).expect_err("malformed")
}

#[test_case(DecodeError::MalformedVariableInteger => ReasonCode::MALFORMED_PACKET; "varint")]
#[test_case(DecodeError::LengthMismatch => ReasonCode::MALFORMED_PACKET; "length")]
#[test_case(DecodeError::InvalidConnAckFlags(2) => ReasonCode::MALFORMED_PACKET; "connack flags")]
#[test_case(DecodeError::UnsupportedProtocolVersion(6) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION; "level")]
#[test_case(DecodeError::InvalidProtocolName => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION; "name")]
#[test_case(DecodeError::WildcardInTopicName => ReasonCode::TOPIC_NAME_INVALID; "wildcard")]
#[test_case(DecodeError::DuplicateProperty(0x23) => ReasonCode::PROTOCOL_ERROR; "duplicate")]
#[test_case(DecodeError::PropertyNotAllowed { property: 0x23, packet: "CONNECT" } => ReasonCode::PROTOCOL_ERROR; "not allowed")]
#[test_case(DecodeError::InvalidPropertyValue(0x21) => ReasonCode::PROTOCOL_ERROR; "value")]
#[test_case(DecodeError::PacketTooLarge { size: 10, max: 5 } => ReasonCode::PACKET_TOO_LARGE; "too large")]
fn reason_codes(error: DecodeError) -> ReasonCode {
    error.reason_code()
}

/// Bytes that are accepted, with the packet they give.
#[test]
fn accepted_edge_cases() {
    let ok = |version, bytes: &[u8]| {
        let mut buf = BytesMut::from(bytes);
        let packet = decode(&mut buf, version, u32::MAX)
            .expect("accepted")
            .expect("complete");
        assert!(buf.is_empty());
        packet
    };
    // MQTT 3.1 does not require the reserved CONNECT flag to be 0.
    let packet = ok(NONE, b"\x10\x0F\x00\x06MQIsdp\x03\x03\x00\x00\x00\x01c");
    assert!(matches!(packet, Packet::Connect(c) if c.clean_start && c.client_id == "c"));
    // v5: AUTH and DISCONNECT with only a reason code.
    assert!(
        matches!(ok(V5, b"\xF0\x01\x19"), Packet::Auth(a) if a.reason_code == ReasonCode::REAUTHENTICATE)
    );
    assert!(matches!(ok(V5, b"\xE0\x01\x00"), Packet::Disconnect(d) if d.properties.is_empty()));
    // User properties and PUBLISH subscription identifiers may repeat.
    let packet = ok(
        V5,
        &publish5(b"\x0B\x01\x0B\x01\x26\x00\x00\x00\x00\x26\x00\x00\x00\x00"),
    );
    assert!(matches!(packet, Packet::Publish(p)
        if p.properties.subscription_identifiers == [1, 1] && p.properties.user_properties.len() == 2));
    // Wildcards and odd filters are the broker's to judge, not the codec's.
    assert!(matches!(
        ok(V3, b"\x82\x06\x00\x01\x00\x01+\x00"),
        Packet::Subscribe(_)
    ));
    // An empty SUBACK reason code list decodes (one per filter is the broker's check).
    assert!(
        matches!(ok(V5, b"\x90\x03\x00\x01\x00"), Packet::SubAck(s) if s.reason_codes.is_empty())
    );
    // A second CONNECT on an open connection still decodes; the broker rejects it.
    assert!(matches!(
        ok(V5, &connect3(0x02, b"\x00\x01c")),
        Packet::Connect(_)
    ));
}
