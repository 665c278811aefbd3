//! How a journaled event is written: a format version byte, then in postcard (a compact,
//! documented binary serde format) the event's delivery id when it has one of its own (a
//! replayed dead letter keeps the `webhook-id` it had), and the event. The version lets a
//! later hookmq read what an earlier one wrote, or at least say why it cannot.

use hookmq_broker::{hooks::Event, message::MessageId};

/// The format written now.
const VERSION: u8 = 1;

/// Why a journaled event could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Written in a format this hookmq does not know (by a newer one?).
    #[error("an event in record format {0}, which this hookmq does not read")]
    Version(u8),
    /// The bytes do not decode.
    #[error("an event that does not decode: {0}")]
    Corrupt(String),
}

/// Appends `event`, with its own delivery id if it has one, to `out`.
///
/// # Errors
/// Only if serialization fails, which would be a bug (every field serializes).
pub fn encode(id: Option<MessageId>, event: &Event, out: &mut Vec<u8>) -> Result<(), RecordError> {
    out.push(VERSION);
    let written = postcard::to_extend(&(id, event), std::mem::take(out))
        .map_err(|e| RecordError::Corrupt(e.to_string()))?;
    *out = written;
    Ok(())
}

/// Reads an event written by [`encode`], with its own delivery id if it had one.
///
/// # Errors
/// [`RecordError`] for an unknown format or bytes that do not decode.
pub fn decode(bytes: &[u8]) -> Result<(Option<MessageId>, Event), RecordError> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| RecordError::Corrupt(e.to_string()))
        }
        Some((&other, _)) => Err(RecordError::Version(other)),
        None => Err(RecordError::Corrupt("no bytes".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hookmq_broker::{
        hooks::{EventData, EventKind},
        message::{Message, PacketProperties},
    };
    use hookmq_codec::Properties;

    use super::*;
    use crate::{
        render::{EmqxBody, RenderContext},
        samples::sample,
        spec::PayloadEncoding,
    };

    /// What a receiver gets for `event`: equal bodies mean nothing the webhook sends was lost.
    fn body(event: &Event) -> String {
        let context = RenderContext {
            node: "n@h",
            rule_id: "w",
            payload_encoding: PayloadEncoding::Base64,
        };
        serde_json::to_string(&EmqxBody { event, context }).expect("renders")
    }

    fn round_trip(event: &Event) -> Event {
        let mut bytes = Vec::new();
        encode(None, event, &mut bytes).expect("encodes");
        let (id, back) = decode(&bytes).expect("decodes");
        assert_eq!(id, None);
        back
    }

    #[test]
    fn every_event_reads_back_as_it_was_written() {
        for kind in EventKind::ALL {
            let event = sample(kind, "n@h");
            let back = round_trip(&event);
            assert_eq!(back.kind(), kind);
            assert_eq!(back.timestamp, event.timestamp);
            assert_eq!(body(&back), body(&event), "{}", kind.name());
        }
    }

    #[test]
    fn binary_payloads_properties_and_reasons_survive() {
        let mut event = sample(EventKind::MessagePublish, "n@h");
        let EventData::MessagePublish { message } = &event.data else {
            unreachable!("a publish sample")
        };
        let mut message = Message::clone(message);
        message.payload = bytes::Bytes::from_static(&[0, 159, 146, 150, 255]);
        message.properties = PacketProperties::from(Properties {
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            correlation_data: Some(bytes::Bytes::from_static(b"\x00\x01")),
            message_expiry_interval: Some(30),
            ..Properties::default()
        });
        event.data = EventData::MessageDropped {
            message: Arc::new(message),
            reason: "receive_maximum_exceeded",
        };
        let back = round_trip(&event);
        assert_eq!(body(&back), body(&event));
        let EventData::MessageDropped { message, reason } = &back.data else {
            panic!("{back:?}")
        };
        assert_eq!(&message.payload[..], &[0, 159, 146, 150, 255]);
        assert_eq!(*reason, "receive_maximum_exceeded");
    }

    #[test]
    fn unknown_formats_and_garbage_are_errors() {
        let mut bytes = Vec::new();
        let id = Some(MessageId(7 << 70));
        encode(id, &sample(EventKind::ClientConnected, "n"), &mut bytes).expect("encodes");
        assert_eq!(
            decode(&bytes).expect("decodes").0,
            id,
            "its own id comes back"
        );
        bytes[0] = 9;
        assert_eq!(
            decode(&bytes).expect_err("version"),
            RecordError::Version(9)
        );
        assert!(matches!(
            decode(&[VERSION, 200]),
            Err(RecordError::Corrupt(_))
        ));
        assert!(decode(&[]).is_err());
    }
}
