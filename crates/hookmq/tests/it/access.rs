//! Management access from the network: while a dashboard user has the well-known default
//! password, the API and dashboard answer only on loopback; `hookmq user passwd` and
//! `HOOKMQ_DASHBOARD__DEFAULT_PASSWORD` set a password before the first start.
//!
//! "From the network" is this machine's own non-loopback address: the request has a
//! non-loopback source and never leaves the machine.

use std::{
    io::Write,
    net::{IpAddr, UdpSocket},
    process::{Command, Stdio},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{BIN, Running, free_port, start_hookmq};

/// An address of this machine that is not loopback: the source the kernel would pick for an
/// outgoing datagram (a UDP `connect` only looks the route up, it sends nothing).
fn own_network_address() -> IpAddr {
    for target in ["192.0.2.1:9", "198.51.100.1:9", "10.255.255.254:9"] {
        let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else {
            continue;
        };
        if socket.connect(target).is_err() {
            continue;
        }
        if let Ok(local) = socket.local_addr()
            && !local.ip().is_loopback()
            && !local.ip().is_unspecified()
        {
            return local.ip();
        }
    }
    panic!("this test needs an address of this machine other than loopback (none has a route)");
}

/// hookmq with the dashboard on every address, and `extra` environment.
fn start(data: &std::path::Path, extra: &[(&str, &str)]) -> (Running, u16) {
    let dashboard = free_port();
    let bind = format!("0.0.0.0:{dashboard}");
    let mut env = vec![("HOOKMQ_DASHBOARD__BIND", bind.as_str())];
    env.extend_from_slice(extra);
    (start_hookmq(data, free_port(), dashboard, &env), dashboard)
}

/// `POST /login` at `host`: the status and the answer.
async fn login(host: IpAddr, port: u16, password: &str) -> (StatusCode, Value) {
    let answer = reqwest::Client::new()
        .post(format!("http://{host}:{port}/api/v5/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("request");
    (answer.status(), answer.json().await.unwrap_or(Value::Null))
}

/// `hookmq user passwd admin` with `password` on standard input.
fn passwd(data: &std::path::Path, password: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["user", "passwd", "admin"])
        .env("HOOKMQ_NODE__DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    drop(stdin);
    child.wait_with_output().expect("finishes")
}

#[tokio::test]
async fn the_default_password_keeps_the_api_on_loopback_until_it_is_changed() {
    let lan = own_network_address();
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let dir = tempfile::tempdir().expect("temp dir");
    let (running, port) = start(dir.path(), &[]);

    let (status, answer) = login(lan, port, "public").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("hookmq user passwd admin"), "{message}");
    let page = reqwest::get(format!("http://{lan}:{port}/"))
        .await
        .expect("dashboard");
    assert_eq!(page.status(), StatusCode::FORBIDDEN, "the dashboard too");
    // A page that rebinds its own name to 127.0.0.1 reaches loopback, but under its name.
    let rebound = reqwest::Client::new()
        .post(format!("http://{loopback}:{port}/api/v5/login"))
        .header("host", format!("evil.example:{port}"))
        .json(&json!({"username": "admin", "password": "public"}))
        .send()
        .await
        .expect("request");
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    // The seed's walkthrough, on the machine itself, is unchanged.
    let (status, answer) = login(loopback, port, "public").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A running node holds the store: the command says to stop it.
    let refused = passwd(dir.path(), "while-running-1");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("stop hookmq first"), "{stderr}");

    let token = answer["token"].as_str().expect("token");
    let changed = reqwest::Client::new()
        .post(format!(
            "http://{loopback}:{port}/api/v5/users/admin/change_pwd"
        ))
        .bearer_auth(token)
        .json(&json!({"old_pwd": "public", "new_pwd": "changed-on-loopback"}))
        .send()
        .await
        .expect("change");
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let (status, answer) = login(lan, port, "changed-on-loopback").await;
    assert_eq!(status, StatusCode::OK, "open to the network now: {answer}");
    drop(running);

    // Offline, the command sets it too; the old one stops working.
    let output = passwd(dir.path(), "set-offline-2");
    assert!(output.status.success(), "{output:?}");
    let (_running, port) = start(dir.path(), &[]);
    assert_eq!(login(lan, port, "set-offline-2").await.0, StatusCode::OK);
    assert_eq!(
        login(lan, port, "changed-on-loopback").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_password_set_before_the_first_start_opens_the_api_to_the_network() {
    let lan = own_network_address();
    // By command: the default user is never created with the default password.
    let dir = tempfile::tempdir().expect("temp dir");
    let short = passwd(dir.path(), "short");
    assert!(!short.status.success(), "8 characters at least");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    assert!(passwd(dir.path(), "before-first-start").status.success());
    let (running, port) = start(dir.path(), &[]);
    assert_eq!(
        login(lan, port, "before-first-start").await.0,
        StatusCode::OK
    );
    assert_eq!(login(lan, port, "public").await.0, StatusCode::UNAUTHORIZED);
    drop(running);

    // By environment.
    let dir = tempfile::tempdir().expect("temp dir");
    let (_running, port) = start(
        dir.path(),
        &[("HOOKMQ_DASHBOARD__DEFAULT_PASSWORD", "from-the-environment")],
    );
    assert_eq!(
        login(lan, port, "from-the-environment").await.0,
        StatusCode::OK
    );
}
