//! Disk-buffered webhooks through a crash and a normal stop, as a user would run hookmq:
//! the binary with a `[[webhooks]]` entry, `mosquitto_pub` clients, a receiver answering
//! slowly; then `kill -9` (or SIGTERM), a restart on the same data directory, and every
//! event arrives, in order per client, a duplicate only with the same `webhook-id`.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::receiver::{Received, Receiver, check_complete_and_ordered};
use crate::support::{free_port, log_path, login, start_hookmq};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 50;

/// Distinct payloads received.
fn distinct(received: &[Received]) -> usize {
    received
        .iter()
        .map(|r| &r.payload)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// A config file with one disk-buffered webhook on `message.publish` to `receiver`.
fn config(dir: &Path, receiver: SocketAddr) -> String {
    let path = dir.join("hookmq.toml");
    let mut file = std::fs::File::create(&path).expect("config");
    write!(
        file,
        "[[webhooks]]\nname = \"audit\"\nurl = \"http://{receiver}/\"\n\
         events = [\"message.publish\"]\nmax_inflight = 2\npipelining = 4\n\
         retry_backoff = \"100ms\"\nretry_max_backoff = \"200ms\"\n"
    )
    .expect("write config");
    path.to_string_lossy().into_owned()
}

/// `CLIENTS` clients publish `PER_CLIENT` QoS 1 messages each (`c<k>-<n>`), in parallel;
/// returns once every one was acknowledged.
fn publish_all(mqtt: u16) {
    let publishers: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let mut child = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &mqtt.to_string(), "-V", "mqttv5"])
                .args([
                    "-q",
                    "1",
                    "-i",
                    &format!("c{k}"),
                    "-t",
                    &format!("t/{k}"),
                    "-l",
                ])
                .stdin(Stdio::piped())
                .spawn()
                .expect("mosquitto_pub runs");
            let lines: String = (0..PER_CLIENT).map(|n| format!("c{k}-{n}\n")).collect();
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(lines.as_bytes())
                .expect("lines");
            child
        })
        .collect();
    for mut publisher in publishers {
        assert!(publisher.wait().expect("mosquitto_pub").success());
    }
}

/// The webhook's metrics through the API.
async fn metrics(base: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/webhooks/audit/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics")
        .json()
        .await
        .expect("json")
}

/// Waits until every event matched is written to the journal.
async fn wait_journaled(base: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(base, token).await;
        if m["matched"] == (CLIENTS * PER_CLIENT) as u64 && m["buffer"]["unwritten"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{m:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_delivery_loses_no_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let receiver = Receiver::start(20);
    let config = config(dir.path(), receiver.address);
    let mut hookmq = start_hookmq(dir.path(), mqtt, dashboard, &[("HOOKMQ_CONFIG", &config)]);
    let base = format!("http://127.0.0.1:{dashboard}/api/v5");
    let token = login(&base).await;
    publish_all(mqtt);
    wait_journaled(&base, &token).await;
    receiver.wait("deliveries under way", |r| r.len() >= 10);
    hookmq.kill();
    let before_restart = receiver.received().len();
    assert!(
        before_restart < CLIENTS * PER_CLIENT,
        "killed mid-delivery ({before_restart} delivered)"
    );

    receiver.set_delay_ms(0);
    let _hookmq = start_hookmq(dir.path(), mqtt, dashboard, &[("HOOKMQ_CONFIG", &config)]);
    receiver.wait("every event", |r| distinct(r) == CLIENTS * PER_CLIENT);
    check_complete_and_ordered(&receiver.received(), CLIENTS, PER_CLIENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_stop_keeps_what_it_did_not_deliver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let receiver = Receiver::start(50);
    let config = config(dir.path(), receiver.address);
    let hookmq = start_hookmq(dir.path(), mqtt, dashboard, &[("HOOKMQ_CONFIG", &config)]);
    let base = format!("http://127.0.0.1:{dashboard}/api/v5");
    let token = login(&base).await;
    publish_all(mqtt);
    wait_journaled(&base, &token).await;
    receiver.wait("deliveries under way", |r| r.len() >= 10);
    drop(hookmq); // SIGTERM, and waits for the exit
    let stopped = std::fs::read_to_string(log_path(dir.path())).expect("log");
    let summary = stopped
        .lines()
        .find(|l| l.contains("webhooks stopped"))
        .unwrap_or_else(|| panic!("no summary in the log:\n{stopped}"));
    let field = |name: &str| -> usize {
        let value = summary
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {summary:?}"));
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {value:?}"))
    };
    let delivered_before = distinct(&receiver.received());
    assert!(field("kept_on_disk") > 0, "{summary}");
    assert_eq!(field("lost"), 0, "{summary}");
    assert_eq!(
        delivered_before + field("kept_on_disk"),
        CLIENTS * PER_CLIENT,
        "delivered and kept make every event: {summary}"
    );

    receiver.set_delay_ms(0);
    let _hookmq = start_hookmq(dir.path(), mqtt, dashboard, &[("HOOKMQ_CONFIG", &config)]);
    receiver.wait("every event", |r| distinct(r) == CLIENTS * PER_CLIENT);
    let duplicates = check_complete_and_ordered(&receiver.received(), CLIENTS, PER_CLIENT);
    assert_eq!(
        duplicates, 0,
        "requests in flight were answered before the stop"
    );
}
