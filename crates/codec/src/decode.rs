//! Decoding: bytes to packets.
//!
//! [`decode`] reads the fixed header straight from the read buffer, checks the packet type,
//! its flags and the maximum packet size as soon as they are known, and only then waits for
//! the body. A complete packet is split off the buffer as one [`bytes::Bytes`] that topic
//! names, payloads and binary properties are sliced from, so they are never copied.
//!
//! Leniencies, on purpose:
//! - Variable byte integers need not be minimally encoded (`0x80 0x00` is read as 0), as
//!   most decoders do; longer than four bytes is still [`DecodeError::MalformedVariableInteger`].
//! - The reserved CONNECT flag is only checked for 3.1.1 and 5.0; MQTT 3.1 does not require it
//!   to be 0.
//! - A v5 AUTH with a remaining length of 1 (reason code, no property length) is accepted,
//!   as DISCONNECT allows.
//! - A CONNECT is always decoded with the protocol level it carries, whatever `version` says.

use bytes::BytesMut;

use crate::{DecodeError, Packet, ProtocolVersion};

mod packets;
mod properties;
mod reader;

use reader::Reader;

/// Packet type numbers (high nibble of the first byte).
pub(crate) mod packet_type {
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const CONNACK: u8 = 2;
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
    pub(crate) const SUBSCRIBE: u8 = 8;
    pub(crate) const SUBACK: u8 = 9;
    pub(crate) const UNSUBSCRIBE: u8 = 10;
    pub(crate) const UNSUBACK: u8 = 11;
    pub(crate) const PINGREQ: u8 = 12;
    pub(crate) const PINGRESP: u8 = 13;
    pub(crate) const DISCONNECT: u8 = 14;
    pub(crate) const AUTH: u8 = 15;
}

/// Decodes one packet from the front of `buf`.
///
/// - `version`: `None` before CONNECT (only CONNECT is accepted, and its protocol level picks
///   the version); `Some(v)` afterwards.
/// - `max_packet_size`: the largest packet (fixed header included) accepted; checked as soon
///   as the fixed header is complete, before the body is buffered.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet (nothing is consumed), and
/// `Ok(Some(packet))` after removing the packet's bytes from `buf`.
///
/// # Errors
/// A [`DecodeError`] naming the violated statement; the connection must then be closed.
/// Errors found in the fixed header leave `buf` untouched; errors found in the body come after
/// the packet's bytes were removed from `buf`.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_type_and_flags(first, version)?;

    let Some((remaining, header_len)) = remaining_length(buf)? else {
        return Ok(None);
    };
    let size = header_len + remaining;
    if size > usize::try_from(max_packet_size).unwrap_or(usize::MAX) {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }

    let frame = buf.split_to(size).freeze();
    let mut r = Reader::at(&frame, header_len);
    let packet = packets::decode_body(first, version, &mut r)?;
    r.finish()?;
    Ok(Some(packet))
}

/// Checks the first byte: a known packet type for `version`, with the flags it requires
/// (`[MQTT-2.1.3-1]`; for PUBLISH, a QoS below 3 and no DUP on QoS 0).
fn check_type_and_flags(first: u8, version: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    use packet_type::*;

    let packet_type = first >> 4;
    let flags = first & 0x0F;
    let Some(version) = version else {
        if packet_type != CONNECT {
            return Err(DecodeError::FirstPacketNotConnect);
        }
        return expect_flags(packet_type, flags, 0);
    };
    match packet_type {
        PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQoS);
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::DupWithQoS0);
            }
            Ok(())
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => expect_flags(packet_type, flags, 0b0010),
        AUTH if !version.is_v5() => Err(DecodeError::UnknownPacketType(packet_type)),
        CONNECT | CONNACK | PUBACK | PUBREC | PUBCOMP | SUBACK | UNSUBACK | PINGREQ | PINGRESP
        | DISCONNECT | AUTH => expect_flags(packet_type, flags, 0),
        _ => Err(DecodeError::UnknownPacketType(packet_type)),
    }
}

fn expect_flags(packet_type: u8, flags: u8, expected: u8) -> Result<(), DecodeError> {
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::InvalidHeaderFlags { packet_type, flags })
    }
}

/// Reads the remaining length after the first byte: `Some((remaining, header length))`, or
/// `None` while the variable byte integer is incomplete.
fn remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in buf.iter().skip(1).take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 2)));
        }
        if i == 3 {
            return Err(DecodeError::MalformedVariableInteger);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
