//! Delivery semantics: QoS, retained messages, no-local, `$` topics, shared subscriptions.

use std::time::Duration;

use bytes::Bytes;
use hookmq_broker::config::QUEUED_MESSAGE_OVERHEAD;
use hookmq_codec::{
    Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling,
    SubscriptionOptions,
};
use test_case::test_case;

use crate::support::{RawClient, TestBroker};

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn qos_is_the_minimum_of_publish_and_subscription(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut low = RawClient::connect(broker.tcp, version, "low").await;
    low.subscribe(1, "d", QoS::AtMostOnce).await;
    let mut high = RawClient::connect(broker.tcp, version, "high").await;
    high.subscribe(1, "d", QoS::ExactlyOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    publisher.publish("d", b"x", QoS::AtLeastOnce, 1).await;
    assert_eq!(low.receive_publish().await.qos, QoS::AtMostOnce);
    assert_eq!(high.receive_publish().await.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn max_qos_caps_the_grant() {
    let broker = TestBroker::start_with(|c| c.mqtt.max_qos = 1).await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "c").await;
    let ack = client.subscribe(1, "m", QoS::ExactlyOnce).await;
    assert_eq!(ack.reason_codes, [ReasonCode::GRANTED_QOS_1]);
    // [MQTT-3.2.2-11]: publishing above the maximum is a protocol violation.
    client
        .send(Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: "m".into(),
            packet_id: 1,
            ..Publish::default()
        }))
        .await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::QOS_NOT_SUPPORTED)
    );
}

#[test_case(ProtocolVersion::V3_1_1; "v311")]
#[test_case(ProtocolVersion::V5; "v5")]
#[tokio::test]
async fn retained_messages_are_stored_replaced_and_cleared(version: ProtocolVersion) {
    let broker = TestBroker::start().await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    let retained = |payload: &'static [u8], id| Publish {
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "status/door".into(),
        packet_id: id,
        payload: Bytes::from_static(payload),
        ..Publish::default()
    };
    publisher.publish_packet(retained(b"open", 1)).await;
    publisher.publish_packet(retained(b"closed", 2)).await;
    let mut late = RawClient::connect(broker.tcp, version, "late").await;
    late.subscribe(1, "status/#", QoS::AtLeastOnce).await;
    let got = late.receive_publish().await;
    assert!(got.retain, "retained messages arrive with RETAIN set");
    assert_eq!(&got.payload[..], b"closed");
    // A live message is not flagged retained for a plain subscription.
    publisher.publish_packet(retained(b"ajar", 3)).await;
    let live = late.receive_publish().await;
    assert_eq!((&live.payload[..], live.retain), (&b"ajar"[..], false));
    // An empty retained payload clears the topic.
    publisher.publish_packet(retained(b"", 4)).await;
    late.receive_publish().await;
    let mut later = RawClient::connect(broker.tcp, version, "later").await;
    later.subscribe(1, "status/#", QoS::AtLeastOnce).await;
    later.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(broker.handle.stats().retained, 0);
}

#[tokio::test]
async fn retain_handling_and_retain_as_published() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    publisher
        .publish_packet(Publish {
            retain: true,
            topic: "r/1".into(),
            payload: Bytes::from_static(b"kept"),
            ..Publish::default()
        })
        .await;
    let mut client = RawClient::connect(broker.tcp, version, "c").await;
    let options = |retain_handling, retain_as_published| SubscriptionOptions {
        qos: QoS::AtMostOnce,
        retain_handling,
        retain_as_published,
        no_local: false,
    };
    client
        .subscribe_with(
            1,
            "r/#",
            options(RetainHandling::DoNotSend, false),
            Properties::default(),
        )
        .await;
    client.expect_silence(Duration::from_millis(200)).await;
    client
        .subscribe_with(
            2,
            "r/+",
            options(RetainHandling::SendIfNew, true),
            Properties::default(),
        )
        .await;
    assert_eq!(&client.receive_publish().await.payload[..], b"kept");
    client
        .subscribe_with(
            3,
            "r/+",
            options(RetainHandling::SendIfNew, true),
            Properties::default(),
        )
        .await;
    client.expect_silence(Duration::from_millis(200)).await;
    // Retain-as-published keeps the flag on live messages for r/+ but not for r/#; both
    // match, so one copy comes, with the flag kept as one of them asks.
    publisher
        .publish_packet(Publish {
            retain: true,
            topic: "r/1".into(),
            payload: Bytes::from_static(b"new"),
            ..Publish::default()
        })
        .await;
    assert!(client.receive_publish().await.retain);
    client.expect_silence(Duration::from_millis(200)).await;
    publisher
        .publish_packet(Publish {
            retain: true,
            topic: "r/1/deeper".into(),
            payload: Bytes::from_static(b"r/# only"),
            ..Publish::default()
        })
        .await;
    assert!(!client.receive_publish().await.retain);
}

