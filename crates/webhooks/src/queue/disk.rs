//! The disk-buffered queue: the lanes of a [`MemoryQueue`], with every event also written
//! to the webhook's [`Journal`] and forgotten there once settled, so what is queued or in
//! flight survives a crash or a restart.
//!
//! The publish path only appends the event (an `Arc`, nothing encoded) to the journal's
//! pending list under a short lock, beside placing it in its lane. The journal's writer
//! thread takes the pending events and the settled sequence numbers, encodes them and writes
//! them with one write and one `fdatasync` per group (a group commit): while one sync is
//! under way the next group gathers, so the window an event spends between its cause and the
//! disk is about one sync and one encoding of a group, and nobody on the publish path waits
//! for the disk.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{JoinHandle, Thread},
    time::Duration,
};

use hookmq_broker::{hooks::Event, message::MessageId};
use parking_lot::Mutex;

use super::{MemoryQueue, Queue, Queued, Wait, record};
use crate::journal::{JournalError, LogOptions, SegmentLog};

/// How long the writer sleeps when it has nothing to write (a push wakes it earlier).
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Events waiting to be written, and the sequence numbers they were given.
#[derive(Debug, Default)]
struct Pending {
    /// Each with its sequence number and its own delivery id, if it came with one.
    events: Vec<(u64, Option<MessageId>, Arc<Event>)>,
    /// The sequence number the next event gets.
    next_seq: u64,
}

/// What the writer thread and the queues share.
#[derive(Debug)]
struct Shared {
    /// parking_lot mutex: a push appends a few `Arc`s; the writer swaps the vector out.
    pending: Mutex<Pending>,
    /// Settled sequence numbers to record; taken by the writer *before* the pending events,
    /// so an acknowledgement is never written ahead of its event.
    acks: Mutex<Vec<u64>>,
    /// The highest sequence number on disk.
    durable: AtomicU64,
    /// Bytes the journal takes on disk, after the last write.
    disk_bytes: AtomicU64,
    /// Groups that could not be written (a full disk, an I/O error).
    write_errors: AtomicU64,
    stop: AtomicBool,
}

/// A webhook's journal: the segment log under its directory and the thread that writes it.
/// Shared by the webhook's versions (an update keeps it); dropping the last handle writes
/// what is pending and stops the thread.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    dir: PathBuf,
    epoch: u64,
    /// The writer thread, to wake it without a lock.
    waker: Thread,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Opens the journal in `dir` and starts its writer; returns it with the events it still
    /// held (oldest first, each with its sequence number and id), and logs what could not be
    /// read back.
    ///
    /// # Errors
    /// [`JournalError`] if the directory cannot be used.
    pub fn open(name: &str, dir: &Path) -> Result<(Arc<Self>, Vec<Queued>), JournalError> {
        let (log, recovered) = SegmentLog::open(dir, LogOptions::default())?;
        let epoch = log.epoch();
        let mut events = Vec::with_capacity(recovered.live.len());
        let mut unreadable = Vec::new();
        for (seq, bytes) in recovered.live {
            match record::decode(&bytes) {
                Ok((own_id, event)) => events.push(Queued {
                    event: Arc::new(event),
                    id: Some(own_id.unwrap_or_else(|| id(epoch, seq))),
                    seq,
                    attempts: 0,
                }),
                Err(error) => {
                    tracing::error!(webhook = name, seq, %error, "journal: an event could not be read back; it is dropped");
                    unreadable.push(seq);
                }
            }
        }
        if !events.is_empty() {
            tracing::info!(
                webhook = name,
                events = events.len(),
                "journal: queued events recovered"
            );
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                events: Vec::new(),
                next_seq: log.last_seq() + 1,
            }),
            acks: Mutex::new(unreadable),
            durable: AtomicU64::new(log.last_seq()),
            disk_bytes: AtomicU64::new(log.disk_bytes()),
            write_errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let writer = {
            let (shared, name) = (Arc::clone(&shared), name.to_owned());
            std::thread::Builder::new()
                .name(format!("hookmq-journal-{name}"))
                .spawn(move || write_loop(&shared, log, &name))
                .map_err(|source| JournalError::Io {
                    path: dir.to_owned(),
                    source,
                })?
        };
        let journal = Self {
            shared,
            dir: dir.to_owned(),
            epoch,
            waker: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
        };
        Ok((Arc::new(journal), events))
    }

    /// Writes what is pending and stops the writer (later appends are not written).
    pub fn close(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.waker.unpark();
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "journal writer panicked");
        }
    }

    /// Stops the writer and deletes the journal's directory (the webhook is gone).
    pub fn destroy(&self) {
        self.close();
        if let Err(error) = std::fs::remove_dir_all(&self.dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), %error, "journal: could not delete");
        }
    }

    /// Bytes the journal takes on disk.
    #[must_use]
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// Groups of events that could not be written (the events stay queued in memory).
    #[must_use]
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }

    /// Events given a sequence number and not yet on disk.
    #[must_use]
    pub fn unwritten(&self) -> u64 {
        let next = self.shared.pending.lock().next_seq;
        next.saturating_sub(self.shared.durable.load(Ordering::Acquire) + 1)
    }

    /// Gives each event a sequence number and an id and adds it to the pending list.
    fn append(&self, items: &mut [(usize, Queued)]) {
        if items.is_empty() {
            return;
        }
        let mut pending = self.shared.pending.lock();
        let was_empty = pending.events.is_empty();
        for (_, item) in items.iter_mut() {
            let seq = pending.next_seq;
            pending.next_seq += 1;
            item.seq = seq;
            // An event that comes with an id keeps it (and the journal records it).
            let own = item.id;
            item.id = Some(own.unwrap_or_else(|| id(self.epoch, seq)));
            pending.events.push((seq, own, Arc::clone(&item.event)));
        }
        drop(pending);
        if was_empty {
            self.wake();
        }
    }

    /// Records that the events `seqs` reached their end.
    fn acknowledge(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut acks = self.shared.acks.lock();
        let was_empty = acks.is_empty();
        acks.extend(seqs.into_iter().filter(|&seq| seq != 0));
        let wake = was_empty && !acks.is_empty();
        drop(acks);
        if wake {
            self.wake();
        }
    }

    fn wake(&self) {
        self.waker.unpark();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// A journaled event's delivery id: the journal's epoch and the sequence number, so a
/// redelivery after a restart carries the same one and no other journal makes it.
fn id(epoch: u64, seq: u64) -> MessageId {
    MessageId((u128::from(epoch) << 64) | u128::from(seq))
}

/// The writer thread: group commits until stopped, then one last one.
fn write_loop(shared: &Shared, mut log: SegmentLog, name: &str) {
    let mut encoded: Vec<u8> = Vec::new();
    let mut bounds: Vec<(u64, usize, usize)> = Vec::new();
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        // Acknowledgements first: any taken here belongs to an event pushed before, so
        // already written or among the events taken next.
        let acks = std::mem::take(&mut *shared.acks.lock());
        let events = std::mem::take(&mut shared.pending.lock().events);
        if events.is_empty() && acks.is_empty() {
            if stopping {
                return;
            }
            std::thread::park_timeout(IDLE_WAKE);
            continue;
        }
        encoded.clear();
        bounds.clear();
        for (seq, own_id, event) in &events {
            let start = encoded.len();
            if let Err(error) = record::encode(*own_id, event, &mut encoded) {
                encoded.truncate(start);
                tracing::error!(webhook = name, seq, %error, "journal: an event could not be encoded");
                continue;
            }
            bounds.push((*seq, start, encoded.len()));
        }
        let records: Vec<(u64, &[u8])> = bounds
            .iter()
            .map(|&(seq, start, end)| (seq, &encoded[start..end]))
            .collect();
        let written = log.append(&records, &acks).and_then(|()| log.sync());
        match written {
            Ok(()) => {
                if let Some((seq, ..)) = events.last() {
                    shared.durable.store(*seq, Ordering::Release);
                }
            }
            Err(error) => {
                let errors = shared.write_errors.fetch_add(1, Ordering::Relaxed);
                // Once, then every thousandth: a full disk fails every group.
                if errors.is_multiple_of(1000) {
                    tracing::error!(webhook = name, %error, events = events.len(), failures = errors + 1,
                        "journal: could not write; these events are queued in memory only");
                }
            }
        }
        shared.disk_bytes.store(log.disk_bytes(), Ordering::Relaxed);
    }
}

