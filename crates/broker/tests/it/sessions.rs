//! Session life: takeover, keep-alive, wills, offline queues, expiry, resumption.

use std::time::Duration;

use bytes::Bytes;
use hookmq_codec::{
    Connect, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, Will,
};
use test_case::test_case;

use crate::support::{RawClient, TestBroker, persistent};

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn takeover_closes_the_old_connection_and_keeps_the_session(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut first = RawClient::open(broker.tcp, version).await;
    let ack = first.handshake(persistent(version, "twin", 300)).await;
    assert!(!ack.session_present);
    first.subscribe(1, "keep/me", QoS::AtLeastOnce).await;

    let mut second = RawClient::open(broker.tcp, version).await;
    let ack = second.handshake(persistent(version, "twin", 300)).await;
    assert!(
        ack.session_present,
        "the session moves to the new connection"
    );
    let expected = version.is_v5().then_some(ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(first.expect_close().await, expected);

    // The subscription came along.
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    publisher
        .publish("keep/me", b"x", QoS::AtLeastOnce, 1)
        .await;
    assert_eq!(&second.receive_publish().await.payload[..], b"x");
    broker
        .events
        .wait_for("twin", "client.disconnected(takenover)")
        .await;
    let names = broker.events.names("twin");
    let disconnected = names
        .iter()
        .position(|n| n == "client.disconnected(takenover)");
    let second_connack = names.iter().rposition(|n| n == "client.connack(success)");
    assert!(
        disconnected < second_connack,
        "old connection reported before new CONNACK: {names:?}"
    );
}

#[tokio::test]
async fn clean_start_takeover_discards_the_session() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut first = RawClient::open(broker.tcp, version).await;
    first.handshake(persistent(version, "twin", 300)).await;
    first.subscribe(1, "gone", QoS::AtLeastOnce).await;
    let mut second = RawClient::connect(broker.tcp, version, "twin").await;
    assert_eq!(
        first.expect_close().await,
        Some(ReasonCode::SESSION_TAKEN_OVER)
    );
    broker
        .events
        .wait_for("twin", "client.disconnected(discarded)")
        .await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    let code = publisher.publish("gone", b"x", QoS::AtLeastOnce, 1).await;
    assert_eq!(code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    second.expect_silence(Duration::from_millis(200)).await;
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn keep_alive_timeout_after_one_and_a_half_intervals(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, version).await;
    let mut connect = RawClient::connect_packet(version, "sleepy");
    connect.keep_alive = 1;
    client.handshake(connect).await;
    let started = std::time::Instant::now();
    let expected = version.is_v5().then_some(ReasonCode::KEEP_ALIVE_TIMEOUT);
    assert_eq!(client.expect_close().await, expected);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(3000),
        "closed too late: {waited:?}"
    );
    broker
        .events
        .wait_for("sleepy", "client.disconnected(keepalive_timeout)")
        .await;
}

#[tokio::test]
async fn pings_keep_a_client_alive() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, ProtocolVersion::V3_1_1).await;
    let mut connect = RawClient::connect_packet(ProtocolVersion::V3_1_1, "pinger");
    connect.keep_alive = 1;
    client.handshake(connect).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        client.send(Packet::PingReq).await;
        assert_eq!(client.recv().await, Some(Packet::PingResp));
    }
}

fn with_will(version: ProtocolVersion, client_id: &str, delay: Option<u32>) -> Connect {
    let mut connect = RawClient::connect_packet(version, client_id);
    let mut properties = Properties::default();
    properties.will_delay_interval = delay;
    connect.will = Some(Will {
        topic: "wills/x".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties,
    });
    connect
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn will_is_published_when_the_socket_drops(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut watcher = RawClient::connect(broker.tcp, version, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtLeastOnce).await;
    let mut dying = RawClient::open(broker.tcp, version).await;
    dying.handshake(with_will(version, "dying", None)).await;
    drop(dying);
    let will = watcher.receive_publish().await;
    assert_eq!((&*will.topic, &will.payload[..]), ("wills/x", &b"gone"[..]));
    broker
        .events
        .wait_for("dying", "client.disconnected(tcp_closed)")
        .await;
    assert!(
        broker
            .events
            .names("dying")
            .contains(&"message.publish".to_owned())
    );
}

#[tokio::test]
async fn will_is_not_published_after_a_normal_disconnect_but_is_with_0x04() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut watcher = RawClient::connect(broker.tcp, version, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtLeastOnce).await;
    let mut polite = RawClient::open(broker.tcp, version).await;
    polite.handshake(with_will(version, "polite", None)).await;
    polite.disconnect().await;
    watcher.expect_silence(Duration::from_millis(300)).await;

    let mut asking = RawClient::open(broker.tcp, version).await;
    asking.handshake(with_will(version, "asking", None)).await;
    asking
        .send(Packet::Disconnect(Disconnect::new(
            ReasonCode::DISCONNECT_WITH_WILL,
        )))
        .await;
    assert_eq!(&watcher.receive_publish().await.payload[..], b"gone");
}

