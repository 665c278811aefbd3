//! # hookmq-journal
//!
//! An append-only log of segment files in one directory, so that what was queued is not lost
//! to a crash or a restart: a disk-buffered webhook's queue keeps its events here, the broker
//! its persistent sessions and retained messages. The records are opaque bytes to the log.
//!
//! ## Layout
//! - this file: [`SegmentLog`] (open and recover, append, sync, the live set per segment)
//!   and [`Reader`] (events read back by location).
//! - `segment`: the file format (header, checksummed event and acknowledgement records).
//! - `compact`: copying the live events of the oldest segment forward.
//!
//! The log holds two kinds of records (see `segment`): an **event** (its sequence number
//! and its encoded bytes) and **acknowledgements** (sequence numbers whose events reached
//! their end: delivered, dead-lettered or dropped). Both are only appended; a record is
//! checksummed, so a tail torn by a crash is found and cut at the last good record.
//!
//! Sequence numbers only grow, so each segment holds a range of them. A segment keeps a
//! bitmap of its live events; once none is left and a newer segment takes appends, its file
//! is deleted. Acknowledgements are by sequence number, not by lane, so lanes may be
//! renumbered (a webhook's `max_inflight` changed) without touching the disk. An event's
//! acknowledgement is never written before the event itself: both go through one writer,
//! events first.
//!
//! Segments are deleted oldest first only: an acknowledgement in a segment may be of an event
//! in that segment or an older one, so deleting a segment behind a live one could lose the
//! acknowledgements of the older one's events. A long-lived event (a client whose receiver
//! keeps failing while other clients' events flow) would so hold every segment written after
//! it; **compaction** (see `compact`) copies the few live events of the oldest segment into
//! the current one instead, so it can go. A copied ("relocated") event keeps its sequence
//! number, which is below the bitmap range of the segment it now lives in: the log keeps a map
//! of where relocated events are, and recovery takes an event record whose sequence number is
//! not above every one read before it for such a copy (the newest copy wins).

mod compact;
mod segment;

use std::{
    collections::{HashMap, VecDeque},
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use segment::{End, Record, SegmentData};

/// Tuning of a [`SegmentLog`].
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// A segment takes appends until it holds this many bytes; then a new one starts.
    pub segment_bytes: u64,
    /// Whether [`SegmentLog::sync`] copies the live events of the oldest segment forward, so
    /// it can be deleted, when it is mostly dead or holds back much garbage (see the
    /// `compact` module). On by default.
    pub compaction: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            compaction: true,
        }
    }
}

/// Where an event record is: its segment's number and its offset in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The segment's number.
    pub segment: u64,
    /// The record's offset in it.
    pub offset: u64,
}

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing or syncing a file failed (a full disk among others).
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A segment file that is not one of ours (its header does not match).
    #[error("journal {0}: not a hookmq journal segment (unknown header)")]
    Foreign(PathBuf),
}

impl JournalError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Bytes cut from a segment at recovery: a torn or corrupt tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The segment file.
    pub segment: PathBuf,
    /// Where its last good record ends (what is left of the file).
    pub offset: u64,
    /// Bytes removed after it.
    pub bytes: u64,
    /// What was wrong with them.
    pub reason: &'static str,
}

/// What a journal held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Events not acknowledged, by sequence number, and where each is (read them with a
    /// [`Reader`]).
    pub live: Vec<(u64, Location)>,
    /// Torn or corrupt tails cut off (each also logged).
    pub cuts: Vec<Cut>,
}

/// The live events of one segment: a bit per sequence number from `base`.
#[derive(Debug)]
struct Live {
    base: u64,
    words: Vec<u64>,
    count: u64,
}

impl Live {
    fn new(base: u64) -> Self {
        Self {
            base,
            words: Vec::new(),
            count: 0,
        }
    }

    fn slot(&self, seq: u64) -> Option<(usize, u64)> {
        let offset = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        Some((offset / 64, 1 << (offset % 64)))
    }

