//! Zero-copy views over Kafka RecordBatch v2 (magic 2) bytes.
//!
//! The log stores batches exactly as producers framed them; the broker only ever touches the
//! 61-byte header. Two header fields — `baseOffset` and `partitionLeaderEpoch` — sit *before*
//! the CRC-covered region (the CRC-32C covers `attributes..end`), which is what lets a leader
//! assign offsets and stamp its epoch in place without recomputing the CRC or decoding a single
//! record. Everything here is therefore header-only: validation is bounds + magic + counts +
//! one CRC pass over the bytes, and accessors read big-endian fields at fixed positions.
//!
//! Header layout (byte offsets):
//!
//! | off | field                 | type |
//! |-----|-----------------------|------|
//! | 0   | baseOffset            | i64  |
//! | 8   | batchLength           | i32  |
//! | 12  | partitionLeaderEpoch  | i32  |
//! | 16  | magic                 | i8   |
//! | 17  | crc                   | u32  |
//! | 21  | attributes            | i16  |
//! | 23  | lastOffsetDelta       | i32  |
//! | 27  | baseTimestamp         | i64  |
//! | 35  | maxTimestamp          | i64  |
//! | 43  | producerId            | i64  |
//! | 51  | producerEpoch         | i16  |
//! | 53  | baseSequence          | i32  |
//! | 57  | recordsCount          | i32  |
//! | 61  | records...            |      |
//!
//! `batchLength` counts the bytes after the `batchLength` field, so a batch occupies
//! `batchLength + 12` bytes.

use bytes::Bytes;

use super::error::{Result, StorageError};

/// Bytes before `batchLength`'s payload: `baseOffset` (8) + `batchLength` (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, records excluded.
pub const BATCH_HEADER_LEN: usize = 61;
/// Smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only supported magic.
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a non-idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a non-idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// `partitionLeaderEpoch` as sent by producers (the leader overwrites it).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

pub(super) const BASE_OFFSET_AT: usize = 0;
pub(super) const BATCH_LENGTH_AT: usize = 8;
pub(super) const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub(super) const MAGIC_AT: usize = 16;
pub(super) const CRC_AT: usize = 17;
/// First byte covered by the CRC.
pub(super) const ATTRIBUTES_AT: usize = 21;
pub(super) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(super) const BASE_TIMESTAMP_AT: usize = 27;
pub(super) const MAX_TIMESTAMP_AT: usize = 35;
pub(super) const PRODUCER_ID_AT: usize = 43;
pub(super) const PRODUCER_EPOCH_AT: usize = 51;
pub(super) const BASE_SEQUENCE_AT: usize = 53;
pub(super) const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

// Panic-free big-endian readers: a short slice reads as zeros. Views only exist over
// validated slices of at least BATCH_HEADER_LEN bytes, so the fallback is never observable;
// it just keeps "no panic on bad input" true by construction.
fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(be(b, at))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(be(b, at))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(be(b, at))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(be(b, at))
}
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(s) = b.get_mut(at..at + v.len()) {
        s.copy_from_slice(v);
    }
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// 0
    None,
    /// 1
    Gzip,
    /// 2
    Snappy,
    /// 3
    Lz4,
    /// 4
    Zstd,
}

impl Compression {
    /// Decodes a codec id; `None` for ids Kafka does not define (5..=7).
    pub fn from_id(id: u8) -> Option<Compression> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// The codec id stored in the attributes.
    pub fn id(self) -> u8 {
        self as u8
    }
}

/// Timestamp type from attribute bit 3; also a topic's `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Producer-assigned timestamps.
    #[default]
    CreateTime,
    /// Broker-assigned timestamps.
    LogAppendTime,
}

