//! The `hookmq` binary as a user runs it.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{BIN, free_port, wait_for_port};

#[test]
fn user_add_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("passwd");
    let mut child = Command::new(BIN)
        .args(["user", "add", "alice", "--file"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret\n")
        .expect("write");
    let output = child.wait_with_output().expect("finishes");
    assert!(output.status.success());
    let text = std::fs::read_to_string(&file).expect("file written");
    assert!(text.starts_with("alice:$argon2id$"), "{text}");
    assert!(!text.contains("s3cret"));
    let removed = Command::new(BIN)
        .args(["user", "remove", "alice", "--file"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(removed.status.success());
    let missing = Command::new(BIN)
        .args(["user", "remove", "alice", "--file"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn invalid_configuration_is_one_clear_error() {
    let output = Command::new(BIN)
        .env("HOOKMQ_MQTT__MAX_QOS", "7")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mqtt.max_qos"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn defaults_print_and_check() {
    let output = Command::new(BIN)
        .args(["config", "defaults"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("[listeners.tcp]") && text.contains("0.0.0.0:1883"),
        "{text}"
    );
}

#[test]
fn starts_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut child = Command::new(BIN)
        .env("HOOKMQ_LISTENERS__TCP__BIND", format!("127.0.0.1:{port}"))
        .env(
            "HOOKMQ_LISTENERS__WS__BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "HOOKMQ_DASHBOARD__BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("HOOKMQ_NODE__DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    wait_for_port(port);
    let published = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "t",
            "-m",
            "hi",
            "-q",
            "1",
        ])
        .status()
        .expect("mosquitto_pub runs");
    assert!(published.success());
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "no graceful stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(dir.path().join("data").is_dir(), "data dir created");
}

#[test]
fn sighup_reloads_the_tls_certificate_and_keeps_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write_pair = || {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        std::fs::write(dir.path().join("cert.pem"), pair.cert.pem()).expect("write");
        std::fs::write(dir.path().join("key.pem"), pair.signing_key.serialize_pem())
            .expect("write");
    };
    write_pair();
    let (mqtt, tls, dashboard) = (free_port(), free_port(), free_port());
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let tls_bind = format!("127.0.0.1:{tls}");
    let running = crate::support::start_hookmq(
        &dir.path().join("data"),
        mqtt,
        dashboard,
        &[
            ("HOOKMQ_LISTENERS__TLS__BIND", &tls_bind),
            ("HOOKMQ_LISTENERS__TLS__CERTFILE", &cert),
            ("HOOKMQ_LISTENERS__TLS__KEYFILE", &key),
        ],
    );
    wait_for_port(tls);
    write_pair();
    let pid = running.0.id().to_string();
    let log = crate::support::log_path(&dir.path().join("data"));
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("TLS certificate reloaded")
    {
        assert!(Instant::now() < deadline, "no reload logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still serving.
    wait_for_port(mqtt);
    wait_for_port(tls);
}
