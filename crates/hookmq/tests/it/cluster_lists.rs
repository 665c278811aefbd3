//! The client and subscription lists span the cluster: any node's API lists every node's
//! clients and subscriptions, each with its node, paged node by node.

use std::time::{Duration, Instant};

use hookmq_codec::{Packet, ReasonCode};
use serde_json::Value;

use crate::{
    cluster::{Nats, get, node_with},
    persistence::Raw,
    support::free_port,
};

/// A connected client of `mqtt` subscribed to `filter`.
fn subscriber(mqtt: u16, client_id: &str, filter: &str) -> Raw {
    let (mut raw, _) = Raw::connect(mqtt, client_id);
    raw.subscribe(filter);
    raw
}

/// `(clientid, node)` of each item of a page.
fn owners(page: &Value) -> Vec<(String, String)> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|item| {
            (
                item["clientid"].as_str().unwrap_or_default().to_owned(),
                item["node"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pair(client: &str, node: &str) -> (String, String) {
    (client.to_owned(), node.to_owned())
}

#[test]
fn any_node_lists_every_nodes_clients_and_subscriptions() {
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_a, a, a_api) = node_with(&dir.path().join("a"), "a@test", nats_port, &[]);
    let (_b, b, b_api) = node_with(&dir.path().join("b"), "b@test", nats_port, &[]);
    let _on_a = [
        subscriber(a, "list-a1", "la/1"),
        subscriber(a, "list-a2", "la/2"),
    ];
    let mut b1 = subscriber(b, "list-b1", "lb/1");
    // The nodes answer once their APIs run (both have: the ports listen).
    let listed = |api: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let page = get(api, "/clients");
            if page["meta"]["count"] == 3 {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "{api} never listed all three: {page}"
            );
            // Polling the API, which has no change feed.
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let all = listed(&b_api);
    let on_a = listed(&a_api);
    let everyone = vec![
        pair("list-a1", "a@test"),
        pair("list-a2", "a@test"),
        pair("list-b1", "b@test"),
    ];
    assert_eq!(owners(&all), everyone);
    assert_eq!(owners(&on_a), everyone, "the same on a");

    let first = get(&a_api, "/clients?limit=2&page=1");
    assert_eq!(owners(&first), everyone[..2]);
    let second = get(&a_api, "/clients?limit=2&page=2");
    assert_eq!(owners(&second), everyone[2..], "{second}");
    assert_eq!(second["meta"]["count"], 3);
    let straddling = get(&a_api, "/clients?limit=1&page=3");
    assert_eq!(owners(&straddling), everyone[2..]);
    let filtered = get(&a_api, "/clients?like_clientid=B1");
    assert_eq!(owners(&filtered), everyone[2..]);
    assert_eq!(filtered["meta"]["count"], 1);

    let subscriptions = get(&a_api, "/subscriptions");
    assert_eq!(owners(&subscriptions), everyone);
    let topics: Vec<&str> = subscriptions["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|item| item["topic"].as_str())
        .collect();
    assert_eq!(topics, ["la/1", "la/2", "lb/1"]);
    let one = get(&b_api, "/subscriptions?clientid=list-a2");
    assert_eq!(owners(&one), everyone[1..2]);

    // One client, looked up and kicked through another node.
    assert_eq!(get(&a_api, "/clients/list-b1")["node"], "b@test");
    assert_eq!(get(&a_api, "/clients/nobody")["code"], "NOT_FOUND");
    assert_eq!(delete(&a_api, "/clients/list-b1"), 204);
    match b1.recv() {
        Packet::Disconnect(disconnect) => {
            assert_eq!(disconnect.reason_code, ReasonCode::ADMINISTRATIVE_ACTION);
        }
        other => panic!("DISCONNECT expected on b, got {other:?}"),
    }
    assert_eq!(delete(&a_api, "/clients/nobody"), 404);
}

/// `DELETE {api}{path}` as the default admin: the status.
fn delete(api: &str, path: &str) -> u16 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let token = crate::support::login(api).await;
        reqwest::Client::new()
            .delete(format!("{api}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    })
}

#[test]
fn any_node_lists_every_nodes_alarms_and_clears_every_nodes_history() {
    use crate::cluster_webhooks::{KEY, call, wait_for};
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let key = [("HOOKMQ_SECRET_KEY", KEY)];
    let (_a, _, a_api) = node_with(&dir.path().join("a"), "a@test", nats_port, &key);
    let (_b, _, b_api) = node_with(&dir.path().join("b"), "b@test", nats_port, &key);
    // A webhook to a port nothing listens on runs on both nodes: each raises its alarm.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let spec = serde_json::json!({"name": "nowhere", "url": format!("http://{dead}/"),
        "events": ["message.publish"], "health_check_interval": "1s"});
    let (status, body) = call(&a_api, "POST", "/webhooks", Some(spec));
    assert_eq!(status, 201, "{body}");
    let nodes_of = |page: &Value| -> Vec<String> {
        let mut nodes: Vec<String> = page["data"]
            .as_array()
            .map(|alarms| {
                alarms
                    .iter()
                    .filter(|a| a["name"] == "action:http:nowhere")
                    .filter_map(|a| a["node"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        nodes.sort();
        nodes
    };
    wait_for(
        &b_api,
        "/alarms",
        "both nodes' alarms, listed on b",
        |status, page| status == 200 && nodes_of(page) == ["a@test", "b@test"],
    );
    // Deleted: both alarms clear into the nodes' histories, and one DELETE empties both.
    assert_eq!(delete(&a_api, "/webhooks/nowhere"), 204);
    wait_for(
        &a_api,
        "/alarms?activated=false",
        "both past alarms",
        |status, page| status == 200 && nodes_of(page) == ["a@test", "b@test"],
    );
    assert_eq!(delete(&b_api, "/alarms"), 204);
    wait_for(
        &a_api,
        "/alarms?activated=false",
        "no past alarm anywhere",
        |status, page| status == 200 && page["meta"]["count"] == 0,
    );
}
