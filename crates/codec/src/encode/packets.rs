//! The layout of each packet and of property lists, over any [`Sink`].

use super::{Counter, Plan, Sink};
use crate::properties::id;
use crate::rules::PropertyContext;
use crate::{
    Packet, Properties, ProtocolVersion, PubResponse, QoS, ReasonCode, SubscriptionOptions,
};

/// The fixed header's first byte: packet type and flags.
pub(super) fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => {
            0x30 | (u8::from(p.dup) << 3) | (p.qos.as_u8() << 1) | u8::from(p.retain)
        }
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xA2,
        Packet::UnsubAck(_) => 0xB0,
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(_) => 0xE0,
        Packet::Auth(_) => 0xF0,
    }
}

/// The property lists of `packet` with the context that filters them: (main, will).
fn property_lists(
    packet: &Packet,
) -> (Option<(&Properties, PropertyContext)>, Option<&Properties>) {
    let main = match packet {
        Packet::Connect(c) => {
            return (
                Some((&c.properties, PropertyContext::Connect)),
                c.will.as_ref().map(|w| &w.properties),
            );
        }
        Packet::ConnAck(p) => (&p.properties, PropertyContext::ConnAck),
        Packet::Publish(p) => (&p.properties, PropertyContext::Publish),
        Packet::PubAck(p) => (&p.properties, PropertyContext::PubResponse("PUBACK")),
        Packet::PubRec(p) => (&p.properties, PropertyContext::PubResponse("PUBREC")),
        Packet::PubRel(p) => (&p.properties, PropertyContext::PubResponse("PUBREL")),
        Packet::PubComp(p) => (&p.properties, PropertyContext::PubResponse("PUBCOMP")),
        Packet::Subscribe(p) => (&p.properties, PropertyContext::Subscribe),
        Packet::SubAck(p) => (&p.properties, PropertyContext::SubAck),
        Packet::Unsubscribe(p) => (&p.properties, PropertyContext::Unsubscribe),
        Packet::UnsubAck(p) => (&p.properties, PropertyContext::UnsubAck),
        Packet::Disconnect(p) => (&p.properties, PropertyContext::Disconnect),
        Packet::Auth(p) => (&p.properties, PropertyContext::Auth),
        Packet::PingReq | Packet::PingResp => return (None, None),
    };
    (Some(main), None)
}

/// Content lengths of the packet's property list and of its will property list, with field
/// errors recorded in `counter`.
pub(super) fn measure_properties(packet: &Packet, counter: &mut Counter) -> (usize, usize) {
    let (main, will) = property_lists(packet);
    let mut measure = |props: &Properties, ctx: PropertyContext| {
        counter.len = 0;
        content(counter, props, ctx);
        counter.len
    };
    let main = main.map_or(0, |(props, ctx)| measure(props, ctx));
    let will = will.map_or(0, |props| measure(props, PropertyContext::Will));
    (main, will)
}

