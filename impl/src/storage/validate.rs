//! Kafka's produce-side batch validation (`LogValidator` + `DefaultRecordBatch` rules): the
//! leader refuses, before assigning a single offset, every batch a consumer could not read.
//!
//! A CRC only proves the producer's bytes arrived intact; it says nothing about whether they
//! *mean* anything. A batch with a valid CRC over a garbage gzip stream, or one that claims
//! 2^31 records while holding one, would be stored and served for ever, and every consumer
//! of the partition would stop at it (a "poison pill"). So, like Kafka's broker, the leader
//! walks every record of every batch before it appends. Pure functions, no I/O, no clock
//! (`now_ms` is passed in).
//!
//! Rules, in the order they are checked, and the Kafka error each one answers:
//!
//! | rule | error |
//! |------|-------|
//! | a whole 61-byte header, `batchLength >= 49`, the batch inside the payload | `CORRUPT_MESSAGE` |
//! | batch size at most `max.message.bytes` | `MESSAGE_TOO_LARGE` |
//! | magic is 2 (Produce v3+ carries nothing else; Kafka answers `InvalidRecordException`) | `INVALID_RECORD` |
//! | CRC-32C of `attributes..end` matches | `CORRUPT_MESSAGE` |
//! | `baseOffset` is 0 (a client batch has no offsets yet) | `INVALID_RECORD` |
//! | `lastOffsetDelta >= 0`, `recordsCount > 0`, `recordsCount == lastOffsetDelta + 1` | `INVALID_RECORD` |
//! | not a control batch (clients may not write transaction markers) | `INVALID_RECORD` |
//! | a producer id (>= 0) comes with an epoch >= 0 and a sequence >= 0; a transactional batch has a producer id | `INVALID_RECORD` |
//! | a codec id Kafka defines (0..=4) | `CORRUPT_MESSAGE` |
//! | the compressed payload decompresses (gzip, snappy raw or xerial-framed, lz4 frame, zstd) | `CORRUPT_MESSAGE` |
//! | at most `max_uncompressed_bytes` decompressed (the bomb bound) | `MESSAGE_TOO_LARGE` |
//! | exactly `recordsCount` records, each exactly as long as its length prefix, nothing after them; varints at most 5 (10) bytes; header count and header key lengths not negative | `INVALID_RECORD` |
//! | record *i* has `offsetDelta == i` | `INVALID_RECORD` + record error *i* |
//! | the LogAppendTime bit unset (only the broker stamps it) | `INVALID_TIMESTAMP` + record error 0 |
//! | under a CreateTime topic, timestamps within `message.timestamp.before.max.ms` / `after.max.ms` of `now` (`-1` means "no timestamp" and is allowed) | `INVALID_TIMESTAMP` + record error *i* |
//!
//! An accepted batch's header `maxTimestamp` is then set to what its records say under
//! CreateTime ([`set_create_time_max_timestamps`]), as Kafka's `setMaxTimestamp` does.
//!
//! Cost: an uncompressed batch is walked in place over the borrowed slice (varint decoding
//! and length skips; no copy, no allocation). A compressed batch is decompressed as a
//! stream and walked as it comes out: memory is the codec's own window/block state plus a
//! 32 KiB read buffer, never the decompressed batch, and the walk stops as soon as
//! `max_uncompressed_bytes` have come out — a 200 KB gzip bomb that expands to 200 MiB
//! costs at most `max_uncompressed_bytes` of inflate CPU and no more memory than a normal
//! batch. (Snappy has no streaming form: each raw block is decompressed into a buffer
//! whose declared size is checked against the bound first.)
//!
//! Recovery ([`check_stored_records`]) uses the same walker on uncompressed batches, with
//! the rules a stored batch must meet (records present and well-formed, offset deltas
//! increasing within `lastOffsetDelta`), so a structurally invalid batch on disk is cut like
//! a bad CRC. Compressed batches are not decompressed at recovery: the leader validated them
//! before they were ever written and the CRC proves they are the same bytes.

use std::io::{self, BufRead, BufReader, Read};

use super::batch::{
    BatchHeader, BatchesMut, Compression, TimestampType, BATCH_HEADER_LEN, MAGIC_V2,
    MIN_BATCH_LENGTH, NO_PRODUCER_ID,
};
use crate::error_codes::{CORRUPT_MESSAGE, INVALID_RECORD, INVALID_TIMESTAMP, MESSAGE_TOO_LARGE};

/// How many times `max.message.bytes` a batch may decompress to by default. Clients bound
/// the *uncompressed* size of what they batch (librdkafka by `batch.size` <= 1 MB, Java by
/// `batch.size` through its compression-ratio estimate), so 16× is far above anything a
/// real producer sends and still stops a bomb after 16 MiB of output at the default limit.
pub const UNCOMPRESSED_FACTOR: u64 = 16;

/// `-1`: a record without a timestamp (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// Read buffer for decompressed streams.
const STREAM_BUFFER: usize = 32 * 1024;

/// Limits and the clock the validator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationConfig {
    /// Largest batch on the wire (`max.message.bytes`, default 1048588).
    pub max_batch_bytes: u64,
    /// Most bytes a compressed batch may decompress to.
    pub max_uncompressed_bytes: u64,
    /// The broker's clock, for timestamp bounds.
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime timestamp may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime timestamp may be.
    pub timestamp_after_max_ms: i64,
    /// The topic's `message.timestamp.type`: record timestamps are bounded only under
    /// CreateTime (under LogAppendTime the broker's stamp replaces them).
    pub timestamp_type: TimestampType,
}

impl ValidationConfig {
    /// Kafka's defaults around `max_batch_bytes`: timestamps unbounded, decompression
    /// bounded at [`UNCOMPRESSED_FACTOR`] × `max_batch_bytes`.
    pub fn new(max_batch_bytes: u64, now_ms: i64) -> ValidationConfig {
        ValidationConfig {
            max_batch_bytes,
            max_uncompressed_bytes: max_batch_bytes.saturating_mul(UNCOMPRESSED_FACTOR),
            now_ms,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// One refused record, as Produce v8+ reports it (`record_errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's index inside its batch.
    pub batch_index: i32,
    /// What is wrong with it.
    pub message: String,
}

/// Why a produce was refused: the Kafka error for the whole partition, a message for
/// `error_message`, and per-record errors where a single record is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRejection {
    /// Index of the refused batch in the produce payload.
    pub batch: usize,
    /// Byte position of the refused batch in the payload.
    pub position: u64,
    /// Kafka error code.
    pub error_code: i16,
    /// Human-readable reason (the response's `error_message`).
    pub message: String,
    /// Records at fault, if any.
    pub record_errors: Vec<RecordError>,
}

impl std::fmt::Display for BatchRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record batch {} at byte {}: {} (error {})",
            self.batch, self.position, self.message, self.error_code
        )
    }
}

