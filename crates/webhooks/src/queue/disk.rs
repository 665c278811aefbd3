//! The disk-buffered queue: every event is written to the webhook's [`Journal`] and
//! forgotten there once settled, so what is queued or in flight survives a crash or a
//! restart; and the queue can hold far more than memory would, as only `queue_capacity`
//! events wait in memory.
//!
//! Each lane keeps its next events in memory (the lanes of a [`MemoryQueue`], bounded by
//! `queue_capacity` across lanes). When memory is full, further events of a lane are kept
//! **on disk only**: the lane remembers their sequence numbers, in order, and until it has
//! taken them all back, its new events join them there, so a client's order holds. A lane
//! whose memory runs empty reads the next few back from the journal (or from the journal's
//! pending list, if not written yet). On disk the bound is `max_buffer_bytes` of journal;
//! past it `overflow` decides: drop the new event, or drop the oldest queued one.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;

use super::{
    MemoryQueue, Queue, Queued, Wait, client_key, lane_of_key,
    writer::{Fetched, Journal},
};
use hookmq_journal::Location;

use crate::spec::Overflow;

/// Events a lane reads back from disk at a time.
const LOAD_BATCH: usize = 64;
/// How long a lane whose next event is being written waits before asking again.
const NOT_WRITTEN_YET: Duration = Duration::from_millis(1);

/// An event kept on disk only: its sequence number, and its client's key (see
/// [`client_key`]), so it can move to another lane without being read back.
type OnDisk = (u64, u64);

/// A lane's events kept on disk only.
#[derive(Debug, Default)]
struct Spill {
    /// Oldest first. parking_lot mutex: a push appends one, a load reads a few and later
    /// removes them; never held across I/O.
    seqs: Mutex<VecDeque<OnDisk>>,
    /// How many: read by pushes without the lock (not zero: the lane's new events join them).
    count: AtomicUsize,
    /// The lane's worker is reading some back (set and read under the list's lock).
    loading: AtomicBool,
}

/// Where a pushed event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Memory,
    DiskOnly,
}

/// A webhook's queue on disk.
#[derive(Debug)]
pub struct DiskQueue {
    memory: MemoryQueue,
    journal: Arc<Journal>,
    spills: Vec<Spill>,
    /// Events kept on disk only, in all lanes.
    spilled: AtomicUsize,
    max_bytes: u64,
    overflow: Overflow,
    /// Events kept on disk only that could not be read back (a damaged record).
    lost: AtomicU64,
    /// Set until [`Queue::adopt`] has placed the previous version's events: every push
    /// goes to disk only meanwhile, so none can overtake them.
    adopting: AtomicBool,
}

impl DiskQueue {
    /// A queue of `lanes` lanes keeping at most `capacity` events in memory and up to
    /// `max_bytes` of journal, journaled in `journal`; `adopting` when it will take over a
    /// previous version's queue ([`Queue::adopt`]).
    #[must_use]
    pub fn new(
        lanes: usize,
        capacity: usize,
        max_bytes: u64,
        overflow: Overflow,
        journal: Arc<Journal>,
        adopting: bool,
    ) -> Self {
        let memory = MemoryQueue::new(lanes, capacity);
        let spills = (0..memory.lanes()).map(|_| Spill::default()).collect();
        Self {
            memory,
            journal,
            spills,
            spilled: AtomicUsize::new(0),
            max_bytes,
            overflow,
            lost: AtomicU64::new(0),
            adopting: AtomicBool::new(adopting),
        }
    }

    fn spill(&self, lane: usize) -> &Spill {
        &self.spills[lane % self.spills.len()]
    }

    /// Whether more may go to disk only: under the bound, the last write succeeded, and the
    /// writer keeps up (what waits for it is held in memory).
    fn disk_has_room(&self) -> bool {
        self.journal.disk_bytes() < self.max_bytes
            && !self.journal.failing()
            && !self.journal.backlog_full()
    }

