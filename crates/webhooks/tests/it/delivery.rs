//! Delivery: retries, failures, outages, order, overflow, isolation of publishers, signing,
//! the Test button and life-cycle changes.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rumqttc::v5::mqttbytes::QoS;

use crate::support::{Mqtt, Receiver, Reply, Stack, assert_balanced, run};

fn publish_only(spec: &mut hookmq_webhooks::WebhookSpec) {
    spec.events = vec!["message.publish".into()];
}

#[tokio::test]
async fn retries_5xx_and_honours_retry_after() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.script([
        Reply::status(500),
        Reply {
            retry_after: Some("1".into()),
            ..Reply::status(503)
        },
        Reply::status(200),
    ]);
    stack.webhook("r", &receiver.url("/"), publish_only).await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "x").await;
    let started = Instant::now();
    stack.wait_metrics("r", "success", |m| m.success == 1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.windows(2).all(|w| w[0].body == w[1].body),
        "the same event each time"
    );
    let ids: Vec<&str> = requests.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids[0].starts_with("evt_"),
        "unsigned requests carry webhook-id too: {ids:?}"
    );
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one id per event: {ids:?}"
    );
    let metrics = stack.engine.get("r").expect("webhook").metrics;
    assert_eq!((metrics.retried, metrics.failed), (2, 0));
    assert_balanced(&metrics);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_are_reported() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply {
        body: "no such hook",
        ..Reply::status(404)
    });
    stack.webhook("f", &receiver.url("/"), publish_only).await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "x").await;
    stack.wait_metrics("f", "failure", |m| m.failed == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests().len(), 1);
    let metrics = stack.engine.get("f").expect("webhook").metrics;
    assert_eq!(metrics.retried, 0);
    let failure = &metrics.last_failures[0];
    assert_eq!(failure.status, Some(404));
    assert!(
        failure.reason.contains("no such hook"),
        "{}",
        failure.reason
    );
    assert_balanced(&metrics);
}

#[tokio::test]
async fn retries_run_out() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(502));
    stack
        .webhook("out", &receiver.url("/"), |s| {
            publish_only(s);
            s.max_retries = Some(2);
            s.retry_backoff = Duration::from_millis(20);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "x").await;
    stack
        .wait_metrics("out", "failure", |m| m.failed == 1)
        .await;
    assert_eq!(
        receiver.requests().len(),
        3,
        "first attempt and two retries"
    );
}

/// Retries last as long as the event is younger than `retry_max_age`, then it fails; the
/// client's next event waited behind it and goes next.
#[tokio::test]
async fn retries_end_when_the_event_is_too_old() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    stack
        .webhook("aged", &receiver.url("/"), |s| {
            publish_only(s);
            s.retry_backoff = Duration::from_millis(50);
            s.retry_max_backoff = Duration::from_millis(200);
            s.retry_max_age = Duration::from_secs(1);
            // The circuit opens after 5 failures; probes then come as often as retries did.
            s.health_check_interval = Duration::from_millis(100);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "first").await;
    // Younger than the first by half its age limit, so still retried when the first fails.
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.publish("t", QoS::AtLeastOnce, "second").await;
    stack
        .wait_metrics("aged", "the first event failing", |m| m.failed == 1)
        .await;
    receiver.always(Reply::status(200));
    stack
        .wait_metrics("aged", "the second event delivered", |m| m.success == 1)
        .await;
    let metrics = stack.engine.get("aged").expect("webhook").metrics;
    assert!(metrics.retried >= 4, "retried until 1 s old: {metrics:#?}");
    let failure = &metrics.last_failures[0];
    assert_eq!(failure.status, Some(503));
    assert!(
        failure.reason.contains("older than retry_max_age 1s"),
        "{}",
        failure.reason
    );
    let payloads: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["payload"].as_str().unwrap_or_default().to_owned())
        .collect();
    let first_second = payloads
        .iter()
        .position(|p| p == "second")
        .expect("second sent");
    assert!(
        payloads[..first_second].iter().all(|p| p == "first"),
        "the second waited behind the first: {payloads:?}"
    );
    assert_balanced(&metrics);
}

