//! Clients we did not write: mosquitto_pub/sub, rumqttc (3.1.1 and 5) and paho-mqtt (3.1).

use std::time::Duration;

use crate::support::{TestBroker, run_command};

#[tokio::test]
async fn mosquitto_pub_produces_the_seed_sequence() {
    let broker = TestBroker::start().await;
    let port = broker.tcp.port().to_string();
    run_command(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            "mqttv5",
            "-i",
            "emqx_c",
            "-t",
            "t/1",
            "-m",
            r#"{ "msg": "Hello Webhook" }"#,
        ],
    )
    .await;
    broker
        .events
        .wait_for("emqx_c", "client.disconnected(normal)")
        .await;
    assert_eq!(
        broker.events.names("emqx_c"),
        [
            "client.check_authn_complete(success)",
            "client.connected",
            "client.connack(success)",
            "client.check_authz_complete(publish:allow)",
            "message.publish",
            "message.dropped(no_subscribers)",
            "client.disconnected(normal)",
        ]
    );
}

#[tokio::test]
async fn mosquitto_sub_receives_from_mosquitto_pub() {
    let broker = TestBroker::start().await;
    let port = broker.tcp.port().to_string();
    let count = |description: &'static str| {
        let events = broker.events.clone();
        move || {
            events
                .names("msub")
                .iter()
                .filter(|n| *n == description)
                .count()
        }
    };
    for (round, (version, qos)) in [("mqttv311", "1"), ("mqttv5", "2"), ("mqttv31", "1")]
        .into_iter()
        .enumerate()
    {
        let sub = tokio::process::Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                version,
                "-q",
                qos,
                "-t",
                "m/#",
                "-C",
                "1",
                "-W",
                "5",
                "-i",
                "msub",
            ])
            .output();
        let sub = tokio::spawn(sub);
        let subscribed = count("session.subscribed");
        broker
            .events
            .wait_until("the subscription", |_| subscribed() == round + 1)
            .await;
        run_command(
            "mosquitto_pub",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                version,
                "-q",
                qos,
                "-t",
                "m/x",
                "-m",
                version,
            ],
        )
        .await;
        let output = sub.await.expect("join").expect("mosquitto_sub runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), version);
        let disconnected = count("client.disconnected(normal)");
        broker
            .events
            .wait_until("the disconnect", |_| disconnected() == round + 1)
            .await;
    }
}

#[tokio::test]
async fn rumqttc_v311_round_trip() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = TestBroker::start().await;
    let mut options = MqttOptions::new("rumqttc-v4", "127.0.0.1", broker.tcp.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .subscribe("r/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    client
        .publish("r/1", QoS::AtLeastOnce, false, "from rumqttc")
        .await
        .expect("publish");
    let received = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("poll") {
                return p;
            }
        }
    })
    .await
    .expect("message in time");
    assert_eq!(&received.payload[..], b"from rumqttc");
    broker.events.wait_for("rumqttc-v4", "message.acked").await;
}

#[tokio::test]
async fn rumqttc_v5_round_trip() {
    use rumqttc::v5::{AsyncClient, Event, MqttOptions, mqttbytes::QoS, mqttbytes::v5::Packet};
    let broker = TestBroker::start().await;
    let mut options = MqttOptions::new("rumqttc-v5", "127.0.0.1", broker.tcp.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .subscribe("r5/#", QoS::ExactlyOnce)
        .await
        .expect("subscribe");
    client
        .publish("r5/1", QoS::ExactlyOnce, false, "five")
        .await
        .expect("publish");
    let received = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("poll") {
                return p;
            }
        }
    })
    .await
    .expect("message in time");
    assert_eq!(&received.payload[..], b"five");
    assert_eq!(received.qos, QoS::ExactlyOnce);
}

#[tokio::test]
async fn paho_mqtt_v31_client() {
    let broker = TestBroker::start().await;
    let script = r#"
import sys, threading, paho.mqtt.client as mqtt
port = int(sys.argv[1])
got = threading.Event()
def on_message(c, u, m):
    print(m.payload.decode()); got.set()
sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-sub", protocol=mqtt.MQTTv31)
sub.on_message = on_message
sub.connect("127.0.0.1", port)
sub.subscribe("p31/#", qos=1)
sub.loop_start()
import time; time.sleep(0.3)
pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-pub", protocol=mqtt.MQTTv31)
pub.connect("127.0.0.1", port)
pub.loop_start()
pub.publish("p31/x", "hello 3.1", qos=1).wait_for_publish(5)
ok = got.wait(5)
pub.disconnect(); sub.disconnect()
sys.exit(0 if ok else 1)
"#;
    let port = broker.tcp.port().to_string();
    let output = run_command("python3", &["-c", script, &port]).await;
    assert_eq!(output.trim(), "hello 3.1");
    let connected = broker.events.of("paho-pub");
    let first = connected.iter().find_map(|e| match &e.data {
        hookmq_broker::hooks::EventData::ClientConnected { client } => Some(client.protocol),
        _ => None,
    });
    assert_eq!(first, Some(hookmq_codec::ProtocolVersion::V3_1));
}

/// A live subscriber a little slower than its publisher gets a burst whole: 20,000 QoS 0
/// lines from `mosquitto_pub -l` all reach `mosquitto_sub`, in order, with nothing dropped
/// (the queue of a connected session is bounded by bytes, not by `max_queue_len`).
#[tokio::test]
async fn a_qos0_burst_reaches_a_live_subscriber_whole() {
    use tokio::io::AsyncWriteExt;

    const LINES: usize = 20_000;
    let broker = TestBroker::start().await;
    let port = broker.tcp.port().to_string();
    let count = LINES.to_string();
    let sub = tokio::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "burst",
            "-C",
            &count,
            "-W",
            "30",
            "-i",
            "burst-sub",
        ])
        .output();
    let sub = tokio::spawn(sub);
    broker
        .events
        .wait_for("burst-sub", "session.subscribed")
        .await;
    let mut publisher = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-t", "burst", "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub starts");
    let lines: String = (0..LINES).map(|n| format!("line-{n}\n")).collect();
    let mut stdin = publisher.stdin.take().expect("stdin");
    stdin
        .write_all(lines.as_bytes())
        .await
        .expect("lines written");
    drop(stdin);
    assert!(
        publisher
            .wait()
            .await
            .expect("mosquitto_pub ends")
            .success()
    );
    let output = sub.await.expect("join").expect("mosquitto_sub runs");
    let received = String::from_utf8_lossy(&output.stdout);
    let received: Vec<&str> = received.lines().collect();
    assert_eq!(
        (received.len(), broker.handle.stats().deliveries_dropped),
        (LINES, 0),
        "mosquitto_sub: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(n, line)| *line == format!("line-{n}")),
        "out of order"
    );
}
