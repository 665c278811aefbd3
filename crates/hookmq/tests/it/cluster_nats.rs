//! Three hookmq nodes on a three-server NATS JetStream cluster (`cluster.replicas = 3`):
//! one NATS server is killed in the middle of a run, and nothing is lost: every webhook
//! event of a cluster-buffered webhook is delivered, in order per client, and messages
//! still cross between the nodes.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    cluster::{Nats, node_at, publish, subscribe},
    cluster_webhooks::{KEY, call, publish_clients, wait_for},
    receiver::{Receiver, check_complete_and_ordered},
};

#[test]
fn a_nats_server_dies_and_nothing_is_lost() {
    const CLIENTS: usize = 10;
    const PER_CLIENT: usize = 30;
    let (ports, mut servers) = Nats::start_three();
    let url = |i: usize| format!("nats://127.0.0.1:{}", ports[i % 3]);
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        ("HOOKMQ_SECRET_KEY", KEY),
        ("HOOKMQ_CLUSTER__REPLICAS", "3"),
    ];
    // Each node lists the three servers, its own first.
    let urls = |i: usize| format!("{},{},{}", url(i), url(i + 1), url(i + 2));
    let (_a, a, a_api) = node_at(&dir.path().join("a"), "a@test", &urls(0), &env);
    let (_b, b, b_api) = node_at(&dir.path().join("b"), "b@test", &urls(1), &env);
    let (_c, c, c_api) = node_at(&dir.path().join("c"), "c@test", &urls(2), &env);
    let receiver = Receiver::start(10);
    let spec = json!({
        "name": "work",
        "url": format!("http://{}/", receiver.address),
        "events": ["message.publish"],
        "topics": ["jobs/#"],
        "buffer": "cluster",
        "sync_before_ack": true,
    });
    let (status, created) = call(&a_api, "POST", "/webhooks", Some(spec));
    assert_eq!(status, 201, "{created}");
    for api in [&b_api, &c_api] {
        wait_for(
            api,
            "/webhooks/work",
            "the webhook reached every node",
            |status, _| status == 200,
        );
    }

    // Half the events before the first server dies (a is connected to it), half after.
    publish_clients(a, 0..CLIENTS / 2, PER_CLIENT);
    drop(servers.remove(0));
    publish_clients(b, CLIENTS / 2..CLIENTS, PER_CLIENT);
    let total = CLIENTS * PER_CLIENT;
    // A partition whose stream lost its leader with the server resumes once JetStream has
    // elected another: seconds here; a CI run on two busy cores once still missed one
    // client's 30 events after a minute (not understood yet), so the wait allows three.
    receiver.wait_within("every event", Duration::from_secs(180), |received| {
        received
            .iter()
            .map(|r| &r.payload)
            .collect::<std::collections::HashSet<_>>()
            .len()
            == total
    });
    check_complete_and_ordered(&receiver.received(), CLIENTS, PER_CLIENT);

    // A message published on a (whose first server is gone) reaches a subscriber on c.
    let (mut subscriber, lines) = subscribe(c, "after/#");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publish(a, "after/probe", "p", "1");
        if lines.recv_timeout(Duration::from_millis(300)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no message crossed after the server died"
        );
    }
    let _ = subscriber.kill();
    let _ = subscriber.wait();
    let _ = (b, c_api);
}
