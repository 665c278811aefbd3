//! The idle health check: while no event flows, a webhook's status says whether its
//! receiver accepts connections (as EMQX's connector check: no request is sent); a disabled
//! webhook is `stopped` and checks nothing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hookmq_webhooks::{WebhookSpec, health::State};
use rumqttc::v5::mqttbytes::QoS;

use crate::support::{Mqtt, PATIENCE, Receiver, Reply, Stack};

fn checked_often(spec: &mut WebhookSpec) {
    spec.events = vec!["message.publish".into()];
    spec.health_check_interval = Duration::from_millis(100);
}

/// Waits until webhook `name`'s status is `state`.
async fn wait_for_state(stack: &Stack, name: &str, state: State) -> hookmq_webhooks::WebhookStatus {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let webhook = stack.engine.get(name).expect("webhook");
        if webhook.status.state == state {
            return webhook;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never {state:?}: {:?}",
            webhook.status
        );
        // Polling the engine, which has no change feed.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_idle_webhook_shows_whether_its_receiver_is_reachable() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    stack.webhook("up", &receiver.url("/"), checked_often).await;
    wait_for_state(&stack, "up", State::Connected).await;
    assert!(receiver.requests().is_empty(), "no request was sent");

    // A port nothing listens on (bound, then let go).
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    stack
        .webhook("down", &format!("http://{address}/"), checked_often)
        .await;
    let down = wait_for_state(&stack, "down", State::Disconnected).await;
    assert!(
        down.status
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("connect")),
        "{:?}",
        down.status
    );
    assert_eq!(
        (down.metrics.matched, down.metrics.failed),
        (0, 0),
        "found out without an event"
    );

    // The receiver comes up: the next event goes at once, and answered, it is connected.
    let back = Receiver::start_at(address).await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "x").await;
    stack
        .wait_metrics("down", "delivered once it is back", |m| m.success == 1)
        .await;
    assert_eq!(back.requests().len(), 1);
    wait_for_state(&stack, "down", State::Connected).await;
}

#[tokio::test]
async fn a_disabled_webhook_is_stopped_and_checks_nothing() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((_connection, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let stack = Stack::start().await;
    stack
        .webhook("off", &format!("http://{address}/"), |spec| {
            checked_often(spec);
            spec.enable = false;
        })
        .await;
    assert_eq!(
        stack.engine.get("off").expect("webhook").status.state,
        State::Stopped
    );
    // Five check intervals: an enabled webhook would have connected five times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a disabled webhook checks nothing"
    );

    stack
        .engine
        .set_enabled("off", true)
        .await
        .expect("enabled");
    wait_for_state(&stack, "off", State::Connected).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // The check's connection may be accepted here a moment after it counted.
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the check never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A circuit opened by failing requests closes once the receiver is reachable and nothing
/// waits to go (the events ended as dead letters): the status does not stay
/// `disconnected` while no event flows.
#[tokio::test]
async fn an_idle_open_circuit_closes_when_the_receiver_is_reachable() {
    let stack = Stack::start().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(503));
    stack
        .webhook("flaky", &receiver.url("/"), |spec| {
            checked_often(spec);
            spec.retry_backoff = Duration::from_millis(10);
            spec.retry_max_backoff = Duration::from_millis(10);
            spec.max_retries = Some(6);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    client.publish("t", QoS::AtLeastOnce, "x").await;
    wait_for_state(&stack, "flaky", State::Disconnected).await;
    stack
        .wait_metrics("flaky", "given up", |m| m.failed == 1)
        .await;
    wait_for_state(&stack, "flaky", State::Connected).await;
}
