//! A rolling restart loses nothing. Three nodes on one nats-server are stopped (SIGTERM)
//! and started again on their data directories one after the other, while a publisher
//! sends numbered QoS 1 messages and a persistent subscriber reads them, each moving to
//! another node whenever theirs stops. Every number the publisher had acknowledged reaches
//! the subscriber, and the receivers of a cluster-buffered and a disk-buffered webhook.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hookmq_codec::{Packet, PubResponse, Publish, QoS};
use serde_json::json;

use crate::{
    cluster::Nats,
    cluster_webhooks::{KEY, call, wait_for},
    persistence::{Polled, Raw},
    receiver::Receiver,
    support::{Running, free_port, start_hookmq},
};

/// At most this many of the publisher's messages wait for their PUBACK.
const WINDOW: usize = 16;

/// One node: how to start it again.
struct Node {
    running: Option<Running>,
    data: PathBuf,
    mqtt: u16,
    dashboard: u16,
    name: String,
}

impl Node {
    fn start(data: PathBuf, name: &str, nats: u16) -> Self {
        let mut node = Self {
            running: None,
            data,
            mqtt: free_port(),
            dashboard: free_port(),
            name: name.to_owned(),
        };
        node.running = Some(node.spawn(nats));
        node
    }

    fn spawn(&self, nats: u16) -> Running {
        let url = format!("nats://127.0.0.1:{nats}");
        let env = [
            ("HOOKMQ_NODE__NAME", self.name.as_str()),
            ("HOOKMQ_CLUSTER__NATS_URL", url.as_str()),
            ("HOOKMQ_SECRET_KEY", KEY),
        ];
        start_hookmq(&self.data, self.mqtt, self.dashboard, &env)
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}/api/v5", self.dashboard)
    }

    /// Stops it (SIGTERM, waiting for the exit) and starts it again on its data.
    fn restart(&mut self, nats: u16) {
        drop(self.running.take());
        self.running = Some(self.spawn(nats));
    }
}

/// Connects `client_id` to the first node after `from` (round the list) that takes it.
fn connect_elsewhere(ports: &[u16], from: usize, client_id: &str) -> (Raw, usize, bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut at = from;
    loop {
        at = (at + 1) % ports.len();
        if let Some((raw, present)) = Raw::try_connect(ports[at], client_id) {
            return (raw, at, present);
        }
        assert!(Instant::now() < deadline, "no node took {client_id}");
        // Nothing to wait on while every other node is down: try again shortly.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The QoS 1 PUBLISH of number `n`.
fn numbered(n: u32, dup: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos: QoS::AtLeastOnce,
        topic: "roll/n".into(),
        packet_id: u16::try_from(n % 60_000 + 1).expect("fits"),
        payload: Bytes::from(n.to_string()),
        ..Publish::default()
    })
}

/// Publishes numbers from 1, one every 2 ms, until `stop`, then until every one is
/// acknowledged; moves to another node when its node goes (sending the unacknowledged ones
/// again). Returns the acknowledged numbers.
fn publish_until(ports: Vec<u16>, stop: Arc<AtomicBool>) -> BTreeSet<u32> {
    // Starts on c.
    let (mut raw, mut at, _) = connect_elsewhere(&ports, 1, "roll-publisher");
    let mut unacked: BTreeMap<u16, u32> = BTreeMap::new();
    let mut acked = BTreeSet::new();
    let mut next = 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(stop.load(Ordering::Acquire) && unacked.is_empty()) {
        assert!(Instant::now() < deadline, "the publisher never finished");
        if !stop.load(Ordering::Acquire) && unacked.len() < WINDOW {
            raw.send(&numbered(next, false));
            unacked.insert(u16::try_from(next % 60_000 + 1).expect("fits"), next);
            next += 1;
        }
        match raw.poll(Duration::from_millis(2)) {
            Polled::Packet(Packet::PubAck(ack)) => {
                if let Some(n) = unacked.remove(&ack.packet_id) {
                    acked.insert(n);
                }
            }
            Polled::Packet(Packet::Disconnect(_)) | Polled::Closed => {
                let (again, now_at, _) = connect_elsewhere(&ports, at, "roll-publisher");
                (raw, at) = (again, now_at);
                for n in unacked.values() {
                    raw.send(&numbered(*n, true));
                }
            }
            Polled::Packet(_) | Polled::Quiet => {}
        }
    }
    acked
}

