//! A partition directory as a crash, a bad disk or an operator may leave it: segments,
//! their offset indexes and the two checkpoints, opened and recovered by
//! `PartitionLog::open`.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use osprey_broker::storage::{BatchBuilder, LogConfig, PartitionLog};

use crate::alloc::peak_during;

/// The input format, easy to build from a real directory (see [`pack`]): chunks of
/// `[kind: u8][length: u32 little-endian][bytes]`. Kinds 0..=3 are the `.log` files of
/// segments 0..=3, 4..=7 their `.index` files, 8 the leader-epoch checkpoint, 9 the
/// high-watermark checkpoint, 10 the segments' base offsets (little-endian u64s; segment
/// *i* defaults to base offset `1000 * i`).
pub const SEGMENTS: usize = 4;

/// A directory's files in the input format: `(kind, bytes)` pairs.
pub fn pack(files: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, bytes) in files {
        out.push(*kind);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Writes the files an input describes into `dir`; returns their total size.
fn unpack(data: &[u8], dir: &Path) -> usize {
    let mut logs: [Option<&[u8]>; SEGMENTS] = [None; SEGMENTS];
    let mut indexes: [Option<&[u8]>; SEGMENTS] = [None; SEGMENTS];
    let mut bases: Vec<u64> = (0..SEGMENTS as u64).map(|i| 1000 * i).collect();
    let mut rest = data;
    let mut total = 0;
    while let Some((&kind, after)) = rest.split_first() {
        let Some((len, after)) = after.split_first_chunk::<4>() else {
            break;
        };
        let len = (u32::from_le_bytes(*len) as usize).min(after.len());
        let (bytes, after) = after.split_at(len);
        rest = after;
        total += bytes.len();
        match kind % 16 {
            k @ 0..=3 => logs[usize::from(k)] = Some(bytes),
            k @ 4..=7 => indexes[usize::from(k - 4)] = Some(bytes),
            8 => write(dir, "leader-epoch-checkpoint", bytes),
            9 => write(dir, "high-watermark-checkpoint", bytes),
            10 => {
                for (b, chunk) in bases.iter_mut().zip(bytes.chunks_exact(8)) {
                    // Kafka's file names hold 20 digits; keep offsets where they fit.
                    *b = u64::from_le_bytes(chunk.try_into().unwrap_or_default()) >> 1;
                }
            }
            _ => {}
        }
    }
    for i in 0..SEGMENTS {
        if let Some(log) = logs[i] {
            write(dir, &format!("{:020}.log", bases[i]), log);
        }
        if let Some(index) = indexes[i] {
            write(dir, &format!("{:020}.index", bases[i]), index);
        }
    }
    total
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("writing a fuzz input file");
}

/// Small segments and a dense index, so short inputs exercise rolls and index lookups.
pub fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// Opening never panics and takes memory bounded by the files' size; a log that opens is
/// consistent (log start <= high watermark <= log end offset), every offset in it can be
/// read, opening it again finds the same log end offset (recovery is idempotent), and it
/// accepts the next append.
pub fn check(data: &[u8]) {
    // On tmpfs when there is one: the checks are about what the files hold, and a real
    // disk's fsyncs would slow the fuzzer a hundredfold.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let total = unpack(data, dir.path());
    let (opened, peak) = peak_during(|| PartitionLog::open(dir.path(), config()));
    let bound = (1 << 20) + 8 * total;
    assert!(
        peak <= bound,
        "opening {total} bytes of files took {peak} bytes (bound {bound})"
    );
    let Ok(log) = opened else { return };
    let (start, hw, end) = (
        log.log_start_offset(),
        log.high_watermark(),
        log.log_end_offset(),
    );
    assert!(
        start <= hw && hw <= end,
        "log start {start}, high watermark {hw}, log end {end}"
    );
    let mut offset = start;
    let mut reads = 0;
    while offset < end {
        reads += 1;
        assert!(reads <= 10_000, "reading the log from {start} does not end");
        let Ok(bytes) = log.read(offset, 1 << 20) else {
            break;
        };
        let Some(next) = next_offset_after(&bytes) else {
            break;
        };
        assert!(
            next > offset,
            "a read from {offset} made no progress: it returned batches ending at {next}"
        );
        offset = next;
    }
    log.close().expect("closing an opened log");
    let mut again =
        PartitionLog::open(dir.path(), config()).expect("a log that opened opens again");
    assert_eq!(again.log_end_offset(), end, "recovery is idempotent");
    let batch = BatchBuilder::new(0)
        .base_offset(end)
        .leader_epoch(again.latest_epoch().unwrap_or(0).max(0))
        .record(0, None, Some(b"after recovery"))
        .build();
    let appended = again.append_as_follower(Bytes::from(batch));
    if end == i64::MAX {
        // No offset follows i64::MAX: the append is refused, nothing panics or wraps.
        assert!(appended.is_err(), "an append after offset i64::MAX");
        assert_eq!(again.log_end_offset(), end);
    } else {
        let info = appended.expect("a recovered log accepts the next batch");
        assert_eq!(info.first_offset, end);
    }
}

/// The offset after the last whole batch in `bytes` (a fetch answer), if there is one.
fn next_offset_after(bytes: &[u8]) -> Option<i64> {
    let mut pos = 0;
    let mut next = None;
    while let Some(header) = bytes.get(pos..pos + 61) {
        let base = i64::from_be_bytes(header[0..8].try_into().ok()?);
        let len = i32::from_be_bytes(header[8..12].try_into().ok()?);
        let delta = i32::from_be_bytes(header[23..27].try_into().ok()?);
        let size = 12 + usize::try_from(len).ok()?;
        if bytes.len() < pos + size {
            break;
        }
        next = Some(base + i64::from(delta) + 1);
        pos += size;
    }
    next
}