/// What validation learnt about an accepted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// The batch header.
    pub header: BatchHeader,
    /// Largest record timestamp found by the walk (-1 if none).
    pub max_record_timestamp: i64,
    /// Bytes of records walked (decompressed size for compressed batches).
    pub records_bytes: u64,
}

/// Validates every batch of a produce payload; the first refusal wins (Kafka refuses the
/// whole partition's append). Returns the batches' headers in order.
pub fn validate_produce(
    payload: &[u8],
    config: &ValidationConfig,
) -> Result<Vec<ValidatedBatch>, BatchRejection> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < payload.len() {
        let rest = payload.get(pos..).unwrap_or_default();
        let v = validate_batch(rest, config).map_err(|f| f.into_rejection(out.len(), pos))?;
        pos += v.header.size() as usize;
        out.push(v);
    }
    Ok(out)
}

/// Kafka's last step of validation under CreateTime: each batch's header `maxTimestamp`
/// is set to the largest record timestamp the walk found (Kafka's `setMaxTimestamp`), so a
/// producer's wrong header cannot mislead the time index or `ListOffsets` by timestamp.
/// `validated` is [`validate_produce`]'s answer for the same `payload`. Only batches whose
/// header disagrees are rewritten (and their CRC recomputed).
pub fn set_create_time_max_timestamps(payload: &mut [u8], validated: &[ValidatedBatch]) {
    let batches = BatchesMut::new(payload, u64::MAX);
    for (batch, v) in batches.zip(validated) {
        if let Ok((_, mut b)) = batch {
            if v.header.max_timestamp != v.max_record_timestamp {
                b.set_create_time_max_timestamp(v.max_record_timestamp);
            }
        }
    }
}

/// A refusal before it knows where its batch sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Kafka error code.
    pub error_code: i16,
    /// Reason.
    pub message: String,
    /// Record at fault, if one is.
    pub record: Option<i32>,
}

impl Failure {
    fn new(error_code: i16, message: impl Into<String>) -> Failure {
        Failure {
            error_code,
            message: message.into(),
            record: None,
        }
    }

    fn into_rejection(self, batch: usize, position: usize) -> BatchRejection {
        BatchRejection {
            batch,
            position: position as u64,
            error_code: self.error_code,
            record_errors: self
                .record
                .map(|i| RecordError {
                    batch_index: i,
                    message: self.message.clone(),
                })
                .into_iter()
                .collect(),
            message: self.message,
        }
    }
}

fn corrupt(m: impl Into<String>) -> Failure {
    Failure::new(CORRUPT_MESSAGE, m)
}
fn invalid(m: impl Into<String>) -> Failure {
    Failure::new(INVALID_RECORD, m)
}

/// Validates the batch at the start of `buf` (bytes after it are ignored) as a leader
/// receiving it from a client. See the module docs for the rules.
pub fn validate_batch(buf: &[u8], config: &ValidationConfig) -> Result<ValidatedBatch, Failure> {
    let Some(h) = BatchHeader::parse(buf) else {
        return Err(corrupt(format!(
            "truncated batch header: {} bytes, a v2 header needs {BATCH_HEADER_LEN}",
            buf.len()
        )));
    };
    if h.batch_length < MIN_BATCH_LENGTH {
        return Err(corrupt(format!(
            "batchLength {} is below the v2 minimum of {MIN_BATCH_LENGTH}",
            h.batch_length
        )));
    }
    let size = h.size();
    if size > config.max_batch_bytes {
        return Err(Failure::new(
            MESSAGE_TOO_LARGE,
            format!(
                "batch of {size} bytes is larger than max.message.bytes {}",
                config.max_batch_bytes
            ),
        ));
    }
    let Some(batch) = buf.get(..size as usize) else {
        return Err(corrupt(format!(
            "batch declares {size} bytes but only {} remain",
            buf.len()
        )));
    };
    if h.magic != MAGIC_V2 {
        return Err(invalid(format!(
            "produce requests may only contain record batches with magic 2, got {}",
            h.magic
        )));
    }
    let computed = crc32c::crc32c(batch.get(21..).unwrap_or_default());
    if computed != h.crc {
        return Err(corrupt(format!(
            "CRC-32C mismatch: stored {:#010x}, computed {computed:#010x}",
            h.crc
        )));
    }
    if h.base_offset != 0 {
        return Err(invalid(format!(
            "the baseOffset of a produced record batch must be 0, got {}",
            h.base_offset
        )));
    }
    if h.last_offset_delta < 0 {
        return Err(invalid(format!(
            "batch has an invalid offset range: lastOffsetDelta {}",
            h.last_offset_delta
        )));
    }
    if h.records_count <= 0 {
        return Err(invalid(format!(
            "invalid reported count for record batch: {}",
            h.records_count
        )));
    }
    if i64::from(h.records_count) != i64::from(h.last_offset_delta) + 1 {
        return Err(invalid(format!(
            "inconsistent batch offset range [0, {}] and count of records {}",
            h.last_offset_delta, h.records_count
        )));
    }
    if h.is_control() {
        return Err(invalid("clients are not allowed to write control records"));
    }
    check_producer_fields(&h)?;
    let Some(codec) = h.compression() else {
        return Err(corrupt(format!(
            "unknown compression codec id {}",
            h.compression_id()
        )));
    };
    let records = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    if h.timestamp_type() == TimestampType::LogAppendTime {
        // Only the broker stamps LogAppendTime; Kafka refuses the flag from a producer, on
        // every record (its `validateTimestamp`), whatever the topic's timestamp type.
        return Err(Failure {
            error_code: INVALID_TIMESTAMP,
            message: "invalid timestamp type: producers must not set the timestamp type to \
                      LogAppendTime"
                .into(),
            record: Some(0),
        });
    }
    let rules = Rules::Produce {
        timestamps: (config.timestamp_type == TimestampType::CreateTime).then_some(*config),
    };
    let walked = match codec {
        Compression::None => walk(&mut SliceSource::new(records), &h, &rules),
        Compression::Gzip => {
            let d = flate2::bufread::MultiGzDecoder::new(records);
            walk_stream(d, &h, &rules, config.max_uncompressed_bytes)
        }
        Compression::Snappy => walk_stream(
            SnappyReader::new(records, config.max_uncompressed_bytes),
            &h,
            &rules,
            config.max_uncompressed_bytes,
        ),
        Compression::Lz4 => walk_stream(
            lz4_flex::frame::FrameDecoder::new(records),
            &h,
            &rules,
            config.max_uncompressed_bytes,
        ),
        Compression::Zstd => walk_stream(
            ZstdReader::new(records),
            &h,
            &rules,
            config.max_uncompressed_bytes,
        ),
    }?;
    Ok(ValidatedBatch {
        header: h,
        max_record_timestamp: walked.max_timestamp,
        records_bytes: walked.bytes,
    })
}

