//! A disk-buffered webhook's [`Journal`]: the segment log under its directory and the thread
//! that writes it.
//!
//! The publish path only appends the event (an `Arc`, nothing encoded) to the pending list
//! under a short lock. The writer thread takes the settled sequence numbers, then a copy of
//! the pending list, encodes the events and writes both with one write and one `fdatasync`
//! per group (a group commit: while one sync is under way the next group gathers), so the
//! window an event spends between its cause and the disk is about one sync and one encoding
//! of a group, and nobody on the publish path waits for the disk. Only once a group is
//! written does it leave the pending list, so an event kept on disk only (see `disk`) can
//! always be found: in the pending list until written, then where the writer says it is.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::{JoinHandle, Thread},
    time::Duration,
};

use hookmq_broker::{
    hooks::Event,
    message::{MessageId, now_ms},
};
use parking_lot::Mutex;
use serde::Serialize;

use super::{Queued, record};
use hookmq_journal::{JournalError, Location, LogOptions, Reader, SegmentLog};

/// Bounds of the write window histogram, ms (see [`Journal::write_window`]).
pub(crate) const WINDOW_BOUNDS_MS: [u64; 9] = [1, 2, 5, 10, 20, 50, 100, 500, 1000];

/// Most events a journal holds in memory waiting for its writer (given a sequence number,
/// not yet written or failed). Past it (a disk that stalls without failing) new events no
/// longer go to disk only and meet the webhook's overflow policy, as at `max_buffer_bytes`.
/// The writer clears this many in about 0.15 s at the 2M records/s measured.
pub(crate) const MAX_UNWRITTEN: u64 = 1 << 18;

/// The first wait before the writer tries again after a failed write; it doubles.
const RETRY_WRITE: Duration = Duration::from_millis(10);
/// The longest wait between tries.
const MAX_RETRY_WRITE: Duration = Duration::from_secs(1);
/// Failed writes in a row after which a stopping writer gives up.
const GIVE_UP_AFTER: u32 = 3;

/// How long the writer sleeps when it has nothing to write (a push wakes it earlier).
const IDLE_WAKE: Duration = Duration::from_millis(100);
/// The shortest time between two group commits while nobody waits for one: each
/// `fdatasync` costs the disk (and, in a VM, an exit to the host) whatever it carries, so a
/// busy journal gathers this long per group. An event then reaches the disk within about
/// this plus one sync of happening. Someone waiting (`sync_before_ack`) starts a group at
/// once.
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_millis(4);

/// An event waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub(crate) seq: u64,
    /// Its own delivery id, if it came with one (a replayed dead letter).
    pub(crate) own_id: Option<MessageId>,
    pub(crate) event: Arc<Event>,
    /// Kept on disk only (not in a lane in memory): its location is remembered once written.
    pub(crate) on_disk_only: bool,
}

/// Events waiting to be written, and the sequence number the next one gets.
#[derive(Debug, Default)]
struct Pending {
    /// By sequence number.
    events: Vec<PendingEvent>,
    next_seq: u64,
}

/// How long events waited between happening and reaching the disk, over the groups written
/// (upper bounds of histogram buckets, ms; `None`: slower than the last bound, 1 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteWindow {
    /// Groups written.
    pub groups: u64,
    /// Median of the groups' oldest event's wait.
    pub p50_ms: Option<u64>,
    /// 99th percentile.
    pub p99_ms: Option<u64>,
    /// The slowest.
    pub max_ms: Option<u64>,
}

/// What an event kept on disk only reads back as.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// The event.
    Event(Queued),
    /// Being written right now: ask again in a moment.
    NotYet,
    /// It cannot be read back (a damaged record): it is lost.
    Lost(String),
}

