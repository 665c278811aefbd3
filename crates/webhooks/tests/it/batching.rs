//! Batching (`batch.max_events`, `batch.max_wait`): many events in one request, as a JSON
//! array or NDJSON, signed as one, in order across batches, retried whole.

use std::time::Duration;

use hookmq_webhooks::{WebhookSpec, spec::BatchFormat};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::Value;

use crate::support::{Mqtt, Receiver, Reply, Stack, assert_balanced, run};

/// Events published in each test.
const EVENTS: usize = 120;

fn batched(spec: &mut WebhookSpec, max_events: usize, max_wait_ms: u64) {
    spec.events = vec!["message.publish".into()];
    spec.batch.max_events = max_events;
    spec.batch.max_wait = Duration::from_millis(max_wait_ms);
}

/// The events of a JSON-array or NDJSON body.
fn events_of(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(events)) => events,
        _ => body
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).expect("each line is JSON"))
            .collect(),
    }
}

/// Waits until the receiver has `count` events in all; returns each request's events.
async fn wait_for_events(receiver: &Receiver, count: usize) -> Vec<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let batches: Vec<Vec<Value>> = receiver
            .requests()
            .iter()
            .filter(|request| request.status == 200)
            .map(|request| events_of(&request.body))
            .collect();
        if batches.iter().map(Vec::len).sum::<usize>() >= count {
            return batches;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} events, got {:?}",
            batches.iter().map(Vec::len).collect::<Vec<_>>()
        );
        // Polling the recording receiver, which has no change feed.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn publish_numbers(stack: &Stack, client_id: &str) {
    let mut client = Mqtt::connect(stack.mqtt, client_id).await;
    for n in 1..=EVENTS {
        client
            .publish("batch/n", QoS::AtLeastOnce, n.to_string())
            .await;
    }
}

fn payloads(batches: &[Vec<Value>]) -> Vec<String> {
    batches
        .iter()
        .flatten()
        .map(|event| event["payload"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_is_one_signed_request_and_order_holds_across_batches() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    stack
        .webhook("b", &receiver.url("/in"), |spec| {
            batched(spec, 50, 200);
            spec.signing_secret = Some(secret.into());
        })
        .await;
    publish_numbers(&stack, "c").await;
    let batches = wait_for_events(&receiver, EVENTS).await;
    let expected: Vec<String> = (1..=EVENTS).map(|n| n.to_string()).collect();
    assert_eq!(payloads(&batches), expected, "in order, each once");
    assert!(
        batches.iter().all(|events| events.len() <= 50),
        "at most max_events each: {:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        batches.len() <= EVENTS / 10,
        "{} requests for {EVENTS} events: they were batched",
        batches.len()
    );
    let first = &batches[0][0];
    assert_eq!(first["event"], "message.publish", "EMQX's fields: {first}");
    assert_eq!(first["metadata"]["rule_id"], "b");
    let script = r#"
import sys
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, sig, body = sys.argv[1:6]
events = Webhook(secret).verify(body, {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig})
print(len(events))
"#;
    let request = &receiver.requests()[0];
    let body = String::from_utf8(request.body.to_vec()).expect("utf8 body");
    let out = run(
        "python3",
        &[
            "-c",
            script,
            secret,
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            &body,
        ],
    )
    .await;
    assert_eq!(out.trim(), batches[0].len().to_string(), "signed as one");
    let metrics = stack.engine.get("b").expect("webhook").metrics;
    assert_eq!(metrics.success, EVENTS as u64, "counted per event");
    assert_balanced(&metrics);
}

#[tokio::test]
async fn a_failed_batch_is_retried_whole() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503)]);
    stack
        .webhook("r", &receiver.url("/"), |spec| {
            batched(spec, EVENTS, 2_000);
            spec.max_inflight = 1;
        })
        .await;
    publish_numbers(&stack, "c").await;
    stack
        .wait_metrics("r", "success", |m| m.success == EVENTS as u64)
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "one refused batch, then the same again");
    assert_eq!(requests[0].status, 503);
    assert_eq!(requests[0].body, requests[1].body, "retried whole");
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id"),
        "the id of its first event, on every attempt"
    );
    assert_eq!(
        events_of(&requests[1].body).len(),
        EVENTS,
        "full before max_wait"
    );
    let metrics = stack.engine.get("r").expect("webhook").metrics;
    assert_eq!(metrics.retried, EVENTS as u64, "each event's retry counted");
    assert_balanced(&metrics);
}

#[tokio::test]
async fn ndjson_batches_render_each_event_with_the_body_template() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack
        .webhook("n", &receiver.url("/"), |spec| {
            batched(spec, 40, 100);
            spec.batch.format = BatchFormat::Ndjson;
            spec.body = Some(r#"{"who":"${clientid}","n":${payload}}"#.into());
        })
        .await;
    publish_numbers(&stack, "templated").await;
    let batches = wait_for_events(&receiver, EVENTS).await;
    let numbers: Vec<u64> = batches
        .iter()
        .flatten()
        .map(|event| {
            assert_eq!(event["who"], "templated", "{event}");
            event["n"].as_u64().expect("a number")
        })
        .collect();
    assert_eq!(numbers, (1..=EVENTS as u64).collect::<Vec<_>>());
    let request = &receiver.requests()[0];
    assert!(request.body.ends_with(b"\n"), "one event per line");
}
