//! The lanes' own HTTP/1.1 connections, seen from a bare TCP receiver: requests in origin
//! form with a `Host` header, a connection kept across requests, pipelined requests, and a
//! connection the receiver closes between requests reopened without costing a retry.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use rumqttc::v5::mqttbytes::QoS;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

use crate::support::{Mqtt, Stack, assert_balanced, wire::read_request};

/// A receiver written against raw TCP, so what goes over the wire is what the test sees.
struct BareReceiver {
    address: SocketAddr,
    /// Connections that carried a request (the health check's carry none).
    connections: Arc<AtomicUsize>,
    /// Each request: its head (request line and headers), then its body.
    heads: Arc<Mutex<Vec<String>>>,
}

impl BareReceiver {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (Arc::clone(&connections), Arc::clone(&heads));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(
                    socket,
                    Arc::clone(&seen),
                    behaviour,
                    Arc::clone(&count),
                ));
            }
        });
        Self {
            address,
            connections,
            heads,
        }
    }

    async fn wait_for(&self, count: usize) -> Vec<String> {
        for _ in 0..500 {
            if self.heads.lock().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.heads.lock().clone()
    }
}

/// How the bare receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Each request at once, keeping the connection.
    KeepAlive,
    /// Close the connection after each answer, without saying so (as a server whose
    /// keep-alive timeout expired does).
    CloseAfterEach,
    /// Answer a connection's first request at once, then hold the answers until this many
    /// more requests have arrived on it: only a client that pipelines gets them.
    HoldAfterFirst(usize),
    /// On the first connection, as `HoldAfterFirst(4)` with a 503 for the first held
    /// request; later connections as `KeepAlive`.
    RetryInPipeline,
}

/// Serves one connection; `connections` counts it once its first request came (the
/// `RetryInPipeline` behaviour is for the first such connection only).
async fn serve(
    mut socket: TcpStream,
    heads: Arc<Mutex<Vec<String>>>,
    mut behaviour: Behaviour,
    connections: Arc<AtomicUsize>,
) {
    let mut buffer = Vec::new();
    let mut served = 0;
    let mut held = 0;
    loop {
        let Some((head, body)) = read_request(&mut socket, &mut buffer).await else {
            return;
        };
        // Counted at its first request, whatever the behaviour.
        if served == 0
            && connections.fetch_add(1, Ordering::SeqCst) > 0
            && behaviour == Behaviour::RetryInPipeline
        {
            behaviour = Behaviour::KeepAlive;
        }
        let body = String::from_utf8_lossy(&body);
        heads.lock().push(head + &body);
        served += 1;
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let retry = b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy";
        let answers = match behaviour {
            Behaviour::HoldAfterFirst(hold) if served > 1 => {
                held += 1;
                if held < hold {
                    continue;
                }
                answer.repeat(std::mem::take(&mut held))
            }
            Behaviour::RetryInPipeline if served > 1 => {
                held += 1;
                if held < 4 {
                    continue;
                }
                [&retry[..], &answer.repeat(3)].concat()
            }
            _ => answer.to_vec(),
        };
        if socket.write_all(&answers).await.is_err() || behaviour == Behaviour::CloseAfterEach {
            return;
        }
    }
}

#[tokio::test]
async fn a_lane_keeps_its_connection_and_sends_origin_form_with_host() {
    let stack = Stack::start().await;
    let receiver = BareReceiver::start(Behaviour::KeepAlive).await;
    let url = format!(
        "http://{}/hook/${{clientid}}?kind=${{event}}",
        receiver.address
    );
    stack
        .webhook("keep", &url, |s| s.events = vec!["message.publish".into()])
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c1").await;
    for i in 0..5 {
        client.publish("t", QoS::AtLeastOnce, format!("{i}")).await;
    }
    let heads = receiver.wait_for(5).await;
    assert_eq!(heads.len(), 5);
    for head in &heads {
        assert!(
            head.starts_with("POST /hook/c1?kind=message.publish HTTP/1.1\r\n"),
            "{head}"
        );
        let host = format!("host: {}\r\n", receiver.address);
        assert!(head.to_ascii_lowercase().contains(&host), "{head}");
    }
    assert_eq!(
        receiver.connections.load(Ordering::SeqCst),
        1,
        "one client's events share one kept-alive connection"
    );
}

