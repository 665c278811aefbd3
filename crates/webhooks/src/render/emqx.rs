//! The default request body: EMQX's rule-engine output for each event, field for field
//! (`emqx_rule_events.erl`), plus `event`, `timestamp`, `node` and `metadata.rule_id`.
//!
//! Conventions kept from EMQX: absent values are the string `"undefined"`; `peername` and
//! `sockname` are `ip:port`, `peerhost` is `ip`; properties are maps keyed by MQTT property
//! names, always with `"User-Property"` (and `"User-Property-Pairs"` when there are any);
//! the payload is the raw string (or base64 when the webhook asks for it).
//!
//! The columns are written once, in [`write_columns`], to a [`Columns`] sink: streamed
//! straight into the JSON body on the delivery path ([`EmqxBody`], no intermediate map), or
//! collected into a JSON object when templates need to look fields up ([`event_object`]).

use std::{fmt::Display, net::SocketAddr};

use base64::Engine as _;
use hookmq_broker::{
    hooks::{ClientInfo, Event, EventData},
    message::Message,
};
use hookmq_codec::{Properties, ProtocolVersion, QoS};
use serde::{
    Serialize, Serializer,
    ser::{SerializeMap, SerializeStruct},
};
use serde_json::{Map, Value};

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

/// Where columns go.
pub trait Columns {
    /// The sink's error.
    type Error;
    /// Adds one column.
    ///
    /// # Errors
    /// The sink's.
    fn put<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), Self::Error>;
}

impl Columns for Map<String, Value> {
    type Error = std::convert::Infallible;

    fn put<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), Self::Error> {
        self.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        Ok(())
    }
}

/// Streams columns into a serializer's map.
struct Stream<'a, M>(&'a mut M);

impl<M: SerializeMap> Columns for Stream<'_, M> {
    type Error = M::Error;

    fn put<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), Self::Error> {
        self.0.serialize_entry(key, value)
    }
}

/// Serializes through `Display`, without allocating.
struct Shown<T>(T);

impl<T: Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Bytes as a string; invalid UTF-8 becomes U+FFFD, as in EMQX.
struct Lossy<'a>(&'a [u8]);

impl Serialize for Lossy<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&String::from_utf8_lossy(self.0))
    }
}

/// `client_attrs` as EMQX writes them: an object of strings (`{}` when there are none).
struct Attrs<'a>(&'a [(std::sync::Arc<str>, std::sync::Arc<str>)]);

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(&**name, &**value)?;
        }
        map.end()
    }
}

/// `{"retain": .., "dup": ..}`, and `"sys": true` for a `$SYS` message (as EMQX marks the
/// messages its `$SYS` publisher makes).
struct Flags<'a>(&'a Message);

impl Serialize for Flags<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sys = self.0.is_sys();
        let mut flags = serializer.serialize_map(Some(2 + usize::from(sys)))?;
        flags.serialize_entry("retain", &self.0.retain)?;
        flags.serialize_entry("dup", &self.0.dup)?;
        if sys {
            flags.serialize_entry("sys", &true)?;
        }
        flags.end()
    }
}

/// `{"rule_id": ..}`.
struct Metadata<'a>(&'a str);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut metadata = serializer.serialize_struct("metadata", 1)?;
        metadata.serialize_field("rule_id", self.0)?;
        metadata.end()
    }
}

/// The payload in the webhook's encoding.
struct Payload<'a>(&'a [u8], PayloadEncoding);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            PayloadEncoding::Plain => Lossy(self.0).serialize(serializer),
            PayloadEncoding::Base64 => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
            }
        }
    }
}

/// A property map as EMQX prints it.
#[derive(Debug)]
pub struct Props<'a>(pub &'a Properties);

