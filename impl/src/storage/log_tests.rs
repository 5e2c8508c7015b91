//! Tests of [`PartitionLog`] against real files in temporary directories.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};

use super::batch::{BatchView, Batches, RecordBatch, TimestampType};
use super::builder::BatchBuilder;
use super::checkpoint::{
    read_high_watermark_checkpoint, read_leader_epoch_checkpoint, HIGH_WATERMARK_CHECKPOINT,
    LEADER_EPOCH_CHECKPOINT,
};
use super::config::{FlushPolicy, LogConfig};
use super::epoch_cache::EpochEntry;
use super::error::StorageError;
use super::log::PartitionLog;

pub(super) fn cfg(segment_bytes: u64, flush_policy: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        max_batch_bytes: 1 << 20,
        flush_policy,
        oversized_batch_own_segment: false,
        ..LogConfig::default()
    }
}

/// A producer batch with `n` records of `payload` bytes, timestamps from `ts`.
pub(super) fn batch(n: usize, ts: i64, payload: usize) -> BytesMut {
    let mut b = BatchBuilder::new(ts).producer(1000, 1, 0);
    for i in 0..n {
        b = b.record(ts + i as i64, Some(b"key"), Some(&vec![i as u8; payload]));
    }
    b.build()
}

/// Reads the whole log from its start, checking batches are consecutive.
pub(super) fn read_all(log: &PartitionLog) -> Vec<RecordBatch> {
    let mut out: Vec<RecordBatch> = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.log_end_offset() {
        let bytes = log.read(off, 1000).expect("read");
        assert!(
            !bytes.is_empty(),
            "empty read at {off} < LEO {}",
            log.log_end_offset()
        );
        for b in Batches::new(bytes) {
            let b = b.expect("valid batch");
            assert_eq!(b.base_offset(), off, "batches must be consecutive");
            off = b.last_offset() + 1;
            out.push(b);
        }
    }
    assert_eq!(off, log.log_end_offset());
    out
}

fn open(dir: &Path, c: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, c).expect("open")
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn new_log_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), cfg(4096, FlushPolicy::Os));
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.high_watermark(), 0);
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.last_fetched_epoch(), None);
    assert_eq!(segment_files(dir.path()), vec!["00000000000000000000.log"]);
    assert!(dir.path().join("00000000000000000000.index").exists());
    assert_eq!(log.read(0, 100).expect("read at LEO"), Bytes::new());
}

#[test]
fn append_and_read_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1024, FlushPolicy::Os));
    let mut expected = Vec::new();
    for i in 0..60 {
        let n = 1 + i % 4;
        let info = log
            .append_as_leader(batch(n, 1000 + i as i64, 20 + i % 30), 3)
            .expect("append");
        assert_eq!(
            info.first_offset,
            expected.iter().map(|&(_, n)| n as i64).sum::<i64>()
        );
        assert_eq!(info.last_offset, info.first_offset + n as i64 - 1);
        assert_eq!(info.record_count, n as u64);
        expected.push((info.first_offset, n));
    }
    let leo = log.log_end_offset();
    assert_eq!(leo, expected.iter().map(|&(_, n)| n as i64).sum::<i64>());
    assert!(
        log.segment_base_offsets().len() > 3,
        "{:?}",
        log.segment_base_offsets()
    );
    assert_eq!(
        segment_files(dir.path()).len(),
        log.segment_base_offsets().len()
    );
    for f in segment_files(dir.path()) {
        let len = fs::metadata(dir.path().join(&f)).expect("meta").len();
        assert!(len <= 1024, "{f} has {len} bytes");
    }
    let check = |log: &PartitionLog| {
        let all = read_all(log);
        assert_eq!(all.len(), expected.len());
        for (b, &(first, n)) in all.iter().zip(&expected) {
            assert_eq!(b.base_offset(), first);
            assert_eq!(b.records_count(), n as i32);
            assert_eq!(b.partition_leader_epoch(), 3);
            assert!(b.is_crc_valid());
        }
        // Every offset reads back the batch that contains it.
        for &(first, n) in &expected {
            for o in first..first + n as i64 {
                let bytes = log.read(o, 0).expect("read");
                let b = Batches::new(bytes).next().expect("one").expect("valid");
                assert_eq!(b.base_offset(), first, "offset {o}");
            }
        }
    };
    check(&log);
    drop(log);
    let log = open(dir.path(), cfg(1024, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), leo);
    check(&log);
    assert_eq!(
        log.epoch_cache().entries(),
        &[EpochEntry {
            epoch: 3,
            start_offset: 0
        }]
    );
}

