//! `/webhook_events`: the 14 events, each with its fields and a sample body.

use reqwest::{Method, StatusCode};

use crate::{Auth, start_node};

#[tokio::test]
async fn the_event_catalogue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let (status, events) = node
        .call(&token, Method::GET, "/webhook_events", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = events.as_array().expect("a list");
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        hookmq_broker::hooks::EventKind::ALL.map(hookmq_broker::hooks::EventKind::name)
    );
    for event in events {
        let name = event["event"].as_str().expect("name");
        let sample = event["sample"].as_object().expect("sample object");
        assert_eq!(sample["event"], name, "the sample is of its event");
        assert_eq!(sample["node"], "hookmq@127.0.0.1");
        let mut keys: Vec<&str> = sample.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let fields: Vec<&str> = event["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        assert_eq!(fields, keys, "{name}: fields are the sample's keys");
        let alarm = name.starts_with("alarm.");
        let wanted: &[&str] = if alarm {
            &[
                "event",
                "timestamp",
                "node",
                "metadata",
                "name",
                "details",
                "message",
                "activated_at",
            ]
        } else {
            &["event", "timestamp", "node", "metadata", "clientid"]
        };
        for common in wanted {
            assert!(fields.contains(common), "{name} lacks {common}");
        }
        let expected_kind = if name.starts_with("message.") || name.starts_with("delivery.") {
            "message"
        } else if alarm {
            "alarm"
        } else {
            "client"
        };
        assert_eq!(event["kind"], expected_kind, "{name}");
        assert!(event["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(event["description"].as_str().is_some_and(|t| t.len() > 10));
    }
    let publish = &events[7];
    assert_eq!(publish["event"], "message.publish");
    assert_eq!(publish["sample"]["topic"], "t/1");
    assert_eq!(
        publish["sample"]["payload"],
        r#"{ "msg": "Hello Webhook" }"#
    );
    assert!(
        publish["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "payload"))
    );

    let (status, _) = node
        .send(Auth::None, Method::GET, "/webhook_events", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
