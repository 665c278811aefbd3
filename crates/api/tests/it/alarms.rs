//! `/alarms`: the memory check's alarm listed as EMQX lists alarms, deactivated by hand
//! (and published on `$SYS`), the history cleared.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rumqttc::v5::{AsyncClient, Event, MqttOptions, mqttbytes::QoS, mqttbytes::v5::Packet};
use serde_json::{Value, json};

use crate::{eventually, start_node_tuned};

#[tokio::test]
async fn the_memory_alarm_is_listed_deactivated_by_hand_and_published() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dashboard = hookmq_api::DashboardConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..hookmq_api::DashboardConfig::default()
    };
    // A watermark of 0%: any memory in use is above it.
    let node = start_node_tuned(dir.path(), dashboard, |config| {
        config.sysmon.os.mem_check_interval = Duration::from_millis(100);
        config.sysmon.os.sysmem_high_watermark = 0.0;
    })
    .await;
    let token = node.login().await;
    let active = || async {
        let (status, page) = node.call(&token, Method::GET, "/alarms", None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    };
    eventually("the memory alarm", || async {
        active().await["meta"]["count"] == 1
    })
    .await;
    let alarm = active().await["data"][0].clone();
    assert_eq!(alarm["name"], "high_system_memory_usage");
    assert_eq!(alarm["details"]["high_watermark"], 0.0);
    assert!(alarm["details"]["usage"].as_f64() > Some(0.0), "{alarm}");
    assert!(
        alarm["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("% mem usage")),
        "{alarm}"
    );
    assert!(
        alarm["activate_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{alarm}"
    );
    assert!(
        alarm["duration"].is_u64() && alarm.get("deactivate_at").is_none(),
        "{alarm}"
    );

    // Deactivated by hand: on $SYS, and in the history; the next check raises it again.
    let mut options = MqttOptions::new("alarm-watcher", "127.0.0.1", node.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .subscribe("$SYS/brokers/+/alarms/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let (published, mut heard) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = published.send(None).await;
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let body: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                    let _ = published.send(Some((topic, body))).await;
                }
                _ => {}
            }
        }
    });
    assert_eq!(heard.recv().await, Some(None), "subscribed");
    let (status, body) = node
        .call(
            &token,
            Method::POST,
            "/alarms/force_deactivate",
            Some(json!({"name": "high_system_memory_usage"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (topic, deactivated) = heard.recv().await.flatten().expect("a $SYS message");
    assert!(topic.ends_with("/alarms/deactivate"), "{topic}");
    assert_eq!(deactivated["activated"], false);
    assert_eq!(deactivated["name"], "high_system_memory_usage");
    let (topic, again) = heard.recv().await.flatten().expect("raised again");
    assert!(topic.ends_with("/alarms/activate"), "{topic}");
    assert_eq!(
        (again["activated"].clone(), again["deactivate_at"].clone()),
        (json!(true), json!("infinity"))
    );

    let (_, past) = node
        .call(&token, Method::GET, "/alarms?activated=false", None)
        .await;
    assert_eq!(past["meta"]["count"], 1, "{past}");
    assert!(past["data"][0]["deactivate_at"].is_string(), "{past}");
    let (status, missing) = node
        .call(
            &token,
            Method::POST,
            "/alarms/force_deactivate",
            Some(json!({"name": "nope"})),
        )
        .await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("NOT_FOUND"))
    );
    let (status, _) = node.call(&token, Method::DELETE, "/alarms", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, past) = node
        .call(&token, Method::GET, "/alarms?activated=false", None)
        .await;
    assert_eq!(past["meta"]["count"], 0, "{past}");
    node.stop().await;
}
