//! MQTT 5 properties (spec §2.2.2.2) as one struct of optional fields.
//!
//! One type serves every packet; the decoder rejects a property that the packet being
//! decoded may not carry (`[MQTT-2.2.2-2]`-style protocol errors) and one that appears
//! twice where the spec allows it once.

use bytes::Bytes;

/// Property identifiers (spec §2.2.2.2, table 2-4).
#[allow(missing_docs)]
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// The properties of one v5 packet; every field is absent unless the packet carried it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// 0x01: 0 = unspecified bytes, 1 = UTF-8 payload.
    pub payload_format_indicator: Option<u8>,
    /// 0x02: message lifetime in seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03: MIME type of the payload.
    pub content_type: Option<String>,
    /// 0x08: topic for a response.
    pub response_topic: Option<String>,
    /// 0x09: binary correlation data for request/response.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: subscription identifiers (several in a forwarded PUBLISH, one in SUBSCRIBE).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: session expiry in seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12: client identifier assigned by the server.
    pub assigned_client_identifier: Option<String>,
    /// 0x13: keep-alive imposed by the server, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15: enhanced authentication method.
    pub authentication_method: Option<String>,
    /// 0x16: enhanced authentication data.
    pub authentication_data: Option<Bytes>,
    /// 0x17: whether the client wants reason strings and user properties on failures.
    pub request_problem_information: Option<u8>,
    /// 0x18: will delay in seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19: whether the client asks for response information.
    pub request_response_information: Option<u8>,
    /// 0x1A: response information (basis of a response topic).
    pub response_information: Option<String>,
    /// 0x1C: another server to use.
    pub server_reference: Option<String>,
    /// 0x1F: human-readable reason.
    pub reason_string: Option<String>,
    /// 0x21: receive maximum (in-flight QoS 1/2 window).
    pub receive_maximum: Option<u16>,
    /// 0x22: highest topic alias accepted.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: topic alias of this PUBLISH.
    pub topic_alias: Option<u16>,
    /// 0x24: maximum QoS the server supports.
    pub maximum_qos: Option<u8>,
    /// 0x25: whether retained messages are supported.
    pub retain_available: Option<u8>,
    /// 0x26: user properties, in order, duplicates allowed.
    pub user_properties: Vec<(String, String)>,
    /// 0x27: largest packet the sender accepts.
    pub maximum_packet_size: Option<u32>,
    /// 0x28: whether wildcard subscriptions are supported.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29: whether subscription identifiers are supported.
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A: whether shared subscriptions are supported.
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// No property set (what `Properties::default()` returns), usable in a `static`.
    pub const EMPTY: Self = Self {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };

    /// Whether no property is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::EMPTY
    }
}
