//! Webhooks in a cluster of three nodes on one real `nats-server`: a webhook created
//! through one node's API runs on every node (secrets included), changes and deletions
//! reach every node, a node that was down catches up when it starts, and each node's
//! events are delivered once; with `buffer = "cluster"`, the backlog of a node killed
//! with `kill -9` is delivered by the others.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    cluster::{Nats, node_with},
    receiver::{Received, Receiver, check_complete_and_ordered},
    support::free_port,
};

/// The key every node seals secrets with: nodes open each other's webhooks with it.
pub(crate) const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SIGNING: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTk4NzY1";
const PER_NODE: usize = 100;

/// `method {api}{path}` with `body` as the default admin: the status and the JSON answer.
pub(crate) fn call(api: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let token = crate::support::login(api).await;
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = reqwest::Client::new()
            .request(method, format!("{api}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    })
}

/// Waits until `check` holds for `GET {api}{path}`.
pub(crate) fn wait_for(api: &str, path: &str, what: &str, check: impl Fn(u16, &Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(api, "GET", path, None);
        if check(status, &body) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Client `client` publishes `PER_NODE` QoS 1 messages `<client>-<n>` on `mqtt`.
fn publish_run(mqtt: u16, client: &str) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.to_string(), "-q", "1"])
        .args(["-i", client, "-t", &format!("jobs/{client}"), "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs");
    let lines: String = (0..PER_NODE).map(|n| format!("{client}-{n}\n")).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("lines");
    assert!(child.wait().expect("mosquitto_pub").success());
}

#[test]
fn a_webhook_created_on_one_node_runs_on_every_node() {
    let nats_port = free_port();
    let nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("HOOKMQ_SECRET_KEY", KEY)];
    let (_a, a, a_api) = node_with(&dir.path().join("a"), "a@test", nats_port, &env);
    let (b_node, b, b_api) = node_with(&dir.path().join("b"), "b@test", nats_port, &env);
    let (_c, c, c_api) = node_with(&dir.path().join("c"), "c@test", nats_port, &env);
    let receiver = Receiver::start(0);

    let spec = json!({
        "name": "everywhere",
        "url": format!("http://{}/", receiver.address),
        "events": ["message.publish"],
        "topics": ["jobs/#"],
        "signing_secret": SIGNING,
    });
    let (status, created) = call(&a_api, "POST", "/webhooks", Some(spec.clone()));
    assert_eq!(status, 201, "{created}");
    for api in [&b_api, &c_api] {
        wait_for(
            api,
            "/webhooks/everywhere",
            "the webhook reached every node",
            |status, _| status == 200,
        );
    }

    // 100 messages published on each node: every one's event delivered once, signed, by
    // the node its publisher is on (a message forwarded to other nodes is not an event
    // there).
    let clients = [(a, "on-a"), (b, "on-b"), (c, "on-c")];
    for (mqtt, client) in clients {
        publish_run(mqtt, client);
    }
    let total = 3 * PER_NODE;
    receiver.wait("every event", |received| received.len() >= total);
    // A second copy would be sent at once, as every event was (the receiver answers at
    // once, so nothing is retried): 300 ms is many times one delivery on loopback.
    std::thread::sleep(Duration::from_millis(300));
    let received = receiver.received();
    assert_eq!(received.len(), total, "each event once");
    for (_, client) in clients {
        let payloads: Vec<&str> = received
            .iter()
            .filter(|r| r.client == client)
            .map(|r| r.payload.as_str())
            .collect();
        let expected: Vec<String> = (0..PER_NODE).map(|n| format!("{client}-{n}")).collect();
        assert_eq!(payloads, expected, "{client}'s events, in order");
    }
    assert!(
        received.iter().all(|r: &Received| r.signed),
        "every request signed"
    );
    // Any node's API shows each node's share (as EMQX's node_metrics).
    let (status, metrics) = call(&c_api, "GET", "/webhooks/everywhere/metrics", None);
    assert_eq!(status, 200, "{metrics}");
    let per_node: Vec<(&str, u64)> = metrics["node_metrics"]
        .as_array()
        .expect("node_metrics")
        .iter()
        .map(|n| {
            let success = n["metrics"]["success"].as_u64().unwrap_or(0);
            (n["node"].as_str().unwrap_or(""), success)
        })
        .collect();
    assert_eq!(
        per_node,
        [("a@test", 100), ("b@test", 100), ("c@test", 100)],
        "{metrics}"
    );

    // Changed on b, disabled on c: every node runs the last change.
    let mut changed = spec.clone();
    changed["description"] = json!("changed on b");
    let (status, body) = call(&b_api, "PUT", "/webhooks/everywhere", Some(changed));
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&c_api, "PUT", "/webhooks/everywhere/enable/false", None);
    assert_eq!(status, 204, "{body}");
    for api in [&a_api, &b_api, &c_api] {
        wait_for(
            api,
            "/webhooks/everywhere",
            "the last change everywhere",
            |_, hook| hook["description"] == "changed on b" && hook["enable"] == false,
        );
    }

    // b stops; meanwhile a webhook is created on a and the first deleted on c. b catches
    // up when it starts again.
    drop(b_node);
    let mut later = spec;
    later["name"] = json!("later");
    let (status, body) = call(&a_api, "POST", "/webhooks", Some(later));
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(&c_api, "DELETE", "/webhooks/everywhere", None);
    assert_eq!(status, 204, "{body}");
    for api in [&a_api, &c_api] {
        wait_for(
            api,
            "/webhooks/everywhere",
            "deleted everywhere",
            |status, _| status == 404,
        );
    }
    let (_b, _, b_api) = node_with(&dir.path().join("b"), "b@test", nats_port, &env);
    let (status, names) = call(&b_api, "GET", "/webhooks", None);
    assert_eq!(status, 200);
    let names: Vec<&str> = names
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|hook| hook["name"].as_str())
        .collect();
    assert_eq!(names, ["later"], "b caught up before it answered");

    // Without NATS no node changes webhooks (the others could not hear it): 503.
    drop(nats);
    let mut refused = json!({"name": "alone", "url": format!("http://{}/", receiver.address)});
    refused["events"] = json!(["client.connected"]);
    let (status, body) = call(&a_api, "POST", "/webhooks", Some(refused));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "CLUSTER_UNAVAILABLE", "{body}");
    let (status, _) = call(&a_api, "GET", "/webhooks/alone", None);
    assert_eq!(status, 404, "not created here either");
}

