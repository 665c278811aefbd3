//! Dead letters: events that will not be delivered (a non-retryable answer, or retried until
//! older than `retry_max_age`), kept with their last attempt so a user can see why and
//! replay them once the receiver is fixed.
//!
//! Each webhook keeps them in `dead_letters.redb` in its directory, bounded by bytes: past
//! the bound the oldest are dropped and counted. A lane hands a dead letter over without
//! waiting (it joins the webhook's pending list, which holds at most the events the lanes
//! had taken, so its size is bounded by the queue's), and the engine's dead-letter writer
//! stores each webhook's pending ones in one transaction. Only once they are stored are they
//! settled in the queue (for a disk buffer: acknowledged in the journal), so a crash in
//! between redelivers them rather than losing them.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::queue::Queued;

const TABLE: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("dead_letters");
/// The file in a webhook's directory.
pub const FILE: &str = "dead_letters.redb";

/// Why dead letters could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("dead letters {path}: {reason}")]
pub struct DeadLetterError {
    /// The database file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The last attempt of a dead letter, and what it is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastAttempt {
    /// The event's `webhook-id`.
    pub webhook_id: String,
    /// The event's name, e.g. `message.publish`.
    pub event: String,
    /// When the event happened, ms since the epoch.
    pub happened_at: u64,
    /// When it was given up, ms since the epoch.
    pub failed_at: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last answer's status, if the receiver answered.
    pub status: Option<u16>,
    /// The start of the last answer's body.
    pub response: String,
    /// Why it was given up.
    pub reason: String,
}

/// A dead letter as stored: its last attempt and the event (in the journal's record format).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its number in this webhook's store (increasing: newer is higher).
    #[serde(skip)]
    pub id: u64,
    /// The last attempt.
    pub attempt: LastAttempt,
    /// The event, as `queue::record` writes it.
    pub record: Vec<u8>,
}

/// A dead letter on its way to the store, with the event to settle once it is stored.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) letter: DeadLetter,
    pub(crate) item: Queued,
}

#[derive(Debug, Default)]
struct Tally {
    count: u64,
    bytes: u64,
    next_id: u64,
}

/// One webhook's dead letters.
#[derive(Debug)]
pub struct DeadLetterStore {
    db: Database,
    path: PathBuf,
    max_bytes: AtomicU64,
    /// parking_lot mutex: a lane appends one; the writer swaps the vector out.
    pending: Mutex<Vec<Pending>>,
    /// Count, bytes and the next id, kept with each write (short critical sections).
    tally: Mutex<Tally>,
    /// Dropped at the bound, oldest first.
    dropped: AtomicU64,
}

impl DeadLetterStore {
    /// Opens (or creates) the dead letters in `dir`, bounded by `max_bytes`.
    ///
    /// # Errors
    /// [`DeadLetterError`] if the file cannot be used.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, DeadLetterError> {
        let path = dir.join(FILE);
        let fail = |e: &dyn std::fmt::Display| DeadLetterError {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let db = Database::create(&path).map_err(|e| fail(&e))?;
        let mut tally = Tally::default();
        {
            let txn = db.begin_write().map_err(|e| fail(&e))?;
            {
                let table = txn.open_table(TABLE).map_err(|e| fail(&e))?;
                tally.count = table.len().map_err(|e| fail(&e))?;
                for entry in table.iter().map_err(|e| fail(&e))? {
                    let (key, value) = entry.map_err(|e| fail(&e))?;
                    tally.bytes += value.value().len() as u64;
                    tally.next_id = tally.next_id.max(key.value() + 1);
                }
            }
            txn.commit().map_err(|e| fail(&e))?;
        }
        tally.next_id = tally.next_id.max(1);
        Ok(Self {
            db,
            path,
            max_bytes: AtomicU64::new(max_bytes),
            pending: Mutex::new(Vec::new()),
            tally: Mutex::new(tally),
            dropped: AtomicU64::new(0),
        })
    }

    fn error(&self, error: impl std::fmt::Display) -> DeadLetterError {
        DeadLetterError {
            path: self.path.clone(),
            reason: error.to_string(),
        }
    }

