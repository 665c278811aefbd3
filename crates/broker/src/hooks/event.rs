//! The events the broker emits: one variant per EMQX hook name, each carrying what its
//! webhook body needs.

use std::sync::Arc;

use hookmq_codec::{ByteString, QoS, ReasonCode, SubscriptionOptions};
use serde::{Deserialize, Serialize};

pub use super::client::ClientInfo;
use crate::message::{Message, PacketProperties, StaticName};

/// The decision of an authorization check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthzResult {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

impl AuthzResult {
    /// `allow` or `deny`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// What was being authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthzAction {
    /// A PUBLISH.
    Publish,
    /// A SUBSCRIBE.
    Subscribe,
}

impl AuthzAction {
    /// `publish` or `subscribe`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
        }
    }
}

/// Which event, without its data: the unit of interest and of selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventKind {
    /// `client.connected`
    ClientConnected = 0,
    /// `client.connack`
    ClientConnack,
    /// `client.disconnected`
    ClientDisconnected,
    /// `client.check_authn_complete`
    CheckAuthnComplete,
    /// `client.check_authz_complete`
    CheckAuthzComplete,
    /// `session.subscribed`
    SessionSubscribed,
    /// `session.unsubscribed`
    SessionUnsubscribed,
    /// `message.publish`
    MessagePublish,
    /// `message.delivered`
    MessageDelivered,
    /// `message.acked`
    MessageAcked,
    /// `message.dropped`
    MessageDropped,
    /// `delivery.dropped`
    DeliveryDropped,
    /// `alarm.activated`
    AlarmActivated,
    /// `alarm.deactivated`
    AlarmDeactivated,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 14] = [
        Self::ClientConnected,
        Self::ClientConnack,
        Self::ClientDisconnected,
        Self::CheckAuthnComplete,
        Self::CheckAuthzComplete,
        Self::SessionSubscribed,
        Self::SessionUnsubscribed,
        Self::MessagePublish,
        Self::MessageDelivered,
        Self::MessageAcked,
        Self::MessageDropped,
        Self::DeliveryDropped,
        Self::AlarmActivated,
        Self::AlarmDeactivated,
    ];

    /// EMQX's event name, e.g. `client.connected`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::ClientConnected => "client.connected",
            Self::ClientConnack => "client.connack",
            Self::ClientDisconnected => "client.disconnected",
            Self::CheckAuthnComplete => "client.check_authn_complete",
            Self::CheckAuthzComplete => "client.check_authz_complete",
            Self::SessionSubscribed => "session.subscribed",
            Self::SessionUnsubscribed => "session.unsubscribed",
            Self::MessagePublish => "message.publish",
            Self::MessageDelivered => "message.delivered",
            Self::MessageAcked => "message.acked",
            Self::MessageDropped => "message.dropped",
            Self::DeliveryDropped => "delivery.dropped",
            Self::AlarmActivated => "alarm.activated",
            Self::AlarmDeactivated => "alarm.deactivated",
        }
    }

    /// The kind named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this is a message event (filtered by topic).
    #[must_use]
    pub const fn is_message_event(self) -> bool {
        matches!(
            self,
            Self::MessagePublish
                | Self::MessageDelivered
                | Self::MessageAcked
                | Self::MessageDropped
                | Self::DeliveryDropped
        )
    }

    /// This kind's bit in an [`EventMask`].
    #[must_use]
    pub const fn bit(self) -> u32 {
        1 << self as u8
    }
}

/// A set of [`EventKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EventMask(pub u32);

impl EventMask {
    /// Every event.
    pub const ALL: Self = Self((1 << EventKind::ALL.len()) - 1);
    /// No event.
    pub const NONE: Self = Self(0);

    /// Whether `kind` is in the set.
    #[must_use]
    pub const fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The set plus `kind`.
    #[must_use]
    pub const fn with(self, kind: EventKind) -> Self {
        Self(self.0 | kind.bit())
    }
}

impl FromIterator<EventKind> for EventMask {
    fn from_iter<I: IntoIterator<Item = EventKind>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

/// An event with the time it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, ms since the epoch (`timestamp` in webhook bodies).
    pub timestamp: u64,
    /// What happened.
    pub data: EventData,
}

