//! The per-client limits of `[mqtt]`, from the client's side: connections per source
//! address, subscriptions per session, topic levels, and the publish rate of a connection,
//! each with its reason code where MQTT has one, and counted.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use hookmq_codec::{Packet, ProtocolVersion, QoS, ReasonCode, Subscribe, SubscriptionRequest};
use tokio::net::TcpSocket;

use crate::support::{TestBroker, raw::RawClient};

/// A v5 connection to `broker` from the loopback address `source`.
async fn connect_from(source: [u8; 4], broker: SocketAddr, client_id: &str) -> RawClient {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind the source");
    let stream = socket.connect(broker).await.expect("connect");
    let mut client = RawClient::over(Box::new(stream), ProtocolVersion::V5);
    let ack = client
        .handshake(RawClient::connect_packet(ProtocolVersion::V5, client_id))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    client
}

#[tokio::test]
async fn an_address_gets_at_most_its_connections_and_others_are_unaffected() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_connections_per_address = 2).await;
    let _a = connect_from([127, 0, 0, 1], broker.tcp, "a").await;
    let b = connect_from([127, 0, 0, 1], broker.tcp, "b").await;
    // The third from 127.0.0.1 is closed before it can say anything.
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let stream = socket.connect(broker.tcp).await.expect("connect");
    let mut refused = RawClient::over(Box::new(stream), ProtocolVersion::V5);
    refused
        .send(Packet::Connect(Box::new(RawClient::connect_packet(
            ProtocolVersion::V5,
            "c",
        ))))
        .await;
    assert_eq!(refused.recv().await, None);
    assert_eq!(broker.handle.stats().connections_refused_per_address, 1);
    // Another address is not affected, and a closed connection frees its place.
    let _d = connect_from([127, 0, 0, 2], broker.tcp, "d").await;
    b.disconnect().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.handle.stats().connections > 2 {
        assert!(Instant::now() < deadline, "b never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _e = connect_from([127, 0, 0, 1], broker.tcp, "e").await;
}

#[tokio::test]
async fn subscriptions_past_the_quota_are_refused_per_filter() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_subscriptions = 2).await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut client = RawClient::connect(broker.tcp, version, &format!("q{version:?}")).await;
        let request = |filter: &str| SubscriptionRequest {
            filter: filter.into(),
            options: hookmq_codec::SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        };
        client
            .send(Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: hookmq_codec::Properties::default(),
                subscriptions: vec![request("a"), request("b"), request("c")],
            }))
            .await;
        let Some(Packet::SubAck(ack)) = client.recv().await else {
            panic!("expected SUBACK");
        };
        // [MQTT-3.9.3-1]: v3 knows only 0x80 for a failure.
        let refused = if version == ProtocolVersion::V5 {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            ReasonCode::UNSPECIFIED_ERROR
        };
        assert_eq!(
            ack.reason_codes,
            [
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_1,
                refused
            ],
            "{version:?}"
        );
        // Subscribing again to a filter it has is not a new subscription.
        let again = client.subscribe(2, "a", QoS::AtMostOnce).await;
        assert_eq!(again.reason_codes, [ReasonCode::GRANTED_QOS_0]);
    }
    assert_eq!(broker.handle.stats().subscriptions_refused, 2);
}

#[tokio::test]
async fn topics_past_the_level_limit_are_refused() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_topic_levels = 3).await;
    let mut subscriber = RawClient::connect(broker.tcp, ProtocolVersion::V5, "s").await;
    let deep = subscriber.subscribe(1, "a/b/c/d", QoS::AtLeastOnce).await;
    assert_eq!(deep.reason_codes, [ReasonCode::TOPIC_FILTER_INVALID]);
    let ok = subscriber.subscribe(2, "a/+/#", QoS::AtLeastOnce).await;
    assert_eq!(ok.reason_codes, [ReasonCode::GRANTED_QOS_1]);
    let mut publisher = RawClient::connect(broker.tcp, ProtocolVersion::V5, "p").await;
    assert_eq!(
        publisher
            .publish("a/b/c/d", b"deep", QoS::AtLeastOnce, 1)
            .await,
        ReasonCode::TOPIC_NAME_INVALID
    );
    assert_eq!(
        publisher
            .publish("a/b/c", b"fits", QoS::AtLeastOnce, 2)
            .await,
        ReasonCode::SUCCESS
    );
    // Only the message that fits arrives.
    assert_eq!(&subscriber.receive_publish().await.payload[..], b"fits");
    let stats = broker.handle.stats();
    assert_eq!(
        (stats.subscriptions_refused, stats.publishes_refused),
        (1, 1)
    );
    // A will to such a topic is refused with the CONNECT.
    let mut willing = RawClient::open(broker.tcp, ProtocolVersion::V5).await;
    let connect = hookmq_codec::Connect {
        will: Some(hookmq_codec::Will {
            topic: "a/b/c/d".into(),
            payload: bytes::Bytes::from_static(b"gone"),
            ..Default::default()
        }),
        ..RawClient::connect_packet(ProtocolVersion::V5, "w")
    };
    assert_eq!(
        willing.handshake(connect).await.reason_code,
        ReasonCode::TOPIC_NAME_INVALID
    );
}

#[tokio::test]
async fn a_publisher_past_its_rate_is_slowed_and_loses_nothing() {
    const RATE: u32 = 20;
    const SENT: u16 = 60;
    let broker = TestBroker::start_with(|c| c.mqtt.max_publish_rate = RATE).await;
    let mut subscriber = RawClient::connect(broker.tcp, ProtocolVersion::V5, "s").await;
    subscriber.subscribe(1, "rate", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, ProtocolVersion::V5, "p").await;
    let started = Instant::now();
    // All at once, without waiting for acknowledgements.
    for i in 1..=SENT {
        publisher
            .send(Packet::Publish(hookmq_codec::Publish {
                qos: QoS::AtMostOnce,
                topic: "rate".into(),
                payload: bytes::Bytes::from(i.to_string()),
                ..Default::default()
            }))
            .await;
    }
    for i in 1..=SENT {
        let publish = subscriber.receive_publish().await;
        assert_eq!(&publish.payload[..], i.to_string().as_bytes(), "in order");
    }
    // A burst of RATE, then RATE a second: the rest took at least (SENT - RATE) / RATE s.
    let least = Duration::from_secs_f64(f64::from(SENT - 20) / f64::from(RATE));
    assert!(
        started.elapsed() >= least.mul_f64(0.9),
        "{:?} < {least:?}",
        started.elapsed()
    );
    assert!(broker.handle.stats().publish_rate_waits > 0);
}
