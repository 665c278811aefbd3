//! What the broker keeps across a stop or a crash (`[persistence]`): retained messages and
//! the sessions that outlive their connection, with their subscriptions, queued QoS 1/2
//! messages, QoS 2 state in both directions and pending wills.
//!
//! Everything is a [`Record`] in one journal (`hookmq_journal`) under
//! `<data_dir>/broker/journal`, written by one thread in group commits (`writer`). A record
//! lives until it is acknowledged: a session's record when the next version of it is
//! written or the session ends, a delivery when its client acknowledges it (or it is
//! dropped), a retained message when its topic changes. At start `recover` reads the live
//! records back into the router, the registry and the retained store.
//!
//! The owners of the state call this module where it changes (the mailbox, the connection,
//! the retained store); with `sync = "before_ack"` the connection waits ([`StateLog::synced`])
//! before writing an acknowledgement that promises something kept.

pub(crate) mod record;
pub(crate) mod recover;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    thread::{JoinHandle, Thread},
};

use hookmq_journal::{JournalError, LogOptions, SegmentLog};
use parking_lot::Mutex;

pub(crate) use self::record::Record;
use self::{
    record::{DeliveryRecord, SessionRecord, StoredWill, SubscriptionEntry},
    writer::Shared,
};
use crate::{
    config::{PersistenceConfig, SyncPolicy},
    connection::PendingWill,
    hooks::ClientInfo,
    session::SessionState,
};

/// How far (records and acknowledgements) the writer may fall behind before every
/// acknowledgement that promises a record waits for it, whatever the sync policy: with
/// `sync = "interval"` a disk slower than the publishers would otherwise let the pending
/// list grow without bound. About 0.15 s of writing at the journal's measured 2M records/s.
const MAX_UNWRITTEN: u64 = 1 << 18;

/// The broker's journal and its writer thread.
#[derive(Debug)]
pub(crate) struct StateLog {
    shared: Arc<Shared>,
    dir: PathBuf,
    /// Whether acknowledgements wait for the disk.
    wait_for_sync: bool,
    waker: Thread,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl StateLog {
    /// The journal's directory under the data directory.
    pub(crate) fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("broker").join("journal")
    }

