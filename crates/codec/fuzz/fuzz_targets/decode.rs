//! Feeds arbitrary bytes to `decode`, as the first packets of a connection (no version yet)
//! and as packets of an established 3.1.1 or 5.0 connection, until it needs more bytes or
//! fails. Every decoded packet must encode, `encoded_len` must match, and decoding that
//! encoding must give back the same packet (the decoder only yields valid packets, and the
//! encoder writes every field of a valid packet, so this must always hold).
#![no_main]

use bytes::BytesMut;
use hookmq_codec::{Packet, ProtocolVersion, decode, encode, encoded_len};
use libfuzzer_sys::fuzz_target;

fn check_round_trip(packet: &Packet, version: Option<ProtocolVersion>) {
    // A CONNECT is encoded with the version it carries; everything else with the
    // connection's version (only CONNECT decodes before the version is known).
    let encode_version = match packet {
        Packet::Connect(connect) => connect.protocol,
        _ => version.expect("only CONNECT decodes without a version"),
    };
    let mut out = BytesMut::new();
    let written = encode(packet, encode_version, &mut out).expect("a decoded packet encodes");
    assert_eq!(written, out.len(), "encode's return value");
    assert_eq!(
        encoded_len(packet, encode_version),
        out.len(),
        "encoded_len"
    );
    let encoded = out.clone();

    let again = decode(&mut out, version, u32::MAX)
        .expect("the encoding decodes")
        .expect("the encoding is complete");
    assert!(out.is_empty(), "the encoding is one packet");
    assert_eq!(&again, packet, "round trip");

    // The encoding is canonical: encoding the decoded copy gives the same bytes.
    let mut twice = BytesMut::new();
    encode(&again, encode_version, &mut twice).expect("encodes again");
    assert_eq!(twice, encoded, "encoding is deterministic");
}

fn run(data: &[u8], mut version: Option<ProtocolVersion>, max_packet_size: u32) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode(&mut buf, version, max_packet_size) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a packet consumes bytes");
                check_round_trip(&packet, version);
                if let (None, Packet::Connect(connect)) = (version, &packet) {
                    // Go on as the broker does once CONNECT has fixed the version.
                    version = Some(connect.protocol);
                }
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete packet consumes nothing");
                return;
            }
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run(data, None, u32::MAX);
    run(data, Some(ProtocolVersion::V3_1_1), u32::MAX);
    run(data, Some(ProtocolVersion::V5), u32::MAX);
    // A small limit exercises the maximum packet size check.
    run(data, Some(ProtocolVersion::V5), 64);
});
