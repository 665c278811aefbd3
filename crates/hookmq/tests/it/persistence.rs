//! The broker's state through `kill -9` and through a normal stop of the real binary, with
//! real clients (mosquitto_pub and mosquitto_sub; the project's codec where an exchange has
//! to stop half way): a retained message, v5 and 3.1.1 persistent sessions with QoS 1 and
//! QoS 2 messages queued while offline, a QoS 2 exchange cut in both directions, a delayed
//! will.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use bytes::BytesMut;
use hookmq_codec::{
    Connect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, SubscriptionRequest, Will, decode, encode,
};
use test_case::test_case;

use crate::support::{Running, free_port, login, start_hookmq};

/// Queued messages per QoS.
const QUEUED: usize = 10;

/// How hookmq goes down between the two halves.
#[derive(Debug, Clone, Copy)]
enum Down {
    /// `kill -9`.
    Killed,
    /// SIGTERM, waiting for the exit.
    Stopped,
}

/// Runs a mosquitto client to the end; returns its standard output.
fn mosquitto(program: &str, port: u16, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (installed by scripts/test): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Publishes one line per message with `mosquitto_pub -l`.
fn publish_lines(port: u16, version: &str, qos: &str, topic: &str, lines: &[String]) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version])
        .args(["-q", qos, "-t", topic, "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("lines");
    assert!(child.wait().expect("mosquitto_pub").success());
}

/// What [`Raw::poll`] saw.
#[expect(
    clippy::large_enum_variant,
    reason = "one at a time, matched at once by the caller"
)]
pub(crate) enum Polled {
    /// A packet.
    Packet(Packet),
    /// Nothing within the wait.
    Quiet,
    /// The connection is gone.
    Closed,
}

