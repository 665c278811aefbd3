//! A lane held back by an open circuit with pipelined requests already on its connection:
//! the answers still owed on that connection are never read as answers to what the lane
//! sends later (the connection goes with the requests it carried).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hookmq_webhooks::{health::State, queue::lane_of};
use parking_lot::Mutex;
use rumqttc::v5::mqttbytes::QoS;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

use crate::support::{Mqtt, PATIENCE, Stack, wire::read_request};

/// A receiver over raw TCP, answering in order on each connection: `slow…` payload `1` is
/// held until `released`, `slow…` payload `3` is always 503, `bad…` is 503 until
/// `released`, the rest 200.
struct Scripted {
    released: tokio::sync::watch::Sender<bool>,
    /// `(client, payload, status)` of each answer.
    answered: Mutex<Vec<(String, String, u16)>>,
}

impl Scripted {
    async fn start() -> (SocketAddr, Arc<Self>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let script = Arc::new(Self {
            released: tokio::sync::watch::Sender::new(false),
            answered: Mutex::default(),
        });
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(Arc::clone(&shared).serve(stream));
            }
        });
        (address, script)
    }

    async fn serve(self: Arc<Self>, mut stream: TcpStream) {
        let mut input = Vec::new();
        while let Some((_, body)) = read_request(&mut stream, &mut input).await {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let client = json["clientid"].as_str().unwrap_or_default().to_owned();
            let payload = json["payload"].as_str().unwrap_or_default().to_owned();
            let slow = client.starts_with("slow");
            if slow && payload == "1" {
                // Held: the receiver is slow on this one.
                let _ = self
                    .released
                    .subscribe()
                    .wait_for(|released| *released)
                    .await;
            }
            let failing =
                (slow && payload == "3") || (client.starts_with("bad") && !*self.released.borrow());
            let status = if failing { 503 } else { 200 };
            self.answered.lock().push((client, payload, status));
            let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn answers(&self, client: &str, payload: &str) -> Vec<u16> {
        self.answered
            .lock()
            .iter()
            .filter(|(c, p, _)| c.starts_with(client) && p == payload)
            .map(|(_, _, status)| *status)
            .collect()
    }
}

/// Waits until `check` holds (polled: the receiver and the engine have no change feed).
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn answers_owed_on_a_connection_held_back_by_the_circuit_are_not_misread() {
    let stack = Stack::start().await;
    let (address, receiver) = Scripted::start().await;
    let lanes = 4;
    let client_on = |prefix: &str, lane: usize| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|id| lane_of(id, lanes) == lane)
            .expect("an id on that lane")
    };
    stack
        .webhook("w", &format!("http://{address}/"), |spec| {
            spec.events = vec!["message.publish".into()];
            spec.max_inflight = lanes;
            spec.retry_backoff = Duration::from_millis(10);
            spec.retry_max_backoff = Duration::from_millis(10);
            spec.health_check_interval = Duration::from_secs(1);
        })
        .await;
    // Lane 0's connection answers once (so it pipelines), then carries 1 (held) and 2.
    let mut slow = Mqtt::connect(stack.mqtt, &client_on("slow", 0)).await;
    slow.publish("t", QoS::AtLeastOnce, "0").await;
    until("0 answered", || !receiver.answers("slow", "0").is_empty()).await;
    slow.publish("t", QoS::AtLeastOnce, "1").await;
    slow.publish("t", QoS::AtLeastOnce, "2").await;
    // Lane 1 fails five times in a row: the circuit opens while 1 and 2 are on lane 0's
    // connection, unanswered.
    let mut bad = Mqtt::connect(stack.mqtt, &client_on("bad", 1)).await;
    bad.publish("t", QoS::AtLeastOnce, "0").await;
    until("circuit open", || {
        stack.engine.get("w").expect("webhook").status.state == State::Disconnected
    })
    .await;
    // 3 meets the open circuit on lane 0, which puts its window back; then the receiver
    // answers what it held.
    slow.publish("t", QoS::AtLeastOnce, "3").await;
    // Long enough for lane 0 to take 3 and meet the circuit (it looks every millisecond).
    tokio::time::sleep(Duration::from_millis(200)).await;
    receiver.released.send_replace(true);

    // 0, 1, 2 and bad's 0 are delivered; 3 is answered 503 each time, so it is retried,
    // never delivered.
    until("3 retried", || receiver.answers("slow", "3").len() >= 3).await;
    let metrics = stack.engine.get("w").expect("webhook").metrics;
    assert!(
        receiver
            .answers("slow", "3")
            .iter()
            .all(|status| *status == 503),
        "the receiver refuses 3"
    );
    assert_eq!(
        metrics.success, 4,
        "3 is never counted delivered: {metrics:#?}"
    );
}
