//! Clients and subscriptions, with real MQTT clients (rumqttc): listing, search, paging,
//! details, kick; offline and resumed sessions keep their subscriptions' client ids.

use reqwest::{Method, StatusCode};
use rumqttc::v5::{
    AsyncClient, MqttOptions,
    mqttbytes::{
        QoS,
        v5::{Filter, RetainForwardRule},
    },
};
use serde_json::{Value, json};

use crate::{Node, eventually, start_node};

/// A v5 client whose event loop runs until its first error (no reconnection).
async fn connect(node: &Node, id: &str, user: Option<&str>, expiry: u32) -> AsyncClient {
    let mut options = MqttOptions::new(id, "127.0.0.1", node.mqtt.port());
    options.set_keep_alive(std::time::Duration::from_secs(30));
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(expiry));
    if let Some(user) = user {
        options.set_credentials(user, "pw");
    }
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

async fn get(node: &Node, token: &str, path: &str) -> (StatusCode, Value) {
    node.call(token, Method::GET, path, None).await
}

async fn connected(node: &Node, token: &str, id: &str) -> bool {
    let (status, client) = get(node, token, &format!("/clients/{id}")).await;
    status == StatusCode::OK && client["connected"] == true
}

async fn subscriptions_of(node: &Node, token: &str, id: &str) -> Vec<Value> {
    let (status, page) = get(node, token, &format!("/subscriptions?clientid={id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn clients_and_subscriptions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;

    let alice = connect(&node, "sensor-1", Some("alice"), 0).await;
    let _bob = connect(&node, "sensor-2", None, 0).await;
    let keeper = connect(&node, "keeper", None, 600).await;
    for id in ["sensor-1", "sensor-2", "keeper"] {
        eventually(id, || connected(&node, &token, id)).await;
    }
    alice
        .subscribe_many([
            Filter {
                nolocal: true,
                ..Filter::new("t/#", QoS::AtLeastOnce)
            },
            // No-local is a protocol error on shared subscriptions.
            Filter {
                preserve_retain: true,
                retain_forward_rule: RetainForwardRule::Never,
                ..Filter::new("$share/g/jobs/+", QoS::ExactlyOnce)
            },
        ])
        .await
        .expect("subscribe");
    keeper
        .subscribe("kept/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    eventually("subscriptions", || async {
        subscriptions_of(&node, &token, "sensor-1").await.len() == 2
            && subscriptions_of(&node, &token, "keeper").await.len() == 1
    })
    .await;

    // The list: sorted by client id, every field, usernames null when absent.
    let (status, page) = get(&node, &token, "/clients").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["meta"]["count"], 3);
    assert_eq!(page["meta"]["page"], 1);
    assert_eq!(page["meta"]["limit"], 50);
    let ids: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["clientid"].as_str())
        .collect();
    assert_eq!(ids, ["keeper", "sensor-1", "sensor-2"]);
    let sensor = &page["data"][1];
    assert_eq!(sensor["username"], "alice");
    assert_eq!(page["data"][2]["username"], Value::Null);
    assert_eq!(sensor["connected"], true);
    assert_eq!(sensor["proto_name"], "MQTT");
    assert_eq!(sensor["proto_ver"], 5);
    assert_eq!(sensor["keepalive"], 30);
    assert_eq!(sensor["clean_start"], false);
    assert_eq!(sensor["subscriptions_cnt"], 2);
    assert_eq!(sensor["node"], "hookmq@127.0.0.1");
    assert!(
        sensor["peername"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:"))
    );
    assert_eq!(
        sensor["sockname"].as_str(),
        Some(node.mqtt.to_string().as_str())
    );
    assert!(sensor["connected_at"].as_u64().is_some_and(|t| t > 0));

    // Search and paging.
    let (_, found) = get(&node, &token, "/clients?like_clientid=SENSOR").await;
    assert_eq!(found["meta"]["count"], 2);
    let (_, found) = get(&node, &token, "/clients?like_username=ali").await;
    assert_eq!(found["data"][0]["clientid"], "sensor-1");
    let (_, second) = get(&node, &token, "/clients?page=2&limit=2").await;
    assert_eq!(second["meta"]["count"], 3);
    assert_eq!(second["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["data"][0]["clientid"], "sensor-2");
    for (query, field) in [
        ("page=0", "page"),
        ("page=x", "page"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("conn_state=sleeping", "conn_state"),
        ("colour=red", "colour"),
    ] {
        let (status, answer) = get(&node, &token, &format!("/clients?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert_eq!(answer["field"], field, "{query}: {answer}");
    }

    // Subscriptions: shared ones with their $share prefix, v5 options.
    let subs = subscriptions_of(&node, &token, "sensor-1").await;
    let shared = subs
        .iter()
        .find(|s| s["topic"] == "$share/g/jobs/+")
        .expect("shared subscription listed");
    assert_eq!(shared["qos"], 2);
    assert_eq!(shared["no_local"], false);
    assert_eq!(shared["retain_as_published"], true);
    assert_eq!(shared["retain_handling"], 2);
    let plain = subs.iter().find(|s| s["topic"] == "t/#").expect("t/#");
    assert_eq!(
        (plain["qos"].as_u64(), plain["no_local"].as_bool()),
        (Some(1), Some(true))
    );
    let (_, all) = get(&node, &token, "/subscriptions?limit=1").await;
    assert_eq!(all["meta"]["count"], 3);
    assert_eq!(all["data"][0]["clientid"], "keeper");
    let (_, by_topic) = get(&node, &token, "/subscriptions?topic=t/%23").await;
    assert_eq!(by_topic["meta"]["count"], 1);
    let (status, answer) = get(&node, &token, "/subscriptions?qos=1").await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("qos"))
    );

    // Details and kick.
    let (status, one) = get(&node, &token, "/clients/sensor-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["subscriptions_cnt"], 2);
    assert_eq!(
        (
            &one["is_superuser"],
            &one["client_attrs"],
            &one["mountpoint"]
        ),
        (&json!(false), &json!({}), &Value::Null),
        "EMQX's identity fields: {one}"
    );
    for (method, path) in [
        (Method::GET, "/clients/nobody"),
        (Method::DELETE, "/clients/nobody"),
        (Method::GET, "/clients/a%2Fb"),
    ] {
        let (status, answer) = node.call(&token, method, path, None).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("NOT_FOUND")),
            "{path}"
        );
    }
    let (status, _) = node
        .call(&token, Method::DELETE, "/clients/sensor-2", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually("sensor-2 gone", || async {
        get(&node, &token, "/clients/sensor-2").await.0 == StatusCode::NOT_FOUND
    })
    .await;

    // A kicked persistent session waits offline, its subscriptions still named by client.
    let (status, _) = node
        .call(&token, Method::DELETE, "/clients/keeper", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually("keeper offline", || async {
        let (status, client) = get(&node, &token, "/clients/keeper").await;
        status == StatusCode::OK && client["connected"] == false
    })
    .await;
    let (_, offline) = get(&node, &token, "/clients?conn_state=disconnected").await;
    assert_eq!(offline["data"][0]["clientid"], "keeper");
    assert_eq!(offline["data"][0]["subscriptions_cnt"], 1);
    let subs = subscriptions_of(&node, &token, "keeper").await;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["topic"], "kept/#");
    let (status, answer) = node
        .call(&token, Method::DELETE, "/clients/keeper", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not connected: {answer}");

    // Resumed: the same session, the same subscription, still named by client.
    let _again = connect(&node, "keeper", None, 600).await;
    eventually("keeper back", || connected(&node, &token, "keeper")).await;
    let (_, client) = get(&node, &token, "/clients/keeper").await;
    assert_eq!(client["subscriptions_cnt"], 1);
    assert_eq!(subscriptions_of(&node, &token, "keeper").await.len(), 1);
}
