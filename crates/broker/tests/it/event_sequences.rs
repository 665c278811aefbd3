//! The events typical sessions produce, in order.

use hookmq_broker::{Broker, hooks::EventMask};
use hookmq_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use test_case::test_case;

use crate::support::{EventLog, RawClient, TestBroker, test_config};

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn publish_without_subscribers(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, version, "emqx_c").await;
    client
        .publish("t/1", br#"{ "msg": "Hello Webhook" }"#, QoS::AtMostOnce, 0)
        .await;
    client.disconnect().await;
    broker
        .events
        .wait_for("emqx_c", "client.disconnected(normal)")
        .await;
    assert_eq!(
        broker.events.names("emqx_c"),
        [
            "client.check_authn_complete(success)",
            "client.connected",
            "client.connack(success)",
            "client.check_authz_complete(publish:allow)",
            "message.publish",
            "message.dropped(no_subscribers)",
            "client.disconnected(normal)",
        ]
    );
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn subscribe_publish_ack_unsubscribe(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::connect(broker.tcp, version, "sub").await;
    let ack = subscriber.subscribe(1, "room/+", QoS::ExactlyOnce).await;
    assert_eq!(ack.reason_codes, [ReasonCode::GRANTED_QOS_2]);
    let mut publisher = RawClient::connect(broker.tcp, version, "pub").await;
    for (qos, id) in [
        (QoS::AtMostOnce, 0),
        (QoS::AtLeastOnce, 1),
        (QoS::ExactlyOnce, 2),
    ] {
        let code = publisher.publish("room/1", b"hi", qos, id).await;
        assert_eq!(code, ReasonCode::SUCCESS);
        let got = subscriber.receive_publish().await;
        assert_eq!(
            (&*got.topic, &got.payload[..], got.qos),
            ("room/1", &b"hi"[..], qos)
        );
    }
    subscriber
        .send(hookmq_codec::Packet::Unsubscribe(
            hookmq_codec::Unsubscribe {
                packet_id: 9,
                filters: vec!["room/+".into()],
                ..Default::default()
            },
        ))
        .await;
    assert!(matches!(
        subscriber.recv().await,
        Some(hookmq_codec::Packet::UnsubAck(_))
    ));
    subscriber.disconnect().await;
    publisher.disconnect().await;
    broker
        .events
        .wait_for("sub", "client.disconnected(normal)")
        .await;
    broker
        .events
        .wait_for("pub", "client.disconnected(normal)")
        .await;
    assert_eq!(
        broker.events.names("sub"),
        [
            "client.check_authn_complete(success)",
            "client.connected",
            "client.connack(success)",
            "client.check_authz_complete(subscribe:allow)",
            "session.subscribed",
            "message.delivered",
            "message.delivered",
            "message.acked",
            "message.delivered",
            "message.acked",
            "session.unsubscribed",
            "client.disconnected(normal)",
        ]
    );
    assert_eq!(
        broker.events.names("pub"),
        [
            "client.check_authn_complete(success)",
            "client.connected",
            "client.connack(success)",
            "client.check_authz_complete(publish:allow)",
            "message.publish",
            "client.check_authz_complete(publish:allow)",
            "message.publish",
            "client.check_authz_complete(publish:allow)",
            "message.publish",
            "client.disconnected(normal)",
        ]
    );
}

#[tokio::test]
async fn message_ids_are_emqx_style_and_shared_by_the_events_of_one_message() {
    let broker = TestBroker::start().await;
    let mut subscriber = RawClient::connect(broker.tcp, ProtocolVersion::V5, "s").await;
    subscriber.subscribe(1, "x", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, ProtocolVersion::V5, "p").await;
    publisher.publish("x", b"1", QoS::AtLeastOnce, 1).await;
    subscriber.receive_publish().await;
    broker.events.wait_for("s", "message.acked").await;
    let ids: Vec<String> = broker
        .events
        .all()
        .iter()
        .filter_map(|e| e.data.message().map(|m| m.id.to_string()))
        .collect();
    assert_eq!(ids.len(), 3, "publish, delivered, acked");
    assert!(ids.iter().all(|id| id == &ids[0]));
    assert_eq!(ids[0].len(), 32);
    assert!(
        ids[0]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
}

/// A broker bound but not yet accepting holds a client that connects (a reconnect racing a
/// restart) until it accepts: a listener attached in between sees the client's whole
/// session, from its authentication on.
#[tokio::test]
async fn a_broker_bound_but_not_accepting_holds_clients_for_its_listeners() {
    let mut broker = Broker::bind(test_config()).await.expect("binds");
    let address = broker.addresses().tcp.expect("tcp listener");
    // The kernel completes the TCP handshake and takes the CONNECT before anyone accepts.
    let mut client = RawClient::open(address, ProtocolVersion::V5).await;
    client
        .send(Packet::Connect(Box::new(RawClient::connect_packet(
            ProtocolVersion::V5,
            "early",
        ))))
        .await;
    let events = EventLog::new(broker.handle().subscribe_events(EventMask::ALL, 100));
    // Turns of the runtime in which an accepting broker would take the client in.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(events.all().is_empty(), "served before accepting");
    broker.accept();
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::SUCCESS),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client.disconnect().await;
    events
        .wait_for("early", "client.disconnected(normal)")
        .await;
    assert_eq!(
        events.names("early")[..2],
        ["client.check_authn_complete(success)", "client.connected"]
    );
}