/// A webhook's queue on disk: lanes in memory, every event in the journal until settled.
#[derive(Debug)]
pub struct DiskQueue {
    memory: MemoryQueue,
    journal: Arc<Journal>,
}

impl DiskQueue {
    /// A queue of `lanes` lanes holding at most `capacity` events, journaled in `journal`.
    #[must_use]
    pub fn new(lanes: usize, capacity: usize, journal: Arc<Journal>) -> Self {
        Self {
            memory: MemoryQueue::new(lanes, capacity),
            journal,
        }
    }

    /// The journal.
    #[must_use]
    pub const fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }
}

impl Queue for DiskQueue {
    fn push_many(&self, mut items: Vec<(usize, Queued)>) -> usize {
        let kept = self.memory.reserve_up_to(items.len());
        let dropped = items.len() - kept;
        items.truncate(kept);
        self.journal.append(&mut items);
        let refused = self.memory.push_reserved(items);
        // Journaled but closed out: forgotten again, and counted as dropped.
        self.journal
            .acknowledge(refused.iter().map(|item| item.seq));
        dropped + refused.len()
    }

    fn push_front_run(&self, mut items: Vec<(usize, Queued)>) -> usize {
        // Events from a version without this journal (its buffer was in memory) are
        // journaled now; the others are on disk already.
        let mut fresh: Vec<(usize, Queued)> = Vec::new();
        let mut placed: Vec<(usize, Queued)> = Vec::with_capacity(items.len());
        for (lane, item) in items.drain(..) {
            if item.seq == 0 {
                fresh.push((lane, item));
            } else {
                placed.push((lane, item));
            }
        }
        self.journal.append(&mut fresh);
        placed.extend(fresh);
        let refused = self.memory.push_front_returning(placed);
        // Those that did not fit are forgotten.
        self.journal
            .acknowledge(refused.iter().map(|item| item.seq));
        refused.len()
    }

    /// The events are on disk already (they come from this journal).
    fn restore(&self, items: Vec<(usize, Queued)>) {
        self.memory.restore(items);
    }

    fn take(&self, lane: usize) -> Option<Queued> {
        self.memory.take(lane)
    }

    fn put_back(&self, lane: usize, item: Queued) {
        self.memory.put_back(lane, item);
    }

    fn settle(&self, item: &Queued) {
        self.journal.acknowledge([item.seq]);
    }

    fn wait(&self, lane: usize) -> Wait<'_> {
        self.memory.wait(lane)
    }

    fn len(&self) -> usize {
        self.memory.len()
    }

    fn room(&self) -> usize {
        self.memory.room()
    }

    fn lanes(&self) -> usize {
        self.memory.lanes()
    }

    fn close(&self) {
        self.memory.close();
    }

    fn is_closed(&self) -> bool {
        self.memory.is_closed()
    }

    fn drain(&self) -> Vec<Queued> {
        self.memory.drain()
    }
}