    /// A new bound (the webhook was updated).
    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Dead letters stored now.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.tally.lock().count
    }

    /// Dead letters dropped at the bound.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands a dead letter over for the next write (never waits).
    pub(crate) fn push(&self, pending: Pending) {
        self.pending.lock().push(pending);
    }

    /// Takes the dead letters waiting to be written.
    pub(crate) fn take_pending(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Stores `letters` in one transaction, dropping the oldest stored ones past the bound.
    ///
    /// # Errors
    /// [`DeadLetterError`] if the write fails; nothing of it is stored then.
    pub fn add(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut tally = self.tally.lock();
        let (mut count, mut bytes, mut next_id) = (tally.count, tally.bytes, tally.next_id);
        let mut dropped = 0;
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            for letter in letters {
                let value = postcard::to_allocvec(letter).map_err(|e| self.error(e))?;
                table
                    .insert(next_id, value.as_slice())
                    .map_err(|e| self.error(e))?;
                next_id += 1;
                count += 1;
                bytes += value.len() as u64;
            }
            let max = self.max_bytes.load(Ordering::Relaxed);
            while bytes > max && count > 0 {
                let Some((_, value)) = table.pop_first().map_err(|e| self.error(e))? else {
                    break;
                };
                bytes -= value.value().len() as u64;
                count -= 1;
                dropped += 1;
            }
        }
        txn.commit().map_err(|e| self.error(e))?;
        *tally = Tally {
            count,
            bytes,
            next_id,
        };
        drop(tally);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(file = %self.path.display(), dropped, "dead letters past their bound: the oldest were dropped");
        }
        Ok(())
    }

    /// Dead letters newest first, skipping `skip` and taking at most `take`, with the count.
    ///
    /// # Errors
    /// [`DeadLetterError`] if reading fails.
    pub fn list(&self, skip: u64, take: u64) -> Result<(u64, Vec<DeadLetter>), DeadLetterError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
        let count = table.len().map_err(|e| self.error(e))?;
        let mut letters = Vec::new();
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let take = usize::try_from(take).unwrap_or(usize::MAX);
        for entry in table
            .iter()
            .map_err(|e| self.error(e))?
            .rev()
            .skip(skip)
            .take(take)
        {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            letters.push(self.decode(key.value(), value.value())?);
        }
        Ok((count, letters))
    }

    /// The dead letters `ids` (all when `None`), oldest first; unknown ids are left out.
    ///
    /// # Errors
    /// [`DeadLetterError`] if reading fails.
    pub fn get(&self, ids: Option<&[u64]>) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
        let mut letters = Vec::new();
        match ids {
            None => {
                for entry in table.iter().map_err(|e| self.error(e))? {
                    let (key, value) = entry.map_err(|e| self.error(e))?;
                    letters.push(self.decode(key.value(), value.value())?);
                }
            }
            Some(ids) => {
                let mut ids = ids.to_vec();
                ids.sort_unstable();
                ids.dedup();
                for id in ids {
                    if let Some(value) = table.get(id).map_err(|e| self.error(e))? {
                        letters.push(self.decode(id, value.value())?);
                    }
                }
            }
        }
        Ok(letters)
    }

    /// Removes the dead letters `ids` (all when `None`); returns how many there were.
    ///
    /// # Errors
    /// [`DeadLetterError`] if the write fails.
    pub fn remove(&self, ids: Option<&[u64]>) -> Result<u64, DeadLetterError> {
        let mut tally = self.tally.lock();
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let (mut removed, mut bytes) = (0, 0);
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            match ids {
                None => {
                    removed = table.len().map_err(|e| self.error(e))?;
                    bytes = tally.bytes;
                    table.retain(|_, _| false).map_err(|e| self.error(e))?;
                }
                Some(ids) => {
                    for id in ids {
                        if let Some(value) = table.remove(id).map_err(|e| self.error(e))? {
                            removed += 1;
                            bytes += value.value().len() as u64;
                        }
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.error(e))?;
        tally.count -= removed;
        tally.bytes -= bytes;
        Ok(removed)
    }

    fn decode(&self, id: u64, bytes: &[u8]) -> Result<DeadLetter, DeadLetterError> {
        let mut letter: DeadLetter = postcard::from_bytes(bytes).map_err(|e| self.error(e))?;
        letter.id = id;
        Ok(letter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(n: u64, bytes: usize) -> DeadLetter {
        DeadLetter {
            id: 0,
            attempt: LastAttempt {
                webhook_id: format!("evt_{n}"),
                event: "message.publish".into(),
                happened_at: n,
                failed_at: n,
                attempts: 1,
                status: Some(400),
                response: "bad".into(),
                reason: "HTTP 400".into(),
            },
            record: vec![7; bytes],
        }
    }

    fn ids(letters: &[DeadLetter]) -> Vec<String> {
        letters
            .iter()
            .map(|l| l.attempt.webhook_id.clone())
            .collect()
    }

    #[test]
    fn newest_first_pages_removal_and_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let store = DeadLetterStore::open(dir.path(), 1 << 20).expect("opens");
        store
            .add(&(1..=5).map(|n| letter(n, 10)).collect::<Vec<_>>())
            .expect("stored");
        let (count, page) = store.list(1, 2).expect("lists");
        assert_eq!(
            (count, ids(&page)),
            (5, vec!["evt_4".into(), "evt_3".into()])
        );
        let oldest_two: Vec<u64> = store.get(None).expect("all")[..2]
            .iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(store.remove(Some(&oldest_two)).expect("removed"), 2);
        assert_eq!(store.count(), 3);
        drop(store);
        let store = DeadLetterStore::open(dir.path(), 1 << 20).expect("reopens");
        assert_eq!(store.count(), 3);
        store.add(&[letter(6, 10)]).expect("stored");
        let all = store.get(None).expect("all");
        assert_eq!(ids(&all), ["evt_3", "evt_4", "evt_5", "evt_6"]);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids only grow");
        assert_eq!(store.remove(None).expect("purged"), 4);
        assert_eq!(store.list(0, 10).expect("lists").0, 0);
    }

    #[test]
    fn past_the_bound_the_oldest_are_dropped_and_counted() {
        let dir = tempfile::tempdir().expect("dir");
        let store = DeadLetterStore::open(dir.path(), 2_000).expect("opens");
        for n in 1..=10 {
            store.add(&[letter(n, 400)]).expect("stored");
        }
        let kept = ids(&store.get(None).expect("all"));
        assert!(kept.len() < 10 && kept.len() >= 3, "{kept:?}");
        assert_eq!(kept.last().map(String::as_str), Some("evt_10"));
        assert_eq!(store.dropped(), 10 - kept.len() as u64);
        assert_eq!(store.count(), kept.len() as u64);
    }
}
