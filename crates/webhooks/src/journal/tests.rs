use std::io::Write as _;

use super::*;

fn open(dir: &Path, segment_bytes: u64) -> (SegmentLog, Recovered) {
    SegmentLog::open(dir, LogOptions { segment_bytes }).expect("journal opens")
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

fn live_seqs(recovered: &Recovered) -> Vec<u64> {
    recovered
        .live
        .iter()
        .map(|(seq, bytes)| {
            assert_eq!(bytes, &payload(*seq), "payload of {seq}");
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
    assert_eq!(live_seqs(&recovered), [3, 5, 6, 8]);
    assert!(recovered.cuts.is_empty());
    assert_eq!((log.epoch(), log.last_seq()), (epoch, 8));
    // Acknowledging recovered events works across the restart.
    append(&mut log, [9], &[3, 5]);
    drop(log);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(live_seqs(&recovered), [6, 8, 9]);
}

#[test]
fn finished_segments_are_deleted_oldest_first() {
    let dir = tempfile::tempdir().expect("dir");
    // Tiny segments: every append after the first fills one and starts the next.
    let (mut log, _) = open(dir.path(), 64);
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
    let (_, recovered) = open(dir.path(), 64);
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
    assert_eq!(live_seqs(&recovered), [3, 4]);
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
    assert_eq!(live_seqs(&recovered), [1, 2, 3]);
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
    assert_eq!(live_seqs(&recovered), [2, 3, 4]);
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
        live_seqs(&recovered),
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