impl Serialize for Props<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = serializer.serialize_map(None)?;
        macro_rules! opt {
            ($key:literal, $field:expr) => {
                if let Some(value) = &$field {
                    map.serialize_entry($key, value)?;
                }
            };
        }
        opt!("Payload-Format-Indicator", p.payload_format_indicator);
        opt!("Message-Expiry-Interval", p.message_expiry_interval);
        opt!("Content-Type", p.content_type);
        opt!("Response-Topic", p.response_topic);
        if let Some(data) = &p.correlation_data {
            map.serialize_entry("Correlation-Data", &Lossy(data))?;
        }
        match p.subscription_identifiers.as_slice() {
            [] => {}
            [one] => map.serialize_entry("Subscription-Identifier", one)?,
            many => map.serialize_entry("Subscription-Identifier", many)?,
        }
        opt!("Session-Expiry-Interval", p.session_expiry_interval);
        opt!("Assigned-Client-Identifier", p.assigned_client_identifier);
        opt!("Server-Keep-Alive", p.server_keep_alive);
        opt!("Authentication-Method", p.authentication_method);
        if let Some(data) = &p.authentication_data {
            map.serialize_entry("Authentication-Data", &Lossy(data))?;
        }
        opt!("Request-Problem-Information", p.request_problem_information);
        opt!("Will-Delay-Interval", p.will_delay_interval);
        opt!(
            "Request-Response-Information",
            p.request_response_information
        );
        opt!("Response-Information", p.response_information);
        opt!("Server-Reference", p.server_reference);
        opt!("Reason-String", p.reason_string);
        opt!("Receive-Maximum", p.receive_maximum);
        opt!("Topic-Alias-Maximum", p.topic_alias_maximum);
        opt!("Topic-Alias", p.topic_alias);
        opt!("Maximum-QoS", p.maximum_qos);
        opt!("Retain-Available", p.retain_available);
        opt!("Maximum-Packet-Size", p.maximum_packet_size);
        opt!(
            "Wildcard-Subscription-Available",
            p.wildcard_subscription_available
        );
        opt!(
            "Subscription-Identifier-Available",
            p.subscription_identifier_available
        );
        opt!(
            "Shared-Subscription-Available",
            p.shared_subscription_available
        );
        map.serialize_entry("User-Property", &UserProperties(&p.user_properties))?;
        if !p.user_properties.is_empty() {
            map.serialize_entry(
                "User-Property-Pairs",
                &UserPropertyPairs(&p.user_properties),
            )?;
        }
        map.end()
    }
}

/// User properties as a map (the last value of a repeated key wins, as in EMQX).
struct UserProperties<'a>(&'a [(String, String)]);

impl Serialize for UserProperties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut last: Vec<(&str, &str)> = Vec::with_capacity(self.0.len());
        for (key, value) in self.0 {
            match last.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => last.push((key, value)),
            }
        }
        let mut map = serializer.serialize_map(Some(last.len()))?;
        for (key, value) in last {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `[{"key":..,"value":..}]`, keeping order and duplicates.
struct UserPropertyPairs<'a>(&'a [(String, String)]);

impl Serialize for UserPropertyPairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, value)| {
            let mut pair = Map::new();
            pair.insert("key".into(), Value::String(key.clone()));
            pair.insert("value".into(), Value::String(value.clone()));
            pair
        }))
    }
}

/// `proto_name` as EMQX reports it.
const fn proto_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "MQIsdp",
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => "MQTT",
    }
}

fn or_undefined(value: Option<&str>) -> &str {
    value.unwrap_or(UNDEFINED)
}

fn host(address: SocketAddr) -> Shown<std::net::IpAddr> {
    Shown(address.ip())
}

/// The columns every message event shares. `qos` is the message's, or for a delivery the
/// QoS it was delivered with (EMQX reports the downgraded QoS in `message.delivered`).
fn message_columns<C: Columns>(
    c: &mut C,
    message: &Message,
    qos: QoS,
    encoding: PayloadEncoding,
) -> Result<(), C::Error> {
    c.put("id", &Shown(message.id))?;
    c.put("topic", &*message.topic)?;
    c.put("qos", &qos.as_u8())?;
    c.put("flags", &Flags(message))?;
    c.put("pub_props", &Props(&message.properties))?;
    c.put("publish_received_at", &message.received_at)?;
    c.put("payload", &Payload(&message.payload, encoding))
}

