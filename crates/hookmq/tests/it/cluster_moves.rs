//! A persistent subscriber moving between nodes while messages keep coming misses none: a
//! publisher on c sends 2,000 numbered QoS 1 messages, one a millisecond, while the
//! subscriber connects to a, b, a, b, ... (each move takes its session over); it gets every
//! number.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hookmq_codec::{Packet, PubResponse, Publish, QoS};

use crate::{
    cluster::{Nats, node_with},
    persistence::Raw,
    support::free_port,
};

/// Messages published.
const COUNT: u32 = 2_000;
/// Times the subscriber moves.
const MOVES: usize = 8;

/// Reads `raw` for `wait`, acknowledging and recording what comes.
fn read(raw: &mut Raw, wait: Duration, got: &mut BTreeSet<u32>) {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match raw.recv_within(left) {
            Some(Packet::Publish(message)) => {
                if message.qos != QoS::AtMostOnce {
                    raw.send(&Packet::PubAck(PubResponse::new(message.packet_id)));
                }
                if let Some(n) = std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|text| text.parse().ok())
                {
                    got.insert(n);
                }
            }
            Some(Packet::Disconnect(_)) | None => return,
            Some(other) => panic!("PUBLISH expected, got {other:?}"),
        }
    }
}

/// Publishes `1..=COUNT` on `seq/n` from `mqtt`, about one a millisecond, keeping at most
/// 16 unacknowledged.
fn publish_numbers(mqtt: u16) {
    let (mut publisher, _) = Raw::connect(mqtt, "seq-publisher");
    let mut unacked = 0;
    for n in 1..=COUNT {
        let packet_id = u16::try_from(n % 60_000 + 1).expect("fits");
        publisher.send(&Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            topic: "seq/n".into(),
            packet_id,
            payload: Bytes::from(n.to_string()),
            ..Publish::default()
        }));
        unacked += 1;
        while unacked >= 16 {
            match publisher.recv() {
                Packet::PubAck(_) => unacked -= 1,
                other => panic!("PUBACK expected, got {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    while unacked > 0 {
        if let Packet::PubAck(_) = publisher.recv() {
            unacked -= 1;
        }
    }
}

#[test]
fn a_subscriber_moving_between_nodes_misses_nothing() {
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_a, a, _) = node_with(&dir.path().join("a"), "a@test", nats_port, &[]);
    let (_b, b, _) = node_with(&dir.path().join("b"), "b@test", nats_port, &[]);
    let (_c, c, _) = node_with(&dir.path().join("c"), "c@test", nats_port, &[]);
    let (mut subscriber, _) = Raw::connect(a, "seq-subscriber");
    subscriber.subscribe("seq/#");
    // The subscription is in NATS once a message published on c arrives.
    subscriber.probe_from(c, "seq/probe");

    let publisher = std::thread::spawn(move || publish_numbers(c));
    let mut got = BTreeSet::new();
    let nodes = [a, b];
    for hop in 1..=MOVES {
        read(&mut subscriber, Duration::from_millis(250), &mut got);
        let (next, present) = Raw::connect(nodes[hop % 2], "seq-subscriber");
        if !present {
            for node in ["a", "b", "c"] {
                let log = std::fs::read_to_string(crate::support::log_path(&dir.path().join(node)));
                eprintln!("--- {node}\n{}", log.unwrap_or_default());
            }
        }
        assert!(present, "move {hop}: the session came along");
        subscriber = next;
    }
    publisher.join().expect("the publisher ends");
    let deadline = Instant::now() + Duration::from_secs(20);
    while (got.len() as u32) < COUNT && Instant::now() < deadline {
        read(&mut subscriber, Duration::from_millis(500), &mut got);
    }
    let missing: Vec<u32> = (1..=COUNT).filter(|n| !got.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {COUNT} missing after {MOVES} moves: {missing:?}",
        missing.len()
    );
}
