//! The outbound guard on the running binary. The denied network is a loopback address
//! (`127.0.0.2`) given in `HOOKMQ_EGRESS__DENY_NETWORKS`, with a receiver listening on it
//! that must never be reached: at create and probe time the URL is a 400 naming `url`; a
//! webhook saved before the address was denied is refused when it connects, and its
//! failure counted.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::{Running, free_port, login, start_hookmq};

/// A receiver on `ip` counting the requests (any method, any path) that reach it.
async fn receiver(ip: [u8; 4]) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let reached = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&reached);
    let app = axum::Router::new().fallback(move || {
        count.fetch_add(1, Ordering::Relaxed);
        async { "reached" }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, reached)
}

struct Node {
    _running: Running,
    api: String,
    token: String,
    mqtt: u16,
}

async fn start(data: &std::path::Path, deny: Option<&str>) -> Node {
    let (mqtt, dashboard) = (free_port(), free_port());
    let env: Vec<(&str, &str)> = deny
        .map(|deny| ("HOOKMQ_EGRESS__DENY_NETWORKS", deny))
        .into_iter()
        .collect();
    let running = start_hookmq(data, mqtt, dashboard, &env);
    let api = format!("http://127.0.0.1:{dashboard}/api/v5");
    let token = login(&api).await;
    Node {
        _running: running,
        api,
        token,
        mqtt,
    }
}

impl Node {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let answer = Client::new()
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        (answer.status(), answer.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self, name: &str) -> Value {
        Client::new()
            .get(format!("{}/webhooks/{name}/metrics", self.api))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("metrics")
            .json()
            .await
            .expect("json")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_network_is_refused_at_create_probe_and_connect_time() {
    let (denied, reached) = receiver([127, 0, 0, 2]).await;
    let (allowed, allowed_reached) = receiver([127, 0, 0, 1]).await;
    let dir = tempfile::tempdir().expect("temp dir");

    // Saved while nothing is denied (and nothing published, so nothing sent).
    let node = start(dir.path(), None).await;
    let (status, answer) = node
        .post(
            "/webhooks",
            json!({"name": "saved_before", "url": format!("http://{denied}/hook")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    drop(node);

    let node = start(dir.path(), Some("127.0.0.2/32, 169.254.0.0/16")).await;
    let url = format!("http://{denied}/hook");
    for (path, body) in [
        ("/webhooks", json!({"name": "new_one", "url": url})),
        ("/webhooks_probe", json!({"url": url})),
        (
            "/webhooks",
            json!({"name": "tls_one", "url": format!("https://{denied}/")}),
        ),
    ] {
        let (status, answer) = node.post(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["field"], "url", "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains("egress.deny_networks"), "{message}");
    }
    // Other loopback addresses still work.
    let (status, answer) = node
        .post(
            "/webhooks_probe",
            json!({"url": format!("http://{allowed}/")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(allowed_reached.load(Ordering::Relaxed), 1);

    // The saved webhook is refused when it connects: counted as failed, never sent.
    let published = std::process::Command::new("mosquitto_pub")
        .args([
            "-p",
            &node.mqtt.to_string(),
            "-t",
            "t/1",
            "-m",
            "x",
            "-q",
            "1",
        ])
        .status()
        .expect("mosquitto_pub");
    assert!(published.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = node.metrics("saved_before").await;
        if metrics["failed"].as_u64().unwrap_or(0) > 0 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no failure counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let failure = metrics["last_failures"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(failure.contains("egress"), "{metrics}");
    assert_eq!(
        reached.load(Ordering::Relaxed),
        0,
        "the denied receiver was reached"
    );
}