/// Kafka's checks of the idempotent/transactional header fields.
fn check_producer_fields(h: &BatchHeader) -> Result<(), Failure> {
    if h.producer_id > NO_PRODUCER_ID {
        if h.base_sequence < 0 {
            return Err(invalid(format!(
                "invalid sequence number {} in record batch with producerId {}",
                h.base_sequence, h.producer_id
            )));
        }
        if h.producer_epoch < 0 {
            return Err(invalid(format!(
                "invalid producer epoch {} in record batch with producerId {}",
                h.producer_epoch, h.producer_id
            )));
        }
    } else if h.is_transactional() {
        return Err(invalid("transactional record batch without a producer id"));
    }
    Ok(())
}

/// Checks the records of a *stored* uncompressed batch (recovery): exactly `recordsCount`
/// well-formed records, offset deltas strictly increasing and at most `lastOffsetDelta`.
/// `records` yields the bytes after the 61-byte header. Compressed batches are not
/// decompressed here (see the module docs); for them this returns `Ok`.
pub(crate) fn check_stored_records<R: BufRead>(records: R, h: &BatchHeader) -> Result<(), String> {
    if h.compression() != Some(Compression::None) {
        return Ok(());
    }
    let mut src = StreamSource::new(records, u64::MAX);
    walk(&mut src, h, &Rules::Stored)
        .map(|_| ())
        .map_err(|f| f.message)
}

// -----------------------------------------------------------------------------------------
// Byte sources: a borrowed slice (uncompressed, zero-copy) or a bounded decompressing stream.

/// Why a source could not deliver.
enum Stop {
    /// The records ended.
    Eof,
    /// The codec failed (garbage payload).
    Codec(String),
    /// More than the decompression bound came out.
    TooLarge(u64),
}

trait Source {
    fn byte(&mut self) -> Result<u8, Stop>;
    fn skip(&mut self, n: u64) -> Result<(), Stop>;
    /// Bytes delivered so far.
    fn consumed(&self) -> u64;
    fn at_end(&mut self) -> Result<bool, Stop>;
}

struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    fn new(buf: &'a [u8]) -> Self {
        SliceSource { buf, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.buf.get(self.pos).ok_or(Stop::Eof)?;
        self.pos += 1;
        Ok(b)
    }
    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            self.pos = self.buf.len();
            return Err(Stop::Eof);
        }
        self.pos += n as usize;
        Ok(())
    }
    fn consumed(&self) -> u64 {
        self.pos as u64
    }
    fn at_end(&mut self) -> Result<bool, Stop> {
        Ok(self.pos >= self.buf.len())
    }
}

struct StreamSource<R: BufRead> {
    r: R,
    consumed: u64,
    limit: u64,
}

impl<R: BufRead> StreamSource<R> {
    fn new(r: R, limit: u64) -> Self {
        StreamSource {
            r,
            consumed: 0,
            limit,
        }
    }
    fn fill(&mut self) -> Result<&[u8], Stop> {
        let limit = self.limit;
        self.r.fill_buf().map_err(|e| {
            if e.get_ref().is_some_and(|i| i.is::<BoundExceeded>()) {
                Stop::TooLarge(limit)
            } else {
                Stop::Codec(e.to_string())
            }
        })
    }
}

impl<R: BufRead> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<u8, Stop> {
        if self.consumed >= self.limit {
            return Err(Stop::TooLarge(self.limit));
        }
        let b = *self.fill()?.first().ok_or(Stop::Eof)?;
        self.r.consume(1);
        self.consumed += 1;
        Ok(b)
    }
    fn skip(&mut self, mut n: u64) -> Result<(), Stop> {
        while n > 0 {
            if self.consumed >= self.limit {
                return Err(Stop::TooLarge(self.limit));
            }
            let room = self.limit - self.consumed;
            let avail = self.fill()?.len() as u64;
            if avail == 0 {
                return Err(Stop::Eof);
            }
            let k = avail.min(n).min(room);
            self.r.consume(k as usize);
            self.consumed += k;
            n -= k;
        }
        Ok(())
    }
    fn consumed(&self) -> u64 {
        self.consumed
    }
    fn at_end(&mut self) -> Result<bool, Stop> {
        if self.consumed >= self.limit {
            // Anything more would be over the bound; find out whether there is more.
            return match self.fill()?.is_empty() {
                true => Ok(true),
                false => Err(Stop::TooLarge(self.limit)),
            };
        }
        Ok(self.fill()?.is_empty())
    }
}

fn walk_stream<R: Read>(
    r: R,
    h: &BatchHeader,
    rules: &Rules,
    limit: u64,
) -> Result<Walked, Failure> {
    let mut src = StreamSource::new(BufReader::with_capacity(STREAM_BUFFER, r), limit);
    walk(&mut src, h, rules)
}

// -----------------------------------------------------------------------------------------
// The record walk.

enum Rules {
    /// A client's batch at the leader: offset deltas 0, 1, 2, ...; timestamps checked when
    /// `Some` (CreateTime).
    Produce {
        timestamps: Option<ValidationConfig>,
    },
    /// A batch read back from disk: offset deltas increasing, within `lastOffsetDelta`.
    Stored,
}

struct Walked {
    max_timestamp: i64,
    bytes: u64,
}

/// Maps a source stop inside record `i` to its Kafka error.
fn stopped(stop: Stop, i: i32, count: i32) -> Failure {
    match stop {
        Stop::Eof => invalid(format!(
            "incorrect declared batch size: premature end of records in record {i} of {count}"
        )),
        Stop::Codec(e) => corrupt(format!("failed to decompress the record batch: {e}")),
        Stop::TooLarge(limit) => Failure::new(
            MESSAGE_TOO_LARGE,
            format!("record batch decompresses to more than {limit} bytes"),
        ),
    }
}

