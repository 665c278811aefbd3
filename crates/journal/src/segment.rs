//! One segment file: a header, then checksummed records.
//!
//! ```text
//! header  b"HMQJRNL1" (8 bytes), epoch (u64 LE), first sequence number (u64 LE)
//! record  length (u32 LE), CRC-32 of the body (u32 LE), body (`length` bytes)
//! body    1, seq (u64 LE), payload          an event
//!         2, seq (u64 LE) × n               acknowledgements
//! ```
//!
//! A record is only trusted when its length fits the file and its checksum matches, so a
//! write torn by a crash (or any later corruption) ends the readable part of the segment.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

/// What every segment starts with.
pub(super) const MAGIC: &[u8; 8] = b"HMQJRNL1";
/// Header bytes: magic, epoch and the sequence number the segment's events start at (so
/// numbers keep growing across restarts even once every event is acknowledged and gone).
pub(super) const HEADER_LEN: usize = 24;
/// Record framing bytes: length and checksum.
pub(super) const FRAME_LEN: usize = 8;
/// The largest body read back: anything longer is taken for corruption.
pub(super) const MAX_BODY: usize = 64 << 20;

const EVENT: u8 = 1;
const ACKS: u8 = 2;

/// A record read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// An event and its payload.
    Event { seq: u64, payload: &'a [u8] },
    /// Acknowledged sequence numbers, 8 bytes each.
    Acks(&'a [u8]),
}

/// Appends an event record to `out`.
pub(super) fn put_event(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    put_frame(out, EVENT, |body| {
        body.extend_from_slice(&seq.to_le_bytes());
        body.extend_from_slice(payload);
    });
}

/// Appends an acknowledgement record for `seqs` to `out`.
pub(super) fn put_acks(out: &mut Vec<u8>, seqs: &[u64]) {
    // A record stays far below MAX_BODY: at most 1M acknowledgements each.
    for chunk in seqs.chunks(1 << 20) {
        put_frame(out, ACKS, |body| {
            for seq in chunk {
                body.extend_from_slice(&seq.to_le_bytes());
            }
        });
    }
}

fn put_frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN]);
    out.push(kind);
    body(out);
    let body_start = start + FRAME_LEN;
    let len = u32::try_from(out.len() - body_start).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[body_start..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..body_start].copy_from_slice(&crc.to_le_bytes());
}

/// The sequence numbers of an acknowledgement record.
pub(super) fn acked(body: &[u8]) -> impl Iterator<Item = u64> + '_ {
    body.chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// A segment's header bytes.
pub(super) fn header(epoch: u64, first_seq: u64) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&epoch.to_le_bytes());
    header[16..].copy_from_slice(&first_seq.to_le_bytes());
    header
}

/// A segment's file name: its number, zero-padded so names sort in order.
pub(super) fn file_name(number: u64) -> String {
    format!("{number:020}.seg")
}

/// The number in a segment's file name.
pub(super) fn number_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".seg")?.parse().ok()
}

/// A segment read whole into memory.
#[derive(Debug)]
pub(super) struct SegmentData {
    bytes: Vec<u8>,
}

/// Where reading a segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// At the end of the file: everything read.
    Clean,
    /// At `offset`, where the bytes stop being valid records (torn or corrupt).
    Invalid {
        /// Where the last good record ends.
        offset: u64,
        /// Why the next bytes were not taken.
        reason: &'static str,
    },
}

impl SegmentData {
    /// Reads the segment at `path`.
    pub(super) fn read(path: &Path) -> io::Result<Self> {
        let mut bytes = Vec::new();
        File::open(path)?.read_to_end(&mut bytes)?;
        Ok(Self { bytes })
    }