/// What the writer thread and the queues share.
#[derive(Debug)]
struct Shared {
    /// parking_lot mutex: a push appends a few `Arc`s; the writer copies the list and later
    /// removes what it wrote.
    pending: Mutex<Pending>,
    /// Settled sequence numbers to record; taken by the writer *before* it copies the
    /// pending events, so an acknowledgement is never written ahead of its event.
    acks: Mutex<Vec<u64>>,
    /// Where the events kept on disk only are (written, not yet taken back into memory).
    locations: Mutex<HashMap<u64, Location>>,
    /// The highest sequence number given (read without the pending list's lock).
    appended: AtomicU64,
    /// The highest sequence number on disk.
    durable: AtomicU64,
    /// The highest sequence number the writer is done with: written, or failed to write.
    attempted: AtomicU64,
    /// Wakes those waiting for `attempted` to reach theirs.
    progress: tokio::sync::Notify,
    /// Bytes the journal takes on disk, after the last write.
    disk_bytes: AtomicU64,
    /// Groups that could not be written (a full disk, an I/O error).
    write_errors: AtomicU64,
    /// The last group could not be written: nothing more should go to disk only.
    failing: AtomicBool,
    /// The writer sleeps with nothing to write: a push or an acknowledgement wakes it (only
    /// then, so the publish path does not wake it while it gathers a group).
    idle: AtomicBool,
    /// Callers waiting for the writer ([`Journal::written`]): it then commits at once.
    waiters: AtomicUsize,
    /// Groups written, by how long their oldest event waited from when it happened until
    /// it was on disk: bounds in [`WINDOW_BOUNDS_MS`], the last counting the slower.
    windows: [AtomicU64; WINDOW_BOUNDS_MS.len() + 1],
    stop: AtomicBool,
    /// Holds the writer before its next group (tests of a stalled disk).
    #[cfg(test)]
    paused: AtomicBool,
}

/// The events a journal held when it was opened: sequence numbers and where they are.
pub type Live = Vec<(u64, Location)>;

