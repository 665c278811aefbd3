//! The engine: attaches each webhook to the broker's hook (the webhook is the sink),
//! and manages webhooks (create, update, enable, delete) while it runs.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{Arc, OnceLock},
    time::Duration,
};

use arc_swap::ArcSwap;
use hookmq_broker::{
    BrokerHandle,
    hooks::{EventMask, HookAttachment, HookSink},
    message::MessageIdGenerator,
};
use hookmq_cluster::ClusterHandle;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    attempts::Attempt,
    egress::Egress,
    health::HealthSnapshot,
    metrics::MetricsSnapshot,
    receivers::ReceiverStatus,
    seal::Sealer,
    spec::{Buffer, SpecError, WebhookSpec},
    store::WebhookFiles,
    webhook::{Surroundings, Webhook},
};

mod alarms;
mod dead_letters;
mod probe;
mod runtime;
mod shared;

use shared::Unstarted;

pub use dead_letters::{DeadLetterPage, DeadLetterView, ReplayReport};
pub use probe::ProbeResult;

use runtime::DeliveryRuntime;

/// How often rates are sampled.
const RATE_INTERVAL: Duration = Duration::from_secs(5);

/// Why an engine operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The spec is invalid.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// No webhook has that name.
    #[error("no webhook named {0}")]
    NotFound(String),
    /// A webhook with that name exists already.
    #[error("a webhook named {0} exists already")]
    AlreadyExists(String),
    /// The webhook's journal could not be opened (its directory cannot be used).
    #[error("{0}")]
    Storage(String),
    /// A clustered node cannot reach the cluster, which must take every change first.
    #[error("the cluster cannot be reached, so no node changes webhooks: {0}")]
    Unavailable(String),
}

/// A cluster-buffered webhook keeps its buffer; a disk-buffered webhook switches to a memory
/// buffer only while what it holds fits there:
/// a larger backlog would be read into memory and then mostly dropped.
fn buffer_change_allowed(previous: &Webhook, next: &WebhookSpec) -> Result<(), SpecError> {
    if previous.spec.buffer == Buffer::Cluster && next.buffer != Buffer::Cluster {
        // Its events wait in the cluster's stream, which no other buffer reads.
        return Err(SpecError::new(
            "buffer",
            "a cluster-buffered webhook keeps buffer = \"cluster\": delete it and create it \
             again to change its buffer",
        ));
    }
    if previous.journal.is_none() || next.buffer != Buffer::Memory {
        return Ok(());
    }
    let metrics = previous.metrics();
    let held = metrics.queuing + metrics.inflight;
    if held > next.queue_capacity as u64 {
        return Err(SpecError::new(
            "buffer",
            format!(
                "{held} events wait in the disk buffer, more than queue_capacity ({}) holds in \
                 memory: switch once they are delivered, or raise queue_capacity",
                next.queue_capacity
            ),
        ));
    }
    Ok(())
}

/// A webhook as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStatus {
    /// Its definition.
    #[serde(flatten)]
    pub spec: WebhookSpec,
    /// Its metrics now.
    pub metrics: MetricsSnapshot,
    /// Its status (`connecting`, `connected`, `disconnected`, or `stopped` while disabled)
    /// and last error: its best receiver's, so `disconnected` means none answers.
    pub status: HealthSnapshot,
    /// Each receiver (`url`, then `urls`): its status, lanes and counters.
    pub receivers: Vec<ReceiverStatus>,
}

impl WebhookStatus {
    fn of(webhook: &Webhook) -> Self {
        Self {
            spec: webhook.spec.clone(),
            metrics: webhook.metrics(),
            status: webhook.receivers.status(webhook.spec.enable),
            receivers: webhook.receivers.statuses(webhook.spec.enable),
        }
    }
}

/// The webhooks, for management. Events do not pass through here: each enabled webhook is
/// its own sink on the broker's hook (see [`Webhook`]'s `HookSink`), so an event costs one
/// listener-list read, whatever the number of webhooks.
struct Registry {
    ids: Arc<MessageIdGenerator>,
    /// Read without a lock by listings; replaced on every change.
    webhooks: ArcSwap<Vec<Arc<Webhook>>>,
    /// Each webhook's attachment to the hook, by name. The lock serializes changes (held
    /// only while swapping, never across `.await`); dropping the engine detaches them all.
    attachments: Mutex<HashMap<String, HookAttachment>>,
}

