//! Dead letters: events a receiver refuses (or that get too old to retry) are kept with their
//! last attempt, listed newest first, replayed with their `webhook-id` once the receiver is
//! fixed, purged, bounded by bytes, and kept across a restart.

use std::time::Duration;

use hookmq_webhooks::WebhookEngine;
use rumqttc::v5::mqttbytes::QoS;

use crate::support::{Mqtt, Receiver, Reply, Stack, assert_balanced, wait_for_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_become_dead_letters_and_replay_with_their_ids() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply {
        body: "schema mismatch",
        ..Reply::status(400)
    });
    stack
        .webhook("dl", &receiver.url("/"), |s| {
            s.events = vec!["message.publish".into()];
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for n in 0..5 {
        client
            .publish("t/dl", QoS::AtLeastOnce, format!("{n}"))
            .await;
    }
    stack
        .wait_metrics("dl", "five dead letters", |m| m.dead_letters == 5)
        .await;
    let metrics = stack.engine.get("dl").expect("webhook").metrics;
    assert_eq!(
        (metrics.failed, metrics.retried),
        (5, 0),
        "400 is not retried"
    );
    assert_balanced(&metrics);

    let page = stack.engine.dead_letters("dl", 0, 2).await.expect("listed");
    assert_eq!(page.count, 5);
    let newest = &page.letters[0];
    assert_eq!(newest.body["payload"], "4", "newest first");
    assert_eq!(page.letters[1].body["payload"], "3");
    assert_eq!(newest.attempt.status, Some(400));
    assert_eq!(newest.attempt.response, "schema mismatch");
    assert_eq!(newest.attempt.event, "message.publish");
    assert_eq!(newest.body["topic"], "t/dl");
    let refused: Vec<(String, String)> = receiver
        .requests()
        .iter()
        .map(|r| {
            let payload = r.json()["payload"].as_str().unwrap_or_default().to_owned();
            (payload, r.header("webhook-id").to_owned())
        })
        .collect();
    assert_eq!(
        refused
            .iter()
            .find(|(p, _)| p == "4")
            .map(|(_, id)| id.as_str()),
        Some(newest.attempt.webhook_id.as_str())
    );

    // The receiver is fixed: the oldest two first, then the rest.
    receiver.always(Reply::status(200));
    let oldest: Vec<u64> = stack
        .engine
        .dead_letters("dl", 3, 2)
        .await
        .expect("listed")
        .letters
        .iter()
        .map(|l| l.id)
        .collect();
    let report = stack
        .engine
        .replay_dead_letters("dl", Some(oldest))
        .await
        .expect("replayed");
    assert_eq!((report.replayed, report.left), (2, 0));
    let report = stack
        .engine
        .replay_dead_letters("dl", None)
        .await
        .expect("replayed");
    assert_eq!((report.replayed, report.left), (3, 0));
    stack
        .wait_metrics("dl", "replayed events delivered", |m| m.success == 5)
        .await;
    let delivered: Vec<(String, String)> = receiver
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            let payload = r.json()["payload"].as_str().unwrap_or_default().to_owned();
            (payload, r.header("webhook-id").to_owned())
        })
        .collect();
    let payloads: Vec<&str> = delivered.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(payloads, ["0", "1", "2", "3", "4"], "oldest first");
    for (payload, id) in &delivered {
        let first = refused.iter().find(|(p, _)| p == payload).map(|(_, id)| id);
        assert_eq!(first, Some(id), "{payload}: the same webhook-id");
    }
    let metrics = stack.engine.get("dl").expect("webhook").metrics;
    assert_eq!(metrics.dead_letters, 0);
    assert_balanced(&metrics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_bounded_purged_and_kept_across_a_restart() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(410));
    let spec = |url: &str| {
        let mut spec = hookmq_webhooks::WebhookSpec::new("bounded", url);
        spec.events = vec!["message.publish".into()];
        spec.max_dead_letter_bytes = 4_000;
        spec
    };
    stack
        .engine
        .create(spec(&receiver.url("/")))
        .await
        .expect("created");
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    let payload = "x".repeat(200);
    for _ in 0..30 {
        client
            .publish("t", QoS::AtLeastOnce, payload.as_str())
            .await;
    }
    stack
        .wait_metrics("bounded", "every event given up", |m| m.failed == 30)
        .await;
    let metrics = wait_for_metrics(
        &stack.engine,
        "bounded",
        "every one stored or dropped",
        |m| m.dead_letters + m.dead_letters_dropped == 30,
    )
    .await;
    assert!(
        metrics.dead_letters_dropped > 0 && metrics.dead_letters > 0,
        "the bound dropped the oldest: {metrics:#?}"
    );
    let kept = metrics.dead_letters;

    stack.engine.shutdown(Duration::from_secs(5)).await;
    let engine = WebhookEngine::start(
        stack.handle.clone(),
        stack.data.path(),
        hookmq_webhooks::Egress::default(),
        hookmq_webhooks::seal::Sealer::load(stack.data.path(), None).expect("key"),
    );
    engine.restore().await;
    let page = engine
        .dead_letters("bounded", 0, 100)
        .await
        .expect("listed");
    assert_eq!(page.count, kept, "kept across the restart");
    assert_eq!(
        engine.purge_dead_letters("bounded").await.expect("purged"),
        kept
    );
    assert_eq!(
        engine.get("bounded").expect("webhook").metrics.dead_letters,
        0
    );
}
