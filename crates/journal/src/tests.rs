use std::io::Write as _;

use super::*;

fn open(dir: &Path, segment_bytes: u64) -> (SegmentLog, Recovered) {
    let options = LogOptions {
        segment_bytes,
        ..LogOptions::default()
    };
    SegmentLog::open(dir, options).expect("journal opens")
}

fn open_without_compaction(dir: &Path, segment_bytes: u64) -> (SegmentLog, Recovered) {
    let options = LogOptions {
        segment_bytes,
        compaction: false,
    };
    SegmentLog::open(dir, options).expect("journal opens")
}

fn payload(seq: u64) -> Vec<u8> {
    format!("event {seq}").into_bytes()
}

/// Appends events `seqs` in one group and syncs.
fn append(log: &mut SegmentLog, seqs: impl IntoIterator<Item = u64>, acks: &[u64]) {
    let payloads: Vec<(u64, Vec<u8>)> = seqs.into_iter().map(|s| (s, payload(s))).collect();
    let events: Vec<(u64, &[u8])> = payloads.iter().map(|(s, p)| (*s, p.as_slice())).collect();
    log.append(&events, acks).expect("append");
    log.sync().expect("sync");
}

/// The live events' sequence numbers, each read back where the recovery says it is.
fn live_seqs(recovered: &Recovered, dir: &Path) -> Vec<u64> {
    let reader = Reader::new(dir);
    recovered
        .live
        .iter()
        .map(|(seq, location)| {
            let (read, bytes) = reader.read(*location).expect("readable");
            assert_eq!((read, bytes), (*seq, payload(*seq)), "event {seq}");
            *seq
        })
        .collect()
}

fn segment_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| segment::number_of(&e.path()).is_some())
        })
        .count()
}

#[test]
fn what_is_not_acknowledged_comes_back_in_order_with_the_same_epoch() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, recovered) = open(dir.path(), 1 << 20);
    assert!(recovered.live.is_empty());
    let epoch = log.epoch();
    append(&mut log, 1..=5, &[]);
    append(&mut log, 6..=8, &[2, 4]);
    append(&mut log, [], &[1, 7]);
    drop(log);
    let (mut log, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(live_seqs(&recovered, dir.path()), [3, 5, 6, 8]);
    assert!(recovered.cuts.is_empty());
    assert_eq!((log.epoch(), log.last_seq()), (epoch, 8));
    // Acknowledging recovered events works across the restart.
    append(&mut log, [9], &[3, 5]);
    drop(log);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(live_seqs(&recovered, dir.path()), [6, 8, 9]);
}

#[test]
fn finished_segments_are_deleted_oldest_first() {
    let dir = tempfile::tempdir().expect("dir");
    // Tiny segments: every append after the first fills one and starts the next. Without
    // compaction, which would copy event 1 forward.
    let (mut log, _) = open_without_compaction(dir.path(), 64);
    for group in 0..10u64 {
        append(&mut log, group * 4 + 1..=group * 4 + 4, &[]);
    }
    assert!(segment_files(dir.path()) >= 10);
    let bytes_full = log.disk_bytes();
    // Everything but event 1 (in the oldest segment) is acknowledged: that segment pins
    // nothing but itself, yet the ones after it stay, as the log is cleared oldest first.
    append(&mut log, [], &(2..=40).collect::<Vec<_>>());
    assert!(segment_files(dir.path()) >= 10);
    append(&mut log, [], &[1]);
    assert_eq!(
        segment_files(dir.path()),
        1,
        "only the current segment is left"
    );
    assert!(log.disk_bytes() < bytes_full);
    drop(log);
    let (_, recovered) = open_without_compaction(dir.path(), 64);
    assert!(recovered.live.is_empty());
}

#[test]
fn acknowledgements_in_later_segments_count_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), 64);
    append(&mut log, 1..=3, &[]);
    append(&mut log, 4..=6, &[]);
    append(&mut log, [7], &[1, 5]);
    append(&mut log, [], &[2, 6, 7]);
    drop(log);
    let (_, recovered) = open(dir.path(), 64);
    assert_eq!(live_seqs(&recovered, dir.path()), [3, 4]);
}

