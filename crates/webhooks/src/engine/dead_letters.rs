//! The engine's side of dead letters: the writer that stores what lanes give up, and the
//! management calls (list, replay, purge).

use std::{sync::Arc, time::Duration};

use serde::Serialize;

use super::{EngineError, Inner, WebhookEngine};
use crate::{
    deadletter::{DeadLetter, LastAttempt},
    queue::{Queued, record},
};

/// How long a replay waits for the replayed events to reach a disk buffer's journal before
/// it leaves them among the dead letters as well (they are then delivered, and still listed).
const REPLAY_WRITE_WAIT: Duration = Duration::from_secs(10);

/// A dead letter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    /// Its number (for replaying or deleting it).
    pub id: u64,
    /// Its last attempt.
    #[serde(flatten)]
    pub attempt: LastAttempt,
    /// The event as the default body shows it (EMQX's fields).
    pub body: serde_json::Value,
}

/// One page of dead letters, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterPage {
    /// Dead letters kept in all.
    pub count: u64,
    /// This page.
    pub letters: Vec<DeadLetterView>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters put back in the queue (and removed from the dead letters).
    pub replayed: u64,
    /// Dead letters asked for that stay (the queue had no room, or they do not decode).
    pub left: u64,
}

/// Stores every webhook's dead letters each time a lane gives one up.
pub(super) async fn write_dead_letters(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = inner.dead_letter_writer.notified() => {}
        }
        let writing = Arc::clone(&inner);
        // redb commits block: off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || store_dead_letters(&writing)).await;
    }
}

/// Stores the dead letters waiting, one transaction per webhook, and settles their events
/// once they are stored. If storing fails they wait for the next round (a disk buffer's
/// journal still holds them, so a crash meanwhile redelivers them).
pub(super) fn store_dead_letters(inner: &Inner) {
    for webhook in inner.registry.webhooks.load().iter() {
        let pending = webhook.dead_letters.take_pending();
        if pending.is_empty() {
            continue;
        }
        let letters: Vec<DeadLetter> = pending.iter().map(|p| p.letter.clone()).collect();
        match webhook.dead_letters.add(&letters) {
            Ok(()) => {
                for waiting in &pending {
                    webhook.queue.settle(&waiting.item);
                }
            }
            Err(error) => {
                tracing::error!(webhook = %webhook.spec.name, %error, dead_letters = pending.len(), "dead letters not stored; trying again at the next one");
                for waiting in pending {
                    webhook.dead_letters.push(waiting);
                }
            }
        }
    }
}

impl WebhookEngine {
    /// Webhook `name`'s dead letters, newest first: `skip` of them, then at most `take`.
    ///
    /// # Errors
    /// [`EngineError::NotFound`], or [`EngineError::Storage`] if they cannot be read.
    pub async fn dead_letters(
        &self,
        name: &str,
        skip: u64,
        take: u64,
    ) -> Result<DeadLetterPage, EngineError> {
        let webhook = self
            .find(name)
            .ok_or_else(|| EngineError::NotFound(name.to_owned()))?;
        let store = Arc::clone(&webhook.dead_letters);
        let (count, letters) = tokio::task::spawn_blocking(move || store.list(skip, take))
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))?
            .map_err(|e| EngineError::Storage(e.to_string()))?;
        let letters = letters
            .into_iter()
            .map(|letter| {
                let body = match record::decode(&letter.record) {
                    Ok((_, event)) => serde_json::Value::Object(webhook.renderer.object(&event)),
                    Err(error) => serde_json::Value::String(error.to_string()),
                };
                DeadLetterView {
                    id: letter.id,
                    attempt: letter.attempt,
                    body,
                }
            })
            .collect();
        Ok(DeadLetterPage { count, letters })
    }

    /// Puts webhook `name`'s dead letters `ids` (all when `None`) back in its queue, oldest
    /// first, with their `webhook-id`; those that find room leave the dead letters once they
    /// are queued (for a disk buffer: written to its journal).
    ///
    /// # Errors
    /// [`EngineError::NotFound`], or [`EngineError::Storage`] if they cannot be read or
    /// removed.
    pub async fn replay_dead_letters(
        &self,
        name: &str,
        ids: Option<Vec<u64>>,
    ) -> Result<ReplayReport, EngineError> {
        let storage = |e: &dyn std::fmt::Display| EngineError::Storage(e.to_string());
        // One at a time with changes, so a replay never lands in a version being replaced.
        let _change = self.inner.changes.lock().await;
        let webhook = self
            .find(name)
            .ok_or_else(|| EngineError::NotFound(name.to_owned()))?;
        let store = Arc::clone(&webhook.dead_letters);
        let letters = tokio::task::spawn_blocking(move || store.get(ids.as_deref()))
            .await
            .map_err(|e| storage(&e))?
            .map_err(|e| storage(&e))?;
        let asked = letters.len() as u64;
        let (mut keys, mut items) = (Vec::new(), Vec::new());
        for letter in letters {
            match record::decode(&letter.record) {
                Ok((id, event)) => {
                    keys.push(letter.id);
                    items.push(Queued {
                        id,
                        requeued_at: hookmq_broker::message::now_ms(),
                        ..Queued::new(Arc::new(event))
                    });
                }
                Err(error) => {
                    tracing::warn!(webhook = %name, dead_letter = letter.id, %error, "dead letter not replayed");
                }
            }
        }
        // One at a time: a full queue may take some and not others.
        let mut queued = Vec::with_capacity(keys.len());
        for (key, item) in keys.into_iter().zip(items) {
            if webhook.requeue(vec![item]) == 1 {
                queued.push(key);
            }
        }
        let replayed = queued.len();
        let mut keys = queued;
        if let Some(journal) = &webhook.journal
            && tokio::time::timeout(REPLAY_WRITE_WAIT, journal.written())
                .await
                .is_err()
        {
            // Not on disk yet: they stay listed too, so nothing is lost (they are queued and
            // will be delivered; replaying them again would send them twice).
            tracing::warn!(webhook = %name, replayed, "replayed events not written in time: they stay among the dead letters too");
            keys.clear();
        }
        let store = Arc::clone(&webhook.dead_letters);
        tokio::task::spawn_blocking(move || store.remove(Some(&keys)))
            .await
            .map_err(|e| storage(&e))?
            .map_err(|e| storage(&e))?;
        tracing::info!(webhook = %name, replayed, "dead letters replayed");
        Ok(ReplayReport {
            replayed: replayed as u64,
            left: asked - replayed as u64,
        })
    }

    /// Deletes all of webhook `name`'s dead letters; returns how many there were.
    ///
    /// # Errors
    /// [`EngineError::NotFound`], or [`EngineError::Storage`] if they cannot be deleted.
    pub async fn purge_dead_letters(&self, name: &str) -> Result<u64, EngineError> {
        let webhook = self
            .find(name)
            .ok_or_else(|| EngineError::NotFound(name.to_owned()))?;
        let store = Arc::clone(&webhook.dead_letters);
        let purged = tokio::task::spawn_blocking(move || store.remove(None))
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))?
            .map_err(|e| EngineError::Storage(e.to_string()))?;
        tracing::info!(webhook = %name, purged, "dead letters purged");
        Ok(purged)
    }
}