/// Zigzag varint of at most `max_bytes` bytes (5 for varint, 10 for varlong).
fn varlong<S: Source>(src: &mut S, max_bytes: u32) -> Result<Result<i64, String>, Stop> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let b = src.byte()?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64)));
        }
    }
    Ok(Err(format!("varint is longer than {max_bytes} bytes")))
}

fn varint<S: Source>(src: &mut S) -> Result<Result<i32, String>, Stop> {
    Ok(varlong(src, 5)?
        .and_then(|v| i32::try_from(v).map_err(|_| format!("varint {v} does not fit 32 bits"))))
}

fn walk<S: Source>(src: &mut S, h: &BatchHeader, rules: &Rules) -> Result<Walked, Failure> {
    let count = h.records_count;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut last_delta = -1i64;
    for i in 0..count {
        let r = walk_record(src, h, rules, i, &mut last_delta)
            .map_err(|s| stopped(s, i, count))?
            .map_err(|mut f| {
                if f.record.is_none() && f.error_code == INVALID_RECORD {
                    f.message = format!("record {i}: {}", f.message);
                }
                f
            })?;
        max_timestamp = max_timestamp.max(r);
    }
    match src.at_end() {
        Ok(true) => {}
        Ok(false) => {
            return Err(invalid(format!(
                "incorrect declared batch size: records remain after the {count} declared"
            )))
        }
        Err(s) => return Err(stopped(s, count, count)),
    }
    Ok(Walked {
        max_timestamp,
        bytes: src.consumed(),
    })
}

/// Walks record `i`; returns its timestamp. The outer `Result` is a source stop, the
/// inner one a refusal of the record's contents.
fn walk_record<S: Source>(
    src: &mut S,
    h: &BatchHeader,
    rules: &Rules,
    i: i32,
    last_delta: &mut i64,
) -> Result<Result<i64, Failure>, Stop> {
    macro_rules! field {
        ($e:expr) => {
            match $e? {
                Ok(v) => v,
                Err(m) => return Ok(Err(invalid(m))),
            }
        };
    }
    let len = field!(varint(src));
    if len < 0 {
        return Ok(Err(invalid(format!("negative record size {len}"))));
    }
    let end = src.consumed() + len as u64;
    // Skips `n` bytes of this record's body; refuses lengths that leave the record.
    macro_rules! skip_within {
        ($n:expr, $what:expr) => {{
            let n = u64::try_from($n).unwrap_or(0);
            if src.consumed() + n > end {
                return Ok(Err(invalid(format!(
                    "{} of {n} bytes runs past the record size {len}",
                    $what
                ))));
            }
            src.skip(n)?;
        }};
    }
    let _attributes = src.byte()?;
    let ts_delta = field!(varlong(src, 10));
    let offset_delta = field!(varint(src));
    let key_len = field!(varint(src));
    skip_within!(key_len, "key");
    let value_len = field!(varint(src));
    skip_within!(value_len, "value");
    let headers = field!(varint(src));
    if headers < 0 {
        return Ok(Err(invalid(format!(
            "invalid negative number of record headers {headers}"
        ))));
    }
    for _ in 0..headers {
        if src.consumed() >= end {
            return Ok(Err(invalid(format!(
                "{headers} headers do not fit the record size {len}"
            ))));
        }
        let key_len = field!(varint(src));
        if key_len < 0 {
            return Ok(Err(invalid(format!(
                "invalid negative header key size {key_len}"
            ))));
        }
        skip_within!(key_len, "header key");
        let value_len = field!(varint(src));
        skip_within!(value_len, "header value");
    }
    if src.consumed() != end {
        return Ok(Err(invalid(format!(
            "invalid record size: expected {len} bytes but the record has {}",
            src.consumed() + len as u64 - end
        ))));
    }
    let timestamp = h.base_timestamp.wrapping_add(ts_delta);
    let delta = i64::from(offset_delta);
    match rules {
        Rules::Produce { timestamps } => {
            if delta != i64::from(i) {
                return Ok(Err(Failure {
                    error_code: INVALID_RECORD,
                    message: format!("record {i} has offset delta {offset_delta}, expected {i}"),
                    record: Some(i),
                }));
            }
            if let Some(c) = timestamps {
                if timestamp != NO_TIMESTAMP
                    && (c.now_ms.saturating_sub(timestamp) > c.timestamp_before_max_ms
                        || timestamp.saturating_sub(c.now_ms) > c.timestamp_after_max_ms)
                {
                    return Ok(Err(Failure {
                        error_code: INVALID_TIMESTAMP,
                        message: format!(
                            "timestamp {timestamp} of record {i} is out of range (now {}, before.max.ms {}, after.max.ms {})",
                            c.now_ms, c.timestamp_before_max_ms, c.timestamp_after_max_ms
                        ),
                        record: Some(i),
                    }));
                }
            }
        }
        Rules::Stored => {
            if delta <= *last_delta || delta > i64::from(h.last_offset_delta) {
                return Ok(Err(invalid(format!(
                    "offset delta {offset_delta} after {} is outside (.., {}]",
                    *last_delta, h.last_offset_delta
                ))));
            }
        }
    }
    *last_delta = delta;
    Ok(Ok(timestamp))
}

// -----------------------------------------------------------------------------------------
// Decompressing readers that need more than the codec crate's own `Read`.

/// Kafka's snappy payloads: xerial-framed (Java clients: a 16-byte magic header, then
/// `[u32 length][raw snappy block]`...) or one raw snappy block (librdkafka; the Java
/// consumer accepts both the same way). Each block's declared size is checked against the
/// bound before its buffer is allocated.
struct SnappyReader<'a> {
    input: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    at: usize,
    limit: u64,
    produced: u64,
    failed: Option<String>,
}

/// A decompressor's own report that the next block would pass the bound.
#[derive(Debug)]
struct BoundExceeded;

impl std::fmt::Display for BoundExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed size bound exceeded")
    }
}

