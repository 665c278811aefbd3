//! Retained messages cluster-wide: a JetStream key-value bucket holds the latest retained
//! message of every topic (key: the topic in base64url; value: the origin node and the
//! message), and every node mirrors it into its own retained store, so a subscriber on any
//! node gets what was retained on any other. The last write of a topic wins.

use base64::Engine as _;
use hookmq_broker::{BrokerHandle, message::Message};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    ClusterError,
    shared::{Followed, SharedMap},
};

/// The value format: this byte, then [`Value`] in postcard.
const FORMAT: u8 = 1;

/// What the bucket keeps for a topic.
#[derive(Debug, Serialize, Deserialize)]
struct Value {
    /// The node that stored it, for people reading the bucket.
    node: String,
    message: Message,
}

/// The bucket's key for `topic`.
fn key(topic: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic)
}

/// The topic of a bucket key.
fn topic(key: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Opens (making it if needed) the bucket of retained messages.
pub(crate) async fn bucket(
    client: async_nats::Client,
    prefix: &str,
    replicas: usize,
) -> Result<SharedMap, ClusterError> {
    SharedMap::open(client, &format!("{prefix}_retained"), replicas).await
}

/// Writes this node's retained messages (and clears) to the bucket, in order.
pub(crate) async fn publish(
    map: SharedMap,
    node: String,
    mut retained: mpsc::Receiver<std::sync::Arc<Message>>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = retained.recv() => message,
        };
        let Some(message) = message else { return };
        let key = key(&message.topic);
        let written = if message.payload.is_empty() {
            map.delete(&key)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            let value = Value {
                node: node.clone(),
                message: Message::clone(&message),
            };
            match postcard::to_extend(&value, vec![FORMAT]) {
                Ok(bytes) => map
                    .put(&key, bytes.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            }
        };
        if let Err(error) = written {
            tracing::warn!(%error, topic = %message.topic, "retained message not shared with the cluster");
        }
    }
}

/// Mirrors the bucket into this node's retained store: what is there at start, then every
/// change.
pub(crate) async fn mirror(map: SharedMap, broker: BrokerHandle, stop: CancellationToken) {
    let mut changes = map.follow(1024, stop);
    while let Some(followed) = changes.recv().await {
        if let Followed::Change { key, value, .. } = followed {
            apply(&broker, &key, value.as_deref());
        }
    }
}

/// One change of the bucket, here.
fn apply(broker: &BrokerHandle, key: &str, value: Option<&[u8]>) {
    let Some(topic) = topic(key) else {
        return;
    };
    let Some(value) = value else {
        broker.clear_retained_from_peer(&topic);
        return;
    };
    let Some((&FORMAT, bytes)) = value.split_first() else {
        return;
    };
    // This node's own writes come back too: applying them keeps every node on the bucket's
    // last write when two nodes retain on one topic at once (the broker skips a message it
    // holds already).
    match postcard::from_bytes::<Value>(bytes) {
        Ok(value) => broker.retain_from_peer(value.message),
        Err(error) => tracing::debug!(%error, %topic, "retained message unreadable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_give_their_topic_back() {
        for t in ["a/b", "$SYS/x", "/", "ü/ /*/#", "v1.2/+"] {
            let k = key(t);
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{k}"
            );
            assert_eq!(topic(&k).as_deref(), Some(t));
        }
    }
}
