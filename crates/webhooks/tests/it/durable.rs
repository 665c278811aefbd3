//! Disk-buffered webhooks: what is queued or in flight survives a stop of the engine and is
//! delivered by the next one, in order per client, with the same `webhook-id`.

use std::{collections::HashMap, time::Duration};

use hookmq_webhooks::{WebhookEngine, WebhookSpec, spec::Buffer};
use rumqttc::v5::mqttbytes::QoS;

use crate::support::{Mqtt, Receiver, Reply, Stack, assert_balanced, wait_for_metrics};

fn spec(url: &str) -> WebhookSpec {
    let mut spec = WebhookSpec::new("durable", url);
    spec.events = vec!["message.publish".into()];
    spec.retry_backoff = Duration::from_millis(50);
    spec.retry_max_backoff = Duration::from_millis(100);
    spec.max_inflight = 4;
    spec
}

/// Each of `clients` publishes `count` QoS 1 messages `<client>-<n>` to `t`, in turn.
async fn publish_per_client(stack: &Stack, clients: &[&str], count: usize) {
    for id in clients {
        let mut client = Mqtt::connect(stack.mqtt, id).await;
        for n in 0..count {
            client
                .publish("t", QoS::AtLeastOnce, format!("{id}-{n}"))
                .await;
        }
        client.disconnect().await;
    }
}

/// Each client's `count` payloads are all in `payloads`, in the order it published them.
fn assert_each_in_order(payloads: &[&str], clients: &[&str], count: usize) {
    for id in clients {
        let order: Vec<&str> = payloads
            .iter()
            .copied()
            .filter(|p| p.starts_with(&format!("{id}-")))
            .collect();
        let expected: Vec<String> = (0..count).map(|n| format!("{id}-{n}")).collect();
        assert_eq!(order, expected, "client {id} in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_survive_a_stop_and_keep_their_order_and_ids() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    stack
        .engine
        .create(spec(&receiver.url("/")))
        .await
        .expect("created");
    let clients = ["a", "b", "c"];
    publish_per_client(&stack, &clients, 20).await;
    stack
        .wait_metrics("durable", "every event queued, first ones tried", |m| {
            m.matched == 60 && m.retried >= 3
        })
        .await;
    stack
        .wait_metrics("durable", "everything queued written", |m| {
            m.buffer.as_ref().is_some_and(|b| b.unwritten == 0)
        })
        .await;
    let retried = stack
        .engine
        .get("durable")
        .expect("webhook")
        .metrics
        .retried;
    let report = stack.engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.delivered, report.kept, report.lost), (0, 60, 0));
    let before = receiver.requests().len();

    // The next engine, on the same data directory: the webhook comes back with its events.
    receiver.always(Reply::status(200));
    let engine = WebhookEngine::start(
        stack.handle.clone(),
        stack.data.path(),
        hookmq_webhooks::Egress::default(),
        hookmq_webhooks::seal::Sealer::load(stack.data.path(), None).expect("key"),
    );
    // Not as a memory buffer too small for what the journal holds: the journal stays.
    let mut memory = spec(&receiver.url("/"));
    memory.buffer = Buffer::Memory;
    memory.queue_capacity = 59;
    let refused = engine
        .create(memory)
        .await
        .expect_err("60 events do not fit in 59");
    assert!(
        refused.to_string().starts_with("buffer: 60 events wait"),
        "{refused}"
    );
    engine
        .create(spec(&receiver.url("/")))
        .await
        .expect("created again");
    wait_for_metrics(&engine, "durable", "all delivered after the restart", |m| {
        m.success == 60
    })
    .await;
    let requests = receiver.requests();
    let delivered: Vec<(String, String)> = requests[before..]
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            let payload = r.json()["payload"].as_str().unwrap_or_default().to_owned();
            (payload, r.header("webhook-id").to_owned())
        })
        .collect();
    assert_eq!(delivered.len(), 60, "each event once after the restart");
    let payloads: Vec<&str> = delivered.iter().map(|(p, _)| p.as_str()).collect();
    assert_each_in_order(&payloads, &clients, 20);
    // An event tried before the stop carries the same id after it.
    let first_ids: HashMap<String, String> = requests[..before]
        .iter()
        .map(|r| {
            let payload = r.json()["payload"].as_str().unwrap_or_default().to_owned();
            (payload, r.header("webhook-id").to_owned())
        })
        .collect();
    assert!(!first_ids.is_empty());
    for (payload, id) in &delivered {
        if let Some(before) = first_ids.get(payload) {
            assert_eq!(before, id, "{payload}: the same webhook-id");
        }
    }
    let metrics = engine.get("durable").expect("webhook").metrics;
    assert_eq!((metrics.queuing, metrics.inflight), (0, 0));
    assert!(
        metrics.retried >= retried,
        "the counters went on from before the stop: {metrics:#?}"
    );
    assert_eq!((metrics.matched, metrics.success), (60, 60));
    assert_balanced(&metrics);
}

