//! Secrets at rest, on the running binary: no file under the data dir holds a webhook's
//! signing secret or secret header values (sealed; a spec saved in clear by an earlier
//! version is sealed at start), the data dir and what hookmq writes in it are its owner's
//! alone, and `hookmq config check` prints `******`. Deliveries after a restart still
//! carry the secrets, opened.

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::support::{BIN, free_port, login, start_hookmq};

const SIGNING: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTk4NzY1";
const SIGNING_BYTES: &str = "secret-signing-key-98765";
const AUTHORIZATION: &str = "Bearer header-secret-13579";
const API_KEY: &str = "api-key-secret-24680";
const LEGACY: &str = "Bearer legacy-secret-11223";

/// The `authorization` header of every request received.
type Seen = Arc<Mutex<Vec<String>>>;

async fn receiver() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let value = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        log.lock().expect("seen").push(value);
        async { "ok" }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, seen)
}

fn publish(mqtt: u16, topic: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-p", &mqtt.to_string(), "-t", topic, "-m", "x", "-q", "1"])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

async fn wait_for(seen: &Seen, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.lock().expect("seen").iter().any(|v| v == value) {
        assert!(Instant::now() < deadline, "no request with {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every file under `dir` with its bytes and mode.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let mode = entry.metadata().expect("metadata").permissions().mode();
        if path.is_dir() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).expect("read"), mode));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_is_written_in_clear_and_deliveries_still_carry_them() {
    let (address, seen) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // A spec an earlier version saved with its secret in clear.
    let legacy_dir = data.join("webhooks").join("legacy");
    std::fs::create_dir_all(&legacy_dir).expect("dir");
    let legacy = json!({
        "name": "legacy", "url": format!("http://{address}/legacy"),
        "topics": ["legacy/#"], "events": ["message.publish"],
        "headers": {"content-type": "application/json", "authorization": LEGACY},
    });
    std::fs::write(legacy_dir.join("spec.json"), legacy.to_string()).expect("write");

    let (mqtt, dashboard) = (free_port(), free_port());
    let running = start_hookmq(&data, mqtt, dashboard, &[]);
    let api = format!("http://127.0.0.1:{dashboard}/api/v5");
    let token = login(&api).await;
    let created = Client::new()
        .post(format!("{api}/webhooks"))
        .bearer_auth(&token)
        .json(&json!({
            "name": "signed", "url": format!("http://{address}/signed"),
            "topics": ["t/#"], "events": ["message.publish"],
            "signing_secret": SIGNING,
            "headers": {"authorization": AUTHORIZATION, "x-api-key": API_KEY},
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    let shown: serde_json::Value = Client::new()
        .get(format!("{api}/webhooks/signed"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("show")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["signing_secret"], "******", "{shown}");
    assert_eq!(shown["headers"]["x-api-key"], "******", "{shown}");
    publish(mqtt, "t/1");
    publish(mqtt, "legacy/1");
    wait_for(&seen, AUTHORIZATION).await;
    wait_for(&seen, LEGACY).await;
    drop(running);

    // After a restart the sealed secrets open again.
    let running = start_hookmq(&data, mqtt, dashboard, &[]);
    let before = seen.lock().expect("seen").len();
    publish(mqtt, "t/2");
    publish(mqtt, "legacy/2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().expect("seen").len() < before + 2 {
        assert!(Instant::now() < deadline, "no deliveries after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after: Vec<String> = seen.lock().expect("seen")[before..].to_vec();
    assert!(after.contains(&AUTHORIZATION.to_owned()) && after.contains(&LEGACY.to_owned()));
    drop(running);

    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&data).expect("data").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "data dir is {mode:o}");
    let all = files(&data);
    assert!(all.iter().any(|(p, _, _)| p.ends_with("secret.key")));
    for (path, bytes, mode) in &all {
        let text = String::from_utf8_lossy(bytes);
        for secret in [
            SIGNING,
            SIGNING_BYTES,
            "header-secret-13579",
            API_KEY,
            "legacy-secret-11223",
        ] {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
        // The log is the test's own file (its standard output), not one hookmq made.
        if !path.ends_with("hookmq.log") {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
    }
}

#[test]
fn config_check_prints_secrets_as_stars() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hookmq.toml");
    let toml = format!(
        "[[webhooks]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/\"\nsigning_secret = \"{SIGNING}\"\n\
         [webhooks.headers]\nauthorization = \"{AUTHORIZATION}\"\nx-trace = \"visible\"\n"
    );
    std::fs::write(&file, toml).expect("write");
    let output = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("HOOKMQ_DASHBOARD__DEFAULT_PASSWORD", "dashboard-secret-777")
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    for secret in [SIGNING, AUTHORIZATION, "dashboard-secret-777"] {
        assert!(!text.contains(secret), "{secret} printed: {text}");
    }
    assert!(
        text.contains("******") && text.contains("visible"),
        "{text}"
    );
}
