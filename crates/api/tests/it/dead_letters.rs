//! `/webhooks/{name}/dead_letters`: listed newest first with the last attempt, replayed to a
//! fixed receiver, purged, and bad input named.

use std::sync::{
    Arc,
    atomic::{AtomicU16, Ordering},
};

use reqwest::{Method, StatusCode};
use rumqttc::v5::{AsyncClient, MqttOptions, mqttbytes::QoS};
use serde_json::json;

use crate::{eventually, start_node};

/// A receiver answering with the status it is set to.
async fn switchable_receiver() -> (std::net::SocketAddr, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(400));
    let answer = Arc::clone(&status);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().fallback(move || {
        let status = answer.load(Ordering::Relaxed);
        async move {
            (
                axum::http::StatusCode::from_u16(status).expect("status"),
                "unknown device",
            )
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, status)
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_and_purged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let (receiver, status) = switchable_receiver().await;
    let (created, _) = node
        .call(
            &token,
            Method::POST,
            "/webhooks",
            Some(json!({"name": "dl", "url": format!("http://{receiver}/"), "events": ["message.publish"]})),
        )
        .await;
    assert_eq!(created, StatusCode::CREATED);
    let options = MqttOptions::new("dl-pub", "127.0.0.1", node.mqtt.port());
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    for n in 0..3 {
        client
            .publish("t/dl", QoS::AtLeastOnce, false, format!("{n}"))
            .await
            .expect("publish");
    }
    eventually("three dead letters", || async {
        let (_, m) = node
            .call(&token, Method::GET, "/webhooks/dl/metrics", None)
            .await;
        m["dead_letters"] == 3
    })
    .await;
    let (listed, attempts) = node
        .call(&token, Method::GET, "/webhooks/dl/attempts?limit=2", None)
        .await;
    assert_eq!(listed, StatusCode::OK);
    let attempts = attempts.as_array().expect("a list");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 400);
    assert_eq!(attempts[0]["error"], "HTTP 400 Bad Request");
    assert!(
        attempts[0]["at"].as_u64() >= attempts[1]["at"].as_u64(),
        "newest first"
    );
    let (bad, _) = node
        .call(&token, Method::GET, "/webhooks/dl/attempts?limit=101", None)
        .await;
    assert_eq!(bad, StatusCode::BAD_REQUEST);
    let (listed, page) = node
        .call(
            &token,
            Method::GET,
            "/webhooks/dl/dead_letters?limit=2",
            None,
        )
        .await;
    assert_eq!(listed, StatusCode::OK);
    assert_eq!(page["meta"]["count"], 3);
    let letters = page["data"].as_array().expect("data");
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["body"]["payload"], "2", "newest first");
    assert_eq!(letters[0]["status"], 400);
    assert_eq!(letters[0]["response"], "unknown device");
    assert!(
        letters[0]["webhook_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_"))
    );
    let (bad, error) = node
        .call(
            &token,
            Method::GET,
            "/webhooks/dl/dead_letters?limit=0",
            None,
        )
        .await;
    assert_eq!(
        (bad, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let (bad, error) = node
        .call(
            &token,
            Method::POST,
            "/webhooks/dl/dead_letters/replay",
            Some(json!({"ids": "all"})),
        )
        .await;
    assert_eq!(
        (bad, error["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ids"))
    );

    status.store(200, Ordering::Relaxed);
    let newest = letters[0]["id"].as_u64().expect("id");
    let (replayed, report) = node
        .call(
            &token,
            Method::POST,
            "/webhooks/dl/dead_letters/replay",
            Some(json!({"ids": [newest]})),
        )
        .await;
    assert_eq!(replayed, StatusCode::OK);
    assert_eq!(report, json!({"replayed": 1, "left": 0}));
    eventually("the replayed one delivered", || async {
        let (_, m) = node
            .call(&token, Method::GET, "/webhooks/dl/metrics", None)
            .await;
        m["success"] == 1 && m["dead_letters"] == 2
    })
    .await;
    let (purged, answer) = node
        .call(&token, Method::DELETE, "/webhooks/dl/dead_letters", None)
        .await;
    assert_eq!((purged, answer), (StatusCode::OK, json!({"purged": 2})));
    let (missing, _) = node
        .call(&token, Method::GET, "/webhooks/nope/dead_letters", None)
        .await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    node.stop().await;
}