/// A decoded copy of a batch header (61 bytes → a few registers; no records touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// Stored CRC-32C of `attributes..end`.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// `lastOffset - baseOffset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Decodes the header fields from the first 61 bytes; `None` if `buf` is shorter.
    /// Performs no validation (see [`check_batch`]).
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < BATCH_HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length: be_i32(buf, BATCH_LENGTH_AT),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_u32(buf, CRC_AT),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        })
    }

    /// Total bytes the batch occupies (`batchLength + 12`); 0 for a negative length.
    pub fn size(&self) -> u64 {
        u64::try_from(self.batch_length).map_or(0, |l| l + LOG_OVERHEAD as u64)
    }

    /// `baseOffset + lastOffsetDelta` (saturating, so garbage headers cannot overflow).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Raw codec id (attributes & 7).
    pub fn compression_id(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// The codec, or `None` for an undefined id.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }

    /// Timestamp type (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Control batch, e.g. a transaction marker (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// `baseTimestamp` holds the compaction delete horizon (attribute bit 6).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Sequence of the last record, wrapping at `i32::MAX` exactly like Kafka's
    /// `DefaultRecordBatch.incrementSequence`; -1 when the batch has no sequence.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let seq = i64::from(self.base_sequence);
        let inc = i64::from(self.last_offset_delta);
        let max = i64::from(i32::MAX);
        let r = if seq > max - inc {
            inc - (max - seq) - 1
        } else {
            seq + inc
        };
        r as i32
    }

    /// The stricter checks Kafka's `LogValidator` applies to batches a leader accepts from
    /// clients: at least one record, `recordsCount == lastOffsetDelta + 1`, and a known codec.
    /// (Followers and recovery accept compacted shapes; only the leader enforces this.)
    pub fn check_leader_policy(&self, position: u64) -> Result<()> {
        if self.records_count <= 0 {
            return Err(StorageError::InvalidRecord {
                position,
                reason: format!("recordsCount must be positive, got {}", self.records_count),
            });
        }
        if i64::from(self.records_count) != i64::from(self.last_offset_delta) + 1 {
            return Err(StorageError::InvalidRecord {
                position,
                reason: format!(
                    "inconsistent batch offset range: lastOffsetDelta {} implies {} records but recordsCount is {}",
                    self.last_offset_delta,
                    i64::from(self.last_offset_delta) + 1,
                    self.records_count
                ),
            });
        }
        if self.compression().is_none() {
            return Err(StorageError::UnknownCompression {
                position,
                codec: self.compression_id(),
            });
        }
        Ok(())
    }
}

