//! The per-partition on-disk log, Kafka-style.
//!
//! A partition directory holds segment pairs `<base offset:020>.log` / `.index`, a
//! `leader-epoch-checkpoint` and a `high-watermark-checkpoint`. Producers' RecordBatch v2
//! bytes are stored verbatim; the leader walks (and, for compressed batches, decompresses)
//! every record once to validate it ([`validate`]), and otherwise only reads and stamps the
//! 61-byte batch headers.
//!
//! Modules, one job each:
//! * [`batch`] — zero-copy RecordBatch v2 views, validation, in-place stamping;
//! * [`validate`] — the leader's full produce validation (Kafka's `LogValidator`): records
//!   walked, compressed payloads decompressed under a bound;
//! * [`builder`] — a producer-side batch encoder for tests, benches and conformance;
//! * [`segment`] / `index` — segment files, the sparse offset index, recovery scans;
//! * [`epoch_cache`] — the KIP-101/279 leader-epoch cache;
//! * [`checkpoint`] — Kafka's versioned text checkpoint files, written atomically;
//! * [`config`] / `flush` — settings and the fsync policy;
//! * [`log`] — [`PartitionLog`], which ties it together;
//! * [`error`] — [`StorageError`] with Kafka error-code mapping.

pub mod batch;
#[cfg(test)]
mod batch_tests;
pub mod builder;
pub mod checkpoint;
pub mod config;
pub mod epoch_cache;
pub mod error;
mod flush;
mod index;
pub mod log;
pub mod segment;
pub mod validate;

#[cfg(test)]
mod log_failure_tests;
#[cfg(test)]
mod log_proptest;
#[cfg(test)]
mod log_tests;

pub use batch::{
    check_batch, BatchHeader, BatchView, Batches, BatchesMut, Compression, RecordBatch,
    RecordBatchMut, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};
pub use builder::BatchBuilder;
pub use config::{FlushPolicy, LogConfig};
pub use epoch_cache::{EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use error::{Result, StorageError};
pub use log::{AppendInfo, BatchAppendInfo, PartitionLog};
pub use validate::{
    set_create_time_max_timestamps, validate_produce, BatchRejection, RecordError, ValidatedBatch,
    ValidationConfig,
};
