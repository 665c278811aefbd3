//! Webhooks: life cycle, bad input naming the field, secrets kept but never shown, restart.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{receiver, start_node};

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

/// Webhooks an earlier hookmq saved in the broker's store move to the webhooks' own
/// directory at the next start, and leave the store.
#[tokio::test]
async fn webhooks_saved_in_the_old_store_move_to_their_own_directory() {
    use hookmq_api::store::{Store, Table};
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::open(dir.path()).expect("store");
        let spec = hookmq_webhooks::WebhookSpec::new("old", "http://127.0.0.1:9/");
        store
            .put(Table::Webhooks, "old", &spec)
            .expect("saved the old way");
    }
    let node = start_node(dir.path()).await;
    assert!(node.engine.get("old").is_some(), "moved into the engine");
    assert!(dir.path().join("webhooks/old/spec.json").is_file());
    node.stop().await;
    let store = Store::open(dir.path()).expect("store");
    let left: Vec<(String, serde_json::Value)> = store.list(Table::Webhooks).expect("list");
    assert!(left.is_empty(), "{left:?}");
    drop(store);
    let node = start_node(dir.path()).await;
    assert!(
        node.engine.get("old").is_some(),
        "restored from its own directory"
    );
    node.stop().await;
}
