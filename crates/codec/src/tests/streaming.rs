//! Incomplete input, several packets in one buffer, and the maximum packet size.

use bytes::BytesMut;

use super::exact;
use crate::ProtocolVersion::{V3_1_1, V5};
use crate::{DecodeError, MAX_REMAINING_LENGTH, Packet, ProtocolVersion, decode};

/// The version to decode a case with: none for CONNECT (it comes first).
fn decode_version(packet: &Packet, version: ProtocolVersion) -> Option<ProtocolVersion> {
    if matches!(packet, Packet::Connect(_)) {
        None
    } else {
        Some(version)
    }
}

#[test]
fn every_proper_prefix_is_incomplete() {
    for (name, version, bytes, packet) in exact::all() {
        let version = decode_version(&packet, version);
        for len in 0..bytes.len() {
            let prefix = bytes.get(..len).expect("shorter than the packet");
            let mut buf = BytesMut::from(prefix);
            assert_eq!(
                decode(&mut buf, version, u32::MAX),
                Ok(None),
                "{name}: {len} bytes"
            );
            assert_eq!(&buf[..], prefix, "{name}: {len} bytes consumed");
        }
    }
}

#[test]
fn packets_back_to_back_decode_in_order() {
    for version in [ProtocolVersion::V3_1, V3_1_1, V5] {
        let cases: Vec<_> = exact::all()
            .into_iter()
            .filter(|(_, v, _, _)| *v == version)
            .collect();
        let mut buf = BytesMut::new();
        for (_, _, bytes, _) in &cases {
            buf.extend_from_slice(bytes);
        }
        // Half of a PINGREQ after them stays in the buffer.
        buf.extend_from_slice(&[0xC0]);
        for (name, _, _, packet) in &cases {
            let decoded = decode(&mut buf, Some(version), u32::MAX);
            assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())), "{name}");
        }
        assert_eq!(decode(&mut buf, Some(version), u32::MAX), Ok(None));
        assert_eq!(&buf[..], &[0xC0]);
    }
}

#[test]
fn bytes_arriving_one_at_a_time() {
    let cases: Vec<_> = exact::all()
        .into_iter()
        .filter(|(_, v, _, _)| *v == V5)
        .collect();
    let stream: Vec<u8> = cases
        .iter()
        .flat_map(|(_, _, bytes, _)| bytes.clone())
        .collect();
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for byte in stream {
        buf.extend_from_slice(&[byte]);
        while let Some(packet) = decode(&mut buf, Some(V5), u32::MAX).expect("valid stream") {
            decoded.push(packet);
        }
    }
    let expected: Vec<Packet> = cases.into_iter().map(|(_, _, _, packet)| packet).collect();
    assert_eq!(decoded, expected);
    assert!(buf.is_empty());
}

#[test]
fn empty_buffer_is_incomplete() {
    for version in [None, Some(V3_1_1), Some(V5)] {
        assert_eq!(decode(&mut BytesMut::new(), version, 0), Ok(None));
    }
}

#[test]
fn packet_too_large_from_the_fixed_header_alone() {
    // PUBLISH announcing the largest remaining length; no body has arrived.
    let header: &[u8] = &[0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    let mut buf = BytesMut::from(header);
    assert_eq!(
        decode(&mut buf, Some(V5), 1024),
        Err(DecodeError::PacketTooLarge {
            size: 5 + MAX_REMAINING_LENGTH,
            max: 1024
        })
    );
    assert_eq!(&buf[..], header, "nothing consumed");

    // A CONNECT as the first packet is checked the same way.
    let mut buf = BytesMut::from(&[0x10, 0x80, 0x01][..]);
    assert_eq!(
        decode(&mut buf, None, 100),
        Err(DecodeError::PacketTooLarge {
            size: 131,
            max: 100
        })
    );
    assert_eq!(
        DecodeError::PacketTooLarge {
            size: 131,
            max: 100
        }
        .reason_code(),
        crate::ReasonCode::PACKET_TOO_LARGE
    );
}

#[test]
fn packet_size_limit_is_inclusive() {
    // PUBLISH QoS 0, topic "t", payload "ab": 2 + 5 = 7 bytes.
    let packet: &[u8] = b"\x30\x05\x00\x01tab";
    let mut buf = BytesMut::from(packet);
    assert!(decode(&mut buf, Some(V3_1_1), 7).expect("fits").is_some());
    let mut buf = BytesMut::from(packet);
    assert_eq!(
        decode(&mut buf, Some(V3_1_1), 6),
        Err(DecodeError::PacketTooLarge { size: 7, max: 6 })
    );
}

#[test]
fn variable_integer_longer_than_four_bytes() {
    // Three continuation bytes: still incomplete.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80][..]);
    assert_eq!(decode(&mut buf, Some(V5), u32::MAX), Ok(None));
    // The fourth byte has the continuation bit: malformed before a fifth arrives.
    buf.extend_from_slice(&[0x80]);
    assert_eq!(
        decode(&mut buf, Some(V5), u32::MAX),
        Err(DecodeError::MalformedVariableInteger)
    );
    assert_eq!(buf.len(), 5, "nothing consumed");
}

#[test]
fn header_errors_come_from_the_first_byte() {
    // Only the first byte has arrived: its type and flags are already checked.
    let cases: [(Option<ProtocolVersion>, u8, DecodeError); 5] = [
        (None, 0x30, DecodeError::FirstPacketNotConnect),
        (Some(V5), 0x00, DecodeError::UnknownPacketType(0)),
        (Some(V3_1_1), 0xF0, DecodeError::UnknownPacketType(15)),
        (Some(V5), 0x36, DecodeError::InvalidQoS),
        (
            Some(V5),
            0x80,
            DecodeError::InvalidHeaderFlags {
                packet_type: 8,
                flags: 0,
            },
        ),
    ];
    for (version, first, error) in cases {
        let mut buf = BytesMut::from(&[first][..]);
        assert_eq!(decode(&mut buf, version, u32::MAX), Err(error));
        assert_eq!(&buf[..], &[first]);
    }
}
