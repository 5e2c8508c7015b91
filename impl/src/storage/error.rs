//! The single error type of the storage layer.
//!
//! Every variant carries enough context (byte position, file path, offset) to diagnose the
//! problem from a log line alone, and [`StorageError::kafka_error_code`] maps it onto the
//! Kafka wire error code the request layer should return, so callers never have to pattern
//! match on storage internals to answer a client.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias for the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the per-partition log.
///
/// Batch-level variants report `position`: the byte offset of the offending batch inside the
/// buffer being validated (a produce/fetch payload, or a segment file during recovery).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Fewer bytes remain than a v2 batch header needs (61 bytes).
    #[error("record batch at byte {position}: truncated header, {available} bytes available but a v2 header needs 61")]
    TruncatedHeader {
        /// Byte position of the batch.
        position: u64,
        /// Bytes left in the buffer from `position`.
        available: u64,
    },
    /// `batchLength` is smaller than the fixed part of a v2 header (49) — certainly garbage.
    #[error(
        "record batch at byte {position}: batchLength {batch_length} is below the v2 minimum of 49"
    )]
    BatchLengthTooSmall {
        /// Byte position of the batch.
        position: u64,
        /// The declared `batchLength`.
        batch_length: i32,
    },
    /// The batch is larger than the configured maximum (`max.message.bytes`).
    #[error("record batch at byte {position}: size {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge {
        /// Byte position of the batch.
        position: u64,
        /// Total batch size (`batchLength + 12`).
        size: u64,
        /// The limit that was exceeded.
        max: u64,
    },
    /// `batchLength` points past the end of the buffer (torn write or short payload).
    #[error(
        "record batch at byte {position}: declares {size} bytes but only {available} bytes remain"
    )]
    TruncatedBatch {
        /// Byte position of the batch.
        position: u64,
        /// Total batch size declared by the header.
        size: u64,
        /// Bytes left in the buffer from `position`.
        available: u64,
    },
    /// Magic byte is not 2; only RecordBatch v2 is supported.
    #[error("record batch at byte {position}: unsupported magic {magic} (only record batch v2 is supported)")]
    UnsupportedMagic {
        /// Byte position of the batch.
        position: u64,
        /// The magic byte found.
        magic: i8,
    },
    /// The CRC-32C over `attributes..end` does not match the stored CRC.
    #[error("record batch at byte {position}: CRC-32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// Byte position of the batch.
        position: u64,
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// `recordsCount` / `lastOffsetDelta` cannot describe a real batch.
    #[error("record batch at byte {position}: recordsCount {records_count} is inconsistent with lastOffsetDelta {last_offset_delta}")]
    InconsistentRecordCount {
        /// Byte position of the batch.
        position: u64,
        /// Declared record count.
        records_count: i32,
        /// Declared last offset delta.
        last_offset_delta: i32,
    },
    /// The compression codec bits name no known codec.
    #[error("record batch at byte {position}: unknown compression codec {codec}")]
    UnknownCompression {
        /// Byte position of the batch.
        position: u64,
        /// The codec id (attributes & 0x7).
        codec: u8,
    },
    /// Structurally sound batch that the leader refuses by policy (Kafka's `InvalidRecordException`).
    #[error("record batch at byte {position}: invalid record batch: {reason}")]
    InvalidRecord {
        /// Byte position of the batch.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A single append is larger than a whole segment, so it can never be stored.
    #[error("append of {size} bytes is larger than the segment size of {segment_bytes} bytes")]
    AppendTooLarge {
        /// Total bytes in the append.
        size: u64,
        /// Configured segment size.
        segment_bytes: u64,
    },
    /// A follower append does not continue the log exactly at its end.
    #[error("follower append to {dir}: batch at byte {position} has base offset {found}, expected {expected}")]
    UnexpectedAppendOffset {
        /// Partition directory.
        dir: PathBuf,
        /// Byte position of the batch in the append.
        position: u64,
        /// The offset the log expected (LEO, or the previous batch's last offset + 1).
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
    /// Append with a leader epoch older than one already in the log.
    #[error("append to {dir}: leader epoch {epoch} is older than the log's latest leader epoch {latest}")]
    StaleLeaderEpoch {
        /// Partition directory.
        dir: PathBuf,
        /// Epoch of the append.
        epoch: i32,
        /// Latest epoch in the leader-epoch cache.
        latest: i32,
    },
    /// Read or truncate outside the log's offsets.
    #[error(
        "offset {offset} is out of range for {dir}: valid offsets are [{log_start}, {log_end}]"
    )]
    OffsetOutOfRange {
        /// Partition directory.
        dir: PathBuf,
        /// The requested offset.
        offset: i64,
        /// Log start offset.
        log_start: i64,
        /// Log end offset.
        log_end: i64,
    },
    /// An operating-system I/O error.
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "fsyncing", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A checkpoint file that does not follow the versioned text format.
    #[error("malformed checkpoint file {path}, line {line}: {reason}")]
    MalformedCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line number (0 for whole-file problems).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Data that we wrote and fsynced earlier no longer parses (outside the recovered tail).
    #[error("corrupt segment {path} at byte {position}: {reason}")]
    CorruptSegment {
        /// The segment or index file.
        path: PathBuf,
        /// Byte position of the problem.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Two consecutive segments do not join up: the first ends at `end_offset` but the next
    /// begins at `next_base_offset` (a segment was deleted, or one was cut short). Serving
    /// around the hole would skip acknowledged records silently, so the log does not open.
    #[error("segment {path} ends at offset {end_offset} but the next segment starts at offset {next_base_offset}: the log has a gap or an overlap")]
    SegmentGap {
        /// The segment before the gap.
        path: PathBuf,
        /// The offset after its last batch.
        end_offset: i64,
        /// The next segment's base offset.
        next_base_offset: i64,
    },
    /// A configuration value that cannot work.
    #[error("invalid log configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// An API argument that cannot work (caller bug).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    /// The Kafka error code a request handler should return for this error.
    pub fn kafka_error_code(&self) -> i16 {
        use crate::error_codes::*;
        match self {
            StorageError::TruncatedHeader { .. }
            | StorageError::BatchLengthTooSmall { .. }
            | StorageError::TruncatedBatch { .. }
            | StorageError::UnsupportedMagic { .. }
            | StorageError::CrcMismatch { .. }
            | StorageError::InconsistentRecordCount { .. }
            | StorageError::UnknownCompression { .. } => CORRUPT_MESSAGE,
            StorageError::BatchTooLarge { .. } => MESSAGE_TOO_LARGE,
            StorageError::AppendTooLarge { .. } => RECORD_LIST_TOO_LARGE,
            StorageError::InvalidRecord { .. } => INVALID_RECORD,
            StorageError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
            StorageError::StaleLeaderEpoch { .. } => FENCED_LEADER_EPOCH,
            StorageError::Io { .. }
            | StorageError::MalformedCheckpoint { .. }
            | StorageError::CorruptSegment { .. }
            | StorageError::SegmentGap { .. } => KAFKA_STORAGE_ERROR,
            // Kafka's UnexpectedAppendOffsetException is not an ApiException either.
            StorageError::UnexpectedAppendOffset { .. }
            | StorageError::InvalidConfig { .. }
            | StorageError::InvalidArgument { .. } => UNKNOWN_SERVER_ERROR,
        }
    }

    /// True for errors that describe bad bytes in a batch (as opposed to I/O, policy or range
    /// errors). Recovery cuts the log at the first such error.
    pub fn is_corrupt_batch(&self) -> bool {
        self.kafka_error_code() == crate::error_codes::CORRUPT_MESSAGE
    }

    /// Builds an [`StorageError::Io`]; used with `map_err`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io { op, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_codes_match_kafka() {
        let e = StorageError::CrcMismatch {
            position: 0,
            stored: 1,
            computed: 2,
        };
        assert_eq!(e.kafka_error_code(), 2);
        assert!(e.is_corrupt_batch());
        let e = StorageError::OffsetOutOfRange {
            dir: PathBuf::from("/p"),
            offset: 9,
            log_start: 0,
            log_end: 3,
        };
        assert_eq!(e.kafka_error_code(), 1);
        assert!(!e.is_corrupt_batch());
        assert!(e.to_string().contains("offset 9"), "{e}");
        let e = StorageError::BatchTooLarge {
            position: 0,
            size: 10,
            max: 5,
        };
        assert_eq!(e.kafka_error_code(), 10);
        let e = StorageError::InvalidRecord {
            position: 0,
            reason: "x".into(),
        };
        assert_eq!(e.kafka_error_code(), 87);
        let e = StorageError::io("reading", Path::new("/x/y.log"))(io::Error::other("boom"));
        assert_eq!(e.kafka_error_code(), 56);
        assert!(e.to_string().contains("/x/y.log"), "{e}");
        let e = StorageError::InvalidArgument { reason: "r".into() };
        assert_eq!(e.kafka_error_code(), -1);
    }
}