#[test]
fn read_from_middle_of_batch_and_max_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    log.append_as_leader(batch(10, 0, 10), 0).expect("a");
    let big = log.append_as_leader(batch(5, 0, 500), 0).expect("b");
    log.append_as_leader(batch(2, 0, 10), 0).expect("c");
    assert_eq!(big.first_offset, 10);
    // Middle of the big batch: starts at its base offset.
    let bytes = log.read(12, 1 << 20).expect("read");
    let bs: Vec<RecordBatch> = Batches::new(bytes).map(|b| b.expect("valid")).collect();
    assert_eq!(bs.len(), 2);
    assert_eq!(bs[0].base_offset(), 10);
    assert_eq!(bs[1].base_offset(), 15);
    // max_bytes smaller than the batch: still exactly one whole batch.
    let bytes = log.read(12, 1).expect("read");
    assert_eq!(bytes.len(), big.size_in_bytes as usize);
    assert_eq!(Batches::new(bytes).count(), 1);
    // max_bytes covering one and a half batches: only whole batches.
    let first_size = log.read(0, 0).expect("read").len();
    let bytes = log.read(0, first_size + 100).expect("read");
    assert_eq!(bytes.len(), first_size);
    let bytes = log.read(0, usize::MAX).expect("read");
    assert_eq!(Batches::new(bytes).count(), 3);
}

#[test]
fn reads_outside_the_log_are_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(4096, FlushPolicy::Os));
    log.append_as_leader(batch(3, 0, 10), 0).expect("append");
    assert!(log.read(3, 10).expect("at LEO").is_empty());
    for off in [-1, 4, 1000] {
        let err = log.read(off, 10).expect_err("out of range");
        assert!(
            matches!(err, StorageError::OffsetOutOfRange { offset, log_start: 0, log_end: 3, .. } if offset == off),
            "{err}"
        );
        assert_eq!(err.kafka_error_code(), 1);
    }
}