#[test]
fn a_torn_tail_is_cut_at_the_last_good_record_and_appends_go_on() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), 1 << 20);
    append(&mut log, 1..=3, &[]);
    let segment = log.current.path.clone();
    let good = fs::metadata(&segment).expect("segment").len();
    drop(log);
    // A crash in the middle of writing the next record.
    let mut torn = Vec::new();
    segment::put_event(&mut torn, 4, &payload(4));
    let mut file = OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("segment");
    file.write_all(&torn[..torn.len() / 2]).expect("torn write");
    drop(file);

    let (mut log, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(live_seqs(&recovered, dir.path()), [1, 2, 3]);
    assert_eq!(
        recovered.cuts,
        [Cut {
            segment: segment.clone(),
            offset: good,
            bytes: (torn.len() / 2) as u64,
            reason: "a record cut short",
        }]
    );
    assert_eq!(fs::metadata(&segment).expect("segment").len(), good);
    append(&mut log, [4], &[1]);
    drop(log);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(live_seqs(&recovered, dir.path()), [2, 3, 4]);
    assert!(recovered.cuts.is_empty(), "cut once");
}

#[test]
fn a_corrupt_record_ends_its_segment_and_later_segments_still_count() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), 64);
    append(&mut log, 1..=2, &[]);
    let first = log.current.path.clone();
    append(&mut log, 3..=4, &[]);
    drop(log);
    // Flip a byte in the second record of the first segment.
    let mut bytes = fs::read(&first).expect("segment");
    let second_record = segment::HEADER_LEN + segment::FRAME_LEN + 9 + payload(1).len();
    bytes[second_record + segment::FRAME_LEN + 2] ^= 0xFF;
    fs::write(&first, &bytes).expect("corrupt");
    let (_, recovered) = open(dir.path(), 64);
    assert_eq!(
        live_seqs(&recovered, dir.path()),
        [1, 3, 4],
        "event 2 was in the corrupt record"
    );
    assert_eq!(recovered.cuts.len(), 1);
    assert!(recovered.cuts[0].reason.contains("checksum"));
}

#[test]
fn a_file_that_is_not_a_segment_is_refused_and_an_empty_one_removed() {
    let dir = tempfile::tempdir().expect("dir");
    fs::write(dir.path().join(segment::file_name(1)), b"").expect("empty");
    let (log, _) = open(dir.path(), 1 << 20);
    drop(log);
    assert!(!dir.path().join(segment::file_name(1)).exists());
    fs::write(
        dir.path().join(segment::file_name(99)),
        b"this is not a journal segment",
    )
    .expect("foreign");
    assert!(matches!(
        SegmentLog::open(dir.path(), LogOptions::default()),
        Err(JournalError::Foreign(_))
    ));
}

#[test]
fn live_bitmaps_count_each_event_once() {
    let mut live = Live::new(10);
    live.insert(10);
    live.insert(75);
    live.insert(75);
    assert_eq!(live.count, 2);
    live.remove(75);
    live.remove(75);
    live.remove(9);
    live.remove(1_000);
    assert_eq!(live.count, 1);
    assert!(live.contains(10) && !live.contains(75));
}

/// The bytes of event `seq`'s record.
fn event_bytes(seq: u64) -> u64 {
    segment::event_len(payload(seq).len())
}

/// One event in sixteen never acknowledged, the others a group later (as with one lane of
/// sixteen whose receiver keeps failing).
fn stuck(seq: u64) -> bool {
    seq.is_multiple_of(16)
}

