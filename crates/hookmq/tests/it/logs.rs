//! The log of the running binary written to a file: what an operator needs is there
//! (failed logins with their source, an audit line per management change, summaries of
//! refused connections, protocol errors and failed deliveries), without ANSI codes and
//! without secrets; `log.format = "json"` writes one JSON object per line.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::{free_port, log_path, login, start_hookmq};

const SIGNING: &str = "whsec_bG9nLXRlc3Qtc2lnbmluZy1zZWNyZXQ=";
const HEADER: &str = "Bearer log-test-header-secret";
const WRONG: &str = "log-test-wrong-password";

/// A receiver that refuses every request with 400 (so each event fails for good).
async fn refusing_receiver() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::BAD_REQUEST, "no thanks") });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// Waits until the log holds every one of `wanted`; returns it.
async fn log_with(data: &std::path::Path, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(log_path(data)).unwrap_or_default();
        if wanted.iter().all(|w| log.contains(w)) {
            return log;
        }
        let missing: Vec<_> = wanted.iter().filter(|w| !log.contains(**w)).collect();
        assert!(Instant::now() < deadline, "missing {missing:?} in:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A log-in with a wrong password, refused.
async fn failed_login(api: &str) {
    let wrong = Client::new()
        .post(format!("{api}/login"))
        .json(&json!({"username": "admin", "password": WRONG}))
        .send()
        .await
        .expect("login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

/// Waits until the broker counts `count` open connections.
async fn wait_for_connections(api: &str, count: usize) {
    wait_for_metric(api, &format!("hookmq_connections {count}")).await;
}

/// Waits until the Prometheus exposition has the sample line `sample`.
async fn wait_for_metric(api: &str, sample: &str) {
    let line = format!("\n{sample}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(api).await.contains(&line) {
        assert!(Instant::now() < deadline, "never {sample}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node's Prometheus exposition.
async fn metrics(api: &str) -> String {
    Client::new()
        .get(format!("{api}/prometheus/stats"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// What a user does that should be logged: a failed login, a webhook created (with
/// secrets), an event that fails for good, a webhook deleted, malformed MQTT input and a
/// connection over the limit.
async fn do_things(api: &str, mqtt: u16) {
    failed_login(api).await;
    let token = login(api).await;
    let receiver = refusing_receiver().await;
    let created = Client::new()
        .post(format!("{api}/webhooks"))
        .bearer_auth(&token)
        .json(&json!({
            "name": "logged", "url": format!("http://{receiver}/"),
            "events": ["client.connected"], "signing_secret": SIGNING,
            "headers": {"authorization": HEADER},
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    // Malformed input: not an MQTT packet at all. Then a connection holds the one place
    // allowed, so the next one is refused at the limit, and then a client connects (an
    // event to deliver).
    let mut garbage = TcpStream::connect(("127.0.0.1", mqtt)).expect("connect");
    garbage.write_all(&[0xff; 8]).expect("write");
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    drop(garbage);
    wait_for_connections(api, 0).await;
    let holder = TcpStream::connect(("127.0.0.1", mqtt)).expect("connect");
    wait_for_connections(api, 1).await;
    let over = TcpStream::connect(("127.0.0.1", mqtt)).expect("connect");
    // Accepted (and refused) in the broker's own time: the holder stays until then.
    wait_for_metric(api, "hookmq_connections_refused_total 1").await;
    drop(over);
    drop(holder);
    // The limit frees up once the broker has seen those two close.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::process::Command::new("mosquitto_pub")
        .args(["-p", &mqtt.to_string(), "-t", "t", "-m", "x", "-q", "1"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("mosquitto_pub")
        .success()
    {
        assert!(Instant::now() < deadline, "mosquitto_pub never got in");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn delete(api: &str) {
    let token = login(api).await;
    let deleted = Client::new()
        .delete(format!("{api}/webhooks/logged"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

fn assert_no_secret(log: &str) {
    for secret in [SIGNING, "bG9nLXRlc3Qtc2lnbmluZy1zZWNyZXQ", HEADER, WRONG] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_file_tells_what_happened_in_plain_text_without_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let _running = start_hookmq(
        dir.path(),
        mqtt,
        dashboard,
        &[("HOOKMQ_MQTT__MAX_CONNECTIONS", "1")],
    );
    let api = format!("http://127.0.0.1:{dashboard}/api/v5");
    do_things(&api, mqtt).await;
    let mut log = log_with(
        dir.path(),
        &[
            "dashboard login failed",
            "source=127.0.0.1",
            "management change",
            "what=POST /api/v5/webhooks",
            "who=admin",
            "events failed for good",
            "connections refused at mqtt.max_connections",
            "connections closed for breaking the MQTT protocol",
        ],
    )
    .await;
    delete(&api).await;
    log = log_with(dir.path(), &["what=DELETE /api/v5/webhooks/logged"]).await + &log;
    assert!(!log.contains('\u{1b}'), "ANSI codes in a file:\n{log}");
    assert_no_secret(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let _running = start_hookmq(
        dir.path(),
        mqtt,
        dashboard,
        &[("HOOKMQ_LOG__FORMAT", "json")],
    );
    let api = format!("http://127.0.0.1:{dashboard}/api/v5");
    failed_login(&api).await;
    let log = log_with(dir.path(), &["dashboard login failed"]).await;
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    let failed = lines
        .iter()
        .find(|l| l["message"] == "dashboard login failed")
        .expect("the failed login");
    assert_eq!(failed["source"], "127.0.0.1", "{failed}");
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_no_secret(&log);
}
