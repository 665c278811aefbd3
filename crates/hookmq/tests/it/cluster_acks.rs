//! A QoS 1 message a node has acknowledged reaches the subscribers on the other nodes even
//! if that node dies right after the PUBACK. The NATS server is paused (SIGSTOP), so what
//! node a forwards piles up in its memory; a is killed while its publisher still sends, and
//! every message it acknowledged before that reaches node b's subscriber once NATS goes on.

use std::{
    collections::HashSet,
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use hookmq_codec::{Packet, ProtocolVersion, Publish, QoS, encode};

use crate::{
    cluster::{Nats, node_with, publish},
    persistence::Raw,
    support::free_port,
};

/// Messages published while NATS runs: every one is acknowledged.
const BEFORE: u16 = 50;
/// Messages published while NATS is paused: 25 MiB, far more than the sockets between a
/// and NATS buffer, so most of them are still in a's memory when it dies.
const DURING: u16 = 400;
/// Each message's size.
const PAYLOAD: usize = 64 * 1024;
/// How long the publisher collects acknowledgements with NATS paused before a is killed:
/// well inside `cluster.forward_confirm_timeout` (5 s), past which a would acknowledge
/// unconfirmed messages.
const COLLECT: Duration = Duration::from_millis(1500);

#[test]
fn acknowledged_messages_reach_other_nodes_though_their_node_dies() {
    let nats_port = free_port();
    let nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let window = [("HOOKMQ_MQTT__RECEIVE_MAXIMUM", "1000")];
    let (mut a_node, a, _) = node_with(&dir.path().join("a"), "a@test", nats_port, &window);
    let (_b_node, b, _) = node_with(&dir.path().join("b"), "b@test", nats_port, &[]);
    let (_subscriber, topics) = subscribe_topics(b, "acks/#");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        publish(a, "acks/probe", "p", "0");
        if topics.recv_timeout(Duration::from_millis(200)).as_deref() == Ok("acks/probe") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b's subscription never reached a"
        );
    }
    let (mut publisher, _) = Raw::connect(a, "acks-publisher");
    for id in 1..=BEFORE {
        publisher.send(&message(id));
    }
    let acked_running = acknowledged(&mut publisher, Duration::from_secs(10), BEFORE);
    assert_eq!(acked_running.len(), usize::from(BEFORE), "NATS running");

    nats.pause();
    let mut writer = publisher.writer();
    let sending = std::thread::spawn(move || {
        for id in BEFORE + 1..=BEFORE + DURING {
            let mut out = BytesMut::new();
            encode(&message(id), ProtocolVersion::V5, &mut out).expect("encodes");
            if writer.write_all(&out).is_err() {
                return;
            }
        }
    });
    let acked_paused = acknowledged(&mut publisher, COLLECT, DURING);
    a_node.kill();
    assert!(
        acked_paused.len() < usize::from(DURING),
        "a acknowledged every message though NATS had taken none of them"
    );
    nats.resume();
    let _ = sending.join();

    let acked: HashSet<u16> = acked_running.union(&acked_paused).copied().collect();
    let mut got = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !acked.is_subset(&got) {
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged messages reached b ({} acknowledged with NATS paused)",
            acked.intersection(&got).count(),
            acked.len(),
            acked_paused.len(),
        );
        if let Ok(topic) = topics.recv_timeout(Duration::from_millis(500))
            && let Some(id) = topic.strip_prefix("acks/").and_then(|id| id.parse().ok())
        {
            got.insert(id);
        }
    }
}

/// A child process killed when dropped, a failed assertion included.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The QoS 1 PUBLISH of message `id` (its packet id too), on topic `acks/{id}`.
fn message(id: u16) -> Packet {
    Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: format!("acks/{id}").into(),
        packet_id: id,
        payload: Bytes::from(vec![b'x'; PAYLOAD]),
        ..Publish::default()
    })
}

/// The packet ids acknowledged within `wait`, stopping early once `all` have been.
fn acknowledged(publisher: &mut Raw, wait: Duration, all: u16) -> HashSet<u16> {
    let deadline = Instant::now() + wait;
    let mut acked = HashSet::new();
    while acked.len() < usize::from(all) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match publisher.recv_within(left) {
            Some(Packet::PubAck(ack)) => {
                acked.insert(ack.packet_id);
            }
            Some(other) => panic!("PUBACK expected, got {other:?}"),
            None => break,
        }
    }
    acked
}

/// `mosquitto_sub` on `filter` at QoS 1, printing each message's topic only.
fn subscribe_topics(mqtt: u16, filter: &str) -> (Reaped, mpsc::Receiver<String>) {
    let mut child = Command::new("mosquitto_sub")
        .args(["-p", &mqtt.to_string(), "-t", filter, "-q", "1", "-F", "%t"])
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
    (Reaped(child), received)
}