    /// Places the events a journal held when it was opened (`live`, oldest first): read back
    /// and put in their lane (`lane_of`) while memory has room, else kept on disk only.
    /// Returns how many could not be read back (they are lost, and logged).
    pub fn restore_journal(
        &self,
        live: Vec<(u64, Location)>,
        mut lane_of: impl FnMut(&Queued) -> usize,
    ) -> usize {
        let mut unreadable = 0;
        for (seq, _) in live {
            // Through the journal's map of places: its writer may have moved an event since.
            let item = match self.journal.peek(seq) {
                Fetched::Event(item) => item,
                Fetched::NotYet | Fetched::Lost(_) => {
                    tracing::error!(
                        seq,
                        "journal: an event could not be read back; it is dropped"
                    );
                    self.journal.forget(seq);
                    self.journal.acknowledge([seq]);
                    unreadable += 1;
                    continue;
                }
            };
            let lane = lane_of(&item) % self.spills.len();
            let spill = self.spill(lane);
            if spill.count.load(Ordering::Relaxed) == 0 && self.memory.reserve_up_to(1) == 1 {
                self.journal.forget(seq);
                self.memory.push_reserved([(lane, item)]);
            } else {
                // Read again when the lane gets to it (its place stays known).
                self.keep_on_disk(lane, (seq, client_key(item.event.client_id())));
            }
        }
        unreadable
    }

    /// Notes that `lane`'s next event (after those there already) is on disk only; false if
    /// the queue closed (a new version took the lists over): the caller drops it.
    fn keep_on_disk(&self, lane: usize, entry: OnDisk) -> bool {
        let spill = self.spill(lane);
        let mut seqs = spill.seqs.lock();
        // Under the list's lock: a take-over drains the lists under it after closing.
        if self.memory.is_closed() {
            return false;
        }
        seqs.push_back(entry);
        drop(seqs);
        spill.count.fetch_add(1, Ordering::AcqRel);
        self.spilled.fetch_add(1, Ordering::AcqRel);
        self.memory.notify(lane);
        true
    }

    /// Reads `lane`'s next events kept on disk back into its memory (called by its worker
    /// when the lane's memory is empty, so they go in first).
    fn load(&self, lane: usize) {
        let spill = self.spill(lane);
        let seqs: Vec<u64> = {
            let seqs = spill.seqs.lock();
            // Set under the lock: `drop_oldest` leaves a list being read back alone.
            spill.loading.store(true, Ordering::Release);
            seqs.iter().take(LOAD_BATCH).map(|&(seq, _)| seq).collect()
        };
        let mut loaded = Vec::with_capacity(seqs.len());
        let mut done = 0;
        for &seq in &seqs {
            match self.journal.fetch(seq) {
                Fetched::Event(item) => loaded.push((lane, item)),
                Fetched::NotYet => break,
                Fetched::Lost(error) => {
                    tracing::error!(seq, %error, "journal: an event kept on disk could not be read back; it is dropped");
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    self.journal.acknowledge([seq]);
                }
            }
            done += 1;
        }
        if done > 0 {
            // Into memory first, then off the list: until then the lane's new events keep
            // joining the list, so none can overtake these.
            self.memory.force_reserve(loaded.len());
            let refused = self.memory.push_reserved(loaded);
            self.journal
                .acknowledge(refused.iter().map(|item| item.seq));
            let mut list = spill.seqs.lock();
            for _ in 0..done {
                list.pop_front();
            }
            drop(list);
            spill.count.fetch_sub(done, Ordering::AcqRel);
            self.spilled.fetch_sub(done, Ordering::AcqRel);
        }
        spill.loading.store(false, Ordering::Release);
    }

