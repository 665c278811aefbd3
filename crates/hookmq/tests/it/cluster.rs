//! Two hookmq nodes on one real `nats-server`: a PUBLISH on one reaches the subscribers on
//! the other, only for topics someone subscribed to, and a node whose name is taken does
//! not start.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::support::{BIN, Running, free_port, log_path, start_hookmq, wait_for_port};

/// A `nats-server` on loopback, stopped when dropped.
struct Nats(Child);

impl Nats {
    fn start(port: u16) -> Self {
        let program = if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_ok()
        {
            "nats-server"
        } else {
            "/usr/sbin/nats-server"
        };
        let child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/test installs it)");
        wait_for_port(port);
        Self(child)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(data: &std::path::Path, name: &str, nats: u16) -> (Running, u16) {
    let mqtt = free_port();
    let url = format!("nats://127.0.0.1:{nats}");
    let running = start_hookmq(
        data,
        mqtt,
        free_port(),
        &[
            ("HOOKMQ_NODE__NAME", name),
            ("HOOKMQ_CLUSTER__NATS_URL", &url),
        ],
    );
    (running, mqtt)
}

fn publish(mqtt: u16, topic: &str, payload: &str, qos: &str) {
    let status = Command::new("mosquitto_pub")
        .args([
            "-p",
            &mqtt.to_string(),
            "-t",
            topic,
            "-m",
            payload,
            "-q",
            qos,
        ])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

/// `mosquitto_sub -v` on `filter`: its lines (`topic payload`) as they come.
fn subscribe(mqtt: u16, filter: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new("mosquitto_sub")
        .args(["-p", &mqtt.to_string(), "-t", filter, "-q", "1", "-v"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (child, received)
}

#[test]
fn a_publish_on_one_node_reaches_subscribers_on_the_other() {
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_a, a) = node(&dir.path().join("a"), "a@test", nats_port);
    let (_b, b) = node(&dir.path().join("b"), "b@test", nats_port);
    let (mut subscriber, lines) = subscribe(b, "room/#");

    // The subscription reaches node a through NATS a moment after its SUBACK: publish a
    // probe until one arrives, then the real messages.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        publish(a, "room/probe", "p", "0");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(line, "room/probe p");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node a never forwarded to node b"
        );
    }
    while lines.try_recv().is_ok() {}
    publish(a, "other/topic", "nobody-wants-it", "1");
    publish(a, "room", "parent", "0");
    publish(a, "room/a", "qos0", "0");
    publish(a, "room/b/c", "qos1", "1");
    let mut got = Vec::new();
    while got.len() < 3 {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("only {got:?} arrived"));
        if line != "room/probe p" {
            got.push(line);
        }
    }
    assert_eq!(got, ["room parent", "room/a qos0", "room/b/c qos1"]);
    assert!(
        lines.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing else (not other/topic)"
    );
    let _ = subscriber.kill();
    let _ = subscriber.wait();

    // A third node with a's name does not start.
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(&taken).expect("dir");
    let output = Command::new(BIN)
        .env("HOOKMQ_NODE__NAME", "a@test")
        .env(
            "HOOKMQ_CLUSTER__NATS_URL",
            format!("nats://127.0.0.1:{nats_port}"),
        )
        .env("HOOKMQ_NODE__DATA_DIR", &taken)
        .env(
            "HOOKMQ_LISTENERS__TCP__BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("HOOKMQ_LISTENERS__WS__ENABLE", "false")
        .env(
            "HOOKMQ_DASHBOARD__BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.name"), "{stderr}");
    assert!(log_path(&dir.path().join("a")).exists());
}