/// Clients `c<k>` (`k` in `clients`) publish `per_client` QoS 1 messages `c<k>-<n>` each
/// on `jobs/c<k>`, in parallel, on `mqtt`; returns once every one was acknowledged.
pub(crate) fn publish_clients(mqtt: u16, clients: std::ops::Range<usize>, per_client: usize) {
    let publishers: Vec<_> = clients
        .map(|k| {
            let mut child = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &mqtt.to_string(), "-q", "1"])
                .args(["-i", &format!("c{k}"), "-t", &format!("jobs/c{k}"), "-l"])
                .stdin(Stdio::piped())
                .spawn()
                .expect("mosquitto_pub runs");
            let lines: String = (0..per_client).map(|n| format!("c{k}-{n}\n")).collect();
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(lines.as_bytes())
                .expect("lines");
            child
        })
        .collect();
    for mut publisher in publishers {
        assert!(publisher.wait().expect("mosquitto_pub").success());
    }
}

#[test]
fn a_killed_nodes_backlog_is_delivered_by_the_others() {
    const CLIENTS: usize = 10;
    const PER_CLIENT: usize = 30;
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("HOOKMQ_SECRET_KEY", KEY)];
    let (mut a_node, a, a_api) = node_with(&dir.path().join("a"), "a@test", nats_port, &env);
    let (_b, _, b_api) = node_with(&dir.path().join("b"), "b@test", nats_port, &env);
    let (_c, _, c_api) = node_with(&dir.path().join("c"), "c@test", nats_port, &env);
    // Slow enough that a backlog waits when a dies: about 20 requests a second per lane.
    let receiver = Receiver::start(50);
    let spec = json!({
        "name": "work",
        "url": format!("http://{}/", receiver.address),
        "events": ["message.publish"],
        "topics": ["jobs/#"],
        "buffer": "cluster",
        "sync_before_ack": true,
        "max_inflight": 2,
        "pipelining": 1,
    });
    let (status, created) = call(&a_api, "POST", "/webhooks", Some(spec));
    assert_eq!(status, 201, "{created}");
    for api in [&b_api, &c_api] {
        wait_for(
            api,
            "/webhooks/work",
            "the webhook reached every node",
            |status, _| status == 200,
        );
    }

    // Every PUBACK came once its event was stored in the cluster (sync_before_ack).
    publish_clients(a, 0..CLIENTS, PER_CLIENT);
    a_node.kill();
    let total = CLIENTS * PER_CLIENT;
    let before = receiver.received().len();
    assert!(
        before < total,
        "a backlog was left when a died ({before} of {total} delivered)"
    );
    receiver.wait("every event of the killed node", |received| {
        received
            .iter()
            .map(|r| &r.payload)
            .collect::<std::collections::HashSet<_>>()
            .len()
            == total
    });
    let duplicates = check_complete_and_ordered(&receiver.received(), CLIENTS, PER_CLIENT);
    assert!(
        duplicates <= 2 * 3,
        "at most what a had in flight is sent again: {duplicates}"
    );
}

