//! Per-packet rules shared by the decoder and the encoder: which properties a packet may carry
//! (spec §2.2.2.2, table 2-4) and which reason codes it may use (the tables of §3.x).

use crate::properties::id;

/// Where a property list appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResponse(&'static str),
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < ids.len() {
        mask |= 1 << ids[i];
        i += 1;
    }
    mask
}

const CONNECT: u64 = bits(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::RECEIVE_MAXIMUM,
    id::MAXIMUM_PACKET_SIZE,
    id::TOPIC_ALIAS_MAXIMUM,
    id::REQUEST_RESPONSE_INFORMATION,
    id::REQUEST_PROBLEM_INFORMATION,
    id::USER_PROPERTY,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
]);
const WILL: u64 = bits(&[
    id::WILL_DELAY_INTERVAL,
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::CONTENT_TYPE,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::USER_PROPERTY,
]);
const CONNACK: u64 = bits(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::RECEIVE_MAXIMUM,
    id::MAXIMUM_QOS,
    id::RETAIN_AVAILABLE,
    id::MAXIMUM_PACKET_SIZE,
    id::ASSIGNED_CLIENT_IDENTIFIER,
    id::TOPIC_ALIAS_MAXIMUM,
    id::REASON_STRING,
    id::USER_PROPERTY,
    id::WILDCARD_SUBSCRIPTION_AVAILABLE,
    id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    id::SHARED_SUBSCRIPTION_AVAILABLE,
    id::SERVER_KEEP_ALIVE,
    id::RESPONSE_INFORMATION,
    id::SERVER_REFERENCE,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
]);
const PUBLISH: u64 = bits(&[
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::TOPIC_ALIAS,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::USER_PROPERTY,
    id::SUBSCRIPTION_IDENTIFIER,
    id::CONTENT_TYPE,
]);
const REASON_ONLY: u64 = bits(&[id::REASON_STRING, id::USER_PROPERTY]);
const SUBSCRIBE: u64 = bits(&[id::SUBSCRIPTION_IDENTIFIER, id::USER_PROPERTY]);
const UNSUBSCRIBE: u64 = bits(&[id::USER_PROPERTY]);
const DISCONNECT: u64 = bits(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::REASON_STRING,
    id::USER_PROPERTY,
    id::SERVER_REFERENCE,
]);
const AUTH: u64 = bits(&[
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
    id::REASON_STRING,
    id::USER_PROPERTY,
]);

impl PropertyContext {
    /// The packet's name, for errors.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Will => "CONNECT will properties",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubResponse(name) => name,
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }

    const fn mask(self) -> u64 {
        match self {
            Self::Connect => CONNECT,
            Self::Will => WILL,
            Self::ConnAck => CONNACK,
            Self::Publish => PUBLISH,
            Self::PubResponse(_) | Self::SubAck | Self::UnsubAck => REASON_ONLY,
            Self::Subscribe => SUBSCRIBE,
            Self::Unsubscribe => UNSUBSCRIBE,
            Self::Disconnect => DISCONNECT,
            Self::Auth => AUTH,
        }
    }

    /// Whether a packet of this kind may carry property `id`.
    pub(crate) const fn allows(self, id: u8) -> bool {
        id < 64 && self.mask() & (1 << id) != 0
    }

    /// Whether the Subscription Identifier may appear more than once (PUBLISH only).
    pub(crate) const fn repeats_subscription_id(self) -> bool {
        matches!(self, Self::Publish)
    }
}

/// Whether `code` is a valid v5 CONNACK reason code (§3.2.2.2).
pub(crate) const fn connack_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99 | 0x9A | 0x9B | 0x9C | 0x9D | 0x9F
    )
}

/// Whether `code` is a valid v5 PUBACK or PUBREC reason code (§3.4.2.1, §3.5.2.1).
pub(crate) const fn puback_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
    )
}

/// Whether `code` is a valid v5 PUBREL or PUBCOMP reason code (§3.6.2.1, §3.7.2.1).
pub(crate) const fn pubrel_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x92)
}

/// Whether `code` is a valid v5 SUBACK reason code (§3.9.3).
pub(crate) const fn suback_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x01 | 0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
    )
}

/// Whether `code` is a valid v3 SUBACK return code (§3.9.3 of 3.1.1).
pub(crate) const fn suback_reason_v3(code: u8) -> bool {
    matches!(code, 0x00 | 0x01 | 0x02 | 0x80)
}

/// Whether `code` is a valid v5 UNSUBACK reason code (§3.11.3).
pub(crate) const fn unsuback_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
}

/// Whether `code` is a valid v5 DISCONNECT reason code (§3.14.2.1).
pub(crate) const fn disconnect_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x04
            | 0x80..=0x83
            | 0x87
            | 0x89
            | 0x8B
            | 0x8D..=0x90
            | 0x93..=0xA2
    )
}

/// Whether `code` is a valid AUTH reason code (§3.15.2.1).
pub(crate) const fn auth_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x18 | 0x19)
}