#[test]
fn leader_append_stamps_offsets_and_epochs_and_reports_producer_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    let mut two = BatchBuilder::new(50)
        .producer(9, 2, 100)
        .record(50, None, Some(b"a"))
        .record(70, None, Some(b"b"))
        .build();
    two.extend_from_slice(
        &BatchBuilder::new(60)
            .producer(9, 2, 102)
            .transactional(true)
            .record(60, None, Some(b"c"))
            .build(),
    );
    let info = log.append_as_leader(two, 4).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 2));
    assert_eq!(info.record_count, 3);
    assert_eq!(info.max_timestamp, 70);
    assert_eq!(info.batches.len(), 2);
    let b0 = info.batches[0];
    assert_eq!((b0.base_offset, b0.last_offset), (0, 1));
    assert_eq!((b0.producer_id, b0.producer_epoch), (9, 2));
    assert_eq!((b0.base_sequence, b0.last_sequence), (100, 101));
    assert_eq!(b0.partition_leader_epoch, 4);
    assert!(!b0.is_transactional);
    let b1 = info.batches[1];
    assert_eq!(
        (b1.base_offset, b1.base_sequence, b1.last_sequence),
        (2, 102, 102)
    );
    assert!(b1.is_transactional && !b1.is_control);
    let stored = read_all(&log);
    assert!(stored
        .iter()
        .all(|b| b.partition_leader_epoch() == 4 && b.is_crc_valid()));
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.last_fetched_epoch(), Some(4));
    // New epoch gets a cache entry at its first offset.
    log.append_as_leader(batch(2, 0, 1), 6).expect("append");
    assert_eq!(
        log.epoch_cache().entries(),
        &[
            EpochEntry {
                epoch: 4,
                start_offset: 0
            },
            EpochEntry {
                epoch: 6,
                start_offset: 3
            }
        ]
    );
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 3)));
    assert_eq!(log.end_offset_for_epoch(5), Some((4, 3)));
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 5)));
    assert_eq!(log.end_offset_for_epoch(7), None);
    // The checkpoint on disk matches.
    assert_eq!(
        read_leader_epoch_checkpoint(&dir.path().join(LEADER_EPOCH_CHECKPOINT))
            .expect("read")
            .expect("exists"),
        log.epoch_cache().entries()
    );
    // Stale epoch refused.
    let err = log.append_as_leader(batch(1, 0, 1), 5).expect_err("stale");
    assert!(
        matches!(
            err,
            StorageError::StaleLeaderEpoch {
                epoch: 5,
                latest: 6,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 5);
    // Empty append is a no-op.
    let e = log.append_as_leader(BytesMut::new(), 6).expect("empty");
    assert_eq!((e.first_offset, e.last_offset, e.record_count), (5, 4, 0));
}

#[test]
fn leader_append_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(4096, FlushPolicy::Os));
    log.append_as_leader(batch(1, 0, 1), 0).expect("append");
    let size_before = log.size_in_bytes();
    // Second batch has a flipped payload byte.
    let mut buf = batch(2, 0, 10);
    let mut bad = batch(2, 0, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    buf.extend_from_slice(&bad);
    let err = log.append_as_leader(buf, 0).expect_err("corrupt");
    assert!(matches!(err, StorageError::CrcMismatch { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 2);
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.size_in_bytes(), size_before);
    // Policy violation (recordsCount != lastOffsetDelta + 1) in an otherwise valid batch.
    let mut buf = batch(3, 0, 1);
    buf[57..61].copy_from_slice(&2i32.to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    let err = log.append_as_leader(buf, 0).expect_err("policy");
    assert_eq!(err.kafka_error_code(), 87, "{err}");
    // Batch over max_batch_bytes.
    let mut small = cfg(1 << 20, FlushPolicy::Os);
    small.max_batch_bytes = 100;
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut log2 = open(dir2.path(), small);
    let err = log2
        .append_as_leader(batch(1, 0, 200), 0)
        .expect_err("too large");
    assert_eq!(err.kafka_error_code(), 10, "{err}");
    // Append larger than a segment.
    let err = log
        .append_as_leader(batch(1, 0, 5000), 0)
        .expect_err("too large");
    assert!(matches!(err, StorageError::AppendTooLarge { .. }), "{err}");
    assert_eq!(err.kafka_error_code(), 18);
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn follower_append_checks_offsets_and_epochs() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = open(leader_dir.path(), cfg(1 << 20, FlushPolicy::Os));
    leader.append_as_leader(batch(3, 0, 5), 1).expect("a");
    leader.append_as_leader(batch(2, 0, 5), 1).expect("b");
    leader.append_as_leader(batch(4, 0, 5), 3).expect("c");
    let all = leader.read(0, usize::MAX).expect("read");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    // Skipping ahead is refused with a precise error.
    let tail = leader.read(5, usize::MAX).expect("read");
    let err = f.append_as_follower(tail).expect_err("gap");
    assert!(
        matches!(
            err,
            StorageError::UnexpectedAppendOffset {
                expected: 0,
                found: 5,
                position: 0,
                ..
            }
        ),
        "{err}"
    );
    let info = f.append_as_follower(all.clone()).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 8));
    assert_eq!(f.log_end_offset(), 9);
    assert_eq!(f.epoch_cache(), leader.epoch_cache());
    assert_eq!(f.read(0, usize::MAX).expect("read"), all);
    // Re-sending the same data is refused (offset 0 != LEO 9).
    assert!(matches!(
        f.append_as_follower(all),
        Err(StorageError::UnexpectedAppendOffset {
            expected: 9,
            found: 0,
            ..
        })
    ));
    // Epoch going backwards is refused.
    let old = BatchBuilder::new(0)
        .base_offset(9)
        .leader_epoch(2)
        .record(0, None, None)
        .build()
        .freeze();
    assert!(matches!(
        f.append_as_follower(old),
        Err(StorageError::StaleLeaderEpoch {
            epoch: 2,
            latest: 3,
            ..
        })
    ));
    // Unstamped batch is refused.
    let unstamped = BatchBuilder::new(0)
        .base_offset(9)
        .record(0, None, None)
        .build()
        .freeze();
    assert_eq!(
        f.append_as_follower(unstamped)
            .expect_err("no epoch")
            .kafka_error_code(),
        87
    );
    // Corrupt batch is refused.
    let mut bad = BytesMut::from(
        &BatchBuilder::new(0)
            .base_offset(9)
            .leader_epoch(3)
            .record(0, None, Some(b"x"))
            .build()[..],
    );
    let l = bad.len() - 2;
    bad[l] ^= 1;
    assert!(matches!(
        f.append_as_follower(bad.freeze()),
        Err(StorageError::CrcMismatch { .. })
    ));
    assert_eq!(f.log_end_offset(), 9);
}