/// A webhook's journal. Shared by the webhook's versions (an update keeps it); dropping the
/// last handle writes what is pending and stops the writer.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    dir: PathBuf,
    epoch: u64,
    reader: Reader,
    /// The writer thread, to wake it without a lock.
    waker: Thread,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Opens the journal in `dir` and starts its writer; returns it with where the events it
    /// still holds are (oldest first).
    ///
    /// # Errors
    /// [`JournalError`] if the directory cannot be used.
    pub fn open(name: &str, dir: &Path) -> Result<(Arc<Self>, Live), JournalError> {
        let (log, recovered) = SegmentLog::open(dir, LogOptions::default())?;
        let epoch = log.epoch();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                events: Vec::new(),
                next_seq: log.last_seq() + 1,
            }),
            acks: Mutex::new(Vec::new()),
            // Every recovered event's place, before the writer can move one (compaction
            // then reports the new place here); forgotten as events are read back.
            locations: Mutex::new(recovered.live.iter().copied().collect()),
            appended: AtomicU64::new(log.last_seq()),
            durable: AtomicU64::new(log.last_seq()),
            attempted: AtomicU64::new(log.last_seq()),
            progress: tokio::sync::Notify::new(),
            disk_bytes: AtomicU64::new(log.disk_bytes()),
            write_errors: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            windows: Default::default(),
            stop: AtomicBool::new(false),
            #[cfg(test)]
            paused: AtomicBool::new(false),
        });
        if !recovered.live.is_empty() {
            tracing::info!(
                webhook = name,
                events = recovered.live.len(),
                "journal: queued events recovered"
            );
        }
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
            reader: Reader::new(dir),
            waker: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
        };
        Ok((Arc::new(journal), recovered.live))
    }

    /// Writes what is pending and stops the writer (later appends are not written).
    pub fn close(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.progress.notify_waiters();
        self.waker.unpark();
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "journal writer panicked");
        }
    }

    /// Stops the writer and deletes the journal's directory.
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

    /// Groups of events that could not be written.
    #[must_use]
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }

    /// How long events wait between happening and being on disk: of the groups written, the
    /// `(p50, p99, max)` of their oldest event's wait, in ms, as bucket bounds (`None` past
    /// the last bound); `None` before any group.
    #[must_use]
    pub fn write_window(&self) -> Option<WriteWindow> {
        let counts: Vec<u64> = self
            .shared
            .windows
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let at = |rank: u64| {
            let mut seen = 0;
            for (i, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return WINDOW_BOUNDS_MS.get(i).copied();
                }
            }
            None
        };
        let max = counts
            .iter()
            .rposition(|&n| n > 0)
            .and_then(|i| WINDOW_BOUNDS_MS.get(i).copied());
        Some(WriteWindow {
            groups: total,
            p50_ms: at(total.div_ceil(2)),
            p99_ms: at((total * 99).div_ceil(100)),
            max_ms: max,
        })
    }

    /// Events given a sequence number and not yet on disk.
    #[must_use]
    pub fn unwritten(&self) -> u64 {
        let appended = self.shared.appended.load(Ordering::Acquire);
        appended.saturating_sub(self.shared.durable.load(Ordering::Acquire))
    }

    /// Whether [`MAX_UNWRITTEN`] events wait for the writer.
    pub(crate) fn backlog_full(&self) -> bool {
        let appended = self.shared.appended.load(Ordering::Acquire);
        appended.saturating_sub(self.shared.attempted.load(Ordering::Acquire)) >= MAX_UNWRITTEN
    }

    /// Holds (or lets go) the writer before its next group.
    #[cfg(test)]
    pub(crate) fn pause_writer(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Release);
        self.waker.unpark();
    }

    /// Resolves once the writer is done with every event given a sequence number so far:
    /// written, or failed to write (a failing disk must not hold anyone for ever), or the
    /// writer stopped.
    pub fn written(&self) -> impl Future<Output = ()> + Send + 'static {
        let target = self.shared.appended.load(Ordering::Acquire);
        let shared = Arc::clone(&self.shared);
        let waker = self.waker.clone();
        async move {
            // Counted while waiting, so the writer does not gather for the interval.
            shared.waiters.fetch_add(1, Ordering::AcqRel);
            let _waiting = Waiting(&shared.waiters);
            waker.unpark();
            loop {
                let progress = shared.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if shared.attempted.load(Ordering::Acquire) >= target
                    || shared.stop.load(Ordering::Acquire)
                {
                    return;
                }
                progress.await;
            }
        }
    }

    /// The event recovered at `location` (sequence number `seq`), read and decoded.
    ///
    /// # Errors
    /// Why it cannot be read back.
    pub(crate) fn load(&self, seq: u64, location: Location) -> Result<Queued, String> {
        let (read, bytes) = self.reader.read(location).map_err(|e| e.to_string())?;
        if read != seq {
            return Err(format!("event {seq} expected, {read} found"));
        }
        let (own_id, event) = record::decode(&bytes).map_err(|e| e.to_string())?;
        Ok(Queued {
            event: Arc::new(event),
            id: Some(own_id.unwrap_or_else(|| id(self.epoch, seq))),
            seq,
            attempts: 0,
            requeued_at: 0,
        })
    }

    /// An event kept on disk only: from the pending list while it is not written yet, else
    /// from where the writer put it.
    pub(crate) fn fetch(&self, seq: u64) -> Fetched {
        match self.peek(seq) {
            Fetched::Event(item) => {
                self.forget(seq);
                Fetched::Event(item)
            }
            other => other,
        }
    }

    /// What [`Journal::fetch`] reads, without forgetting the event's place.
    pub(crate) fn peek(&self, seq: u64) -> Fetched {
        // Pending first: the writer records a location before it removes the event from the
        // pending list, so an event missing from both is not there yet.
        let attempted = self.shared.attempted.load(Ordering::Acquire);
        {
            let pending = self.shared.pending.lock();
            if let Ok(i) = pending.events.binary_search_by_key(&seq, |e| e.seq) {
                let event = &pending.events[i];
                return Fetched::Event(Queued {
                    event: Arc::clone(&event.event),
                    id: Some(event.own_id.unwrap_or_else(|| id(self.epoch, seq))),
                    seq,
                    attempts: 0,
                    requeued_at: 0,
                });
            }
        }
        let Some(location) = self.shared.locations.lock().get(&seq).copied() else {
            return if seq > attempted {
                Fetched::NotYet
            } else {
                // The writer is done with it and has no place for it: it was never written
                // (it could not be encoded).
                Fetched::Lost("never written".to_owned())
            };
        };
        match self.load(seq, location) {
            Ok(item) => Fetched::Event(item),
            Err(error) => {
                // Moved meanwhile (compaction): the writer has the new place now.
                let moved = self.shared.locations.lock().get(&seq).copied();
                match moved.filter(|m| *m != location).map(|m| self.load(seq, m)) {
                    Some(Ok(item)) => Fetched::Event(item),
                    _ => Fetched::Lost(error),
                }
            }
        }
    }

    /// Forgets where event `seq` is (it is read back, or dropped).
    pub(crate) fn forget(&self, seq: u64) {
        self.shared.locations.lock().remove(&seq);
    }

    /// Whether the last group of events could not be written (a full or failing disk).
    #[must_use]
    pub fn failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    /// Gives each event a sequence number and an id (its own, if it has one) and adds it to
    /// the pending list; `on_disk_only` says which are not kept in memory.
    pub(crate) fn append<'a>(&self, items: impl Iterator<Item = (&'a mut Queued, bool)>) {
        let mut pending = self.shared.pending.lock();
        let was_empty = pending.events.is_empty();
        for (item, on_disk_only) in items {
            let seq = pending.next_seq;
            pending.next_seq += 1;
            item.seq = seq;
            let own_id = item.id;
            item.id = Some(own_id.unwrap_or_else(|| id(self.epoch, seq)));
            pending.events.push(PendingEvent {
                seq,
                own_id,
                event: Arc::clone(&item.event),
                on_disk_only,
            });
        }
        self.shared
            .appended
            .store(pending.next_seq - 1, Ordering::Release);
        let wake = was_empty && !pending.events.is_empty();
        drop(pending);
        if wake {
            self.wake_if_idle();
        }
    }

    /// Wakes the writer if it sleeps with nothing to write (one atomic swap otherwise).
    fn wake_if_idle(&self) {
        if self.shared.idle.swap(false, Ordering::AcqRel) {
            self.waker.unpark();
        }
    }

    /// Records that the events `seqs` reached their end.
    pub(crate) fn acknowledge(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut acks = self.shared.acks.lock();
        let was_empty = acks.is_empty();
        acks.extend(seqs.into_iter().filter(|&seq| seq != 0));
        let wake = was_empty && !acks.is_empty();
        drop(acks);
        if wake {
            self.wake_if_idle();
        }
    }
}

