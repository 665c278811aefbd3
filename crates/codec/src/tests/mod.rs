//! Wire-format tests over the whole codec: byte-exact packets, incomplete input, round trips.

use bytes::{Bytes, BytesMut};

use crate::{ByteString, DecodeError, Packet, ProtocolVersion, decode, encode, encoded_len};

mod exact;
mod roundtrip;
mod streaming;

/// A static topic or filter.
fn bs(s: &'static str) -> ByteString {
    ByteString::from_static(s)
}

/// Static binary data.
fn bin(b: &'static [u8]) -> Bytes {
    Bytes::from_static(b)
}

/// A user property pair.
fn up(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Decodes exactly one packet from `bytes`, requiring all of them to be used.
fn decode_all(
    bytes: &[u8],
    version: Option<ProtocolVersion>,
) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, version, u32::MAX)?;
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(packet)
}

/// Encodes `packet`, checking that `encoded_len` and the returned size agree with the output.
fn encode_checked(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let written = encode(packet, version, &mut buf).expect("encodes");
    assert_eq!(written, buf.len(), "encode's return value, {packet:?}");
    assert_eq!(
        encoded_len(packet, version),
        buf.len(),
        "encoded_len, {packet:?}"
    );
    buf.to_vec()
}
