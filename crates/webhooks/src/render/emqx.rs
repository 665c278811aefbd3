//! The default request body: EMQX's rule-engine output for each event, field for field
//! (`emqx_rule_events.erl`), plus `event`, `timestamp`, `node` and `metadata.rule_id`.
//!
//! Conventions kept from EMQX: absent values are the string `"undefined"`; `peername` and
//! `sockname` are `ip:port`, `peerhost` is `ip`; properties are maps keyed by MQTT property
//! names, always with `"User-Property"` (and `"User-Property-Pairs"` when there are any);
//! the payload is the raw string (or base64 when the webhook asks for it).

use std::net::SocketAddr;

use base64::Engine as _;
use hookmq_broker::{
    hooks::{ClientInfo, Event, EventData},
    message::Message,
};
use hookmq_codec::{Properties, ProtocolVersion};
use serde_json::{Map, Value, json};

use crate::spec::PayloadEncoding;

/// What the body needs besides the event.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The node name (`node`).
    pub node: &'a str,
    /// The webhook's name (`metadata.rule_id`).
    pub rule_id: &'a str,
    /// How to write payloads.
    pub payload_encoding: PayloadEncoding,
}

const UNDEFINED: &str = "undefined";

fn text_or_undefined(value: Option<&str>) -> Value {
    Value::String(value.unwrap_or(UNDEFINED).to_owned())
}

fn address(address: SocketAddr) -> Value {
    Value::String(address.to_string())
}

fn host(address: SocketAddr) -> Value {
    Value::String(address.ip().to_string())
}

/// `proto_name` as EMQX reports it.
const fn proto_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "MQIsdp",
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => "MQTT",
    }
}

fn lossy(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// A property map as EMQX prints it.
#[must_use]
pub fn properties(props: &Properties) -> Value {
    let mut map = Map::new();
    let mut put = |key: &str, value: Value| {
        map.insert(key.to_owned(), value);
    };
    if let Some(v) = props.payload_format_indicator {
        put("Payload-Format-Indicator", v.into());
    }
    if let Some(v) = props.message_expiry_interval {
        put("Message-Expiry-Interval", v.into());
    }
    if let Some(v) = &props.content_type {
        put("Content-Type", v.as_str().into());
    }
    if let Some(v) = &props.response_topic {
        put("Response-Topic", v.as_str().into());
    }
    if let Some(v) = &props.correlation_data {
        put("Correlation-Data", lossy(v));
    }
    match props.subscription_identifiers.as_slice() {
        [] => {}
        [one] => put("Subscription-Identifier", (*one).into()),
        many => put("Subscription-Identifier", many.into()),
    }
    if let Some(v) = props.session_expiry_interval {
        put("Session-Expiry-Interval", v.into());
    }
    if let Some(v) = &props.assigned_client_identifier {
        put("Assigned-Client-Identifier", v.as_str().into());
    }
    if let Some(v) = props.server_keep_alive {
        put("Server-Keep-Alive", v.into());
    }
    if let Some(v) = &props.authentication_method {
        put("Authentication-Method", v.as_str().into());
    }
    if let Some(v) = &props.authentication_data {
        put("Authentication-Data", lossy(v));
    }
    if let Some(v) = props.request_problem_information {
        put("Request-Problem-Information", v.into());
    }
    if let Some(v) = props.will_delay_interval {
        put("Will-Delay-Interval", v.into());
    }
    if let Some(v) = props.request_response_information {
        put("Request-Response-Information", v.into());
    }
    if let Some(v) = &props.response_information {
        put("Response-Information", v.as_str().into());
    }
    if let Some(v) = &props.server_reference {
        put("Server-Reference", v.as_str().into());
    }
    if let Some(v) = &props.reason_string {
        put("Reason-String", v.as_str().into());
    }
    if let Some(v) = props.receive_maximum {
        put("Receive-Maximum", v.into());
    }
    if let Some(v) = props.topic_alias_maximum {
        put("Topic-Alias-Maximum", v.into());
    }
    if let Some(v) = props.topic_alias {
        put("Topic-Alias", v.into());
    }
    if let Some(v) = props.maximum_qos {
        put("Maximum-QoS", v.into());
    }
    if let Some(v) = props.retain_available {
        put("Retain-Available", v.into());
    }
    if let Some(v) = props.maximum_packet_size {
        put("Maximum-Packet-Size", v.into());
    }
    if let Some(v) = props.wildcard_subscription_available {
        put("Wildcard-Subscription-Available", v.into());
    }
    if let Some(v) = props.subscription_identifier_available {
        put("Subscription-Identifier-Available", v.into());
    }
    if let Some(v) = props.shared_subscription_available {
        put("Shared-Subscription-Available", v.into());
    }
    let users: Map<String, Value> = props
        .user_properties
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    put("User-Property", Value::Object(users));
    if !props.user_properties.is_empty() {
        let pairs: Vec<Value> = props
            .user_properties
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        put("User-Property-Pairs", Value::Array(pairs));
    }
    Value::Object(map)
}

/// The columns every message event shares.
fn message_columns(map: &mut Map<String, Value>, message: &Message, encoding: PayloadEncoding) {
    map.insert("id".into(), message.id.to_string().into());
    map.insert("topic".into(), message.topic.to_string().into());
    map.insert("qos".into(), message.qos.as_u8().into());
    map.insert(
        "flags".into(),
        json!({"retain": message.retain, "dup": message.dup}),
    );
    map.insert("pub_props".into(), properties(&message.properties));
    map.insert("publish_received_at".into(), message.received_at.into());
    let payload = match encoding {
        PayloadEncoding::Plain => lossy(&message.payload),
        PayloadEncoding::Base64 => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(&message.payload))
        }
    };
    map.insert("payload".into(), payload);
}

