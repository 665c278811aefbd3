//! An application message as the broker routes it: decoded once, shared by every subscriber.

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use hookmq_codec::{ByteString, Properties, ProtocolVersion, QoS};
use serde::{Deserialize, Deserializer, Serialize};

/// Milliseconds since the Unix epoch, the unit of every timestamp in events.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Microseconds since the Unix epoch.
#[must_use]
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A name the broker keeps as a `&'static str` (a reason, a source). A type of its own so
/// that serde's derive does not take it for a string borrowed from the input: it is read
/// back with [`static_name`].
pub type StaticName = &'static str;

/// Deserializes one of the names the broker keeps as `&'static str` (a disconnect or drop
/// reason, an authorization source): the set is small and fixed, so each distinct name is
/// allocated once for the life of the process. Past [`STATIC_NAMES_KEPT`] distinct names
/// (which only a foreign writer could produce), further ones read as `unknown`.
///
/// # Errors
/// The deserializer's, when the value is not a string.
pub fn static_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(&*name) {
        return Ok(known);
    }
    if names.len() >= STATIC_NAMES_KEPT {
        return Ok("unknown");
    }
    let leaked: &'static str = Box::leak(name.into_owned().into_boxed_str());
    names.insert(leaked);
    Ok(leaked)
}

/// Distinct names [`static_name`] allocates at most.
pub const STATIC_NAMES_KEPT: usize = 1024;

/// A 128-bit message id in EMQX's layout: 64-bit µs timestamp, 48-bit node tag, 16-bit
/// sequence; rendered as 32 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub u128);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032X}", self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// Makes [`MessageId`]s: unique per node (the tag mixes the node name and process id) and
/// increasing in time.
#[derive(Debug)]
pub struct MessageIdGenerator {
    node_tag: u64,
    sequence: AtomicU16,
}

impl MessageIdGenerator {
    /// A generator for the node called `node_name`.
    #[must_use]
    pub fn new(node_name: &str) -> Self {
        // FNV-1a over the node name, then the pid, truncated to 48 bits.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in node_name.bytes().chain(std::process::id().to_be_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Self {
            node_tag: hash & 0xFFFF_FFFF_FFFF,
            sequence: AtomicU16::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> MessageId {
        let micros = now_micros();
        // Relaxed: the counter only needs to differ between ids made in the same microsecond.
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        MessageId(
            (u128::from(micros) << 64) | (u128::from(self.node_tag) << 16) | u128::from(sequence),
        )
    }
}

/// Who sent a message: enough for `from_clientid`, `from_username`, `peerhost` and no-local.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    /// The publishing client's id (empty for messages the broker makes itself).
    pub client_id: Arc<str>,
    /// Its user name, if any.
    pub username: Option<Arc<str>>,
    /// Its address, if it came over a network connection.
    pub peer: Option<SocketAddr>,
    /// The publishing session's unique number (for no-local); 0 for the broker.
    pub session_id: u64,
    /// Protocol version the publisher used.
    pub protocol: Option<ProtocolVersion>,
    /// The publishing client's attributes (for `message.publish` events), when it has some.
    /// Not part of the message's encoding (journals and other nodes do not get them); a
    /// webhook's event record keeps them beside the event.
    #[serde(skip)]
    pub client_attrs: Option<Arc<crate::hooks::ClientAttrs>>,
}

/// The properties of a packet as messages and events keep them: boxed, and only when the
/// packet had any (most have none), so a message or an event stays a few words to build,
/// move and free. Reads as [`Properties`] (empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacketProperties(Option<Box<Properties>>);

/// What an absent [`PacketProperties`] reads as.
static NO_PROPERTIES: Properties = Properties::EMPTY;

impl PacketProperties {
    /// A copy of `properties`; nothing is allocated when there are none.
    #[must_use]
    pub fn copy(properties: &Properties) -> Self {
        if properties.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(properties.clone())))
        }
    }
}

/// Serde for a [`PacketProperties`] field written as the [`Properties`] it reads as (the format
/// of fields that used to be plain `Properties`, so records written before read back).
pub mod properties_inline {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{PacketProperties, Properties};

    /// Writes the properties (empty when absent).
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(value: &PacketProperties, s: S) -> Result<S::Ok, S::Error> {
        Properties::serialize(value, s)
    }

    /// Reads properties.
    ///
    /// # Errors
    /// The deserializer's.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PacketProperties, D::Error> {
        Properties::deserialize(d).map(PacketProperties::from)
    }
}