#[test]
fn a_stuck_lane_keeps_the_disk_within_a_bound_of_its_live_events() {
    const SEGMENT: u64 = 4 << 10;
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), SEGMENT);
    let (mut previous, mut written, mut stuck_bytes) = (Vec::new(), 0, 0);
    for group in 0..1500u64 {
        let seqs: Vec<u64> = (group * 16 + 1..=group * 16 + 16).collect();
        let acks: Vec<u64> = previous.iter().copied().filter(|&s| !stuck(s)).collect();
        append(&mut log, seqs.iter().copied(), &acks);
        written += seqs.iter().map(|&s| event_bytes(s)).sum::<u64>() + 9 + 8 * acks.len() as u64;
        stuck_bytes += seqs
            .iter()
            .filter(|&&s| stuck(s))
            .map(|&s| event_bytes(s))
            .sum::<u64>();
        // The older segments stay within about twice their live bytes and a segment; add the
        // current segment, the front being compacted and the last group.
        let bound = 2 * stuck_bytes + 5 * SEGMENT;
        assert!(
            log.disk_bytes() <= bound,
            "group {group}: {} bytes on disk for {stuck_bytes} stuck",
            log.disk_bytes()
        );
        assert!(segment_files(dir.path()) as u64 <= bound / SEGMENT + 2);
        previous = seqs;
    }
    assert!(
        log.disk_bytes() * 4 < written,
        "{} on disk, {written} written",
        log.disk_bytes()
    );
    assert!(
        !log.relocated.is_empty(),
        "stuck events were copied forward"
    );
    let last = previous
        .iter()
        .copied()
        .filter(|&s| !stuck(s))
        .collect::<Vec<_>>();
    append(&mut log, [], &last);
    drop(log);
    let (_, recovered) = open(dir.path(), SEGMENT);
    let expected: Vec<u64> = (1..=1500 * 16).filter(|&s| stuck(s)).collect();
    assert_eq!(live_seqs(&recovered, dir.path()), expected);
}

#[test]
fn a_crash_between_copy_and_delete_keeps_one_copy_and_no_acknowledged_event() {
    const SEGMENT: u64 = 1 << 10;
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), SEGMENT);
    let mut previous: Vec<u64> = Vec::new();
    let mut restored = None;
    // The first front seen with live events; older segments are no longer written, so its
    // bytes then are what a crash would leave.
    type Front = (std::path::PathBuf, Vec<u8>, Vec<std::path::PathBuf>);
    let mut front: Option<Front> = None;
    for group in 0..1000u64 {
        if front.is_none()
            && let Some(segment) = log.older.front().filter(|s| s.live_events() > 0)
        {
            let bytes = fs::read(&segment.path).expect("front");
            let others = log.older.iter().skip(1).map(|s| s.path.clone());
            let others = others.chain([log.current.path.clone()]).collect();
            front = Some((segment.path.clone(), bytes, others));
        }
        let seqs: Vec<u64> = (group * 16 + 1..=group * 16 + 16).collect();
        let acks: Vec<u64> = previous.iter().copied().filter(|&s| !stuck(s)).collect();
        append(&mut log, seqs.iter().copied(), &acks);
        previous = seqs;
        if let Some((path, bytes, others)) = &front
            && !path.exists()
        {
            if !others.iter().all(|other| other.exists()) {
                // Others went with it: a crash can leave only the oldest deletions undone
                // with the newer ones done, never the reverse. Another front, then.
                front = None;
                continue;
            }
            // Compaction copied its live events and deleted it, but the deletion never
            // reached the disk.
            fs::write(path, bytes).expect("put back");
            restored = Some(path.clone());
            break;
        }
    }
    let restored = restored.expect("a front with live events was compacted");
    let mut moved: Vec<u64> = log.relocated.keys().copied().collect();
    moved.sort_unstable();
    assert!(moved.len() >= 2, "relocated: {moved:?}");
    let last = log.last_seq();
    // The crash, right after the deletion that did not last.
    drop(log);

    let (mut log, recovered) = open(dir.path(), SEGMENT);
    let live = |ended: &[u64]| -> Vec<u64> {
        (1..=last)
            .filter(|s| (stuck(*s) && !ended.contains(s)) || previous.contains(s))
            .collect()
    };
    assert_eq!(
        live_seqs(&recovered, dir.path()),
        live(&[]),
        "each live event once"
    );
    assert!(
        !restored.exists(),
        "its events live in their copies, so it is deleted again"
    );
    // Some of the relocated events end after the restart.
    let ended: Vec<u64> = moved.iter().copied().step_by(2).collect();
    append(&mut log, [], &ended);
    drop(log);
    let (mut log, recovered) = open(dir.path(), SEGMENT);
    let expected = live(&ended);
    assert_eq!(
        live_seqs(&recovered, dir.path()),
        expected,
        "acknowledged ones stay dead"
    );
    append(&mut log, [], &expected);
    assert_eq!(
        segment_files(dir.path()),
        1,
        "nothing live is left anywhere"
    );
    drop(log);
    let (_, recovered) = open(dir.path(), SEGMENT);
    assert!(recovered.live.is_empty());
}