#[tokio::test]
async fn delayed_will_is_cancelled_when_the_session_resumes() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut watcher = RawClient::connect(broker.tcp, version, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtLeastOnce).await;

    let mut connect = with_will(version, "comeback", Some(1));
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    let mut client = RawClient::open(broker.tcp, version).await;
    client.handshake(connect.clone()).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = RawClient::open(broker.tcp, version).await;
    assert!(client.handshake(connect.clone()).await.session_present);
    watcher.expect_silence(Duration::from_millis(1500)).await;

    // Without a comeback the will goes out after its delay.
    drop(client);
    let started = std::time::Instant::now();
    assert_eq!(&watcher.receive_publish().await.payload[..], b"gone");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn offline_queue_keeps_the_newest_and_reports_overflow(version: ProtocolVersion) {
    let broker = TestBroker::start_with(|c| c.mqtt.max_queue_len = 3).await;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber
        .handshake(persistent(version, "offline", 300))
        .await;
    subscriber.subscribe(1, "q", QoS::AtLeastOnce).await;
    subscriber.disconnect().await;

    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    for i in 1..=5u16 {
        publisher
            .publish("q", i.to_string().as_bytes(), QoS::AtLeastOnce, i)
            .await;
    }
    broker
        .events
        .wait_until("two queue_full drops", |events| {
            events
                .iter()
                .filter(|e| crate::support::events::describe(e) == "delivery.dropped(queue_full)")
                .count()
                == 2
        })
        .await;

    let mut subscriber = RawClient::open(broker.tcp, version).await;
    assert!(
        subscriber
            .handshake(persistent(version, "offline", 300))
            .await
            .session_present
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            String::from_utf8(subscriber.receive_publish().await.payload.to_vec()).expect("utf8"),
        );
    }
    assert_eq!(got, ["3", "4", "5"]);
    subscriber.expect_silence(Duration::from_millis(200)).await;
}

