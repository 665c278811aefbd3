//! MQTT 5 features: properties in CONNACK, aliases, identifiers, limits, user properties.

use std::time::Duration;

use bytes::Bytes;
use hookmq_codec::{
    Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, SubscriptionOptions,
};

use crate::support::{RawClient, TestBroker};

const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test]
async fn connack_advertises_limits_and_assigns_client_ids() {
    let broker = TestBroker::start_with(|c| {
        c.mqtt.receive_maximum = 10;
        c.mqtt.max_topic_alias = 8;
        c.mqtt.server_keep_alive = Some(Duration::from_secs(30));
        c.mqtt.max_session_expiry_interval = Duration::from_secs(100);
        c.mqtt.response_information = "replies/${clientid}".into();
    })
    .await;
    let mut client = RawClient::open(broker.tcp, V5).await;
    let mut connect = RawClient::connect_packet(V5, "");
    connect.properties.session_expiry_interval = Some(1000);
    connect.properties.request_response_information = Some(1);
    let ack = client.handshake(connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let p = &ack.properties;
    let assigned = p
        .assigned_client_identifier
        .clone()
        .expect("an id is assigned");
    assert!(assigned.starts_with("hookmq-"), "{assigned}");
    assert_eq!(p.receive_maximum, Some(10));
    assert_eq!(p.topic_alias_maximum, Some(8));
    assert_eq!(p.server_keep_alive, Some(30));
    assert_eq!(
        p.session_expiry_interval,
        Some(100),
        "clamped expiry is reported"
    );
    assert_eq!(
        p.response_information.as_deref(),
        Some(format!("replies/{assigned}").as_str())
    );
    assert!(broker.handle.client(&assigned).is_some());
}

#[tokio::test]
async fn properties_travel_with_the_message() {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::connect(broker.tcp, V5, "s").await;
    let mut sub_props = Properties::default();
    sub_props.subscription_identifiers = vec![42];
    subscriber
        .subscribe_with(
            1,
            "req/#",
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
            sub_props,
        )
        .await;
    let mut publisher = RawClient::connect(broker.tcp, V5, "p").await;
    let mut properties = Properties::default();
    properties.user_properties = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
    properties.response_topic = Some("resp/p".into());
    properties.correlation_data = Some(Bytes::from_static(b"\x00\x01"));
    properties.content_type = Some("text/plain".into());
    properties.payload_format_indicator = Some(1);
    properties.message_expiry_interval = Some(100);
    publisher
        .publish_packet(Publish {
            qos: QoS::AtLeastOnce,
            topic: "req/1".into(),
            packet_id: 1,
            properties: properties.clone(),
            payload: Bytes::from_static(b"text"),
            ..Publish::default()
        })
        .await;
    let got = subscriber.receive_publish().await;
    let p = got.properties;
    assert_eq!(
        p.user_properties, properties.user_properties,
        "order and duplicates kept"
    );
    assert_eq!(p.response_topic, properties.response_topic);
    assert_eq!(p.correlation_data, properties.correlation_data);
    assert_eq!(p.content_type, properties.content_type);
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(p.subscription_identifiers, [42]);
    let expiry = p.message_expiry_interval.expect("expiry forwarded");
    assert!((99..=100).contains(&expiry), "remaining expiry {expiry}");
}

#[tokio::test]
async fn invalid_utf8_with_format_indicator_is_refused() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, V5, "c").await;
    let mut properties = Properties::default();
    properties.payload_format_indicator = Some(1);
    let code = client
        .publish_packet(Publish {
            qos: QoS::AtLeastOnce,
            topic: "t".into(),
            packet_id: 1,
            properties,
            payload: Bytes::from_static(&[0xFF, 0xFE]),
            ..Publish::default()
        })
        .await;
    assert_eq!(code, ReasonCode::PAYLOAD_FORMAT_INVALID);
}

#[tokio::test]
async fn topic_aliases_in_both_directions() {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::open(broker.tcp, V5).await;
    let mut connect = RawClient::connect_packet(V5, "s");
    connect.properties.topic_alias_maximum = Some(2);
    subscriber.handshake(connect).await;
    subscriber.subscribe(1, "alias/#", QoS::AtMostOnce).await;

    let mut publisher = RawClient::connect(broker.tcp, V5, "p").await;
    let mut with_alias = Publish {
        topic: "alias/one".into(),
        payload: Bytes::from_static(b"1"),
        ..Publish::default()
    };
    with_alias.properties.topic_alias = Some(1);
    publisher.publish_packet(with_alias).await;
    let mut by_alias = Publish {
        topic: "".into(),
        payload: Bytes::from_static(b"2"),
        ..Publish::default()
    };
    by_alias.properties.topic_alias = Some(1);
    publisher.publish_packet(by_alias).await;

    let first = subscriber.receive_publish().await;
    assert_eq!(
        (&*first.topic, first.properties.topic_alias),
        ("alias/one", Some(1))
    );
    let second = subscriber.receive_publish().await;
    assert_eq!(
        (&*second.topic, second.properties.topic_alias),
        ("", Some(1)),
        "sent by alias"
    );
    assert_eq!(&second.payload[..], b"2");
    broker
        .events
        .wait_until("two publishes named alias/one", |events| {
            events
                .iter()
                .filter(|e| e.kind().name() == "message.publish" && e.topic() == Some("alias/one"))
                .count()
                == 2
        })
        .await;
}