    /// [`Queue::adopt`] of a disk buffer on the same journal; returns how many found this
    /// queue closed.
    fn take_over(&self, old: &Self, lane_for: &mut dyn FnMut(&Queued) -> usize) -> usize {
        let lanes = self.spills.len();
        let mut in_memory: Vec<(usize, Queued)> = Vec::new();
        let mut on_disk: Vec<Vec<OnDisk>> = vec![Vec::new(); lanes];
        for lane in 0..old.spills.len() {
            for item in old.memory.drain_lane(lane) {
                in_memory.push((lane_for(&item), item));
            }
            let spill = &old.spills[lane];
            let entries: Vec<OnDisk> = spill.seqs.lock().drain(..).collect();
            spill.count.fetch_sub(entries.len(), Ordering::AcqRel);
            old.spilled.fetch_sub(entries.len(), Ordering::AcqRel);
            for entry in entries {
                on_disk[lane_of_key(entry.1, lanes)].push(entry);
            }
        }
        for (lane, entries) in on_disk.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let spill = &self.spills[lane];
            let mut seqs = spill.seqs.lock();
            for entry in entries.iter().rev() {
                seqs.push_front(*entry);
            }
            drop(seqs);
            spill.count.fetch_add(entries.len(), Ordering::AcqRel);
            self.spilled.fetch_add(entries.len(), Ordering::AcqRel);
            self.memory.notify(lane);
        }
        self.memory.force_reserve(in_memory.len());
        let refused = self.memory.push_front_reserved(in_memory);
        self.journal
            .acknowledge(refused.iter().map(|item| item.seq));
        refused.len()
    }

    /// Drops the oldest queued event to make room (`overflow = "drop_oldest"`); false if
    /// there is none to drop.
    fn drop_oldest(&self) -> bool {
        let on_disk = self
            .spills
            .iter()
            .filter(|spill| !spill.loading.load(Ordering::Acquire))
            .filter_map(|spill| spill.seqs.lock().front().map(|&(seq, _)| seq))
            .min();
        if let Some(item) = self.memory.take_oldest_before(on_disk) {
            self.journal.acknowledge([item.seq]);
            return true;
        }
        on_disk.is_some_and(|seq| self.drop_kept_on_disk(seq))
    }

    /// Drops the event `seq` kept on disk, if it is still at the head of its lane's list.
    fn drop_kept_on_disk(&self, seq: u64) -> bool {
        for spill in &self.spills {
            let mut seqs = spill.seqs.lock();
            if !spill.loading.load(Ordering::Acquire)
                && seqs.front().is_some_and(|&(front, _)| front == seq)
            {
                seqs.pop_front();
                spill.count.fetch_sub(1, Ordering::AcqRel);
                self.spilled.fetch_sub(1, Ordering::AcqRel);
                drop(seqs);
                self.journal.acknowledge([seq]);
                return true;
            }
        }
        false
    }
}

impl DiskQueue {
    /// [`Queue::push_many`] event by event: to memory while the lane has nothing on disk
    /// and memory has room, else to disk only (within the bound), else overflow.
    fn place_each(&self, items: Vec<(usize, Queued)>) -> usize {
        let lanes = self.spills.len();
        let disk_room = self.disk_has_room();
        let mut placed: Vec<(usize, Queued, Place)> = Vec::with_capacity(items.len());
        // Lanes that sent an event of this run to disk: their next ones follow it there.
        let mut to_disk: Vec<usize> = Vec::new();
        let mut dropped = 0;
        for (lane, item) in items {
            let lane = lane % lanes;
            let behind_disk = self.spill(lane).count.load(Ordering::Acquire) > 0
                || to_disk.contains(&lane)
                || self.adopting.load(Ordering::Acquire);
            if !behind_disk && self.memory.reserve_up_to(1) == 1 {
                placed.push((lane, item, Place::Memory));
            } else if disk_room || (self.overflow == Overflow::DropOldest && self.drop_oldest()) {
                // With drop_oldest the journal shrinks as whole segments empty.
                dropped += usize::from(!disk_room);
                to_disk.push(lane);
                placed.push((lane, item, Place::DiskOnly));
            } else {
                dropped += 1;
            }
        }
        self.journal.append(
            placed
                .iter_mut()
                .map(|(_, item, place)| (item, *place == Place::DiskOnly)),
        );
        let mut in_memory = Vec::with_capacity(placed.len());
        let mut closed_out = Vec::new();
        for (lane, item, place) in placed {
            match place {
                Place::Memory => in_memory.push((lane, item)),
                Place::DiskOnly => {
                    let entry = (item.seq, client_key(item.event.client_id()));
                    if !self.keep_on_disk(lane, entry) {
                        closed_out.push(item.seq);
                    }
                }
            }
        }
        let refused = self.memory.push_reserved(in_memory);
        // Journaled but closed out: forgotten again, and counted as dropped.
        closed_out.extend(refused.iter().map(|item| item.seq));
        self.journal.acknowledge(closed_out.iter().copied());
        dropped + closed_out.len()
    }
}

