//! Decoding of MQTT 5 property lists (§2.2.2).

use super::reader::Reader;
use crate::properties::id;
use crate::rules::PropertyContext;
use crate::{DecodeError, Properties};

/// Stores `value` in `slot`, rejecting a second occurrence.
fn set<T>(slot: &mut Option<T>, value: T, property: u8) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(property));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property whose only values are 0 and 1.
fn flag(r: &mut Reader<'_>, property: u8) -> Result<u8, DecodeError> {
    match r.u8()? {
        value @ (0 | 1) => Ok(value),
        _ => Err(DecodeError::InvalidPropertyValue(property)),
    }
}

/// A two byte property that may not be 0.
fn non_zero_u16(r: &mut Reader<'_>, property: u8) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(property)),
        value => Ok(value),
    }
}

/// Reads the property length and the properties that follow, checking each against what
/// `ctx` may carry.
pub(super) fn read(r: &mut Reader<'_>, ctx: PropertyContext) -> Result<Properties, DecodeError> {
    let len = r.varint()?;
    let mut props = Properties::default();
    if len == 0 {
        return Ok(props);
    }
    let len = usize::try_from(len).map_err(|_| DecodeError::LengthMismatch)?;
    let mut p = r.sub(len)?;
    while !p.is_empty() {
        read_one(&mut p, ctx, &mut props)?;
    }
    Ok(props)
}

fn read_one(
    p: &mut Reader<'_>,
    ctx: PropertyContext,
    props: &mut Properties,
) -> Result<(), DecodeError> {
    // The identifier is a variable byte integer, but every defined one fits in one byte;
    // a byte with the continuation bit names no defined property.
    let property = p.u8()?;
    if !is_known(property) {
        return Err(DecodeError::UnknownProperty(property));
    }
    if !ctx.allows(property) {
        return Err(DecodeError::PropertyNotAllowed {
            property,
            packet: ctx.name(),
        });
    }
    match property {
        id::PAYLOAD_FORMAT_INDICATOR => {
            let value = flag(p, property)?;
            set(&mut props.payload_format_indicator, value, property)
        }
        id::MESSAGE_EXPIRY_INTERVAL => {
            let value = p.u32()?;
            set(&mut props.message_expiry_interval, value, property)
        }
        id::CONTENT_TYPE => {
            let value = p.string()?;
            set(&mut props.content_type, value, property)
        }
        id::RESPONSE_TOPIC => {
            let value = p.string()?;
            // [MQTT-3.3.2-14]: a topic name, so neither empty nor with wildcards.
            if value.is_empty() || value.contains(['+', '#']) {
                return Err(DecodeError::InvalidPropertyValue(property));
            }
            set(&mut props.response_topic, value, property)
        }
        id::CORRELATION_DATA => {
            let value = p.binary()?;
            set(&mut props.correlation_data, value, property)
        }
        id::SUBSCRIPTION_IDENTIFIER => {
            let value = p.varint()?;
            if value == 0 {
                return Err(DecodeError::InvalidPropertyValue(property));
            }
            if !props.subscription_identifiers.is_empty() && !ctx.repeats_subscription_id() {
                return Err(DecodeError::DuplicateProperty(property));
            }
            props.subscription_identifiers.push(value);
            Ok(())
        }
        id::SESSION_EXPIRY_INTERVAL => {
            let value = p.u32()?;
            set(&mut props.session_expiry_interval, value, property)
        }
        id::ASSIGNED_CLIENT_IDENTIFIER => {
            let value = p.string()?;
            set(&mut props.assigned_client_identifier, value, property)
        }
        id::SERVER_KEEP_ALIVE => {
            let value = p.u16()?;
            set(&mut props.server_keep_alive, value, property)
        }
        id::AUTHENTICATION_METHOD => {
            let value = p.string()?;
            set(&mut props.authentication_method, value, property)
        }
        id::AUTHENTICATION_DATA => {
            let value = p.binary()?;
            set(&mut props.authentication_data, value, property)
        }
        id::REQUEST_PROBLEM_INFORMATION => {
            let value = flag(p, property)?;
            set(&mut props.request_problem_information, value, property)
        }
        id::WILL_DELAY_INTERVAL => {
            let value = p.u32()?;
            set(&mut props.will_delay_interval, value, property)
        }
        id::REQUEST_RESPONSE_INFORMATION => {
            let value = flag(p, property)?;
            set(&mut props.request_response_information, value, property)
        }
        id::RESPONSE_INFORMATION => {
            let value = p.string()?;
            set(&mut props.response_information, value, property)
        }
        id::SERVER_REFERENCE => {
            let value = p.string()?;
            set(&mut props.server_reference, value, property)
        }
        id::REASON_STRING => {
            let value = p.string()?;
            set(&mut props.reason_string, value, property)
        }
        id::RECEIVE_MAXIMUM => {
            let value = non_zero_u16(p, property)?;
            set(&mut props.receive_maximum, value, property)
        }
        id::TOPIC_ALIAS_MAXIMUM => {
            let value = p.u16()?;
            set(&mut props.topic_alias_maximum, value, property)
        }
        id::TOPIC_ALIAS => {
            let value = non_zero_u16(p, property)?;
            set(&mut props.topic_alias, value, property)
        }
        id::MAXIMUM_QOS => {
            let value = flag(p, property)?;
            set(&mut props.maximum_qos, value, property)
        }
        id::RETAIN_AVAILABLE => {
            let value = flag(p, property)?;
            set(&mut props.retain_available, value, property)
        }
        id::USER_PROPERTY => {
            let key = p.string()?;
            let value = p.string()?;
            props.user_properties.push((key, value));
            Ok(())
        }
        id::MAXIMUM_PACKET_SIZE => {
            let value = p.u32()?;
            if value == 0 {
                return Err(DecodeError::InvalidPropertyValue(property));
            }
            set(&mut props.maximum_packet_size, value, property)
        }
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
            let value = flag(p, property)?;
            set(&mut props.wildcard_subscription_available, value, property)
        }
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            let value = flag(p, property)?;
            set(
                &mut props.subscription_identifier_available,
                value,
                property,
            )
        }
        id::SHARED_SUBSCRIPTION_AVAILABLE => {
            let value = flag(p, property)?;
            set(&mut props.shared_subscription_available, value, property)
        }
        _ => Err(DecodeError::UnknownProperty(property)),
    }
}

/// Whether the specification defines property `property`.
const fn is_known(property: u8) -> bool {
    matches!(
        property,
        0x01..=0x03
            | 0x08
            | 0x09
            | 0x0B
            | 0x11..=0x13
            | 0x15..=0x1A
            | 0x1C
            | 0x1F
            | 0x21..=0x2A
    )
}