/// A blocking client over the project's codec, for exchanges cut half way.
pub(crate) struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    /// Connects `client_id` with a session kept for an hour; returns it with the session
    /// present flag.
    pub(crate) fn connect(port: u16, client_id: &str) -> (Self, bool) {
        Self::connect_with(port, Self::connect_packet(client_id))
    }

    /// A v5 CONNECT for `client_id`, its session kept for an hour.
    fn connect_packet(client_id: &str) -> Connect {
        let mut connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: false,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            ..Connect::default()
        };
        connect.properties.session_expiry_interval = Some(3600);
        connect
    }

    /// Sends `connect`; returns the client once CONNACK came, with its session present flag.
    fn connect_with(port: u16, connect: Connect) -> (Self, bool) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut raw = Self {
            stream,
            buf: BytesMut::new(),
        };
        raw.send(&Packet::Connect(Box::new(connect)));
        match raw.recv() {
            Packet::ConnAck(ack) => {
                assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
                (raw, ack.session_present)
            }
            other => panic!("CONNACK expected, got {other:?}"),
        }
    }

    pub(crate) fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode(packet, ProtocolVersion::V5, &mut out).expect("encodes");
        self.stream.write_all(&out).expect("writes");
    }

    /// A second handle on the connection, to write from another thread.
    pub(crate) fn writer(&self) -> TcpStream {
        self.stream.try_clone().expect("clones")
    }

    /// The next packet if one comes within `wait`.
    pub(crate) fn recv_within(&mut self, wait: Duration) -> Option<Packet> {
        match self.poll(wait) {
            Polled::Packet(packet) => Some(packet),
            Polled::Quiet => None,
            Polled::Closed => panic!("closed by the broker"),
        }
    }

    /// The next packet if one comes within `wait`, or that the connection is gone.
    pub(crate) fn poll(&mut self, wait: Duration) -> Polled {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match decode(&mut self.buf, Some(ProtocolVersion::V5), u32::MAX) {
                Ok(Some(packet)) => return Polled::Packet(packet),
                Ok(None) => {}
                Err(_) => return Polled::Closed,
            }
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                return Polled::Quiet;
            };
            if self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_err()
            {
                return Polled::Closed;
            }
            let mut chunk = [0; 4096];
            let read = self.stream.read(&mut chunk);
            let _ = self.stream.set_read_timeout(Some(Duration::from_secs(10)));
            match read {
                Ok(0) => return Polled::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Polled::Closed,
            }
        }
    }

    /// Like [`Raw::connect`], but `None` when nothing accepts on `port` or no CONNACK
    /// comes (a node stopping or starting).
    pub(crate) fn try_connect(port: u16, client_id: &str) -> Option<(Self, bool)> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let mut raw = Self {
            stream,
            buf: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        encode(
            &Packet::Connect(Box::new(Self::connect_packet(client_id))),
            ProtocolVersion::V5,
            &mut out,
        )
        .ok()?;
        raw.stream.write_all(&out).ok()?;
        match raw.poll(Duration::from_secs(10)) {
            Polled::Packet(Packet::ConnAck(ack)) if ack.reason_code == ReasonCode::SUCCESS => {
                let present = ack.session_present;
                Some((raw, present))
            }
            _ => None,
        }
    }

    /// Subscribes to `filter` at QoS 1; returns once the SUBACK came.
    pub(crate) fn subscribe(&mut self, filter: &str) {
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            subscriptions: vec![SubscriptionRequest {
                filter: filter.into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            }],
            ..Subscribe::default()
        }));
        assert!(matches!(self.recv(), Packet::SubAck(_)), "SUBACK");
    }

    /// Publishes QoS 0 probes on `topic` from the node listening on `mqtt` until one
    /// arrives here: this client's subscription has reached that node (through NATS).
    pub(crate) fn probe_from(&mut self, mqtt: u16, topic: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            crate::cluster::publish(mqtt, topic, "probe", "0");
            if let Some(Packet::Publish(probe)) = self.recv_within(Duration::from_millis(200))
                && &*probe.topic == topic
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the subscription never reached the node on {mqtt}"
            );
        }
    }

    pub(crate) fn recv(&mut self) -> Packet {
        loop {
            if let Some(packet) =
                decode(&mut self.buf, Some(ProtocolVersion::V5), u32::MAX).expect("decodes")
            {
                return packet;
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).expect("a packet in time");
            assert!(n > 0, "closed by the broker");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn publish_qos2(&mut self, topic: &str, payload: &'static [u8], packet_id: u16, dup: bool) {
        self.send(&Packet::Publish(Publish {
            dup,
            qos: QoS::ExactlyOnce,
            topic: topic.into(),
            packet_id,
            payload: bytes::Bytes::from_static(payload),
            ..Publish::default()
        }));
    }
}

/// Before the crash: the cut QoS 2 exchanges. `sub2` has received one message (PUBREC
/// sent, PUBREL received, no PUBCOMP) and not acknowledged a second; `pub2` has sent one
/// (PUBREC received, no PUBREL). Returns the packet ids `sub2` saw.
fn cut_qos2_exchanges(port: u16) -> (u16, u16) {
    let (mut sub, _) = Raw::connect(port, "sub2");
    sub.send(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        subscriptions: vec![SubscriptionRequest {
            filter: "cut".into(),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                ..SubscriptionOptions::default()
            },
        }],
        ..Subscribe::default()
    }));
    assert!(matches!(sub.recv(), Packet::SubAck(_)));
    let (mut publisher, _) = Raw::connect(port, "pub2");
    publisher.publish_qos2("cut", b"first", 7, false);
    assert!(matches!(publisher.recv(), Packet::PubRec(ack) if ack.packet_id == 7));
    let Packet::Publish(first) = sub.recv() else {
        panic!("PUBLISH")
    };
    sub.send(&Packet::PubRec(PubResponse::new(first.packet_id)));
    assert!(matches!(sub.recv(), Packet::PubRel(_)));
    publisher.publish_qos2("cut", b"second", 8, false);
    assert!(matches!(publisher.recv(), Packet::PubRec(ack) if ack.packet_id == 8));
    publisher.send(&Packet::PubRel(PubResponse::new(8)));
    assert!(matches!(publisher.recv(), Packet::PubComp(_)));
    let Packet::Publish(second) = sub.recv() else {
        panic!("PUBLISH")
    };
    (first.packet_id, second.packet_id)
}

/// After the restart: the exchanges finish, each message once.
fn finish_qos2_exchanges(port: u16, (first, second): (u16, u16)) {
    let (mut sub, present) = Raw::connect(port, "sub2");
    assert!(present, "sub2's session survived");
    let resent = [sub.recv(), sub.recv()];
    assert!(
        resent
            .iter()
            .any(|p| matches!(p, Packet::PubRel(rel) if rel.packet_id == first)),
        "the PUBREL owed: {resent:?}"
    );
    assert!(
        resent.iter().any(|p| matches!(p, Packet::Publish(again)
            if again.packet_id == second && again.dup && &again.payload[..] == b"second")),
        "the unacknowledged PUBLISH, same id, DUP: {resent:?}"
    );
    let (mut publisher, present) = Raw::connect(port, "pub2");
    assert!(present, "pub2's session survived");
    publisher.publish_qos2("cut", b"first", 7, true);
    assert!(matches!(publisher.recv(), Packet::PubRec(ack) if ack.packet_id == 7));
    publisher.send(&Packet::PubRel(PubResponse::new(7)));
    match publisher.recv() {
        Packet::PubComp(comp) => assert_eq!(comp.reason_code, ReasonCode::SUCCESS),
        other => panic!("PUBCOMP expected, got {other:?}"),
    }
    sub.send(&Packet::PubComp(PubResponse::new(first)));
    sub.send(&Packet::PubRec(PubResponse::new(second)));
    assert!(matches!(sub.recv(), Packet::PubRel(rel) if rel.packet_id == second));
    sub.send(&Packet::PubComp(PubResponse::new(second)));
    // "first" is not routed again: the next thing sub2 gets is a fresh message.
    publisher.publish_qos2("cut", b"third", 9, false);
    assert!(matches!(publisher.recv(), Packet::PubRec(_)));
    match sub.recv() {
        Packet::Publish(next) => assert_eq!(&next.payload[..], b"third"),
        other => panic!("PUBLISH expected, got {other:?}"),
    }
}

