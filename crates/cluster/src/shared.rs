//! State every node sees: a JetStream key-value bucket per kind of thing (retained
//! messages, webhooks), holding the latest value of each key.
//!
//! A layer that shares something writes through [`SharedMap`] and follows it: every node,
//! the writer included, hears every change, history first, in the bucket's order
//! (revisions). A follower that loses NATS starts again from the history when it is back.
//!
//! async-nats's `create_key_value` reads account fields nats-server 2.9 does not send, so
//! a bucket's stream is made directly (`KV_<bucket>`, as the key-value layer defines it).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ClusterError;

/// Tries of a write past the first that failed.
const PUT_TRIES: u32 = 2;

/// Opens the bucket `name` (making it if needed), one value kept per key, each for
/// `max_age` at most (zero: for ever), on `replicas` NATS servers.
pub(crate) async fn open_bucket(
    client: async_nats::Client,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, async_nats::Error> {
    let js = jetstream::new(client);
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        max_age,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(name).await?)
}

/// A map of keys to bytes that every node of the cluster shares. Cheap to clone.
#[derive(Clone)]
pub struct SharedMap {
    name: String,
    store: kv::Store,
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMap")
            .field("name", &self.name)
            .finish()
    }
}

/// What a follower hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// `key` now holds `value` (`None`: deleted, or empty), as of `revision` (the bucket's
    /// order).
    Change {
        /// The key.
        key: String,
        /// Its value, or `None` once deleted.
        value: Option<Bytes>,
        /// Its position in the bucket's order of changes.
        revision: u64,
    },
    /// Every change written before the follower (re)started has been heard; later ones
    /// follow as they happen. Heard again after each reconnection.
    CaughtUp,
}

impl SharedMap {
    pub(crate) async fn open(
        client: async_nats::Client,
        name: &str,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let store = open_bucket(client, name, Duration::ZERO, replicas)
            .await
            .map_err(|e| ClusterError::Nats(format!("bucket {name}: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            store,
        })
    }

    /// Sets `key` to `value` for every node; returns the change's revision.
    ///
    /// # Errors
    /// NATS did not take it (unreachable, or the bucket is full).
    pub async fn put(&self, key: &str, value: Bytes) -> Result<u64, ClusterError> {
        // A bucket just made may not be known to every NATS server yet: a few tries, a
        // moment apart (other failures, such as NATS away, are answered at once).
        let mut tries = 0;
        loop {
            match self.store.put(key, value.clone()).await {
                Ok(revision) => return Ok(revision),
                Err(error)
                    if tries < PUT_TRIES && error.to_string().contains("no stream found") =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(error) => return Err(self.error(key, error)),
            }
        }
    }

    /// Deletes `key` for every node; returns the change's revision. (Written as an empty
    /// value, which followers hear as a deletion: a key-value delete does not say its
    /// revision.)
    ///
    /// # Errors
    /// NATS did not take it.
    pub async fn delete(&self, key: &str) -> Result<u64, ClusterError> {
        self.put(key, Bytes::new()).await
    }

    fn error(&self, key: &str, error: impl std::fmt::Display) -> ClusterError {
        ClusterError::Nats(format!("{}: {key}: {error}", self.name))
    }

    /// Every change, history first, on a channel of `capacity` (the follower waits for
    /// room: nothing is skipped), until `stop`. A watch that ends (NATS gone) starts again
    /// from the history a second later.
    #[must_use]
    pub fn follow(&self, capacity: usize, stop: CancellationToken) -> mpsc::Receiver<Followed> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        tokio::spawn(follow(self.clone(), sender, stop));
        receiver
    }
}

async fn follow(map: SharedMap, changes: mpsc::Sender<Followed>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            followed = follow_once(&map, &changes) => if followed.is_err() { return },
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One watch of the bucket, until it ends. `Err` when the receiver is gone.
async fn follow_once(map: &SharedMap, changes: &mpsc::Sender<Followed>) -> Result<(), ()> {
    // The last change written before the watch: history is heard once it has come (a
    // bucket keeps the newest message of every key, so that one is always delivered).
    // Asked afresh: the store's own status is what the stream said when it was opened.
    let last = match map.store.stream.get_info().await {
        Ok(info) if info.state.messages == 0 => 0,
        Ok(info) => info.state.last_sequence,
        Err(error) => {
            tracing::debug!(%error, bucket = %map.name, "cannot read the shared bucket");
            return Ok(());
        }
    };
    let mut watch = match map.store.watch_with_history(">").await {
        Ok(watch) => watch,
        Err(error) => {
            tracing::debug!(%error, bucket = %map.name, "cannot watch the shared bucket");
            return Ok(());
        }
    };
    let mut caught_up = last == 0;
    if caught_up {
        changes.send(Followed::CaughtUp).await.map_err(drop)?;
    }
    while let Some(entry) = watch.next().await {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(%error, bucket = %map.name, "shared bucket watch failed");
                return Ok(());
            }
        };
        let value = (entry.operation == kv::Operation::Put && !entry.value.is_empty())
            .then_some(entry.value);
        let revision = entry.revision;
        let change = Followed::Change {
            key: entry.key,
            value,
            revision,
        };
        changes.send(change).await.map_err(drop)?;
        if !caught_up && revision >= last {
            caught_up = true;
            changes.send(Followed::CaughtUp).await.map_err(drop)?;
        }
    }
    Ok(())
}
