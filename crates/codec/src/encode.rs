//! Encoding: packets to bytes.
//!
//! One generic description of each packet ([`packets::body`]) runs twice: over a [`Counter`]
//! that measures the remaining length and checks every field, then over a [`Writer`] into a
//! buffer reserved once. Property lists are measured once up front, and the writing pass only
//! writes them. So [`encoded_len`] and [`encode`] agree by construction, and nothing is
//! written unless the whole packet can be.
//!
//! Choices:
//! - Only the properties the packet type may carry (spec table 2-4) are written; the others
//!   set in [`crate::Properties`] are left out, like a will delay in a PUBLISH made from a
//!   will. Outside PUBLISH only the first subscription identifier is written.
//! - Properties are written in ascending identifier order; user properties and subscription
//!   identifiers keep their order.
//! - v5 short forms are used whenever allowed: PUBACK/PUBREC/PUBREL/PUBCOMP with success and
//!   no properties have a remaining length of 2 (3 with another reason code), DISCONNECT and
//!   AUTH with success and no properties 0 (1 with another reason code).

use bytes::{BufMut, BytesMut};

use crate::{EncodeError, MAX_REMAINING_LENGTH, Packet, ProtocolVersion};

mod packets;

/// Receives the encoded bytes: counts them ([`Counter`]) or writes them ([`Writer`]).
trait Sink {
    /// `true` for [`Counter`]: property lists measured beforehand are skipped, not walked.
    const COUNTING: bool;
    fn u8(&mut self, value: u8);
    fn u16(&mut self, value: u16);
    fn u32(&mut self, value: u32);
    fn slice(&mut self, bytes: &[u8]);
    /// A variable byte integer (§1.5.5).
    fn varint(&mut self, value: usize);
    /// Two byte length then the bytes (§1.5.4, §1.5.6).
    fn field(&mut self, bytes: &[u8]);
    /// Accounts for `len` bytes without walking them (counting only).
    fn skip(&mut self, len: usize);
}

/// Measures and validates.
#[derive(Debug, Default)]
struct Counter {
    len: usize,
    error: Option<EncodeError>,
}

impl Counter {
    fn fail(&mut self, error: EncodeError) {
        self.error.get_or_insert(error);
    }
}

impl Sink for Counter {
    const COUNTING: bool = true;

    fn u8(&mut self, _: u8) {
        self.len = self.len.saturating_add(1);
    }

    fn u16(&mut self, _: u16) {
        self.len = self.len.saturating_add(2);
    }

    fn u32(&mut self, _: u32) {
        self.len = self.len.saturating_add(4);
    }

    fn slice(&mut self, bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len());
    }

    fn varint(&mut self, value: usize) {
        if value > MAX_REMAINING_LENGTH {
            self.fail(EncodeError::VariableIntegerTooLarge(
                u32::try_from(value).unwrap_or(u32::MAX),
            ));
        }
        self.len = self.len.saturating_add(varint_len(value));
    }

    fn field(&mut self, bytes: &[u8]) {
        if bytes.len() > usize::from(u16::MAX) {
            self.fail(EncodeError::FieldTooLong(bytes.len()));
        }
        self.len = self.len.saturating_add(2).saturating_add(bytes.len());
    }

    fn skip(&mut self, len: usize) {
        self.len = self.len.saturating_add(len);
    }
}

/// Writes into a buffer that has room for the whole packet. Only used after a [`Counter`]
/// accepted the packet, so lengths fit their fields.
struct Writer<'a>(&'a mut BytesMut);

impl Sink for Writer<'_> {
    const COUNTING: bool = false;

    fn u8(&mut self, value: u8) {
        self.0.put_u8(value);
    }

    fn u16(&mut self, value: u16) {
        self.0.put_u16(value);
    }

    fn u32(&mut self, value: u32) {
        self.0.put_u32(value);
    }

    fn slice(&mut self, bytes: &[u8]) {
        self.0.put_slice(bytes);
    }

    fn varint(&mut self, mut value: usize) {
        loop {
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            if value == 0 {
                self.0.put_u8(byte);
                return;
            }
            self.0.put_u8(byte | 0x80);
        }
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0
            .put_u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX));
        self.0.put_slice(bytes);
    }

    fn skip(&mut self, _: usize) {}
}

/// The size of `value` as a variable byte integer.
const fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// What the counting pass learned about a packet.
#[derive(Debug, Default)]
struct Plan {
    /// Remaining length.
    remaining: usize,
    /// Content length of the packet's property list (v5), without its length prefix.
    props: usize,
    /// Content length of the will property list (v5 CONNECT).
    will_props: usize,
}

impl Plan {
    /// The whole packet's size.
    fn total(&self) -> usize {
        1 + varint_len(self.remaining) + self.remaining
    }
}

/// Measures `packet`; the error is the first field, value or size encode would refuse.
fn measure(packet: &Packet, version: ProtocolVersion) -> (Plan, Option<EncodeError>) {
    let mut counter = Counter::default();
    if matches!(packet, Packet::Auth(_)) && !version.is_v5() {
        counter.fail(EncodeError::NotInVersion("AUTH"));
        return (Plan::default(), counter.error);
    }
    let mut plan = Plan::default();
    if version.is_v5() {
        let (props, will_props) = packets::measure_properties(packet, &mut counter);
        plan.props = props;
        plan.will_props = will_props;
    }
    counter.len = 0;
    packets::body(&mut counter, packet, version, &plan);
    plan.remaining = counter.len;
    if plan.remaining > MAX_REMAINING_LENGTH {
        counter.fail(EncodeError::PacketTooLarge(plan.remaining));
    }
    (plan, counter.error)
}

/// Appends `packet` encoded for `version` to `buf` and returns the number of bytes written.
/// Fields that `version` cannot carry (properties and reason codes before v5) are left out.
///
/// # Errors
/// [`EncodeError`] when a field or the packet is too long, or the packet does not exist in
/// `version`; `buf` is then unchanged.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let (plan, error) = measure(packet, version);
    if let Some(error) = error {
        return Err(error);
    }
    let total = plan.total();
    buf.reserve(total);
    let mut w = Writer(buf);
    w.u8(packets::first_byte(packet));
    w.varint(plan.remaining);
    packets::body(&mut w, packet, version, &plan);
    Ok(total)
}

/// The number of bytes [`encode`] would write for `packet` (fixed header included).
///
/// For a packet that [`encode`] refuses because a field is too long, this is the size it would
/// have; for AUTH before v5 it is 0.
#[must_use]
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match measure(packet, version) {
        (_, Some(EncodeError::NotInVersion(_))) => 0,
        (plan, _) => plan.total(),
    }
}