#[tokio::test]
async fn a_connection_closed_between_requests_is_reopened_without_a_retry() {
    let stack = Stack::start().await;
    let receiver = BareReceiver::start(Behaviour::CloseAfterEach).await;
    let url = format!("http://{}/", receiver.address);
    stack
        .webhook("closing", &url, |s| {
            s.events = vec!["message.publish".into()];
            // A retry would wait this long: the test would see it.
            s.retry_backoff = Duration::from_secs(30);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c1").await;
    for i in 0..4 {
        client.publish("t", QoS::AtLeastOnce, format!("{i}")).await;
        // Sometimes the close is noticed before the next request, sometimes only when it
        // is sent: both must end the same way.
        tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 0 } else { 50 })).await;
    }
    stack
        .wait_metrics("closing", "4 successes", |m| m.success == 4)
        .await;
    let metrics = stack.engine.get("closing").expect("webhook").metrics;
    assert_eq!((metrics.retried, metrics.failed), (0, 0), "{metrics:#?}");
    assert_balanced(&metrics);
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_lane_pipelines_requests_on_its_connection() {
    let stack = Stack::start().await;
    // After the first answer, answers come only once 4 more requests are in: a lane that
    // waited for each answer before sending the next would never get them.
    let receiver = BareReceiver::start(Behaviour::HoldAfterFirst(4)).await;
    let url = format!("http://{}/", receiver.address);
    stack
        .webhook("pipelined", &url, |s| {
            s.events = vec!["message.publish".into()];
            s.pipelining = 8;
        })
        .await;
    let metrics = first_then_four(&stack, "pipelined").await;
    assert_eq!((metrics.retried, metrics.failed), (0, 0), "{metrics:#?}");
    assert_balanced(&metrics);
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_retry_in_the_pipeline_sends_what_followed_again_in_order() {
    let stack = Stack::start().await;
    // The second request is answered 503 after the three behind it were sent (and accepted).
    let receiver = BareReceiver::start(Behaviour::RetryInPipeline).await;
    let url = format!("http://{}/", receiver.address);
    stack
        .webhook("go-back", &url, |s| {
            s.events = vec!["message.publish".into()];
            s.retry_backoff = Duration::from_millis(10);
        })
        .await;
    let metrics = first_then_four(&stack, "go-back").await;
    assert_eq!((metrics.retried, metrics.failed), (1, 0), "{metrics:#?}");
    assert_balanced(&metrics);
    let payloads: Vec<String> = receiver
        .wait_for(9)
        .await
        .iter()
        .map(|request| {
            let body = request.split("\r\n\r\n").nth(1).unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
            json["payload"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    // The 503 for "0" sends "0" and the three after it again, in order, on a new connection.
    assert_eq!(
        payloads,
        ["first", "0", "1", "2", "3", "0", "1", "2", "3"],
        "{payloads:?}"
    );
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 2);
}

/// Publishes "first", waits for its answer, then publishes "0" to "3" (so the lane has a
/// connection that has answered, and four events to put on it); returns the metrics once all
/// five succeeded.
async fn first_then_four(stack: &Stack, name: &str) -> hookmq_webhooks::MetricsSnapshot {
    let mut client = Mqtt::connect(stack.mqtt, "c1").await;
    client.publish("t", QoS::AtLeastOnce, "first").await;
    stack
        .wait_metrics(name, "the first answer", |m| m.success == 1)
        .await;
    for i in 0..4 {
        client.publish("t", QoS::AtLeastOnce, format!("{i}")).await;
    }
    stack
        .wait_metrics(name, "5 successes", |m| m.success == 5)
        .await;
    stack.engine.get(name).expect("webhook").metrics
}
