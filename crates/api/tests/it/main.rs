//! The API over HTTP: the real broker, engine, store and API on loopback, driven by reqwest.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hookmq_api::{Api, DashboardConfig};
use hookmq_broker::{Broker, Config, config::ListenerConfig, store::Store};
use hookmq_webhooks::WebhookEngine;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

struct Node {
    base: String,
    http: Client,
    engine: WebhookEngine,
    broker: Broker,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_node(data: &std::path::Path) -> Node {
    let mut config = Config::default();
    let local = ListenerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..ListenerConfig::default()
    };
    config.listeners.tcp = local.clone();
    config.listeners.ws = ListenerConfig {
        enable: false,
        ..local.clone()
    };
    config.listeners.tls = ListenerConfig {
        enable: false,
        ..local.clone()
    };
    config.listeners.wss = ListenerConfig {
        enable: false,
        ..local
    };
    let broker = Broker::start(config).await.expect("broker");
    let engine = WebhookEngine::start(broker.handle());
    let store = Arc::new(Store::open(data).expect("store"));
    hookmq_api::restore(&engine, &store).await.expect("restore");
    let dashboard = DashboardConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..DashboardConfig::default()
    };
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
        stop,
        server,
    }
}

impl Node {
    /// Stops everything, releasing the store.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.engine.shutdown().await;
        self.broker.shutdown(Duration::from_secs(1)).await;
    }

    async fn login(&self) -> String {
        let answer = self
            .http
            .post(format!("{}/login", self.base))
            .json(&json!({"username": "admin", "password": "public"}))
            .send()
            .await
            .expect("login");
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json::<Value>().await.expect("json")["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        let status = answer.status();
        let text = answer.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

async fn receiver() -> SocketAddr {
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

use reqwest::Method;

#[tokio::test]
async fn login_and_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let bad = node
        .http
        .post(format!("{}/login", node.base))
        .json(&json!({"username": "admin", "password": "wrong"}))
        .send()
        .await
        .expect("login");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad.json::<Value>().await.expect("json")["code"],
        "BAD_USERNAME_OR_PWD"
    );
    let unknown = node
        .http
        .post(format!("{}/login", node.base))
        .json(&json!({"username": "admin", "password": "public", "otp": 1}))
        .send()
        .await
        .expect("login");
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json::<Value>().await.expect("json")["field"], "otp");

    for (method, path) in [
        (Method::GET, "/webhooks"),
        (Method::POST, "/webhooks"),
        (Method::GET, "/webhooks/x"),
        (Method::PUT, "/webhooks/x"),
        (Method::DELETE, "/webhooks/x"),
        (Method::PUT, "/webhooks/x/enable/true"),
        (Method::GET, "/webhooks/x/metrics"),
        (Method::PUT, "/webhooks/x/metrics/reset"),
        (Method::POST, "/webhooks/x/test"),
        (Method::POST, "/webhooks_probe"),
    ] {
        let missing = node
            .http
            .request(method.clone(), format!("{}{path}", node.base))
            .send()
            .await
            .expect("request");
        assert_eq!(
            missing.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} without token"
        );
        let (status, body) = node.call("not-a-token", method.clone(), path, None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad token"
        );
        assert_eq!(body["code"], "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn webhook_life_cycle_and_bad_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let receiver = receiver().await;
    let url = format!("http://{receiver}/");

    let spec = json!({
        "name": "my_webhook", "description": "seed", "url": url,
        "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "headers": {"content-type": "application/json", "authorization": "Bearer s3cret"}
    });
    let (status, created) = node
        .call(&token, Method::POST, "/webhooks", Some(spec.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["signing_secret"], "******",
        "secrets are never returned"
    );
    assert_eq!(created["headers"]["authorization"], "******");
    assert_eq!(created["events"], json!(["*"]));
    assert_eq!(created["metrics"]["matched"], 0);
    let (status, body) = node
        .call(&token, Method::POST, "/webhooks", Some(spec))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("ALREADY_EXISTS"))
    );

    for (bad, field) in [
        (json!({"name": "b", "url": "ftp://x"}), "url"),
        (json!({"name": "b c", "url": url}), "name"),
        (
            json!({"name": "b", "url": url, "events": ["client.nope"]}),
            "events[0]",
        ),
        (
            json!({"name": "b", "url": url, "topics": ["a/#/b"]}),
            "topics[0]",
        ),
        (
            json!({"name": "b", "url": url, "method": "patch"}),
            "method",
        ),
        (
            json!({"name": "b", "url": url, "max_retries": -1}),
            "max_retries",
        ),
        (json!({"name": "b", "url": url, "colour": "red"}), "colour"),
        (json!({"name": "b"}), "url"),
        (
            json!({"name": "b", "url": url, "request_timeout": "soon"}),
            "request_timeout",
        ),
        (
            json!({"name": "b", "url": url, "headers": {"x": "a\nb"}}),
            "headers.x",
        ),
    ] {
        let (status, body) = node
            .call(&token, Method::POST, "/webhooks", Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["field"], field, "{bad}: {body}");
        assert_eq!(body["code"], "BAD_REQUEST");
    }
    let not_json = node
        .http
        .post(format!("{}/webhooks", node.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let (status, list) = node.call(&token, Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // Update keeps redacted secrets, refuses renames.
    let (status, _) = node
        .call(
            &token,
            Method::PUT,
            "/webhooks/my_webhook",
            Some(json!({"name": "other", "url": url})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, updated) = node
        .call(&token, Method::PUT, "/webhooks/my_webhook", Some(json!({"url": url, "description": "changed", "signing_secret": "******", "headers": {"authorization": "******"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["description"], "changed");
    let kept = node.engine.get("my_webhook").expect("exists").spec;
    assert_eq!(
        kept.signing_secret.as_deref(),
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    assert_eq!(
        kept.headers.get("authorization").map(String::as_str),
        Some("Bearer s3cret")
    );

    let (status, _) = node
        .call(
            &token,
            Method::PUT,
            "/webhooks/my_webhook/enable/false",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!node.engine.get("my_webhook").expect("exists").spec.enable);
    let (status, body) = node
        .call(
            &token,
            Method::PUT,
            "/webhooks/my_webhook/enable/maybe",
            None,
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("enable"))
    );

    let (status, tested) = node
        .call(&token, Method::POST, "/webhooks/my_webhook/test", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["status"], 200);
    assert_eq!(tested["body"], "hello from the receiver");
    let (status, probed) = node
        .call(
            &token,
            Method::POST,
            "/webhooks_probe",
            Some(json!({"url": "http://127.0.0.1:9/"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(probed["success"], false);
    assert!(probed["error"].as_str().is_some_and(|e| !e.is_empty()));

    let (status, metrics) = node
        .call(&token, Method::GET, "/webhooks/my_webhook/metrics", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics["dropped.queue_full"].is_u64());
    let (status, _) = node
        .call(
            &token,
            Method::PUT,
            "/webhooks/my_webhook/metrics/reset",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = node
        .call(&token, Method::DELETE, "/webhooks/my_webhook", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (method, path) in [
        (Method::GET, "/webhooks/my_webhook"),
        (Method::DELETE, "/webhooks/my_webhook"),
        (Method::GET, "/webhooks/my_webhook/metrics"),
    ] {
        let (status, body) = node.call(&token, method, path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("NOT_FOUND")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn webhooks_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let node = start_node(dir.path()).await;
        let token = node.login().await;
        let (status, _) = node
            .call(&token, Method::POST, "/webhooks", Some(json!({"name": "kept", "url": "http://127.0.0.1:9/", "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = node
            .call(
                &token,
                Method::POST,
                "/webhooks",
                Some(json!({"name": "gone", "url": "http://127.0.0.1:9/"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = node
            .call(&token, Method::DELETE, "/webhooks/gone", None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        node.stop().await;
    }
    let node = start_node(dir.path()).await;
    let names: Vec<String> = node
        .engine
        .list()
        .into_iter()
        .map(|w| w.spec.name)
        .collect();
    assert_eq!(names, ["kept"]);
    assert!(
        node.engine
            .get("kept")
            .expect("kept")
            .spec
            .signing_secret
            .is_some(),
        "stored with its secret"
    );
    let token = node.login().await;
    let (status, _) = node.call(&token, Method::GET, "/webhooks/kept", None).await;
    assert_eq!(status, StatusCode::OK);
}
