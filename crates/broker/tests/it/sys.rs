//! `$SYS` topics: client events as EMQX's JSON, the heartbeat (`uptime`, `datetime`) and the
//! broker's description (`version` retained), each at its interval.

use std::time::Duration;

use hookmq_codec::{ProtocolVersion, QoS};
use serde_json::Value;

use crate::support::{RawClient, TestBroker};

#[tokio::test]
async fn clients_coming_and_going_are_published_under_sys() {
    let broker = TestBroker::start_with(|config| {
        let events = &mut config.sys_topics.sys_event_messages;
        events.client_connected = true;
        events.client_disconnected = true;
        events.client_subscribed = true;
    })
    .await;
    let mut watcher = RawClient::connect(broker.tcp, ProtocolVersion::V5, "watcher").await;
    watcher
        .subscribe(1, "$SYS/brokers/+/clients/c1/#", QoS::AtMostOnce)
        .await;
    let mut client = RawClient::connect(broker.tcp, ProtocolVersion::V3_1_1, "c1").await;
    let connected = watcher.receive_publish().await;
    assert!(
        connected.topic.ends_with("/clients/c1/connected"),
        "{}",
        &*connected.topic
    );
    assert!(connected.topic.starts_with("$SYS/brokers/"));
    let payload: Value = serde_json::from_slice(&connected.payload).expect("JSON");
    assert_eq!(payload["clientid"], "c1");
    assert_eq!(payload["username"], "undefined");
    assert_eq!(payload["proto_name"], "MQTT");
    assert_eq!(payload["proto_ver"], 4);
    assert_eq!(payload["ipaddress"], "127.0.0.1");
    assert_eq!(payload["keepalive"], 60);
    assert_eq!(payload["clean_start"], true);
    assert!(payload["connected_at"].as_u64().is_some_and(|at| at > 0));

    client.subscribe(1, "t/#", QoS::AtLeastOnce).await;
    let subscribed = watcher.receive_publish().await;
    assert!(subscribed.topic.ends_with("/clients/c1/subscribed"));
    let payload: Value = serde_json::from_slice(&subscribed.payload).expect("JSON");
    assert_eq!(payload["topic"], "t/#");
    assert_eq!(payload["subopts"]["qos"], 1);

    client.disconnect().await;
    let gone = watcher.receive_publish().await;
    assert!(gone.topic.ends_with("/clients/c1/disconnected"));
    let payload: Value = serde_json::from_slice(&gone.payload).expect("JSON");
    assert_eq!(payload["reason"], "normal");
    assert!(payload["disconnected_at"].as_u64().is_some_and(|at| at > 0));
}

#[tokio::test]
async fn the_heartbeat_and_the_description_come_at_their_intervals() {
    let broker = TestBroker::start_with(|config| {
        config.sys_topics.sys_heartbeat_interval = Duration::from_millis(100);
        config.sys_topics.sys_msg_interval = Duration::from_millis(200);
    })
    .await;
    let mut watcher = RawClient::connect(broker.tcp, ProtocolVersion::V5, "watcher").await;
    watcher.subscribe(1, "$SYS/#", QoS::AtMostOnce).await;
    let mut seen = std::collections::HashMap::new();
    while !["uptime", "datetime", "version", "stats/connections/count"]
        .iter()
        .all(|name| seen.contains_key(*name))
    {
        let message = watcher.receive_publish().await;
        let topic = message.topic.to_string();
        let name = topic.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
        seen.insert(name, String::from_utf8_lossy(&message.payload).into_owned());
    }
    assert!(seen["uptime"].parse::<u64>().is_ok(), "{seen:?}");
    assert!(seen["datetime"].ends_with('Z'), "{seen:?}");
    assert_eq!(seen["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(seen["stats/connections/count"], "1", "the watcher");

    // Version and description are retained: a later subscriber gets them at once.
    let mut late = RawClient::connect(broker.tcp, ProtocolVersion::V5, "late").await;
    late.subscribe(1, "$SYS/brokers/+/version", QoS::AtMostOnce)
        .await;
    let retained = late.receive_publish().await;
    assert!(retained.retain, "retained");
}