struct Inner {
    broker: BrokerHandle,
    /// Each webhook's directory: its saved spec, counters and journal.
    files: WebhookFiles,
    /// Wakes the dead-letter writer (a lane gave an event up).
    dead_letter_writer: Arc<tokio::sync::Notify>,
    delivery: DeliveryRuntime,
    /// The networks webhook requests may reach.
    egress: Egress,
    node: String,
    registry: Registry,
    stop: CancellationToken,
    /// The cluster this node is in (set before the saved webhooks are restored), for
    /// cluster-buffered webhooks.
    cluster: OnceLock<ClusterHandle>,
    /// The cluster's webhooks, once [`WebhookEngine::share`] joined them.
    sharing: OnceLock<shared::Sharing>,
    /// Names of the webhooks from this node's configuration file (not shared).
    configured: Mutex<HashSet<String>>,
    /// Held by `change` (create, update, put, enable) and `remove` from reading the current
    /// version to starting the new one, so two changes of a webhook never build on the same
    /// old version. An async mutex: it is held across the old version's stop. One for the
    /// engine, so a slow stop also holds up changes of other webhooks.
    changes: Arc<tokio::sync::Mutex<()>>,
}

/// The webhook engine. Cheap to clone.
#[derive(Clone)]
pub struct WebhookEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebhookEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEngine")
            .field("webhooks", &self.inner.registry.webhooks.load().len())
            .finish()
    }
}

impl WebhookEngine {
    /// Starts listening to `broker` (with no webhook, nothing is listened to); webhooks are
    /// saved under `data_dir` (see [`crate::store`]) with their secrets sealed by `sealer`,
    /// and reach only what `egress` permits.
    #[must_use]
    pub fn start(broker: BrokerHandle, data_dir: &Path, egress: Egress, sealer: Sealer) -> Self {
        let node = broker.node_name().to_owned();
        let registry = Registry {
            ids: Arc::new(MessageIdGenerator::new(&node)),
            webhooks: ArcSwap::from_pointee(Vec::new()),
            attachments: Mutex::new(HashMap::new()),
        };
        let inner = Arc::new(Inner {
            node,
            broker,
            files: WebhookFiles::new(data_dir, sealer),
            dead_letter_writer: Arc::new(tokio::sync::Notify::new()),
            registry,
            stop: CancellationToken::new(),
            delivery: DeliveryRuntime::new(),
            egress,
            cluster: OnceLock::new(),
            sharing: OnceLock::new(),
            configured: Mutex::new(HashSet::new()),
            changes: Arc::new(tokio::sync::Mutex::new(())),
        });
        tokio::spawn(sample_rates(Arc::clone(&inner)));
        tokio::spawn(dead_letters::write_dead_letters(Arc::clone(&inner)));
        tokio::spawn(alarms::watch(Arc::clone(&inner)));
        Self { inner }
    }

    /// Lets webhooks keep their events in `cluster` (`buffer = "cluster"`): call it before
    /// [`WebhookEngine::restore`].
    pub fn use_cluster(&self, cluster: ClusterHandle) {
        let _ = self.inner.cluster.set(cluster);
    }

    /// The node name events carry.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The broker this engine listens to.
    #[must_use]
    pub fn broker(&self) -> &BrokerHandle {
        &self.inner.broker
    }

    /// What seals the webhooks' secrets at rest, for other secrets kept beside them.
    #[must_use]
    pub fn sealer(&self) -> &crate::seal::Sealer {
        self.inner.files.sealer()
    }

    /// Loads the webhooks saved under the data directory (at start). One that no longer
    /// validates is skipped with a warning rather than stopping the node. Returns how many
    /// were loaded.
    pub async fn restore(&self) -> usize {
        let mut restored = 0;
        for spec in self.inner.files.load_specs() {
            let name = spec.name.clone();
            match self.change(&name, Origin::Local, |_| Ok(spec)).await {
                Ok(()) => restored += 1,
                Err(error) => tracing::warn!(webhook = %name, %error, "saved webhook skipped"),
            }
        }
        restored
    }