#[test]
fn truncate_to_then_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(600, FlushPolicy::Os));
    for e in 0..6 {
        log.append_as_leader(batch(3, 0, 40), e).expect("append");
    }
    assert_eq!(log.log_end_offset(), 18);
    let segs_before = log.segment_base_offsets().len();
    assert!(segs_before > 1);
    log.set_high_watermark(18);
    // Truncating inside a batch (offset 8 is in batch 6..=8) removes that whole batch.
    assert_eq!(log.truncate_to(8).expect("truncate"), 6);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(log.latest_epoch(), Some(1));
    assert_eq!(log.epoch_cache().entries().len(), 2);
    assert!(log.segment_base_offsets().iter().all(|&b| b <= 6));
    assert_eq!(
        segment_files(dir.path()).len(),
        log.segment_base_offsets().len()
    );
    assert_eq!(log.flushed_offset(), 6);
    // At or past the end: no-op.
    assert_eq!(log.truncate_to(100).expect("noop"), 6);
    let info = log.append_as_leader(batch(2, 0, 40), 9).expect("append");
    assert_eq!(info.first_offset, 6);
    let all = read_all(&log);
    let epochs: Vec<i32> = all.iter().map(|b| b.partition_leader_epoch()).collect();
    assert_eq!(epochs, vec![0, 1, 9]);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 6)));
    // Survives reopen.
    drop(log);
    let log = open(dir.path(), cfg(600, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(read_all(&log).len(), 3);
    assert_eq!(
        log.epoch_cache()
            .entries()
            .last()
            .map(|e| (e.epoch, e.start_offset)),
        Some((9, 6))
    );
}

#[test]
fn truncate_to_segment_boundary_and_below_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(300, FlushPolicy::Os));
    for _ in 0..8 {
        log.append_as_leader(batch(2, 0, 60), 0).expect("append");
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let b = bases[1];
    assert_eq!(log.truncate_to(b).expect("truncate"), b);
    assert_eq!(*log.segment_base_offsets().last().expect("seg"), b);
    assert_eq!(read_all(&log).last().map(|x| x.last_offset() + 1), Some(b));
    assert_eq!(
        log.truncate_to(-1).map_err(|e| e.kafka_error_code()),
        Err(-1)
    );
    // Retain only the last segment, then truncate below the log start.
    for _ in 0..6 {
        log.append_as_leader(batch(2, 0, 60), 0).expect("append");
    }
    log.set_high_watermark(log.log_end_offset());
    log.apply_retention(0, None, Some(1)).expect("retention");
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(log.truncate_to(start - 1).expect("full"), start - 1);
    assert_eq!(log.log_start_offset(), start - 1);
    assert_eq!(log.log_end_offset(), start - 1);
    assert_eq!(log.segment_base_offsets(), vec![start - 1]);
    assert!(log.epoch_cache().is_empty());
    let info = log.append_as_leader(batch(1, 0, 1), 2).expect("append");
    assert_eq!(info.first_offset, start - 1);
    drop(log);
    let log = open(dir.path(), cfg(300, FlushPolicy::Os));
    assert_eq!(log.log_start_offset(), start - 1);
    assert_eq!(log.log_end_offset(), start);
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(500, FlushPolicy::Os));
    for i in 0..20 {
        log.append_as_leader(batch(2, 0, 50), i / 5)
            .expect("append");
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 4);
    // Nothing is deleted above the high watermark.
    assert_eq!(log.apply_retention(0, None, Some(0)).expect("retention"), 0);
    log.set_high_watermark(log.log_end_offset());
    let total = log.size_in_bytes();
    let limit = total / 2;
    let deleted = log
        .apply_retention(0, None, Some(limit))
        .expect("retention");
    assert!(deleted > 0);
    assert!(log.size_in_bytes() >= limit, "never below the limit");
    assert_eq!(log.log_start_offset(), bases[deleted]);
    assert_eq!(log.segment_base_offsets(), bases[deleted..].to_vec());
    assert_eq!(segment_files(dir.path()).len(), bases.len() - deleted);
    // Epoch cache starts at the new log start.
    assert_eq!(
        log.epoch_cache().earliest_entry().map(|e| e.start_offset),
        Some(log.log_start_offset())
    );
    let err = log.read(0, 10).expect_err("deleted");
    assert!(matches!(err, StorageError::OffsetOutOfRange { .. }));
    read_all(&log);
    // Never the active segment.
    log.apply_retention(0, None, Some(0)).expect("retention");
    assert_eq!(log.segment_base_offsets().len(), 1);
    assert_eq!(log.log_end_offset(), 40);
    drop(log);
    let log = open(dir.path(), cfg(500, FlushPolicy::Os));
    assert_eq!(log.segment_base_offsets().len(), 1);
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(
        log.high_watermark(),
        log.log_start_offset(),
        "no HW checkpoint: clamped to start"
    );
}

#[test]
fn retention_by_time_uses_batch_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(400, FlushPolicy::Os));
    // Timestamps 1000, 2000, ... one batch per segment (each batch ~ 300 bytes).
    for i in 0..5 {
        log.append_as_leader(batch(2, 1000 * (i + 1), 120), 0)
            .expect("append");
    }
    assert_eq!(log.segment_base_offsets().len(), 5);
    log.set_high_watermark(log.log_end_offset());
    // now=3500, retention 1000: segments with max ts < 2500 go (max ts is base+1).
    let deleted = log
        .apply_retention(3500, Some(1000), None)
        .expect("retention");
    assert_eq!(deleted, 2);
    assert_eq!(log.log_start_offset(), 4);
    // Far future: all closed segments go, the active one stays.
    let deleted = log
        .apply_retention(1_000_000, Some(1), None)
        .expect("retention");
    assert_eq!(deleted, 2);
    assert_eq!(log.segment_base_offsets(), vec![8]);
    assert_eq!(read_all(&log).len(), 1);
    // Reopen computes max timestamps lazily from disk.
    for i in 5..8 {
        log.append_as_leader(batch(2, 1000 * (i + 1), 120), 0)
            .expect("append");
    }
    log.set_high_watermark(log.log_end_offset());
    log.checkpoint_high_watermark().expect("checkpoint");
    drop(log);
    let mut log = open(dir.path(), cfg(400, FlushPolicy::Os));
    assert_eq!(
        log.apply_retention(7500, Some(1000), None)
            .expect("retention"),
        2
    );
    assert_eq!(log.log_start_offset(), 12);
}

