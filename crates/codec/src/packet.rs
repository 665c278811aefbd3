//! The packets of MQTT 3.1, 3.1.1 and 5.0 as one version-neutral model.
//!
//! A v3 packet decodes into the same types as its v5 twin with empty [`Properties`] and
//! [`ReasonCode::SUCCESS`]; encoding for v3 drops what v3 cannot carry.

use bytes::Bytes;
use bytestring::ByteString;

use crate::{Properties, ReasonCode};

/// The protocol level carried in CONNECT.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1 = 3,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    #[default]
    V3_1_1 = 4,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5 = 5,
}

impl ProtocolVersion {
    /// The protocol level byte (3, 4 or 5).
    #[must_use]
    pub const fn level(self) -> u8 {
        self as u8
    }

    /// The protocol name sent in CONNECT (`MQIsdp` for 3.1, `MQTT` otherwise).
    #[must_use]
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 | Self::V5 => "MQTT",
        }
    }

    /// Whether this version carries properties and reason codes.
    #[must_use]
    pub const fn is_v5(self) -> bool {
        matches!(self, Self::V5)
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is not a QoS.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The numeric QoS (0, 1 or 2).
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// CONNECT (type 1), client to server.
    Connect(Box<Connect>),
    /// CONNACK (type 2), server to client.
    ConnAck(ConnAck),
    /// PUBLISH (type 3), both directions.
    Publish(Publish),
    /// PUBACK (type 4): QoS 1 acknowledgement.
    PubAck(PubResponse),
    /// PUBREC (type 5): QoS 2, step 1.
    PubRec(PubResponse),
    /// PUBREL (type 6): QoS 2, step 2.
    PubRel(PubResponse),
    /// PUBCOMP (type 7): QoS 2, step 3.
    PubComp(PubResponse),
    /// SUBSCRIBE (type 8), client to server.
    Subscribe(Subscribe),
    /// SUBACK (type 9), server to client.
    SubAck(SubAck),
    /// UNSUBSCRIBE (type 10), client to server.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (type 11), server to client.
    UnsubAck(UnsubAck),
    /// PINGREQ (type 12).
    PingReq,
    /// PINGRESP (type 13).
    PingResp,
    /// DISCONNECT (type 14), both directions in v5.
    Disconnect(Disconnect),
    /// AUTH (type 15), v5 only.
    Auth(Auth),
}

impl Packet {
    /// The packet's name as the specification writes it, for logs and errors.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "CONNECT",
            Self::ConnAck(_) => "CONNACK",
            Self::Publish(_) => "PUBLISH",
            Self::PubAck(_) => "PUBACK",
            Self::PubRec(_) => "PUBREC",
            Self::PubRel(_) => "PUBREL",
            Self::PubComp(_) => "PUBCOMP",
            Self::Subscribe(_) => "SUBSCRIBE",
            Self::SubAck(_) => "SUBACK",
            Self::Unsubscribe(_) => "UNSUBSCRIBE",
            Self::UnsubAck(_) => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect(_) => "DISCONNECT",
            Self::Auth(_) => "AUTH",
        }
    }
}

/// CONNECT: the first packet of every connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connect {
    /// Protocol version requested by the client.
    pub protocol: ProtocolVersion,
    /// Clean start (v5) / clean session (v3).
    pub clean_start: bool,
    /// Keep-alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// CONNECT properties (v5).
    pub properties: Properties,
    /// Client identifier; may be empty (the server then assigns one).
    pub client_id: String,
    /// The will message, if the will flag is set.
    pub will: Option<Will>,
    /// User name, if the user name flag is set.
    pub username: Option<String>,
    /// Password, if the password flag is set (binary data).
    pub password: Option<Bytes>,
}

/// The will message carried in CONNECT.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Will {
    /// Will topic (a topic name, no wildcards).
    pub topic: ByteString,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (v5): will delay, expiry, content type, ...
    pub properties: Properties,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnAck {
    /// Session present flag.
    pub session_present: bool,
    /// Reason code (v5 semantics; mapped to a v3 return code on encode).
    pub reason_code: ReasonCode,
    /// CONNACK properties (v5).
    pub properties: Properties,
}

/// PUBLISH: an application message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Publish {
    /// Duplicate delivery flag.
    pub dup: bool,
    /// Quality of service.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name; may be empty in v5 when a topic alias is used.
    pub topic: ByteString,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
    /// PUBLISH properties (v5).
    pub properties: Properties,
    /// Application payload.
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PubResponse {
    /// Packet identifier of the PUBLISH being acknowledged.
    pub packet_id: u16,
    /// Reason code (v5); success for v3.
    pub reason_code: ReasonCode,
    /// Properties (v5): reason string, user properties.
    pub properties: Properties,
}

impl PubResponse {
    /// A successful response for `packet_id`.
    #[must_use]
    pub fn new(packet_id: u16) -> Self {
        Self {
            packet_id,
            ..Self::default()
        }
    }
}

/// Retain handling option of a v5 subscription.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at subscribe time.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send retained messages only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: never send retained messages for this subscription.
    DoNotSend = 2,
}

/// The options byte of one subscription.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS granted.
    pub qos: QoS,
    /// v5 no-local: do not deliver the subscriber's own messages.
    pub no_local: bool,
    /// v5 retain-as-published: keep the retain flag when forwarding.
    pub retain_as_published: bool,
    /// v5 retain handling.
    pub retain_handling: RetainHandling,
}

/// One topic filter of SUBSCRIBE with its options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscriptionRequest {
    /// The topic filter, possibly `$share/group/filter`.
    pub filter: ByteString,
    /// The subscription options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// SUBSCRIBE properties (v5): subscription identifier, user properties.
    pub properties: Properties,
    /// At least one filter.
    pub subscriptions: Vec<SubscriptionRequest>,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// SUBACK properties (v5).
    pub properties: Properties,
    /// One reason code per filter (granted QoS 0/1/2 or a failure code).
    pub reason_codes: Vec<ReasonCode>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// UNSUBSCRIBE properties (v5): user properties.
    pub properties: Properties,
    /// At least one filter.
    pub filters: Vec<ByteString>,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// UNSUBACK properties (v5).
    pub properties: Properties,
    /// One reason code per filter (v5 only; empty for v3).
    pub reason_codes: Vec<ReasonCode>,
}

/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disconnect {
    /// Reason code (v5); normal disconnection for v3.
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (v5): session expiry, reason string, server reference.
    pub properties: Properties,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    #[must_use]
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: Properties::default(),
        }
    }
}

/// AUTH (v5 enhanced authentication).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Auth {
    /// Reason code: success, continue authentication or re-authenticate.
    pub reason_code: ReasonCode,
    /// AUTH properties: method, data, reason string, user properties.
    pub properties: Properties,
}