/// `GET {api}/webhooks` with an API key: the status.
fn with_key(api: &str, key: &str, secret: &str) -> u16 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{api}/webhooks"))
            .basic_auth(key, Some(secret))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    })
}

/// `POST {api}/login` as admin with `password`: the status.
fn log_in(api: &str, password: &str) -> u16 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{api}/login"))
            .json(&json!({"username": "admin", "password": password}))
            .send()
            .await
            .expect("login")
            .status()
            .as_u16()
    })
}

#[test]
fn users_api_keys_and_emqx_objects_are_the_same_on_every_node() {
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let key = [("HOOKMQ_SECRET_KEY", KEY)];
    let (_a, _, a_api) = node_with(&dir.path().join("a"), "a@test", nats_port, &key);
    let (_b, _, b_api) = node_with(&dir.path().join("b"), "b@test", nats_port, &key);

    // An EMQX-style connector and action made on a (a secret header sealed in the cluster)
    // are listed on b, and b changes them.
    let connector = json!({"type": "http", "name": "shared", "url": "http://127.0.0.1:9/in",
        "headers": {"authorization": "Bearer t0ken"}});
    let (status, body) = call(&a_api, "POST", "/connectors", Some(connector));
    assert_eq!(status, 201, "{body}");
    let action = json!({"type": "http", "name": "shared_WH_D", "connector": "shared",
        "parameters": {"path": "/x"}});
    let (status, body) = call(&a_api, "POST", "/actions", Some(action));
    assert_eq!(status, 201, "{body}");
    wait_for(
        &b_api,
        "/actions/http:shared_WH_D",
        "the action on b",
        |status, body| status == 200 && body["connector"] == "shared",
    );
    let (status, body) = call(&b_api, "PUT", "/connectors/http:shared/enable/false", None);
    assert_eq!(status, 204, "{body}");
    wait_for(
        &a_api,
        "/connectors/http:shared",
        "the change on a",
        |status, body| {
            status == 200 && body["enable"] == false && body["headers"]["authorization"] == "******"
        },
    );
    wait_for(
        &a_api,
        "/webhooks/shared",
        "the webhook on a",
        |status, body| status == 200 && body["url"] == "http://127.0.0.1:9/in/x",
    );

    // An API key made on a works on b; deleted on b, a refuses it.
    let (status, key) = call(&a_api, "POST", "/api_key", Some(json!({"name": "ops"})));
    assert_eq!(status, 201, "{key}");
    let (id, secret) = (
        key["api_key"].as_str().expect("key"),
        key["api_secret"].as_str().expect("secret"),
    );
    assert_eq!(with_key(&a_api, id, secret), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while with_key(&b_api, id, secret) != 200 {
        assert!(Instant::now() < deadline, "the key never worked on b");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = call(&b_api, "DELETE", "/api_key/ops", None);
    assert_eq!(status, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while with_key(&a_api, id, secret) != 401 {
        assert!(Instant::now() < deadline, "a still takes the deleted key");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The admin's password changed on b: a takes the new one and refuses the old.
    let change = json!({"old_pwd": "public", "new_pwd": "a-much-better-one"});
    let (status, body) = call(&b_api, "POST", "/users/admin/change_pwd", Some(change));
    assert_eq!(status, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_in(&a_api, "a-much-better-one") != 200 {
        assert!(Instant::now() < deadline, "a never took the new password");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        log_in(&a_api, "public"),
        401,
        "the old password is refused on a"
    );
}