/// The sender of a message as `clientid` / `username` / `peerhost` / `peername`.
fn publisher_columns<C: Columns>(c: &mut C, message: &Message) -> Result<(), C::Error> {
    let publisher = &message.publisher;
    c.put("clientid", &*publisher.client_id)?;
    c.put("username", or_undefined(publisher.username.as_deref()))?;
    match publisher.peer {
        Some(peer) => {
            c.put("peerhost", &host(peer))?;
            c.put("peername", &Shown(peer))
        }
        None => {
            c.put("peerhost", UNDEFINED)?;
            c.put("peername", UNDEFINED)
        }
    }
}

/// A subscriber (for delivery events) with the message's sender as `from_*`.
fn subscriber_columns<C: Columns>(
    c: &mut C,
    client: &ClientInfo,
    message: &Message,
) -> Result<(), C::Error> {
    c.put("from_clientid", &*message.publisher.client_id)?;
    c.put(
        "from_username",
        or_undefined(message.publisher.username.as_deref()),
    )?;
    client_identity(c, client)?;
    c.put("peerhost", &host(client.peer))
}

fn client_identity<C: Columns>(c: &mut C, client: &ClientInfo) -> Result<(), C::Error> {
    c.put("clientid", &*client.client_id)?;
    c.put("username", or_undefined(client.username.as_deref()))?;
    c.put("peername", &Shown(client.peer))
}

fn connection_columns<C: Columns>(c: &mut C, client: &ClientInfo) -> Result<(), C::Error> {
    client_identity(c, client)?;
    c.put("sockname", &Shown(client.local))?;
    c.put("proto_name", proto_name(client.protocol))?;
    c.put("proto_ver", &client.protocol.level())
}

