//! Decoding of each packet's variable header and payload.

use super::packet_type::*;
use super::properties;
use super::reader::Reader;
use crate::rules::{self, PropertyContext};
use crate::{
    Auth, ConnAck, Connect, DecodeError, Disconnect, Packet, Properties, ProtocolVersion,
    PubResponse, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions,
    SubscriptionRequest, UnsubAck, Unsubscribe, Will,
};

/// Decodes the body of a packet whose first byte `first` has already been validated.
pub(super) fn decode_body(
    first: u8,
    version: Option<ProtocolVersion>,
    r: &mut Reader<'_>,
) -> Result<Packet, DecodeError> {
    let packet_type = first >> 4;
    if packet_type == CONNECT {
        return connect(r).map(|c| Packet::Connect(Box::new(c)));
    }
    let Some(version) = version else {
        return Err(DecodeError::FirstPacketNotConnect);
    };
    let v5 = version.is_v5();
    Ok(match packet_type {
        CONNACK => Packet::ConnAck(connack(r, v5)?),
        PUBLISH => Packet::Publish(publish(first & 0x0F, r, v5)?),
        PUBACK => Packet::PubAck(pub_response(r, v5, "PUBACK", rules::puback_reason)?),
        PUBREC => Packet::PubRec(pub_response(r, v5, "PUBREC", rules::puback_reason)?),
        PUBREL => Packet::PubRel(pub_response(r, v5, "PUBREL", rules::pubrel_reason)?),
        PUBCOMP => Packet::PubComp(pub_response(r, v5, "PUBCOMP", rules::pubrel_reason)?),
        SUBSCRIBE => Packet::Subscribe(subscribe(r, v5)?),
        SUBACK => Packet::SubAck(suback(r, v5)?),
        UNSUBSCRIBE => Packet::Unsubscribe(unsubscribe(r, v5)?),
        UNSUBACK => Packet::UnsubAck(unsuback(r, v5)?),
        PINGREQ => Packet::PingReq,
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect(disconnect(r, v5)?),
        AUTH if v5 => Packet::Auth(auth(r)?),
        _ => return Err(DecodeError::UnknownPacketType(packet_type)),
    })
}

/// A non-zero packet identifier (`[MQTT-2.2.1-3]`).
fn packet_id(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

/// A reason code byte that `valid` accepts.
fn reason(
    r: &mut Reader<'_>,
    packet: &'static str,
    valid: fn(u8) -> bool,
) -> Result<ReasonCode, DecodeError> {
    let code = r.u8()?;
    if valid(code) {
        Ok(ReasonCode(code))
    } else {
        Err(DecodeError::InvalidReasonCode { code, packet })
    }
}

/// Properties in v5, none before.
fn props(r: &mut Reader<'_>, v5: bool, ctx: PropertyContext) -> Result<Properties, DecodeError> {
    if v5 {
        properties::read(r, ctx)
    } else {
        Ok(Properties::default())
    }
}

/// Rejects wildcards in a topic name (`[MQTT-3.3.2-2]`).
fn check_no_wildcard(topic: &str) -> Result<(), DecodeError> {
    if topic.contains(['+', '#']) {
        Err(DecodeError::WildcardInTopicName)
    } else {
        Ok(())
    }
}

fn connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name = r.binary_ref()?;
    let level = r.u8()?;
    let protocol = match (name, level) {
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQTT" | b"MQIsdp", 3..=5) => return Err(DecodeError::InvalidProtocolName),
        (b"MQTT" | b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let v5 = protocol.is_v5();

    let flags = r.u8()?;
    if flags & 0x01 != 0 && protocol != ProtocolVersion::V3_1 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let has_will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    if will_qos == 3 || (!has_will && (will_qos != 0 || will_retain)) {
        return Err(DecodeError::InvalidWillFlags);
    }
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if has_password && !has_username && !v5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }

    let keep_alive = r.u16()?;
    let properties = props(r, v5, PropertyContext::Connect)?;
    let client_id = r.string()?;
    let will = if has_will {
        let properties = props(r, v5, PropertyContext::Will)?;
        let topic = r.byte_string()?;
        check_no_wildcard(&topic)?;
        if topic.is_empty() {
            return Err(DecodeError::EmptyTopicName);
        }
        let payload = r.binary()?;
        let qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillFlags)?;
        Some(Will {
            topic,
            payload,
            qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };

    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

fn connack(r: &mut Reader<'_>, v5: bool) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    let session_present = flags & 0x01 != 0;
    let reason_code = if v5 {
        reason(r, "CONNACK", rules::connack_reason)?
    } else {
        let code = r.u8()?;
        ReasonCode::from_v3_connack(code).ok_or(DecodeError::InvalidReasonCode {
            code,
            packet: "CONNACK",
        })?
    };
    if session_present && reason_code.is_error() {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    let properties = props(r, v5, PropertyContext::ConnAck)?;
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

fn publish(flags: u8, r: &mut Reader<'_>, v5: bool) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let topic = r.byte_string()?;
    check_no_wildcard(&topic)?;
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        packet_id(r)?
    };
    let properties = props(r, v5, PropertyContext::Publish)?;
    // [MQTT-4.7.3-1]; in v5 an empty topic name stands for the one a topic alias maps to.
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::EmptyTopicName);
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest_shared(),
    })
}

fn pub_response(
    r: &mut Reader<'_>,
    v5: bool,
    packet: &'static str,
    valid: fn(u8) -> bool,
) -> Result<PubResponse, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut response = PubResponse::new(packet_id);
    // v5: remaining length 2 means success without properties, 3 a reason code only.
    if v5 && !r.is_empty() {
        response.reason_code = reason(r, packet, valid)?;
        if !r.is_empty() {
            response.properties = properties::read(r, PropertyContext::PubResponse(packet))?;
        }
    }
    Ok(response)
}

