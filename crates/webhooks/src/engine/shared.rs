//! Webhooks cluster-wide: a webhook created, changed or deleted through any node's API is
//! written to the cluster's shared map `<prefix>_webhooks` (key: its name; value: its spec,
//! secrets sealed) before it runs there, and every node follows the map and applies what
//! other nodes wrote. The local files stay each node's copy, read at start.
//!
//! Revisions order the changes: a node remembers, per name, the revision it last wrote or
//! applied, and skips what it hears at or below it (its own writes coming back, or an older
//! change arriving after a newer one it wrote).
//!
//! Webhooks from a node's configuration file belong to that node: they are not shared, and
//! changes heard under their names are ignored there. A version built for a change that is
//! then abandoned closes the cluster queue it started (`Unstarted`).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use hookmq_cluster::{ClusterHandle, Followed, SharedMap};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::{EngineError, Origin, WebhookEngine};
use crate::{spec::WebhookSpec, webhook::Webhook};

/// How long joining waits to have heard the cluster's webhooks.
const CATCH_UP: Duration = Duration::from_secs(10);

/// The engine's side of the shared map.
pub(super) struct Sharing {
    pub(super) map: SharedMap,
    /// The latest revision written or applied here, by webhook name.
    revisions: Mutex<HashMap<String, u64>>,
}

impl Sharing {
    /// Whether a change at `revision` is older than what this node has for `name`.
    pub(super) fn is_stale(&self, name: &str, revision: u64) -> bool {
        self.revisions
            .lock()
            .get(name)
            .is_some_and(|&seen| revision <= seen)
    }

    /// `name` is at `revision` here.
    pub(super) fn record(&self, name: &str, revision: u64) {
        let mut revisions = self.revisions.lock();
        let seen = revisions.entry(name.to_owned()).or_default();
        *seen = (*seen).max(revision);
    }
}

impl WebhookEngine {
    /// Writes a change made through this node's API to the cluster (`spec`, or `None` for a
    /// deletion), or records the revision of one heard from it. A single node has nothing
    /// to do.
    pub(super) async fn share_change(
        &self,
        name: &str,
        origin: Origin,
        spec: Option<&WebhookSpec>,
    ) -> Result<(), EngineError> {
        let Some(sharing) = self.inner.sharing.get() else {
            return Ok(());
        };
        match origin {
            Origin::Local => {}
            Origin::Peer(revision) => sharing.record(name, revision),
            Origin::Api => {
                let unavailable =
                    |e: hookmq_cluster::ClusterError| EngineError::Unavailable(e.to_string());
                match spec {
                    Some(spec) => {
                        let bytes = self.inner.files.to_shared(spec).map_err(|e| {
                            EngineError::Storage(format!("sealing webhook {name}: {e}"))
                        })?;
                        let revision = sharing
                            .map
                            .put(name, bytes.into())
                            .await
                            .map_err(unavailable)?;
                        sharing.record(name, revision);
                    }
                    None => {
                        let revision = sharing.map.delete(name).await.map_err(unavailable)?;
                        sharing.record(name, revision);
                    }
                }
            }
        }
        Ok(())
    }

    /// Shares this node's webhooks with the cluster and follows the other nodes' changes.
    /// Waits (at most 10 s) until the cluster's webhooks run here; saved webhooks the
    /// cluster does not know yet are shared.
    ///
    /// # Errors
    /// [`EngineError::Unavailable`] when the shared map cannot be opened.
    pub async fn share(&self, cluster: &ClusterHandle) -> Result<(), EngineError> {
        let map = cluster
            .shared_map("webhooks")
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let sharing = Sharing {
            map: map.clone(),
            revisions: Mutex::new(HashMap::new()),
        };
        if self.inner.sharing.set(sharing).is_err() {
            return Ok(());
        }
        let changes = map.follow(64, self.inner.stop.clone());
        let (caught_up, first) = oneshot::channel();
        tokio::spawn(follow(self.clone(), changes, caught_up));
        if tokio::time::timeout(CATCH_UP, first).await.is_err() {
            tracing::warn!(
                "the cluster's webhooks were not all heard within 10 s: they follow as they come"
            );
        }
        Ok(())
    }

    /// Applies what the cluster's map says of webhook `name` at `revision`.
    async fn apply_shared(&self, name: &str, value: Option<&[u8]>, revision: u64) {
        if self.inner.configured.lock().contains(name) {
            tracing::debug!(webhook = %name, "cluster change ignored: configured in this node's file");
            return;
        }
        let applied = match value {
            None => match self.remove_as(name, Origin::Peer(revision)).await {
                Err(EngineError::NotFound(_)) => Ok(()),
                other => other,
            },
            Some(bytes) => match self.inner.files.from_shared(name, bytes) {
                Ok(spec) => {
                    self.change(name, Origin::Peer(revision), |_| Ok(spec))
                        .await
                }
                Err(error) => Err(EngineError::Storage(error.to_string())),
            },
        };
        if let Err(error) = applied {
            tracing::warn!(webhook = %name, %error, "a webhook change from the cluster does not apply here");
        }
    }

    /// Shares the saved webhooks the cluster has not heard of (this node ran them alone).
    async fn share_unheard(&self, heard: &HashSet<String>) {
        let Some(sharing) = self.inner.sharing.get() else {
            return;
        };
        let configured = self.inner.configured.lock().clone();
        for webhook in self.inner.registry.webhooks.load().iter() {
            let name = &webhook.spec.name;
            if heard.contains(name) || configured.contains(name) {
                continue;
            }
            let written = match self.inner.files.to_shared(&webhook.spec) {
                Ok(bytes) => sharing
                    .map
                    .put(name, bytes.into())
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match written {
                Ok(revision) => {
                    sharing.record(name, revision);
                    tracing::info!(webhook = %name, "webhook shared with the cluster");
                }
                Err(error) => {
                    tracing::warn!(webhook = %name, %error, "webhook not shared with the cluster");
                }
            }
        }
    }
}

/// A version built by a change that has not swapped it in yet: if the change fails or is
/// abandoned, the cluster queue it started (a new one, not the previous version's) closes,
/// so its tasks end with it.
pub(super) struct Unstarted {
    pub(super) queue: Option<Arc<dyn crate::queue::Queue>>,
}

impl Unstarted {
    pub(super) fn new(built: &Webhook, previous: Option<&Webhook>) -> Self {
        let own = built.queue.as_cluster().is_some()
            && !previous.is_some_and(|old| Arc::ptr_eq(&old.queue, &built.queue));
        Self {
            queue: own.then(|| Arc::clone(&built.queue)),
        }
    }
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.close();
        }
    }
}

/// Applies the cluster's changes in order; after each (re)start's history, shares what the
/// cluster did not have and, the first time, tells [`WebhookEngine::share`].
async fn follow(
    engine: WebhookEngine,
    mut changes: mpsc::Receiver<Followed>,
    caught_up: oneshot::Sender<()>,
) {
    let mut caught_up = Some(caught_up);
    let mut heard = HashSet::new();
    while let Some(followed) = changes.recv().await {
        match followed {
            Followed::Change {
                key,
                value,
                revision,
            } => {
                engine.apply_shared(&key, value.as_deref(), revision).await;
                heard.insert(key);
            }
            Followed::CaughtUp => {
                engine.share_unheard(&heard).await;
                if let Some(tell) = caught_up.take() {
                    let _ = tell.send(());
                }
            }
        }
    }
}