/// Writes every column of `event`.
///
/// # Errors
/// The sink's.
pub fn write_columns<C: Columns>(
    c: &mut C,
    event: &Event,
    context: RenderContext<'_>,
) -> Result<(), C::Error> {
    let encoding = context.payload_encoding;
    match &event.data {
        EventData::ClientConnected { client } => {
            connection_columns(c, client)?;
            c.put("mountpoint", or_undefined(client.mountpoint.as_deref()))?;
            c.put("keepalive", &client.keep_alive)?;
            c.put("clean_start", &client.clean_start)?;
            c.put("receive_maximum", &client.receive_maximum)?;
            c.put("expiry_interval", &client.expiry_interval)?;
            c.put("is_bridge", &false)?;
            c.put("conn_props", &Props(&client.connect_properties))?;
            c.put("connected_at", &client.connected_at)?;
            c.put("client_attrs", &Attrs(&client.client_attrs))?;
        }
        EventData::ClientConnack {
            client,
            reason_code,
        } => {
            connection_columns(c, client)?;
            c.put("reason_code", reason_code.name())?;
            c.put("clean_start", &client.clean_start)?;
            c.put("keepalive", &client.keep_alive)?;
            // EMQX reports the connack's expiry in milliseconds, unlike `client.connected`.
            c.put(
                "expiry_interval",
                &(u64::from(client.expiry_interval) * 1000),
            )?;
            c.put("connected_at", &client.connected_at)?;
            c.put("conn_props", &Props(&client.connect_properties))?;
        }
        EventData::ClientDisconnected {
            client,
            reason,
            properties,
            disconnected_at,
        } => {
            connection_columns(c, client)?;
            c.put("reason", *reason)?;
            c.put("disconn_props", &Props(properties))?;
            c.put("disconnected_at", disconnected_at)?;
            c.put("connected_at", &client.connected_at)?;
            c.put("client_attrs", &Attrs(&client.client_attrs))?;
        }
        EventData::CheckAuthnComplete {
            client,
            reason_code,
            is_anonymous,
        } => {
            client_identity(c, client)?;
            c.put("reason_code", reason_code.name())?;
            c.put("is_superuser", &client.is_superuser)?;
            c.put("is_anonymous", is_anonymous)?;
            c.put("client_attrs", &Attrs(&client.client_attrs))?;
        }
        EventData::CheckAuthzComplete {
            client,
            action,
            topic,
            source,
            result,
        } => {
            client_identity(c, client)?;
            c.put("peerhost", &host(client.peer))?;
            c.put("topic", &**topic)?;
            c.put("action", action.as_str())?;
            c.put("authz_source", *source)?;
            c.put("result", result.as_str())?;
            c.put("client_attrs", &Attrs(&client.client_attrs))?;
        }
        EventData::SessionSubscribed {
            client,
            filter,
            options,
            properties,
        } => {
            client_identity(c, client)?;
            c.put("peerhost", &host(client.peer))?;
            c.put("topic", &**filter)?;
            c.put("qos", &options.qos.as_u8())?;
            c.put("sub_props", &Props(properties))?;
            c.put("client_attrs", &Attrs(&client.client_attrs))?;
        }
        EventData::SessionUnsubscribed {
            client,
            filter,
            qos,
            properties,
        } => {
            client_identity(c, client)?;
            c.put("peerhost", &host(client.peer))?;
            c.put("topic", &**filter)?;
            c.put("qos", &qos.as_u8())?;
            c.put("unsub_props", &Props(properties))?;
            c.put("client_attrs", &Attrs(&client.client_attrs))?;
        }
        EventData::MessagePublish { message } => {
            publisher_columns(c, message)?;
            message_columns(c, message, message.qos, encoding)?;
            let attrs = message
                .publisher
                .client_attrs
                .as_deref()
                .map_or(&[][..], Vec::as_slice);
            c.put("client_attrs", &Attrs(attrs))?;
        }
        EventData::MessageDropped { message, reason } => {
            publisher_columns(c, message)?;
            message_columns(c, message, message.qos, encoding)?;
            c.put("reason", *reason)?;
        }
        EventData::MessageDelivered {
            client,
            message,
            qos,
        } => {
            subscriber_columns(c, client, message)?;
            message_columns(c, message, *qos, encoding)?;
        }
        EventData::MessageAcked {
            client,
            message,
            qos,
            properties,
        } => {
            subscriber_columns(c, client, message)?;
            message_columns(c, message, *qos, encoding)?;
            c.put("puback_props", &Props(properties))?;
        }
        EventData::DeliveryDropped {
            client,
            message,
            reason,
        } => {
            subscriber_columns(c, client, message)?;
            message_columns(c, message, message.qos, encoding)?;
            c.put("reason", *reason)?;
        }
        EventData::AlarmActivated { alarm } | EventData::AlarmDeactivated { alarm } => {
            c.put("name", &alarm.name)?;
            let details = serde_json::from_str::<Value>(&alarm.details)
                .unwrap_or_else(|_| Value::String(alarm.details.clone()));
            c.put("details", &details)?;
            c.put("message", &alarm.message)?;
            c.put("activated_at", &alarm.activated_at)?;
            if let Some(at) = alarm.deactivated_at {
                c.put("deactivated_at", &at)?;
            }
        }
    }
    c.put("event", event.kind().name())?;
    c.put("timestamp", &event.timestamp)?;
    c.put("node", context.node)?;
    c.put("metadata", &Metadata(context.rule_id))
}

/// The event as EMQX's JSON body, serialized straight from the event.
#[derive(Debug, Clone, Copy)]
pub struct EmqxBody<'a> {
    /// The event.
    pub event: &'a Event,
    /// Node, rule id, payload encoding.
    pub context: RenderContext<'a>,
}

impl Serialize for EmqxBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        write_columns(&mut Stream(&mut map), self.event, self.context)?;
        map.end()
    }
}

/// The event as a JSON object, for templates to look fields up.
#[must_use]
pub fn event_object(event: &Event, context: RenderContext<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    // Infallible for a map.
    let Ok(()) = write_columns(&mut map, event, context);
    map
}