    /// Creates or replaces a webhook from the configuration file: applied at every start,
    /// over a saved one of the same name, and not saved itself.
    ///
    /// # Errors
    /// [`EngineError::Invalid`], or [`EngineError::Storage`] if its journal cannot be opened.
    pub async fn configure(&self, spec: WebhookSpec) -> Result<(), EngineError> {
        let name = spec.name.clone();
        self.change(&name, Origin::Local, |_| Ok(spec)).await?;
        self.inner.configured.lock().insert(name);
        Ok(())
    }

    /// Logs the webhook directories that hold a journal but belong to no webhook (one
    /// removed from the configuration file while it had events queued): they are kept.
    pub fn warn_orphans(&self) {
        let files = &self.inner.files;
        for name in files.names() {
            if self.find(name.as_str()).is_none() && files.journal_dir(&name).is_dir() {
                tracing::warn!(
                    webhook = %name,
                    dir = %files.dir(&name).display(),
                    "events kept for a webhook that no longer exists: create it again to deliver them, or delete the directory"
                );
            }
        }
    }

    /// Creates a webhook and saves it.
    ///
    /// # Errors
    /// [`EngineError::AlreadyExists`], [`EngineError::Invalid`] or [`EngineError::Storage`].
    pub async fn create(&self, spec: WebhookSpec) -> Result<(), EngineError> {
        self.check_egress(&spec).await?;
        self.change(&spec.name.clone(), Origin::Api, |current| match current {
            Some(_) => Err(EngineError::AlreadyExists(spec.name)),
            None => Ok(spec),
        })
        .await
    }

    /// Replaces the webhook of the same name, and saves it.
    ///
    /// # Errors
    /// [`EngineError::NotFound`], [`EngineError::Invalid`] or [`EngineError::Storage`].
    pub async fn update(&self, spec: WebhookSpec) -> Result<(), EngineError> {
        self.check_egress(&spec).await?;
        self.change(&spec.name.clone(), Origin::Api, |current| match current {
            Some(_) => Ok(spec),
            None => Err(EngineError::NotFound(spec.name)),
        })
        .await
    }

    /// Creates or replaces a webhook, and saves it. Queued events and metrics carry over to
    /// the new version.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] or [`EngineError::Storage`].
    pub async fn put(&self, spec: WebhookSpec) -> Result<(), EngineError> {
        self.check_egress(&spec).await?;
        self.change(&spec.name.clone(), Origin::Api, |_| Ok(spec))
            .await
    }

    /// Turns a webhook on or off, and saves it; queued events wait while it is off.
    ///
    /// # Errors
    /// [`EngineError::NotFound`] or [`EngineError::Storage`].
    pub async fn set_enabled(&self, name: &str, enable: bool) -> Result<(), EngineError> {
        self.change(name, Origin::Api, |current| {
            let mut spec = current
                .ok_or_else(|| EngineError::NotFound(name.to_owned()))?
                .clone();
            spec.enable = enable;
            Ok(spec)
        })
        .await
    }

    /// Refuses a URL whose host resolves only to networks the egress policy denies, naming
    /// its field (a saved or configured webhook is not checked at start: its deliveries are
    /// refused instead).
    async fn check_egress(&self, spec: &WebhookSpec) -> Result<(), EngineError> {
        let urls = spec.receiver_templates()?;
        for (url, (field, _)) in urls.iter().zip(spec.receiver_urls()) {
            if let Some((host, port)) = url.host_port()
                && let Err(error) = self.inner.egress.check(&host, port).await
            {
                return Err(SpecError::new(field, error.reason).into());
            }
        }
        Ok(())
    }