impl std::error::Error for BoundExceeded {}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> SnappyReader<'a> {
    fn new(input: &'a [u8], limit: u64) -> Self {
        let framed = input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC);
        SnappyReader {
            input: if framed {
                &input[XERIAL_HEADER_LEN..]
            } else {
                input
            },
            framed,
            block: Vec::new(),
            at: 0,
            limit,
            produced: 0,
            failed: if input.is_empty() {
                Some("empty snappy payload".into())
            } else {
                None
            },
        }
    }

    fn next_block(&mut self) -> io::Result<bool> {
        if let Some(e) = &self.failed {
            return Err(io::Error::other(e.clone()));
        }
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            let Some((len, rest)) = self.input.split_first_chunk::<4>() else {
                return Err(io::Error::other("truncated xerial snappy block length"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            let Some((block, rest)) = rest.split_at_checked(len) else {
                return Err(io::Error::other("truncated xerial snappy block"));
            };
            self.input = rest;
            block
        } else {
            std::mem::take(&mut self.input)
        };
        let n = snap::raw::decompress_len(compressed).map_err(io::Error::other)?;
        if self.produced.saturating_add(n as u64) > self.limit {
            // Refused before its buffer exists.
            return Err(io::Error::other(BoundExceeded));
        }
        self.block.clear();
        self.block.resize(n, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(io::Error::other)?;
        self.produced += n as u64;
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Concatenated zstd frames (Java's `ZstdInputStream` reads them all; clients send one).
struct ZstdReader<'a> {
    input: &'a [u8],
    frame: Option<ruzstd::decoding::StreamingDecoder<&'a [u8], ruzstd::decoding::FrameDecoder>>,
    started: bool,
}

impl<'a> ZstdReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        ZstdReader {
            input,
            frame: None,
            started: false,
        }
    }
}

impl Read for ZstdReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &mut self.frame {
                let n = f.read(out)?;
                if n > 0 || out.is_empty() {
                    return Ok(n);
                }
                self.input = *f.get_ref();
                self.frame = None;
            }
            if self.input.is_empty() {
                if !self.started {
                    return Err(io::Error::other("empty zstd payload"));
                }
                return Ok(0);
            }
            self.started = true;
            let d = ruzstd::decoding::StreamingDecoder::new(self.input)
                .map_err(|e| io::Error::other(e.to_string()))?;
            self.frame = Some(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::builder::{compress, put_varint, put_varlong, BatchBuilder};
    use bytes::{BufMut, BytesMut};
    use std::io::Write;

    const ALL_CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn cfg() -> ValidationConfig {
        ValidationConfig::new(1_048_588, 1_000_000)
    }

    fn built(n: usize, value_len: usize, codec: Compression) -> BytesMut {
        let mut b = BatchBuilder::new(1_000).compression(codec);
        for i in 0..n {
            let v = vec![b'a' + (i % 26) as u8; value_len];
            b = b.record(1_000 + i as i64, Some(format!("k{i}").as_bytes()), Some(&v));
        }
        b.build()
    }

    /// Re-seals the CRC after a test edits CRC-covered bytes, so only the edit is wrong.
    fn reseal(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    fn set_i32(b: &mut [u8], at: usize, v: i32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// One record with full control over its fields (Kafka's v2 record layout).
    fn record(
        offset_delta: i32,
        ts_delta: i64,
        value: &[u8],
        headers: &[(&[u8], &[u8])],
    ) -> Vec<u8> {
        let mut body = BytesMut::new();
        body.put_i8(0);
        put_varlong(&mut body, ts_delta);
        put_varint(&mut body, offset_delta);
        put_varint(&mut body, -1);
        put_varint(&mut body, value.len() as i32);
        body.extend_from_slice(value);
        put_varint(&mut body, headers.len() as i32);
        for (k, v) in headers {
            put_varint(&mut body, k.len() as i32);
            body.extend_from_slice(k);
            put_varint(&mut body, v.len() as i32);
            body.extend_from_slice(v);
        }
        let mut out = BytesMut::new();
        put_varint(&mut out, body.len() as i32);
        out.extend_from_slice(&body);
        out.to_vec()
    }

    /// A batch around an arbitrary records section: `count` records declared
    /// (lastOffsetDelta = count - 1), `codec` bits set, records stored as given.
    fn raw_batch(records: &[u8], count: i32, attributes: i16) -> BytesMut {
        let mut out = BytesMut::new();
        out.put_i64(0);
        out.put_i32((BATCH_HEADER_LEN - 12 + records.len()) as i32);
        out.put_i32(-1);
        out.put_i8(2);
        out.put_u32(0);
        out.put_i16(attributes);
        out.put_i32(count - 1);
        out.put_i64(1_000);
        out.put_i64(1_000);
        out.put_i64(-1);
        out.put_i16(-1);
        out.put_i32(-1);
        out.put_i32(count);
        out.extend_from_slice(records);
        reseal(&mut out);
        out
    }

    fn refused(buf: &[u8], c: &ValidationConfig) -> BatchRejection {
        validate_produce(buf, c).expect_err("must be refused")
    }

    #[test]
    fn accepts_what_clients_build_with_every_codec() {
        for codec in ALL_CODECS {
            for (n, len) in [(1, 0), (3, 100), (100, 1024)] {
                let b = built(n, len, codec);
                let v = validate_produce(&b, &cfg()).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].header.records_count, n as i32);
                assert_eq!(v[0].max_record_timestamp, 1_000 + n as i64 - 1);
                let raw = built(n, len, Compression::None);
                assert_eq!(
                    v[0].records_bytes as usize,
                    raw.len() - BATCH_HEADER_LEN,
                    "{codec:?}"
                );
            }
        }
    }

    #[test]
    fn refuses_magic_other_than_2_with_invalid_record() {
        for magic in [0u8, 1, 3] {
            let mut b = built(2, 10, Compression::None);
            b[16] = magic;
            let r = refused(&b, &cfg());
            assert_eq!(r.error_code, INVALID_RECORD, "{r}");
        }
    }

    #[test]
    fn refuses_bad_crc_truncation_and_short_length_as_corrupt() {
        let good = built(2, 10, Compression::None);
        let mut b = good.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(refused(&b, &cfg()).error_code, CORRUPT_MESSAGE);
        assert_eq!(
            refused(&good[..good.len() - 1], &cfg()).error_code,
            CORRUPT_MESSAGE
        );
        assert_eq!(refused(&good[..30], &cfg()).error_code, CORRUPT_MESSAGE);
        let mut b = good.clone();
        set_i32(&mut b, 8, 20);
        assert_eq!(refused(&b, &cfg()).error_code, CORRUPT_MESSAGE);
    }

    #[test]
    fn refuses_batches_over_max_message_bytes() {
        let b = built(10, 100, Compression::None);
        let c = ValidationConfig::new(b.len() as u64 - 1, 0);
        assert_eq!(refused(&b, &c).error_code, MESSAGE_TOO_LARGE);
        assert!(validate_produce(&b, &ValidationConfig::new(b.len() as u64, 0)).is_ok());
    }

    #[test]
    fn refuses_a_count_larger_than_the_records_held() {
        // The probe: one record, but recordsCount = lastOffsetDelta + 1 = 2^31 - 1,
        // which would have moved the log end offset past 2^31.
        for codec in ALL_CODECS {
            let mut b = built(1, 10, codec);
            set_i32(&mut b, 23, i32::MAX - 1);
            set_i32(&mut b, 57, i32::MAX);
            reseal(&mut b);
            let r = refused(&b, &cfg());
            assert_eq!(r.error_code, INVALID_RECORD, "{codec:?}: {r}");
            assert!(r.message.contains("premature end"), "{r}");
        }
    }

    #[test]
    fn refuses_a_count_smaller_than_the_records_held() {
        for codec in ALL_CODECS {
            let mut b = built(3, 10, codec);
            set_i32(&mut b, 23, 1);
            set_i32(&mut b, 57, 2);
            reseal(&mut b);
            let r = refused(&b, &cfg());
            assert_eq!(r.error_code, INVALID_RECORD, "{codec:?}: {r}");
            assert!(r.message.contains("remain"), "{r}");
        }
    }

    #[test]
    fn refuses_inconsistent_header_counts() {
        // lastOffsetDelta != count - 1
        let mut b = built(3, 10, Compression::None);
        set_i32(&mut b, 23, 5);
        reseal(&mut b);
        assert_eq!(refused(&b, &cfg()).error_code, INVALID_RECORD);
        // count 0 / negative
        for (lod, count) in [(-1, 0), (0, 0), (-2, -1)] {
            let mut b = built(1, 10, Compression::None);
            set_i32(&mut b, 23, lod);
            set_i32(&mut b, 57, count);
            reseal(&mut b);
            assert_eq!(
                refused(&b, &cfg()).error_code,
                INVALID_RECORD,
                "{lod} {count}"
            );
        }
        // An empty batch (no records at all).
        let b = raw_batch(&[], 0, 0);
        assert_eq!(refused(&b, &cfg()).error_code, INVALID_RECORD);
    }

    #[test]
    fn refuses_non_contiguous_offset_deltas_with_a_record_error() {
        for deltas in [[0, 2, 3], [0, 0, 1], [1, 2, 3], [0, 1, -1]] {
            let recs: Vec<u8> = deltas
                .iter()
                .flat_map(|&d| record(d, 0, b"v", &[]))
                .collect();
            for codec in ALL_CODECS {
                let b = raw_batch(&compress(codec, &recs), 3, i16::from(codec.id()));
                let r = refused(&b, &cfg());
                assert_eq!(r.error_code, INVALID_RECORD, "{deltas:?} {codec:?}");
                let bad = deltas.iter().enumerate().position(|(i, &d)| d != i as i32);
                assert_eq!(r.record_errors.len(), 1);
                assert_eq!(Some(r.record_errors[0].batch_index as usize), bad);
            }
        }
        let ok: Vec<u8> = (0..3)
            .flat_map(|d| record(d, 0, b"v", &[(b"h", b"x")]))
            .collect();
        assert!(validate_produce(&raw_batch(&ok, 3, 0), &cfg()).is_ok());
    }

    #[test]
    fn refuses_malformed_records() {
        let good = record(0, 0, b"value", &[(b"hk", b"hv")]);
        // Record length one more / one less than the body.
        for adjust in [1i32, -1] {
            let mut r = BytesMut::new();
            put_varint(&mut r, good.len() as i32 - 1 + adjust);
            r.extend_from_slice(&good[1..]);
            let e = refused(&raw_batch(&r, 1, 0), &cfg());
            assert_eq!(e.error_code, INVALID_RECORD, "{adjust}: {e}");
        }
        // Negative record length.
        let mut r = BytesMut::new();
        put_varint(&mut r, -5);
        r.extend_from_slice(&good[1..]);
        assert_eq!(
            refused(&raw_batch(&r, 1, 0), &cfg()).error_code,
            INVALID_RECORD
        );
        // A value length past the record.
        let mut body = BytesMut::new();
        body.put_i8(0);
        put_varlong(&mut body, 0);
        put_varint(&mut body, 0);
        put_varint(&mut body, -1);
        put_varint(&mut body, 1_000_000);
        body.extend_from_slice(b"short");
        put_varint(&mut body, 0);
        let mut r = BytesMut::new();
        put_varint(&mut r, body.len() as i32);
        r.extend_from_slice(&body);
        assert_eq!(
            refused(&raw_batch(&r, 1, 0), &cfg()).error_code,
            INVALID_RECORD
        );
        // Negative header count, negative header key length.
        for (count, key_len) in [(-1, 1), (1, -1)] {
            let mut body = BytesMut::new();
            body.put_i8(0);
            put_varlong(&mut body, 0);
            put_varint(&mut body, 0);
            put_varint(&mut body, -1);
            put_varint(&mut body, -1);
            put_varint(&mut body, count);
            put_varint(&mut body, key_len);
            body.put_u8(b'k');
            put_varint(&mut body, -1);
            let mut r = BytesMut::new();
            put_varint(&mut r, body.len() as i32);
            r.extend_from_slice(&body);
            let e = refused(&raw_batch(&r, 1, 0), &cfg());
            assert_eq!(e.error_code, INVALID_RECORD, "{count} {key_len}: {e}");
        }
        // A varint longer than 5 bytes.
        let r = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0];
        let e = refused(&raw_batch(&r, 1, 0), &cfg());
        assert_eq!(e.error_code, INVALID_RECORD);
        assert!(e.message.contains("longer than 5"), "{e}");
    }

    #[test]
    fn refuses_garbage_payloads_of_every_codec_as_corrupt() {
        let garbage = b"this is not a compressed stream at all, just bytes a client sent";
        for codec in &ALL_CODECS[1..] {
            let b = raw_batch(garbage, 1, i16::from(codec.id()));
            let r = refused(&b, &cfg());
            assert_eq!(r.error_code, CORRUPT_MESSAGE, "{codec:?}: {r}");
            // Truncated real streams too.
            let recs = record(0, 0, &[7u8; 500], &[]);
            let z = compress(*codec, &recs);
            let b = raw_batch(&z[..z.len() / 2], 1, i16::from(codec.id()));
            let r = refused(&b, &cfg());
            assert!(
                r.error_code == CORRUPT_MESSAGE || r.error_code == INVALID_RECORD,
                "{codec:?}: {r}"
            );
            // An empty payload.
            let b = raw_batch(&[], 1, i16::from(codec.id()));
            assert_ne!(refused(&b, &cfg()).error_code, 0);
        }
        // Codec ids 5..=7 do not exist.
        let b = raw_batch(&record(0, 0, b"v", &[]), 1, 5);
        assert_eq!(refused(&b, &cfg()).error_code, CORRUPT_MESSAGE);
    }

    /// One record whose value is `n` zero bytes, compressed: a bomb when `n` is large.
    fn bomb(codec: Compression, n: usize) -> BytesMut {
        let mut head = BytesMut::new();
        head.put_i8(0);
        put_varlong(&mut head, 0);
        put_varint(&mut head, 0);
        put_varint(&mut head, -1);
        put_varint(&mut head, n as i32);
        let body_len = head.len() + n + 1;
        let mut raw = BytesMut::new();
        put_varint(&mut raw, body_len as i32);
        raw.extend_from_slice(&head);
        raw.resize(raw.len() + n, 0);
        put_varint(&mut raw, 0);
        raw_batch(&compress(codec, &raw), 1, i16::from(codec.id()))
    }

    #[test]
    fn decompression_is_bounded_against_bombs() {
        for codec in &ALL_CODECS[1..] {
            let b = bomb(*codec, 32 << 20);
            assert!(b.len() < 2 << 20, "{codec:?} bomb is {} bytes", b.len());
            let c = ValidationConfig::new(2 << 20, 0);
            let r = refused(&b, &c);
            assert_eq!(r.error_code, MESSAGE_TOO_LARGE, "{codec:?}: {r}");
            // Under a bound that fits it, the same batch is valid.
            let mut big = c;
            big.max_uncompressed_bytes = 33 << 20;
            assert!(validate_produce(&b, &big).is_ok(), "{codec:?}");
        }
    }

    #[test]
    fn a_raw_snappy_block_over_the_bound_is_refused_before_allocation() {
        // One raw block declaring 32 MiB: refused from its length prefix alone.
        let recs: Vec<u8> = vec![0u8; 32 << 20];
        let raw = snap::raw::Encoder::new()
            .compress_vec(&recs)
            .expect("snappy");
        let mut c = ValidationConfig::new(4 << 20, 0);
        c.max_uncompressed_bytes = 1 << 20;
        let r = refused(&raw_batch(&raw, 1, 2), &c);
        assert_eq!(r.error_code, MESSAGE_TOO_LARGE, "{r}");
    }

    #[test]
    fn accepts_raw_snappy_and_concatenated_zstd_frames() {
        let recs: Vec<u8> = (0..4).flat_map(|d| record(d, 0, b"value", &[])).collect();
        // librdkafka sends one raw snappy block, no xerial framing.
        let raw = snap::raw::Encoder::new()
            .compress_vec(&recs)
            .expect("snappy");
        assert!(validate_produce(&raw_batch(&raw, 4, 2), &cfg()).is_ok());
        // Two zstd frames back to back.
        let (a, b) = recs.split_at(recs.len() / 2);
        let mut z = compress(Compression::Zstd, a);
        z.extend_from_slice(&compress(Compression::Zstd, b));
        assert!(validate_produce(&raw_batch(&z, 4, 4), &cfg()).is_ok());
        // Multi-member gzip, as Java's GZIPInputStream reads it.
        let mut g = compress(Compression::Gzip, a);
        g.extend_from_slice(&compress(Compression::Gzip, b));
        assert!(validate_produce(&raw_batch(&g, 4, 1), &cfg()).is_ok());
        // lz4 with a content checksum.
        let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(
            lz4_flex::frame::FrameInfo::new().content_checksum(true),
            Vec::new(),
        );
        e.write_all(&recs).expect("lz4");
        let l = e.finish().expect("lz4");
        assert!(validate_produce(&raw_batch(&l, 4, 3), &cfg()).is_ok());
    }

    #[test]
    fn refuses_client_control_batches_and_bad_producer_fields() {
        let b = BatchBuilder::new(0)
            .control(true)
            .record(0, None, None)
            .build();
        assert_eq!(refused(&b, &cfg()).error_code, INVALID_RECORD);
        let b = BatchBuilder::new(0)
            .transactional(true)
            .record(0, None, None)
            .build();
        assert_eq!(refused(&b, &cfg()).error_code, INVALID_RECORD);
        for (pid, epoch, seq) in [(5, 0, -1), (5, -1, 0)] {
            let b = BatchBuilder::new(0)
                .producer(pid, epoch, seq)
                .record(0, None, None)
                .build();
            assert_eq!(
                refused(&b, &cfg()).error_code,
                INVALID_RECORD,
                "{pid} {epoch} {seq}"
            );
        }
        let b = BatchBuilder::new(0)
            .producer(5, 0, 7)
            .transactional(true)
            .record(0, None, None)
            .build();
        assert!(validate_produce(&b, &cfg()).is_ok());
    }

    #[test]
    fn refuses_a_nonzero_base_offset() {
        let b = BatchBuilder::new(0)
            .base_offset(3)
            .record(0, None, None)
            .build();
        assert_eq!(refused(&b, &cfg()).error_code, INVALID_RECORD);
    }

    #[test]
    fn create_time_timestamps_are_bounded_when_configured() {
        let mut c = cfg();
        c.now_ms = 100_000;
        c.timestamp_before_max_ms = 1_000;
        c.timestamp_after_max_ms = 1_000;
        let at = |ts: &[i64]| {
            let mut b = BatchBuilder::new(ts[0]);
            for &t in ts {
                b = b.record(t, None, Some(b"v"));
            }
            b.build()
        };
        assert!(validate_produce(&at(&[99_500, 100_900]), &c).is_ok());
        let r = refused(&at(&[100_000, 101_001]), &c);
        assert_eq!(r.error_code, INVALID_TIMESTAMP);
        assert_eq!(r.record_errors[0].batch_index, 1);
        assert_eq!(refused(&at(&[98_999]), &c).error_code, INVALID_TIMESTAMP);
        // -1 is "no timestamp", always allowed.
        assert!(validate_produce(&at(&[-1]), &c).is_ok());
        // Under LogAppendTime the producer's clock is not checked: the broker stamps.
        let lat = ValidationConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..c
        };
        assert!(validate_produce(&at(&[0, 500_000]), &lat).is_ok());
        // Kafka's defaults leave CreateTime unbounded.
        assert!(validate_produce(&at(&[0]), &cfg()).is_ok());
    }

    #[test]
    fn refuses_a_producer_set_log_append_time_flag_under_either_topic_type() {
        let b = BatchBuilder::new(0)
            .attributes_extra(0x08)
            .record(0, None, Some(b"v"))
            .build();
        for timestamp_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
            let c = ValidationConfig {
                timestamp_type,
                ..cfg()
            };
            let r = refused(&b, &c);
            assert_eq!(r.error_code, INVALID_TIMESTAMP, "{timestamp_type:?}");
            assert_eq!(r.record_errors[0].batch_index, 0);
        }
    }

    fn header_max_timestamp(b: &[u8]) -> i64 {
        i64::from_be_bytes(b[35..43].try_into().unwrap())
    }

    #[test]
    fn a_wrong_header_max_timestamp_is_set_to_the_records_max_with_a_valid_crc() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut payload = BytesMut::new();
            for (i, forged) in [(0i64, Some(999)), (1, Some(-1)), (2, None)] {
                let mut b = BatchBuilder::new(100 + i)
                    .compression(codec)
                    .record(100 + i, None, Some(b"a"))
                    .record(300 + i, None, Some(b"b"))
                    .record(200 + i, None, Some(b"c"))
                    .build();
                if let Some(ts) = forged {
                    b[35..43].copy_from_slice(&i64::to_be_bytes(ts));
                    reseal(&mut b);
                }
                payload.extend_from_slice(&b);
            }
            let untouched = payload.clone();
            let validated = validate_produce(&payload, &cfg()).expect("valid");
            set_create_time_max_timestamps(&mut payload, &validated);
            let batches: Vec<_> = BatchesMut::new(&mut payload, u64::MAX)
                .map(|b| b.expect("framed").1.as_mut_slice().to_vec())
                .collect();
            for (i, b) in batches.iter().enumerate() {
                assert_eq!(
                    header_max_timestamp(b),
                    300 + i as i64,
                    "{codec:?} batch {i}"
                );
                assert!(validate_produce(b, &cfg()).is_ok(), "CRC resealed");
            }
            // The batch whose header was already right is left byte for byte as sent.
            let third = untouched.len() - batches[2].len();
            assert_eq!(&payload[third..], &untouched[third..]);
        }
    }

    #[test]
    fn reports_which_batch_of_a_produce_was_refused() {
        let mut payload = built(2, 10, Compression::None);
        let first = payload.len();
        let mut bad = built(2, 10, Compression::Gzip);
        set_i32(&mut bad, 57, 3);
        set_i32(&mut bad, 23, 2);
        reseal(&mut bad);
        payload.extend_from_slice(&bad);
        let r = refused(&payload, &cfg());
        assert_eq!((r.batch, r.position), (1, first as u64));
    }

    #[test]
    fn stored_rules_allow_gaps_but_not_missing_records() {
        let recs: Vec<u8> = [0, 2, 5]
            .iter()
            .flat_map(|&d| record(d, 0, b"v", &[]))
            .collect();
        let mut b = raw_batch(&recs, 3, 0);
        set_i32(&mut b, 23, 5);
        let h = BatchHeader::parse(&b).expect("header");
        assert!(check_stored_records(&b[BATCH_HEADER_LEN..], &h).is_ok());
        let mut h2 = h;
        h2.records_count = 4;
        assert!(check_stored_records(&b[BATCH_HEADER_LEN..], &h2).is_err());
        h2.records_count = 3;
        h2.last_offset_delta = 4;
        assert!(check_stored_records(&b[BATCH_HEADER_LEN..], &h2).is_err());
    }
}

