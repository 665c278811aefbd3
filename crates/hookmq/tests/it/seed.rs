//! The seed, end to end, as a user runs it: EMQX's Flask receiver, hookmq started from the
//! binary, `my_webhook` created through the API, one `mosquitto_pub`, and the receiver prints
//! the seed's six events (and `client.check_authn_complete`, as EMQX 5.8+) in order with EMQX's
//! fields. Then a restart: the webhook is still there. Also a webhook from the config file.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{Running, free_port, login, start_hookmq, wait_for_port};

#[tokio::test]
async fn the_seed_with_flask_mosquitto_and_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let (_flask, flask_port, lines) = flask();

    let hookmq = start_hookmq(
        dir.path(),
        mqtt,
        dashboard,
        &[("HOOKMQ_NODE__NAME", "emqx@127.0.0.1")],
    );
    let base = format!("http://127.0.0.1:{dashboard}/api/v5");
    let token = login(&base).await;
    let created = reqwest::Client::new()
        .post(format!("{base}/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"name": "my_webhook", "description": "the seed", "url": format!("http://localhost:{flask_port}")}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    mosquitto_pub(mqtt, "emqx_c", "t/1", r#"{ "msg": "Hello Webhook" }"#);

    let bodies = printed_bodies(&lines, 7);
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        [
            "client.check_authn_complete",
            "client.connected",
            "client.connack",
            "client.check_authz_complete",
            "message.publish",
            "message.dropped",
            "client.disconnected",
        ]
    );
    for body in &bodies {
        assert_eq!(body["clientid"], "emqx_c");
        assert_eq!(body["node"], "emqx@127.0.0.1");
        assert_eq!(body["metadata"]["rule_id"], "my_webhook");
    }
    assert_eq!(bodies[4]["payload"], r#"{ "msg": "Hello Webhook" }"#);
    assert_eq!(bodies[5]["reason"], "no_subscribers");
    assert_eq!(bodies[6]["reason"], "normal");

    // Restart on the same data directory: the webhook created through the API is back.
    drop(hookmq);
    let _hookmq = start_hookmq(
        dir.path(),
        mqtt,
        dashboard,
        &[("HOOKMQ_NODE__NAME", "emqx@127.0.0.1")],
    );
    let list = list_webhooks(&base).await;
    assert_eq!(list[0]["name"], "my_webhook");
    assert_eq!(list[0]["description"], "the seed");
}

#[tokio::test]
async fn a_webhook_from_the_config_file_delivers_and_is_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let (_flask, flask_port, lines) = flask();
    let config = dir.path().join("hookmq.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nname = \"from_file\"\nurl = \"http://127.0.0.1:{flask_port}/\"\n\
             events = [\"message.publish\"]\ntopics = [\"sensors/#\"]\n"
        ),
    )
    .expect("config written");
    let config = config.to_string_lossy().into_owned();
    let _hookmq = start_hookmq(
        &dir.path().join("data"),
        mqtt,
        dashboard,
        &[("HOOKMQ_CONFIG", &config)],
    );
    mosquitto_pub(mqtt, "c1", "other/1", "not selected");
    mosquitto_pub(mqtt, "c1", "sensors/1", "21.5");
    let bodies = printed_bodies(&lines, 1);
    assert_eq!(bodies[0]["event"], "message.publish");
    assert_eq!(bodies[0]["topic"], "sensors/1");
    assert_eq!(bodies[0]["payload"], "21.5");
    assert_eq!(bodies[0]["metadata"]["rule_id"], "from_file");

    let base = format!("http://127.0.0.1:{dashboard}/api/v5");
    let list = list_webhooks(&base).await;
    assert_eq!(list[0]["name"], "from_file");
    assert_eq!(list[0]["metrics"]["matched"], 1, "{list}");
}

/// `GET /webhooks` on the API at `base`, logged in as the default admin.
async fn list_webhooks(base: &str) -> Value {
    let token = login(base).await;
    reqwest::Client::new()
        .get(format!("{base}/webhooks"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json")
}

/// The seed's Flask receiver on a free port, and the lines it prints.
fn flask() -> (Running, u16, mpsc::Receiver<String>) {
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/http_server.py");
    let mut flask = Command::new("python3")
        .arg(script)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("flask receiver starts (pip install flask)");
    let stdout = flask.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let flask = Running(flask);
    wait_for_port(port);
    (flask, port, lines)
}

/// One MQTT 5 message from `mosquitto_pub`, as the seed sends it.
fn mosquitto_pub(port: u16, client_id: &str, topic: &str, message: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5"])
        .args(["-i", client_id, "-t", topic, "-m", message])
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success());
}

/// The next `count` bodies the Flask receiver prints, parsed.
fn printed_bodies(lines: &mpsc::Receiver<String>, count: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while bodies.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only {} requests: {bodies:#?}", bodies.len()));
        // got post request:  b'{...}'  (Python's bytes repr; our JSON has no quote escapes to undo but \\)
        if let Some(raw) = line
            .strip_prefix("got post request:  b'")
            .and_then(|l| l.strip_suffix('\''))
        {
            let body: Value =
                serde_json::from_str(&raw.replace("\\\\", "\\")).expect("printed body is JSON");
            bodies.push(body);
        }
    }
    bodies
}
