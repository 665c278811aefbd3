//! The thread that writes the broker's journal: group commits of the records and
//! acknowledgements the sessions and the retained store hand it.
//!
//! Sessions only push a record (`Arc`s, nothing encoded) onto the pending list under a short
//! lock. The writer takes the acknowledgements and the pending records together, drops every
//! record acknowledged before it was written (a message a live subscriber acknowledged while
//! the previous group was syncing never reaches the disk), encodes the rest and writes both
//! with one write and one `fdatasync`; while one sync runs, the next group gathers.

use std::{
    collections::HashSet,
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use hookmq_journal::SegmentLog;
use parking_lot::Mutex;

use super::record::{self, Record};
use crate::message::now_ms;

/// How long the writer sleeps with nothing to write (a push wakes it earlier).
const IDLE_WAKE: Duration = Duration::from_millis(100);
/// How often the writer notes the time (a [`Record::Clock`]), so that after a crash the
/// sessions that were connected count their expiry from about when it happened.
const CLOCK_EVERY: Duration = Duration::from_secs(10);
/// The first wait before the writer tries a failed group again; it doubles.
const RETRY_WRITE: Duration = Duration::from_millis(10);
/// The longest wait between tries.
const MAX_RETRY_WRITE: Duration = Duration::from_secs(1);
/// Failed writes in a row after which a stopping writer gives up.
const GIVE_UP_AFTER: u32 = 3;
/// While nobody waits for a group, the writer gathers at least this long between two: each
/// `fdatasync` costs the same whatever it carries.
pub(super) const COMMIT_INTERVAL: Duration = Duration::from_millis(4);

/// Records waiting for the writer, and the sequence number the next one gets.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) records: Vec<(u64, Record)>,
    pub(super) next_seq: u64,
}

/// What the writer thread and the broker share.
#[derive(Debug)]
pub(super) struct Shared {
    /// parking_lot mutex: a push appends a record of a few `Arc`s; the writer takes the list.
    pub(super) pending: Mutex<Pending>,
    /// Sequence numbers whose records are done with (superseded, consumed, ended).
    pub(super) acks: Mutex<Vec<u64>>,
    /// Changes handed to the writer (records appended, acknowledgements given), counted
    /// after each is in its list: a writer that reads this count before taking the lists
    /// takes every change it counts.
    pub(super) changes: AtomicU64,
    /// Changes the writer is done with: on disk, dropped unwritten as acknowledged, or
    /// failed to write.
    pub(super) done: AtomicU64,
    /// Wakes those waiting for `done`.
    pub(super) progress: tokio::sync::Notify,
    /// Callers waiting for a group: the writer then commits at once.
    pub(super) waiters: AtomicUsize,
    /// The writer sleeps with nothing to write: a push wakes it (only then, so pushes do not
    /// wake it while it gathers).
    pub(super) idle: AtomicBool,
    /// Groups that could not be written.
    pub(super) write_errors: AtomicU64,
    /// Records written (not counting those dropped as acknowledged before their group).
    pub(super) written: AtomicU64,
    pub(super) stop: AtomicBool,
}

impl Shared {
    pub(super) fn new(last_seq: u64) -> Self {
        Self {
            pending: Mutex::new(Pending {
                records: Vec::new(),
                next_seq: last_seq + 1,
            }),
            acks: Mutex::new(Vec::new()),
            changes: AtomicU64::new(0),
            done: AtomicU64::new(0),
            progress: tokio::sync::Notify::new(),
            waiters: AtomicUsize::new(0),
            idle: AtomicBool::new(false),
            write_errors: AtomicU64::new(0),
            written: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

/// Records and acknowledgements written together.
#[derive(Debug, Default)]
struct Group {
    records: Vec<(u64, Record)>,
    acks: Vec<u64>,
}

/// The writer thread's state.
struct Writer<'a> {
    shared: &'a Shared,
    log: SegmentLog,
    /// Groups in a row that could not be written.
    failures: u32,
    /// The group that failed last, to write first.
    retry: Option<Group>,
    /// The live clock record and when it was written.
    clock: (u64, Instant),
    encoded: Vec<u8>,
}

/// The writer thread: group commits until stopped, then one last one. `gather` is the
/// shortest time between two groups while nobody waits.
pub(super) fn write_loop(shared: &Shared, log: SegmentLog, gather: Duration) {
    // However the thread ends (a panic included), nobody waits for it any more.
    let _release = ReleaseWaiters(shared);
    let mut writer = Writer {
        shared,
        log,
        failures: 0,
        retry: None,
        clock: (0, Instant::now()),
        encoded: Vec::new(),
    };
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        if writer.failures > 0 {
            if stopping && writer.failures >= GIVE_UP_AFTER {
                tracing::error!("persistence: stopping with records that could not be written");
                return;
            }
            std::thread::park_timeout(
                RETRY_WRITE
                    .saturating_mul(1 << writer.failures.min(7))
                    .min(MAX_RETRY_WRITE),
            );
        }
        let changes = shared.changes.load(Ordering::Acquire);
        let group = writer.take_group();
        if group.records.is_empty() && group.acks.is_empty() {
            // Every change counted was taken by an earlier group (a change is counted after
            // it is in its list, so one the previous group took may be counted only now).
            shared.done.fetch_max(changes, Ordering::AcqRel);
            shared.progress.notify_waiters();
            if stopping {
                return;
            }
            sleep_idle(shared);
            continue;
        }
        let started = Instant::now();
        writer.write(group);
        shared.done.fetch_max(changes, Ordering::AcqRel);
        shared.progress.notify_waiters();
        // Gather the next group for the rest of the interval, unless someone waits for it.
        let next = started + gather;
        while shared.waiters.load(Ordering::Acquire) == 0 && !shared.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::park_timeout(next - now);
        }
    }
}

