//! `hookmq ctl` against a running `hookmq`, as a user runs it: the binary started on free
//! ports, an API key created through the API, then `hookmq ctl webhooks ...` and
//! `hookmq ctl clients ...` with their output and exit codes. The webhook receiver is a tiny
//! HTTP server on a thread; the MQTT client is `mosquitto_sub`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{BIN, Running, free_port, login, start_hookmq};

/// An HTTP receiver answering `200 ok` to everything, on a thread.
fn receiver() -> u16 {
    receiver_answering(Arc::new(AtomicU16::new(200)))
}

/// An HTTP receiver answering with the status `status` holds at the time, on a thread.
fn receiver_answering(status: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = format!(
                "HTTP/1.1 {} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                status.load(Ordering::Relaxed)
            );
            let _ = reader.get_mut().write_all(answer.as_bytes());
        }
    });
    port
}

/// Runs `hookmq ctl ARGS` with only the given `HOOKMQ_*` variables.
fn ctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.arg("ctl").args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("HOOKMQ_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("hookmq ctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a success and returns standard output.
fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        stderr(output)
    );
    stdout(output)
}

/// Asserts exit code 2 with one `error: ...` line, and returns that line.
fn fails(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(2), "{}", stdout(output));
    let text = stderr(output);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(text.starts_with("error: "), "{text}");
    text.trim_end().to_owned()
}

/// The column where `header` starts in the header line, and that every row has a
/// non-space character there (aligned columns).
fn column_aligned(table: &str, header: &str) -> usize {
    let mut lines = table.lines();
    let at = lines
        .next()
        .and_then(|h| h.find(header))
        .expect("header present");
    for line in lines {
        let before = line.get(at - 2..at).unwrap_or_default();
        assert_eq!(before, "  ", "column {header} aligned in {line:?}");
    }
    at
}

