//! What survives a restart on the same data directory (`[persistence]`): retained messages,
//! persistent sessions with their subscriptions and queued messages, QoS 2 state in both
//! directions, delayed wills; and what must not (expired sessions, clean sessions).
//! The same after `kill -9` of the real binary is in the hookmq crate's tests.

use std::time::Duration;

use hookmq_codec::{Connect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, Will};
use test_case::test_case;

use crate::support::{self, PATIENCE, RawClient, TestBroker};

/// A CONNECT that keeps its session for an hour (v5), or clean session = false (3.1.1).
fn persistent(version: ProtocolVersion, client_id: &str) -> Connect {
    support::persistent(version, client_id, 3600)
}

/// Connects `client_id` resuming its session; checks the broker says it has one.
async fn resume(broker: &TestBroker, version: ProtocolVersion, client_id: &str) -> RawClient {
    let mut client = RawClient::open(broker.tcp, version).await;
    let ack = client.handshake(persistent(version, client_id)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(ack.session_present, "{client_id}'s session is still there");
    client
}

/// Receives `count` PUBLISH packets that may come back to back (a window of QoS 2 ones
/// before any PUBREL), acknowledging each as its QoS asks; returns their payloads.
async fn receive_pipelined(client: &mut RawClient, count: usize) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut releases_owed = 0;
    while payloads.len() < count || releases_owed > 0 {
        match next(client).await {
            Packet::Publish(publish) => {
                payloads.push(String::from_utf8_lossy(&publish.payload).into_owned());
                let ack = PubResponse::new(publish.packet_id);
                match publish.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => client.send(Packet::PubAck(ack)).await,
                    QoS::ExactlyOnce => {
                        releases_owed += 1;
                        client.send(Packet::PubRec(ack)).await;
                    }
                }
            }
            Packet::PubRel(rel) => {
                releases_owed -= 1;
                client
                    .send(Packet::PubComp(PubResponse::new(rel.packet_id)))
                    .await;
            }
            other => panic!("PUBLISH or PUBREL expected, got {other:?}"),
        }
    }
    payloads
}