    /// Builds the next version of webhook `name` from `next` (given the current spec, if
    /// any), saves it as `origin` says (the cluster first) and swaps it in. The whole
    /// change, the existence check and the saves included, runs under `changes`, so
    /// concurrent changes of a webhook apply one after another and the saved spec is the
    /// one running.
    async fn change(
        &self,
        name: &str,
        origin: Origin,
        next: impl FnOnce(Option<&WebhookSpec>) -> Result<WebhookSpec, EngineError>,
    ) -> Result<(), EngineError> {
        let change = Arc::clone(&self.inner.changes).lock_owned().await;
        let sharing = self.inner.sharing.get();
        if let (Origin::Peer(revision), Some(sharing)) = (origin, sharing)
            && sharing.is_stale(name, revision)
        {
            return Ok(());
        }
        let previous = self.find(name);
        let spec = next(previous.as_ref().map(|webhook| &webhook.spec))?;
        if let (Origin::Peer(revision), Some(sharing)) = (origin, sharing)
            && previous.as_ref().is_some_and(|p| p.spec == spec)
        {
            // This node's own write coming back, or a node sharing what runs here already.
            sharing.record(name, revision);
            return Ok(());
        }
        if let Some(previous) = &previous {
            buffer_change_allowed(previous, &spec)?;
        }
        let around = Surroundings {
            node: &self.inner.node,
            ids: &self.inner.registry.ids,
            files: &self.inner.files,
            dead_letter_writer: &self.inner.dead_letter_writer,
            egress: &self.inner.egress,
            cluster: self.inner.cluster.get(),
        };
        let webhook = Arc::new(Webhook::build(spec, previous.as_deref(), &around)?);
        let mut unstarted = Unstarted::new(&webhook, previous.as_deref());
        // The cluster takes the change before it runs here. A caller that stops waiting
        // meanwhile leaves it written there and not here: this node then hears it back and
        // applies it like another node's.
        self.share_change(name, origin, Some(&webhook.spec)).await?;
        // From here to the swap nothing awaits, so a caller that stops waiting (an API client
        // that disconnects) cancels either before the swap or not at all.
        if origin != Origin::Local {
            // A short synchronous write: a spec of a few hundred bytes, synced.
            self.inner
                .files
                .save_spec(&webhook.spec)
                .map_err(|e| EngineError::Storage(format!("saving webhook {name}: {e}")))?;
        }
        let replaced = self.swap(name, Some(Arc::clone(&webhook)));
        unstarted.queue = None;
        let delivery = self.inner.delivery.handle();
        finish(async move {
            let _change = change;
            if let Some(old) = replaced {
                old.stop().await;
                webhook.adopt(&old);
                if webhook.journal.is_none()
                    && let Some(journal) = &old.journal
                {
                    // Now memory-buffered: the adopted events are in memory only.
                    journal.destroy();
                }
            }
            webhook.start(&delivery);
        })
        .await;
        Ok(())
    }

    /// Deletes a webhook: its queued events are dropped (and logged), its directory (saved
    /// spec, counters, journal) deleted; on every node of a cluster.
    ///
    /// # Errors
    /// [`EngineError::NotFound`], [`EngineError::Unavailable`], or [`EngineError::Storage`]
    /// if its saved spec cannot be deleted (then nothing changed here).
    pub async fn remove(&self, name: &str) -> Result<(), EngineError> {
        self.remove_as(name, Origin::Api).await
    }

    async fn remove_as(&self, name: &str, origin: Origin) -> Result<(), EngineError> {
        let change = Arc::clone(&self.inner.changes).lock_owned().await;
        if let (Origin::Peer(revision), Some(sharing)) = (origin, self.inner.sharing.get())
            && sharing.is_stale(name, revision)
        {
            return Ok(());
        }
        if self.find(name).is_none() {
            if let Origin::Peer(_) = origin {
                // Deleted before it ran here: only its revision is news.
                self.share_change(name, origin, None).await?;
            }
            return Err(EngineError::NotFound(name.to_owned()));
        }
        self.share_change(name, origin, None).await?;
        let files = self.inner.files.clone();
        files
            .forget_spec(name)
            .map_err(|e| EngineError::Storage(format!("deleting webhook {name}: {e}")))?;
        let removed = self
            .swap(name, None)
            .ok_or_else(|| EngineError::NotFound(name.to_owned()))?;
        self.inner.configured.lock().remove(name);
        finish(async move {
            let _change = change;
            removed.stop().await;
            removed.queue.close();
            if let (Some(queue), Origin::Api) = (removed.queue.as_cluster(), origin) {
                // Deleted for every node: its work queue goes too.
                queue.destroy().await;
            }
            let held = removed.queue.len();
            if held > 0 {
                tracing::warn!(webhook = %removed.spec.name, events = held, "webhook deleted with events still queued: they are dropped");
            }
            if let Some(journal) = &removed.journal {
                journal.close();
            }
            if let Err(error) = files.remove(&removed.spec.name) {
                tracing::warn!(webhook = %removed.spec.name, %error, "webhook directory not deleted");
            }
        })
        .await;
        Ok(())
    }

