//! The requests carry EMQX's fields, event by event.

use std::collections::BTreeSet;

use rumqttc::v5::mqttbytes::QoS;
use serde_json::Value;

use crate::support::{Mqtt, Receiver, Stack, mosquitto_pub};

fn keys(body: &Value) -> BTreeSet<String> {
    body.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(fields: &str) -> BTreeSet<String> {
    fields
        .split_whitespace()
        .chain(["event", "timestamp", "node", "metadata"])
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_seed_end_to_end() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("my_webhook", &receiver.url("/"), |_| {})
        .await;
    mosquitto_pub(
        &stack,
        &[
            "-V",
            "mqttv5",
            "-i",
            "emqx_c",
            "-t",
            "t/1",
            "-m",
            r#"{ "msg": "Hello Webhook" }"#,
        ],
    )
    .await;
    let requests = receiver.wait_for(7).await;
    let events: Vec<String> = requests.iter().map(|r| r.event()).collect();
    assert_eq!(
        events,
        [
            "client.check_authn_complete",
            "client.connected",
            "client.connack",
            "client.check_authz_complete",
            "message.publish",
            "message.dropped",
            "client.disconnected",
        ]
    );
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = request.json();
        assert_eq!(body["node"], "emqx@127.0.0.1");
        assert_eq!(body["metadata"]["rule_id"], "my_webhook");
        assert_eq!(body["clientid"], "emqx_c");
        assert_eq!(body["username"], "undefined");
        assert!(
            body["timestamp"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000)
        );
    }
    let connected = requests[1].json();
    assert_eq!(connected["proto_name"], "MQTT");
    assert_eq!(connected["proto_ver"], 5);
    assert_eq!(connected["mountpoint"], "undefined");
    assert_eq!(connected["is_bridge"], false);
    assert_eq!(connected["clean_start"], true);
    assert_eq!(
        connected["conn_props"]["User-Property"],
        serde_json::json!({})
    );
    assert_eq!(connected["sockname"], stack.mqtt.to_string());
    let peername = connected["peername"].as_str().expect("peername");
    assert!(peername.starts_with("127.0.0.1:"), "{peername}");
    assert_eq!(requests[2].json()["reason_code"], "success");
    let authz = requests[3].json();
    assert_eq!(
        (
            authz["action"].as_str(),
            authz["result"].as_str(),
            authz["topic"].as_str()
        ),
        (Some("publish"), Some("allow"), Some("t/1"))
    );
    assert_eq!(authz["peerhost"], "127.0.0.1");
    let publish = requests[4].json();
    assert_eq!(publish["payload"], r#"{ "msg": "Hello Webhook" }"#);
    assert_eq!(publish["topic"], "t/1");
    assert_eq!(publish["qos"], 0);
    assert_eq!(
        publish["flags"],
        serde_json::json!({"retain": false, "dup": false})
    );
    assert_eq!(
        publish["pub_props"],
        serde_json::json!({"User-Property": {}})
    );
    let id = publish["id"].as_str().expect("id");
    assert!(
        id.len() == 32
            && id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
        "{id}"
    );
    let dropped = requests[5].json();
    assert_eq!(dropped["reason"], "no_subscribers");
    assert_eq!(dropped["id"], id, "same message");
    assert_eq!(requests[6].json()["reason"], "normal");
}

#[tokio::test]
async fn every_event_has_exactly_emqx_columns() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack.webhook("all", &receiver.url("/"), |_| {}).await;
    let mut sub = Mqtt::connect(stack.mqtt, "sub").await;
    sub.subscribe("t/#", QoS::AtLeastOnce, true).await;
    sub.publish("t/self", QoS::AtLeastOnce, "mine").await; // no-local: delivery.dropped
    let mut publisher = Mqtt::connect(stack.mqtt, "pub").await;
    publisher.publish("t/1", QoS::AtLeastOnce, "hello").await;
    sub.message().await; // rumqttc acknowledges: message.acked
    publisher
        .publish("elsewhere", QoS::AtMostOnce, "nobody")
        .await;
    sub.unsubscribe("t/#").await;
    sub.disconnect().await;
    publisher.disconnect().await;

    let expected = [
        (
            "client.connected",
            "clientid username mountpoint peername sockname proto_name proto_ver keepalive clean_start receive_maximum expiry_interval is_bridge conn_props connected_at client_attrs",
        ),
        (
            "client.connack",
            "reason_code clientid clean_start username peername sockname proto_name proto_ver keepalive expiry_interval connected_at conn_props",
        ),
        (
            "client.disconnected",
            "reason clientid username peername sockname proto_name proto_ver disconn_props disconnected_at connected_at client_attrs",
        ),
        (
            "client.check_authz_complete",
            "clientid username peerhost peername topic action authz_source result client_attrs",
        ),
        (
            "client.check_authn_complete",
            "clientid username peername reason_code is_superuser is_anonymous client_attrs",
        ),
        (
            "session.subscribed",
            "clientid username peerhost peername topic qos sub_props client_attrs",
        ),
        (
            "session.unsubscribed",
            "clientid username peerhost peername topic qos unsub_props client_attrs",
        ),
        (
            "message.publish",
            "id clientid username payload peerhost peername topic qos flags pub_props publish_received_at client_attrs",
        ),
        (
            "message.delivered",
            "id from_clientid from_username clientid username payload peerhost peername topic qos flags pub_props publish_received_at",
        ),
        (
            "message.acked",
            "id from_clientid from_username clientid username payload peerhost peername topic qos flags pub_props publish_received_at puback_props",
        ),
        (
            "message.dropped",
            "id reason clientid username payload peerhost peername topic qos flags pub_props publish_received_at",
        ),
        (
            "delivery.dropped",
            "id reason from_clientid from_username clientid username payload peerhost peername topic qos flags pub_props publish_received_at",
        ),
    ];
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let seen: BTreeSet<String> = receiver.requests().iter().map(|r| r.event()).collect();
        if expected.iter().all(|(name, _)| seen.contains(*name)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing events; saw {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let requests = receiver.requests();
    for (name, fields) in expected {
        for request in requests.iter().filter(|r| r.event() == name) {
            assert_eq!(keys(&request.json()), set(fields), "{name}");
        }
    }
    let delivered = requests
        .iter()
        .find(|r| r.event() == "message.delivered")
        .expect("delivered")
        .json();
    assert_eq!(
        (
            delivered["from_clientid"].as_str(),
            delivered["clientid"].as_str()
        ),
        (Some("pub"), Some("sub"))
    );
    let no_local = requests
        .iter()
        .find(|r| r.event() == "delivery.dropped")
        .expect("dropped")
        .json();
    assert_eq!(no_local["reason"], "no_local");
    let unsubscribed = requests
        .iter()
        .find(|r| r.event() == "session.unsubscribed")
        .expect("unsub")
        .json();
    assert_eq!(unsubscribed["qos"], 1);
}

#[tokio::test]
async fn binary_payloads_survive_with_base64() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("b64", &receiver.url("/"), |s| {
            s.events = vec!["message.publish".into()];
            s.payload_encoding = hookmq_webhooks::spec::PayloadEncoding::Base64;
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "bin").await;
    let payload: Vec<u8> = (0..=255).collect();
    client
        .publish("bin/1", QoS::AtLeastOnce, payload.clone())
        .await;
    let request = receiver.wait_for(1).await.remove(0);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(request.json()["payload"].as_str().expect("payload string"))
        .expect("base64");
    assert_eq!(decoded, payload);
}

/// `$SYS` messages (here the one the broker publishes when a client connects) are left out
/// by default, as EMQX's `ignore_sys_message`; a webhook that asks for them gets them with
/// `flags.sys`.
#[tokio::test]
async fn sys_messages_are_left_out_unless_asked_for_and_carry_flags_sys() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    let sys_topics = |spec: &mut hookmq_webhooks::WebhookSpec| {
        spec.events = vec!["message.publish".into()];
        spec.topics = vec!["$SYS/#".into()];
    };
    stack
        .webhook("ignoring", &receiver.url("/ignoring"), sys_topics)
        .await;
    stack
        .webhook("taking", &receiver.url("/taking"), |spec| {
            sys_topics(spec);
            spec.ignore_sys_message = false;
        })
        .await;
    let _client = Mqtt::connect(stack.mqtt, "c").await;
    let requests = receiver.wait_for(1).await;
    let body = requests[0].json();
    assert_eq!(requests[0].path, "/taking");
    assert_eq!(
        body["topic"],
        "$SYS/brokers/emqx@127.0.0.1/clients/c/connected"
    );
    assert_eq!(body["flags"]["sys"], true, "{body}");
    assert_eq!(body["clientid"], "emqx_sys");
    // Both webhooks decided on the same emission: the other one took nothing.
    let ignoring = stack.engine.get("ignoring").expect("webhook").metrics;
    assert_eq!(ignoring.matched, 0, "{ignoring:#?}");
}
