//! API keys: create, list, show, delete, and HTTP Basic authentication with them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Auth, log_text, start_node};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).expect("ms fit"))
        .expect("clock")
}

async fn create(node: &crate::Node, token: &str, body: Value) -> (StatusCode, Value) {
    node.call(token, Method::POST, "/api_key", Some(body)).await
}

#[tokio::test]
async fn api_key_life_cycle_and_basic_auth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;

    let (status, created) = create(
        &node,
        &token,
        json!({"name": "ci-script", "description": "for CI"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["api_key"].as_str().expect("key").to_owned();
    let secret = created["api_secret"].as_str().expect("secret").to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(created["name"], "ci-script");
    assert_eq!(created["enable"], true);
    assert_eq!(created["created_by"], "admin");
    assert!(created["created_at"].as_u64().is_some_and(|t| t > 0));

    // Basic auth works on every authenticated endpoint.
    for path in ["/webhooks", "/clients", "/stats", "/api_key"] {
        let (status, _) = node
            .send(Auth::Basic(&key, &secret), Method::GET, path, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Bad credentials are 401s.
    let garbage = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("no-colon-here")
    );
    for auth in [
        Auth::Basic(&key, "0000"),
        Auth::Basic("unknown", &secret),
        Auth::Basic("", ""),
        Auth::Raw("Basic !!!not-base64"),
        Auth::Raw(&garbage),
        Auth::Raw("Digest abc"),
        Auth::Raw("Bearer"),
    ] {
        let (status, answer) = node.send(auth, Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer["code"], "UNAUTHORIZED");
    }

    // Listings never show the secret (nor its hash).
    let (status, list) = node.call(&token, Method::GET, "/api_key", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "ci-script");
    assert_eq!(list[0]["api_key"], key.as_str());
    let (status, shown) = node
        .call(&token, Method::GET, "/api_key/ci-script", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for text in [list.to_string(), shown.to_string()] {
        assert!(!text.contains(&secret), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
    assert!(!log_text().contains(&secret), "the secret was logged");

    // Bad input names the field.
    for (body, status, field) in [
        (json!({"name": "ci-script"}), StatusCode::CONFLICT, "name"),
        (json!({"name": "bad name"}), StatusCode::BAD_REQUEST, "name"),
        (json!({}), StatusCode::BAD_REQUEST, "name"),
        (
            json!({"name": "x", "colour": 1}),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            json!({"name": "x", "expired_at": 1}),
            StatusCode::BAD_REQUEST,
            "expired_at",
        ),
        (
            json!({"name": "x", "expired_at": -1}),
            StatusCode::BAD_REQUEST,
            "expired_at",
        ),
        (
            json!({"name": "x", "enable": "yes"}),
            StatusCode::BAD_REQUEST,
            "enable",
        ),
    ] {
        let (got, answer) = create(&node, &token, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }

    // Disabled and expired keys are refused.
    let (_, disabled) = create(&node, &token, json!({"name": "off", "enable": false})).await;
    let (_, expiring) = create(
        &node,
        &token,
        json!({"name": "brief", "expired_at": now_ms() + 300}),
    )
    .await;
    let (status, _) = node
        .send(
            Auth::Basic(
                disabled["api_key"].as_str().expect("key"),
                disabled["api_secret"].as_str().expect("secret"),
            ),
            Method::GET,
            "/stats",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _) = node
        .send(
            Auth::Basic(
                expiring["api_key"].as_str().expect("key"),
                expiring["api_secret"].as_str().expect("secret"),
            ),
            Method::GET,
            "/stats",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Keys survive a restart.
    node.stop().await;
    let node = start_node(dir.path()).await;
    let (status, _) = node
        .send(Auth::Basic(&key, &secret), Method::GET, "/stats", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Deleting (here with the key itself) ends it at once.
    let (status, _) = node
        .send(
            Auth::Basic(&key, &secret),
            Method::DELETE,
            "/api_key/ci-script",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = node
        .send(Auth::Basic(&key, &secret), Method::GET, "/stats", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let token = node.login().await;
    for method in [Method::GET, Method::DELETE] {
        let (status, answer) = node
            .call(&token, method.clone(), "/api_key/ci-script", None)
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("NOT_FOUND")),
            "{method}"
        );
    }
}