/// The sender of a message as `clientid` / `username` / `peerhost` / `peername`.
fn publisher_columns(map: &mut Map<String, Value>, message: &Message) {
    let publisher = &message.publisher;
    map.insert("clientid".into(), publisher.client_id.to_string().into());
    map.insert(
        "username".into(),
        text_or_undefined(publisher.username.as_deref()),
    );
    let (peerhost, peername) = match publisher.peer {
        Some(peer) => (host(peer), address(peer)),
        None => (UNDEFINED.into(), UNDEFINED.into()),
    };
    map.insert("peerhost".into(), peerhost);
    map.insert("peername".into(), peername);
}

/// A subscriber (for delivery events) with the message's sender as `from_*`.
fn subscriber_columns(map: &mut Map<String, Value>, client: &ClientInfo, message: &Message) {
    map.insert(
        "from_clientid".into(),
        message.publisher.client_id.to_string().into(),
    );
    map.insert(
        "from_username".into(),
        text_or_undefined(message.publisher.username.as_deref()),
    );
    client_identity(map, client);
    map.insert("peerhost".into(), host(client.peer));
}

fn client_identity(map: &mut Map<String, Value>, client: &ClientInfo) {
    map.insert("clientid".into(), client.client_id.to_string().into());
    map.insert(
        "username".into(),
        text_or_undefined(client.username.as_deref()),
    );
    map.insert("peername".into(), address(client.peer));
}

fn connection_columns(map: &mut Map<String, Value>, client: &ClientInfo) {
    client_identity(map, client);
    map.insert("sockname".into(), address(client.local));
    map.insert("proto_name".into(), proto_name(client.protocol).into());
    map.insert("proto_ver".into(), client.protocol.level().into());
}