impl Writer<'_> {
    /// The failed group if any, then what was acknowledged and pushed since (acknowledgements
    /// first: each taken is of a record pushed before it, so already written or among the
    /// records taken next), and the clock when it is due.
    fn take_group(&mut self) -> Group {
        let mut group = self.retry.take().unwrap_or_default();
        group.acks.append(&mut self.shared.acks.lock());
        let (clock_seq, written_at) = self.clock;
        let mut pending = self.shared.pending.lock();
        group.records.append(&mut pending.records);
        // Numbered under the same lock as the records taken: nothing appended meanwhile
        // gets a lower number and waits for a later group.
        if clock_seq == 0 || written_at.elapsed() >= CLOCK_EVERY {
            let seq = pending.next_seq;
            pending.next_seq += 1;
            drop(pending);
            group.records.push((seq, Record::Clock(now_ms())));
            if clock_seq != 0 {
                group.acks.push(clock_seq);
            }
            self.clock = (seq, Instant::now());
        }
        group
    }

    /// Writes and syncs one group; a failed write keeps it for the next try (the waiters are
    /// released all the same: a failing disk must not hold MQTT).
    fn write(&mut self, mut group: Group) {
        cancel_acknowledged(&mut group.records, &mut group.acks);
        self.encoded.clear();
        let mut bounds = Vec::with_capacity(group.records.len());
        for (seq, record) in &group.records {
            let start = self.encoded.len();
            if let Err(error) = record::encode(record, &mut self.encoded) {
                self.encoded.truncate(start);
                tracing::error!(seq, %error, "persistence: a record could not be encoded");
                continue;
            }
            bounds.push((*seq, start, self.encoded.len()));
        }
        let slices: Vec<(u64, &[u8])> = bounds
            .iter()
            .map(|&(seq, start, end)| (seq, &self.encoded[start..end]))
            .collect();
        if let Err(error) = self.log.append(&slices, &group.acks) {
            // Nothing of it was written: tried again next.
            self.failed(&error, slices.len());
            self.retry = Some(group);
            return;
        }
        match self.log.sync() {
            Ok(()) => {
                self.failures = 0;
                self.shared
                    .written
                    .fetch_add(slices.len() as u64, Ordering::Relaxed);
            }
            // Written, maybe not durable, and not tried again: after a failed sync the kernel
            // may have dropped the pages, and the journal goes on in a new segment. Counted
            // and logged; the waiters were released all the same (a failing disk never
            // holds MQTT).
            Err(error) => self.failed(&error, slices.len()),
        }
    }

    fn failed(&mut self, error: &hookmq_journal::JournalError, records: usize) {
        self.failures += 1;
        let errors = self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        // Once, then every thousandth: a full disk fails every group.
        if errors.is_multiple_of(1000) {
            tracing::error!(%error, records, failures = errors + 1,
                "persistence: could not write; state is kept in memory meanwhile");
        }
    }
}

/// Stops the writer's waiters waiting when the thread ends.
struct ReleaseWaiters<'a>(&'a Shared);

impl Drop for ReleaseWaiters<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        self.0.progress.notify_waiters();
    }
}

/// Drops the records acknowledged in the same group, with their acknowledgements: they
/// began and ended between two syncs, so the disk never needs them.
fn cancel_acknowledged(records: &mut Vec<(u64, Record)>, acks: &mut Vec<u64>) {
    if acks.is_empty() || records.is_empty() {
        return;
    }
    let first = records.first().map_or(0, |(seq, _)| *seq);
    let in_group: HashSet<u64> = acks.iter().copied().filter(|&seq| seq >= first).collect();
    if in_group.is_empty() {
        return;
    }
    let mut cancelled = HashSet::new();
    records.retain(|(seq, _)| {
        let keep = !in_group.contains(seq);
        if !keep {
            cancelled.insert(*seq);
        }
        keep
    });
    acks.retain(|seq| !cancelled.contains(seq));
}

/// Sleeps until a push or the idle timeout.
fn sleep_idle(shared: &Shared) {
    shared.idle.store(true, Ordering::Release);
    // Anything pushed after the lists were read but before `idle` was set: go on.
    let work = !shared.pending.lock().records.is_empty() || !shared.acks.lock().is_empty();
    if !work && !shared.stop.load(Ordering::Acquire) {
        std::thread::park_timeout(IDLE_WAKE);
    }
    shared.idle.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_acknowledged_in_their_own_group_are_never_written() {
        let mut records = vec![
            (5, Record::Clock(1)),
            (6, Record::Clock(2)),
            (7, Record::Clock(3)),
        ];
        let mut acks = vec![2, 6, 7];
        cancel_acknowledged(&mut records, &mut acks);
        let left: Vec<u64> = records.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(left, vec![5]);
        assert_eq!(
            acks,
            vec![2],
            "an older record's acknowledgement is written"
        );
    }
}
