//! `/stats`, `/metrics`, `/nodes` and the Prometheus text at `/prometheus/stats`, after real
//! MQTT traffic and webhook deliveries.

use std::collections::{BTreeMap, HashSet};

use reqwest::{Method, StatusCode};
use rumqttc::v5::{AsyncClient, MqttOptions, mqttbytes::QoS};
use serde_json::json;

use crate::{Auth, eventually, receiver, start_node};

/// One parsed sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `name{a="b",c="d"} value`, checking the format strictly.
fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("name and value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("closing brace");
            let mut labels = BTreeMap::new();
            for pair in body.split("\",").filter(|p| !p.is_empty()) {
                let (label, value) = pair.split_once("=\"").expect("label=\"value\"");
                assert!(is_metric_name(label), "label {label} in {line}");
                labels.insert(label.to_owned(), value.trim_end_matches('"').to_owned());
            }
            (name, labels)
        }
    };
    assert!(is_metric_name(name), "name {name} in {line}");
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Checks the whole exposition and returns its samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let mut seen_families = HashSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "no blank lines");
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name, tail) = (parts.next(), parts.next(), parts.next());
            let name = name.expect("a metric name");
            assert!(is_metric_name(name), "{line}");
            match keyword {
                Some("HELP") => assert!(tail.is_some_and(|t| !t.is_empty()), "{line}"),
                Some("TYPE") => {
                    let kind = tail.expect("a type");
                    assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                    assert!(seen_families.insert(name.to_owned()), "one TYPE per family");
                    types.insert(name.to_owned(), kind.to_owned());
                }
                _ => panic!("unexpected comment {line}"),
            }
            continue;
        }
        let sample = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                sample
                    .name
                    .strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(&sample.name);
        assert!(types.contains_key(family), "no TYPE before {line}");
        samples.push(sample);
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
        .value
}

#[tokio::test]
async fn stats_metrics_nodes_and_prometheus() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let receiver = receiver().await;
    let (status, _) = node
        .call(
            &token,
            Method::POST,
            "/webhooks",
            Some(json!({"name": "w1", "url": format!("http://{receiver}/"), "events": ["message.publish"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let mut options = MqttOptions::new("pub-1", "127.0.0.1", node.mqtt.port());
    options.set_keep_alive(std::time::Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
        .publish("t/1", QoS::AtLeastOnce, false, "hello")
        .await
        .expect("publish");
    eventually("delivered", || async {
        let (_, metrics) = node.call(&token, Method::GET, "/metrics", None).await;
        metrics["webhooks"]["success"] == 1
    })
    .await;

    let (status, stats) = node.call(&token, Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    for (key, expected) in [
        ("connections", 1),
        ("sessions", 1),
        ("subscriptions", 0),
        ("retained", 0),
        ("webhooks", 1),
        ("webhooks_enabled", 1),
        ("hook_events_dropped", 0),
    ] {
        assert_eq!(stats[key], expected, "{key}: {stats}");
    }

    let (status, metrics) = node.call(&token, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metrics["messages_received"], 1);
    assert_eq!(metrics["messages_dropped"], 1, "no subscriber");
    assert_eq!(metrics["connections_accepted"], 1);
    assert!(metrics["bytes_received"].as_u64().is_some_and(|b| b > 0));
    assert_eq!(
        metrics["by_webhook"],
        json!([{"name": "w1", "matched": 1, "success": 1, "failed": 0, "retried": 0, "dropped": 0}])
    );

    let (status, nodes) = node.call(&token, Method::GET, "/nodes", None).await;
    assert_eq!(status, StatusCode::OK);
    let this = &nodes[0];
    assert_eq!(nodes.as_array().map(Vec::len), Some(1));
    assert_eq!(this["node"], "hookmq@127.0.0.1");
    assert_eq!(this["node_status"], "running");
    assert_eq!(this["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(this["connections"], 1);
    assert!(this["uptime_ms"].as_u64().is_some());
    assert!(
        this["started_at"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000_000)
    );

    // Prometheus: no credentials needed, a well-formed exposition.
    let answer = node
        .http
        .get(format!("{}/prometheus/stats", node.base))
        .send()
        .await
        .expect("scrape");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = answer.text().await.expect("text");
    let samples = parse_exposition(&text);
    assert!((value(&samples, "hookmq_connections", &[]) - 1.0).abs() < f64::EPSILON);
    assert!(value(&samples, "hookmq_messages_received_total", &[]) >= 1.0);
    let w1 = [("webhook", "w1")];
    for (name, expected) in [
        ("hookmq_webhook_matched_total", 1.0),
        ("hookmq_webhook_success_total", 1.0),
        ("hookmq_webhook_failed_total", 0.0),
        ("hookmq_webhook_queuing", 0.0),
        ("hookmq_webhook_inflight", 0.0),
        ("hookmq_webhook_enabled", 1.0),
        ("hookmq_webhook_latency_seconds_count", 1.0),
    ] {
        assert!(
            (value(&samples, name, &w1) - expected).abs() < f64::EPSILON,
            "{name}"
        );
    }
    let first = [("webhook", "w1"), ("receiver", "url")];
    assert!((value(&samples, "hookmq_webhook_receiver_up", &first) - 1.0).abs() < f64::EPSILON);
    assert!(
        (value(&samples, "hookmq_webhook_receiver_delivered_total", &first) - 1.0).abs()
            < f64::EPSILON
    );
    let full = value(
        &samples,
        "hookmq_webhook_dropped_total",
        &[("webhook", "w1"), ("reason", "queue_full")],
    );
    assert!(full.abs() < f64::EPSILON);
    // Histogram buckets are cumulative and end with +Inf = count.
    let buckets: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "hookmq_webhook_latency_seconds_bucket")
        .collect();
    assert!(buckets.len() > 5);
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    let last = buckets.last().expect("buckets");
    assert_eq!(last.labels.get("le").map(String::as_str), Some("+Inf"));
    assert!((last.value - 1.0).abs() < f64::EPSILON);

    for path in ["/stats", "/metrics", "/nodes"] {
        let (status, _) = node.send(Auth::None, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    drop(client);
}
