//! EMQX's `request_ttl`: an event older than it is dropped unsent (`dropped.expired`), and
//! an answer that comes after it is a `late_reply`, neither delivered nor failed. Without
//! it (the default) nothing is dropped for age.

use std::time::Duration;

use hookmq_webhooks::WebhookSpec;
use rumqttc::v5::mqttbytes::QoS;

use crate::support::{Mqtt, Receiver, Reply, Stack, assert_balanced};

fn with_ttl(spec: &mut WebhookSpec, ttl_ms: u64) {
    spec.events = vec!["message.publish".into()];
    spec.request_ttl = Some(Duration::from_millis(ttl_ms));
    spec.retry_backoff = Duration::from_millis(50);
    spec.retry_max_backoff = Duration::from_millis(50);
    spec.health_check_interval = Duration::from_millis(100);
}

#[tokio::test]
async fn events_older_than_request_ttl_are_dropped_unsent() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    stack
        .webhook("ttl", &receiver.url("/"), |spec| with_ttl(spec, 300))
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for n in 0..3 {
        client.publish("t", QoS::AtLeastOnce, format!("{n}")).await;
    }
    // Each ends expired while it waits to be retried, or, if its age passes the TTL while
    // an attempt is on its way, as a late reply (as EMQX counts it).
    stack
        .wait_metrics("ttl", "expired", |m| m.dropped_expired + m.late_reply == 3)
        .await;
    let metrics = stack.engine.get("ttl").expect("webhook").metrics;
    assert_eq!((metrics.success, metrics.failed), (0, 0), "{metrics:#?}");
    assert!(metrics.dropped_expired >= 1, "{metrics:#?}");
    assert_eq!(
        metrics.dropped, metrics.dropped_expired,
        "counted in dropped"
    );
    assert_balanced(&metrics);
    let sent = receiver.requests().len();
    assert!(sent >= 3, "each was tried while young: {sent}");

    receiver.always(Reply::status(200));
    client.publish("t", QoS::AtLeastOnce, "fresh").await;
    stack
        .wait_metrics("ttl", "a young event delivered", |m| m.success == 1)
        .await;
}

#[tokio::test]
async fn an_answer_after_request_ttl_is_a_late_reply() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply {
        delay: Duration::from_millis(600),
        ..Reply::status(200)
    });
    stack
        .webhook("late", &receiver.url("/"), |spec| with_ttl(spec, 300))
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "slow").await;
    stack
        .wait_metrics("late", "a late reply", |m| m.late_reply == 1)
        .await;
    let metrics = stack.engine.get("late").expect("webhook").metrics;
    assert_eq!(
        (metrics.success, metrics.failed, metrics.retried),
        (0, 0, 0),
        "{metrics:#?}"
    );
    assert_balanced(&metrics);
    assert_eq!(receiver.requests().len(), 1, "not sent again");
}

#[tokio::test]
async fn without_request_ttl_nothing_is_dropped_for_age() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply {
        delay: Duration::from_millis(600),
        ..Reply::status(200)
    });
    stack
        .webhook("patient", &receiver.url("/"), |spec| {
            with_ttl(spec, 300);
            spec.request_ttl = None;
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "slow").await;
    stack
        .wait_metrics("patient", "delivered", |m| m.success == 1)
        .await;
    let metrics = stack.engine.get("patient").expect("webhook").metrics;
    assert_eq!((metrics.late_reply, metrics.dropped_expired), (0, 0));
}

#[tokio::test]
async fn a_replayed_dead_letter_is_not_expired_by_its_age() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(400));
    stack
        .webhook("replayed", &receiver.url("/"), |spec| with_ttl(spec, 300))
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "refused").await;
    stack
        .wait_metrics("replayed", "a dead letter", |m| m.failed == 1)
        .await;
    // Older than the TTL by the time it is replayed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    receiver.always(Reply::status(200));
    stack
        .engine
        .replay_dead_letters("replayed", None)
        .await
        .expect("replayed");
    stack
        .wait_metrics("replayed", "delivered after the replay", |m| m.success == 1)
        .await;
    let metrics = stack.engine.get("replayed").expect("webhook").metrics;
    assert_eq!(metrics.dropped_expired, 0, "{metrics:#?}");
}