#[tokio::test]
async fn no_local_skips_own_messages() {
    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "echo").await;
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..Default::default()
    };
    client
        .subscribe_with(1, "chat", options, Properties::default())
        .await;
    client.publish("chat", b"me", QoS::AtLeastOnce, 1).await;
    client.expect_silence(Duration::from_millis(200)).await;
    broker
        .events
        .wait_for("echo", "delivery.dropped(no_local)")
        .await;
    let mut other = RawClient::connect(broker.tcp, ProtocolVersion::V5, "other").await;
    other.publish("chat", b"you", QoS::AtLeastOnce, 1).await;
    assert_eq!(&client.receive_publish().await.payload[..], b"you");
}

#[tokio::test]
async fn dollar_topics_need_explicit_filters() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V3_1_1;
    let mut all = RawClient::connect(broker.tcp, version, "all").await;
    all.subscribe(1, "#", QoS::AtMostOnce).await;
    all.subscribe(2, "+/status", QoS::AtMostOnce).await;
    let mut sys = RawClient::connect(broker.tcp, version, "sys").await;
    sys.subscribe(1, "$SYS/#", QoS::AtMostOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    publisher
        .publish("$SYS/status", b"s", QoS::AtMostOnce, 0)
        .await;
    assert_eq!(&*sys.receive_publish().await.topic, "$SYS/status");
    all.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn shared_subscription_members_take_turns() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let mut a = RawClient::connect(broker.tcp, version, "a").await;
    let mut b = RawClient::connect(broker.tcp, version, "b").await;
    for client in [&mut a, &mut b] {
        let ack = client
            .subscribe(1, "$share/workers/jobs/+", QoS::AtLeastOnce)
            .await;
        assert_eq!(ack.reason_codes, [ReasonCode::GRANTED_QOS_1]);
    }
    let mut publisher = RawClient::connect(broker.tcp, ProtocolVersion::V3_1_1, "p").await;
    for i in 0..10u16 {
        publisher
            .publish("jobs/x", i.to_string().as_bytes(), QoS::AtLeastOnce, i + 1)
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(a.receive_publish().await.payload);
        got.push(b.receive_publish().await.payload);
    }
    got.sort();
    let mut expected: Vec<Bytes> = (0..10).map(|i: u16| Bytes::from(i.to_string())).collect();
    expected.sort();
    assert_eq!(got, expected, "each message reaches exactly one member");
    a.expect_silence(Duration::from_millis(100)).await;
    b.expect_silence(Duration::from_millis(100)).await;
    let names = broker.events.names("a");
    assert!(names.contains(&"session.subscribed".to_owned()));
}

#[tokio::test]
async fn shared_subscriptions_reject_no_local_and_can_be_disabled() {
    let broker = TestBroker::start_with(|c| c.mqtt.shared_subscription = false).await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "c").await;
    let ack = client.subscribe(1, "$share/g/t", QoS::AtMostOnce).await;
    assert_eq!(
        ack.reason_codes,
        [ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED]
    );

    let broker = TestBroker::start().await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "c").await;
    let options = SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    client
        .send(Packet::Subscribe(hookmq_codec::Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            subscriptions: vec![hookmq_codec::SubscriptionRequest {
                filter: "$share/g/t".into(),
                options,
            }],
        }))
        .await;
    assert_eq!(
        client.expect_close().await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );
}