/// A connected session's queue is not cut to `max_queue_len`, nor when another connection
/// takes the session over; it is when the session is left without a connection.
#[tokio::test]
async fn the_offline_bound_applies_once_a_session_has_no_connection() {
    let version = ProtocolVersion::V5;
    let broker = TestBroker::start_with(|c| {
        c.mqtt.max_queue_len = 3;
        c.mqtt.max_inflight = 1;
    })
    .await;
    let mut first = RawClient::open(broker.tcp, version).await;
    first.handshake(persistent(version, "held", 300)).await;
    first.subscribe(1, "q", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    let publish_all = async |publisher: &mut RawClient, from: u16| {
        for i in from..from + 8 {
            publisher
                .publish("q", i.to_string().as_bytes(), QoS::AtLeastOnce, i)
                .await;
        }
    };
    publish_all(&mut publisher, 1).await;
    // One in flight, never acknowledged; seven wait in the queue.
    assert!(matches!(first.recv().await, Some(Packet::Publish(p)) if &p.payload[..] == b"1"));

    let mut second = RawClient::open(broker.tcp, version).await;
    assert!(
        second
            .handshake(persistent(version, "held", 300))
            .await
            .session_present
    );
    let mut got = Vec::new();
    for _ in 0..8 {
        let publish = second.receive_publish().await;
        got.push(String::from_utf8(publish.payload.to_vec()).expect("utf8"));
    }
    assert_eq!(got, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    assert_eq!(broker.handle.stats().deliveries_dropped, 0);

    // Again eight, then the session is left alone: three are kept (the in-flight one
    // apart), four dropped and reported.
    publish_all(&mut publisher, 9).await;
    assert!(matches!(second.recv().await, Some(Packet::Publish(p)) if &p.payload[..] == b"9"));
    second.disconnect().await;
    broker
        .events
        .wait_for("held", "client.disconnected(normal)")
        .await;
    assert_eq!(broker.handle.stats().deliveries_dropped, 4);
    let mut third = RawClient::open(broker.tcp, version).await;
    third.handshake(persistent(version, "held", 300)).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let publish = third.receive_publish().await;
        got.push(String::from_utf8(publish.payload.to_vec()).expect("utf8"));
    }
    assert_eq!(got, ["9", "14", "15", "16"]);
}

#[tokio::test]
async fn qos0_is_not_queued_offline_when_configured_so() {
    let broker = TestBroker::start_with(|c| c.mqtt.queue_qos0 = false).await;
    let version = ProtocolVersion::V5;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber
        .handshake(persistent(version, "offline", 300))
        .await;
    subscriber.subscribe(1, "q", QoS::AtLeastOnce).await;
    subscriber.disconnect().await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    publisher.publish("q", b"0", QoS::AtMostOnce, 0).await;
    broker
        .events
        .wait_for("offline", "delivery.dropped(qos0_msg)")
        .await;
}

#[tokio::test]
async fn expired_messages_are_not_delivered() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber.handshake(persistent(version, "late", 300)).await;
    subscriber.subscribe(1, "e", QoS::AtLeastOnce).await;
    subscriber.disconnect().await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    let mut properties = Properties::default();
    properties.message_expiry_interval = Some(1);
    publisher
        .publish_packet(Publish {
            qos: QoS::AtLeastOnce,
            topic: "e".into(),
            packet_id: 1,
            properties,
            payload: Bytes::from_static(b"short-lived"),
            ..Publish::default()
        })
        .await;
    publisher
        .publish("e", b"durable", QoS::AtLeastOnce, 2)
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber.handshake(persistent(version, "late", 300)).await;
    assert_eq!(&subscriber.receive_publish().await.payload[..], b"durable");
    broker
        .events
        .wait_for("late", "delivery.dropped(expired)")
        .await;
}

#[tokio::test]
async fn session_expires_after_its_interval() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut client = RawClient::open(broker.tcp, version).await;
    client.handshake(persistent(version, "brief", 1)).await;
    client.subscribe(1, "b", QoS::AtLeastOnce).await;
    client.disconnect().await;
    let mut again = RawClient::open(broker.tcp, version).await;
    assert!(
        again
            .handshake(persistent(version, "brief", 1))
            .await
            .session_present
    );
    again.disconnect().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut later = RawClient::open(broker.tcp, version).await;
    assert!(
        !later
            .handshake(persistent(version, "brief", 1))
            .await
            .session_present
    );
    assert_eq!(
        broker.handle.subscriptions().len(),
        0,
        "expired session left the router"
    );
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn unacknowledged_messages_are_resent_with_dup_on_resume(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber
        .handshake(persistent(version, "forgetful", 300))
        .await;
    subscriber.subscribe(1, "r", QoS::ExactlyOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    publisher.publish("r", b"one", QoS::AtLeastOnce, 1).await;
    publisher.publish("r", b"two", QoS::ExactlyOnce, 2).await;
    let first = match subscriber.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("{other:?}"),
    };
    let second = match subscriber.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!(!first.dup && !second.dup);
    drop(subscriber); // neither acknowledged

    let mut subscriber = RawClient::open(broker.tcp, version).await;
    assert!(
        subscriber
            .handshake(persistent(version, "forgetful", 300))
            .await
            .session_present
    );
    let again = subscriber.receive_publish().await;
    assert!(again.dup);
    assert_eq!(
        (again.packet_id, &again.payload[..]),
        (first.packet_id, &b"one"[..])
    );
    let again = subscriber.receive_publish().await;
    assert!(again.dup);
    assert_eq!(
        (again.packet_id, &again.payload[..]),
        (second.packet_id, &b"two"[..])
    );
}

#[tokio::test]
async fn v3_session_defaults_to_the_configured_expiry() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V3_1_1;
    let mut client = RawClient::open(broker.tcp, version).await;
    client.handshake(persistent(version, "v3", 0)).await;
    client.disconnect().await;
    let clients = broker.handle.clients();
    let summary = clients
        .iter()
        .find(|c| &*c.info.client_id == "v3")
        .expect("session kept");
    assert!(!summary.connected);
    assert_eq!(summary.info.expiry_interval, 7200);
}
