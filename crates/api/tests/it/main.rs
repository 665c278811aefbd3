//! The API over HTTP: the real broker, engine, store and API on loopback, driven by reqwest
//! (and MQTT clients for the client and subscription listings).

mod alarms;
mod api_keys;
mod clients;
mod dead_letters;
mod emqx;
mod events;
mod openapi;
mod robustness;
mod stats;
mod throttle;
mod users;
mod webhooks;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use hookmq_api::Store;
use hookmq_api::{Api, DashboardConfig};
use hookmq_broker::{Broker, Config, config::ListenerConfig};
use hookmq_webhooks::WebhookEngine;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// Everything the code under test logged (at trace level for hookmq's crates), so tests can
/// check that no secret is ever written.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new(
            "hookmq_api=trace,hookmq_broker=trace,hookmq_webhooks=trace,warn",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
    LOGS.get_or_init(Mutex::default)
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log so far, as text.
pub(crate) fn log_text() -> String {
    let logs = logs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&logs).into_owned()
}

/// Credentials for a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// None at all.
    None,
    /// `Authorization: Bearer`.
    Bearer(&'a str),
    /// HTTP Basic (API key and secret).
    Basic(&'a str, &'a str),
    /// This exact `Authorization` value.
    Raw(&'a str),
}

pub(crate) struct Node {
    pub(crate) base: String,
    pub(crate) http: Client,
    pub(crate) engine: WebhookEngine,
    pub(crate) broker: Broker,
    pub(crate) mqtt: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub(crate) async fn start_node(data: &std::path::Path) -> Node {
    let dashboard = DashboardConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..DashboardConfig::default()
    };
    start_node_with(data, dashboard).await
}

pub(crate) async fn start_node_with(data: &std::path::Path, dashboard: DashboardConfig) -> Node {
    start_node_tuned(data, dashboard, |_| {}).await
}

/// A node whose broker configuration `adjust` changes.
pub(crate) async fn start_node_tuned(
    data: &std::path::Path,
    dashboard: DashboardConfig,
    adjust: impl FnOnce(&mut Config),
) -> Node {
    let _ = logs();
    let mut config = Config::default();
    config.node.name = "hookmq@127.0.0.1".into();
    config.node.data_dir = data.to_path_buf();
    let local = ListenerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..ListenerConfig::default()
    };
    config.listeners.tcp = local.clone();
    let off = ListenerConfig {
        enable: false,
        ..local
    };
    config.listeners.ws = off.clone();
    config.listeners.tls = off.clone();
    config.listeners.wss = off;
    // No memory alarm from a busy test machine, unless a test asks for the check.
    config.sysmon.os.mem_check_interval = Duration::ZERO;
    adjust(&mut config);
    let broker = Broker::start(config).await.expect("broker");
    let mqtt = broker.addresses().tcp.expect("tcp listener");
    let engine = WebhookEngine::start(
        broker.handle(),
        data,
        hookmq_webhooks::Egress::default(),
        hookmq_webhooks::seal::Sealer::load(data, None).expect("key"),
    );
    let store = Arc::new(Store::open(data).expect("store"));
    engine.restore().await;
    hookmq_api::migrate_saved_webhooks(&engine, &store)
        .await
        .expect("migrate");
    let api = Api::bind(&dashboard, engine.clone(), store)
        .await
        .expect("api");
    let address = api.address().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(api.serve(async move {
        let _ = stopped.await;
    }));
    Node {
        base: format!("http://{address}/api/v5"),
        http: Client::new(),
        engine,
        broker,
        mqtt,
        stop,
        server,
    }
}

impl Node {
    /// Stops everything, releasing the store.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.engine
            .shutdown(std::time::Duration::from_secs(5))
            .await;
        self.broker.shutdown(Duration::from_secs(1)).await;
    }

    pub(crate) async fn login_as(&self, username: &str, password: &str) -> Value {
        let answer = self
            .http
            .post(format!("{}/login", self.base))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json::<Value>().await.expect("json")
    }

    pub(crate) async fn login(&self) -> String {
        self.login_as("admin", "public").await["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// A new API key `(key, secret)` (for sweeps over every endpoint: `POST /logout` would
    /// end a login token).
    pub(crate) async fn api_key(&self, token: &str, name: &str) -> (String, String) {
        let (status, key) = self
            .call(token, Method::POST, "/api_key", Some(json!({"name": name})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        (
            key["api_key"].as_str().expect("key").to_owned(),
            key["api_secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// A request with `auth` and an optional JSON body; the answer's status and JSON (null
    /// when it is not JSON).
    pub(crate) async fn send(
        &self,
        auth: Auth<'_>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic(key, secret) => request.basic_auth(key, Some(secret)),
            Auth::Raw(value) => request.header("authorization", value),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        let status = answer.status();
        let text = answer.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send(Auth::Bearer(token), method, path, body).await
    }
}

/// A receiver answering every request with 200 and a fixed text.
pub(crate) async fn receiver() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().fallback(|| async { "hello from the receiver" });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// Polls `check` every 20 ms for up to 5 s.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