#[tokio::test]
async fn a_receiver_that_is_down_then_up_gets_everything() {
    let stack = Stack::start().await;
    // Reserve a port, then free it: nothing listens there yet.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    stack
        .webhook("later", &format!("http://{address}/"), |s| {
            publish_only(s);
            s.max_retries = Some(50);
            s.retry_backoff = Duration::from_millis(50);
            s.retry_max_backoff = Duration::from_millis(200);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for i in 0..5 {
        client.publish("t", QoS::AtLeastOnce, format!("{i}")).await;
    }
    stack
        .wait_metrics("later", "retries", |m| m.retried >= 2)
        .await;
    let receiver = Receiver::start_at(address).await;
    let requests = receiver.wait_for(5).await;
    let payloads: Vec<String> = requests
        .iter()
        .map(|r| r.json()["payload"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        payloads,
        ["0", "1", "2", "3", "4"],
        "nothing lost, order kept"
    );
    stack
        .wait_metrics("later", "all delivered", |m| m.success == 5)
        .await;
}

#[tokio::test]
async fn each_clients_events_arrive_in_order_under_concurrency() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.jitter(5);
    // Two retries mid-stream, while later requests of the same lanes are in flight.
    receiver.script(
        std::iter::repeat_n(Reply::status(200), 40).chain([Reply::status(503), Reply::status(503)]),
    );
    stack
        .webhook("order", &receiver.url("/"), |s| {
            publish_only(s);
            s.max_inflight = 8;
            s.retry_backoff = Duration::from_millis(10);
        })
        .await;
    let clients = 12;
    let per_client = 25;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let address = stack.mqtt;
        tasks.push(tokio::spawn(async move {
            let mut client = Mqtt::connect(address, &format!("client-{c}")).await;
            for i in 0..per_client {
                client
                    .publish("order/t", QoS::AtLeastOnce, format!("{i}"))
                    .await;
            }
            client.disconnect().await;
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    let total = u64::try_from(clients * per_client).unwrap_or(0);
    stack
        .wait_metrics("order", "every event delivered", |m| m.success == total)
        .await;
    let requests = receiver.requests();
    // What each client's receiver accepted (2xx), in arrival order. A retry sends the
    // requests that followed it on its connection again, so some events are accepted twice;
    // their last copies must be in order.
    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    for request in requests.iter().filter(|r| r.status == 200) {
        let body = request.json();
        let client = body["clientid"].as_str().expect("clientid").to_owned();
        let n: u32 = body["payload"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("payload");
        let list = seen.entry(client).or_default();
        list.retain(|&earlier| earlier != n);
        list.push(n);
    }
    assert_eq!(seen.len(), clients);
    assert!(
        receiver.peak_concurrency() > 1,
        "different clients proceed in parallel"
    );
    for (client, numbers) in seen {
        assert_eq!(
            numbers,
            (0..u32::try_from(per_client).unwrap_or(0)).collect::<Vec<_>>(),
            "{client}"
        );
    }
}

#[tokio::test]
async fn queue_overflow_is_counted_and_the_books_balance() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply {
        delay: Duration::from_secs(30),
        ..Reply::status(200)
    });
    stack
        .webhook("small", &receiver.url("/"), |s| {
            publish_only(s);
            s.max_inflight = 1;
            s.queue_capacity = 5;
            // Memory's bound: a disk buffer would keep the rest on disk.
            s.buffer = hookmq_webhooks::spec::Buffer::Memory;
            s.request_timeout = Duration::from_secs(60);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for i in 0..20 {
        client.publish("t", QoS::AtLeastOnce, format!("{i}")).await;
    }
    // The lane takes its first event on its own threads, before or after the queue fills.
    stack
        .wait_metrics("small", "20 matched, one in flight", |m| {
            m.matched == 20 && m.inflight == 1
        })
        .await;
    let metrics = stack.engine.get("small").expect("webhook").metrics;
    assert!(
        (metrics.queuing, metrics.dropped_queue_full) == (5, 14)
            || (metrics.queuing, metrics.dropped_queue_full) == (4, 15),
        "{metrics:#?}"
    );
    assert_eq!(metrics.dropped, metrics.dropped_queue_full);
    assert_balanced(&metrics);
}

/// Publishes `count` QoS 1 messages to `topic` one after another and returns how long it
/// took.
async fn publish_burst(client: &mut Mqtt, topic: &str, count: usize) -> Duration {
    let started = Instant::now();
    for i in 0..count {
        client
            .publish(topic, QoS::AtLeastOnce, format!("{i}"))
            .await;
    }
    started.elapsed()
}

/// One publisher alternates bursts to a topic the stalled webhook takes and to one it does
/// not, so both kinds of burst meet the same machine load. A publisher that waited on the
/// webhook would stop once the queue's 100 places are taken: the bound below is loose
/// against noise, not against that.
#[tokio::test]
async fn a_stalled_receiver_does_not_slow_publishers() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply {
        delay: Duration::from_secs(3600),
        ..Reply::status(200)
    });
    stack
        .webhook("stalled", &receiver.url("/"), |s| {
            publish_only(s);
            s.topics = vec!["hooked/#".into()];
            s.queue_capacity = 100;
            s.buffer = hookmq_webhooks::spec::Buffer::Memory;
            s.request_timeout = Duration::from_secs(3600);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "publisher").await;
    let count = 1000;
    publish_burst(&mut client, "free/warm-up", count).await;
    let (mut free, mut hooked) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        free += publish_burst(&mut client, "free/t", count).await;
        hooked += publish_burst(&mut client, "hooked/t", count).await;
    }
    let metrics = stack.engine.get("stalled").expect("webhook").metrics;
    assert_eq!(
        metrics.matched,
        3 * count as u64,
        "only the hooked topic's publishes"
    );
    assert_eq!(
        metrics.success + metrics.failed,
        0,
        "the receiver answered nothing"
    );
    // What is neither queued (at most 100) nor in flight on the lane was dropped.
    assert_balanced(&metrics);
    assert!(
        metrics.dropped_queue_full >= 2 * count as u64,
        "the webhook dropped what did not fit, the publisher did not wait: {metrics:#?}"
    );
    assert!(
        hooked < free * 3 + Duration::from_millis(300),
        "publishing took {hooked:?} to the stalled webhook's topic, {free:?} to another"
    );
}

#[tokio::test]
async fn signatures_verify_with_the_standardwebhooks_library() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    stack
        .webhook("signed", &receiver.url("/"), |s| {
            publish_only(s);
            s.signing_secret = Some(secret.into());
        })
        .await;
    receiver.script([Reply::status(500)]);
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client
        .publish("t", QoS::AtLeastOnce, "signed payload")
        .await;
    let requests = receiver.wait_for(2).await;
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id"),
        "stable across retries"
    );
    let script = r#"
import sys, json
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, sig, body = sys.argv[1:6]
payload = Webhook(secret).verify(body, {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig})
print(payload["event"])
"#;
    for request in &requests {
        let body = String::from_utf8(request.body.to_vec()).expect("utf8 body");
        let id = request.header("webhook-id");
        let timestamp = request.header("webhook-timestamp");
        let signature = request.header("webhook-signature");
        assert!(signature.starts_with("v1,"), "{signature}");
        let out = run(
            "python3",
            &["-c", script, secret, id, timestamp, signature, &body],
        )
        .await;
        assert_eq!(out.trim(), "message.publish");
    }
}

#[tokio::test]
async fn probe_reports_the_receivers_answer_or_the_error() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply {
        body: "pong from receiver",
        ..Reply::status(200)
    }]);
    let spec = hookmq_webhooks::WebhookSpec::new("unsaved", &receiver.url("/probe"));
    let result = stack.engine.probe(&spec).await.expect("probe runs");
    assert!(result.success);
    assert_eq!(result.status, Some(200));
    assert_eq!(result.body, "pong from receiver");
    assert_eq!(receiver.requests()[0].event(), "message.publish");
    assert!(stack.engine.get("unsaved").is_none(), "nothing saved");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let spec = hookmq_webhooks::WebhookSpec::new("x", &format!("http://{closed}/"));
    let result = stack.engine.probe(&spec).await.expect("probe runs");
    assert!(!result.success);
    assert!(
        result
            .error
            .as_deref()
            .is_some_and(|e| e.contains("connection")),
        "{result:?}"
    );
}