/// Validates the batch starting at `buf[0]` (which sits at `position` in the caller's
/// buffer or file, for error messages) and returns its header.
///
/// Checks, in order: a full header is present; `batchLength >= 49`; the batch is at most
/// `max_batch_size` bytes; the whole batch is inside `buf`; magic is 2; `recordsCount` and
/// `lastOffsetDelta` are non-negative with `recordsCount <= lastOffsetDelta + 1` (compaction
/// can drop records, never add them); the CRC-32C matches.
pub fn check_batch(buf: &[u8], position: u64, max_batch_size: u64) -> Result<BatchHeader> {
    let header = check_header(buf, position, max_batch_size, buf.len() as u64)?;
    let size = header.size() as usize; // <= buf.len(), checked above
    let computed = crc32c::crc32c(buf.get(ATTRIBUTES_AT..size).unwrap_or_default());
    if computed != header.crc {
        return Err(StorageError::CrcMismatch {
            position,
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Every check of [`check_batch`] except the CRC, given only the header bytes and the
/// number of bytes `available` from the batch start (used when streaming from files).
pub(crate) fn check_header(
    header_bytes: &[u8],
    position: u64,
    max_batch_size: u64,
    available: u64,
) -> Result<BatchHeader> {
    let Some(h) = BatchHeader::parse(header_bytes) else {
        return Err(StorageError::TruncatedHeader {
            position,
            available: available.min(header_bytes.len() as u64),
        });
    };
    if h.batch_length < MIN_BATCH_LENGTH {
        return Err(StorageError::BatchLengthTooSmall {
            position,
            batch_length: h.batch_length,
        });
    }
    let size = h.size();
    if size > max_batch_size {
        return Err(StorageError::BatchTooLarge {
            position,
            size,
            max: max_batch_size,
        });
    }
    if size > available {
        return Err(StorageError::TruncatedBatch {
            position,
            size,
            available,
        });
    }
    if h.magic != MAGIC_V2 {
        return Err(StorageError::UnsupportedMagic {
            position,
            magic: h.magic,
        });
    }
    if h.records_count < 0
        || h.last_offset_delta < 0
        || i64::from(h.records_count) > i64::from(h.last_offset_delta) + 1
    {
        return Err(StorageError::InconsistentRecordCount {
            position,
            records_count: h.records_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    Ok(h)
}

mod sealed {
    pub trait Sealed {}
}

/// Header accessors shared by [`RecordBatch`] and [`RecordBatchMut`].
///
/// Sealed: implementors guarantee the slice is one validated batch.
pub trait BatchView: sealed::Sealed {
    /// The whole batch, header included.
    fn as_slice(&self) -> &[u8];

    /// All header fields at once.
    fn header(&self) -> BatchHeader {
        // Views are built from validated slices, so parse cannot fail; the default is
        // unreachable but keeps this panic-free.
        BatchHeader::parse(self.as_slice()).unwrap_or(BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 0,
            crc: 0,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: 0,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 0,
        })
    }
    /// Offset of the first record.
    fn base_offset(&self) -> i64 {
        be_i64(self.as_slice(), BASE_OFFSET_AT)
    }
    /// Bytes after the `batchLength` field.
    fn batch_length(&self) -> i32 {
        be_i32(self.as_slice(), BATCH_LENGTH_AT)
    }
    /// Epoch of the leader that appended the batch.
    fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.as_slice(), PARTITION_LEADER_EPOCH_AT)
    }
    /// Format version.
    fn magic(&self) -> i8 {
        self.as_slice().get(MAGIC_AT).map_or(0, |&b| b as i8)
    }
    /// Stored CRC.
    fn crc(&self) -> u32 {
        be_u32(self.as_slice(), CRC_AT)
    }
    /// Attribute bits.
    fn attributes(&self) -> i16 {
        be_i16(self.as_slice(), ATTRIBUTES_AT)
    }
    /// `lastOffset - baseOffset`.
    fn last_offset_delta(&self) -> i32 {
        be_i32(self.as_slice(), LAST_OFFSET_DELTA_AT)
    }
    /// Timestamp of the first record.
    fn base_timestamp(&self) -> i64 {
        be_i64(self.as_slice(), BASE_TIMESTAMP_AT)
    }
    /// Largest record timestamp.
    fn max_timestamp(&self) -> i64 {
        be_i64(self.as_slice(), MAX_TIMESTAMP_AT)
    }
    /// Producer id, or -1.
    fn producer_id(&self) -> i64 {
        be_i64(self.as_slice(), PRODUCER_ID_AT)
    }
    /// Producer epoch, or -1.
    fn producer_epoch(&self) -> i16 {
        be_i16(self.as_slice(), PRODUCER_EPOCH_AT)
    }
    /// Sequence of the first record, or -1.
    fn base_sequence(&self) -> i32 {
        be_i32(self.as_slice(), BASE_SEQUENCE_AT)
    }
    /// Number of records.
    fn records_count(&self) -> i32 {
        be_i32(self.as_slice(), RECORDS_COUNT_AT)
    }
    /// Offset of the last record.
    fn last_offset(&self) -> i64 {
        self.header().last_offset()
    }
    /// Sequence of the last record (Kafka wrap-around), or -1.
    fn last_sequence(&self) -> i32 {
        self.header().last_sequence()
    }
    /// Transactional bit.
    fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    /// Control bit.
    fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// Compression codec, `None` if undefined.
    fn compression(&self) -> Option<Compression> {
        Compression::from_id((self.attributes() & COMPRESSION_MASK) as u8)
    }
    /// Timestamp type.
    fn timestamp_type(&self) -> TimestampType {
        self.header().timestamp_type()
    }
    /// Total bytes of the batch.
    fn size_in_bytes(&self) -> usize {
        self.as_slice().len()
    }
    /// The (possibly compressed) records section, undecoded.
    fn records_bytes(&self) -> &[u8] {
        self.as_slice().get(BATCH_HEADER_LEN..).unwrap_or_default()
    }
    /// CRC-32C of `attributes..end` as it is now.
    fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.as_slice().get(ATTRIBUTES_AT..).unwrap_or_default())
    }
    /// Whether the stored CRC matches the bytes.
    fn is_crc_valid(&self) -> bool {
        self.compute_crc() == self.crc()
    }
}

/// One validated batch, sharing the producer's buffer (cloning is a refcount bump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl sealed::Sealed for RecordBatch {}
impl BatchView for RecordBatch {
    fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
}

impl RecordBatch {
    /// Validates `bytes` as exactly one batch (with CRC, no size limit beyond the buffer).
    pub fn from_bytes(bytes: Bytes) -> Result<RecordBatch> {
        let h = check_batch(&bytes, 0, u64::MAX)?;
        if h.size() != bytes.len() as u64 {
            return Err(StorageError::InvalidArgument {
                reason: format!(
                    "buffer holds {} bytes but the batch is {} bytes",
                    bytes.len(),
                    h.size()
                ),
            });
        }
        Ok(RecordBatch { bytes })
    }

    /// The batch bytes (zero-copy).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Consumes the view, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// One validated batch inside a mutable buffer, for in-place stamping.
#[derive(Debug)]
pub struct RecordBatchMut<'a> {
    bytes: &'a mut [u8],
}

impl sealed::Sealed for RecordBatchMut<'_> {}
impl BatchView for RecordBatchMut<'_> {
    fn as_slice(&self) -> &[u8] {
        self.bytes
    }
}

impl RecordBatchMut<'_> {
    /// Overwrites `baseOffset`. Outside the CRC, so the batch stays valid.
    pub fn set_base_offset(&mut self, base_offset: i64) {
        put(self.bytes, BASE_OFFSET_AT, &base_offset.to_be_bytes());
    }

    /// Overwrites `partitionLeaderEpoch`. Outside the CRC, so the batch stays valid.
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        put(self.bytes, PARTITION_LEADER_EPOCH_AT, &epoch.to_be_bytes());
    }

    /// Kafka's `setMaxTimestamp(LOG_APPEND_TIME, time)`: marks the batch as stamped by the
    /// broker (attribute bit 3) and sets its `maxTimestamp`, which consumers then read as
    /// every record's timestamp; the records themselves are untouched. Both fields are under
    /// the CRC, so it is recomputed (one pass over the batch; only topics with
    /// `message.timestamp.type=LogAppendTime` pay it).
    pub fn set_log_append_time(&mut self, time_ms: i64) {
        let attributes = be_i16(self.bytes, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
        put(self.bytes, ATTRIBUTES_AT, &attributes.to_be_bytes());
        put(self.bytes, MAX_TIMESTAMP_AT, &time_ms.to_be_bytes());
        self.recompute_crc();
    }

    /// Kafka's `setMaxTimestamp(CREATE_TIME, max)`: after the leader has walked the records,
    /// the header's `maxTimestamp` is made to say what the records say (a client may send
    /// any value there, and the time index and timestamp lookups trust it). The CRC is
    /// recomputed only when a byte changes, so a well-behaved client's batch costs nothing.
    pub fn set_create_time_max_timestamp(&mut self, max_timestamp: i64) {
        let attributes = be_i16(self.bytes, ATTRIBUTES_AT);
        if attributes & TIMESTAMP_TYPE_BIT == 0
            && be_i64(self.bytes, MAX_TIMESTAMP_AT) == max_timestamp
        {
            return;
        }
        put(
            self.bytes,
            ATTRIBUTES_AT,
            &(attributes & !TIMESTAMP_TYPE_BIT).to_be_bytes(),
        );
        put(self.bytes, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
        self.recompute_crc();
    }

    /// Recomputes and stores the CRC, for callers that change CRC-covered bytes
    /// (the LogAppendTime stamp, or tests forging batches).
    pub fn recompute_crc(&mut self) {
        let crc = self.compute_crc();
        put(self.bytes, CRC_AT, &crc.to_be_bytes());
    }

    /// Mutable access to the raw bytes (tests and tooling only; breaks the CRC if misused).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.bytes
    }
}