#[tokio::test]
async fn ctl_manages_webhooks_and_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let _node = start_hookmq(&dir.path().join("data"), mqtt, dashboard, &[]);
    let api = format!("http://127.0.0.1:{dashboard}");
    let http = reqwest::Client::new();
    let token = login(&format!("{api}/api/v5")).await;
    let key: Value = http
        .post(format!("{api}/api/v5/api_key"))
        .bearer_auth(&token)
        .json(&json!({"name": "ctl-test"}))
        .send()
        .await
        .expect("api key")
        .json()
        .await
        .expect("json");
    let (key, secret) = (
        key["api_key"].as_str().expect("key").to_owned(),
        key["api_secret"].as_str().expect("secret").to_owned(),
    );
    let env = [
        ("HOOKMQ_API", api.as_str()),
        ("HOOKMQ_API_KEY", key.as_str()),
        ("HOOKMQ_API_SECRET", secret.as_str()),
    ];
    let receiver = receiver();
    let url = format!("http://127.0.0.1:{receiver}/hook");

    assert_eq!(ok(&ctl(&["webhooks", "list"], &env)), "no webhooks\n");
    let created = ok(&ctl(
        &[
            "webhooks",
            "create",
            "--name",
            "w1",
            "--url",
            &url,
            "--also-url",
            &format!("{url}2"),
            "--url-strategy",
            "failover",
            "--events",
            "message.publish,client.connected",
            "--description",
            "from the CLI",
            "--header",
            "x-token: abc",
        ],
        &env,
    ));
    assert_eq!(created, "webhook w1 created\n");
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        json!({"name": "w2", "url": "http://127.0.0.1:9/", "enable": false}).to_string(),
    )
    .expect("spec written");
    let spec = spec.to_str().expect("utf-8 path");
    assert_eq!(
        ok(&ctl(&["webhooks", "create", "--file", spec], &env)),
        "webhook w2 created\n"
    );

    let list = ok(&ctl(&["webhooks", "list"], &env));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("NAME "), "{list}");
    assert!(
        lines[1].starts_with("w1 ") && lines[1].contains(&format!("{url} (+1)")),
        "{list}"
    );
    assert!(
        lines[1].contains("message.publish,client.connected"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("w2 ") && lines[2].contains("false"),
        "{list}"
    );
    for header in ["ENABLED", "URL", "EVENTS", "SUCCESS", "FAILED"] {
        column_aligned(&list, header);
    }

    let show = ok(&ctl(&["webhooks", "show", "w1"], &env));
    assert!(
        show.contains("description:") && show.contains("from the CLI"),
        "{show}"
    );
    // A header named as a credential is a secret: shown as stars.
    assert!(
        show.contains("x-token=******") && !show.contains("abc"),
        "{show}"
    );
    assert!(show.contains("metrics.success:"), "{show}");
    assert!(
        show.contains("url_strategy:") && show.contains("failover"),
        "{show}"
    );
    assert!(
        show.lines().any(|line| line.starts_with("receivers[1]:")
            && line.contains(&format!(" {url}2 "))
            && line.contains(": 0 delivered, 0 of 0 requests failed")),
        "each receiver's status: {show}"
    );
    let shown: Value = serde_json::from_str(&ok(&ctl(&["--json", "webhooks", "show", "w1"], &env)))
        .expect("--json prints JSON");
    assert_eq!(shown["name"], "w1");
    assert_eq!(
        shown["events"],
        json!(["message.publish", "client.connected"])
    );

    assert_eq!(
        ok(&ctl(&["webhooks", "disable", "w1"], &env)),
        "webhook w1 disabled\n"
    );
    let shown: Value =
        serde_json::from_str(&ok(&ctl(&["webhooks", "show", "w1", "--json"], &env))).expect("json");
    assert_eq!(shown["enable"], false);
    assert_eq!(
        ok(&ctl(&["webhooks", "enable", "w1"], &env)),
        "webhook w1 enabled\n"
    );

    let tested = ok(&ctl(&["webhooks", "test", "w1"], &env));
    assert!(
        tested.starts_with("w1: 200 in ") && tested.trim_end().ends_with(": ok"),
        "{tested}"
    );
    let failed = fails(&ctl(&["webhooks", "test", "w2"], &env));
    assert!(
        failed.starts_with("error: test request of webhook w2 failed: "),
        "{failed}"
    );

    assert_eq!(
        fails(&ctl(&["webhooks", "show", "nope"], &env)),
        "error: 404 NOT_FOUND: webhook nope not found"
    );
    let bad = fails(&ctl(
        &["webhooks", "create", "--name", "bad name", "--url", &url],
        &env,
    ));
    assert!(bad.starts_with("error: 400 BAD_REQUEST: name: "), "{bad}");
    let taken = fails(&ctl(&["webhooks", "create", "--file", spec], &env));
    assert!(taken.starts_with("error: 409 ALREADY_EXISTS: "), "{taken}");
    assert_eq!(
        ok(&ctl(&["webhooks", "delete", "w2"], &env)),
        "webhook w2 deleted\n"
    );
    fails(&ctl(&["webhooks", "delete", "w2"], &env));

    // Clients, with a real MQTT subscriber.
    let _subscriber = Running(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &mqtt.to_string()])
            .args(["-i", "sub/1", "-t", "t/#", "-k", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = ok(&ctl(&["clients", "list"], &env));
        if list.contains("sub/1") {
            break list;
        }
        assert!(Instant::now() < deadline, "sub/1 never listed: {list}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(list.starts_with("CLIENTID "), "{list}");
    for header in ["CONNECTED", "PEERNAME", "SUBSCRIPTIONS"] {
        column_aligned(&list, header);
    }
    let row = list.lines().nth(1).expect("a row");
    assert!(row.contains("true") && row.contains("MQTT 4"), "{row}");
    let page: Value = serde_json::from_str(&ok(&ctl(
        &["clients", "list", "--json", "--like", "SUB"],
        &env,
    )))
    .expect("json");
    assert_eq!(page["data"][0]["clientid"], "sub/1");
    assert_eq!(page["data"][0]["subscriptions_cnt"], 1);
    assert_eq!(
        ok(&ctl(&["clients", "kick", "sub/1"], &env)),
        "client sub/1 kicked\n"
    );
    assert_eq!(
        fails(&ctl(&["clients", "kick", "nobody"], &env)),
        "error: 404 NOT_FOUND: connected client nobody not found"
    );

    // Credentials: flags, a dashboard user, none, wrong ones; an unreachable node.
    ok(&ctl(
        &[
            "--api",
            &api,
            "--api-key",
            &key,
            "--api-secret",
            &secret,
            "webhooks",
            "list",
        ],
        &[],
    ));
    ok(&ctl(
        &[
            "webhooks",
            "list",
            "--username",
            "admin",
            "--password",
            "public",
        ],
        &[("HOOKMQ_API", &api)],
    ));
    let none = fails(&ctl(&["webhooks", "list"], &[("HOOKMQ_API", &api)]));
    assert!(none.starts_with("error: no credentials"), "{none}");
    let wrong = fails(&ctl(&["webhooks", "list", "--api-secret", "0000"], &env));
    assert!(wrong.starts_with("error: 401 UNAUTHORIZED: "), "{wrong}");
    assert!(!wrong.contains("0000"), "{wrong}");
    let login = fails(&ctl(
        &[
            "webhooks",
            "list",
            "--username",
            "admin",
            "--password",
            "nope",
        ],
        &[("HOOKMQ_API", &api)],
    ));
    assert!(
        login.starts_with("error: 401 BAD_USERNAME_OR_PWD: "),
        "{login}"
    );
    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = fails(&ctl(
        &[
            "--api",
            &closed,
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "clients",
            "list",
        ],
        &[],
    ));
    assert!(
        unreachable.starts_with("error: cannot reach the API at "),
        "{unreachable}"
    );
}

#[tokio::test]
async fn ctl_lists_replays_and_purges_dead_letters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let _node = start_hookmq(&dir.path().join("data"), mqtt, dashboard, &[]);
    let api = format!("http://127.0.0.1:{dashboard}");
    let env = [
        ("HOOKMQ_API", api.as_str()),
        ("HOOKMQ_USERNAME", "admin"),
        ("HOOKMQ_PASSWORD", "public"),
    ];
    let status = Arc::new(AtomicU16::new(404));
    let url = format!(
        "http://127.0.0.1:{}/",
        receiver_answering(Arc::clone(&status))
    );
    ok(&ctl(
        &[
            "webhooks",
            "create",
            "--name",
            "dl",
            "--url",
            &url,
            "--events",
            "message.publish",
        ],
        &env,
    ));
    for n in 0..2 {
        let published = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &mqtt.to_string(),
                "-t",
                "t/dl",
                "-q",
                "1",
            ])
            .args(["-m", &format!("m{n}")])
            .status()
            .expect("mosquitto_pub runs");
        assert!(published.success());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = ok(&ctl(&["webhooks", "dead-letters", "list", "dl"], &env));
        if listed.contains("page 1 of 2 dead letters") {
            break listed;
        }
        assert!(Instant::now() < deadline, "{listed}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rows: Vec<&str> = listed.lines().filter(|l| !l.starts_with("page ")).collect();
    assert_eq!(rows.len(), 3, "a header and two rows: {listed}");
    column_aligned(&rows.join("\n"), "REASON");
    assert!(
        listed.contains("message.publish") && listed.contains("404"),
        "{listed}"
    );
    let json: Value = serde_json::from_str(&ok(&ctl(
        &[
            "--json",
            "webhooks",
            "dead-letters",
            "list",
            "dl",
            "--limit",
            "1",
        ],
        &env,
    )))
    .expect("json");
    let newest = json["data"][0]["id"].as_u64().expect("id").to_string();

    let attempts = ok(&ctl(&["webhooks", "attempts", "dl", "--limit", "1"], &env));
    assert!(
        attempts.lines().count() == 2 && attempts.contains("404"),
        "a header and the last attempt: {attempts}"
    );
    status.store(200, Ordering::Relaxed);
    let replayed = ok(&ctl(
        &["webhooks", "dead-letters", "replay", "dl", "--id", &newest],
        &env,
    ));
    assert_eq!(replayed.trim(), "dl: 1 replayed, 0 left");
    let purged = ok(&ctl(&["webhooks", "dead-letters", "purge", "dl"], &env));
    assert_eq!(purged.trim(), "dl: 1 dead letters deleted");
    let missing = fails(&ctl(&["webhooks", "dead-letters", "list", "nope"], &env));
    assert!(missing.contains("404"), "{missing}");
}