#[tokio::test]
async fn client_maximum_packet_size_drops_what_would_not_fit() {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::open(broker.tcp, V5).await;
    let mut connect = RawClient::connect_packet(V5, "small");
    connect.properties.maximum_packet_size = Some(64);
    subscriber.handshake(connect).await;
    subscriber.subscribe(1, "size", QoS::AtMostOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, V5, "p").await;
    publisher
        .publish("size", &[b'x'; 100], QoS::AtMostOnce, 0)
        .await;
    publisher.publish("size", b"fits", QoS::AtMostOnce, 0).await;
    assert_eq!(&subscriber.receive_publish().await.payload[..], b"fits");
    broker
        .events
        .wait_for("small", "delivery.dropped(too_large)")
        .await;
}

#[tokio::test]
async fn client_receive_maximum_limits_messages_in_flight() {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::open(broker.tcp, V5).await;
    let mut connect = RawClient::connect_packet(V5, "one-at-a-time");
    connect.properties.receive_maximum = Some(1);
    subscriber.handshake(connect).await;
    subscriber.subscribe(1, "w", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, V5, "p").await;
    for i in 1..=3u16 {
        publisher
            .publish("w", &[u8::try_from(i).unwrap_or(0)], QoS::AtLeastOnce, i)
            .await;
    }
    for expected in 1..=3u8 {
        let publish = match subscriber.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(publish.payload[..], [expected]);
        subscriber.expect_silence(Duration::from_millis(150)).await;
        subscriber.acknowledge(&publish).await;
    }
}

#[tokio::test]
async fn disconnect_may_not_raise_a_zero_session_expiry() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, V5, "c").await;
    let mut properties = Properties::default();
    properties.session_expiry_interval = Some(60);
    client
        .send(Packet::Disconnect(hookmq_codec::Disconnect {
            reason_code: ReasonCode::SUCCESS,
            properties,
        }))
        .await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );
}

#[tokio::test]
async fn unsubscribe_reports_missing_subscriptions() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, V5, "c").await;
    client.subscribe(1, "there", QoS::AtMostOnce).await;
    client
        .send(Packet::Unsubscribe(hookmq_codec::Unsubscribe {
            packet_id: 2,
            filters: vec!["there".into(), "not-there".into()],
            ..Default::default()
        }))
        .await;
    match client.recv().await {
        Some(Packet::UnsubAck(ack)) => {
            assert_eq!(
                ack.reason_codes,
                [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shutdown_tells_v5_clients() {
    let mut broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, V5, "c").await;
    let running = broker.take();
    let stop = tokio::spawn(running.shutdown(Duration::from_secs(5)));
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::SERVER_SHUTTING_DOWN)
    );
    stop.await.expect("shutdown finishes");
    assert!(
        tokio::net::TcpStream::connect(broker.tcp).await.is_err(),
        "listener closed"
    );
}

#[test_case::test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case::test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn packets_pipelined_behind_connect_are_served(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, version).await;
    let mut bytes = bytes::BytesMut::new();
    for packet in [
        Packet::Connect(Box::new(RawClient::connect_packet(version, "eager"))),
        Packet::Subscribe(hookmq_codec::Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            subscriptions: vec![hookmq_codec::SubscriptionRequest {
                filter: "p".into(),
                options: SubscriptionOptions::default(),
            }],
        }),
        Packet::PingReq,
    ] {
        hookmq_codec::encode(&packet, version, &mut bytes).expect("encodes");
    }
    client.send_bytes(&bytes).await;
    assert!(matches!(client.recv().await, Some(Packet::ConnAck(_))));
    assert!(matches!(client.recv().await, Some(Packet::SubAck(_))));
    assert_eq!(client.recv().await, Some(Packet::PingResp));
}

/// [MQTT-3.3.4-2, 3]: a message matching several subscriptions of one client goes out once,
/// at the highest QoS granted, with every matching subscription's identifier.
#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_with_every_identifier() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, V5, "overlap").await;
    for (packet_id, filter, qos, id) in [
        (1, "a/+", QoS::AtLeastOnce, Some(11)),
        (2, "a/#", QoS::ExactlyOnce, Some(22)),
        (3, "#", QoS::AtMostOnce, None),
    ] {
        let mut properties = Properties::default();
        properties.subscription_identifiers = id.into_iter().collect();
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        client
            .subscribe_with(packet_id, filter, options, properties)
            .await;
    }
    let mut publisher = RawClient::connect(broker.tcp, V5, "source").await;
    publisher.publish("a/b", b"once", QoS::ExactlyOnce, 1).await;
    let got = client.receive_publish().await;
    assert_eq!(&got.payload[..], b"once");
    assert_eq!(got.qos, QoS::ExactlyOnce, "the highest QoS granted");
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, [11, 22]);
    client.expect_silence(Duration::from_millis(200)).await;
    // A topic only one of them matches: that one's identifier alone.
    publisher
        .publish("a/b/c", b"deep", QoS::AtLeastOnce, 2)
        .await;
    let got = client.receive_publish().await;
    assert_eq!(got.properties.subscription_identifiers, [22]);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    client.expect_silence(Duration::from_millis(200)).await;
}
