//! Several URLs per webhook (`urls`, `url_strategy`): round robin shares the clients among
//! the receivers, each client's events in order on one of them; failover moves every lane
//! to the next receiver while the first fails, and back once it answers, losing nothing.
//! Each receiver shows its own status and counters.

use std::{collections::HashMap, time::Duration};

use hookmq_webhooks::{WebhookStatus, health::State, spec::UrlStrategy};
use rumqttc::v5::mqttbytes::QoS;

use crate::support::{Mqtt, PATIENCE, Receiver, Stack, assert_balanced};

/// Waits until `check` holds for webhook `name` as listed (polled: the engine has no change
/// feed), and returns it.
async fn wait_for(
    stack: &Stack,
    name: &str,
    what: &str,
    check: impl Fn(&WebhookStatus) -> bool,
) -> WebhookStatus {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let webhook = stack.engine.get(name).expect("webhook");
        if check(&webhook) {
            return webhook;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            webhook.receivers
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `(client, n)` of each request a receiver took (payloads are `n`), in arrival order.
fn sent(receiver: &Receiver) -> Vec<(String, u64)> {
    receiver
        .requests()
        .iter()
        .filter(|request| request.status == 200)
        .map(|request| {
            let body = request.json();
            let n = body["payload"].as_str().and_then(|p| p.parse().ok());
            (
                body["clientid"].as_str().unwrap_or_default().to_owned(),
                n.expect("numbered payload"),
            )
        })
        .collect()
}

#[tokio::test]
async fn round_robin_shares_the_clients_each_in_order_on_one_receiver() {
    let stack = Stack::start().await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    stack
        .webhook("rr", &a.url("/in"), |spec| {
            spec.urls = vec![b.url("/in")];
            spec.events = vec!["message.publish".into()];
            spec.max_inflight = 4;
        })
        .await;
    let clients = 12;
    let each = 20;
    for c in 0..clients {
        let mut client = Mqtt::connect(stack.mqtt, &format!("c{c}")).await;
        for n in 0..each {
            client.publish("t", QoS::AtLeastOnce, n.to_string()).await;
        }
    }
    stack
        .wait_metrics("rr", "all delivered", |m| m.success == clients * each)
        .await;

    let (on_a, on_b) = (sent(&a), sent(&b));
    assert!(!on_a.is_empty() && !on_b.is_empty(), "both receivers used");
    assert_eq!((on_a.len() + on_b.len()) as u64, clients * each);
    let mut seen: HashMap<String, (usize, Vec<u64>)> = HashMap::new();
    for (which, list) in [(0, &on_a), (1, &on_b)] {
        for (client, n) in list {
            let entry = seen.entry(client.clone()).or_insert((which, Vec::new()));
            assert_eq!(entry.0, which, "{client}'s events went to one receiver");
            entry.1.push(*n);
        }
    }
    for (client, (_, numbers)) in &seen {
        assert_eq!(*numbers, (0..each).collect::<Vec<_>>(), "{client} in order");
    }

    let webhook = stack.engine.get("rr").expect("webhook");
    assert_balanced(&webhook.metrics);
    let shown = &webhook.receivers;
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0].url, a.url("/in"));
    assert_eq!(shown[1].url, b.url("/in"));
    assert_eq!(
        (shown[0].delivered, shown[1].delivered),
        (on_a.len() as u64, on_b.len() as u64)
    );
    assert_eq!(
        (shown[0].lanes, shown[1].lanes),
        (2, 2),
        "lanes 0, 2 and 1, 3"
    );
    assert!(shown.iter().all(|r| r.status.state == State::Connected));
}

/// Waits until alarm `name` is active (`true`) or not.
async fn wait_for_alarm(stack: &Stack, name: &str, active: bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stack
        .handle
        .alarms(true)
        .iter()
        .any(|alarm| alarm.name == name)
        != active
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never {active}"
        );
        // The alarm watcher looks once a second; polling it, as it has no change feed.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failover_moves_to_the_next_receiver_while_the_first_is_down_and_back() {
    let stack = Stack::start().await;
    // The first: a port nothing listens on (bound, then let go), until it comes up below.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let second = Receiver::start().await;
    stack
        .webhook("fo", &format!("http://{address}/"), |spec| {
            spec.urls = vec![second.url("/")];
            spec.url_strategy = UrlStrategy::Failover;
            spec.events = vec!["message.publish".into()];
            spec.retry_backoff = Duration::from_millis(10);
            spec.retry_max_backoff = Duration::from_millis(10);
            spec.health_check_interval = Duration::from_millis(300);
        })
        .await;
    let mut client = Mqtt::connect(stack.mqtt, "c").await;
    let count = 50;
    for n in 0..count {
        client.publish("t", QoS::AtLeastOnce, n.to_string()).await;
    }
    let webhook = wait_for(&stack, "fo", "all delivered", |w| {
        w.metrics.success == count
    })
    .await;
    assert_balanced(&webhook.metrics);
    assert_eq!(
        (webhook.metrics.failed, webhook.metrics.dropped),
        (0, 0),
        "nothing lost to the receiver that is down"
    );
    let numbers: Vec<u64> = sent(&second).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        numbers,
        (0..count).collect::<Vec<_>>(),
        "in order, once each"
    );
    let [down, up] = webhook.receivers.as_slice() else {
        panic!("two receivers: {:?}", webhook.receivers);
    };
    assert_eq!(
        (down.status.state, up.status.state),
        (State::Disconnected, State::Connected)
    );
    // Every lane sits on one receiver (which, for an idle lane, depends on when it last
    // looked: it turns home when a probe of its home is due).
    assert_eq!(down.lanes + up.lanes, webhook.spec.max_inflight);
    assert_eq!(down.delivered, 0);
    assert!(down.failed_requests >= 5, "{down:?}");
    assert_eq!(webhook.status.state, State::Connected, "a receiver answers");
    wait_for_alarm(&stack, "webhook_receiver_down:fo:url", true).await;
    assert!(
        !stack
            .handle
            .alarms(true)
            .iter()
            .any(|alarm| alarm.name == "action:http:fo"),
        "the webhook still delivers"
    );

    // The first comes up: once its circuit closes, the client's events go to it again.
    let first = Receiver::start_at(address).await;
    let mut n = count;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while sent(&first).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back on the first"
        );
        client.publish("t", QoS::AtLeastOnce, n.to_string()).await;
        n += 1;
        stack
            .wait_metrics("fo", "the new event delivered", |m| m.success == n)
            .await;
        // An event every tenth of the health-check interval: the probe is due within ten.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let back = stack.engine.get("fo").expect("webhook");
    assert_eq!(back.receivers[0].status.state, State::Connected);
    assert_eq!(back.metrics.failed, 0);
    let on_first = sent(&first).len() as u64;
    let numbers: Vec<u64> = sent(&second)
        .into_iter()
        .chain(sent(&first))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "in order, once each");
    assert_eq!(on_first, 1, "the last one");
    wait_for_alarm(&stack, "webhook_receiver_down:fo:url", false).await;
}
