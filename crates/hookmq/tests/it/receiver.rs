//! A real webhook receiver for the tests: an axum server on its own runtime thread that
//! records every request and answers `ok`, after a delay if asked.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use serde_json::Value;

/// One request as received: `webhook-id`, client id and payload.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) id: String,
    pub(crate) client: String,
    pub(crate) payload: String,
    /// Whether it carried a `webhook-signature`.
    pub(crate) signed: bool,
    /// The event (`message.publish`, `alarm.activated`, ...).
    pub(crate) event: String,
    /// An alarm's name (alarm events).
    pub(crate) name: String,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Milliseconds each answer waits.
    delay_ms: AtomicU64,
}

/// A webhook receiver on its own runtime thread (the tests block their own thread while
/// they wait for processes).
pub(crate) struct Receiver {
    pub(crate) address: SocketAddr,
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
        signed: headers.contains_key("webhook-signature"),
        payload: text("payload"),
        event: text("event"),
        name: text("name"),
    });
    let delay = inbox.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    "ok"
}

impl Receiver {
    pub(crate) fn start(delay_ms: u64) -> Self {
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

    /// Answers from now on after `delay_ms`.
    pub(crate) fn set_delay_ms(&self, delay_ms: u64) {
        self.inbox.delay_ms.store(delay_ms, Ordering::Relaxed);
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().expect("inbox").clone()
    }

    /// Waits until `check` holds for what was received (60 s at most).
    pub(crate) fn wait(&self, what: &str, check: impl Fn(&[Received]) -> bool) {
        self.wait_within(what, Duration::from_secs(60), check);
    }

    /// Waits until `check` holds for what was received, `patience` at most.
    pub(crate) fn wait_within(
        &self,
        what: &str,
        patience: Duration,
        check: impl Fn(&[Received]) -> bool,
    ) {
        let deadline = Instant::now() + patience;
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

/// Every event of `clients` clients `c<k>` publishing `per_client` payloads `c<k>-<n>`
/// arrived; each client's first deliveries are in order; a duplicate has the
/// same `webhook-id` as the first delivery of its event. Returns the duplicates' count.
pub(crate) fn check_complete_and_ordered(
    received: &[Received],
    clients: usize,
    per_client: usize,
) -> usize {
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
    assert_eq!(first.len(), clients * per_client, "every event arrived");
    for k in 0..clients {
        let expected: Vec<String> = (0..per_client).map(|n| format!("c{k}-{n}")).collect();
        assert_eq!(
            order[format!("c{k}").as_str()],
            expected,
            "client c{k} in order"
        );
    }
    duplicates
}