#[tokio::test]
async fn invalid_filters_get_failure_codes() {
    let broker = TestBroker::start_with(|c| c.mqtt.wildcard_subscription = false).await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V5, "c").await;
    let ack = client.subscribe(1, "a/#/b", QoS::AtMostOnce).await;
    assert_eq!(ack.reason_codes, [ReasonCode::TOPIC_FILTER_INVALID]);
    let ack = client.subscribe(2, "a/+", QoS::AtMostOnce).await;
    assert_eq!(
        ack.reason_codes,
        [ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED]
    );
    let mut v3 = RawClient::connect(broker.tcp, ProtocolVersion::V3_1_1, "v3").await;
    let ack = v3.subscribe(1, "a/#/b", QoS::AtMostOnce).await;
    assert_eq!(ack.reason_codes.len(), 1);
    assert!(ack.reason_codes[0].is_error(), "v3 failure is 0x80");
}

#[tokio::test]
async fn slow_subscriber_overflow_is_counted_and_fast_ones_unaffected() {
    // Room for ten of these messages (topic "f", two bytes of payload) by either bound.
    let broker = TestBroker::start_with(|c| {
        c.mqtt.max_queue_len = 10;
        c.mqtt.max_queue_bytes = 10 * (3 + QUEUED_MESSAGE_OVERHEAD);
        c.mqtt.max_inflight = 1;
    })
    .await;
    let version = ProtocolVersion::V5;
    let mut slow = RawClient::connect(broker.tcp, version, "slow").await;
    slow.subscribe(1, "f", QoS::AtLeastOnce).await;
    let mut fast = RawClient::connect(broker.tcp, version, "fast").await;
    fast.subscribe(1, "f", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    for i in 1..=30u16 {
        publisher
            .publish("f", &i.to_be_bytes(), QoS::AtLeastOnce, i)
            .await;
        fast.receive_publish().await;
    }
    // The slow one holds one in flight and ten queued: nineteen were dropped.
    broker
        .events
        .wait_until("19 drops", |events| {
            events
                .iter()
                .filter(|e| crate::support::events::describe(e) == "delivery.dropped(queue_full)")
                .count()
                == 19
        })
        .await;
    assert_eq!(broker.handle.stats().deliveries_dropped, 19);
    let mut got = 0;
    while let Ok(Some(Packet::Publish(p))) = slow.try_recv(Duration::from_millis(300)).await {
        slow.acknowledge(&p).await;
        got += 1;
    }
    assert_eq!(got, 11);
}

/// With the longest coalescing window, the answers to a burst of PUBLISHes from a client
/// that streams are held for the window and then all sent (a connection's first holds of
/// answers are held whatever the client's window: they learn it), and a subscriber whose in-flight
/// window holds one message gets each delivery (a full window is never held: its
/// acknowledgement is what lets the next go).
#[tokio::test]
async fn held_writes_all_go_out() {
    const WINDOW: Duration = Duration::from_millis(10);
    let broker = TestBroker::start_with(|c| {
        c.mqtt.write_coalesce_us = WINDOW.as_micros() as u64;
        c.mqtt.max_inflight = 1;
    })
    .await;
    let version = ProtocolVersion::V3_1_1;
    let mut subscriber = RawClient::connect(broker.tcp, version, "s").await;
    subscriber.subscribe(1, "b", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(broker.tcp, version, "p").await;
    // A first answer makes the connection one that streams: it wrote moments ago (less
    // than ten windows, 100 ms, before the burst comes).
    publisher.publish("b", &[0, 0], QoS::AtLeastOnce, 9).await;
    let mut burst = bytes::BytesMut::new();
    for id in 1..=5u16 {
        let publish = Publish {
            qos: QoS::AtLeastOnce,
            topic: "b".into(),
            packet_id: id,
            payload: Bytes::from(id.to_be_bytes().to_vec()),
            ..Publish::default()
        };
        hookmq_codec::encode(&Packet::Publish(publish), version, &mut burst).expect("encodes");
    }
    let sent = std::time::Instant::now();
    publisher.send_bytes(&burst).await;
    for id in 1..=5u16 {
        let answer = publisher.recv().await;
        assert!(sent.elapsed() >= WINDOW, "the answers were held");
        match answer {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, id),
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    assert_eq!(subscriber.receive_publish().await.payload[..], [0, 0]);
    for id in 1..=5u16 {
        let publish = subscriber.receive_publish().await;
        assert_eq!(publish.payload[..], id.to_be_bytes());
    }
}
