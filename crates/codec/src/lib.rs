//! # hookmq-codec
//!
//! The MQTT 3.1, 3.1.1 and 5.0 wire format, with no I/O and no runtime: bytes in, [`Packet`]s
//! out, and back.
//!
//! ## Layout
//! - [`packet`]: the version-neutral packet model ([`Packet`], [`Publish`], [`Connect`], ...).
//! - [`properties`]: MQTT 5 properties as one struct of optional fields.
//! - [`reason`]: reason codes with EMQX's names, and the v3 CONNACK mapping.
//! - [`error`]: decode errors, each naming its normative statement and its reason code.
//! - `decode` / `encode`: the wire format ([`decode`], [`encode`]).
//! - [`topic`]: topic name and filter validation, matching, `$share/` parsing.
//!
//! Topic names and payloads are [`bytes::Bytes`] slices of the read buffer: decoding a
//! PUBLISH copies neither, and a message can be shared by every subscriber it fans out to.

pub mod error;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod topic;

mod decode;
mod encode;
mod rules;

#[cfg(test)]
mod tests;

pub use bytestring::ByteString;
pub use decode::decode;
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::Properties;
pub use reason::ReasonCode;

/// The largest remaining length a fixed header can announce (spec §2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