/// The variable header and payload of `packet`.
pub(super) fn body<S: Sink>(s: &mut S, packet: &Packet, version: ProtocolVersion, plan: &Plan) {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => {
            s.field(version.protocol_name().as_bytes());
            s.u8(version.level());
            let mut flags = u8::from(c.clean_start) << 1;
            if let Some(will) = &c.will {
                flags |= 0x04 | (will.qos.as_u8() << 3) | (u8::from(will.retain) << 5);
            }
            flags |= u8::from(c.password.is_some()) << 6;
            flags |= u8::from(c.username.is_some()) << 7;
            s.u8(flags);
            s.u16(c.keep_alive);
            if v5 {
                properties(s, &c.properties, PropertyContext::Connect, plan.props);
            }
            s.field(c.client_id.as_bytes());
            if let Some(will) = &c.will {
                if v5 {
                    properties(s, &will.properties, PropertyContext::Will, plan.will_props);
                }
                s.field(will.topic.as_bytes());
                s.field(&will.payload);
            }
            if let Some(username) = &c.username {
                s.field(username.as_bytes());
            }
            if let Some(password) = &c.password {
                s.field(password);
            }
        }
        Packet::ConnAck(c) => {
            s.u8(u8::from(c.session_present));
            if v5 {
                s.u8(c.reason_code.0);
                properties(s, &c.properties, PropertyContext::ConnAck, plan.props);
            } else {
                s.u8(c.reason_code.to_v3_connack());
            }
        }
        Packet::Publish(p) => {
            s.field(p.topic.as_bytes());
            if p.qos != QoS::AtMostOnce {
                s.u16(p.packet_id);
            }
            if v5 {
                properties(s, &p.properties, PropertyContext::Publish, plan.props);
            }
            s.slice(&p.payload);
        }
        Packet::PubAck(p) => pub_response(s, p, v5, "PUBACK", plan),
        Packet::PubRec(p) => pub_response(s, p, v5, "PUBREC", plan),
        Packet::PubRel(p) => pub_response(s, p, v5, "PUBREL", plan),
        Packet::PubComp(p) => pub_response(s, p, v5, "PUBCOMP", plan),
        Packet::Subscribe(p) => {
            s.u16(p.packet_id);
            if v5 {
                properties(s, &p.properties, PropertyContext::Subscribe, plan.props);
            }
            for sub in &p.subscriptions {
                s.field(sub.filter.as_bytes());
                s.u8(options_byte(sub.options, v5));
            }
        }
        Packet::SubAck(p) => {
            s.u16(p.packet_id);
            if v5 {
                properties(s, &p.properties, PropertyContext::SubAck, plan.props);
            }
            for code in &p.reason_codes {
                s.u8(if v5 { code.0 } else { v3_suback_code(*code) });
            }
        }
        Packet::Unsubscribe(p) => {
            s.u16(p.packet_id);
            if v5 {
                properties(s, &p.properties, PropertyContext::Unsubscribe, plan.props);
            }
            for filter in &p.filters {
                s.field(filter.as_bytes());
            }
        }
        Packet::UnsubAck(p) => {
            s.u16(p.packet_id);
            if v5 {
                properties(s, &p.properties, PropertyContext::UnsubAck, plan.props);
                for code in &p.reason_codes {
                    s.u8(code.0);
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) if v5 => {
            short_reason(
                s,
                d.reason_code,
                &d.properties,
                PropertyContext::Disconnect,
                plan,
            );
        }
        Packet::Auth(a) if v5 => {
            short_reason(s, a.reason_code, &a.properties, PropertyContext::Auth, plan);
        }
        Packet::Disconnect(_) | Packet::Auth(_) => {}
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then (v5) the reason code and properties
/// unless they can be left out.
fn pub_response<S: Sink>(s: &mut S, p: &PubResponse, v5: bool, name: &'static str, plan: &Plan) {
    s.u16(p.packet_id);
    if v5 {
        if plan.props > 0 {
            s.u8(p.reason_code.0);
            properties(
                s,
                &p.properties,
                PropertyContext::PubResponse(name),
                plan.props,
            );
        } else if p.reason_code != ReasonCode::SUCCESS {
            s.u8(p.reason_code.0);
        }
    }
}

/// DISCONNECT and AUTH: nothing for success without properties, the reason code alone
/// without properties, else both.
fn short_reason<S: Sink>(
    s: &mut S,
    code: ReasonCode,
    props: &Properties,
    ctx: PropertyContext,
    plan: &Plan,
) {
    if plan.props > 0 {
        s.u8(code.0);
        properties(s, props, ctx, plan.props);
    } else if code != ReasonCode::SUCCESS {
        s.u8(code.0);
    }
}

/// The subscription options byte; v3 carries only the QoS.
fn options_byte(options: SubscriptionOptions, v5: bool) -> u8 {
    let qos = options.qos.as_u8();
    if !v5 {
        return qos;
    }
    qos | (u8::from(options.no_local) << 2)
        | (u8::from(options.retain_as_published) << 3)
        | ((options.retain_handling as u8) << 4)
}

/// A v3 SUBACK return code: granted QoS 0, 1, 2 as is, anything else is failure (0x80).
fn v3_suback_code(code: ReasonCode) -> u8 {
    match code.0 {
        0..=2 => code.0,
        _ => 0x80,
    }
}

/// A property list: its length (measured beforehand), then its content.
fn properties<S: Sink>(s: &mut S, props: &Properties, ctx: PropertyContext, len: usize) {
    s.varint(len);
    if S::COUNTING {
        s.skip(len);
    } else {
        content(s, props, ctx);
    }
}

/// The properties in `props` that `ctx` may carry, in identifier order.
fn content<S: Sink>(s: &mut S, props: &Properties, ctx: PropertyContext) {
    fn byte<S: Sink>(s: &mut S, ctx: PropertyContext, property: u8, value: Option<u8>) {
        if let Some(value) = value.filter(|_| ctx.allows(property)) {
            s.u8(property);
            s.u8(value);
        }
    }
    fn two<S: Sink>(s: &mut S, ctx: PropertyContext, property: u8, value: Option<u16>) {
        if let Some(value) = value.filter(|_| ctx.allows(property)) {
            s.u8(property);
            s.u16(value);
        }
    }
    fn four<S: Sink>(s: &mut S, ctx: PropertyContext, property: u8, value: Option<u32>) {
        if let Some(value) = value.filter(|_| ctx.allows(property)) {
            s.u8(property);
            s.u32(value);
        }
    }
    fn bin<S: Sink>(s: &mut S, ctx: PropertyContext, property: u8, value: Option<&[u8]>) {
        if let Some(value) = value.filter(|_| ctx.allows(property)) {
            s.u8(property);
            s.field(value);
        }
    }

    byte(
        s,
        ctx,
        id::PAYLOAD_FORMAT_INDICATOR,
        props.payload_format_indicator,
    );
    four(
        s,
        ctx,
        id::MESSAGE_EXPIRY_INTERVAL,
        props.message_expiry_interval,
    );
    bin(
        s,
        ctx,
        id::CONTENT_TYPE,
        props.content_type.as_deref().map(str::as_bytes),
    );
    bin(
        s,
        ctx,
        id::RESPONSE_TOPIC,
        props.response_topic.as_deref().map(str::as_bytes),
    );
    bin(
        s,
        ctx,
        id::CORRELATION_DATA,
        props.correlation_data.as_deref(),
    );
    if ctx.allows(id::SUBSCRIPTION_IDENTIFIER) {
        let count = if ctx.repeats_subscription_id() {
            usize::MAX
        } else {
            1
        };
        for &value in props.subscription_identifiers.iter().take(count) {
            s.u8(id::SUBSCRIPTION_IDENTIFIER);
            s.varint(usize::try_from(value).unwrap_or(usize::MAX));
        }
    }
    four(
        s,
        ctx,
        id::SESSION_EXPIRY_INTERVAL,
        props.session_expiry_interval,
    );
    bin(
        s,
        ctx,
        id::ASSIGNED_CLIENT_IDENTIFIER,
        props
            .assigned_client_identifier
            .as_deref()
            .map(str::as_bytes),
    );
    two(s, ctx, id::SERVER_KEEP_ALIVE, props.server_keep_alive);
    bin(
        s,
        ctx,
        id::AUTHENTICATION_METHOD,
        props.authentication_method.as_deref().map(str::as_bytes),
    );
    bin(
        s,
        ctx,
        id::AUTHENTICATION_DATA,
        props.authentication_data.as_deref(),
    );
    byte(
        s,
        ctx,
        id::REQUEST_PROBLEM_INFORMATION,
        props.request_problem_information,
    );
    four(s, ctx, id::WILL_DELAY_INTERVAL, props.will_delay_interval);
    byte(
        s,
        ctx,
        id::REQUEST_RESPONSE_INFORMATION,
        props.request_response_information,
    );
    bin(
        s,
        ctx,
        id::RESPONSE_INFORMATION,
        props.response_information.as_deref().map(str::as_bytes),
    );
    bin(
        s,
        ctx,
        id::SERVER_REFERENCE,
        props.server_reference.as_deref().map(str::as_bytes),
    );
    bin(
        s,
        ctx,
        id::REASON_STRING,
        props.reason_string.as_deref().map(str::as_bytes),
    );
    two(s, ctx, id::RECEIVE_MAXIMUM, props.receive_maximum);
    two(s, ctx, id::TOPIC_ALIAS_MAXIMUM, props.topic_alias_maximum);
    two(s, ctx, id::TOPIC_ALIAS, props.topic_alias);
    byte(s, ctx, id::MAXIMUM_QOS, props.maximum_qos);
    byte(s, ctx, id::RETAIN_AVAILABLE, props.retain_available);
    if ctx.allows(id::USER_PROPERTY) {
        for (key, value) in &props.user_properties {
            s.u8(id::USER_PROPERTY);
            s.field(key.as_bytes());
            s.field(value.as_bytes());
        }
    }
    four(s, ctx, id::MAXIMUM_PACKET_SIZE, props.maximum_packet_size);
    byte(
        s,
        ctx,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        props.wildcard_subscription_available,
    );
    byte(
        s,
        ctx,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        props.subscription_identifier_available,
    );
    byte(
        s,
        ctx,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
        props.shared_subscription_available,
    );
}
