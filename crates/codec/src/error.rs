//! Decode and encode errors. Each protocol violation names the normative statement it breaks
//! and maps to the reason code a server sends in CONNACK or DISCONNECT.

use crate::ReasonCode;

/// Why bytes could not be decoded into a packet. After any of these the connection must close
/// (v5: after a DISCONNECT or CONNACK carrying [`DecodeError::reason_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A variable byte integer longer than four bytes.
    #[error("[MQTT-1.5.5-1] variable byte integer is longer than 4 bytes")]
    MalformedVariableInteger,
    /// The packet is larger than the receiver's maximum packet size.
    #[error("[MQTT-3.1.2-24] packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge {
        /// Total packet size in bytes (fixed header included).
        size: usize,
        /// The limit in force.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) outside MQTT 5.
    #[error("[MQTT-2.1.2] reserved or unknown packet type {0}")]
    UnknownPacketType(u8),
    /// The low nibble of the fixed header is not what the packet type requires.
    #[error("[MQTT-2.1.3-1] invalid fixed header flags 0x{flags:X} for packet type {packet_type}")]
    InvalidHeaderFlags {
        /// The packet type (high nibble).
        packet_type: u8,
        /// The flags (low nibble).
        flags: u8,
    },
    /// The body ended before a field it announced, or had bytes left over.
    #[error("[MQTT-2.1.4] remaining length does not match the packet's content")]
    LengthMismatch,
    /// A UTF-8 string field is not well-formed UTF-8.
    #[error("[MQTT-1.5.4-1] string is not well-formed UTF-8")]
    InvalidUtf8,
    /// A UTF-8 string contains U+0000.
    #[error("[MQTT-1.5.4-2] string contains the null character U+0000")]
    NullCharacter,
    /// The first packet on a connection is not CONNECT.
    #[error("[MQTT-3.1.0-1] the first packet from the client must be CONNECT")]
    FirstPacketNotConnect,
    /// CONNECT names a protocol other than `MQTT` / `MQIsdp`.
    #[error("[MQTT-3.1.2-1] unknown protocol name")]
    InvalidProtocolName,
    /// CONNECT carries a protocol level this server does not speak.
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// The reserved bit of the CONNECT flags is set.
    #[error("[MQTT-3.1.2-3] reserved CONNECT flag is set")]
    ConnectReservedFlag,
    /// Will QoS or will retain set without the will flag, or will QoS 3.
    #[error("[MQTT-3.1.2-11] invalid will flags")]
    InvalidWillFlags,
    /// Password flag set without the user name flag (3.1.1).
    #[error("[MQTT-3.1.2-22] password flag set without user name flag")]
    PasswordWithoutUsername,
    /// PUBLISH with both QoS bits set.
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    InvalidQoS,
    /// PUBLISH with DUP set and QoS 0.
    #[error("[MQTT-3.3.1-2] DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    /// PUBLISH topic name containing `+` or `#`.
    #[error("[MQTT-3.3.2-2] PUBLISH topic name contains a wildcard character")]
    WildcardInTopicName,
    /// PUBLISH with an empty topic and no topic alias.
    #[error("[MQTT-4.7.3-1] PUBLISH topic name is empty")]
    EmptyTopicName,
    /// A packet identifier of 0 where one is required.
    #[error("[MQTT-2.2.1-3] packet identifier must be non-zero")]
    ZeroPacketId,
    /// SUBSCRIBE without any topic filter.
    #[error("[MQTT-3.8.3-2] SUBSCRIBE carries no topic filter")]
    EmptySubscribe,
    /// UNSUBSCRIBE without any topic filter.
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE carries no topic filter")]
    EmptyUnsubscribe,
    /// Reserved bits of a subscription options byte are set.
    #[error("[MQTT-3.8.3-5] reserved bits of the subscription options are set")]
    SubscriptionOptionsReserved,
    /// Retain handling 3, or subscription QoS 3.
    #[error("[MQTT-3.8.3-4] invalid subscription QoS or retain handling")]
    InvalidSubscriptionOptions,
    /// A property identifier the specification does not define.
    #[error("[MQTT-2.2.2-1] unknown property identifier 0x{0:02X}")]
    UnknownProperty(u8),
    /// A property that this packet may not carry.
    #[error("[MQTT-2.2.2-2] property 0x{property:02X} is not allowed in {packet}")]
    PropertyNotAllowed {
        /// The property identifier.
        property: u8,
        /// The packet's name.
        packet: &'static str,
    },
    /// A property that may appear once appears twice.
    #[error("[MQTT-2.2.2-2] property 0x{0:02X} appears more than once")]
    DuplicateProperty(u8),
    /// A property value outside its allowed range (e.g. receive maximum 0, topic alias 0).
    #[error("[MQTT-3.1.2-25] invalid value for property 0x{0:02X}")]
    InvalidPropertyValue(u8),
    /// CONNACK acknowledge flags with a reserved bit set, or Session Present set together with
    /// a failure reason code (`[MQTT-3.2.2-6]`).
    #[error("[MQTT-3.2.2-1] invalid CONNACK acknowledge flags 0x{0:02X}")]
    InvalidConnAckFlags(u8),
    /// A reason code not allowed in this packet.
    #[error("[MQTT-2.4] reason code 0x{code:02X} is not valid in {packet}")]
    InvalidReasonCode {
        /// The reason code byte.
        code: u8,
        /// The packet's name.
        packet: &'static str,
    },
}

impl DecodeError {
    /// The reason code to send before closing (CONNACK during CONNECT, DISCONNECT after).
    #[must_use]
    pub const fn reason_code(self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Self::InvalidProtocolName | Self::UnsupportedProtocolVersion(_) => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            Self::WildcardInTopicName => ReasonCode::TOPIC_NAME_INVALID,
            Self::FirstPacketNotConnect
            | Self::EmptyTopicName
            | Self::ZeroPacketId
            | Self::EmptySubscribe
            | Self::EmptyUnsubscribe
            | Self::InvalidSubscriptionOptions
            | Self::PropertyNotAllowed { .. }
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_) => ReasonCode::PROTOCOL_ERROR,
            Self::MalformedVariableInteger
            | Self::UnknownPacketType(_)
            | Self::InvalidHeaderFlags { .. }
            | Self::LengthMismatch
            | Self::InvalidUtf8
            | Self::NullCharacter
            | Self::ConnectReservedFlag
            | Self::InvalidWillFlags
            | Self::PasswordWithoutUsername
            | Self::InvalidQoS
            | Self::DupWithQoS0
            | Self::SubscriptionOptionsReserved
            | Self::UnknownProperty(_)
            | Self::InvalidConnAckFlags(_)
            | Self::InvalidReasonCode { .. } => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field longer than 65,535 bytes.
    #[error("[MQTT-1.5.4] string or binary field of {0} bytes exceeds 65535")]
    FieldTooLong(usize),
    /// The packet's remaining length exceeds 268,435,455 bytes.
    #[error("[MQTT-2.2.3] remaining length {0} exceeds 268435455")]
    PacketTooLarge(usize),
    /// A value too large for a variable byte integer (a subscription identifier above
    /// 268,435,455).
    #[error("[MQTT-1.5.5] value {0} does not fit a variable byte integer")]
    VariableIntegerTooLarge(u32),
    /// The packet does not exist in this protocol version (AUTH before v5).
    #[error("{0} cannot be encoded before MQTT 5")]
    NotInVersion(&'static str),
}
