//! The webhooks' alarms: a receiver down, a buffer near its bound. Each is raised and
//! cleared in the broker's alarms, and both changes reach a webhook on alarm events in
//! EMQX's format.

use std::time::Duration;

use hookmq_webhooks::spec::Buffer;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::Value;

use crate::support::{Mqtt, PATIENCE, Receiver, Reply, Stack};

/// A webhook `watch` on alarm events to a receiver of its own.
async fn alarm_watcher(stack: &Stack) -> Receiver {
    let watcher = Receiver::start().await;
    stack
        .webhook("watch", &watcher.url("/alarms"), |spec| {
            spec.events = vec!["alarm.activated".into(), "alarm.deactivated".into()];
        })
        .await;
    watcher
}

/// The body of the first `event` about alarm `name` the receiver got, waiting for it.
async fn alarm_event(receiver: &Receiver, event: &str, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found = receiver
            .requests()
            .iter()
            .map(crate::support::receiver::Recorded::json)
            .find(|body| body["event"] == event && body["name"] == name);
        if let Some(body) = found {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {event} for {name}"
        );
        // Polling the receiver's record, which has no change feed.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_receiver_down_raises_an_alarm_that_clears_when_it_is_back() {
    let stack = Stack::start().await;
    let watcher = alarm_watcher(&stack).await;
    // A port nothing listens on (bound, then let go).
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    stack
        .webhook("down", &format!("http://{address}/"), |spec| {
            spec.events = vec!["message.publish".into()];
            spec.health_check_interval = Duration::from_millis(100);
        })
        .await;

    let activated = alarm_event(&watcher, "alarm.activated", "action:http:down").await;
    assert_eq!(activated["details"]["reason"], "resource_down");
    assert_eq!(activated["details"]["resource_id"], "action:http:down");
    let message = activated["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("resource down: "), "{message}");
    let activated_at = activated["activated_at"].as_u64().expect("activated_at");
    let timestamp = activated["timestamp"].as_u64().expect("timestamp");
    assert!(
        activated_at / 1000 <= timestamp && timestamp - activated_at / 1000 < 10_000,
        "activated_at in µs, timestamp in ms: {activated}"
    );
    assert_eq!(activated["node"], "emqx@127.0.0.1");
    assert_eq!(activated["metadata"]["rule_id"], "watch");
    let active = stack.handle.alarms(true);
    assert!(
        active.iter().any(|a| a.name == "action:http:down"),
        "{active:?}"
    );

    let _back = Receiver::start_at(address).await;
    let deactivated = alarm_event(&watcher, "alarm.deactivated", "action:http:down").await;
    assert_eq!(
        deactivated["details"], "no_details",
        "as EMQX clears a resource's alarm"
    );
    assert_eq!(deactivated["message"], "action:http:down");
    assert_eq!(deactivated["activated_at"], activated_at);
    assert!(deactivated["deactivated_at"].as_u64() >= Some(activated_at));
    assert!(
        stack
            .handle
            .alarms(true)
            .iter()
            .all(|a| a.name != "action:http:down")
    );
    let past = stack.handle.alarms(false);
    let kept = past
        .iter()
        .find(|a| a.name == "action:http:down")
        .expect("in the history");
    assert_eq!(
        kept.details["reason"], "resource_down",
        "the history keeps the details"
    );
}

#[tokio::test]
async fn a_buffer_near_its_bound_raises_an_alarm_until_it_drains() {
    let stack = Stack::start().await;
    let watcher = alarm_watcher(&stack).await;
    let slow = Receiver::start().await;
    slow.always(Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200)
    });
    stack
        .webhook("slow", &slow.url("/"), |spec| {
            spec.events = vec!["message.publish".into()];
            spec.buffer = Buffer::Memory;
            spec.queue_capacity = 10;
            spec.max_inflight = 1;
            spec.pipelining = 1;
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "filler").await;
    for n in 0..10 {
        client.publish("t", QoS::AtLeastOnce, n.to_string()).await;
    }
    let activated = alarm_event(&watcher, "alarm.activated", "webhook_buffer_high:slow").await;
    assert_eq!(activated["details"]["bound_by"], "queue_capacity");
    assert!(
        activated["details"]["usage"].as_f64() >= Some(80.0),
        "{activated}"
    );

    // Answered at once from now on: the queue drains and the alarm clears.
    slow.always(Reply::status(200));
    let deactivated = alarm_event(&watcher, "alarm.deactivated", "webhook_buffer_high:slow").await;
    assert!(
        deactivated["details"]["usage"].as_f64() < Some(60.0),
        "{deactivated}"
    );
    stack
        .wait_metrics("slow", "every event delivered", |m| m.success == 10)
        .await;
}
