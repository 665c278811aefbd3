//! A bounds-checked cursor over one packet's body.
//!
//! Every read checks the remaining length first; running past the end is
//! [`DecodeError::LengthMismatch`] (`[MQTT-2.1.4]`: the body is shorter than its content).

use bytes::Bytes;
use bytestring::ByteString;

use crate::DecodeError;

/// A cursor over `data[pos..end]`.
pub(super) struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data[start..]`.
    pub(super) fn at(data: &'a Bytes, start: usize) -> Self {
        Self {
            data,
            pos: start,
            end: data.len(),
        }
    }

    /// Bytes left before the end.
    pub(super) fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with `LengthMismatch` unless every byte has been read.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::LengthMismatch)
        }
    }

    /// Splits off a reader over the next `len` bytes and advances past them.
    pub(super) fn sub(&mut self, len: usize) -> Result<Reader<'a>, DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::LengthMismatch);
        }
        let start = self.pos;
        self.pos += len;
        Ok(Reader {
            data: self.data,
            pos: start,
            end: self.pos,
        })
    }

    /// The next `len` bytes, borrowed.
    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let data: &'a Bytes = self.data;
        if len > self.remaining() {
            return Err(DecodeError::LengthMismatch);
        }
        let start = self.pos;
        self.pos += len;
        data.get(start..self.pos).ok_or(DecodeError::LengthMismatch)
    }

    /// The next `len` bytes as a shared slice of the packet (no copy).
    pub(super) fn take_shared(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::LengthMismatch);
        }
        let start = self.pos;
        self.pos += len;
        Ok(self.data.slice(start..self.pos))
    }

    /// Everything left, as a shared slice (the PUBLISH payload).
    pub(super) fn rest_shared(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.end;
        if start >= self.end {
            Bytes::new()
        } else {
            self.data.slice(start..self.end)
        }
    }

    /// One byte.
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.take(1)? {
            [b] => Ok(*b),
            _ => Err(DecodeError::LengthMismatch),
        }
    }

    /// A big-endian two byte integer.
    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        match self.take(2)? {
            [a, b] => Ok(u16::from_be_bytes([*a, *b])),
            _ => Err(DecodeError::LengthMismatch),
        }
    }

    /// A big-endian four byte integer.
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        match self.take(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(DecodeError::LengthMismatch),
        }
    }

    /// A variable byte integer (§1.5.5). Non-minimal encodings are accepted.
    pub(super) fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4u32 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVariableInteger)
    }

    /// A two byte length followed by that many bytes, borrowed.
    pub(super) fn binary_ref(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// Binary data (§1.5.6) as a shared slice.
    pub(super) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take_shared(usize::from(len))
    }

    /// A UTF-8 encoded string (§1.5.4), borrowed.
    pub(super) fn str_ref(&mut self) -> Result<&'a str, DecodeError> {
        let raw = self.binary_ref()?;
        let text = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(text)
    }

    /// A UTF-8 encoded string, copied into a `String`.
    pub(super) fn string(&mut self) -> Result<String, DecodeError> {
        self.str_ref().map(str::to_owned)
    }

    /// A UTF-8 encoded string as a shared slice of the packet (no copy).
    pub(super) fn byte_string(&mut self) -> Result<ByteString, DecodeError> {
        let raw = self.binary()?;
        let text = ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        if text.as_bytes().contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(text)
    }
}