/// Counts a caller of [`Journal::written`] while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
    // Groups in a row that could not be written.
    let mut failures: u32 = 0;
    loop {
        #[cfg(test)]
        while shared.paused.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        let stopping = shared.stop.load(Ordering::Acquire);
        if failures > 0 {
            if stopping && failures >= GIVE_UP_AFTER {
                let left = shared.pending.lock().events.len();
                tracing::error!(
                    webhook = name,
                    events = left,
                    "journal: stopping with events that could not be written"
                );
                return;
            }
            // A full or failing disk: try again later, not in a loop.
            std::thread::park_timeout(
                RETRY_WRITE
                    .saturating_mul(1 << failures.min(7))
                    .min(MAX_RETRY_WRITE),
            );
        }
        // Acknowledgements first: any taken here belongs to an event pushed before, so
        // already written or among the events copied next.
        let acks = std::mem::take(&mut *shared.acks.lock());
        let batch: Vec<PendingEvent> = shared.pending.lock().events.clone();
        if batch.is_empty() && acks.is_empty() {
            if stopping {
                return;
            }
            shared.idle.store(true, Ordering::Release);
            // Anything pushed after the lists were read but before `idle` was set: go on.
            let work = !shared.pending.lock().events.is_empty() || !shared.acks.lock().is_empty();
            if !work {
                std::thread::park_timeout(IDLE_WAKE);
            }
            shared.idle.store(false, Ordering::Release);
            continue;
        }
        let started = std::time::Instant::now();
        encoded.clear();
        bounds.clear();
        for event in &batch {
            let start = encoded.len();
            if let Err(error) = record::encode(event.own_id, &event.event, &mut encoded) {
                encoded.truncate(start);
                tracing::error!(webhook = name, seq = event.seq, %error, "journal: an event could not be encoded");
                continue;
            }
            bounds.push((event.seq, start, encoded.len()));
        }
        let records: Vec<(u64, &[u8])> = bounds
            .iter()
            .map(|&(seq, start, end)| (seq, &encoded[start..end]))
            .collect();
        if let Err(error) = log.append(&records, &acks) {
            failures += 1;
            failed(shared, name, &error, batch.len());
            // Nothing of it was written: what is kept on disk only stays pending, to try
            // again; what is in memory too goes on from there (not on disk). The
            // acknowledgements wait for the next group.
            let mut pending = shared.pending.lock();
            let at = batch.len().min(pending.events.len());
            let newer = pending.events.split_off(at);
            pending.events.retain(|e| e.on_disk_only);
            pending.events.extend(newer);
            drop(pending);
            shared.acks.lock().extend(acks);
            done_with(shared, &batch);
            continue;
        }
        let synced = log.sync();
        publish_locations(shared, &batch, log.take_written(), &acks);
        shared.pending.lock().events.drain(..batch.len());
        match synced {
            Ok(()) => {
                failures = 0;
                shared.failing.store(false, Ordering::Relaxed);
                shared.durable.store(log.last_seq(), Ordering::Release);
                if let Some(oldest) = batch.first() {
                    let waited = now_ms().saturating_sub(oldest.event.timestamp);
                    let bucket = WINDOW_BOUNDS_MS
                        .iter()
                        .position(|&bound| waited <= bound)
                        .unwrap_or(WINDOW_BOUNDS_MS.len());
                    shared.windows[bucket].fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                failures += 1;
                failed(shared, name, &error, batch.len());
            }
        }
        shared.disk_bytes.store(log.disk_bytes(), Ordering::Relaxed);
        done_with(shared, &batch);
        // Gather the next group for the rest of the interval, unless someone waits for it.
        let next = started + COMMIT_INTERVAL;
        while shared.waiters.load(Ordering::Acquire) == 0 && !shared.stop.load(Ordering::Acquire) {
            let now = std::time::Instant::now();
            if now >= next {
                break;
            }
            std::thread::park_timeout(next - now);
        }
    }
}