#[test]
fn recovery_keeps_everything_before_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    for i in 0..10 {
        log.append_as_leader(batch(3, i, 30), 2).expect("append");
    }
    log.set_high_watermark(30);
    log.checkpoint_high_watermark().expect("hw");
    let before = read_all(&log);
    drop(log);
    let seg = dir.path().join("00000000000000000000.log");
    let len = fs::metadata(&seg).expect("meta").len();
    let last_size = before.last().expect("batch").size_in_bytes() as u64;
    // Cut in the middle of the last batch.
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - last_size / 2)
        .expect("cut");
    let log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), 27);
    assert_eq!(fs::metadata(&seg).expect("meta").len(), len - last_size);
    let after = read_all(&log);
    assert_eq!(after, before[..9].to_vec());
    assert_eq!(log.high_watermark(), 27, "HW clamped to the recovered LEO");
    // Header-only torn tail (fewer than 61 bytes).
    let mut log = log;
    log.append_as_leader(batch(1, 0, 1), 2).expect("append");
    drop(log);
    let len = fs::metadata(&seg).expect("meta").len();
    let mut raw = fs::read(&seg).expect("read");
    raw.extend_from_slice(&[0u8; 20]);
    fs::write(&seg, &raw).expect("write");
    let log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), 28);
    assert_eq!(fs::metadata(&seg).expect("meta").len(), len);
}

#[test]
fn recovery_cuts_at_a_corrupt_byte_and_keeps_the_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    for i in 0..8 {
        log.append_as_leader(batch(2, i, 100), (i / 3) as i32)
            .expect("append");
    }
    let before = read_all(&log);
    assert_eq!(log.latest_epoch(), Some(2));
    drop(log);
    let seg = dir.path().join("00000000000000000000.log");
    let mut raw = fs::read(&seg).expect("read");
    let last_size = before.last().expect("batch").size_in_bytes();
    let at = raw.len() - last_size / 3;
    raw[at] ^= 0x40;
    fs::write(&seg, &raw).expect("write");
    let log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), 14);
    assert_eq!(read_all(&log), before[..7].to_vec());
    assert_eq!(log.latest_epoch(), Some(2), "batch 6 (epoch 2) survives");

    // A corrupt byte in the middle: everything from that batch on goes, the prefix stays,
    // and the epoch cache drops the epochs that no longer have data.
    drop(log);
    let mut raw = fs::read(&seg).expect("read");
    let third_start: usize = before[..2].iter().map(|b| b.size_in_bytes()).sum();
    raw[third_start + 70] ^= 0x01;
    fs::write(&seg, &raw).expect("write");
    let log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log), before[..2].to_vec());
    assert_eq!(
        log.epoch_cache().entries(),
        &[EpochEntry {
            epoch: 0,
            start_offset: 0
        }]
    );
    assert_eq!(
        read_leader_epoch_checkpoint(&dir.path().join(LEADER_EPOCH_CHECKPOINT))
            .expect("read")
            .expect("exists"),
        log.epoch_cache().entries(),
        "checkpoint rewritten to match"
    );
}

#[test]
fn unclean_crash_with_every_batch_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(700, FlushPolicy::EveryBatch));
    for i in 0..12 {
        log.append_as_leader(batch(2, i, 50), (i / 4) as i32)
            .expect("append");
        assert_eq!(log.flushed_offset(), log.log_end_offset());
    }
    let before = read_all(&log);
    let cache = log.epoch_cache().clone();
    let path = log.simulate_unclean_crash().expect("crash");
    let log = open(&path, cfg(700, FlushPolicy::EveryBatch));
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.epoch_cache(), &cache);
}