/// The next packet, which must come within [`PATIENCE`].
async fn next(client: &mut RawClient) -> Packet {
    client
        .try_recv(PATIENCE)
        .await
        .ok()
        .flatten()
        .expect("a packet")
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn a_restart_keeps_retained_messages_sessions_and_their_queues(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber.handshake(persistent(version, "keeper")).await;
    subscriber.subscribe(1, "q1/#", QoS::AtLeastOnce).await;
    subscriber.subscribe(2, "q2/#", QoS::ExactlyOnce).await;
    subscriber.disconnect().await;

    let mut publisher = RawClient::connect(broker.tcp, version, "pub").await;
    let mut retained = Publish {
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "r/kept".into(),
        packet_id: 1,
        payload: bytes::Bytes::from_static(b"retained"),
        ..Publish::default()
    };
    publisher.publish_packet(retained.clone()).await;
    for i in 0..10u16 {
        publisher
            .publish(
                &format!("q1/{i}"),
                format!("one-{i}").as_bytes(),
                QoS::AtLeastOnce,
                10 + i,
            )
            .await;
    }
    for i in 0..3u16 {
        publisher
            .publish(
                &format!("q2/{i}"),
                format!("two-{i}").as_bytes(),
                QoS::ExactlyOnce,
                30 + i,
            )
            .await;
    }
    publisher.disconnect().await;

    let broker = broker.restart().await;
    let mut subscriber = resume(&broker, version, "keeper").await;
    let payloads = receive_pipelined(&mut subscriber, 13).await;
    let expected: Vec<String> = (0..10)
        .map(|i| format!("one-{i}"))
        .chain((0..3).map(|i| format!("two-{i}")))
        .collect();
    assert_eq!(payloads, expected, "every queued message, in order");
    subscriber.expect_silence(Duration::from_millis(200)).await;

    // The subscriptions came back too.
    let mut publisher = RawClient::connect(broker.tcp, version, "pub").await;
    publisher
        .publish("q1/after", b"after", QoS::AtLeastOnce, 1)
        .await;
    assert_eq!(&subscriber.receive_publish().await.payload[..], b"after");

    let mut newcomer = RawClient::connect(broker.tcp, version, "new").await;
    newcomer.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    let got = newcomer.receive_publish().await;
    assert_eq!(&got.payload[..], b"retained");
    assert!(got.retain);

    // Cleared retained messages stay cleared.
    retained.payload = bytes::Bytes::new();
    retained.packet_id = 2;
    publisher.publish_packet(retained).await;
    let broker = broker.restart().await;
    let mut newcomer = RawClient::connect(broker.tcp, version, "new2").await;
    newcomer.subscribe(1, "r/#", QoS::AtLeastOnce).await;
    newcomer.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn qos2_exchanges_cut_by_a_restart_finish_once() {
    let version = ProtocolVersion::V5;
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::open(broker.tcp, version).await;
    subscriber.handshake(persistent(version, "sub")).await;
    subscriber.subscribe(1, "x", QoS::ExactlyOnce).await;
    let mut publisher = RawClient::open(broker.tcp, version).await;
    publisher.handshake(persistent(version, "pub")).await;

    // Towards the broker: PUBLISH and PUBREC, no PUBREL yet.
    publisher
        .send(Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: "x".into(),
            packet_id: 7,
            payload: bytes::Bytes::from_static(b"first"),
            ..Publish::default()
        }))
        .await;
    assert!(matches!(next(&mut publisher).await, Packet::PubRec(ack) if ack.packet_id == 7));
    // Towards the subscriber: the first one received (PUBREC), the second one not.
    let Packet::Publish(first) = next(&mut subscriber).await else {
        panic!("PUBLISH")
    };
    subscriber
        .send(Packet::PubRec(PubResponse::new(first.packet_id)))
        .await;
    assert!(matches!(next(&mut subscriber).await, Packet::PubRel(_)));
    publisher.publish("x", b"second", QoS::ExactlyOnce, 8).await;
    let Packet::Publish(second) = next(&mut subscriber).await else {
        panic!("PUBLISH")
    };
    drop(subscriber);
    drop(publisher);
    broker
        .events
        .wait_for("sub", "client.disconnected(tcp_closed)")
        .await;

    let broker = broker.restart().await;
    // The subscriber gets the unreceived one again, same id, DUP set, and the PUBREL owed.
    let mut subscriber = resume(&broker, version, "sub").await;
    let mut resent = Vec::new();
    for _ in 0..2 {
        resent.push(next(&mut subscriber).await);
    }
    assert!(
        resent
            .iter()
            .any(|p| matches!(p, Packet::PubRel(rel) if rel.packet_id == first.packet_id)),
        "{resent:?}"
    );
    assert!(
        resent.iter().any(|p| matches!(p, Packet::Publish(again)
            if again.packet_id == second.packet_id && again.dup && again.payload == second.payload)),
        "{resent:?}"
    );
    // The publisher's resent PUBLISH is recognised (not routed twice), its PUBREL completes.
    let mut publisher = resume(&broker, version, "pub").await;
    publisher
        .send(Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            topic: "x".into(),
            packet_id: 7,
            payload: bytes::Bytes::from_static(b"first"),
            ..Publish::default()
        }))
        .await;
    assert!(matches!(next(&mut publisher).await, Packet::PubRec(ack) if ack.packet_id == 7));
    publisher.send(Packet::PubRel(PubResponse::new(7))).await;
    match next(&mut publisher).await {
        Packet::PubComp(comp) => assert_eq!(comp.reason_code, ReasonCode::SUCCESS),
        other => panic!("PUBCOMP expected, got {other:?}"),
    }
    for packet in resent {
        match packet {
            Packet::PubRel(rel) => {
                subscriber
                    .send(Packet::PubComp(PubResponse::new(rel.packet_id)))
                    .await;
            }
            Packet::Publish(publish) => {
                subscriber
                    .send(Packet::PubRec(PubResponse::new(publish.packet_id)))
                    .await;
                match next(&mut subscriber).await {
                    Packet::PubRel(rel) => assert_eq!(rel.packet_id, publish.packet_id),
                    other => panic!("PUBREL expected, got {other:?}"),
                }
                subscriber
                    .send(Packet::PubComp(PubResponse::new(publish.packet_id)))
                    .await;
            }
            _ => {}
        }
    }
    // "first" is not routed a second time.
    subscriber.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_delayed_will_survives_a_restart() {
    let version = ProtocolVersion::V5;
    let broker = TestBroker::start().await;
    let mut connect = persistent(version, "mortal");
    let mut will = Will {
        topic: "wills/mortal".into(),
        payload: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        ..Will::default()
    };
    will.properties.will_delay_interval = Some(1);
    connect.will = Some(will);
    let mut client = RawClient::open(broker.tcp, version).await;
    client.handshake(connect).await;
    drop(client);
    broker
        .events
        .wait_for("mortal", "client.disconnected(tcp_closed)")
        .await;

    let broker = broker.restart().await;
    let mut watcher = RawClient::connect(broker.tcp, version, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtLeastOnce).await;
    let got = watcher.receive_publish().await;
    assert_eq!(&got.payload[..], b"gone");
    // Published once: not again after another restart.
    let broker = broker.restart().await;
    let mut watcher = RawClient::connect(broker.tcp, version, "watcher").await;
    watcher.subscribe(1, "wills/#", QoS::AtLeastOnce).await;
    watcher.expect_silence(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn a_session_that_expired_while_stopped_is_gone_and_clean_ones_are_not_kept() {
    let version = ProtocolVersion::V5;
    let broker = TestBroker::start().await;
    let mut connect = persistent(version, "brief");
    connect.properties.session_expiry_interval = Some(1);
    let mut brief = RawClient::open(broker.tcp, version).await;
    brief.handshake(connect).await;
    brief.subscribe(1, "t", QoS::AtLeastOnce).await;
    brief.disconnect().await;
    let mut clean = RawClient::connect(broker.tcp, version, "clean").await;
    clean.subscribe(1, "t", QoS::AtLeastOnce).await;

    let broker = broker.restart_after(Duration::from_millis(1100)).await;
    assert_eq!(broker.handle.stats().sessions, 0, "nothing came back");
    let mut again = RawClient::open(broker.tcp, version).await;
    let ack = again.handshake(persistent(version, "brief")).await;
    assert!(!ack.session_present);
}

/// A session kept from a takeover on (expiry 0 before, an hour after) keeps what its
/// first connection had in flight.
#[tokio::test]
async fn a_session_kept_from_a_takeover_on_keeps_what_was_in_flight() {
    let version = ProtocolVersion::V5;
    let broker = TestBroker::start().await;
    let mut fleeting = RawClient::open(broker.tcp, version).await;
    let mut connect = RawClient::connect_packet(version, "late");
    connect.clean_start = false;
    fleeting.handshake(connect).await;
    fleeting.subscribe(1, "m", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "pub").await;
    publisher.publish("m", b"m1", QoS::AtLeastOnce, 1).await;
    let Packet::Publish(first) = next(&mut fleeting).await else {
        panic!("PUBLISH")
    };
    assert_eq!(&first.payload[..], b"m1");
    // Not acknowledged; the same client id takes the session over, now kept for an hour.
    let mut kept = resume(&broker, version, "late").await;
    let _ = fleeting.expect_close().await;
    publisher.publish("m", b"m2", QoS::AtLeastOnce, 2).await;
    drop(kept.try_recv(Duration::from_millis(300)).await);
    drop(kept);

    let broker = broker.restart().await;
    let mut kept = resume(&broker, version, "late").await;
    let payloads = receive_pipelined(&mut kept, 2).await;
    assert_eq!(payloads, ["m1", "m2"]);
}