#[test]
fn a_rolling_restart_loses_nothing() {
    let nats_port = free_port();
    let _nats = Nats::start(nats_port);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|name| Node::start(dir.path().join(name), &format!("{name}@test"), nats_port))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|node| node.mqtt).collect();
    let (cluster_receiver, disk_receiver) = (Receiver::start(0), Receiver::start(0));
    for (name, buffer, receiver) in [
        ("roll-cluster", "cluster", &cluster_receiver),
        ("roll-disk", "disk", &disk_receiver),
    ] {
        let spec = json!({
            "name": name,
            "url": format!("http://{}/", receiver.address),
            "events": ["message.publish"],
            "topics": ["roll/#"],
            "buffer": buffer,
        });
        let (status, created) = call(&nodes[0].api(), "POST", "/webhooks", Some(spec));
        assert_eq!(status, 201, "{created}");
        for node in &nodes[1..] {
            wait_for(
                &node.api(),
                &format!("/webhooks/{name}"),
                "the webhook everywhere",
                |status, _| status == 200,
            );
        }
    }

    // The subscriber starts on a (it reaches c, where the publisher starts, through NATS).
    let (mut subscriber, mut at, _) = connect_elsewhere(&ports, 2, "roll-subscriber");
    subscriber.subscribe("roll/#");
    subscriber.probe_from(ports[2], "roll/probe");

    let stop = Arc::new(AtomicBool::new(false));
    let mut publisher = Some({
        let (ports, stop) = (ports.clone(), Arc::clone(&stop));
        std::thread::spawn(move || publish_until(ports, stop))
    });
    let restarts = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Pacing, not waiting: half a second of traffic (hundreds of messages at the
            // publisher's rate) before each stop and after the last start, so every stop
            // meets messages in flight and the restarted cluster carries some too.
            for node in &mut nodes {
                std::thread::sleep(Duration::from_millis(500));
                node.restart(nats_port);
            }
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Release);
            nodes
        })
    };

    let mut got = BTreeSet::new();
    let mut moves = 0;
    let mut acked = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if Instant::now() >= deadline {
            let missing: Vec<&u32> = acked
                .as_ref()
                .map(|acked: &BTreeSet<u32>| acked.difference(&got).take(20).collect())
                .unwrap_or_default();
            panic!(
                "the subscriber never got everything: publisher done {}, {} received, missing {missing:?}",
                acked.is_some(),
                got.len()
            );
        }
        match subscriber.poll(Duration::from_millis(100)) {
            Polled::Packet(Packet::Publish(message)) => {
                subscriber.send(&Packet::PubAck(PubResponse::new(message.packet_id)));
                if let Some(n) = std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|text| text.parse::<u32>().ok())
                {
                    got.insert(n);
                }
            }
            Polled::Packet(Packet::Disconnect(_)) | Polled::Closed => {
                let (again, now_at, present) = connect_elsewhere(&ports, at, "roll-subscriber");
                if !present {
                    for name in ["a", "b", "c"] {
                        let log = std::fs::read_to_string(crate::support::log_path(
                            &dir.path().join(name),
                        ));
                        eprintln!("--- {name}\n{}", log.unwrap_or_default());
                    }
                }
                assert!(present, "the subscriber's session moved with it");
                (subscriber, at) = (again, now_at);
                moves += 1;
            }
            Polled::Packet(_) | Polled::Quiet => {}
        }
        if publisher
            .as_ref()
            .is_some_and(std::thread::JoinHandle::is_finished)
        {
            acked = publisher
                .take()
                .map(|done| done.join().expect("the publisher"));
        }
        if let Some(acked) = &acked
            && acked.is_subset(&got)
        {
            break;
        }
    }
    let acked = acked.expect("acknowledged numbers");
    let _nodes = restarts.join().expect("the restarts");
    eprintln!(
        "{} numbers acknowledged, {} received, the subscriber moved {moves} times",
        acked.len(),
        got.len()
    );
    assert!(acked.len() > 500, "only {} acknowledged", acked.len());
    assert!(moves >= 1, "the subscriber's node never stopped under it");
    for (what, receiver) in [("cluster", &cluster_receiver), ("disk", &disk_receiver)] {
        receiver.wait(
            &format!("every acknowledged number through the {what} buffer"),
            |received| {
                let numbers: BTreeSet<u32> = received
                    .iter()
                    .filter_map(|r| r.payload.parse().ok())
                    .collect();
                acked.is_subset(&numbers)
            },
        );
    }
}