impl From<Properties> for PacketProperties {
    fn from(properties: Properties) -> Self {
        if properties.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(properties)))
        }
    }
}

impl std::ops::Deref for PacketProperties {
    type Target = Properties;

    fn deref(&self) -> &Properties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

/// A routed message. Topic and payload are slices of the publisher's read buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// Unique id.
    pub id: MessageId,
    /// Topic name (never empty: aliases are resolved before routing).
    pub topic: ByteString,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
    /// DUP flag as received (reported in `flags.dup`).
    pub dup: bool,
    /// PUBLISH properties to forward (no topic alias, no subscription identifiers).
    pub properties: PacketProperties,
    /// The sender.
    pub publisher: Arc<Publisher>,
    /// When the broker received it, ms since the epoch.
    pub received_at: u64,
    /// When it expires (from Message Expiry Interval), if ever. A point in this process's
    /// clock: not kept when the message is stored.
    #[serde(skip)]
    pub expires_at: Option<Instant>,
}

/// The parts of a PUBLISH (or a will) that make a [`Message`].
#[derive(Debug, Clone)]
pub struct MessageParts {
    /// Topic name.
    pub topic: ByteString,
    /// Payload.
    pub payload: Bytes,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Properties to forward.
    pub properties: Properties,
}

impl Message {
    /// A message received now: stamps the receive time and the expiry from the Message
    /// Expiry Interval property.
    #[must_use]
    pub fn received(id: MessageId, parts: MessageParts, publisher: Arc<Publisher>) -> Self {
        let MessageParts {
            topic,
            payload,
            qos,
            retain,
            dup,
            properties,
        } = parts;
        Self {
            id,
            topic,
            payload,
            qos,
            retain,
            dup,
            expires_at: properties
                .message_expiry_interval
                .map(|s| Instant::now() + std::time::Duration::from_secs(s.into())),
            properties: PacketProperties::from(properties),
            publisher,
            received_at: now_ms(),
        }
    }

    /// Sets the expiry of a message read back from disk (where only its receive time and
    /// Message Expiry Interval are kept) on this process's clock.
    pub(crate) fn restore_expiry(&mut self) {
        self.expires_at = self.properties.message_expiry_interval.map(|secs| {
            let at_ms = self.received_at.saturating_add(u64::from(secs) * 1000);
            let left = at_ms.saturating_sub(now_ms());
            Instant::now() + std::time::Duration::from_millis(left)
        });
    }

    /// Whether the broker published it on a `$SYS` topic itself (`broker::sys`).
    #[must_use]
    pub fn is_sys(&self) -> bool {
        self.publisher.session_id == 0 && self.topic.starts_with("$SYS/")
    }

    /// Whether the message has expired at `now`.
    #[must_use]
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The message expiry interval left at `now`, in whole seconds (rounded up), if any.
    #[must_use]
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

#[cfg(test)]
impl Message {
    /// A message with id `id` on `topic` with `payload_len` zero bytes, from client `pub`,
    /// for unit tests.
    pub(crate) fn for_test(id: u128, topic: &str, payload_len: usize, qos: QoS) -> Self {
        Self::received(
            MessageId(id),
            MessageParts {
                topic: topic.into(),
                payload: Bytes::from(vec![0; payload_len]),
                qos,
                retain: false,
                dup: false,
                properties: Properties::default(),
            },
            Arc::new(Publisher {
                client_id: "pub".into(),
                username: None,
                peer: None,
                session_id: 2,
                protocol: None,
                client_attrs: None,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_connect_properties_read_what_plain_ones_wrote() {
        #[derive(Serialize)]
        struct Before {
            properties: Properties,
        }
        #[derive(Deserialize, Serialize)]
        struct Now {
            #[serde(with = "properties_inline")]
            properties: PacketProperties,
        }
        for expiry in [None, Some(7)] {
            let properties = Properties {
                session_expiry_interval: expiry,
                ..Properties::default()
            };
            let before = postcard::to_allocvec(&Before {
                properties: properties.clone(),
            })
            .expect("encodes");
            let now: Now = postcard::from_bytes(&before).expect("reads the old format");
            assert_eq!(*now.properties, properties);
            assert_eq!(postcard::to_allocvec(&now).expect("encodes"), before);
        }
    }

    #[test]
    fn ids_are_32_hex_digits_and_unique() {
        let ids = MessageIdGenerator::new("hookmq@127.0.0.1");
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
    }
}
