//! Per-partition log configuration (the subset of Kafka's topic configs storage needs).

use super::error::{Result, StorageError};

/// When the log fsyncs its active segment.
///
/// Kafka's default is [`FlushPolicy::Os`]: durability comes from replication, and the page
/// cache is written back by the OS. The other variants mirror `flush.messages` /
/// `flush.ms`. Independently of the policy, a segment is always fsynced when it is rolled
/// (Kafka schedules the same flush on roll), so only the active segment can hold
/// unflushed bytes — recovery relies on that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// fsync at the end of every append call (`flush.messages=1`).
    EveryBatch,
    /// fsync once at least `n` records are unflushed (`flush.messages=n`).
    EveryMessages(u64),
    /// fsync from [`super::PartitionLog::maybe_flush`] once `ms` have passed since the last
    /// flush (`flush.ms`). Appends never flush under this policy.
    EveryMillis(u64),
    /// Never fsync explicitly (Kafka's default); only rolls and [`super::PartitionLog::flush`] do.
    #[default]
    Os,
}

/// Storage settings for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when an append would grow the active one past this
    /// (`segment.bytes`, default 1 GiB). At most `i32::MAX` because index positions are 32-bit.
    pub segment_bytes: u64,
    /// Bytes of log between sparse index entries (`index.interval.bytes`, default 4096).
    pub index_interval_bytes: u64,
    /// Largest batch a leader accepts (`max.message.bytes`, default 1048588).
    pub max_batch_bytes: u64,
    /// fsync policy.
    pub flush_policy: FlushPolicy,
    /// A batch larger than `segment_bytes` gets a segment of its own instead of failing with
    /// `AppendTooLarge`. Set for the KRaft metadata log only: Kafka floors
    /// `metadata.log.segment.bytes` at its largest metadata batch (8 MiB), while Osprey's
    /// controller batches are not bounded that way and its tests use tiny metadata segments
    /// so that snapshots visibly delete them.
    pub oversized_batch_own_segment: bool,
    /// `message.timestamp.type`: with `LogAppendTime` a leader stamps every batch it
    /// appends with the time of the append (Kafka's LogValidator does the same).
    pub timestamp_type: super::batch::TimestampType,
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms`: how far before
    /// or after the broker's clock a CreateTime batch's timestamps may be (Kafka 3.x's
    /// default: unbounded, `i64::MAX`).
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            flush_policy: FlushPolicy::Os,
            oversized_batch_own_segment: false,
            timestamp_type: super::batch::TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(StorageError::InvalidConfig { reason });
        if self.segment_bytes < super::batch::BATCH_HEADER_LEN as u64 {
            return bad(format!(
                "segment_bytes {} is smaller than one batch header (61)",
                self.segment_bytes
            ));
        }
        if self.segment_bytes > i32::MAX as u64 {
            return bad(format!(
                "segment_bytes {} exceeds i32::MAX (index positions are 32-bit)",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be positive".into());
        }
        if self.max_batch_bytes < super::batch::BATCH_HEADER_LEN as u64 {
            return bad(format!(
                "max_batch_bytes {} is smaller than one batch header (61)",
                self.max_batch_bytes
            ));
        }
        if matches!(self.flush_policy, FlushPolicy::EveryMessages(0)) {
            return bad("FlushPolicy::EveryMessages(0) is meaningless; use EveryBatch".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafka_defaults_and_valid() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.flush_policy, FlushPolicy::Os);
        c.validate().expect("defaults valid");
    }

    #[test]
    fn rejects_unworkable_settings() {
        for c in [
            LogConfig {
                segment_bytes: 10,
                ..LogConfig::default()
            },
            LogConfig {
                segment_bytes: 1 << 31,
                ..LogConfig::default()
            },
            LogConfig {
                index_interval_bytes: 0,
                ..LogConfig::default()
            },
            LogConfig {
                max_batch_bytes: 3,
                ..LogConfig::default()
            },
            LogConfig {
                flush_policy: FlushPolicy::EveryMessages(0),
                ..LogConfig::default()
            },
        ] {
            let err = c.validate().expect_err("invalid");
            assert!(matches!(err, StorageError::InvalidConfig { .. }), "{err}");
        }
    }
}
