//! Tests of the damage a log must refuse to open with (segments that do not join up, a
//! corrupt header at a sealed segment's end) and of the follower's oversized batches, against
//! real files in temporary directories.

use std::fs;
use std::path::Path;

use super::batch::{BatchView, Batches};
use super::config::FlushPolicy;
use super::error::StorageError;
use super::log::PartitionLog;
use super::log_tests::{batch, cfg, read_all};

/// A leader log of `n` single-record batches of `payload` bytes, rolled at `segment_bytes`.
fn leader_log(dir: &Path, segment_bytes: u64, n: i64, payload: usize) -> PartitionLog {
    let mut log = PartitionLog::open(dir, cfg(segment_bytes, FlushPolicy::Os)).expect("open");
    for i in 0..n {
        log.append_as_leader(batch(1, i, payload), 0)
            .expect("append");
    }
    log
}

fn stem(base: i64) -> String {
    format!("{base:020}")
}

#[test]
fn a_deleted_middle_segment_stops_the_log_from_opening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = leader_log(dir.path(), 2000, 60, 80);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    log.close().expect("close");
    let (gone, next) = (bases[1], bases[2]);
    fs::remove_file(dir.path().join(format!("{}.log", stem(gone)))).expect("rm log");
    fs::remove_file(dir.path().join(format!("{}.index", stem(gone)))).expect("rm index");
    let err = PartitionLog::open(dir.path(), cfg(2000, FlushPolicy::Os)).expect_err("a gap");
    match &err {
        StorageError::SegmentGap {
            end_offset,
            next_base_offset,
            ..
        } => assert_eq!((*end_offset, *next_base_offset), (gone, next), "{err}"),
        other => panic!("expected a segment gap, got {other}"),
    }
    assert_eq!(err.kafka_error_code(), 56, "KAFKA_STORAGE_ERROR");
    assert!(err.to_string().contains("gap"), "{err}");
}

#[test]
fn a_shortened_sealed_segment_stops_the_log_from_opening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = leader_log(dir.path(), 2000, 40, 80);
    let bases = log.segment_base_offsets();
    log.close().expect("close");
    // Cut the first segment's last batch off, exactly at a batch boundary: every header that
    // remains parses, but offsets are missing before the second segment.
    let first = dir.path().join(format!("{}.log", stem(bases[0])));
    let bytes = fs::read(&first).expect("read");
    let mut last_start = 0;
    let mut pos = 0;
    for b in Batches::new(bytes::Bytes::from(bytes.clone())) {
        let b = b.expect("valid");
        last_start = pos;
        pos += b.size_in_bytes();
    }
    fs::write(&first, &bytes[..last_start]).expect("cut");
    let err = PartitionLog::open(dir.path(), cfg(2000, FlushPolicy::Os)).expect_err("a gap");
    assert!(matches!(err, StorageError::SegmentGap { .. }), "{err}");
}

#[test]
fn a_corrupt_header_at_a_sealed_segments_end_stops_the_log_from_opening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = leader_log(dir.path(), 2000, 40, 80);
    let bases = log.segment_base_offsets();
    log.close().expect("close");
    let first = dir.path().join(format!("{}.log", stem(bases[0])));
    let mut bytes = fs::read(&first).expect("read");
    let len = bytes.len();
    // The last batch's header, past the last index entry: its batchLength becomes garbage.
    let mut last_start = 0;
    let mut pos = 0;
    for b in Batches::new(bytes::Bytes::from(bytes.clone())) {
        let b = b.expect("valid");
        last_start = pos;
        pos += b.size_in_bytes();
    }
    assert_eq!(pos, len);
    bytes[last_start + 8..last_start + 12].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    fs::write(&first, &bytes).expect("corrupt");
    let err = PartitionLog::open(dir.path(), cfg(2000, FlushPolicy::Os)).expect_err("corrupt");
    assert!(matches!(err, StorageError::CorruptSegment { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 56);
}

#[test]
fn a_truncated_index_is_rebuilt_and_the_log_opens_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = leader_log(dir.path(), 2000, 40, 80);
    let before = read_all(&log);
    let bases = log.segment_base_offsets();
    log.close().expect("close");
    for b in &bases {
        let index = dir.path().join(format!("{}.index", stem(*b)));
        let len = fs::metadata(&index).expect("index").len();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&index)
            .expect("open");
        f.set_len(len.saturating_sub(3)).expect("truncate");
    }
    let log = PartitionLog::open(dir.path(), cfg(2000, FlushPolicy::Os)).expect("open");
    assert_eq!(read_all(&log), before);
}

#[test]
fn a_follower_gives_a_batch_larger_than_its_segment_a_segment_of_its_own() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let mut leader =
        PartitionLog::open(leader_dir.path(), cfg(1 << 20, FlushPolicy::Os)).expect("open");
    // Small, large, large, small, small, large: one fetch carries them all.
    for payload in [50, 9000, 7000, 60, 70, 12000] {
        leader
            .append_as_leader(batch(1, 0, payload), 1)
            .expect("append");
    }
    let all = leader.read(0, usize::MAX).expect("read");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut follower =
        PartitionLog::open(follower_dir.path(), cfg(4096, FlushPolicy::Os)).expect("open");
    let info = follower.append_as_follower(all.clone()).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 5));
    assert_eq!(info.batches.len(), 6);
    assert_eq!(info.size_in_bytes, all.len() as u64);
    assert_eq!(follower.log_end_offset(), 6);
    assert_eq!(read_all(&follower), read_all(&leader));
    // Each oversized batch alone in its segment; the small ones share.
    assert_eq!(follower.segment_base_offsets(), vec![0, 1, 2, 3, 5]);
    // And the log reopens: its segments join up.
    follower.close().expect("close");
    let follower =
        PartitionLog::open(follower_dir.path(), cfg(4096, FlushPolicy::Os)).expect("reopen");
    assert_eq!(read_all(&follower), read_all(&leader));
    // A leader still refuses an append larger than its segment (Kafka's
    // RecordBatchTooLargeException), so only replication stores one.
    let mut small_leader = follower;
    let err = small_leader
        .append_as_leader(batch(1, 0, 9000), 1)
        .expect_err("too large for a leader");
    assert!(matches!(err, StorageError::AppendTooLarge { .. }), "{err}");
}