impl Queue for DiskQueue {
    fn push_many(&self, mut items: Vec<(usize, Queued)>) -> usize {
        if self.memory.is_closed() {
            return items.len();
        }
        // The usual case: nothing waits on disk and memory takes the whole run.
        if self.spilled.load(Ordering::Acquire) == 0 && !self.adopting.load(Ordering::Acquire) {
            let taken = self.memory.reserve_up_to(items.len());
            if taken == items.len() {
                self.journal
                    .append(items.iter_mut().map(|(_, item)| (item, false)));
                let refused = self.memory.push_reserved(items);
                self.journal
                    .acknowledge(refused.iter().map(|item| item.seq));
                return refused.len();
            }
            self.memory.release(taken);
        }
        self.place_each(items)
    }

    fn push_front_run(&self, mut items: Vec<(usize, Queued)>) -> usize {
        // Events from a version without this journal (its buffer was in memory) are
        // journaled now; the others are on disk already. Adopted events all go to memory.
        self.journal.append(
            items
                .iter_mut()
                .filter(|(_, item)| item.seq == 0)
                .map(|(_, item)| (item, false)),
        );
        let refused = self.memory.push_front_returning(items);
        // Those that did not fit are forgotten.
        self.journal
            .acknowledge(refused.iter().map(|item| item.seq));
        refused.len()
    }

    /// The events come from this journal: they are on disk already. Unused: see
    /// [`DiskQueue::restore_journal`].
    fn restore(&self, items: Vec<(usize, Queued)>) {
        self.memory.restore(items);
    }

    fn take(&self, lane: usize) -> Option<Queued> {
        if let Some(item) = self.memory.take(lane) {
            return Some(item);
        }
        if self.spill(lane).count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.load(lane);
        self.memory.take(lane)
    }

    fn put_back(&self, lane: usize, item: Queued) {
        self.memory.put_back(lane, item);
    }

    fn settle(&self, item: &Queued) {
        self.journal.acknowledge([item.seq]);
    }

