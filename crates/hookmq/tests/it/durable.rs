//! Disk-buffered webhooks through a crash and a normal stop, as a user would run hookmq:
//! the binary with a `[[webhooks]]` entry, `mosquitto_pub` clients, a receiver answering
//! slowly; then `kill -9` (or SIGTERM), a restart on the same data directory, and every
//! event arrives, in order per client, a duplicate only with the same `webhook-id`.

use std::{
    collections::HashMap,
    io::Write as _,
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use serde_json::Value;

use crate::support::{Running, free_port, log_path, login, start_hookmq};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 50;

/// One request as received: `webhook-id`, client id and payload.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    client: String,
    payload: String,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Milliseconds each answer waits.
    delay_ms: AtomicU64,
}

/// A webhook receiver on its own runtime thread (the tests block their own thread while
/// they wait for processes).
struct Receiver {
    address: SocketAddr,
    inbox: Arc<Inbox>,
}

async fn receive(
    State(inbox): State<Arc<Inbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> &'static str {
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
    inbox.received.lock().expect("inbox").push(Received {
        id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        client: text("clientid"),
        payload: text("payload"),
    });
    let delay = inbox.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    "ok"
}

impl Receiver {
    fn start(delay_ms: u64) -> Self {
        let inbox = Arc::new(Inbox::default());
        inbox.delay_ms.store(delay_ms, Ordering::Relaxed);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address");
        let app = Router::new()
            .route("/", post(receive))
            .with_state(Arc::clone(&inbox));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        Self { address, inbox }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().expect("inbox").clone()
    }

    /// Waits until `check` holds for what was received.
    fn wait(&self, what: &str, check: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let received = self.received();
            if check(&received) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} received",
                received.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

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

/// Every event arrived; each client's first deliveries are in order; a duplicate has the
/// same `webhook-id` as the first delivery of its event. Returns the duplicates' count.
fn check_complete_and_ordered(received: &[Received]) -> usize {
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut order: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut duplicates = 0;
    for r in received {
        match first.get(r.payload.as_str()) {
            Some(id) => {
                assert_eq!(
                    *id, r.id,
                    "{}: a duplicate with another webhook-id",
                    r.payload
                );
                duplicates += 1;
            }
            None => {
                first.insert(&r.payload, &r.id);
                order.entry(&r.client).or_default().push(&r.payload);
            }
        }
    }
    assert_eq!(first.len(), CLIENTS * PER_CLIENT, "every event arrived");
    for k in 0..CLIENTS {
        let expected: Vec<String> = (0..PER_CLIENT).map(|n| format!("c{k}-{n}")).collect();
        assert_eq!(
            order[format!("c{k}").as_str()],
            expected,
            "client c{k} in order"
        );
    }
    duplicates
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

    receiver.inbox.delay_ms.store(0, Ordering::Relaxed);
    let _hookmq = start_hookmq(dir.path(), mqtt, dashboard, &[("HOOKMQ_CONFIG", &config)]);
    receiver.wait("every event", |r| distinct(r) == CLIENTS * PER_CLIENT);
    check_complete_and_ordered(&receiver.received());
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

    receiver.inbox.delay_ms.store(0, Ordering::Relaxed);
    let _hookmq = start_hookmq(dir.path(), mqtt, dashboard, &[("HOOKMQ_CONFIG", &config)]);
    receiver.wait("every event", |r| distinct(r) == CLIENTS * PER_CLIENT);
    let duplicates = check_complete_and_ordered(&receiver.received());
    assert_eq!(
        duplicates, 0,
        "requests in flight were answered before the stop"
    );
}

impl Running {
    /// `kill -9`, and waits for the exit.
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }
}
