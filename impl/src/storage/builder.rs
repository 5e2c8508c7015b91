//! A minimal producer-side RecordBatch v2 encoder.
//!
//! The broker never builds batches — producers do — but tests, benches and the conformance
//! suite need real, CRC-valid v2 batches with correctly varint-encoded records to feed the
//! log. This writes records with Kafka's zigzag varints, compressed with any of Kafka's four
//! codecs if asked ([`BatchBuilder::compression`]), and computes the real CRC-32C; it is
//! deliberately not used on any broker hot path.

use bytes::{BufMut, BytesMut};

use std::io::Write;

use super::batch::{
    Compression, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Appends a zigzag varint (Kafka `ByteUtils.writeVarint`).
pub fn put_varint(out: &mut BytesMut, v: i32) {
    put_varlong(out, i64::from(v));
}

/// Appends a zigzag varlong (Kafka `ByteUtils.writeVarlong`).
pub fn put_varlong(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Builds one uncompressed v2 batch. Defaults match a plain (non-idempotent) producer:
/// base offset 0, leader epoch -1, producer id/epoch/sequence -1.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    base_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<Rec>,
    compression: Compression,
}

impl BatchBuilder {
    /// A batch whose `baseTimestamp` is `base_timestamp`.
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: 0,
            base_timestamp,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            records: Vec::new(),
            compression: Compression::None,
        }
    }

    /// Sets `baseOffset` (followers receive batches with real offsets).
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets `partitionLeaderEpoch`.
    pub fn leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent producer identity.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets or clears the transactional bit.
    pub fn transactional(mut self, on: bool) -> Self {
        self.set_bit(0x10, on);
        self
    }

    /// Sets or clears the control bit.
    pub fn control(mut self, on: bool) -> Self {
        self.set_bit(0x20, on);
        self
    }

    /// Compresses the records with `codec` (and sets the codec bits), as a producer with
    /// `compression.type` does: gzip, snappy (xerial-framed, as Java clients send it), lz4
    /// (frame format) or zstd.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.attributes = (self.attributes & !0x07) | i16::from(codec.id());
        self.compression = codec;
        self
    }

    /// ORs raw attribute bits (compression id, timestamp type) in. The records are still
    /// written uncompressed; only the header claims otherwise.
    pub fn attributes_extra(mut self, bits: i16) -> Self {
        self.attributes |= bits;
        self
    }

    fn set_bit(&mut self, bit: i16, on: bool) {
        if on {
            self.attributes |= bit;
        } else {
            self.attributes &= !bit;
        }
    }

    /// Adds a record.
    pub fn record(mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        self.records.push(Rec {
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
        });
        self
    }

    /// Encodes the batch with a valid CRC-32C.
    pub fn build(&self) -> BytesMut {
        let mut records = BytesMut::new();
        let mut body = BytesMut::new();
        for (i, r) in self.records.iter().enumerate() {
            body.clear();
            body.put_i8(0); // record attributes
            put_varlong(&mut body, r.timestamp.wrapping_sub(self.base_timestamp));
            put_varint(&mut body, i as i32);
            put_bytes(&mut body, r.key.as_deref());
            put_bytes(&mut body, r.value.as_deref());
            put_varint(&mut body, 0); // no headers
            put_varint(&mut records, body.len() as i32);
            records.extend_from_slice(&body);
        }
        let n = self.records.len() as i32;
        let max_ts = self
            .records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(self.base_timestamp);
        let records = compress(self.compression, &records);
        let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len());
        out.put_i64(self.base_offset);
        out.put_i32((BATCH_HEADER_LEN - LOG_OVERHEAD + records.len()) as i32);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC placeholder
        out.put_i16(self.attributes);
        out.put_i32((n - 1).max(0));
        out.put_i64(self.base_timestamp);
        out.put_i64(max_ts);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(n);
        out.extend_from_slice(&records);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Compresses a records section the way Kafka clients do.
pub fn compress(codec: Compression, raw: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => raw.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            // Writes into a Vec cannot fail.
            let _ = e.write_all(raw);
            e.finish().unwrap_or_default()
        }
        Compression::Snappy => {
            // xerial framing: magic header, then [u32 length][raw snappy block] per 32 KiB.
            let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
            let mut enc = snap::raw::Encoder::new();
            for chunk in raw.chunks(32 * 1024) {
                let block = enc.compress_vec(chunk).unwrap_or_default();
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            let _ = e.write_all(raw);
            e.finish().unwrap_or_default()
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(raw, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

fn put_bytes(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: i64) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_varlong(&mut b, v);
        b.to_vec()
    }

    #[test]
    fn zigzag_varints_match_kafka() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(-1), [0x01]);
        assert_eq!(enc(1), [0x02]);
        assert_eq!(enc(63), [0x7e]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(300), [0xd8, 0x04]);
        assert_eq!(enc(i64::MIN).len(), 10);
    }

    #[test]
    fn record_encoding_is_kafka_layout() {
        let b = BatchBuilder::new(100)
            .record(103, Some(b"k"), Some(b"vv"))
            .build();
        let rec = &b[BATCH_HEADER_LEN..];
        // length, attrs, tsDelta=3, offDelta=0, keyLen=1, 'k', valLen=2, 'v','v', headers=0
        assert_eq!(
            rec,
            [0x12, 0, 0x06, 0x00, 0x02, b'k', 0x04, b'v', b'v', 0x00]
        );
        assert_eq!(rec[0] as usize / 2, rec.len() - 1);
    }
}
