//! Login throttling: failed log-ins lock out the user, the API key and the source address,
//! answer 429 with `Retry-After`, and end when the lock-out does.

use std::time::Duration;

use hookmq_api::DashboardConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Auth, Node, log_text, start_node_with};

async fn node(dir: &std::path::Path) -> Node {
    let dashboard = DashboardConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        unsuccessful_login_lock_duration: Duration::from_secs(1),
        ..DashboardConfig::default()
    };
    start_node_with(dir, dashboard).await
}

/// `POST /login`: status, `Retry-After` and body.
async fn login(node: &Node, username: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
    let answer = node
        .http
        .post(format!("{}/login", node.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login");
    let retry_after = answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (
        answer.status(),
        retry_after,
        answer.json().await.expect("json"),
    )
}

#[tokio::test]
async fn five_failed_logins_lock_out_the_user_and_the_address_until_the_lock_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node(dir.path()).await;
    for attempt in 0..5 {
        let (status, retry, answer) = login(&node, "admin", &format!("guess-{attempt}")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {answer}"
        );
        assert_eq!(retry, None);
    }
    // Locked: even the right password is not checked.
    let (status, retry, answer) = login(&node, "admin", "public").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["code"], "TOO_MANY_ATTEMPTS");
    assert_eq!(retry, Some(1));
    // The address is locked too, whatever user it names.
    let (status, _, _) = login(&node, "someone-else", "whatever").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let log = log_text();
    assert!(
        log.contains("dashboard login failed") && log.contains("source=127.0.0.1"),
        "failed logins are logged with their source: {log}"
    );

    // The lock-out ends when Retry-After said: the right password works from then on.
    let retry = retry.expect("Retry-After");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, _, answer) = login(&node, "admin", "public").await;
    assert_eq!(status, StatusCode::OK, "the lock-out ended: {answer}");
    // The success started the count afresh: five more failures lock it again.
    for attempt in 0..5 {
        let (status, _, _) = login(&node, "admin", &format!("again-{attempt}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let (status, retry, _) = login(&node, "admin", "public").await;
    assert_eq!((status, retry), (StatusCode::TOO_MANY_REQUESTS, Some(1)));
    let metrics = node
        .http
        .get(format!("{}/prometheus/stats", node.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("hookmq_login_failures_total 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookmq_login_throttled_total 3"),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn wrong_api_key_secrets_lock_out_the_key_until_the_lock_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node(dir.path()).await;
    let token = node.login().await;
    let (key, secret) = node.api_key(&token, "script").await;
    for attempt in 0..5 {
        let (status, answer) = node
            .send(
                Auth::Basic(&key, &format!("wrong-{attempt}")),
                Method::GET,
                "/stats",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    }
    let (status, answer) = node
        .send(Auth::Basic(&key, &secret), Method::GET, "/stats", None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    // A login token is not a log-in attempt: it keeps working.
    let (status, _) = node.call(&token, Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(log_text().contains("API key refused"));

    // The lock-out (unsuccessful_login_lock_duration, 1 s here) ends: the key works again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, answer) = node
            .send(Auth::Basic(&key, &secret), Method::GET, "/stats", None)
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
        assert!(tokio::time::Instant::now() < deadline, "still locked out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await;
}

#[tokio::test]
async fn parallel_guesses_get_no_more_tries_than_a_sequence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node(dir.path()).await;
    let guesses = (0..30).map(|i| {
        let node = &node;
        async move { login(node, "admin", &format!("parallel-{i}")).await.0 }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(checked <= 5, "{checked} passwords checked: {answers:?}");
    assert_eq!(checked + refused, 30, "{answers:?}");
    node.stop().await;
}
