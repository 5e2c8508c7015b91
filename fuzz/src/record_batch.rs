//! The record batches of a Produce, as the leader validates them before it appends
//! (Kafka's LogValidator; `osprey_broker::storage::validate`).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use osprey_broker::storage::{
    set_create_time_max_timestamps, validate_produce, Compression, TimestampType, ValidationConfig,
};

use crate::alloc::peak_during;

/// Memory a validation may take beyond the decompressed bound: the codecs' own state (an
/// lz4 frame's two 4 MiB blocks are the largest) and the read buffer.
pub const CODEC_STATE_BYTES: usize = 12 << 20;

/// The first bytes of an input choose the topic's limits and clock; the rest is the
/// produce payload. Small limits, so that the fuzzer reaches every size refusal.
pub fn config_and_payload(data: &[u8]) -> Option<(ValidationConfig, &[u8])> {
    let (&[size, kind, before, after], payload) = data.split_first_chunk::<4>()?;
    let max_batch_bytes = [256u64, 4096, 65_536, 1_048_588][usize::from(size % 4)];
    let bound = |b: u8| [i64::MAX, 0, 1_000, 86_400_000][usize::from(b % 4)];
    let config = ValidationConfig {
        timestamp_before_max_ms: bound(before),
        timestamp_after_max_ms: bound(after),
        timestamp_type: if kind % 2 == 0 {
            TimestampType::CreateTime
        } else {
            TimestampType::LogAppendTime
        },
        ..ValidationConfig::new(max_batch_bytes, 1_700_000_000_000)
    };
    Some((config, payload))
}

/// Validation never panics; its memory is bounded by the decompression bound, not by what
/// a length field or a compressed stream claims; a refusal is one of Kafka's produce
/// errors; and what it accepts is what a client can read: after the leader's own header
/// fix-up the batches still validate, and an independent decoder (kafka-protocol's, a Rust
/// client's reader) decodes exactly the records the validator counted.
pub fn check(data: &[u8]) {
    let Some((config, payload)) = config_and_payload(data) else {
        return;
    };
    let (verdict, peak) = peak_during(|| validate_produce(payload, &config));
    let bound = config.max_uncompressed_bytes as usize + CODEC_STATE_BYTES + 4 * payload.len();
    assert!(
        peak <= bound,
        "validating {} bytes took {peak} bytes at its peak (bound {bound})",
        payload.len()
    );
    let validated = match verdict {
        Err(r) => {
            // CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_TIMESTAMP, INVALID_RECORD.
            assert!(
                [2, 10, 32, 87].contains(&r.error_code),
                "unexpected error code {}: {}",
                r.error_code,
                r.message
            );
            assert!(r.position < payload.len() as u64 || payload.is_empty());
            return;
        }
        Ok(v) => v,
    };
    let mut stored = BytesMut::from(payload);
    if config.timestamp_type == TimestampType::CreateTime {
        set_create_time_max_timestamps(&mut stored, &validated);
    }
    let again = validate_produce(&stored, &config).expect("a fixed-up batch still validates");
    for (v, w) in validated.iter().zip(&again) {
        assert_eq!(v.header.records_count, w.header.records_count);
        if config.timestamp_type == TimestampType::CreateTime {
            assert_eq!(w.header.max_timestamp, v.max_record_timestamp);
        }
    }
    // kafka-protocol reads snappy in its raw form only; Kafka's Java clients also write the
    // xerial framing, which Osprey accepts. Every other codec is compared.
    if validated
        .iter()
        .any(|v| v.header.compression() == Some(Compression::Snappy))
    {
        return;
    }
    let mut buf = Bytes::copy_from_slice(&stored);
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .unwrap_or_else(|e| panic!("accepted batches a client cannot decode: {e:#}"));
    let decoded: usize = sets.iter().map(|s| s.records.len()).sum();
    let counted: usize = validated
        .iter()
        .map(|v| v.header.records_count as usize)
        .sum();
    assert_eq!(decoded, counted, "records decoded by a client vs counted");
}
