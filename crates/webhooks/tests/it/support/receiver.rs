//! A real HTTP receiver for webhook tests: records every request and answers as told.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The HTTP version it came over, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A header's value (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `event` field of a JSON body.
    pub fn event(&self) -> String {
        self.json()["event"].as_str().unwrap_or_default().to_owned()
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub retry_after: Option<String>,
    pub body: &'static str,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            retry_after: None,
            body: r#"{"result":"ok","message":"success"}"#,
        }
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Replies used in order; when empty, `default` answers.
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    /// Random delay up to this many ms on every reply (order tests).
    jitter_ms: Mutex<u64>,
    /// Requests being answered now, and the most seen at once.
    concurrent: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// The receiver.
#[derive(Clone)]
pub struct Receiver {
    pub address: SocketAddr,
    shared: Arc<Shared>,
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    use std::sync::atomic::Ordering;
    let now = shared.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak.fetch_max(now, Ordering::SeqCst);
    let response = answer(&shared, request).await;
    shared.concurrent.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn answer(shared: &Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let reply = shared
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| {
            shared
                .default
                .lock()
                .expect("lock")
                .clone()
                .unwrap_or_else(|| Reply::status(200))
        });
    shared.requests.lock().expect("lock").push(Recorded {
        method: parts.method.to_string(),
        path,
        headers: parts.headers,
        version: format!("{:?}", parts.version),
        body,
        status: reply.status,
    });
    let jitter = *shared.jitter_ms.lock().expect("lock");
    let delay = reply.delay
        + Duration::from_millis(if jitter == 0 {
            0
        } else {
            rand::random::<u64>() % jitter
        });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        reply.body,
    )
        .into_response();
    if let Some(value) = reply
        .retry_after
        .and_then(|a| HeaderValue::from_str(&a).ok())
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

impl Receiver {
    /// Starts on a free port.
    pub async fn start() -> Self {
        Self::start_at("127.0.0.1:0".parse().expect("address")).await
    }

    /// Starts on `address` (to bring a "down" receiver up).
    pub async fn start_at(address: SocketAddr) -> Self {
        let (listener, app, receiver) = Self::bind(address).await;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    /// A listener on `address`, the recording app, and the receiver that reads what it records.
    async fn bind(address: SocketAddr) -> (tokio::net::TcpListener, Router, Self) {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind receiver");
        let address = listener.local_addr().expect("address");
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        (listener, app, Self { address, shared })
    }

    /// Starts on a free port, serving HTTPS with `tls` (ALPN `h2` and `http/1.1`, so a client
    /// that offers HTTP/2 gets it).
    pub async fn start_tls(mut tls: rustls::ServerConfig) -> Self {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let (listener, app, receiver) = Self::bind("127.0.0.1:0".parse().expect("address")).await;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                // One task per connection, as a server does.
                tokio::spawn(async move {
                    // A refused handshake (no client certificate, say) just ends the connection.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("lock").extend(replies);
    }

    /// Answers every unscripted request with `reply`.
    pub fn always(&self, reply: Reply) {
        *self.shared.default.lock().expect("lock") = Some(reply);
    }

    /// The most requests answered at the same time so far.
    pub fn peak_concurrency(&self) -> usize {
        self.shared.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Adds a random delay of up to `ms` to every answer.
    pub fn jitter(&self, ms: u64) {
        *self.shared.jitter_ms.lock().expect("lock") = ms;
    }

    /// Waits until at least `count` requests arrived; returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + super::PATIENCE;
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} requests, got {}: {:?}",
                requests.len(),
                requests
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