    /// Saves every webhook's counters.
    fn save_metrics(inner: &Inner) {
        for webhook in inner.registry.webhooks.load().iter() {
            let saved = webhook.metrics.saved();
            if let Err(error) = inner.files.save_metrics(&webhook.spec.name, &saved) {
                tracing::warn!(webhook = %webhook.spec.name, %error, "counters not saved");
            }
        }
    }

    /// Replaces (or removes) the webhook `name` in the list; returns the one it replaced.
    fn swap(&self, name: &str, new: Option<Arc<Webhook>>) -> Option<Arc<Webhook>> {
        let registry = &self.inner.registry;
        let mut attachments = registry.attachments.lock();
        let current = registry.webhooks.load_full();
        let mut next: Vec<Arc<Webhook>> = Vec::with_capacity(current.len() + 1);
        let mut replaced = None;
        for webhook in current.iter() {
            if webhook.spec.name == name {
                replaced = Some(Arc::clone(webhook));
            } else {
                next.push(Arc::clone(webhook));
            }
        }
        match new {
            Some(webhook) => {
                let mask = if webhook.spec.enable {
                    webhook.trigger.mask
                } else {
                    EventMask::NONE
                };
                let sink = Arc::clone(&webhook) as Arc<dyn HookSink>;
                match attachments.get(name) {
                    // One swap: the hook goes from the old version to the new at once.
                    Some(attachment) => attachment.replace(mask, sink),
                    None => {
                        let attachment = self.inner.broker.attach_sink(mask, sink);
                        attachments.insert(name.to_owned(), attachment);
                    }
                }
                next.push(webhook);
            }
            None => {
                attachments.remove(name);
            }
        }
        next.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        registry.webhooks.store(Arc::new(next));
        replaced
    }

    fn find(&self, name: &str) -> Option<Arc<Webhook>> {
        self.inner
            .registry
            .webhooks
            .load()
            .iter()
            .find(|w| w.spec.name == name)
            .cloned()
    }

    /// One webhook with its metrics.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<WebhookStatus> {
        self.find(name).map(|w| WebhookStatus::of(&w))
    }

    /// Webhook `name`'s last `limit` attempts (at most [`crate::attempts::KEPT`]), newest
    /// first.
    ///
    /// # Errors
    /// [`EngineError::NotFound`].
    pub fn attempts(&self, name: &str, limit: usize) -> Result<Vec<Attempt>, EngineError> {
        let webhook = self
            .find(name)
            .ok_or_else(|| EngineError::NotFound(name.to_owned()))?;
        Ok(webhook.attempts.recent(limit))
    }

    /// Every webhook, by name.
    #[must_use]
    pub fn list(&self) -> Vec<WebhookStatus> {
        self.inner
            .registry
            .webhooks
            .load()
            .iter()
            .map(|w| WebhookStatus::of(w))
            .collect()
    }

    /// Every webhook's metrics on this node as JSON, by name (what the node reports to the
    /// cluster), with its newest three failures only: every node answers with all of its
    /// webhooks in one NATS message.
    #[must_use]
    pub fn metrics_report(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.inner
            .registry
            .webhooks
            .load()
            .iter()
            .filter_map(|w| {
                let mut metrics = w.metrics();
                metrics.last_failures.truncate(3);
                let metrics = serde_json::to_value(metrics).ok()?;
                Some((w.spec.name.clone(), metrics))
            })
            .collect()
    }

    /// Zeroes a webhook's counters.
    ///
    /// # Errors
    /// [`EngineError::NotFound`].
    pub fn reset_metrics(&self, name: &str) -> Result<(), EngineError> {
        let webhook = self
            .find(name)
            .ok_or_else(|| EngineError::NotFound(name.to_owned()))?;
        webhook.metrics.reset(webhook.queue.len() as u64);
        Ok(())
    }

    /// Stops every webhook, giving requests in flight up to `within` to be answered (a
    /// memory buffer also delivers what it queues meanwhile, as a stop loses it). What a
    /// disk buffer still holds then is on disk, delivered after the next start. Logs, and
    /// returns, what was delivered while stopping and what is kept or lost.
    pub async fn shutdown(&self, within: Duration) -> ShutdownReport {
        self.inner.stop.cancel();
        let all = self.inner.registry.webhooks.load_full();
        let before: Vec<u64> = all.iter().map(|w| w.metrics.delivered()).collect();
        // Each webhook finishes on a task of its own: they all get the whole time.
        let mut finishing = tokio::task::JoinSet::new();
        for webhook in all.iter() {
            let webhook = Arc::clone(webhook);
            finishing.spawn(async move {
                webhook.finish(within).await;
                if let Some(queue) = webhook.queue.as_cluster() {
                    // What it holds goes to the other nodes now; what its clients did last
                    // is stored for them first.
                    let stored = queue.stored();
                    crate::queue::Queue::close(queue);
                    let _ = tokio::time::timeout(within, stored).await;
                }
            });
        }
        while finishing.join_next().await.is_some() {}
        dead_letters::store_dead_letters(&self.inner);
        Self::save_metrics(&self.inner);
        // Detached and forgotten: their files (journal, dead letters) are released when the
        // last handle goes, so a new engine may open them.
        self.inner.registry.attachments.lock().clear();
        self.inner.registry.webhooks.store(Arc::new(Vec::new()));
        let mut report = ShutdownReport::default();
        for (webhook, before) in all.iter().zip(before) {
            let delivered = webhook.metrics.delivered().saturating_sub(before);
            let left = webhook.queue.len() as u64;
            report.delivered += delivered;
            let name = &webhook.spec.name;
            match &webhook.journal {
                Some(journal) => {
                    journal.close();
                    report.kept += left;
                    tracing::info!(webhook = %name, delivered, kept_on_disk = left, "webhook stopped");
                }
                None if webhook.queue.as_cluster().is_some() => {
                    tracing::info!(webhook = %name, delivered, "webhook stopped (its queued events wait in the cluster)");
                }
                None => {
                    report.lost += left;
                    tracing::info!(webhook = %name, delivered, lost = left, "webhook stopped (memory buffer)");
                }
            }
        }
        tracing::info!(
            delivered = report.delivered,
            kept_on_disk = report.kept,
            lost = report.lost,
            "webhooks stopped"
        );
        report
    }
}