#[tokio::test]
async fn disable_update_and_delete() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("life", &receiver.url("/a"), publish_only)
        .await;
    // At least once: a delivery answered while its webhook changes may come again (same
    // webhook-id), so what counts is which messages arrived, and where.
    let delivered = |receiver: &Receiver| -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = receiver
            .requests()
            .iter()
            .map(|r| {
                let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                (
                    json["payload"].as_str().unwrap_or_default().to_owned(),
                    r.path.clone(),
                )
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "1").await;
    receiver.wait_for(1).await;

    stack
        .engine
        .set_enabled("life", false)
        .await
        .expect("disable");
    client.publish("t", QoS::AtLeastOnce, "2").await;
    // Proving nothing came: an enabled webhook delivers on loopback within a few ms of the
    // PUBACK (message 1 above did), so 200 ms is ample.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        delivered(&receiver)
            .iter()
            .all(|(payload, _)| payload == "1"),
        "disabled webhooks take nothing: {:?}",
        delivered(&receiver)
    );

    let mut spec = stack.engine.get("life").expect("exists").spec;
    spec.enable = true;
    spec.url = receiver.url("/b");
    stack.engine.update(spec).await.expect("update");
    client.publish("t", QoS::AtLeastOnce, "3").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !delivered(&receiver).contains(&("3".to_owned(), "/b".to_owned())) {
        assert!(tokio::time::Instant::now() < deadline, "3 never reached /b");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The receiver records a request before its answer reaches the lane that counts it.
    stack
        .wait_metrics("life", "metrics survive updates", |m| m.success >= 2)
        .await;

    stack.engine.reset_metrics("life").expect("reset");
    assert_eq!(stack.engine.get("life").expect("exists").metrics.success, 0);
    stack.engine.remove("life").await.expect("delete");
    assert!(stack.engine.get("life").is_none());
    assert!(matches!(
        stack.engine.remove("life").await,
        Err(hookmq_webhooks::EngineError::NotFound(_))
    ));
    client.publish("t", QoS::AtLeastOnce, "4").await;
    // As above: a delivery would have come within a few ms.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let payloads: Vec<String> = delivered(&receiver).into_iter().map(|(p, _)| p).collect();
    assert!(
        !payloads.contains(&"4".to_owned()) && !payloads.contains(&"2".to_owned()),
        "{payloads:?}"
    );
}

