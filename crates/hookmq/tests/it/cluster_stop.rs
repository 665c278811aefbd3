//! A node stopped gracefully hands the sessions of its connected clients to the nodes they
//! reconnect to: a persistent subscriber on a gets DISCONNECT 0x8B when a is stopped
//! (SIGTERM), the messages published on c while it is away wait in its session on a, and
//! it resumes that session on b (session present) and gets them there.

use std::time::{Duration, Instant};

use hookmq_codec::{Packet, PubResponse, QoS, ReasonCode};

use crate::{
    cluster::{Nats, node_with, publish},
    persistence::Raw,
    support::free_port,
};

#[test]
fn a_stopping_node_hands_its_clients_sessions_to_the_nodes_they_reconnect_to() {
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let (a_node, a, _) = node_with(&dir.path().join("a"), "a@test", nats_port, &[]);
    let (_b_node, b, _) = node_with(&dir.path().join("b"), "b@test", nats_port, &[]);
    let (_c_node, c, _) = node_with(&dir.path().join("c"), "c@test", nats_port, &[]);
    let (mut subscriber, _) = Raw::connect(a, "stayer");
    subscriber.subscribe("stop/#");
    // The subscription has reached NATS once a message published on c arrives.
    subscriber.probe_from(c, "stop/probe");

    let stopped_at = Instant::now();
    let stopping = std::thread::spawn(move || {
        drop(a_node);
        stopped_at.elapsed()
    });
    loop {
        match subscriber.recv() {
            Packet::Disconnect(disconnect) => {
                assert_eq!(disconnect.reason_code, ReasonCode::SERVER_SHUTTING_DOWN);
                break;
            }
            // A late probe.
            Packet::Publish(_) => {}
            other => panic!("DISCONNECT expected, got {other:?}"),
        }
    }
    drop(subscriber);
    publish(c, "stop/1", "away-1", "1");
    publish(c, "stop/2", "away-2", "1");

    let (mut on_b, present) = Raw::connect(b, "stayer");
    if !present {
        for node in ["a", "b"] {
            let log = std::fs::read_to_string(crate::support::log_path(&dir.path().join(node)));
            eprintln!("--- {node}\n{}", log.unwrap_or_default());
        }
    }
    assert!(present, "the session moved from the stopping node to b");
    let mut got = Vec::new();
    while got.len() < 2 {
        match on_b.recv() {
            Packet::Publish(message) => {
                if message.qos != QoS::AtMostOnce {
                    on_b.send(&Packet::PubAck(PubResponse::new(message.packet_id)));
                }
                if &*message.topic != "stop/probe" {
                    got.push(String::from_utf8_lossy(&message.payload).into_owned());
                }
            }
            other => panic!("PUBLISH expected, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        ["away-1", "away-2"],
        "queued on a while the client was away"
    );
    let took = stopping.join().expect("a stops");
    assert!(
        took < Duration::from_secs(8),
        "a waited {took:?}: its last session had moved, nothing was left to wait for"
    );
}
