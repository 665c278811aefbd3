//! Triggers (event kinds and topic filters), methods and templates.

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use test_case::test_case;

use crate::support::{Mqtt, Receiver, Stack};

#[tokio::test]
async fn topic_filters_and_event_selection() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("sensors", &receiver.url("/"), |s| {
            s.events = vec!["message.publish".into(), "client.connected".into()];
            s.topics = vec!["sensors/+/temp".into(), "#".into()];
        })
        .await;
    let narrow = Receiver::start().await;
    stack
        .webhook("narrow", &narrow.url("/"), |s| {
            s.events = vec!["message.publish".into()];
            s.topics = vec!["sensors/+/temp".into()];
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for topic in ["sensors/1/temp", "sensors/1/hum", "$SYS/x", "other"] {
        client.publish(topic, QoS::AtLeastOnce, "v").await;
    }
    client.disconnect().await;
    let got = receiver.wait_for(4).await;
    let events: Vec<(String, Option<String>)> = got
        .iter()
        .map(|r| (r.event(), r.json()["topic"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        events,
        [
            ("client.connected".to_owned(), None),
            (
                "message.publish".to_owned(),
                Some("sensors/1/temp".to_owned())
            ),
            (
                "message.publish".to_owned(),
                Some("sensors/1/hum".to_owned())
            ),
            ("message.publish".to_owned(), Some("other".to_owned())),
        ],
        "`#` does not match $SYS; disconnects are not selected"
    );
    let narrow = narrow.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(narrow.len(), 1);
    assert_eq!(narrow[0].json()["topic"], "sensors/1/temp");
}

#[test_case("put", true; "put")]
#[test_case("get", false; "get")]
#[test_case("delete", false; "delete")]
#[tokio::test]
async fn methods(method: &str, has_body: bool) {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    let method_value: hookmq_webhooks::spec::Method =
        serde_json::from_value(serde_json::json!(method)).expect("method");
    stack
        .webhook("m", &receiver.url("/hook"), |s| {
            s.method = method_value;
            s.events = vec!["message.publish".into()];
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "x").await;
    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(request.method, method.to_uppercase());
    assert_eq!(request.path, "/hook");
    assert_eq!(!request.body.is_empty(), has_body);
}

#[tokio::test]
async fn templates_fill_url_headers_and_body_with_escaping() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("tpl", &receiver.url("/devices/${clientid}?topic=${topic}"), |s| {
            s.events = vec!["message.publish".into()];
            s.headers.insert("x-device".into(), "${clientid}".into());
            s.headers.insert("authorization".into(), "Bearer static-token".into());
            s.body = Some(r#"{"device":"${clientid}","temp":${payload.temp},"note":"${payload.note}","raw":"${payload}"}"#.into());
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "dev 1").await;
    client
        .publish(
            "sensors/a b",
            QoS::AtLeastOnce,
            r#"{"temp": 21.5, "note": "he said \"hi\"\n"}"#,
        )
        .await;
    let request = receiver.wait_for(1).await.remove(0);
    assert_eq!(request.path, "/devices/dev%201?topic=sensors%2Fa%20b");
    assert_eq!(
        request.headers.get("x-device").map(|v| v.as_bytes()),
        Some(&b"dev 1"[..])
    );
    assert_eq!(
        request.headers.get("authorization").map(|v| v.as_bytes()),
        Some(&b"Bearer static-token"[..])
    );
    let body = request.json();
    assert_eq!(body["device"], "dev 1");
    assert_eq!(body["temp"], 21.5);
    assert_eq!(body["note"], "he said \"hi\"\n");
    assert_eq!(body["raw"], r#"{"temp": 21.5, "note": "he said \"hi\"\n"}"#);
}

#[tokio::test]
async fn a_header_rendering_cr_lf_is_left_out() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("h", &receiver.url("/"), |s| {
            s.events = vec!["message.publish".into()];
            s.headers.insert("x-payload".into(), "${payload}".into());
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client
        .publish("t", QoS::AtLeastOnce, "evil\r\nx-injected: 1")
        .await;
    let request = receiver.wait_for(1).await.remove(0);
    assert!(request.headers.get("x-payload").is_none());
    assert!(request.headers.get("x-injected").is_none());
}