/// A disabled webhook takes nothing, even while another enabled webhook wants the same
/// kinds (both listen to the hook, and the hook hands every run to every listener), and has
/// nothing to deliver late when it is enabled again.
#[tokio::test]
async fn a_disabled_webhook_is_inert_beside_an_enabled_one() {
    let stack = Stack::start().await;
    let (active, idle) = (Receiver::start().await, Receiver::start().await);
    stack
        .webhook("active", &active.url("/"), publish_only)
        .await;
    stack
        .webhook("idle", &idle.url("/"), |s| {
            publish_only(s);
            s.enable = false;
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for n in 0..20 {
        client.publish("t", QoS::AtLeastOnce, format!("{n}")).await;
    }
    active.wait_for(20).await;
    stack
        .wait_metrics("active", "the active webhook's deliveries", |m| {
            m.success == 20
        })
        .await;
    let idle_metrics = stack.engine.get("idle").expect("exists").metrics;
    assert_eq!(
        (idle_metrics.matched, idle_metrics.queuing),
        (0, 0),
        "{idle_metrics:#?}"
    );

    stack
        .engine
        .set_enabled("idle", true)
        .await
        .expect("enable");
    client.publish("t", QoS::AtLeastOnce, "after").await;
    let got = idle.wait_for(1).await;
    stack
        .wait_metrics("idle", "the one event after enabling", |m| m.success == 1)
        .await;
    assert_eq!(got.len(), 1, "nothing from while it was disabled");
    assert_eq!(got[0].json()["payload"], "after");
}

/// Concurrent changes of one webhook apply one after another: the last one leaves a webhook
/// that delivers (two updates built on the same old version could close the queue the other
/// kept), and of concurrent creates of one name exactly one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_leave_one_working_webhook() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("busy", &receiver.url("/"), publish_only)
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    for round in 0..20 {
        let changes: Vec<_> = (0..8)
            .map(|n| {
                let engine = stack.engine.clone();
                let mut spec = engine.get("busy").expect("exists").spec;
                // Alternating lane counts: some versions share the queue, some rebuild it.
                spec.max_inflight = 2 + n % 2;
                tokio::spawn(async move { engine.update(spec).await })
            })
            .collect();
        let creates: Vec<_> = (0..8)
            .map(|_| {
                let engine = stack.engine.clone();
                let mut spec = hookmq_webhooks::WebhookSpec::new(
                    &format!("new-{round}"),
                    "http://127.0.0.1:9/",
                );
                spec.enable = false;
                tokio::spawn(async move { engine.create(spec).await })
            })
            .collect();
        for change in changes {
            change.await.expect("task").expect("update");
        }
        let mut created = 0;
        for create in creates {
            match create.await.expect("task") {
                Ok(()) => created += 1,
                Err(hookmq_webhooks::EngineError::AlreadyExists(_)) => {}
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(created, 1, "round {round}: one create of a name succeeds");
        client
            .publish("t", QoS::AtLeastOnce, format!("{round}"))
            .await;
        let requests = receiver.wait_for(round + 1).await;
        assert_eq!(requests[round].json()["payload"], format!("{round}"));
        // Settled before the next updates: one that stopped a lane between the receiver's
        // record and the lane's reading of the answer would send the event again.
        let delivered = round as u64 + 1;
        stack
            .wait_metrics("busy", "the event settled", |m| m.success == delivered)
            .await;
    }
}

/// An API client that disconnects mid-request drops the change's future: the change still
/// ends with the new version started (it was once left swapped in and never started).
#[tokio::test]
async fn an_update_whose_caller_stops_waiting_still_starts_the_new_version() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack.webhook("w", &receiver.url("/a"), publish_only).await;
    let mut spec = stack.engine.get("w").expect("exists").spec;
    spec.url = receiver.url("/b");
    // Polled once and dropped if not done by then. Before the fix that was always at the
    // old version's stop, after the swap, and this test failed every time.
    let _ = tokio::time::timeout(Duration::ZERO, stack.engine.update(spec)).await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "1").await;
    let requests = receiver.wait_for(1).await;
    assert_eq!(requests[0].path, "/b");
}

#[tokio::test]
async fn unordered_webhooks_spread_one_clients_events_over_lanes() {
    let stack = Stack::start().await;
    // Answers held long enough that events published one after another overlap at the
    // receiver even when the machine is busy (at 50 ms, a loaded run once saw none overlap).
    let hold = Duration::from_millis(150);
    let ordered = Receiver::start().await;
    ordered.always(Reply {
        delay: hold,
        ..Reply::status(200)
    });
    let unordered = Receiver::start().await;
    unordered.always(Reply {
        delay: hold,
        ..Reply::status(200)
    });
    stack
        .webhook("ordered", &ordered.url("/"), |s| {
            publish_only(s);
            s.max_inflight = 8;
        })
        .await;
    stack
        .webhook("unordered", &unordered.url("/"), |s| {
            publish_only(s);
            s.max_inflight = 8;
            s.ordered = false;
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "one").await;
    for i in 0..16 {
        client.publish("t", QoS::AtMostOnce, format!("{i}")).await;
    }
    unordered.wait_for(16).await;
    ordered.wait_for(16).await;
    assert_eq!(
        ordered.peak_concurrency(),
        1,
        "one client, one request at a time"
    );
    assert!(unordered.peak_concurrency() > 1, "spread over lanes");
}

/// A receiver that keeps failing opens the circuit: its status turns `disconnected` with the
/// last error, and instead of every lane retrying on its own backoff one request probes it
/// per `health_check_interval`; when it answers again the circuit closes and everything
/// queued goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_opens_the_circuit_and_is_probed_until_it_answers() {
    use hookmq_webhooks::health::State;
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    stack
        .webhook("flaky", &receiver.url("/"), |s| {
            publish_only(s);
            s.retry_backoff = Duration::from_millis(10);
            s.retry_max_backoff = Duration::from_millis(20);
            s.health_check_interval = Duration::from_millis(500);
        })
        .await;
    for n in 0..8 {
        let mut client = Mqtt::connect(stack.mqtt, &format!("c{n}")).await;
        client.publish("t", QoS::AtLeastOnce, format!("{n}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = stack.engine.get("flaky").expect("webhook").status;
        if status.state == State::Disconnected {
            break status;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{status:?}"
    );
    // Lanes already backing off finish their current wait (at most `retry_max_backoff`,
    // 20 ms: 300 ms is fifteen of them); then only probes go out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = receiver.requests().len();
    // A window of four probe intervals: open, at most five requests reach the receiver;
    // closed, eight lanes retrying every 10-20 ms would send hundreds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = receiver.requests().len() - before;
    assert!(
        during <= 6,
        "about one probe per 500 ms while open, not 8 lanes every 10-20 ms: {during}"
    );
    receiver.always(Reply::status(200));
    stack
        .wait_metrics("flaky", "everything delivered once it answers", |m| {
            m.success == 8
        })
        .await;
    assert_eq!(
        stack.engine.get("flaky").expect("webhook").status.state,
        State::Connected
    );
}
