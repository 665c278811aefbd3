//! Malformed and hostile input: each is closed with the right reason code, and the broker
//! keeps serving everyone else.

use std::time::Duration;

use hookmq_codec::{Packet, ProtocolVersion, Publish, QoS, ReasonCode};
use test_case::test_case;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{RawClient, TestBroker};

/// Checks that a bystander connected before the attack still works.
async fn still_serving(broker: &TestBroker, bystander: &mut RawClient) {
    bystander.send(Packet::PingReq).await;
    assert_eq!(bystander.recv().await, Some(Packet::PingResp));
    let mut fresh = RawClient::connect(broker.tcp, ProtocolVersion::V5, "fresh").await;
    fresh.subscribe(1, "alive", QoS::AtLeastOnce).await;
    bystander
        .publish("alive", b"yes", QoS::AtLeastOnce, 7)
        .await;
    assert_eq!(&fresh.receive_publish().await.payload[..], b"yes");
}

#[test_case(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], ReasonCode::MALFORMED_PACKET; "remaining length over four bytes")]
#[test_case(&[0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00], ReasonCode::MALFORMED_PACKET; "invalid utf8 topic")]
#[test_case(&[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'+', 0x00], ReasonCode::TOPIC_NAME_INVALID; "wildcard in topic name")]
#[test_case(&[0x00, 0x00], ReasonCode::MALFORMED_PACKET; "packet type zero")]
#[test_case(&[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00], ReasonCode::PROTOCOL_ERROR; "packet id zero")]
#[test_case(&[0x82, 0x03, 0x00, 0x01, 0x00], ReasonCode::PROTOCOL_ERROR; "subscribe without filters")]
#[test_case(&[0x20, 0x03, 0x00, 0x00, 0x00], ReasonCode::PROTOCOL_ERROR; "connack from a client")]
#[test_case(&[0x30, 0x05, 0x00, 0x00, 0x02, 0x23, 0x00], ReasonCode::MALFORMED_PACKET; "truncated property")]
#[tokio::test]
async fn malformed_packets_get_a_reason_and_a_close(bytes: &[u8], expected: ReasonCode) {
    let broker = TestBroker::start().await;
    let mut bystander = RawClient::connect(broker.tcp, ProtocolVersion::V5, "bystander").await;
    let mut attacker = RawClient::connect(broker.tcp, ProtocolVersion::V5, "attacker").await;
    attacker.send_bytes(bytes).await;
    assert_eq!(attacker.expect_close().await, Some(expected));
    broker
        .events
        .wait_for(
            "attacker",
            &format!("client.disconnected({})", expected.name()),
        )
        .await;
    still_serving(&broker, &mut bystander).await;
}

#[tokio::test]
async fn v3_violations_close_without_disconnect() {
    let broker = TestBroker::start().await;
    let mut bystander = RawClient::connect(broker.tcp, ProtocolVersion::V5, "bystander").await;
    let mut attacker = RawClient::connect(broker.tcp, ProtocolVersion::V3_1_1, "attacker").await;
    attacker
        .send_bytes(&[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'#'])
        .await;
    assert_eq!(attacker.expect_close().await, None);
    still_serving(&broker, &mut bystander).await;
}

#[tokio::test]
async fn oversized_packet_is_refused_from_its_header() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_packet_size = 1024).await;
    let mut bystander = RawClient::connect(broker.tcp, ProtocolVersion::V5, "bystander").await;
    let mut attacker = RawClient::open(broker.tcp, ProtocolVersion::V5).await;
    let ack = attacker
        .handshake(RawClient::connect_packet(ProtocolVersion::V5, "big"))
        .await;
    assert_eq!(
        ack.properties.maximum_packet_size,
        Some(1024),
        "advertised in CONNACK"
    );
    // Only the header of a 100 MB PUBLISH: the broker must not wait for the body.
    attacker.send_bytes(&[0x30, 0x80, 0x80, 0x80, 0x30]).await;
    assert_eq!(
        attacker.expect_close().await,
        Some(ReasonCode::PACKET_TOO_LARGE)
    );
    still_serving(&broker, &mut bystander).await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "twice").await;
    client
        .send(Packet::Connect(Box::new(RawClient::connect_packet(
            ProtocolVersion::V5,
            "twice",
        ))))
        .await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    broker
        .events
        .wait_for("twice", "client.disconnected(protocol_error)")
        .await;
}

#[tokio::test]
async fn first_packet_must_be_connect() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, ProtocolVersion::V3_1_1).await;
    client.send(Packet::PingReq).await;
    assert_eq!(client.expect_close().await, None);
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_1() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, ProtocolVersion::V3_1_1).await;
    // CONNECT "MQTT" level 9.
    client
        .send_bytes(&[
            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x09, 0x02, 0x00, 0x3C, 0x00, 0x00,
        ])
        .await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason_code, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(client.recv().await, None);
}

#[tokio::test]
async fn malformed_v5_connect_gets_a_v5_connack() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, ProtocolVersion::V5).await;
    // v5 CONNECT whose properties hold an unknown identifier 0x7F.
    client
        .send_bytes(&[
            0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x02, 0x7F,
            0x00, 0x00, 0x00,
        ])
        .await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::MALFORMED_PACKET),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test_case(ProtocolVersion::V3_1_1, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID; "v311 empty id without clean session")]