/// A memory-buffered webhook keeps nothing, and one switched from disk to memory takes the
/// journal's events into memory (only if they fit there) and deletes the journal.
#[tokio::test]
async fn a_memory_buffer_forgets_and_switching_to_it_deletes_the_journal() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    stack
        .engine
        .create(spec(&receiver.url("/")))
        .await
        .expect("created");
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for n in 0..5 {
        client.publish("t", QoS::AtLeastOnce, format!("{n}")).await;
    }
    stack
        .wait_metrics("durable", "queued", |m| m.matched == 5)
        .await;
    let journal = stack.data.path().join("webhooks/durable/journal");
    assert!(journal.is_dir());
    let mut memory = spec(&receiver.url("/"));
    memory.buffer = Buffer::Memory;
    memory.queue_capacity = 4;
    let refused = stack
        .engine
        .update(memory.clone())
        .await
        .expect_err("5 events do not fit in 4");
    assert!(
        refused.to_string().starts_with("buffer: 5 events wait"),
        "{refused}"
    );
    assert!(journal.is_dir(), "still disk-buffered");
    memory.queue_capacity = 5;
    stack.engine.update(memory).await.expect("updated");
    assert!(!journal.exists(), "the journal is deleted");
    let metrics = stack.engine.get("durable").expect("webhook").metrics;
    assert_eq!(metrics.queuing + metrics.inflight, 5, "{metrics:#?}");
    assert!(metrics.buffer.is_none());
    receiver.always(Reply::status(200));
    stack
        .wait_metrics("durable", "delivered from memory", |m| m.success == 5)
        .await;
}

/// Past `queue_capacity` in memory a disk buffer keeps events on disk only, and delivers
/// them all, in order per client, once the receiver is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_memory_events_wait_on_disk_and_all_arrive_in_order() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    let mut spec = spec(&receiver.url("/"));
    spec.queue_capacity = 20;
    spec.health_check_interval = Duration::from_millis(200);
    stack.engine.create(spec).await.expect("created");
    let clients = ["a", "b", "c", "d"];
    publish_per_client(&stack, &clients, 100).await;
    stack
        .wait_metrics("durable", "every event queued", |m| m.matched == 400)
        .await;
    let metrics = stack.engine.get("durable").expect("webhook").metrics;
    let buffer = metrics.buffer.clone().expect("disk buffer");
    // In memory at most: the queue's capacity, plus what each of the 4 lanes read back from
    // disk in its last batch (64) while it retried; the rest waits on disk only.
    let in_memory = 400 - buffer.on_disk_only;
    assert!(in_memory <= 20 + 4 * 64, "{metrics:#?}");
    assert!(buffer.on_disk_only > 0, "{metrics:#?}");
    assert_eq!(metrics.dropped, 0);
    receiver.always(Reply::status(200));
    stack
        .wait_metrics("durable", "all delivered", |m| m.success == 400)
        .await;
    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["payload"].as_str().unwrap_or_default().to_owned())
        .collect();
    let payloads: Vec<&str> = delivered.iter().map(String::as_str).collect();
    assert_each_in_order(&payloads, &clients, 100);
    assert_balanced(&stack.engine.get("durable").expect("webhook").metrics);
}

/// At `max_buffer_bytes` the overflow policy drops and counts; publishers are not slowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_byte_bound_overflow_is_counted_and_mqtt_keeps_serving() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    let mut spec = spec(&receiver.url("/"));
    spec.queue_capacity = 10;
    spec.max_buffer_bytes = 32 << 10;
    stack.engine.create(spec).await.expect("created");
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    let payload = "x".repeat(500);
    let mut publishing = Duration::ZERO;
    // In rounds, each waiting for the journal's writer: the bound counts what is written,
    // and a loaded machine's writer can lag a whole burst behind (held in memory meanwhile).
    for round in 1..=10 {
        let started = tokio::time::Instant::now();
        for _ in 0..50 {
            client
                .publish("t", QoS::AtLeastOnce, payload.as_str())
                .await;
        }
        publishing += started.elapsed();
        stack
            .wait_metrics("durable", "the round matched and written", |m| {
                m.matched == round * 50 && m.buffer.as_ref().is_some_and(|b| b.unwritten == 0)
            })
            .await;
    }
    assert!(publishing < Duration::from_secs(10));
    let metrics = stack.engine.get("durable").expect("webhook").metrics;
    assert!(metrics.dropped_queue_full > 100, "{metrics:#?}");
    assert!(
        metrics
            .buffer
            .as_ref()
            .is_some_and(|b| b.disk_bytes < 128 << 10),
        "{metrics:#?}"
    );
    assert_balanced(&metrics);
}

/// With `sync_before_ack` a QoS 1 PUBLISH is acknowledged only once its event is on disk:
/// right after each PUBACK nothing the webhook took is left unwritten. (Without it the
/// journal writes within about one group commit after the PUBACK.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_before_ack_acknowledges_only_what_is_on_disk() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    let mut synced = spec(&receiver.url("/"));
    synced.sync_before_ack = true;
    stack.engine.create(synced).await.expect("created");
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for n in 0..200 {
        client.publish("t", QoS::AtLeastOnce, format!("{n}")).await;
        let metrics = stack.engine.get("durable").expect("webhook").metrics;
        let buffer = metrics.buffer.expect("disk buffer");
        assert_eq!(
            buffer.unwritten, 0,
            "publish {n} acknowledged before its event was written"
        );
    }
    let metrics = stack.engine.get("durable").expect("webhook").metrics;
    assert_eq!(metrics.matched, 200);
    let window = metrics
        .buffer
        .and_then(|b| b.write_window)
        .expect("groups written");
    assert!(window.groups > 0 && window.p50_ms.is_some(), "{window:?}");

    let mut memory = spec(&receiver.url("/"));
    memory.name = "memory".into();
    memory.buffer = Buffer::Memory;
    memory.sync_before_ack = true;
    let refused = stack.engine.create(memory).await.expect_err("refused");
    assert!(refused.to_string().contains("sync_before_ack"), "{refused}");
}
