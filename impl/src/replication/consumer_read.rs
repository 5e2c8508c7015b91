//! The consumer read rule: what a consumer's Fetch of one partition may see.
//!
//! A consumer reads only from the leader of the epoch it names (KIP-320), only offsets the
//! log holds, and only whole batches below the high watermark: records above it are not
//! committed and could still be cut by a new leader, and the model's `ConsumedNeverLost`
//! property holds only because consumers never see them. The rule lives here, in the core,
//! so that unit tests and the conformance replay reach it; the driver only maps Kafka's
//! Fetch to a [`ConsumerFetch`] and the [`ConsumerRead`] back.
//!
//! A follower's Fetch is the other read of the log: [`Replica::handle_fetch_from_follower`]
//! (model step `Fetch`), which reads past the high watermark up to the log end.

use bytes::Bytes;

use super::ids::LeaderEpoch;
use super::partition::Replica;
use crate::error_codes::{
    FENCED_LEADER_EPOCH, NONE, NOT_LEADER_OR_FOLLOWER, OFFSET_OUT_OF_RANGE, UNKNOWN_LEADER_EPOCH,
};
use crate::storage::BatchHeader;

/// One partition of a consumer's Fetch (Kafka's `ReplicaId` -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerFetch {
    pub fetch_offset: i64,
    /// KIP-320's `CurrentLeaderEpoch`; -1 for clients that send none (any epoch).
    pub current_leader_epoch: LeaderEpoch,
    pub max_bytes: usize,
}

/// The leader's answer to a [`ConsumerFetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerRead {
    /// Refused before the log is looked at: this broker does not lead, or leads in
    /// another epoch than the consumer names (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,
    /// UNKNOWN_LEADER_EPOCH).
    Refused(i16),
    /// Read as the leader of `leader_epoch`. `error_code` is NONE, OFFSET_OUT_OF_RANGE (the
    /// fetch offset is below the log start or past the log end offset), or the storage
    /// error of a failed read; `records` are whole batches below `high_watermark` (empty on
    /// an error, or when the fetch offset is at the high watermark).
    Read {
        error_code: i16,
        high_watermark: i64,
        log_start_offset: i64,
        leader_epoch: LeaderEpoch,
        records: Bytes,
    },
}

impl ConsumerRead {
    /// Whether the answer must go out at once rather than wait for `MinBytes`.
    pub fn is_error(&self) -> bool {
        match self {
            ConsumerRead::Refused(_) => true,
            ConsumerRead::Read { error_code, .. } => *error_code != NONE,
        }
    }
}

impl Replica {
    /// KIP-320's check of a client's `CurrentLeaderEpoch` on a request only the leader
    /// serves (Fetch, ListOffsets, OffsetForLeaderEpoch): `None` if this broker leads in
    /// that epoch (or the client names none, -1), else the error the client acts on.
    pub fn leader_epoch_error(&self, current_leader_epoch: LeaderEpoch) -> Option<i16> {
        if !self.is_leader() {
            return Some(NOT_LEADER_OR_FOLLOWER);
        }
        if current_leader_epoch >= 0 {
            if current_leader_epoch < self.leader_epoch() {
                return Some(FENCED_LEADER_EPOCH);
            }
            if current_leader_epoch > self.leader_epoch() {
                return Some(UNKNOWN_LEADER_EPOCH);
            }
        }
        None
    }

    /// A consumer's read of this partition: the leader-epoch check, the out-of-range
    /// check, then the whole batches from the fetch offset that lie below the high
    /// watermark, at most about `max_bytes` (the log returns at least one whole batch).
    /// Reads never change the replica.
    pub fn read_for_consumer(&self, req: &ConsumerFetch) -> ConsumerRead {
        if let Some(code) = self.leader_epoch_error(req.current_leader_epoch) {
            return ConsumerRead::Refused(code);
        }
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log().log_start_offset();
        let answer = |error_code, records| ConsumerRead::Read {
            error_code,
            high_watermark,
            log_start_offset,
            leader_epoch: self.leader_epoch(),
            records,
        };
        if req.fetch_offset < log_start_offset || req.fetch_offset > self.log_end_offset() {
            return answer(OFFSET_OUT_OF_RANGE, Bytes::new());
        }
        if req.fetch_offset >= high_watermark {
            return answer(NONE, Bytes::new());
        }
        match self.log().read(req.fetch_offset, req.max_bytes) {
            Ok(bytes) => answer(NONE, whole_batches_below(bytes, high_watermark)),
            Err(e) => answer(e.kafka_error_code(), Bytes::new()),
        }
    }
}

/// The whole batches of `bytes` that end at or below `limit` (their next offset is at most
/// `limit`). Reads the batch headers only: the bytes came from this replica's own log,
/// validated when they were appended.
pub fn whole_batches_below(bytes: Bytes, limit: i64) -> Bytes {
    let mut end = 0usize;
    while let Some(h) = bytes.get(end..).and_then(BatchHeader::parse) {
        let size = h.size() as usize;
        if size == 0 || h.next_offset() > limit || end + size > bytes.len() {
            break;
        }
        end += size;
    }
    bytes.slice(..end)
}