    fn insert(&mut self, seq: u64) {
        let Some((word, bit)) = self.slot(seq) else {
            return;
        };
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        if self.words[word] & bit == 0 {
            self.words[word] |= bit;
            self.count += 1;
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some((word, bit)) = self.slot(seq)
            && let Some(bits) = self.words.get_mut(word)
            && *bits & bit != 0
        {
            *bits &= !bit;
            self.count -= 1;
        }
    }

    fn contains(&self, seq: u64) -> bool {
        self.slot(seq)
            .and_then(|(word, bit)| self.words.get(word).map(|bits| bits & bit != 0))
            .unwrap_or(false)
    }
}

/// A segment on disk.
#[derive(Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
    /// Events from this sequence number on are in this segment or a newer one (relocated
    /// copies aside).
    live: Live,
    /// Relocated events whose live copy is in this segment (in [`SegmentLog::relocated`]).
    relocated: u64,
    /// Event records written to this segment, relocated copies included.
    events: u64,
    /// Bytes of those event records (so the live events' share of the file can be guessed).
    event_bytes: u64,
    bytes: u64,
}

impl Segment {
    /// Events whose live copy is in this segment.
    const fn live_events(&self) -> u64 {
        self.live.count + self.relocated
    }

    /// Nothing live is left: the segment can go once every older one has.
    const fn finished(&self) -> bool {
        self.live_events() == 0
    }

    /// A segment of only a header, whose events start at `first_seq`.
    fn new(number: u64, path: PathBuf, first_seq: u64) -> Self {
        Self {
            number,
            path,
            live: Live::new(first_seq),
            relocated: 0,
            events: 0,
            event_bytes: 0,
            bytes: segment::HEADER_LEN as u64,
        }
    }

    /// Counts an event record of `payload_len` bytes of payload written to the segment.
    const fn count_event(&mut self, payload_len: usize) {
        self.events += 1;
        self.event_bytes += segment::event_len(payload_len);
    }
}

/// The log of one queue. Appends are written by [`SegmentLog::append`] and made
/// durable by [`SegmentLog::sync`], so one sync covers a whole group of appends.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    options: LogOptions,
    epoch: u64,
    /// Full segments, oldest first.
    older: VecDeque<Segment>,
    /// The segment taking appends.
    current: Segment,
    /// `current`, open for appending.
    file: File,
    /// Records of one append, written with one call.
    out: Vec<u8>,
    /// The highest sequence number appended.
    last_seq: u64,
    /// Relocated live events (copied forward by compaction, so below the bitmap range of the
    /// segment holding them): sequence number to the number of that segment.
    relocated: HashMap<u64, u64>,
    /// Bytes appended since the last sync (compaction may copy about twice as much).
    unsynced: u64,
    /// Where the event records written since [`SegmentLog::take_written`] went (appended or
    /// copied forward by compaction), for readers that fetch events by location.
    written: Vec<(u64, Location)>,
    /// How far compaction has read the oldest segment: its number and the offset of the
    /// next record to look at.
    cursor: Option<(u64, u64)>,
    /// Compaction steps that failed (logged once, then every thousandth).
    compaction_failures: u64,
    /// Segments created or deleted since the directory was last synced.
    dir_dirty: bool,
    /// A write or sync failed and the current segment's end could not be restored: the
    /// next append starts a new segment.
    broken: bool,
}