#[tokio::test]
async fn empty_client_id_rules(version: ProtocolVersion, expected: ReasonCode) {
    let broker = TestBroker::start().await;
    let mut client = RawClient::open(broker.tcp, version).await;
    let mut connect = RawClient::connect_packet(version, "");
    connect.clean_start = false;
    assert_eq!(client.handshake(connect).await.reason_code, expected);
}

#[tokio::test]
async fn slow_loris_connect_is_cut_at_the_connect_timeout() {
    let broker =
        TestBroker::start_with(|c| c.mqtt.connect_timeout = Duration::from_millis(500)).await;
    let mut bystander = RawClient::connect(broker.tcp, ProtocolVersion::V5, "bystander").await;
    let mut socket = tokio::net::TcpStream::connect(broker.tcp)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let connect = [
        0x10u8, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
    ];
    let mut closed = false;
    for byte in connect {
        if socket.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 8];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), socket.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "the broker kept a dribbling CONNECT open");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1100),
        "closed after {elapsed:?}"
    );
    still_serving(&broker, &mut bystander).await;
}

#[tokio::test]
async fn silent_connection_is_closed() {
    let broker =
        TestBroker::start_with(|c| c.mqtt.connect_timeout = Duration::from_millis(300)).await;
    let mut socket = tokio::net::TcpStream::connect(broker.tcp)
        .await
        .expect("connect");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "closed, not left open: {read:?}"
    );
}

#[tokio::test]
async fn connection_limit_closes_extra_connections() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_connections = 2).await;
    let _a = RawClient::connect(broker.tcp, ProtocolVersion::V5, "a").await;
    let _b = RawClient::connect(broker.tcp, ProtocolVersion::V5, "b").await;
    let mut c = RawClient::open(broker.tcp, ProtocolVersion::V5).await;
    c.send(Packet::Connect(Box::new(RawClient::connect_packet(
        ProtocolVersion::V5,
        "c",
    ))))
    .await;
    assert_eq!(c.recv().await, None);
    assert_eq!(broker.handle.stats().connections_refused, 1);
}

#[tokio::test]
async fn topic_alias_abuse_is_rejected() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_topic_alias = 5).await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "alias").await;
    let mut publish = Publish {
        topic: "".into(),
        ..Publish::default()
    };
    publish.properties.topic_alias = Some(3); // never set up
    client.send(Packet::Publish(publish)).await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );

    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "alias2").await;
    let mut publish = Publish {
        topic: "t".into(),
        ..Publish::default()
    };
    publish.properties.topic_alias = Some(6); // above the maximum
    client.send(Packet::Publish(publish)).await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::TOPIC_ALIAS_INVALID)
    );
}

#[tokio::test]
async fn subscription_identifier_from_a_client_is_a_protocol_error() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "sneaky").await;
    let mut publish = Publish {
        topic: "t".into(),
        ..Publish::default()
    };
    publish.properties.subscription_identifiers = vec![7];
    client.send(Packet::Publish(publish)).await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );
}

/// A DISCONNECT the server sends reaches a client that is still sending: the server closes
/// its side, reads and drops what comes after, and closes only once the client has closed
/// its own. Closing at once would answer the client's next packets with a reset, and a
/// client whose write fails with it (as paho and rumqttc do) gives up before reading the
/// DISCONNECT (MQTT-4.13.1: the reason code is sent before the connection is closed).
#[tokio::test]
async fn a_server_disconnect_reaches_a_client_still_sending() {
    let broker = TestBroker::start_with(|c| c.mqtt.receive_maximum = 2).await;
    let mut stream = tokio::net::TcpStream::connect(broker.tcp)
        .await
        .expect("connects");
    let mut out = bytes::BytesMut::new();
    let packet = Packet::Connect(Box::new(RawClient::connect_packet(
        ProtocolVersion::V5,
        "greedy",
    )));
    hookmq_codec::encode(&packet, ProtocolVersion::V5, &mut out).expect("encodes");
    // Three QoS 2 messages without PUBREL: one more than the Receive Maximum of 2.
    for packet_id in 1..=3 {
        let publish = Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: "t".into(),
            packet_id,
            payload: bytes::Bytes::from_static(b"x"),
            ..Publish::default()
        });
        hookmq_codec::encode(&publish, ProtocolVersion::V5, &mut out).expect("encodes");
    }
    stream.write_all(&out).await.expect("writes");
    // The client goes on sending (its PUBRELs) while the broker closes.
    let mut release = bytes::BytesMut::new();
    let pubrel = Packet::PubRel(hookmq_codec::PubResponse::new(1));
    hookmq_codec::encode(&pubrel, ProtocolVersion::V5, &mut release).expect("encodes");
    // Spread over ~100 ms: the broker handles the violation within a loopback round trip
    // (well under 5 ms), so most writes land after its DISCONNECT, and all of them within
    // its 1 s linger.
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if let Err(error) = stream.write_all(&release).await {
            panic!("write {i} after the broker's DISCONNECT failed: {error}");
        }
    }
    stream.shutdown().await.expect("closes its side");
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the broker closes");
    assert!(read.is_ok(), "a clean close, not a reset: {read:?}");
    let mut buf = bytes::BytesMut::from(&received[..]);
    let mut packets = Vec::new();
    while let Ok(Some(packet)) = hookmq_codec::decode(&mut buf, Some(ProtocolVersion::V5), u32::MAX)
    {
        packets.push(packet);
    }
    assert!(
        packets.iter().any(|p| matches!(p,
            Packet::Disconnect(d) if d.reason_code == ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)),
        "DISCONNECT 0x93 read: {packets:?}"
    );
}