    /// Opens the journal and starts its writer; returns it with the live records, oldest
    /// first (records that cannot be read are logged and acknowledged).
    ///
    /// # Errors
    /// [`JournalError`] if the directory cannot be used.
    pub(crate) fn open(
        data_dir: &Path,
        config: &PersistenceConfig,
    ) -> Result<(Self, Vec<(u64, Record)>), JournalError> {
        let dir = Self::dir(data_dir);
        let (log, recovered) = SegmentLog::open(&dir, LogOptions::default())?;
        let reader = hookmq_journal::Reader::new(&dir);
        let mut live = Vec::with_capacity(recovered.live.len());
        let mut unreadable = Vec::new();
        for (seq, location) in recovered.live {
            let read = reader
                .read(location)
                .map_err(|e| e.to_string())
                .and_then(|(_, bytes)| record::decode(&bytes));
            match read {
                Ok(record) => live.push((seq, record)),
                Err(error) => {
                    tracing::error!(seq, %error, "persistence: a record could not be read; skipped");
                    unreadable.push(seq);
                }
            }
        }
        let shared = Arc::new(Shared::new(log.last_seq()));
        let gather = match config.sync {
            SyncPolicy::BeforeAck => writer::COMMIT_INTERVAL,
            SyncPolicy::Interval => config.sync_interval,
        };
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("hookmq-persist".into())
                .spawn(move || writer::write_loop(&shared, log, gather))
                .map_err(|source| JournalError::Io {
                    path: dir.clone(),
                    source,
                })?
        };
        let state = Self {
            shared,
            dir,
            wait_for_sync: config.sync == SyncPolicy::BeforeAck,
            waker: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
        };
        state.acknowledge(unreadable);
        Ok((state, live))
    }

    /// Gives `record` a sequence number and queues it for the writer.
    pub(crate) fn append(&self, record: Record) -> u64 {
        let mut pending = self.shared.pending.lock();
        let seq = pending.next_seq;
        pending.next_seq += 1;
        let was_empty = pending.records.is_empty();
        pending.records.push((seq, record));
        drop(pending);
        self.shared.changes.fetch_add(1, Ordering::Release);
        if was_empty {
            self.wake_if_idle();
        }
        seq
    }

    /// Writes `record` in place of the one at `*seq` (if any) and remembers the new number.
    pub(crate) fn replace(&self, seq: &mut u64, record: Record) {
        let old = std::mem::replace(seq, self.append(record));
        self.acknowledge([old]);
    }

    /// Records that the records `seqs` are done with (0 stands for none).
    pub(crate) fn acknowledge(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut acks = self.shared.acks.lock();
        let was_empty = acks.is_empty();
        let before = acks.len();
        acks.extend(seqs.into_iter().filter(|&seq| seq != 0));
        let added = acks.len() > before;
        let wake = was_empty && added;
        drop(acks);
        if added {
            self.shared.changes.fetch_add(1, Ordering::Release);
        }
        if wake {
            self.wake_if_idle();
        }
    }

    fn wake_if_idle(&self) {
        if self.shared.idle.swap(false, Ordering::AcqRel) {
            self.waker.unpark();
        }
    }

    /// Resolves once every record and acknowledgement given so far is on disk (or failed to
    /// be written, or the writer stopped); at once when acknowledgements do not wait for the
    /// disk, unless the writer is [`MAX_UNWRITTEN`] behind.
    pub(crate) fn synced(&self) -> impl Future<Output = ()> + Send + 'static {
        let target = self.shared.changes.load(Ordering::Acquire);
        let behind = target.saturating_sub(self.shared.done.load(Ordering::Acquire));
        let shared = Arc::clone(&self.shared);
        let waker = self.waker.clone();
        let wait = self.wait_for_sync || behind >= MAX_UNWRITTEN;
        async move {
            if !wait {
                return;
            }
            // Counted while waiting, so the writer does not gather for the interval.
            shared.waiters.fetch_add(1, Ordering::AcqRel);
            let _waiting = Waiting(&shared.waiters);
            waker.unpark();
            loop {
                let progress = shared.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if shared.done.load(Ordering::Acquire) >= target
                    || shared.stop.load(Ordering::Acquire)
                {
                    return;
                }
                progress.await;
            }
        }
    }

    /// Groups that could not be written.
    pub(crate) fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }

    /// Records written since start.
    pub(crate) fn records_written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Writes what is pending and stops the writer.
    pub(crate) fn close(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.waker.unpark();
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "persistence writer panicked");
        }
        self.shared.progress.notify_waiters();
    }

    /// Writes the record of `state` (a persistent session of `client`) in place of its last
    /// one. While connected the will is the connection's `will`; once the connection is gone
    /// ([`crate::session::Stored::offline_since`]) it is the one waiting for its delay.
    pub(crate) fn save_session(
        &self,
        state: &mut SessionState,
        client: &Arc<ClientInfo>,
        will: Option<&PendingWill>,
    ) {
        let disconnected_at = state.stored.offline_since;
        let will = match disconnected_at {
            Some(_) => state.stored.will.as_deref(),
            None => will,
        };
        let record = SessionRecord {
            session_id: state.id,
            client: Arc::clone(client),
            expiry_interval: state.expiry_interval,
            subscriptions: state
                .subscriptions
                .iter()
                .map(|(filter, sub)| SubscriptionEntry {
                    filter: filter.clone(),
                    options: sub.options,
                    subscription_id: sub.subscription_id,
                })
                .collect(),
            disconnected_at,
            will: will.map(|w| StoredWill {
                will: w.will.clone(),
                delay: w.delay,
                due_at: disconnected_at
                    .map(|at| at + u64::from(w.delay.min(state.expiry_interval)) * 1000),
            }),
        };
        self.replace(&mut state.stored.record, Record::Session(Box::new(record)));
    }

    /// Writes `state`, a session kept from now on, with ([`Self::save_session`]) and, if it
    /// was not on disk yet, what it has queued and in flight.
    pub(crate) fn keep(
        &self,
        state: &mut SessionState,
        client: &Arc<ClientInfo>,
        will: Option<&PendingWill>,
    ) {
        let adopted = state.stored.record == 0;
        state.mailbox.set_durable(true);
        self.save_session(state, client, will);
        if adopted {
            self.adopt_in_flight(state);
        }
    }

    /// Writes what a session that was not kept has in flight, as it becomes durable: its
    /// messages sent and not acknowledged with their packet ids, the PUBRELs it owes and the
    /// QoS 2 packet ids it awaits PUBREL for. (Its queue: `Mailbox::set_durable`.)
    pub(crate) fn adopt_in_flight(&self, state: &mut SessionState) {
        let session_id = state.id;
        for (packet_id, entry) in state.outbound.entries_mut() {
            match &mut entry.delivery {
                Some(delivery) => {
                    if delivery.stored == 0 {
                        delivery.stored = self.append(Record::Delivery(DeliveryRecord {
                            session_id,
                            message: Arc::clone(&delivery.message),
                            qos: delivery.qos,
                            retain: delivery.retain,
                            subscription_ids: delivery.subscription_ids.as_slice().to_vec(),
                        }));
                    }
                    if entry.stored == 0 {
                        entry.stored = self.append(Record::Sent {
                            delivery: delivery.stored,
                            packet_id,
                        });
                    }
                }
                None if entry.stored == 0 => {
                    entry.stored = self.append(Record::Released {
                        session_id,
                        packet_id,
                    });
                }
                None => {}
            }
        }
        for (&packet_id, seq) in &mut state.awaiting_release {
            if *seq == 0 {
                *seq = self.append(Record::AwaitingRelease {
                    session_id,
                    packet_id,
                });
            }
        }
    }

    /// Forgets everything of an ended session: its record, queued and in-flight messages,
    /// QoS 2 state.
    pub(crate) fn end_session(&self, state: &SessionState) {
        let mut seqs = vec![state.stored.record];
        seqs.extend(state.outbound.stored_seqs());
        seqs.extend(state.awaiting_release.values().copied());
        self.acknowledge(seqs);
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Counts a caller of [`StateLog::synced`] while it waits.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn synced_waits_for_acknowledgements_too() {
        let dir = tempfile::tempdir().expect("dir");
        let (log, live) = StateLog::open(dir.path(), &PersistenceConfig::default()).expect("opens");
        assert!(live.is_empty());
        for _ in 0..50 {
            let seq = log.append(Record::Clock(1));
            log.synced().await;
            assert!(
                log.shared.pending.lock().records.is_empty(),
                "the record is written"
            );
            // A retained message cleared writes only an acknowledgement: its PUBACK waits
            // for it all the same.
            log.acknowledge([seq]);
            log.synced().await;
            assert!(
                log.shared.acks.lock().is_empty(),
                "the acknowledgement is written"
            );
        }
        log.close();
        let (_, live) = StateLog::open(dir.path(), &PersistenceConfig::default()).expect("reopens");
        assert!(
            live.iter()
                .all(|(_, r)| matches!(r, Record::Clock(at) if *at != 1)),
            "every acknowledged record stays acknowledged"
        );
    }

    #[tokio::test]
    async fn with_interval_syncs_a_writer_far_behind_holds_acknowledgements() {
        let dir = tempfile::tempdir().expect("dir");
        let config = PersistenceConfig {
            sync: SyncPolicy::Interval,
            sync_interval: std::time::Duration::from_secs(3600),
            ..PersistenceConfig::default()
        };
        let (log, _) = StateLog::open(dir.path(), &config).expect("opens");
        // The writer gathers for an hour after its first group (which may take some of
        // these, starting as they come): only a waiter moves it. Twice the bound: at least
        // the bound is left behind.
        for _ in 0..2 * MAX_UNWRITTEN {
            log.append(Record::Clock(1));
        }
        log.synced().await;
        assert!(
            log.shared.pending.lock().records.is_empty(),
            "past the bound the acknowledgement waited for the writer: {} pending",
            log.shared.pending.lock().records.len()
        );
    }
}
