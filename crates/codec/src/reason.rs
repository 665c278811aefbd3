//! MQTT 5 reason codes (spec §2.4) with EMQX's snake_case names, and the v3 CONNACK mapping.

use std::fmt;

/// A reason code byte. v3 packets carry the equivalent v5 code in this model.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        impl ReasonCode {
            $(
                #[doc = concat!("`", $text, "` (", stringify!($value), ").")]
                pub const $name: Self = Self($value);
            )*

            /// EMQX's name of this code (`emqx_reason_codes:name/1`), e.g. `success`,
            /// `not_authorized`; unknown codes are `unknown_error`.
            ///
            /// Codes that share a byte (0x00, 0x01, 0x02, 0x04, 0x10, 0x11) get the
            /// name of their most common meaning; see [`ReasonCode::disconnect_name`].
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => "unknown_error",
                }
            }
        }
    };
}

reason_codes! {
    SUCCESS = 0x00, "success";
    GRANTED_QOS_1 = 0x01, "granted_qos1";
    GRANTED_QOS_2 = 0x02, "granted_qos2";
    DISCONNECT_WITH_WILL = 0x04, "disconnect_with_will_message";
    NO_MATCHING_SUBSCRIBERS = 0x10, "no_matching_subscribers";
    NO_SUBSCRIPTION_EXISTED = 0x11, "no_subscription_existed";
    CONTINUE_AUTHENTICATION = 0x18, "continue_authentication";
    REAUTHENTICATE = 0x19, "re_authenticate";
    UNSPECIFIED_ERROR = 0x80, "unspecified_error";
    MALFORMED_PACKET = 0x81, "malformed_packet";
    PROTOCOL_ERROR = 0x82, "protocol_error";
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "implementation_specific_error";
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "unsupported_protocol_version";
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "client_identifier_not_valid";
    BAD_USERNAME_OR_PASSWORD = 0x86, "bad_username_or_password";
    NOT_AUTHORIZED = 0x87, "not_authorized";
    SERVER_UNAVAILABLE = 0x88, "server_unavailable";
    SERVER_BUSY = 0x89, "server_busy";
    BANNED = 0x8A, "banned";
    SERVER_SHUTTING_DOWN = 0x8B, "server_shutting_down";
    BAD_AUTHENTICATION_METHOD = 0x8C, "bad_authentication_method";
    KEEP_ALIVE_TIMEOUT = 0x8D, "keepalive_timeout";
    SESSION_TAKEN_OVER = 0x8E, "session_taken_over";
    TOPIC_FILTER_INVALID = 0x8F, "topic_filter_invalid";
    TOPIC_NAME_INVALID = 0x90, "topic_name_invalid";
    PACKET_IDENTIFIER_IN_USE = 0x91, "packet_identifier_inuse";
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "packet_identifier_not_found";
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "receive_maximum_exceeded";
    TOPIC_ALIAS_INVALID = 0x94, "topic_alias_invalid";
    PACKET_TOO_LARGE = 0x95, "packet_too_large";
    MESSAGE_RATE_TOO_HIGH = 0x96, "message_rate_too_high";
    QUOTA_EXCEEDED = 0x97, "quota_exceeded";
    ADMINISTRATIVE_ACTION = 0x98, "administrative_action";
    PAYLOAD_FORMAT_INVALID = 0x99, "payload_format_invalid";
    RETAIN_NOT_SUPPORTED = 0x9A, "retain_not_supported";
    QOS_NOT_SUPPORTED = 0x9B, "qos_not_supported";
    USE_ANOTHER_SERVER = 0x9C, "use_another_server";
    SERVER_MOVED = 0x9D, "server_moved";
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "shared_subscriptions_not_supported";
    CONNECTION_RATE_EXCEEDED = 0x9F, "connection_rate_exceeded";
    MAXIMUM_CONNECT_TIME = 0xA0, "maximum_connect_time";
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "subscription_identifiers_not_supported";
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "wildcard_subscriptions_not_supported";
}

impl ReasonCode {
    /// `Normal disconnection` (0x00) in DISCONNECT.
    pub const NORMAL_DISCONNECTION: Self = Self(0x00);
    /// `Granted QoS 0` (0x00) in SUBACK.
    pub const GRANTED_QOS_0: Self = Self(0x00);

    /// Whether the code reports a failure (0x80 and above).
    #[must_use]
    pub const fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The name in a DISCONNECT context, where 0x00 means `normal_disconnection`.
    #[must_use]
    pub const fn disconnect_name(self) -> &'static str {
        match self.0 {
            0x00 => "normal_disconnection",
            _ => self.name(),
        }
    }

    /// The MQTT 3.1/3.1.1 CONNACK return code (§3.2.2.3) closest to this v5 code.
    #[must_use]
    pub const fn to_v3_connack(self) -> u8 {
        match self.0 {
            0x00 => 0,
            0x84 => 1,
            0x85 => 2,
            0x88 | 0x89 | 0x8B | 0x9C | 0x9D | 0x9F => 3,
            0x86 => 4,
            _ => 5,
        }
    }

    /// The v5 code equivalent to a v3 CONNACK return code, or `None` for 6..=255.
    #[must_use]
    pub const fn from_v3_connack(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::SUCCESS),
            1 => Some(Self::UNSUPPORTED_PROTOCOL_VERSION),
            2 => Some(Self::CLIENT_IDENTIFIER_NOT_VALID),
            3 => Some(Self::SERVER_UNAVAILABLE),
            4 => Some(Self::BAD_USERNAME_OR_PASSWORD),
            5 => Some(Self::NOT_AUTHORIZED),
            _ => None,
        }
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReasonCode(0x{:02X} {})", self.0, self.name())
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_emqx() {
        assert_eq!(ReasonCode::SUCCESS.name(), "success");
        assert_eq!(ReasonCode::NOT_AUTHORIZED.name(), "not_authorized");
        assert_eq!(
            ReasonCode::PACKET_IDENTIFIER_IN_USE.name(),
            "packet_identifier_inuse"
        );
        assert_eq!(ReasonCode(0x7F).name(), "unknown_error");
    }

    #[test]
    fn v3_connack_round_trips() {
        for code in 0..=5 {
            let v5 = ReasonCode::from_v3_connack(code).expect("0..=5 are v3 return codes");
            assert_eq!(v5.to_v3_connack(), code);
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
    }
}