/// The property map as a JSON value (for callers outside rendering).
#[must_use]
pub fn properties(props: &Properties) -> Value {
    serde_json::to_value(Props(props)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use hookmq_broker::hooks::EventKind;

    use super::*;
    use crate::samples::sample;

    /// Node `n`, webhook `r`, payloads as EMQX writes them.
    const PLAIN: RenderContext<'static> = RenderContext {
        node: "n",
        rule_id: "r",
        payload_encoding: PayloadEncoding::Plain,
    };

    /// The top-level keys of a JSON object in the order written, duplicates kept (a
    /// `serde_json::Value` would keep only the last of two equal keys).
    fn written_keys(body: &[u8]) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = Keys;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some((key, serde::de::IgnoredAny)) = map.next_entry()? {
                            keys.push(key);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(Visitor)
            }
        }
        serde_json::from_slice::<Keys>(body)
            .expect("a JSON object")
            .0
    }

    #[test]
    fn no_event_writes_a_key_twice() {
        let context = PLAIN;
        for kind in EventKind::ALL {
            let body = serde_json::to_vec(&EmqxBody {
                event: &sample(kind, "n"),
                context,
            })
            .expect("serializes");
            let mut keys = written_keys(&body);
            let written = keys.len();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), written, "{}: {keys:?}", kind.name());
        }
    }

    #[test]
    fn a_delivery_reports_the_qos_it_was_delivered_with() {
        let context = PLAIN;
        let mut event = sample(EventKind::MessageDelivered, "n");
        let EventData::MessageDelivered { message, qos, .. } = &mut event.data else {
            panic!("a delivery");
        };
        assert_eq!(message.qos, QoS::AtMostOnce);
        *qos = QoS::AtLeastOnce;
        assert_eq!(event_object(&event, context)["qos"], 1);
    }

    #[test]
    fn streamed_body_equals_the_object() {
        let context = PLAIN;
        for kind in EventKind::ALL {
            let event = sample(kind, "n");
            let streamed: Value = serde_json::from_slice(
                &serde_json::to_vec(&EmqxBody {
                    event: &event,
                    context,
                })
                .expect("serializes"),
            )
            .expect("valid JSON");
            assert_eq!(
                streamed,
                Value::Object(event_object(&event, context)),
                "{}",
                kind.name()
            );
            assert_eq!(streamed["event"], kind.name());
        }
    }

    #[test]
    fn user_properties_keep_emqx_shape() {
        let props = Properties {
            user_properties: vec![
                ("a".into(), "1".into()),
                ("a".into(), "2".into()),
                ("b".into(), "3".into()),
            ],
            ..Properties::default()
        };
        let value = properties(&props);
        assert_eq!(
            value["User-Property"],
            serde_json::json!({"a": "2", "b": "3"})
        );
        assert_eq!(
            value["User-Property-Pairs"][1],
            serde_json::json!({"key": "a", "value": "2"})
        );
        assert_eq!(
            properties(&Properties::default()),
            serde_json::json!({"User-Property": {}})
        );
    }

    #[test]
    fn a_clients_attributes_superuser_and_mountpoint_are_reported() {
        let mut event = sample(EventKind::ClientConnected, "n");
        let EventData::ClientConnected { client } = &mut event.data else {
            panic!("connected")
        };
        let mut changed = (**client).clone();
        changed.client_attrs = vec![("site".into(), "paris".into())];
        changed.mountpoint = Some("tenant/a/".into());
        changed.is_superuser = true;
        *client = std::sync::Arc::new(changed.clone());
        let body = event_object(&event, PLAIN);
        assert_eq!(body["client_attrs"], serde_json::json!({"site": "paris"}));
        assert_eq!(body["mountpoint"], "tenant/a/");
        let authn = Event {
            timestamp: 0,
            data: EventData::CheckAuthnComplete {
                client: std::sync::Arc::new(changed),
                reason_code: hookmq_codec::ReasonCode::SUCCESS,
                is_anonymous: false,
            },
        };
        assert_eq!(event_object(&authn, PLAIN)["is_superuser"], true);
    }
}