#[test]
fn unclean_crash_with_os_policy_loses_the_unflushed_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    for i in 0..5 {
        log.append_as_leader(batch(2, i, 50), 1).expect("append");
    }
    log.flush().expect("flush");
    assert_eq!(log.flushed_offset(), 10);
    let durable = read_all(&log);
    for i in 0..5 {
        log.append_as_leader(batch(2, i, 50), 2).expect("append");
    }
    assert_eq!(log.flushed_offset(), 10, "Os policy never fsyncs on append");
    assert_eq!(log.epoch_cache().entries().len(), 2);
    let path = log.simulate_unclean_crash().expect("crash");
    let log = open(&path, cfg(1 << 20, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(read_all(&log), durable);
    // The epoch-2 entry survived in the checkpoint but is truncated to the LEO.
    assert_eq!(
        log.epoch_cache().entries(),
        &[EpochEntry {
            epoch: 1,
            start_offset: 0
        }]
    );
    assert_eq!(log.flushed_offset(), 10);
}

#[test]
fn rolled_segments_are_durable_even_under_os_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(400, FlushPolicy::Os));
    for i in 0..6 {
        log.append_as_leader(batch(1, i, 200), 0).expect("append");
    }
    let bases = log.segment_base_offsets();
    let active_base = *bases.last().expect("seg");
    assert_eq!(log.flushed_offset(), active_base);
    let before = read_all(&log);
    let path = log.simulate_unclean_crash().expect("crash");
    let log = open(&path, cfg(400, FlushPolicy::Os));
    assert_eq!(log.log_end_offset(), active_base);
    assert_eq!(read_all(&log), before[..active_base as usize].to_vec());
}

#[test]
fn flush_policies_every_messages_and_every_millis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::EveryMessages(5)));
    log.append_as_leader(batch(3, 0, 1), 0).expect("append");
    assert_eq!(log.flushed_offset(), 0);
    log.append_as_leader(batch(3, 0, 1), 0).expect("append");
    assert_eq!(log.flushed_offset(), 6);
    log.append_as_leader(batch(1, 0, 1), 0).expect("append");
    assert_eq!(log.flushed_offset(), 6);
    assert!(
        !log.maybe_flush(1_000_000).expect("maybe"),
        "not due by count"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::EveryMillis(100)));
    assert!(!log.maybe_flush(0).expect("maybe"), "nothing to flush");
    log.append_as_leader(batch(1, 0, 1), 0).expect("append");
    assert_eq!(log.flushed_offset(), 0);
    assert!(log.maybe_flush(10).expect("maybe"));
    assert_eq!(log.flushed_offset(), 1);
    log.append_as_leader(batch(1, 0, 1), 0).expect("append");
    assert!(!log.maybe_flush(50).expect("maybe"));
    assert_eq!(log.flushed_offset(), 1);
    assert!(log.maybe_flush(110).expect("maybe"));
    assert_eq!(log.flushed_offset(), 2);
}

#[test]
fn high_watermark_checkpoint_and_clamping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::EveryBatch));
    log.append_as_leader(batch(5, 0, 1), 0).expect("append");
    assert_eq!(log.set_high_watermark(100), 5, "clamped to LEO");
    assert_eq!(log.set_high_watermark(-3), 0, "clamped to log start");
    log.set_high_watermark(4);
    log.checkpoint_high_watermark().expect("checkpoint");
    assert_eq!(
        read_high_watermark_checkpoint(&dir.path().join(HIGH_WATERMARK_CHECKPOINT)).expect("read"),
        Some(4)
    );
    log.close().expect("close");
    let log = open(dir.path(), cfg(1 << 20, FlushPolicy::EveryBatch));
    assert_eq!(log.high_watermark(), 4);
    drop(log);
    // A checkpoint beyond the recovered LEO is clamped.
    super::checkpoint::write_high_watermark_checkpoint(
        &dir.path().join(HIGH_WATERMARK_CHECKPOINT),
        99,
    )
    .expect("write");
    let log = open(dir.path(), cfg(1 << 20, FlushPolicy::EveryBatch));
    assert_eq!(log.high_watermark(), 5);
}

#[test]
fn malformed_checkpoint_fails_open_with_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path(), cfg(4096, FlushPolicy::Os)));
    fs::write(
        dir.path().join(LEADER_EPOCH_CHECKPOINT),
        "0\n1\nnot numbers\n",
    )
    .expect("write");
    let err = PartitionLog::open(dir.path(), cfg(4096, FlushPolicy::Os)).expect_err("malformed");
    assert!(
        matches!(err, StorageError::MalformedCheckpoint { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(LEADER_EPOCH_CHECKPOINT), "{err}");
}

#[test]
fn missing_epoch_checkpoint_is_rebuilt_from_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(500, FlushPolicy::Os));
    for i in 0..12 {
        log.append_as_leader(batch(2, 0, 60), i / 3)
            .expect("append");
    }
    let cache = log.epoch_cache().clone();
    assert_eq!(cache.entries().len(), 4);
    assert!(log.segment_base_offsets().len() > 2);
    drop(log);
    fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("rm");
    let log = open(dir.path(), cfg(500, FlushPolicy::Os));
    assert_eq!(log.epoch_cache(), &cache);
    assert!(
        dir.path().join(LEADER_EPOCH_CHECKPOINT).exists(),
        "rewritten"
    );
}

