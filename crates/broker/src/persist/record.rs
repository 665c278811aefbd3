//! What the broker keeps in its journal: one record per thing to remember, encoded as a
//! version byte and postcard. A record stays live until it is acknowledged (superseded by a
//! newer one, consumed or ended); recovery rebuilds the broker from the live ones.
//!
//! Records of a session name it by its number ([`SessionRecord::session_id`]), which is
//! unique across restarts: a record whose session is not live at recovery is garbage.

use std::sync::Arc;

use hookmq_codec::{ByteString, QoS, SubscriptionOptions, Will};
use serde::{Deserialize, Serialize};

use crate::{hooks::ClientInfo, message::Message};

/// The format of the records this version writes: 2 added the client's `is_superuser`,
/// `client_attrs` and `mountpoint` (format 1 is still read).
const VERSION: u8 = 2;

/// One thing the broker remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A session that outlives its connection, as of its last change.
    Session(Box<SessionRecord>),
    /// A QoS 1/2 message queued for (or sent to and not yet acknowledged by) a persistent
    /// session.
    Delivery(DeliveryRecord),
    /// The delivery `delivery` was sent with `packet_id`: after a restart it goes out again
    /// with the same id and DUP set, so the client can tell it is a duplicate.
    Sent { delivery: u64, packet_id: u16 },
    /// A QoS 2 message the session's client has received (PUBREC): only the PUBREL is owed.
    Released { session_id: u64, packet_id: u16 },
    /// A QoS 2 message received from the session's client and routed, waiting for PUBREL.
    AwaitingRelease { session_id: u64, packet_id: u16 },
    /// The retained message of its topic.
    Retained(Arc<Message>),
    /// The writer was alive at this time (ms since the epoch): after a crash, when the
    /// sessions that were connected lost their connection.
    Clock(u64),
}

/// A persistent session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// Unique across restarts (see [`crate::shared::Shared::next_session_id`]).
    pub(crate) session_id: u64,
    /// The client as of its last connection.
    pub(crate) client: Arc<ClientInfo>,
    /// Session expiry interval, seconds.
    pub(crate) expiry_interval: u32,
    /// Subscriptions by the filter the client wrote.
    pub(crate) subscriptions: Vec<SubscriptionEntry>,
    /// When the session lost its connection (ms since the epoch); `None` while connected.
    pub(crate) disconnected_at: Option<u64>,
    /// The will of the connection: published at `will_at` (ms since the epoch) once the
    /// connection is gone; while connected, `will_at` is `None` and the will waits for the
    /// connection to end.
    pub(crate) will: Option<StoredWill>,
}

/// A will kept with its session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredWill {
    /// The will as the client sent it.
    pub(crate) will: Will,
    /// Will delay interval, seconds.
    pub(crate) delay: u32,
    /// When it is due, once the connection is gone.
    pub(crate) due_at: Option<u64>,
}

/// One subscription of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubscriptionEntry {
    /// The filter as the client wrote it (`$share/g/f` included).
    pub(crate) filter: ByteString,
    /// Its options.
    pub(crate) options: SubscriptionOptions,
    /// Its identifier (v5).
    pub(crate) subscription_id: Option<u32>,
}

/// A message on its way to a persistent session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveryRecord {
    /// The session.
    pub(crate) session_id: u64,
    /// The message.
    pub(crate) message: Arc<Message>,
    /// QoS to send with.
    pub(crate) qos: QoS,
    /// Retain flag to send.
    pub(crate) retain: bool,
    /// The identifiers of the subscriptions it matched.
    pub(crate) subscription_ids: Vec<u32>,
}

/// Appends `record` to `out`.
///
/// # Errors
/// What postcard says (nothing the broker builds fails to encode).
pub(crate) fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    out.push(VERSION);
    let encoded = postcard::to_extend(record, std::mem::take(out));
    *out = encoded?;
    Ok(())
}

/// Reads a record written by [`encode`].
///
/// # Errors
/// An unknown version or undecodable bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
    match bytes.split_first() {
        Some((&VERSION, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
        Some((1, body)) => {
            crate::hooks::reading_format_1(|| postcard::from_bytes(body)).map_err(|e| e.to_string())
        }
        Some((version, _)) => Err(format!("record format {version} is not known")),
        None => Err("empty record".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_reads_back_whole_with_a_binary_payload() {
        let mut message = Message::for_test(7, "a/b", 0, QoS::ExactlyOnce);
        message.payload = bytes::Bytes::from_static(&[0, 255, 1, 254]);
        let record = Record::Delivery(DeliveryRecord {
            session_id: 42,
            message: Arc::new(message),
            qos: QoS::AtLeastOnce,
            retain: true,
            subscription_ids: vec![9, 4],
        });
        let mut out = vec![0xAA];
        encode(&record, &mut out).expect("encodes");
        assert_eq!(out[0], 0xAA, "appends");
        let Record::Delivery(read) = decode(&out[1..]).expect("decodes") else {
            panic!("a delivery")
        };
        assert_eq!(read.session_id, 42);
        assert_eq!(&read.message.payload[..], &[0, 255, 1, 254]);
        assert_eq!(read.message.topic, "a/b");
        assert_eq!(read.qos, QoS::AtLeastOnce);
        assert!(read.retain);
        assert_eq!(read.subscription_ids, [9, 4]);
        assert!(decode(&[9, 1, 2]).is_err(), "an unknown version is refused");
    }

    /// A session and a delivery as the previous version (format 1) wrote them
    /// (`tests/fixtures/format1/<n>.bin`, written by that version's own encoder, and `.dbg`,
    /// how it showed the record).
    #[test]
    fn records_the_previous_version_wrote_read_back() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
        for i in 0..2 {
            let bytes = std::fs::read(dir.join(format!("{i}.bin"))).expect("fixture");
            assert_eq!(bytes[0], 1, "format 1");
            let then = std::fs::read_to_string(dir.join(format!("{i}.dbg"))).expect("fixture");
            let record = decode(&bytes).expect("decodes");
            let now = format!("{record:?}")
                .replace(
                    ", is_superuser: false, client_attrs: [], mountpoint: None",
                    "",
                )
                .replace(", client_attrs: None }", " }");
            assert_eq!(now, then);
            let mut again = Vec::new();
            encode(&record, &mut again).expect("encodes");
            assert_eq!(again[0], 2, "written in format 2");
            let back = decode(&again).expect("format 2 decodes");
            assert_eq!(format!("{back:?}"), format!("{record:?}"));
        }
    }
}
