//! Sample events: what the Test button sends and what the event catalogue shows.

use std::sync::Arc;

use bytes::Bytes;
use hookmq_broker::{
    hooks::{
        AlarmEvent, AuthzAction, AuthzResult, ClientInfo, Event, EventData, EventKind,
        PacketProperties,
    },
    message::{Message, MessageIdGenerator, MessageParts, Publisher, now_ms},
};
use hookmq_codec::{Properties, ProtocolVersion, QoS, ReasonCode, SubscriptionOptions};

fn client(id: &str) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        client_id: id.into(),
        username: None,
        peer: ([127, 0, 0, 1], 61003).into(),
        local: ([127, 0, 0, 1], 1883).into(),
        protocol: ProtocolVersion::V5,
        keep_alive: 30,
        clean_start: true,
        expiry_interval: 0,
        receive_maximum: 32,
        connect_properties: hookmq_broker::message::PacketProperties::default(),
        connected_at: now_ms(),
        session_id: 0,
        is_superuser: false,
        client_attrs: Vec::new(),
        mountpoint: None,
    })
}

fn message(node: &str) -> Arc<Message> {
    let parts = MessageParts {
        topic: "t/1".into(),
        payload: Bytes::from_static(br#"{ "msg": "Hello Webhook" }"#),
        qos: QoS::AtMostOnce,
        retain: false,
        dup: false,
        properties: Properties::default(),
    };
    let publisher = Arc::new(Publisher {
        client_id: "emqx_c".into(),
        username: None,
        peer: Some(([127, 0, 0, 1], 61003).into()),
        session_id: 0,
        protocol: Some(ProtocolVersion::V5),
        client_attrs: None,
    });
    Arc::new(Message::received(
        MessageIdGenerator::new(node).next_id(),
        parts,
        publisher,
    ))
}

/// A plausible event of `kind`, as client `emqx_c` publishing `t/1` would produce.
#[must_use]
pub fn sample(kind: EventKind, node: &str) -> Event {
    let publisher = client("emqx_c");
    let subscriber = client("emqx_sub");
    let data = match kind {
        EventKind::ClientConnected => EventData::ClientConnected { client: publisher },
        EventKind::ClientConnack => EventData::ClientConnack {
            client: publisher,
            reason_code: ReasonCode::SUCCESS,
        },
        EventKind::ClientDisconnected => EventData::ClientDisconnected {
            client: publisher,
            reason: "normal",
            properties: PacketProperties::default(),
            disconnected_at: now_ms(),
        },
        EventKind::CheckAuthnComplete => EventData::CheckAuthnComplete {
            client: publisher,
            reason_code: ReasonCode::SUCCESS,
            is_anonymous: true,
        },
        EventKind::CheckAuthzComplete => EventData::CheckAuthzComplete {
            client: publisher,
            action: AuthzAction::Publish,
            topic: "t/1".into(),
            source: "default",
            result: AuthzResult::Allow,
        },
        EventKind::SessionSubscribed => EventData::SessionSubscribed {
            client: subscriber,
            filter: "t/#".into(),
            options: SubscriptionOptions::default(),
            properties: PacketProperties::default(),
        },
        EventKind::SessionUnsubscribed => EventData::SessionUnsubscribed {
            client: subscriber,
            filter: "t/#".into(),
            qos: QoS::AtMostOnce,
            properties: PacketProperties::default(),
        },
        EventKind::MessagePublish => EventData::MessagePublish {
            message: message(node),
        },
        EventKind::MessageDelivered => EventData::MessageDelivered {
            client: subscriber,
            message: message(node),
            qos: QoS::AtMostOnce,
        },
        EventKind::MessageAcked => EventData::MessageAcked {
            client: subscriber,
            message: message(node),
            qos: QoS::AtLeastOnce,
            properties: PacketProperties::default(),
        },
        EventKind::MessageDropped => EventData::MessageDropped {
            message: message(node),
            reason: "no_subscribers",
        },
        EventKind::DeliveryDropped => EventData::DeliveryDropped {
            client: subscriber,
            message: message(node),
            reason: "queue_full",
        },
        EventKind::AlarmActivated | EventKind::AlarmDeactivated => {
            let now = hookmq_broker::message::now_micros();
            let alarm = Arc::new(AlarmEvent {
                name: "high_system_memory_usage".into(),
                details: r#"{"usage":72.34,"high_watermark":70.0}"#.into(),
                message: "72.34% mem usage".into(),
                activated_at: now,
                deactivated_at: (kind == EventKind::AlarmDeactivated).then_some(now),
            });
            if kind == EventKind::AlarmActivated {
                EventData::AlarmActivated { alarm }
            } else {
                EventData::AlarmDeactivated { alarm }
            }
        }
    };
    Event {
        timestamp: now_ms(),
        data,
    }
}