impl SegmentLog {
    /// Opens the journal in `dir` (created if missing): reads what it holds, cuts torn or
    /// corrupt tails, deletes segments with nothing live, and starts a new segment for
    /// appends.
    ///
    /// # Errors
    /// [`JournalError`] if the directory or a segment cannot be read or written, or holds a
    /// file that is not a segment of ours.
    pub fn open(dir: &Path, options: LogOptions) -> Result<(Self, Recovered), JournalError> {
        fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
        let mut numbers = Vec::new();
        for entry in fs::read_dir(dir).map_err(JournalError::io(dir))? {
            let path = entry.map_err(JournalError::io(dir))?.path();
            if let Some(number) = segment::number_of(&path) {
                numbers.push((number, path));
            }
        }
        numbers.sort_unstable();
        let mut recovered = Recovered::default();
        let mut older: Vec<Segment> = Vec::new();
        let mut relocated = HashMap::new();
        let (mut epoch, mut last_seq) = (None, 0);
        // First pass: which events are live and where (an event's acknowledgement may be in
        // any later segment, and so may a newer copy of it), and where each segment's valid
        // records end.
        for (number, path) in &numbers {
            let data = SegmentData::read(path).map_err(JournalError::io(path))?;
            let Some((segment_epoch, first_seq)) = data.header() else {
                if data.len() < segment::HEADER_LEN as u64 {
                    // Created but never written: a crash right after the file appeared.
                    remove_file(path)?;
                    continue;
                }
                return Err(JournalError::Foreign(path.clone()));
            };
            epoch.get_or_insert(segment_epoch);
            // Its events start there, even if everything before is gone.
            last_seq = last_seq.max(first_seq.saturating_sub(1));
            let mut segment = Segment::new(*number, path.clone(), last_seq + 1);
            let end = data.records(|record| match record {
                Record::Event { seq, payload } => {
                    segment.count_event(payload.len());
                    if seq > last_seq {
                        if segment.live.words.is_empty() {
                            // The bitmap starts at the segment's first event (older segments
                            // may be gone, leaving a gap before it).
                            segment.live = Live::new(seq);
                        }
                        segment.live.insert(seq);
                        last_seq = seq;
                    } else {
                        // Sequence numbers only grow as events are appended, so this is a copy
                        // that compaction made of a live event: it replaces the older copy (if
                        // that is still on disk, its deletion was cut short by a crash). No
                        // acknowledgement of the event comes before the copy, as only live
                        // events are copied; later ones apply to the copy.
                        forget(&mut older, &mut segment, &mut relocated, seq);
                        relocated.insert(seq, segment.number);
                        segment.relocated += 1;
                    }
                }
                Record::Acks(body) => {
                    for seq in segment::acked(body) {
                        forget(&mut older, &mut segment, &mut relocated, seq);
                    }
                }
            });
            segment.bytes = data.len();
            if let End::Invalid { offset, reason } = end {
                cut(path, offset, segment.bytes, reason, &mut recovered)?;
                segment.bytes = offset;
            }
            older.push(segment);
        }
        // Second pass: where the live events are.
        for segment in &older {
            if segment.finished() {
                continue;
            }
            let data = SegmentData::read(&segment.path).map_err(JournalError::io(&segment.path))?;
            data.records_at(|offset, record| {
                if let Record::Event { seq, .. } = record
                    && (segment.live.contains(seq) || relocated.get(&seq) == Some(&segment.number))
                {
                    let location = Location {
                        segment: segment.number,
                        offset,
                    };
                    recovered.live.push((seq, location));
                }
            });
        }
        // Relocated copies come after newer events; each event is live in one place only, so
        // the dedup is a safeguard.
        recovered.live.sort_by_key(|(seq, _)| *seq);
        recovered.live.dedup_by_key(|(seq, _)| *seq);
        let next_number = numbers.last().map_or(1, |(number, _)| number + 1);
        let epoch = epoch.unwrap_or_else(rand::random);
        let (file, current) = create_segment(dir, next_number, epoch, last_seq + 1)?;
        let mut log = Self {
            dir: dir.to_owned(),
            options,
            epoch,
            older: older.into(),
            current,
            file,
            out: Vec::new(),
            last_seq,
            relocated,
            unsynced: 0,
            written: Vec::new(),
            cursor: None,
            compaction_failures: 0,
            dir_dirty: true,
            broken: false,
        };
        // No compaction here: the locations just recovered must stay valid until their
        // reader has them (a copy moves an event; the writer then reports the new place).
        log.file
            .sync_data()
            .map_err(JournalError::io(&log.current.path))?;
        log.delete_finished()?;
        sync_dir(&log.dir)?;
        log.dir_dirty = false;
        Ok((log, recovered))
    }

    /// This journal's epoch: random when it was first created, the same across restarts.
    /// With a sequence number it makes an id no other journal gives.
    #[must_use]
    pub const fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The highest sequence number appended (0 if none ever was).
    #[must_use]
    pub const fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Bytes the journal's segments take on disk.
    #[must_use]
    pub fn disk_bytes(&self) -> u64 {
        self.older.iter().map(|s| s.bytes).sum::<u64>() + self.current.bytes
    }

