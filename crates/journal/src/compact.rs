//! Compaction: the live events of the oldest segment (the front) are copied into the current
//! segment, so the front can be deleted although some of its events have not ended.
//!
//! # When
//! At each [`SegmentLog::sync`], once what was appended is durable, if there is a segment
//! older than the current one and the front is worth it:
//! - it is **mostly dead**: its live events are at most 1/8 of the event records it held, so
//!   copying them costs at most about 1/8 of the bytes its deletion frees; or
//! - the older segments hold **more garbage than live data** (their bytes minus a guess of
//!   their live events' bytes is at least that guess, and at least a segment): the front is
//!   then copied however dense it is, because it keeps the garbage behind it on disk. Without
//!   this second rule, events that never end (a stuck lane) gather in the segments receiving
//!   the copies until one of them is too dense for the first rule, and from then on nothing
//!   behind it is ever deleted. With it, the older segments stay within about twice their
//!   live bytes plus a segment, and an event is copied again only after the log has turned
//!   over, which took at least its live bytes in appends: about one byte copied per byte
//!   appended at worst.
//!
//! # How much per sync
//! One step reads the front from where the previous step stopped, at most
//! `max(segment_bytes / 8, 2 × the bytes appended since the last sync)` bytes (whole records:
//! a single larger record is read whole), writes its live events among them to the current
//! segment in one write, and `fdatasync`s it. Twice the appended bytes, so that compaction
//! frees space at least as fast as appends take it when half of what it reads is garbage. A
//! front is deleted by `sync` once nothing live is left in it (one unlink and one directory
//! sync), so a sync finishes at most one segment's compaction.
//!
//! # Crash safety
//! A copy becomes the live one (in [`SegmentLog::relocated`]) only once it is durable, and the
//! front is deleted only when all its live events have been so copied, so the copies are on
//! disk before the front's deletion is. A crash in between leaves an event in two segments:
//! recovery takes the later record for a copy (its sequence number is not above all those
//! read before it) and the newer copy wins. No acknowledgement of the event is written before
//! a copy of it (only live events are copied), and acknowledgements after the copy apply to
//! it, so an acknowledged event does not come back.
//!
//! Deleting the front loses no acknowledgement that matters: the acknowledgements it holds
//! are of events in itself or in segments older than it, and those are all gone already, or
//! else of relocated events whose copies were in it or older ones (so also gone) — an event
//! once acknowledged is never copied again. The front's own events are either acknowledged
//! (they go with it) or copied.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufReader, Read as _, Seek as _, SeekFrom, Write as _},
};

use super::{JournalError, Location, Record, Segment, SegmentLog, segment};

/// Read buffer of a compaction step.
const READ_BUFFER: usize = 64 << 10;

impl SegmentLog {
    /// One step of compaction of the front segment, if it is worth it (see the module's
    /// documentation for the rules and the cost); `appended` is the bytes appended since the
    /// last sync. Deleting the front, once finished, is left to the caller.
    ///
    /// # Errors
    /// [`JournalError::Io`] if reading the front or writing or syncing the copies fails: then
    /// nothing is relocated (the front keeps its events).
    pub(super) fn compact(&mut self, appended: u64) -> Result<(), JournalError> {
        if self.broken || !self.worth_compacting() {
            return Ok(());
        }
        let Some(front) = self.older.front() else {
            return Ok(());
        };
        let start = match self.cursor {
            Some((number, offset)) if number == front.number => offset,
            _ => segment::HEADER_LEN as u64,
        };
        if start >= front.bytes {
            // Read to its end (or given up on): only acknowledgements finish it now.
            return Ok(());
        }
        let budget = (self.options.segment_bytes / 8).max(appended.saturating_mul(2));
        let mut moved = Vec::new();
        self.out.clear();
        let end = match read_live(
            front,
            &self.relocated,
            start,
            budget,
            &mut self.out,
            &mut moved,
        ) {
            Ok(end) => end,
            Err(error) => {
                if matches!(
                    error.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) {
                    // Damaged since it was recovered: it is not read again (until a restart).
                    self.cursor = Some((front.number, u64::MAX));
                }
                return Err(JournalError::io(&front.path)(error));
            }
        };
        let front_number = front.number;
        let copies_at = self.current.bytes;
        if !self.out.is_empty() {
            if let Err(error) = self.file.write_all(&self.out) {
                // As in `append`: take back what part was written.
                self.broken = self.file.set_len(self.current.bytes).is_err();
                return Err(JournalError::io(&self.current.path)(error));
            }
            self.current.bytes += self.out.len() as u64;
            if let Err(error) = self.file.sync_data() {
                // The copies may be lost: they do not become the live ones (a copy that did
                // reach the disk is one recovery may take; it is identical and acknowledged by
                // the same sequence number, so either copy will do).
                self.broken = true;
                return Err(JournalError::io(&self.current.path)(error));
            }
        }
        // The copies are durable: they are the live ones from now on.
        let (older, current) = (self.older.make_contiguous(), &mut self.current);
        let Some(front) = older.first_mut() else {
            return Ok(());
        };
        for (seq, payload_len, at) in moved {
            self.written.push((
                seq,
                Location {
                    segment: current.number,
                    offset: copies_at + at as u64,
                },
            ));
            match self.relocated.insert(seq, current.number) {
                Some(previous) => {
                    debug_assert_eq!(previous, front.number, "only the front's events move");
                    front.relocated -= 1;
                }
                None => front.live.remove(seq),
            }
            current.relocated += 1;
            current.count_event(payload_len);
        }
        self.cursor = Some((front_number, end));
        Ok(())
    }

    /// Whether the front segment (older than the current one) is worth compacting.
    fn worth_compacting(&self) -> bool {
        let Some(front) = self.older.front() else {
            return false;
        };
        if front.finished() {
            // Deleted as it is.
            return false;
        }
        if front.live_events() * 8 <= front.events {
            return true;
        }
        let (bytes, live) = self.older.iter().fold((0, 0), |(bytes, live), s| {
            (bytes + s.bytes, live + s.live_bytes())
        });
        let garbage = bytes.saturating_sub(live);
        garbage >= live && garbage >= self.options.segment_bytes
    }
}

impl Segment {
    /// A guess at the bytes of the live events' records: their share of the event records.
    fn live_bytes(&self) -> u64 {
        if self.events == 0 {
            return 0;
        }
        let share =
            u128::from(self.event_bytes) * u128::from(self.live_events()) / u128::from(self.events);
        u64::try_from(share).unwrap_or(u64::MAX)
    }
}

/// Reads the records of `front` from offset `start` (a record's start) until `budget` bytes
/// are read or its end, encoding those of its live events into `out` and noting each one's
/// sequence number and payload length in `moved`. Returns where the next record starts.
fn read_live(
    front: &Segment,
    relocated: &HashMap<u64, u64>,
    start: u64,
    budget: u64,
    out: &mut Vec<u8>,
    moved: &mut Vec<(u64, usize, usize)>,
) -> io::Result<u64> {
    let mut file = File::open(&front.path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file.take(front.bytes - start));
    let mut body = Vec::new();
    let mut offset = start;
    while offset < front.bytes && offset - start < budget {
        let (len, record) = segment::read_record(&mut reader, &mut body)?;
        offset += len;
        if let Record::Event { seq, payload } = record
            && (front.live.contains(seq) || relocated.get(&seq) == Some(&front.number))
        {
            moved.push((seq, payload.len(), out.len()));
            segment::put_event(out, seq, payload);
        }
    }
    Ok(offset)
}