#[cfg(test)]
mod proptests {
    //! Stands in for a fuzz target (cargo-fuzz needs nightly): arbitrary bytes, and valid
    //! batches with arbitrary flips, never panic and never pass unless well-formed.
    use super::*;
    use crate::storage::builder::BatchBuilder;
    use proptest::prelude::*;

    fn codec() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Gzip),
            Just(Compression::Snappy),
            Just(Compression::Lz4),
            Just(Compression::Zstd),
        ]
    }

    type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn records() -> impl Strategy<Value = Vec<Rec>> {
        proptest::collection::vec(
            (
                -1i64..1 << 42,
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            ),
            1..30,
        )
    }

    fn build(recs: &[Rec], codec: Compression, pid: Option<(i64, i16, i32)>) -> Vec<u8> {
        let mut b = BatchBuilder::new(recs[0].0).compression(codec);
        if let Some((id, epoch, seq)) = pid {
            b = b.producer(id, epoch, seq);
        }
        for (ts, k, v) in recs {
            b = b.record(*ts, k.as_deref(), v.as_deref());
        }
        b.build().to_vec()
    }

    fn cfg() -> ValidationConfig {
        ValidationConfig::new(1 << 20, 0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn every_builder_batch_is_accepted(
            recs in records(),
            codec in codec(),
            pid in proptest::option::of((0i64..1 << 40, 0i16..100, 0i32..i32::MAX)),
        ) {
            let b = build(&recs, codec, pid);
            let v = validate_produce(&b, &cfg()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(v[0].header.records_count as usize, recs.len());
            prop_assert_eq!(v[0].max_record_timestamp, recs.iter().map(|r| r.0).max().unwrap_or(-1));
        }

        #[test]
        fn flipped_bytes_never_panic(
            recs in records(),
            codec in codec(),
            flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..8),
            reseal in any::<bool>(),
        ) {
            let mut b = build(&recs, codec, None);
            for (at, x) in flips {
                let at = at % b.len();
                b[at] ^= x;
            }
            if reseal && b.len() > 21 {
                // Past the CRC, so the record walk and the codecs see the damage.
                let crc = crc32c::crc32c(&b[21..]);
                b[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            if let Err(r) = validate_produce(&b, &cfg()) {
                prop_assert!([CORRUPT_MESSAGE, INVALID_RECORD, MESSAGE_TOO_LARGE, INVALID_TIMESTAMP]
                    .contains(&r.error_code), "{}", r);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2_000),
            codec in 0u8..8,
        ) {
            // A plausible header around arbitrary records, CRC sealed, so the walk runs.
            let mut b = BatchBuilder::new(0).record(0, None, None).build().to_vec();
            b.truncate(61);
            b.extend_from_slice(&bytes);
            let len = (b.len() - 12) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b[22] = codec;
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            let _ = validate_produce(&b, &cfg());
            let _ = validate_produce(&bytes, &cfg());
        }
    }
}
