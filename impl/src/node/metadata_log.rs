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
use crate::storage::BatchBuilder;

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