impl Event {
    /// Its kind.
    #[must_use]
    pub const fn kind(&self) -> EventKind {
        self.data.kind()
    }

    /// The client the event is about (for message events: the publisher for `publish` and
    /// `dropped`, the subscriber for `delivered`, `acked` and `delivery.dropped`).
    #[must_use]
    pub fn client_id(&self) -> &str {
        match (&self.data, self.client()) {
            (_, Some(client)) => &client.client_id,
            (
                EventData::MessagePublish { message } | EventData::MessageDropped { message, .. },
                None,
            ) => &message.publisher.client_id,
            // About no client: alarms take one lane, in order.
            _ => "",
        }
    }

    /// The client of a client event, or the subscriber of a delivery event (`None` for
    /// `message.publish`, `message.dropped` and alarms).
    #[must_use]
    pub fn client(&self) -> Option<&Arc<ClientInfo>> {
        match &self.data {
            EventData::ClientConnected { client }
            | EventData::ClientConnack { client, .. }
            | EventData::ClientDisconnected { client, .. }
            | EventData::CheckAuthnComplete { client, .. }
            | EventData::CheckAuthzComplete { client, .. }
            | EventData::SessionSubscribed { client, .. }
            | EventData::SessionUnsubscribed { client, .. }
            | EventData::MessageDelivered { client, .. }
            | EventData::MessageAcked { client, .. }
            | EventData::DeliveryDropped { client, .. } => Some(client),
            _ => None,
        }
    }

    /// The message's topic, for message events.
    #[must_use]
    pub fn topic(&self) -> Option<&str> {
        self.data.message().map(|m| &*m.topic)
    }
}

/// What happened, with the data its webhook body needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EventData {
    /// A client finished connecting (sent after authentication, before CONNACK).
    ClientConnected {
        /// The client.
        client: Arc<ClientInfo>,
    },
    /// A CONNACK was sent, successful or not.
    ClientConnack {
        /// The client (not yet connected when the code is a failure).
        client: Arc<ClientInfo>,
        /// The CONNACK's reason code (reported by its v5 name for every version).
        reason_code: ReasonCode,
    },
    /// A connected client went away.
    ClientDisconnected {
        /// The client.
        client: Arc<ClientInfo>,
        /// EMQX's reason name: `normal`, `kicked`, `keepalive_timeout`, `takenover`,
        /// `discarded`, `tcp_closed`, `protocol_error`, `malformed_packet`, ...
        #[serde(deserialize_with = "crate::message::static_name")]
        reason: StaticName,
        /// DISCONNECT properties sent by the client (v5).
        properties: PacketProperties,
        /// When, ms since the epoch.
        disconnected_at: u64,
    },
    /// Authentication decided.
    CheckAuthnComplete {
        /// The client.
        client: Arc<ClientInfo>,
        /// `success`, `not_authorized` or `bad_username_or_password`.
        reason_code: ReasonCode,
        /// Whether the client connected without a user name.
        is_anonymous: bool,
    },
    /// Authorization decided for a PUBLISH or a SUBSCRIBE.
    CheckAuthzComplete {
        /// The client.
        client: Arc<ClientInfo>,
        /// What was checked.
        action: AuthzAction,
        /// Topic name or filter.
        topic: ByteString,
        /// `file` (an ACL rule matched), `default` (the no-match setting decided) or `cache`
        /// (the connection's cache of earlier decisions answered).
        #[serde(deserialize_with = "crate::message::static_name")]
        source: StaticName,
        /// The decision.
        result: AuthzResult,
    },
    /// A subscription was made.
    SessionSubscribed {
        /// The client.
        client: Arc<ClientInfo>,
        /// The filter as the client wrote it (`$share/g/t` for shared subscriptions).
        filter: ByteString,
        /// Its options (QoS granted).
        options: SubscriptionOptions,
        /// SUBSCRIBE properties.
        properties: PacketProperties,
    },
    /// A subscription was removed.
    SessionUnsubscribed {
        /// The client.
        client: Arc<ClientInfo>,
        /// The filter.
        filter: ByteString,
        /// The QoS the subscription had.
        qos: QoS,
        /// UNSUBSCRIBE properties.
        properties: PacketProperties,
    },
    /// A client (or the broker, for wills) published a message.
    MessagePublish {
        /// The message.
        message: Arc<Message>,
    },
    /// A message was sent to a subscriber.
    MessageDelivered {
        /// The subscriber.
        client: Arc<ClientInfo>,
        /// The message.
        message: Arc<Message>,
        /// QoS it was sent with.
        qos: QoS,
    },
    /// A subscriber acknowledged a QoS 1 (PUBACK) or QoS 2 (PUBREC) message.
    MessageAcked {
        /// The subscriber.
        client: Arc<ClientInfo>,
        /// The message.
        message: Arc<Message>,
        /// QoS it was sent with.
        qos: QoS,
        /// Properties of the PUBACK/PUBREC.
        properties: PacketProperties,
    },
    /// A published message reached no subscriber, or was refused.
    MessageDropped {
        /// The message.
        message: Arc<Message>,
        /// `no_subscribers`, `receive_maximum_exceeded`, `packet_identifier_inuse`, ...
        #[serde(deserialize_with = "crate::message::static_name")]
        reason: StaticName,
    },
    /// A message could not be delivered to one subscriber.
    DeliveryDropped {
        /// The subscriber.
        client: Arc<ClientInfo>,
        /// The message.
        message: Arc<Message>,
        /// `queue_full`, `no_local`, `expired`, `qos0_msg`, `too_large`, ...
        #[serde(deserialize_with = "crate::message::static_name")]
        reason: StaticName,
    },
    /// An alarm became active (added last: journals written before it still decode).
    AlarmActivated {
        /// The alarm.
        alarm: Arc<AlarmEvent>,
    },
    /// An alarm cleared.
    AlarmDeactivated {
        /// The alarm, with the details and message of when it cleared.
        alarm: Arc<AlarmEvent>,
    },
}