    /// The epoch and first sequence number in the header, if the header is whole and ours.
    pub(super) fn header(&self) -> Option<(u64, u64)> {
        let header = self.bytes.get(..HEADER_LEN)?;
        if &header[..8] != MAGIC {
            return None;
        }
        let epoch = u64::from_le_bytes(header[8..16].try_into().ok()?);
        let first_seq = u64::from_le_bytes(header[16..].try_into().ok()?);
        Some((epoch, first_seq))
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Calls `each` with every valid record, in order; says where reading stopped.
    pub(super) fn records(&self, mut each: impl FnMut(Record<'_>)) -> End {
        self.records_at(|_, record| each(record))
    }

    /// Calls `each` with every valid record and its offset, in order; says where reading
    /// stopped.
    pub(super) fn records_at(&self, mut each: impl FnMut(u64, Record<'_>)) -> End {
        let bytes = &self.bytes;
        let mut at = HEADER_LEN;
        while at < bytes.len() {
            let invalid = |reason| End::Invalid {
                offset: at as u64,
                reason,
            };
            let Some(frame) = bytes.get(at..at + FRAME_LEN) else {
                return invalid("a record header cut short");
            };
            let (len, crc) = match frame_fields(frame) {
                Ok(fields) => fields,
                Err(reason) => return invalid(reason),
            };
            let Some(body) = bytes.get(at + FRAME_LEN..at + FRAME_LEN + len) else {
                return invalid("a record cut short");
            };
            match parse(body, crc) {
                Ok(record) => each(at as u64, record),
                Err(reason) => return invalid(reason),
            }
            at += FRAME_LEN + len;
        }
        End::Clean
    }
}

/// The body length and checksum in a record's frame, if the length is possible.
pub(super) fn frame_fields(frame: &[u8]) -> Result<(usize, u32), &'static str> {
    let field = |at: usize| {
        frame
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let len = field(0) as usize;
    if len == 0 || len > MAX_BODY {
        return Err("an impossible record length");
    }
    Ok((len, field(4)))
}

/// The record in `body`, if its checksum matches and its kind is known.
fn parse(body: &[u8], crc: u32) -> Result<Record<'_>, &'static str> {
    if crc32fast::hash(body) != crc {
        return Err("a record whose checksum does not match");
    }
    match body.split_first() {
        Some((&EVENT, rest)) if rest.len() >= 8 => {
            let (seq, payload) = rest.split_at(8);
            let seq = u64::from_le_bytes(seq.try_into().unwrap_or([0; 8]));
            Ok(Record::Event { seq, payload })
        }
        Some((&ACKS, rest)) if rest.len() % 8 == 0 => Ok(Record::Acks(rest)),
        _ => Err("a record of an unknown kind"),
    }
}

/// Reads the next record from `reader` (positioned at a record's start) into `body`,
/// checked like [`SegmentData::records`] checks them; returns its bytes in the file and it.
pub(super) fn read_record<'b>(
    reader: &mut impl Read,
    body: &'b mut Vec<u8>,
) -> io::Result<(u64, Record<'b>)> {
    let invalid = |reason| io::Error::new(io::ErrorKind::InvalidData, reason);
    let mut frame = [0; FRAME_LEN];
    reader.read_exact(&mut frame)?;
    let (len, crc) = frame_fields(&frame).map_err(invalid)?;
    body.resize(len, 0);
    reader.read_exact(body)?;
    let record = parse(body, crc).map_err(invalid)?;
    Ok(((FRAME_LEN + len) as u64, record))
}

/// Bytes an event record of `payload_len` payload bytes takes in a segment.
pub(super) const fn event_len(payload_len: usize) -> u64 {
    (FRAME_LEN + 1 + 8 + payload_len) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(bytes: Vec<u8>) -> SegmentData {
        SegmentData { bytes }
    }

    /// Events, acknowledged sequence numbers, and where reading stopped.
    type Read = (Vec<(u64, Vec<u8>)>, Vec<u64>, End);

    fn read_all(data: &SegmentData) -> Read {
        let (mut events, mut acks) = (Vec::new(), Vec::new());
        let end = data.records(|record| match record {
            Record::Event { seq, payload } => events.push((seq, payload.to_vec())),
            Record::Acks(body) => acks.extend(acked(body)),
        });
        (events, acks, end)
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_readable_part() {
        let mut bytes = header(7, 1).to_vec();
        put_event(&mut bytes, 1, b"one");
        put_event(&mut bytes, 2, b"");
        put_acks(&mut bytes, &[1, 2]);
        let whole = bytes.len();
        put_event(&mut bytes, 3, b"three");
        let data = segment(bytes.clone());
        assert_eq!(data.header(), Some((7, 1)));
        let (events, acks, end) = read_all(&data);
        assert_eq!(
            events,
            [(1, b"one".to_vec()), (2, vec![]), (3, b"three".to_vec())]
        );
        assert_eq!((acks, end), (vec![1, 2], End::Clean));
        // Every cut inside the last record leaves the first three records readable.
        for cut in whole + 1..bytes.len() {
            let (events, acks, end) = read_all(&segment(bytes[..cut].to_vec()));
            assert_eq!((events.len(), acks.len()), (2, 2), "cut at {cut}");
            assert!(
                matches!(end, End::Invalid { offset, .. } if offset == whole as u64),
                "cut at {cut}: {end:?}"
            );
        }
        // A flipped bit anywhere in a record invalidates it and what follows.
        let mut flipped = bytes.clone();
        flipped[whole + FRAME_LEN + 3] ^= 0x10;
        let (events, _, end) = read_all(&segment(flipped));
        assert_eq!(events.len(), 2);
        assert!(matches!(end, End::Invalid { reason, .. } if reason.contains("checksum")));
    }

    #[test]
    fn records_are_read_one_by_one_from_a_reader_and_checked() {
        let mut bytes = Vec::new();
        put_event(&mut bytes, 5, b"five");
        put_acks(&mut bytes, &[5]);
        let mut reader = bytes.as_slice();
        let mut body = Vec::new();
        let (len, record) = read_record(&mut reader, &mut body).expect("event");
        assert_eq!(len, event_len(4));
        assert_eq!(
            record,
            Record::Event {
                seq: 5,
                payload: b"five"
            }
        );
        let (_, record) = read_record(&mut reader, &mut body).expect("acks");
        assert!(matches!(record, Record::Acks(seqs) if acked(seqs).eq([5])));
        bytes[FRAME_LEN + 3] ^= 1;
        let error = read_record(&mut bytes.as_slice(), &mut body).expect_err("corrupt");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn names_sort_by_number() {
        assert_eq!(file_name(12), "00000000000000000012.seg");
        assert_eq!(
            number_of(Path::new("/d/00000000000000000012.seg")),
            Some(12)
        );
        assert_eq!(number_of(Path::new("/d/12.tmp")), None);
        assert!(file_name(9) < file_name(10));
    }
}