#[test]
fn stale_files_are_cleaned_and_bad_index_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(2000, FlushPolicy::Os));
    for i in 0..40 {
        log.append_as_leader(batch(1, i, 80), 0).expect("append");
    }
    let before = read_all(&log);
    drop(log);
    fs::write(dir.path().join("00000000000000009999.index"), b"junk").expect("orphan");
    fs::write(dir.path().join("leader-epoch-checkpoint.tmp"), b"junk").expect("tmp");
    fs::write(dir.path().join("00000000000000000000.index"), [0xffu8; 24]).expect("clobber");
    let log = open(dir.path(), cfg(2000, FlushPolicy::Os));
    assert!(!dir.path().join("00000000000000009999.index").exists());
    assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
    assert_eq!(read_all(&log), before);
    for (i, b) in before.iter().enumerate() {
        let got = Batches::new(log.read(i as i64, 0).expect("read"))
            .next()
            .expect("one")
            .expect("valid");
        assert_eq!(&got, b);
    }
}

#[test]
fn invalid_config_and_arguments_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = PartitionLog::open(dir.path(), cfg(10, FlushPolicy::Os)).expect_err("bad config");
    assert!(matches!(err, StorageError::InvalidConfig { .. }));
    let mut log = open(dir.path(), cfg(4096, FlushPolicy::Os));
    assert!(matches!(
        log.append_as_leader(batch(1, 0, 1), -1),
        Err(StorageError::InvalidArgument { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn reads_stay_correct_when_the_index_is_sparser_than_configured() {
    // Written with a 4 KiB index interval, read back with a 64-byte one: the read window
    // computed from the new interval is too small to reach the target, which exercises the
    // header-scan fallback and the second, exact read.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sparse = cfg(8192, FlushPolicy::Os);
    sparse.index_interval_bytes = 4096;
    let mut log = open(dir.path(), sparse);
    for i in 0..120 {
        log.append_as_leader(batch(1 + i % 3, i as i64, 10 + i % 50), 0)
            .expect("append");
    }
    assert!(log.segment_base_offsets().len() > 1);
    let before = read_all(&log);
    drop(log);
    let mut dense = cfg(8192, FlushPolicy::Os);
    dense.index_interval_bytes = 64;
    let log = open(dir.path(), dense);
    assert_eq!(read_all(&log), before);
    for b in &before {
        for o in b.base_offset()..=b.last_offset() {
            let one = log.read(o, 0).expect("read");
            assert_eq!(&one, b.bytes(), "offset {o}");
            let many = log.read(o, 2000).expect("read");
            let got: Vec<RecordBatch> = Batches::new(many.clone())
                .map(|x| x.expect("valid"))
                .collect();
            assert_eq!(&got[0], b);
            assert!(many.len() <= 2000 || got.len() == 1);
        }
    }
}

#[test]
fn for_each_batch_header_walks_every_segment_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), cfg(600, FlushPolicy::Os));
    for i in 0..6 {
        log.append_as_leader(batch(i % 3 + 1, 0, 100), 0).unwrap();
    }
    assert!(
        log.segment_base_offsets().len() > 1,
        "the test needs rolled segments"
    );
    let mut seen = Vec::new();
    log.for_each_batch_header(|h| seen.push((h.base_offset, h.last_offset())))
        .unwrap();
    let expected: Vec<_> = read_all(&log)
        .iter()
        .map(|b| (b.base_offset(), b.last_offset()))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 6);
    log.truncate_to(seen[4].0).unwrap();
    let mut after = 0;
    log.for_each_batch_header(|_| after += 1).unwrap();
    assert_eq!(after, 4, "truncated batches are gone");
}