/// The event as EMQX's rule output, ready to serialize.
#[must_use]
pub fn event_object(event: &Event, context: RenderContext<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    let m = &mut map;
    match &event.data {
        EventData::ClientConnected { client } => {
            connection_columns(m, client);
            m.insert("mountpoint".into(), UNDEFINED.into());
            m.insert("keepalive".into(), client.keep_alive.into());
            m.insert("clean_start".into(), client.clean_start.into());
            m.insert("receive_maximum".into(), client.receive_maximum.into());
            m.insert("expiry_interval".into(), client.expiry_interval.into());
            m.insert("is_bridge".into(), false.into());
            m.insert("conn_props".into(), properties(&client.connect_properties));
            m.insert("connected_at".into(), client.connected_at.into());
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::ClientConnack {
            client,
            reason_code,
        } => {
            connection_columns(m, client);
            m.insert("reason_code".into(), reason_code.name().into());
            m.insert("clean_start".into(), client.clean_start.into());
            m.insert("keepalive".into(), client.keep_alive.into());
            // EMQX reports the connack's expiry in milliseconds, unlike `client.connected`.
            m.insert(
                "expiry_interval".into(),
                (u64::from(client.expiry_interval) * 1000).into(),
            );
            m.insert("connected_at".into(), client.connected_at.into());
            m.insert("conn_props".into(), properties(&client.connect_properties));
        }
        EventData::ClientDisconnected {
            client,
            reason,
            properties: props,
            disconnected_at,
        } => {
            connection_columns(m, client);
            m.insert("reason".into(), (*reason).into());
            m.insert("disconn_props".into(), properties(props));
            m.insert("disconnected_at".into(), (*disconnected_at).into());
            m.insert("connected_at".into(), client.connected_at.into());
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::CheckAuthnComplete {
            client,
            reason_code,
            is_anonymous,
        } => {
            client_identity(m, client);
            m.insert("reason_code".into(), reason_code.name().into());
            m.insert("is_superuser".into(), false.into());
            m.insert("is_anonymous".into(), (*is_anonymous).into());
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::CheckAuthzComplete {
            client,
            action,
            topic,
            source,
            result,
        } => {
            client_identity(m, client);
            m.insert("peerhost".into(), host(client.peer));
            m.insert("topic".into(), topic.to_string().into());
            m.insert("action".into(), action.as_str().into());
            m.insert("authz_source".into(), (*source).into());
            m.insert("result".into(), result.as_str().into());
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::SessionSubscribed {
            client,
            filter,
            options,
            properties: props,
        } => {
            client_identity(m, client);
            m.insert("peerhost".into(), host(client.peer));
            m.insert("topic".into(), filter.to_string().into());
            m.insert("qos".into(), options.qos.as_u8().into());
            m.insert("sub_props".into(), properties(props));
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::SessionUnsubscribed {
            client,
            filter,
            qos,
            properties: props,
        } => {
            client_identity(m, client);
            m.insert("peerhost".into(), host(client.peer));
            m.insert("topic".into(), filter.to_string().into());
            m.insert("qos".into(), qos.as_u8().into());
            m.insert("unsub_props".into(), properties(props));
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::MessagePublish { message } => {
            publisher_columns(m, message);
            message_columns(m, message, context.payload_encoding);
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::MessageDropped { message, reason } => {
            publisher_columns(m, message);
            message_columns(m, message, context.payload_encoding);
            m.insert("reason".into(), (*reason).into());
        }
        EventData::MessageDelivered {
            client,
            message,
            qos,
        } => {
            subscriber_columns(m, client, message);
            message_columns(m, message, context.payload_encoding);
            m.insert("qos".into(), qos.as_u8().into());
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::MessageAcked {
            client,
            message,
            qos,
            properties: props,
        } => {
            subscriber_columns(m, client, message);
            message_columns(m, message, context.payload_encoding);
            m.insert("qos".into(), qos.as_u8().into());
            m.insert("puback_props".into(), properties(props));
            m.insert("client_attrs".into(), json!({}));
        }
        EventData::DeliveryDropped {
            client,
            message,
            reason,
        } => {
            subscriber_columns(m, client, message);
            message_columns(m, message, context.payload_encoding);
            m.insert("reason".into(), (*reason).into());
        }
    }
    map.insert("event".into(), event.kind().name().into());
    map.insert("timestamp".into(), event.timestamp.into());
    map.insert("node".into(), context.node.into());
    map.insert("metadata".into(), json!({"rule_id": context.rule_id}));
    map
}