/// What [`WebhookEngine::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Events delivered while stopping.
    pub delivered: u64,
    /// Events left in disk buffers, for the next start.
    pub kept: u64,
    /// Events left in memory buffers, lost.
    pub lost: u64,
}

/// Runs the end of a change (the old version's stop, the new one's start) as a task of its
/// own and waits for it: a version swapped in is started even if the caller stops waiting.
async fn finish(end: impl Future<Output = ()> + Send + 'static) {
    if let Err(error) = tokio::spawn(end).await {
        tracing::error!(%error, "a webhook change did not finish");
    }
}

/// Samples every webhook's rate, closes its expired idle connections and saves its
/// counters, every [`RATE_INTERVAL`].
async fn sample_rates(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(RATE_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            _ = tick.tick() => {
                for webhook in inner.registry.webhooks.load().iter() {
                    webhook.metrics.sample_rate(RATE_INTERVAL);
                    webhook.client.close_idle();
                    summarise(webhook);
                }
                let saving = Arc::clone(&inner);
                // File writes block: off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || WebhookEngine::save_metrics(&saving)).await;
            }
        }
    }
}

/// Logs what a webhook dropped and gave up since the last look: one line each per
/// interval, not one per event (thousands a second when a receiver cannot keep up).
fn summarise(webhook: &Webhook) {
    let (dropped, failed, last) = webhook.metrics.since_last_summary();
    let seconds = RATE_INTERVAL.as_secs();
    if dropped > 0 {
        tracing::warn!(
            webhook = %webhook.spec.name,
            count = dropped,
            "events dropped in the last {seconds} s: the buffer is full (see max_buffer_bytes)"
        );
    }
    if failed > 0 {
        tracing::warn!(
            webhook = %webhook.spec.name,
            count = failed,
            last = last.as_deref().unwrap_or("-"),
            "events failed for good in the last {seconds} s (kept as dead letters)"
        );
    }
}

/// Where a change comes from, which says where it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This node's API or CLI: shared with the cluster (if any), then saved here.
    Api,
    /// Another node, through the cluster's map at this revision: saved here.
    Peer(u64),
    /// Loaded from the saved specs, or from the configuration file: not saved (again).
    Local,
}