    /// Writes `events` (sequence numbers increasing, after every earlier one) and then the
    /// acknowledgements `acks`, in one write. They are durable after the next
    /// [`SegmentLog::sync`].
    ///
    /// # Errors
    /// [`JournalError::Io`] if the write fails (a full disk among others): then nothing of
    /// it is recorded, and the segment is cut back to where it was.
    pub fn append(&mut self, events: &[(u64, &[u8])], acks: &[u64]) -> Result<(), JournalError> {
        if events.is_empty() && acks.is_empty() {
            return Ok(());
        }
        if self.broken || self.current.bytes >= self.options.segment_bytes {
            self.roll()?;
        }
        self.out.clear();
        let written = self.written.len();
        for (seq, payload) in events {
            debug_assert!(*seq > self.last_seq, "sequence numbers only grow");
            self.written.push((
                *seq,
                Location {
                    segment: self.current.number,
                    offset: self.current.bytes + self.out.len() as u64,
                },
            ));
            segment::put_event(&mut self.out, *seq, payload);
        }
        segment::put_acks(&mut self.out, acks);
        if let Err(error) = self.file.write_all(&self.out) {
            // Take back whatever part was written, so later appends follow whole records.
            self.broken = self.file.set_len(self.current.bytes).is_err();
            self.written.truncate(written);
            return Err(JournalError::io(&self.current.path)(error));
        }
        self.current.bytes += self.out.len() as u64;
        self.unsynced += self.out.len() as u64;
        for (seq, payload) in events {
            self.current.live.insert(*seq);
            self.current.count_event(payload.len());
            self.last_seq = *seq;
        }
        let older = self.older.make_contiguous();
        for seq in acks {
            forget(older, &mut self.current, &mut self.relocated, *seq);
        }
        Ok(())
    }

    /// Makes every append so far durable, then deletes the oldest segments while they have
    /// nothing live (one that the previous sync's compaction emptied among them), and
    /// compacts the oldest one left if it is worth it (see the `compact`
    /// module: one step reads at most `max(segment_bytes / 8, 2 × the bytes appended since
    /// the last sync)` of it, copies its live events among them with one write and one more
    /// `fdatasync`, and deletes it once none is left).
    ///
    /// # Errors
    /// [`JournalError::Io`] if syncing or deleting fails. A failed compaction step is logged
    /// but not returned: what was appended is durable all the same.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if let Err(error) = self.file.sync_data() {
            // After a failed sync the kernel may have dropped the written pages: appends go
            // on in a new segment.
            self.broken = true;
            return Err(JournalError::io(&self.current.path)(error));
        }
        let appended = std::mem::take(&mut self.unsynced);
        self.delete_finished()?;
        if self.options.compaction
            && let Err(error) = self.compact(appended)
        {
            // A nearly full disk may fail every step: once, then every thousandth.
            if self.compaction_failures.is_multiple_of(1000) {
                tracing::warn!(%error, failures = self.compaction_failures + 1,
                    "journal: compaction failed (what was appended is durable); it goes on at the next sync");
            }
            self.compaction_failures += 1;
        }
        // A segment compaction emptied is deleted at the next sync, not now: readers learn
        // where its events went (`take_written`) before its file goes.
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Where the event records written since the last call went, in the order written (a
    /// record copied forward by compaction comes again with its new place). A record is
    /// durable once a later [`SegmentLog::sync`] returned.
    pub fn take_written(&mut self) -> Vec<(u64, Location)> {
        std::mem::take(&mut self.written)
    }

    /// Deletes the oldest segments while they have nothing live.
    fn delete_finished(&mut self) -> Result<(), JournalError> {
        while self.older.front().is_some_and(Segment::finished) {
            if let Some(done) = self.older.pop_front() {
                remove_file(&done.path)?;
                // Each deletion durable before the next: a crash leaves the oldest ones
                // deleted, never a newer one (holding acknowledgements of an older one's
                // events) without the older. Rare: once per segment.
                sync_dir(&self.dir)?;
            }
        }
        Ok(())
    }

    /// Syncs the current segment and starts the next.
    fn roll(&mut self) -> Result<(), JournalError> {
        if !self.broken {
            self.file
                .sync_data()
                .map_err(JournalError::io(&self.current.path))?;
        }
        let number = self.current.number + 1;
        let (file, segment) = create_segment(&self.dir, number, self.epoch, self.last_seq + 1)?;
        self.file = file;
        self.older
            .push_back(std::mem::replace(&mut self.current, segment));
        self.dir_dirty = true;
        self.broken = false;
        Ok(())
    }
}