    fn wait(&self, lane: usize) -> Wait<'_> {
        if self.spill(lane).count.load(Ordering::Acquire) > 0 {
            // Its next event is being written: a moment.
            return Box::pin(tokio::time::sleep(NOT_WRITTEN_YET));
        }
        self.memory.wait(lane)
    }

    fn len(&self) -> usize {
        self.memory.len() + self.spilled.load(Ordering::Relaxed)
    }

    fn on_disk_only(&self) -> usize {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Memory's room, or without a bound while the disk has room (or the oldest make room):
    /// a caller that copies only `room()` events of a run must not cut it at memory's.
    fn room(&self) -> usize {
        if self.memory.is_closed() {
            0
        } else if self.disk_has_room() || self.overflow == Overflow::DropOldest {
            usize::MAX
        } else {
            self.memory.room()
        }
    }

    fn lanes(&self) -> usize {
        self.memory.lanes()
    }

    fn as_disk(&self) -> Option<&DiskQueue> {
        Some(self)
    }

    fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// From a disk buffer on the same journal, nothing is read back: what it kept in memory
    /// goes to the heads of this queue's lanes (even past the memory bound: it fitted the
    /// older one's), and what it kept on disk joins the heads of their new lanes' lists by
    /// the client key. Meanwhile every new event went to disk only, behind them.
    fn adopt(&self, older: &dyn Queue, lane_for: &mut dyn FnMut(&Queued) -> usize) -> usize {
        older.close();
        let same_journal = older
            .as_disk()
            .filter(|old| Arc::ptr_eq(&old.journal, &self.journal));
        let dropped = match same_journal {
            Some(old) => self.take_over(old, lane_for),
            None => super::push_drained(self, older, lane_for),
        };
        self.adopting.store(false, Ordering::Release);
        dropped
    }

    fn close(&self) {
        self.memory.close();
    }

    fn is_closed(&self) -> bool {
        self.memory.is_closed()
    }

    /// Lane by lane: what waits in memory, then what is kept on disk (read back).
    fn drain(&self) -> Vec<Queued> {
        let mut all = Vec::new();
        for lane in 0..self.spills.len() {
            all.extend(self.memory.drain_lane(lane));
            let spill = self.spill(lane);
            let seqs: Vec<OnDisk> = spill.seqs.lock().drain(..).collect();
            spill.count.fetch_sub(seqs.len(), Ordering::AcqRel);
            self.spilled.fetch_sub(seqs.len(), Ordering::AcqRel);
            for (seq, _) in seqs {
                // Being written, it comes from the pending list; written, from disk.
                let mut tries = 0;
                loop {
                    match self.journal.fetch(seq) {
                        Fetched::Event(item) => all.push(item),
                        Fetched::NotYet if tries < 1000 => {
                            tries += 1;
                            std::thread::sleep(NOT_WRITTEN_YET);
                            continue;
                        }
                        Fetched::NotYet => {
                            tracing::error!(
                                seq,
                                "journal: an event kept on disk was not written in time; it is dropped"
                            );
                            self.lost.fetch_add(1, Ordering::Relaxed);
                            self.journal.acknowledge([seq]);
                        }
                        Fetched::Lost(error) => {
                            tracing::error!(seq, %error, "journal: an event kept on disk could not be read back; it is dropped");
                            self.lost.fetch_add(1, Ordering::Relaxed);
                            self.journal.acknowledge([seq]);
                        }
                    }
                    break;
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use hookmq_broker::hooks::EventKind;

    use super::*;
    use crate::samples::sample;

    fn event(n: u64) -> Queued {
        let mut event = sample(EventKind::MessagePublish, "n");
        event.timestamp = n;
        Queued::new(Arc::new(event))
    }

    fn open(dir: &std::path::Path) -> (Arc<Journal>, Vec<(u64, Location)>) {
        Journal::open("t", dir).expect("journal")
    }

    /// Takes everything `lane` has, as timestamps, settling each.
    /// A queue of `lanes` lanes holding `capacity` in memory, on a journal without a bound.
    fn unbounded(lanes: usize, capacity: usize, journal: Arc<Journal>) -> DiskQueue {
        DiskQueue::new(lanes, capacity, 1 << 30, Overflow::DropNew, journal, false)
    }

    fn take_all(queue: &DiskQueue, lane: usize) -> Vec<u64> {
        let mut taken = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while queue.len() > 0 || taken.is_empty() {
            match queue.take(lane) {
                Some(item) => {
                    queue.settle(&item);
                    taken.push(item.event.timestamp);
                }
                None if queue.spill(lane).count.load(Ordering::Acquire) > 0 => {
                    assert!(std::time::Instant::now() < deadline, "stuck");
                    std::thread::sleep(NOT_WRITTEN_YET);
                }
                None => break,
            }
        }
        taken
    }

    #[test]
    fn past_memory_a_lane_keeps_events_on_disk_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let (journal, _) = open(dir.path());
        let queue = unbounded(2, 4, journal);
        // Lane 0 fills memory; then both lanes spill, and lane 0 stays behind its disk list
        // even when memory frees up.
        let run = |range: std::ops::Range<u64>, lane| range.map(|n| (lane, event(n))).collect();
        assert_eq!(queue.push_many(run(0..10, 0)), 0);
        assert_eq!(queue.push_many(run(100..103, 1)), 0);
        assert_eq!((queue.len(), queue.on_disk_only()), (13, 9));
        assert_eq!(take_all(&queue, 1), [100, 101, 102], "lane 1, from disk");
        assert_eq!(queue.push_many(run(10..12, 0)), 0);
        assert_eq!(
            take_all(&queue, 0),
            (0..12).collect::<Vec<_>>(),
            "lane 0 in order"
        );
        assert_eq!((queue.len(), queue.on_disk_only()), (0, 0));
    }

    #[test]
    fn a_reopened_journal_fills_memory_then_keeps_the_rest_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (journal, _) = open(dir.path());
            let queue = unbounded(2, 1_000, Arc::clone(&journal));
            let events: Vec<(usize, Queued)> =
                (0..50).map(|n| ((n % 2) as usize, event(n))).collect();
            assert_eq!(queue.push_many(events), 0);
            journal.close();
        }
        let (journal, live) = open(dir.path());
        assert_eq!(live.len(), 50);
        let queue = unbounded(2, 8, journal);
        let unreadable = queue.restore_journal(live, |item| (item.event.timestamp % 2) as usize);
        assert_eq!(unreadable, 0);
        assert_eq!((queue.len(), queue.on_disk_only()), (50, 42));
        let even: Vec<u64> = (0..50).filter(|n| n % 2 == 0).collect();
        let odd: Vec<u64> = (0..50).filter(|n| n % 2 == 1).collect();
        assert_eq!(take_all(&queue, 0), even);
        assert_eq!(take_all(&queue, 1), odd);
    }

    #[test]
    fn at_the_byte_bound_new_or_oldest_events_are_dropped() {
        for (overflow, kept) in [
            (Overflow::DropNew, vec![0, 1, 2]),
            (Overflow::DropOldest, vec![3, 4, 5]),
        ] {
            let dir = tempfile::tempdir().expect("dir");
            let (journal, _) = open(dir.path());
            // A bound the journal's first segment header already reaches: the disk is
            // "full", so only memory (3 events) takes them.
            let queue = DiskQueue::new(1, 3, 1, overflow, journal, false);
            assert_eq!(queue.push_many((0..3).map(|n| (0, event(n))).collect()), 0);
            let dropped = queue.push_many((3..6).map(|n| (0, event(n))).collect());
            assert_eq!(dropped, 3, "{overflow:?}");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut taken = Vec::new();
            while taken.len() < kept.len() {
                match queue.take(0) {
                    Some(item) => taken.push(item.event.timestamp),
                    None => {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "{overflow:?}: {taken:?}"
                        );
                        std::thread::sleep(NOT_WRITTEN_YET);
                    }
                }
            }
            assert_eq!(taken, kept, "{overflow:?}");
        }
    }

    /// A new version with another lane count takes over a backlog far past its memory bound
    /// without reading it back or dropping any, ahead of what arrived meanwhile.
    #[test]
    fn a_new_version_takes_over_a_backlog_kept_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let (journal, _) = open(dir.path());
        let old = unbounded(2, 4, Arc::clone(&journal));
        let key = |item: &Queued| crate::queue::lane_of(item.event.client_id(), 3);
        assert_eq!(old.push_many((0..40).map(|n| (0, event(n))).collect()), 0);
        assert_eq!(old.on_disk_only(), 36);
        let new = DiskQueue::new(3, 4, 1 << 30, Overflow::DropNew, journal, true);
        // Arrives while the old version stops: it must come after the 40.
        let lane = key(&event(0));
        assert_eq!(new.push_many(vec![(lane, event(40))]), 0);
        assert_eq!(new.adopt(&old, &mut |item| key(item)), 0);
        assert_eq!(old.len(), 0);
        assert_eq!(new.len(), 41);
        assert_eq!(take_all(&new, lane), (0..41).collect::<Vec<_>>());
    }

    /// A small backlog left in a mostly settled journal comes back whole: opening the journal
    /// does not move events before their places are known.
    #[test]
    fn a_mostly_settled_journal_gives_back_its_last_events() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (journal, _) = open(dir.path());
            let queue = unbounded(1, 2_000, Arc::clone(&journal));
            assert_eq!(
                queue.push_many((0..1000).map(|n| (0, event(n))).collect()),
                0
            );
            for _ in 0..990 {
                let item = queue.take(0).expect("queued");
                queue.settle(&item);
            }
            journal.close();
        }
        let (journal, live) = open(dir.path());
        let queue = unbounded(1, 4, journal);
        assert_eq!(
            queue.restore_journal(live, |_| 0),
            0,
            "every event read back"
        );
        assert_eq!(take_all(&queue, 0), (990..1000).collect::<Vec<_>>());
    }

    /// A push that finds the queue closed (a new version took it over) is dropped, not left
    /// on disk where nothing reads it.
    /// A disk that stalls without failing: the events waiting for the writer are held in
    /// memory, so past `MAX_UNWRITTEN` new ones meet the overflow policy; once the writer
    /// catches up the queue takes events again.
    #[test]
    fn a_stalled_writer_holds_a_bounded_backlog() {
        use crate::queue::writer::MAX_UNWRITTEN;
        let dir = tempfile::tempdir().expect("dir");
        let (journal, _) = open(dir.path());
        let queue = unbounded(1, 1, Arc::clone(&journal));
        journal.pause_writer(true);
        let total = MAX_UNWRITTEN + 100;
        let dropped: usize = (0..total)
            .map(|n| queue.push_many(vec![(0, event(n))]))
            .sum();
        assert_eq!(dropped, 100);
        assert_eq!(queue.len() as u64, MAX_UNWRITTEN);
        journal.pause_writer(false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while journal.backlog_full() {
            assert!(std::time::Instant::now() < deadline, "the writer caught up");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(queue.push_many(vec![(0, event(total))]), 0);
    }

    #[test]
    fn a_closed_queue_takes_nothing_to_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let (journal, _) = open(dir.path());
        let queue = unbounded(1, 1, journal);
        queue.close();
        assert_eq!(queue.push_many(vec![(0, event(1)), (0, event(2))]), 2);
        assert_eq!((queue.len(), queue.on_disk_only()), (0, 0));
    }

    /// Dropping the oldest events while the lane reads some back never loses one twice,
    /// strands one, or breaks the lane.
    #[test]
    fn dropping_the_oldest_beside_a_lane_reading_back_keeps_the_books() {
        let dir = tempfile::tempdir().expect("dir");
        let (journal, _) = open(dir.path());
        // Memory of 1 and a disk "full" from the start: every push drops the oldest.
        let queue = Arc::new(DiskQueue::new(
            1,
            1,
            1,
            Overflow::DropOldest,
            journal,
            false,
        ));
        let taker = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut taken = 0;
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while std::time::Instant::now() < deadline {
                    match queue.take(0) {
                        Some(item) => {
                            queue.settle(&item);
                            taken += 1;
                        }
                        None => std::thread::yield_now(),
                    }
                }
                taken
            })
        };
        let mut dropped = 0;
        for n in 0..20_000 {
            dropped += queue.push_many(vec![(0, event(n))]);
        }
        let taken = taker.join().expect("the lane did not panic");
        let left = take_all(&queue, 0).len();
        assert_eq!(
            taken + left + dropped,
            20_000,
            "taken {taken}, left {left}, dropped {dropped}"
        );
        assert_eq!(queue.len(), 0);
    }
}