/// Appends groups of events acknowledged at once until `done`.
fn fill_until(log: &mut SegmentLog, done: impl Fn(&SegmentLog) -> bool) {
    for _ in 0..1000 {
        if done(log) {
            return;
        }
        let seqs: Vec<u64> = (log.last_seq() + 1..=log.last_seq() + 4).collect();
        append(log, seqs.iter().copied(), &seqs);
    }
    panic!("still not done after 1000 groups");
}

#[test]
fn relocated_events_are_acknowledged_before_and_after_a_restart_and_move_again() {
    const SEGMENT: u64 = 256;
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), SEGMENT);
    append(&mut log, 1..=3, &[]);
    fill_until(&mut log, |log| {
        (1..=3).all(|s| log.relocated.contains_key(&s))
    });
    // The emptied segment goes at the next sync, once readers have its events' new places.
    append(&mut log, [], &[]);
    assert!(
        log.older.iter().all(|s| s.live.base > 3),
        "the first segment is gone"
    );
    append(&mut log, [], &[1]);
    assert!(!log.relocated.contains_key(&1));
    drop(log);

    let (mut log, recovered) = open(dir.path(), SEGMENT);
    assert_eq!(live_seqs(&recovered, dir.path()), [2, 3]);
    append(&mut log, [], &[2]);
    // Event 3 moves on again once the segment holding its copy is the oldest.
    let first_home = log.relocated.get(&3).copied().expect("3 is relocated");
    fill_until(&mut log, |log| {
        log.relocated
            .get(&3)
            .is_some_and(|&home| home != first_home)
    });
    append(&mut log, [], &[]);
    assert!(log.older.iter().all(|s| s.number != first_home));
    drop(log);

    let (mut log, recovered) = open(dir.path(), SEGMENT);
    assert_eq!(live_seqs(&recovered, dir.path()), [3]);
    append(&mut log, [], &[3]);
    assert!(log.relocated.is_empty());
    drop(log);
    let (_, recovered) = open(dir.path(), SEGMENT);
    assert!(recovered.live.is_empty());
}

/// Ids are made of the epoch and the sequence number: numbers keep growing across restarts
/// even when everything was acknowledged and every segment holding an event is gone.
#[test]
fn sequence_numbers_never_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), 1 << 20);
    let epoch = log.epoch();
    append(&mut log, 1..=3, &[]);
    append(&mut log, [], &[1, 2, 3]);
    drop(log);
    for _ in 0..3 {
        let (log, recovered) = open(dir.path(), 1 << 20);
        assert!(recovered.live.is_empty());
        assert_eq!((log.epoch(), log.last_seq()), (epoch, 3));
    }
    let (mut log, _) = open(dir.path(), 1 << 20);
    append(&mut log, [4], &[]);
    drop(log);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(live_seqs(&recovered, dir.path()), [4]);
}

/// Every event record written, appended or copied forward, is where `take_written` says,
/// and the newest place of each stuck event reads back as that event.
#[test]
fn written_locations_read_back_through_compaction() {
    const SEGMENT: u64 = 4 << 10;
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = open(dir.path(), SEGMENT);
    let mut newest: HashMap<u64, Location> = HashMap::new();
    let mut previous: Vec<u64> = Vec::new();
    let mut copies = 0;
    for group in 0..300u64 {
        let seqs: Vec<u64> = (group * 16 + 1..=group * 16 + 16).collect();
        let acks: Vec<u64> = previous.iter().copied().filter(|&s| !stuck(s)).collect();
        append(&mut log, seqs.iter().copied(), &acks);
        for seq in &acks {
            newest.remove(seq);
        }
        for (seq, location) in log.take_written() {
            copies += usize::from(newest.contains_key(&seq));
            newest.insert(seq, location);
        }
        previous = seqs;
    }
    assert!(copies > 0, "compaction copied stuck events forward");
    for (seq, location) in &newest {
        let (read, bytes) = Reader::new(dir.path()).read(*location).expect("readable");
        assert_eq!((read, bytes), (*seq, payload(*seq)));
    }
    let bogus = Location {
        segment: 1,
        offset: 3,
    };
    assert!(Reader::new(dir.path()).read(bogus).is_err());
}
