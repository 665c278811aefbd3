//! EMQX's `/connectors`, `/actions` and `/rules`, driven with the bodies EMQX's API
//! reference and its Webhook page send: the webhook they make delivers, the same bodies
//! as one made through `/webhooks`, and each is visible both ways.

use std::sync::{Arc, Mutex};

use axum::{body::Bytes, extract::State, http::Uri};
use reqwest::{Method, StatusCode};
use rumqttc::v5::{AsyncClient, MqttOptions, mqttbytes::QoS};
use serde_json::{Value, json};

use crate::{Node, eventually, start_node};

/// What a receiver got: path (with query) and body.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver that keeps every request's path and JSON body, answering 200.
async fn recording_receiver() -> (std::net::SocketAddr, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .fallback(
            |State(kept): State<Received>, uri: Uri, body: Bytes| async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                kept.lock().expect("lock").push((uri.to_string(), body));
            },
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, received)
}

fn taken(received: &Received) -> Vec<(String, Value)> {
    received.lock().expect("lock").clone()
}

async fn publisher(node: &Node, id: &str) -> AsyncClient {
    let options = MqttOptions::new(id, "127.0.0.1", node.mqtt.port());
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

async fn ok(node: &Node, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = node.call(token, method.clone(), path, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

#[tokio::test]
async fn connector_action_and_rule_make_a_webhook_that_delivers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let (receiver, received) = recording_receiver().await;

    // The Test button: a connection, no request; nothing is saved.
    let probe = json!({"type": "http", "name": "p", "url": format!("http://{receiver}/api/v1")});
    let (status, body) = node
        .call(&token, Method::POST, "/connectors_probe", Some(probe))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let probe = json!({"type": "http", "name": "p", "url": format!("http://{dead}/")});
    let (status, body) = node
        .call(&token, Method::POST, "/connectors_probe", Some(probe))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TEST_FAILED")),
        "{body}"
    );
    let probe = json!({"type": "http", "name": "a", "connector": "none", "parameters": {}});
    let (status, body) = node
        .call(&token, Method::POST, "/actions_probe", Some(probe))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TEST_FAILED")),
        "{body}"
    );
    assert!(
        received.lock().expect("lock").is_empty(),
        "a probe sends no request"
    );

    // EMQX's API reference examples ("HTTP Connector", "HTTP Action"), pointed here.
    let (status, connector) = node
        .call(
            &token,
            Method::POST,
            "/connectors",
            Some(json!({
                "name": "my_http_connector", "type": "http", "connect_timeout": "15s",
                "pool_size": 1, "enable": true, "headers": {"content-type": "application/json"},
                "url": format!("http://{receiver}/api/v1"), "pool_type": "hash",
                "enable_pipelining": 100
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{connector}");
    assert_eq!(connector["actions"], json!([]));
    assert!(
        connector["node_status"][0]["node"].is_string(),
        "{connector}"
    );
    let (status, action) = node
        .call(&token, Method::POST, "/actions", Some(json!({
            "name": "my_http_action", "type": "http", "enable": true,
            "parameters": {"path": "/room/${clientid}", "body": "${.}", "headers": {}, "method": "post"},
            "connector": "my_http_connector",
            "resource_opts": {"worker_pool_size": 16, "query_mode": "async", "health_check_interval": "15s"}
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{action}");
    assert_eq!(action["rules"], json!([]));
    assert_eq!(
        action["resource_opts"]["query_mode"], "async",
        "EMQX fields come back"
    );
    // A webhook of the action's name exists at once, off until a rule feeds it.
    let (status, webhook) = node
        .call(&token, Method::GET, "/webhooks/my_http_action", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{webhook}");
    assert_eq!(webhook["enable"], false);

    let (status, rule) = node
        .call(
            &token,
            Method::POST,
            "/rules",
            Some(json!({
                "name": "to_http", "enable": true, "actions": ["http:my_http_action"],
                "sql": "SELECT * FROM \"sensors/#\", \"$events/client_connected\""
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let id = rule["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 8, "made-up ids are 8 hex digits, as EMQX's");
    assert_eq!(
        rule["from"],
        json!(["sensors/#", "$events/client_connected"])
    );
    let webhook = ok(&node, &token, Method::GET, "/webhooks/my_http_action", None).await;
    assert_eq!(webhook["enable"], true);
    assert_eq!(
        webhook["url"],
        format!("http://{receiver}/api/v1/room/${{clientid}}")
    );
    assert_eq!(
        webhook["events"],
        json!(["client.connected", "message.publish"])
    );
    assert_eq!(webhook["topics"], json!(["sensors/#"]));

    // The same event through a webhook made in hookmq: the same body, but for its rule id.
    let (plain_receiver, plain) = recording_receiver().await;
    ok(
        &node,
        &token,
        Method::POST,
        "/webhooks",
        Some(json!({
            "name": "plain", "url": format!("http://{plain_receiver}/"),
            "events": ["message.publish"], "topics": ["sensors/#"]
        })),
    )
    .await;
    let client = publisher(&node, "sensor-7").await;
    client
        .publish("sensors/7", QoS::AtLeastOnce, false, "21.5")
        .await
        .expect("publish");
    client
        .publish("other/7", QoS::AtLeastOnce, false, "not selected")
        .await
        .expect("publish");
    eventually("both events delivered", || async {
        taken(&received).len() >= 2
    })
    .await;
    let got = taken(&received);
    let events: Vec<&str> = got
        .iter()
        .filter_map(|(_, b)| b["event"].as_str())
        .collect();
    assert_eq!(events, ["client.connected", "message.publish"], "{got:?}");
    assert!(
        got.iter().all(|(path, _)| path == "/api/v1/room/sensor-7"),
        "{got:?}"
    );
    assert_eq!(got[1].1["payload"], "21.5");
    assert_eq!(got[1].1["topic"], "sensors/7");
    eventually("the plain webhook delivered", || async {
        !taken(&plain).is_empty()
    })
    .await;
    let mut same = taken(&plain)[0].1.clone();
    assert_eq!(same["metadata"]["rule_id"], "plain");
    same["metadata"]["rule_id"] = json!("my_http_action");
    assert_eq!(same, got[1].1, "identical bodies either way");

    let metrics = ok(
        &node,
        &token,
        Method::GET,
        "/actions/http:my_http_action/metrics",
        None,
    )
    .await;
    eventually("success counted", || async {
        let m = ok(
            &node,
            &token,
            Method::GET,
            "/actions/http:my_http_action/metrics",
            None,
        )
        .await;
        m["metrics"]["success"] == 2
    })
    .await;
    assert!(metrics["node_metrics"][0]["metrics"]["dropped.queue_full"].is_number());

    let rule_metrics = ok(
        &node,
        &token,
        Method::GET,
        &format!("/rules/{id}/metrics"),
        None,
    )
    .await;
    assert_eq!(rule_metrics["metrics"]["matched"], 2, "{rule_metrics}");
    assert_eq!(
        rule_metrics["metrics"]["actions.success"], 2,
        "{rule_metrics}"
    );

    // Deleting in the Webhook page's order: the action refuses while the rule names it.
    let (status, refused) = node
        .call(&token, Method::DELETE, "/actions/http:my_http_action", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["rules"], json!([id]));
    let (status, refused) = node
        .call(
            &token,
            Method::DELETE,
            "/connectors/http:my_http_connector",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    ok(&node, &token, Method::DELETE, &format!("/rules/{id}"), None).await;
    let webhook = ok(&node, &token, Method::GET, "/webhooks/my_http_action", None).await;
    assert_eq!(webhook["enable"], false, "no rule feeds it");
    ok(
        &node,
        &token,
        Method::DELETE,
        "/actions/http:my_http_action",
        None,
    )
    .await;
    let (status, _) = node
        .call(&token, Method::GET, "/webhooks/my_http_action", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    ok(
        &node,
        &token,
        Method::DELETE,
        "/connectors/http:my_http_connector",
        None,
    )
    .await;
    let (status, gone) = node
        .call(
            &token,
            Method::GET,
            "/connectors/http:my_http_connector",
            None,
        )
        .await;
    assert_eq!(
        (status, gone["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
    );
    node.stop().await;
}

#[tokio::test]
async fn a_webhook_is_shown_as_the_webhook_pages_objects_and_changes_through_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let (receiver, received) = recording_receiver().await;
    ok(
        &node,
        &token,
        Method::POST,
        "/webhooks",
        Some(json!({
            "name": "native", "url": format!("http://{receiver}/native?from=hookmq"),
            "events": ["message.publish", "message.delivered"], "topics": ["a/#"],
            "headers": {"content-type": "application/json", "authorization": "Bearer s3cret"},
            "description": "made in hookmq"
        })),
    )
    .await;

    let connector = ok(
        &node,
        &token,
        Method::GET,
        "/connectors/http:native_WH_D",
        None,
    )
    .await;
    assert_eq!(connector["url"], format!("http://{receiver}/native"));
    assert_eq!(connector["headers"], json!({}), "headers are the action's");
    let action = ok(
        &node,
        &token,
        Method::GET,
        "/actions/http:native_WH_D",
        None,
    )
    .await;
    assert_eq!(action["parameters"]["path"], "?from=hookmq");
    assert_eq!(
        action["parameters"]["headers"]["authorization"], "******",
        "secrets are never shown"
    );
    assert_eq!(action["rules"], json!(["native_WH_D"]));
    let rule = ok(&node, &token, Method::GET, "/rules/native_WH_D", None).await;
    assert_eq!(
        rule["sql"],
        "SELECT * FROM \"a/#\", \"$events/message_delivered\" WHERE topic =~ 'a/#'"
    );
    assert_eq!(rule["description"], "made in hookmq");
    let rules = ok(&node, &token, Method::GET, "/rules?limit=10", None).await;
    assert_eq!(rules["meta"]["count"], 1, "{rules}");
    let none = ok(&node, &token, Method::GET, "/rules?action=http:other", None).await;
    assert_eq!(none["meta"]["count"], 0, "filtered by action: {none}");
    let (status, _) = node
        .call(&token, Method::GET, "/rules?colour=red", None)
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown filter is refused"
    );

    // A secret sent back as `******` under another case keeps its value; with none stored
    // it is refused.
    let mut headers_change = action.clone();
    headers_change["parameters"]["headers"] =
        json!({"Authorization": "******", "content-type": "application/json"});
    ok(
        &node,
        &token,
        Method::PUT,
        "/actions/http:native_WH_D",
        Some(headers_change.clone()),
    )
    .await;
    let webhook = ok(&node, &token, Method::GET, "/webhooks/native", None).await;
    assert_eq!(webhook["headers"]["Authorization"], "******");
    headers_change["parameters"]["headers"] = json!({"x-api-key": "******"});
    let (status, refused) = node
        .call(
            &token,
            Method::PUT,
            "/actions/http:native_WH_D",
            Some(headers_change),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    // The Webhook page's edit: the rule's topics, with the secret sent back as shown.
    let mut changed = rule.clone();
    changed["sql"] = json!("SELECT * FROM \"b/#\"");
    ok(
        &node,
        &token,
        Method::PUT,
        "/rules/native_WH_D",
        Some(changed),
    )
    .await;
    let catalogue = ok(&node, &token, Method::GET, "/rule_events", None).await;
    let topics: Vec<&str> = catalogue
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        topics.contains(&"$events/client_connected")
            && topics.contains(&"$events/sys/alarm_activated"),
        "{topics:?}"
    );
    for event in catalogue.as_array().expect("list") {
        let sql = event["sql_example"].as_str().expect("sql");
        let (status, body) = node
            .call(
                &token,
                Method::POST,
                "/rules",
                Some(json!({"id": "example", "sql": sql})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "the example runs: {sql}: {body}"
        );
        ok(&node, &token, Method::DELETE, "/rules/example", None).await;
    }

    // What GET gave, sent back with PUT (answer-only keys are left out, as EMQX does).
    let mut action_change = action.clone();
    action_change["parameters"]["path"] = json!("?from=emqx-api");
    ok(
        &node,
        &token,
        Method::PUT,
        "/actions/http:native_WH_D",
        Some(action_change),
    )
    .await;
    let webhook = ok(&node, &token, Method::GET, "/webhooks/native", None).await;
    assert_eq!(webhook["topics"], json!(["b/#"]));
    assert_eq!(webhook["events"], json!(["message.publish"]));
    assert_eq!(
        webhook["url"],
        format!("http://{receiver}/native?from=emqx-api")
    );
    assert_eq!(webhook["description"], "made in hookmq");

    let client = publisher(&node, "pub-1").await;
    client
        .publish("b/1", QoS::AtLeastOnce, false, "x")
        .await
        .expect("publish");
    eventually("delivered", || async { !taken(&received).is_empty() }).await;
    assert_eq!(taken(&received)[0].0, "/native?from=emqx-api");
    let (status, headers) = node
        .call(&token, Method::GET, "/webhooks/native", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["headers"]["authorization"], "******");
    // The secret still reaches the receiver: checked through the stored objects' use.
    let store = std::fs::read(dir.path().join("hookmq.redb")).expect("store");
    assert!(
        !String::from_utf8_lossy(&store).contains("s3cret"),
        "secret header values are sealed at rest"
    );

    // Off through /webhooks turns the action off; a /webhooks change forgets the objects.
    ok(
        &node,
        &token,
        Method::PUT,
        "/webhooks/native/enable/false",
        None,
    )
    .await;
    let action = ok(
        &node,
        &token,
        Method::GET,
        "/actions/http:native_WH_D",
        None,
    )
    .await;
    assert_eq!(action["enable"], false, "{action}");
    // A GET → PUT round trip: what only a GET shows (metrics, status, receivers) is ignored.
    let mut spec = ok(&node, &token, Method::GET, "/webhooks/native", None).await;
    spec["topics"] = json!(["c/#"]);
    spec["enable"] = json!(true);
    ok(&node, &token, Method::PUT, "/webhooks/native", Some(spec)).await;
    let rule = ok(&node, &token, Method::GET, "/rules/native_WH_D", None).await;
    assert_eq!(rule["sql"], "SELECT * FROM \"c/#\"");
    node.stop().await;
}

#[tokio::test]
async fn what_hookmq_cannot_run_is_refused_as_emqx_refuses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let connector = json!({"name": "c", "type": "http", "url": "http://127.0.0.1:9/"});
    ok(
        &node,
        &token,
        Method::POST,
        "/connectors",
        Some(connector.clone()),
    )
    .await;
    let (status, again) = node
        .call(&token, Method::POST, "/connectors", Some(connector))
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ALREADY_EXISTS"))
    );

    for (path, body, field) in [
        (
            "/connectors",
            json!({"name": "k", "type": "kafka", "url": "http://h/"}),
            "type",
        ),
        (
            "/connectors",
            json!({"name": "k", "type": "http", "url": "http://h/", "colour": 1}),
            "colour",
        ),
        (
            "/connectors",
            json!({"name": "k", "type": "http", "url": "http://h/", "connect_timeout": "soon"}),
            "connect_timeout",
        ),
        (
            "/actions",
            json!({"name": "a", "type": "http", "connector": "none", "parameters": {}}),
            "connector",
        ),
        (
            "/actions",
            json!({"name": "a", "type": "http", "connector": "c", "parameters": {"method": "patch"}}),
            "parameters.method",
        ),
        (
            "/actions",
            json!({"name": "a", "type": "http", "connector": "c", "parameters": {}, "resource_opts": {"max_buffer_bytes": "lots"}}),
            "resource_opts.max_buffer_bytes",
        ),
        (
            "/rules",
            json!({"sql": "SELECT payload.x FROM \"t/#\""}),
            "sql",
        ),
        (
            "/rules",
            json!({"sql": "SELECT * FROM \"t/#\" WHERE payload.x > 1"}),
            "sql",
        ),
        (
            "/rules",
            json!({"sql": "SELECT * FROM \"t/#\"", "actions": ["console"]}),
            "actions[0]",
        ),
        (
            "/rules",
            json!({"sql": "SELECT * FROM \"t/#\"", "id": ""}),
            "id",
        ),
    ] {
        let (status, answer) = node
            .call(&token, Method::POST, path, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let (_, refused) = node
        .call(
            &token,
            Method::POST,
            "/rules",
            Some(json!({"sql": "SELECT * FROM \"t/#\" WHERE qos = 1"})),
        )
        .await;
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("SELECT * FROM"),
        "says what is supported: {message}"
    );

    // A rule naming a webhook made elsewhere (not an action of that name) leaves it alone.
    let bystander = json!({"name": "bystander", "url": "http://127.0.0.1:9/"});
    ok(&node, &token, Method::POST, "/webhooks", Some(bystander)).await;
    let stray =
        json!({"id": "stray", "sql": "SELECT * FROM \"t/#\"", "actions": ["http:bystander"]});
    ok(&node, &token, Method::POST, "/rules", Some(stray)).await;
    ok(&node, &token, Method::DELETE, "/rules/stray", None).await;
    ok(&node, &token, Method::GET, "/webhooks/bystander", None).await;
    ok(&node, &token, Method::DELETE, "/webhooks/bystander", None).await;

    // EMQX's SQL tester, with the body its dashboard sends.
    let context = json!({"clientid": "c_emqx", "event_type": "message_publish",
        "payload": "{\"msg\": \"hello\"}", "qos": 1, "topic": "t/a", "username": "u_emqx"});
    let tried = ok(
        &node,
        &token,
        Method::POST,
        "/rule_test",
        Some(json!({"context": context, "sql": "SELECT\n  *\nFROM\n  \"t/#\""})),
    )
    .await;
    assert_eq!(
        (tried["event"].as_str(), tried["topic"].as_str()),
        (Some("message.publish"), Some("t/a"))
    );
    let (status, missed) = node
        .call(
            &token,
            Method::POST,
            "/rule_test",
            Some(json!({"context": context, "sql": "SELECT * FROM \"other/#\""})),
        )
        .await;
    assert_eq!(
        (status, missed["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("NOT_MATCH"))
    );

    // A rule may name an action made later, as in EMQX; the action then gets its events.
    ok(&node, &token, Method::POST, "/rules", Some(json!({
        "id": "early", "sql": "SELECT * FROM \"$events/session_subscribed\"", "actions": ["http:late"]
    })))
    .await;
    ok(
        &node,
        &token,
        Method::POST,
        "/actions",
        Some(json!({
            "name": "late", "type": "http", "connector": "c", "parameters": {}
        })),
    )
    .await;
    let webhook = ok(&node, &token, Method::GET, "/webhooks/late", None).await;
    assert_eq!(webhook["events"], json!(["session.subscribed"]));
    assert_eq!(webhook["enable"], true);
    // Rules off through PUT with `enable` alone, as the Webhook page does.
    let rule = ok(
        &node,
        &token,
        Method::PUT,
        "/rules/early",
        Some(json!({"enable": false})),
    )
    .await;
    assert_eq!(rule["sql"], "SELECT * FROM \"$events/session_subscribed\"");
    let webhook = ok(&node, &token, Method::GET, "/webhooks/late", None).await;
    assert_eq!(webhook["enable"], false);
    let (status, missing) = node
        .call(&token, Method::GET, "/actions/mqtt:late", None)
        .await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
    );
    // Deleted with its rules kept (EMQX's also_delete_dep_actions).
    ok(
        &node,
        &token,
        Method::DELETE,
        "/actions/http:late?also_delete_dep_actions=true",
        None,
    )
    .await;
    let rule = ok(&node, &token, Method::GET, "/rules/early", None).await;
    assert_eq!(rule["actions"], json!([]));

    // A receiver the egress rules deny: the action is refused and nothing is stored.
    ok(
        &node,
        &token,
        Method::POST,
        "/connectors",
        Some(json!({
            "name": "metadata", "type": "http", "url": "http://169.254.169.254/latest"
        })),
    )
    .await;
    let (status, denied) = node
        .call(
            &token,
            Method::POST,
            "/actions",
            Some(json!({
                "name": "steal", "type": "http", "connector": "metadata", "parameters": {}
            })),
        )
        .await;
    assert_eq!(
        (status, denied["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("url")),
        "{denied}"
    );
    let (status, _) = node
        .call(&token, Method::GET, "/actions/http:steal", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Everything is still there after a restart.
    node.stop().await;
    let node = start_node(dir.path()).await;
    let token = node.login().await;
    let rule = ok(&node, &token, Method::GET, "/rules/early", None).await;
    assert_eq!(rule["enable"], false);
    let connectors = ok(&node, &token, Method::GET, "/connectors", None).await;
    let names: Vec<&str> = connectors
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["c", "metadata"]);
    node.stop().await;
}
