//! How a journaled event is written: a format version byte, then in postcard (a compact,
//! documented binary serde format) the event's delivery id when it has one of its own (a
//! replayed dead letter keeps the `webhook-id` it had), the event, and the publisher's
//! `client_attrs` for a `message.publish` (a message's own encoding leaves them out). The
//! version lets a later hookmq read what an earlier one wrote, or at least say why it
//! cannot: format 1 had no attributes, and its clients ended after `session_id`.

use std::sync::Arc;

use hookmq_broker::{
    hooks::{ClientAttrs, Event, EventData, reading_format_1},
    message::{Message, MessageId, Publisher},
};

/// The format written now.
const VERSION: u8 = 2;

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

/// Appends `event`, with its own delivery id if it has one, to `out`: in format 1 when it
/// fits (no client with the fields added since, no publisher's attributes), so a node of
/// an earlier version sharing a cluster's work queue still reads it; else in format 2.
///
/// # Errors
/// Only if serialization fails, which would be a bug (every field serializes).
pub fn encode(id: Option<MessageId>, event: &Event, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let attrs = match &event.data {
        EventData::MessagePublish { message } => message.publisher.client_attrs.as_deref(),
        _ => None,
    };
    let fits_format_1 = attrs.is_none() && event.client().is_none_or(|c| c.fits_format_1());
    let corrupt = |e: postcard::Error| RecordError::Corrupt(e.to_string());
    let written = if fits_format_1 {
        out.push(1);
        reading_format_1(|| postcard::to_extend(&(id, event), std::mem::take(out)))
    } else {
        out.push(VERSION);
        postcard::to_extend(&(id, event, attrs), std::mem::take(out))
    };
    *out = written.map_err(corrupt)?;
    Ok(())
}

/// Reads an event written by [`encode`] (or by a hookmq that wrote format 1), with its own
/// delivery id if it had one.
///
/// # Errors
/// [`RecordError`] for an unknown format or bytes that do not decode.
pub fn decode(bytes: &[u8]) -> Result<(Option<MessageId>, Event), RecordError> {
    let corrupt = |e: postcard::Error| RecordError::Corrupt(e.to_string());
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            let (id, mut event, attrs): (Option<MessageId>, Event, Option<ClientAttrs>) =
                postcard::from_bytes(rest).map_err(corrupt)?;
            if let (Some(attrs), EventData::MessagePublish { message }) = (attrs, &mut event.data) {
                *message = with_attrs(message, attrs);
            }
            Ok((id, event))
        }
        Some((1, rest)) => reading_format_1(|| postcard::from_bytes(rest)).map_err(corrupt),
        Some((&other, _)) => Err(RecordError::Version(other)),
        None => Err(RecordError::Corrupt("no bytes".into())),
    }
}

/// `message` with its publisher's attributes put back.
fn with_attrs(message: &Message, attrs: ClientAttrs) -> Arc<Message> {
    let publisher = Arc::new(Publisher {
        client_attrs: Some(Arc::new(attrs)),
        ..(*message.publisher).clone()
    });
    Arc::new(Message {
        publisher,
        ..message.clone()
    })
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

    /// Every event kind as the previous version (format 1) wrote it, with the body it
    /// rendered then (`tests/fixtures/format1/<n>.bin` and `.json`, written by that version's
    /// own encoder).
    #[test]
    fn events_the_previous_version_wrote_read_back_and_render_the_same() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let bytes = std::fs::read(dir.join(format!("{i}.bin"))).expect("fixture");
            assert_eq!(bytes[0], 1, "format 1");
            let then = std::fs::read_to_string(dir.join(format!("{i}.json"))).expect("fixture");
            let (id, event) = decode(&bytes).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(id, Some(MessageId(1000 + i as u128)));
            assert_eq!(event.kind(), kind);
            assert_eq!(body(&event), then, "{kind:?}");
            // Written again as format 1 (nothing in it needs format 2), byte for byte.
            let mut again = Vec::new();
            encode(id, &event, &mut again).expect("encodes");
            assert_eq!(again, bytes, "{kind:?}");
        }
    }

    #[test]
    fn an_event_with_the_new_fields_is_written_in_format_2() {
        let mut event = sample(EventKind::ClientConnected, "n@h");
        let EventData::ClientConnected { client } = &mut event.data else {
            panic!("connected")
        };
        let mut superuser = (**client).clone();
        superuser.is_superuser = true;
        *client = Arc::new(superuser);
        let mut bytes = Vec::new();
        encode(None, &event, &mut bytes).expect("encodes");
        assert_eq!(bytes[0], 2);
        let (_, back) = decode(&bytes).expect("decodes");
        assert_eq!(body(&back), body(&event));
        assert!(back.client().is_some_and(|c| c.is_superuser), "kept");
    }

    #[test]
    fn a_publishers_attributes_come_back_with_its_event() {
        let mut event = sample(EventKind::MessagePublish, "n@h");
        let EventData::MessagePublish { message } = &mut event.data else {
            panic!("a publish")
        };
        let attrs: ClientAttrs = vec![("group".into(), "g1".into())];
        *message = with_attrs(message, attrs.clone());
        let back = round_trip(&event);
        assert_eq!(body(&back), body(&event));
        assert!(
            body(&back).contains(r#""client_attrs":{"group":"g1"}"#),
            "{}",
            body(&back)
        );
    }
}