fn start(dir: &Path, mqtt: u16, dashboard: u16) -> Running {
    start_hookmq(dir, mqtt, dashboard, &[])
}

/// Waits until the API lists `client_id` as not connected.
fn wait_offline(dashboard: u16, client_id: &str) {
    let base = format!("http://127.0.0.1:{dashboard}/api/v5");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let token = login(&base).await;
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let client: serde_json::Value = http
                .get(format!("{base}/clients/{client_id}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("clients answers")
                .json()
                .await
                .expect("json");
            if client["connected"] == false {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{client_id} still connected: {client}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test_case(Down::Killed; "kill -9")]
#[test_case(Down::Stopped; "normal stop")]
fn broker_state_survives(down: Down) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    let mut hookmq = start(dir.path(), mqtt, dashboard);

    // Persistent sessions, subscribed, then offline.
    mosquitto(
        "mosquitto_sub",
        mqtt,
        &[
            "-V", "mqttv5", "-i", "v5sub", "-c", "-x", "3600", "-q", "2", "-t", "q/#", "-E",
        ],
    );
    mosquitto(
        "mosquitto_sub",
        mqtt,
        &[
            "-V", "mqttv311", "-i", "v3sub", "-c", "-q", "2", "-t", "q/#", "-E",
        ],
    );
    mosquitto(
        "mosquitto_pub",
        mqtt,
        &["-q", "1", "-r", "-t", "r/kept", "-m", "retained"],
    );
    let ones: Vec<String> = (0..QUEUED).map(|i| format!("one-{i}")).collect();
    let twos: Vec<String> = (0..QUEUED).map(|i| format!("two-{i}")).collect();
    publish_lines(mqtt, "mqttv5", "1", "q/1", &ones);
    publish_lines(mqtt, "mqttv311", "2", "q/2", &twos);
    let cut = cut_qos2_exchanges(mqtt);
    // A client with a will delayed 4 s (time for the restart) that vanishes without
    // DISCONNECT, once the broker has seen it go (its will then waits with a due time).
    let mut connect = Raw::connect_packet("mortal");
    let mut will = Will {
        topic: "wills/mortal".into(),
        payload: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        ..Will::default()
    };
    will.properties.will_delay_interval = Some(4);
    connect.will = Some(will);
    let (mortal, _) = Raw::connect_with(mqtt, connect);
    drop(mortal);
    wait_offline(dashboard, "mortal");

    match down {
        Down::Killed => {
            hookmq.0.kill().expect("SIGKILL hookmq");
            let _ = hookmq.0.wait();
        }
        Down::Stopped => drop(hookmq),
    }
    let _hookmq = start(dir.path(), mqtt, dashboard);

    let will = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &mqtt.to_string(),
            "-t",
            "wills/#",
            "-C",
            "1",
            "-W",
            "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    let expected: Vec<String> = ones.iter().chain(&twos).cloned().collect();
    for (client, version) in [("v5sub", "mqttv5"), ("v3sub", "mqttv311")] {
        let mut args = vec!["-V", version, "-i", client, "-c", "-q", "2", "-t", "q/#"];
        args.extend(["-C", "20", "-W", "10"]);
        if version == "mqttv5" {
            args.extend(["-x", "3600"]);
        }
        let got = mosquitto("mosquitto_sub", mqtt, &args);
        let got: Vec<String> = got.lines().map(str::to_owned).collect();
        assert_eq!(
            got, expected,
            "{client}'s queue, whole and in order ({down:?})"
        );
    }
    let retained = mosquitto(
        "mosquitto_sub",
        mqtt,
        &["-t", "r/#", "-C", "1", "-W", "5", "-v"],
    );
    assert_eq!(retained.trim(), "r/kept retained");
    finish_qos2_exchanges(mqtt, cut);
    let will = will.wait_with_output().expect("will watcher");
    assert_eq!(
        String::from_utf8_lossy(&will.stdout).trim(),
        "gone",
        "the delayed will, published after the restart"
    );
}