fn subscription_options(byte: u8, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
    if byte & reserved != 0 {
        return Err(DecodeError::SubscriptionOptionsReserved);
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(DecodeError::InvalidSubscriptionOptions)?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::InvalidSubscriptionOptions),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

fn subscribe(r: &mut Reader<'_>, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = props(r, v5, PropertyContext::Subscribe)?;
    let mut subscriptions = Vec::new();
    while !r.is_empty() {
        let filter = r.byte_string()?;
        let options = subscription_options(r.u8()?, v5)?;
        subscriptions.push(SubscriptionRequest { filter, options });
    }
    if subscriptions.is_empty() {
        return Err(DecodeError::EmptySubscribe);
    }
    Ok(Subscribe {
        packet_id,
        properties,
        subscriptions,
    })
}

fn suback(r: &mut Reader<'_>, v5: bool) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = props(r, v5, PropertyContext::SubAck)?;
    let valid = if v5 {
        rules::suback_reason
    } else {
        rules::suback_reason_v3
    };
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reason_codes.push(reason(r, "SUBACK", valid)?);
    }
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

fn unsubscribe(r: &mut Reader<'_>, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = props(r, v5, PropertyContext::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.byte_string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscribe);
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

fn unsuback(r: &mut Reader<'_>, v5: bool) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut ack = UnsubAck {
        packet_id,
        ..UnsubAck::default()
    };
    if v5 {
        ack.properties = properties::read(r, PropertyContext::UnsubAck)?;
        ack.reason_codes.reserve(r.remaining());
        while !r.is_empty() {
            ack.reason_codes
                .push(reason(r, "UNSUBACK", rules::unsuback_reason)?);
        }
    }
    Ok(ack)
}

fn disconnect(r: &mut Reader<'_>, v5: bool) -> Result<Disconnect, DecodeError> {
    let mut disconnect = Disconnect::default();
    // v5: remaining length 0 means normal disconnection; below 2 there are no properties.
    if v5 && !r.is_empty() {
        disconnect.reason_code = reason(r, "DISCONNECT", rules::disconnect_reason)?;
        if !r.is_empty() {
            disconnect.properties = properties::read(r, PropertyContext::Disconnect)?;
        }
    }
    Ok(disconnect)
}

fn auth(r: &mut Reader<'_>) -> Result<Auth, DecodeError> {
    let mut auth = Auth::default();
    if !r.is_empty() {
        auth.reason_code = reason(r, "AUTH", rules::auth_reason)?;
        if !r.is_empty() {
            auth.properties = properties::read(r, PropertyContext::Auth)?;
        }
    }
    Ok(auth)
}