#[test]
fn segments_wholly_below_an_offset_are_deleted_and_the_log_start_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(500, FlushPolicy::Os));
    for i in 0..20 {
        log.append_as_leader(batch(2, 0, 50), i / 5)
            .expect("append");
    }
    log.set_high_watermark(log.log_end_offset());
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 4, "{bases:?}");
    // Below the first segment's end: nothing goes.
    assert_eq!(log.delete_segments_below(bases[1] - 1).expect("delete"), 0);
    assert_eq!(log.log_start_offset(), 0);
    // An offset inside the third segment: the first two go, the third stays.
    let cut = bases[2] + 1;
    assert_eq!(log.delete_segments_below(cut).expect("delete"), 2);
    assert_eq!(log.log_start_offset(), bases[2]);
    assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
    assert_eq!(segment_files(dir.path()).len(), bases.len() - 2);
    assert_eq!(
        log.epoch_cache().earliest_entry().map(|e| e.start_offset),
        Some(bases[2])
    );
    assert!(matches!(
        log.read(0, 10).expect_err("deleted"),
        StorageError::OffsetOutOfRange { .. }
    ));
    read_all(&log);
    // Never the active segment, even below the log end.
    let end = log.log_end_offset();
    log.delete_segments_below(end + 100).expect("delete");
    assert_eq!(log.segment_base_offsets().len(), 1);
    assert_eq!(log.log_end_offset(), end);
    // Reopened, the log starts where it did.
    let start = log.log_start_offset();
    drop(log);
    let mut log = open(dir.path(), cfg(500, FlushPolicy::Os));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    // Restarting the log past its end (a snapshot was installed).
    log.truncate_fully_and_start_at(end + 7).expect("restart");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (end + 7, end + 7)
    );
    assert!(log.epoch_cache().is_empty());
    log.append_as_leader(batch(1, 0, 10), 9).expect("append");
    assert_eq!(log.log_end_offset(), end + 8);
}

#[test]
fn an_oversized_batch_gets_a_segment_of_its_own_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(1024, FlushPolicy::EveryBatch);
    c.oversized_batch_own_segment = true;
    let mut log = open(dir.path(), c.clone());
    log.append_as_leader(batch(1, 0, 100), 0).expect("append");
    log.append_as_leader(batch(1, 0, 5000), 0)
        .expect("an oversized batch is stored");
    log.append_as_leader(batch(1, 0, 100), 0).expect("append");
    assert_eq!(log.segment_base_offsets(), vec![0, 1, 2]);
    assert_eq!(read_all(&log).len(), 3);
    drop(log);
    let log = open(dir.path(), c);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log).len(), 3);
}

/// `message.timestamp.type=LogAppendTime`: the leader stamps every batch with the time of
/// the append (attribute bit and `maxTimestamp`, CRC recomputed) and leaves the records'
/// own timestamps alone; `CreateTime`, or an append without a clock, stamps nothing.
#[test]
fn log_append_time_stamps_each_batch_and_keeps_its_crc_valid() {
    let two = || {
        let mut b = BatchBuilder::new(50)
            .record(50, None, Some(b"a"))
            .record(70, None, Some(b"b"))
            .build();
        b.extend_from_slice(&BatchBuilder::new(60).record(60, None, Some(b"c")).build());
        b
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(1 << 20, FlushPolicy::Os);
    c.timestamp_type = TimestampType::LogAppendTime;
    let mut log = open(dir.path(), c);
    log.append_as_leader_at(two(), 3, Some(1_234_567))
        .expect("append");
    log.append_as_leader(two(), 3)
        .expect("append without a clock");
    let stored = read_all(&log);
    assert_eq!(stored.len(), 4);
    for b in &stored[..2] {
        assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(b.max_timestamp(), 1_234_567);
        assert!(b.is_crc_valid());
    }
    assert_eq!(
        stored[0].base_timestamp(),
        50,
        "the records keep their own timestamps"
    );
    for b in &stored[2..] {
        assert_eq!(b.timestamp_type(), TimestampType::CreateTime);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    log.append_as_leader_at(two(), 3, Some(1_234_567))
        .expect("append");
    let stored = read_all(&log);
    assert!(
        stored
            .iter()
            .all(|b| b.timestamp_type() == TimestampType::CreateTime
                && b.max_timestamp() != 1_234_567)
    );
}

#[test]
fn an_append_that_would_end_at_the_last_offset_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), cfg(1 << 20, FlushPolicy::Os));
    log.truncate_fully_and_start_at(i64::MAX - 2)
        .expect("start high");
    let at = |base: i64, n: usize| {
        let mut b = BatchBuilder::new(0).base_offset(base).leader_epoch(0);
        for _ in 0..n {
            b = b.record(0, None, Some(b"v"));
        }
        Bytes::from(b.build())
    };
    // Two records ending at i64::MAX - 1 fit; the log end offset is then i64::MAX.
    let info = log.append_as_follower(at(i64::MAX - 2, 2)).expect("fits");
    assert_eq!(info.last_offset, i64::MAX - 1);
    assert_eq!(log.log_end_offset(), i64::MAX);
    // Nothing can follow: a batch at i64::MAX would need a log end offset past it.
    let err = log
        .append_as_follower(at(i64::MAX, 1))
        .expect_err("no offset after i64::MAX");
    assert!(matches!(err, StorageError::InvalidRecord { .. }), "{err}");
    assert_eq!(log.log_end_offset(), i64::MAX, "nothing was written");
    let err = log
        .append_as_leader(batch(1, 0, 1), 0)
        .expect_err("the leader path too");
    assert!(matches!(err, StorageError::InvalidRecord { .. }), "{err}");
}