/// An alarm as its events carry it (EMQX's `alarm.activated` / `alarm.deactivated`
/// columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// Its name.
    pub name: String,
    /// Its details, a JSON value as text (journals keep events in a binary format that
    /// does not carry free-form JSON).
    pub details: String,
    /// For people.
    pub message: String,
    /// When it was activated, µs since the epoch.
    pub activated_at: u64,
    /// When it was deactivated, µs since the epoch.
    pub deactivated_at: Option<u64>,
}

impl EventData {
    /// Its kind.
    #[must_use]
    pub const fn kind(&self) -> EventKind {
        match self {
            Self::ClientConnected { .. } => EventKind::ClientConnected,
            Self::ClientConnack { .. } => EventKind::ClientConnack,
            Self::ClientDisconnected { .. } => EventKind::ClientDisconnected,
            Self::CheckAuthnComplete { .. } => EventKind::CheckAuthnComplete,
            Self::CheckAuthzComplete { .. } => EventKind::CheckAuthzComplete,
            Self::SessionSubscribed { .. } => EventKind::SessionSubscribed,
            Self::SessionUnsubscribed { .. } => EventKind::SessionUnsubscribed,
            Self::MessagePublish { .. } => EventKind::MessagePublish,
            Self::MessageDelivered { .. } => EventKind::MessageDelivered,
            Self::MessageAcked { .. } => EventKind::MessageAcked,
            Self::MessageDropped { .. } => EventKind::MessageDropped,
            Self::DeliveryDropped { .. } => EventKind::DeliveryDropped,
            Self::AlarmActivated { .. } => EventKind::AlarmActivated,
            Self::AlarmDeactivated { .. } => EventKind::AlarmDeactivated,
        }
    }

    /// The message of a message event.
    #[must_use]
    pub fn message(&self) -> Option<&Arc<Message>> {
        match self {
            Self::MessagePublish { message }
            | Self::MessageDelivered { message, .. }
            | Self::MessageAcked { message, .. }
            | Self::MessageDropped { message, .. }
            | Self::DeliveryDropped { message, .. } => Some(message),
            _ => None,
        }
    }
}
