//! Rate-limited log lines for what can happen thousands of times a second: refused
//! connections and CONNECTs, protocol errors and dropped deliveries are counted as they
//! happen (each at debug level) and summarised here in at most one line per kind per
//! [`EVERY`], so a flood costs a few lines, never the log.

use std::{sync::Arc, time::Duration};

use crate::handle::{BrokerHandle, StatsSnapshot};

/// How often the counters are looked at.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// Reads one counter of a snapshot.
type Counter = fn(&StatsSnapshot) -> u64;

/// What is summarised: a counter and what its line says.
const KINDS: [(Counter, &str); 7] = [
    (
        |s| s.connections_refused,
        "connections refused at mqtt.max_connections",
    ),
    (
        |s| s.connects_refused,
        "CONNECTs refused (bad credentials, not authorized, bad client id)",
    ),
    (
        |s| s.protocol_errors,
        "connections closed for breaking the MQTT protocol",
    ),
    (
        |s| s.connections_refused_per_address,
        "connections refused at mqtt.max_connections_per_address",
    ),
    (
        |s| s.subscriptions_refused,
        "subscriptions refused at mqtt.max_subscriptions or mqtt.max_topic_levels",
    ),
    (
        |s| s.publishes_refused,
        "PUBLISHes refused at mqtt.max_topic_levels",
    ),
    (
        |s| s.deliveries_dropped,
        "deliveries dropped (queue full, expired, too large)",
    ),
];

/// Logs, every [`EVERY`], how many of each kind happened since the last look, if any.
pub(crate) async fn summarise(broker: BrokerHandle) {
    let shared = Arc::clone(&broker.shared);
    let mut last = broker.stats();
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let now = broker.stats();
        for (count, what) in KINDS {
            let new = count(&now).saturating_sub(count(&last));
            if new > 0 {
                tracing::warn!(
                    count = new,
                    total = count(&now),
                    "{what} in the last {} s (each at debug level)",
                    EVERY.as_secs()
                );
            }
        }
        last = now;
    }
}