/// Iterator over concatenated batches in a shared buffer. Yields each batch or the first
/// error, then stops: bytes after a bad batch cannot be framed reliably.
#[derive(Debug, Clone)]
pub struct Batches {
    buf: Bytes,
    pos: usize,
    max_batch_size: u64,
    failed: bool,
}

impl Batches {
    /// Iterates `buf` with no per-batch size limit (other than the buffer itself).
    pub fn new(buf: Bytes) -> Batches {
        Batches {
            buf,
            pos: 0,
            max_batch_size: u64::MAX,
            failed: false,
        }
    }

    /// Rejects batches larger than `max` bytes with [`StorageError::BatchTooLarge`].
    pub fn with_max_batch_size(mut self, max: u64) -> Batches {
        self.max_batch_size = max;
        self
    }

    /// Byte position of the next batch.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match check_batch(rest, self.pos as u64, self.max_batch_size) {
            Ok(h) => {
                let end = self.pos + h.size() as usize;
                let bytes = self.buf.slice(self.pos..end);
                self.pos = end;
                Some(Ok(RecordBatch { bytes }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterator over concatenated batches in a mutable buffer (e.g. a producer's `BytesMut`),
/// yielding [`RecordBatchMut`] views for in-place stamping; stops after the first error.
#[derive(Debug)]
pub struct BatchesMut<'a> {
    rest: &'a mut [u8],
    pos: u64,
    max_batch_size: u64,
    failed: bool,
}

impl<'a> BatchesMut<'a> {
    /// Iterates `buf`, rejecting batches larger than `max_batch_size`.
    pub fn new(buf: &'a mut [u8], max_batch_size: u64) -> BatchesMut<'a> {
        BatchesMut {
            rest: buf,
            pos: 0,
            max_batch_size,
            failed: false,
        }
    }
}

impl<'a> Iterator for BatchesMut<'a> {
    type Item = Result<(u64, RecordBatchMut<'a>)>;

    /// Yields `(byte position, batch)`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let position = self.pos;
        match check_batch(self.rest, position, self.max_batch_size) {
            Ok(h) => {
                let rest = std::mem::take(&mut self.rest);
                let available = rest.len() as u64;
                match rest.split_at_mut_checked(h.size() as usize) {
                    Some((this, tail)) => {
                        self.rest = tail;
                        self.pos += h.size();
                        Some(Ok((position, RecordBatchMut { bytes: this })))
                    }
                    None => {
                        // Unreachable: check_batch verified the size fits.
                        self.failed = true;
                        Some(Err(StorageError::TruncatedBatch {
                            position,
                            size: h.size(),
                            available,
                        }))
                    }
                }
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