/// Forgets the live copy of event `seq` (acknowledged, or replaced by a newer copy at
/// recovery): a relocated one first, else the bit in the bitmap of the segment whose range
/// holds it, among `older` and `current`.
fn forget(
    older: &mut [Segment],
    current: &mut Segment,
    relocated: &mut HashMap<u64, u64>,
    seq: u64,
) {
    // Without a stuck event the map is empty: no hashing on the usual path.
    if !relocated.is_empty()
        && let Some(number) = relocated.remove(&seq)
    {
        let holder = if current.number == number {
            Some(current)
        } else {
            older
                .binary_search_by_key(&number, |s| s.number)
                .ok()
                .and_then(|i| older.get_mut(i))
        };
        if let Some(holder) = holder {
            holder.relocated -= 1;
        }
        return;
    }
    if seq >= current.live.base {
        current.live.remove(seq);
        return;
    }
    // Segments hold increasing ranges: the holder is the last one starting at or before seq.
    let holder = older.partition_point(|s| s.live.base <= seq);
    if let Some(segment) = holder.checked_sub(1).and_then(|i| older.get_mut(i)) {
        segment.live.remove(seq);
    }
}

/// Reads event records by location, beside the writer: a segment is only deleted once
/// nothing in it is live, so a live event's record stays where its location says until it
/// is copied forward (and the writer then reports its new place). An open file of a segment
/// deleted since still reads: the copy there is the same event.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    /// Open segments, by number. parking_lot mutex: a map lookup per read; reads themselves
    /// are positioned (`pread`) on a shared file, outside the lock.
    files: parking_lot::Mutex<HashMap<u64, std::sync::Arc<File>>>,
}

/// Segments a [`Reader`] keeps open at most.
const READER_FILES: usize = 16;

impl Reader {
    /// A reader of the journal in `dir`.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            files: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The event record at `location`: its sequence number and payload.
    ///
    /// # Errors
    /// [`JournalError::Io`] if the file cannot be read there or the record is not a whole,
    /// checksummed event (`InvalidData`).
    pub fn read(&self, location: Location) -> Result<(u64, Vec<u8>), JournalError> {
        use std::os::unix::fs::FileExt as _;
        let path = self.dir.join(segment::file_name(location.segment));
        let read = || -> io::Result<(u64, Vec<u8>)> {
            let file = self.file(location.segment, &path)?;
            let mut frame = [0; segment::FRAME_LEN];
            file.read_exact_at(&mut frame, location.offset)?;
            let mut record = frame.to_vec();
            let (len, _) = segment::frame_fields(&frame)
                .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
            record.resize(segment::FRAME_LEN + len, 0);
            file.read_exact_at(
                &mut record[segment::FRAME_LEN..],
                location.offset + segment::FRAME_LEN as u64,
            )?;
            let mut body = Vec::new();
            match segment::read_record(&mut record.as_slice(), &mut body)?.1 {
                Record::Event { seq, payload } => Ok((seq, payload.to_vec())),
                Record::Acks(_) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "acknowledgements where an event was expected",
                )),
            }
        };
        read().map_err(JournalError::io(&path))
    }

    fn file(&self, number: u64, path: &Path) -> io::Result<std::sync::Arc<File>> {
        let mut files = self.files.lock();
        if let Some(file) = files.get(&number) {
            return Ok(std::sync::Arc::clone(file));
        }
        if files.len() >= READER_FILES {
            files.clear();
        }
        let file = std::sync::Arc::new(File::open(path)?);
        files.insert(number, std::sync::Arc::clone(&file));
        Ok(file)
    }
}

/// Creates segment `number` with its header, synced; its events start at `first_seq`.
fn create_segment(
    dir: &Path,
    number: u64,
    epoch: u64,
    first_seq: u64,
) -> Result<(File, Segment), JournalError> {
    let path = dir.join(segment::file_name(number));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(JournalError::io(&path))?;
    file.write_all(&segment::header(epoch, first_seq))
        .and_then(|()| file.sync_data())
        .map_err(JournalError::io(&path))?;
    Ok((file, Segment::new(number, path, first_seq)))
}

/// Cuts segment `path` (of `len` bytes) at `offset`, logging it.
fn cut(
    path: &Path,
    offset: u64,
    len: u64,
    reason: &'static str,
    recovered: &mut Recovered,
) -> Result<(), JournalError> {
    tracing::warn!(
        segment = %path.display(),
        offset,
        bytes = len - offset,
        reason,
        "journal: cut a torn or corrupt tail at the last good record"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(JournalError::io(path))?;
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(JournalError::io(path))?;
    recovered.cuts.push(Cut {
        segment: path.to_owned(),
        offset,
        bytes: len - offset,
        reason,
    });
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), JournalError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(JournalError::io(path)(error)),
        _ => Ok(()),
    }
}

/// Makes the directory's entries (created or deleted files) durable.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io(dir))
}

#[cfg(test)]
mod tests;
