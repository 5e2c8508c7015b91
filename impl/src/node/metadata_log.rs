//! The metadata log's encoding: each controller operation's records become one Kafka
//! RecordBatch (so an operation is applied all or nothing), one record per
//! [`MetadataRecord`], its value the record as JSON. The log is an ordinary
//! [`crate::storage::PartitionLog`] (`__cluster_metadata-0`) on the controller, and brokers
//! read it with an ordinary Fetch, as KRaft brokers do.
//!
//! Kafka's own metadata-record schemas are not part of the wire protocol crate; the records
//! here are Osprey's, named after KRaft's (see `controller::records`).

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;

use crate::controller::records::MetadataRecord;
use crate::quorum::Batch;
use crate::storage::{BatchBuilder, BatchHeader};

/// The metadata topic, as in KRaft.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// One batch holding `records`, with `timestamp_ms` on every record.
pub fn encode_batch(records: &[MetadataRecord], timestamp_ms: i64) -> anyhow::Result<BytesMut> {
    let mut builder = BatchBuilder::new(timestamp_ms);
    let mut values = Vec::with_capacity(records.len());
    for r in records {
        values.push(serde_json::to_vec(r)?);
    }
    for v in &values {
        builder = builder.record(timestamp_ms, None, Some(v));
    }
    Ok(builder.build())
}

/// Every record in `bytes` (whole batches from the metadata log), with its offset.
pub fn decode_batches(bytes: Bytes) -> anyhow::Result<Vec<(i64, MetadataRecord)>> {
    let mut buf = bytes;
    let sets = RecordBatchDecoder::decode_all(&mut buf).context("decoding metadata batches")?;
    let mut out = Vec::new();
    for set in sets {
        for record in set.records {
            let value = record.value.with_context(|| {
                format!("metadata record at offset {} has no value", record.offset)
            })?;
            let rec: MetadataRecord = serde_json::from_slice(&value)
                .with_context(|| format!("metadata record at offset {}", record.offset))?;
            out.push((record.offset, rec));
        }
    }
    Ok(out)
}

/// Splits fetched bytes into whole batches with their offsets and epochs.
pub fn split_batches(bytes: &Bytes) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = BatchHeader::parse(&bytes[pos..]) {
        let size = h.size() as usize;
        if size == 0 || pos + size > bytes.len() {
            break;
        }
        out.push(Batch {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            epoch: h.partition_leader_epoch,
            data: bytes.slice(pos..pos + size),
        });
        pos += size;
    }
    out
}

/// The whole batches of `bytes` that start below `up_to` (a quorum Fetch answers records
/// from its offset up to the core's `up_to`; a batch that starts below it goes whole).
pub fn batches_starting_below(bytes: Bytes, up_to: i64) -> Bytes {
    let mut end = 0usize;
    for b in split_batches(&bytes) {
        if b.base_offset >= up_to {
            break;
        }
        end += b.data.len();
    }
    bytes.slice(..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(records: usize, base: i64, epoch: i32) -> Bytes {
        let recs: Vec<MetadataRecord> = (0..records)
            .map(|i| MetadataRecord::LeaderChange {
                leader_id: i as i32,
                leader_epoch: epoch,
            })
            .collect();
        let mut b = encode_batch(&recs, 0).expect("encodes");
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[12..16].copy_from_slice(&epoch.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn fetched_bytes_split_into_batches_and_cut_at_the_high_watermark() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&batch_of(2, 0, 1));
        all.extend_from_slice(&batch_of(1, 2, 1));
        all.extend_from_slice(&batch_of(3, 3, 2));
        let all = all.freeze();
        let batches = split_batches(&all);
        let spans: Vec<(i64, i64, i32)> = batches
            .iter()
            .map(|b| (b.base_offset, b.last_offset, b.epoch))
            .collect();
        assert_eq!(spans, vec![(0, 1, 1), (2, 2, 1), (3, 5, 2)]);
        // Observers read below the high watermark only, in whole batches.
        assert_eq!(
            split_batches(&batches_starting_below(all.clone(), 3)).len(),
            2
        );
        assert_eq!(
            split_batches(&batches_starting_below(all.clone(), 2)).len(),
            1
        );
        assert!(batches_starting_below(all.clone(), 0).is_empty());
        assert_eq!(batches_starting_below(all.clone(), 6), all);
        // A torn tail is not a batch.
        assert_eq!(split_batches(&all.slice(..all.len() - 1)).len(), 2);
    }
}