/// The writer is done with `batch`: wake who waits for it.
fn done_with(shared: &Shared, batch: &[PendingEvent]) {
    if let Some(last) = batch.last() {
        shared.attempted.fetch_max(last.seq, Ordering::AcqRel);
        shared.progress.notify_waiters();
    }
}

/// Records where the written events kept on disk only are (and where compaction moved
/// those already known), and forgets the acknowledged ones.
fn publish_locations(
    shared: &Shared,
    batch: &[PendingEvent],
    written: Vec<(u64, Location)>,
    acks: &[u64],
) {
    let mut locations = shared.locations.lock();
    // The usual case, nothing kept on disk only: no lookup per event.
    if locations.is_empty() && !batch.iter().any(|e| e.on_disk_only) {
        return;
    }
    for (seq, location) in written {
        let disk_only = || {
            batch
                .binary_search_by_key(&seq, |e| e.seq)
                .is_ok_and(|i| batch[i].on_disk_only)
        };
        if locations.contains_key(&seq) || disk_only() {
            locations.insert(seq, location);
        }
    }
    for seq in acks {
        locations.remove(seq);
    }
}

fn failed(shared: &Shared, name: &str, error: &JournalError, events: usize) {
    shared.failing.store(true, Ordering::Relaxed);
    let errors = shared.write_errors.fetch_add(1, Ordering::Relaxed);
    // Once, then every thousandth: a full disk fails every group.
    if errors.is_multiple_of(1000) {
        tracing::error!(webhook = name, %error, events, failures = errors + 1,
            "journal: could not write; events in memory are kept there only");
    }
}
