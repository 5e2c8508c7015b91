//! The types the group coordinator's parts share: what the driver is asked to do
//! ([`Effect`], [`GroupResponse`], [`Reply`]), the queue they wait in ([`Outbox`]) with
//! the appends they complete ([`PendingAppend`]), the coordinator's settings, and the
//! error a client gets for a failed `__consumer_offsets` append. Kept in one file so that
//! [`super::coordinator`], [`super::rebalance`] and [`super::offsets`] each import from here
//! and none from another.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use kafka_protocol::messages::{
    JoinGroupResponse, OffsetCommitResponse, ResponseKind, SyncGroupResponse,
};

use super::codec::OffsetValue;
use crate::error_codes::*;

/// What a client is told when its `__consumer_offsets` append failed with `code`:
/// Kafka's mapping, so clients retry where retrying helps and look for the new
/// coordinator when this broker lost leadership.
pub fn for_append_error(code: i16) -> i16 {
    match code {
        UNKNOWN_TOPIC_OR_PARTITION
        | NOT_ENOUGH_REPLICAS
        | NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | REQUEST_TIMED_OUT => COORDINATOR_NOT_AVAILABLE,
        NOT_LEADER_OR_FOLLOWER | KAFKA_STORAGE_ERROR => NOT_COORDINATOR,
        MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE => INVALID_COMMIT_OFFSET_SIZE,
        other => other,
    }
}

/// Marks a partition of a parked commit response whose code the append decides.
pub(crate) const AWAITING_APPEND: i16 = i16::MIN;

/// Sets every partition still awaiting its append to `code`.
pub(crate) fn fill_commit_codes(
    mut response: OffsetCommitResponse,
    code: i16,
) -> OffsetCommitResponse {
    for t in &mut response.topics {
        for p in &mut t.partitions {
            if p.error_code == AWAITING_APPEND {
                p.error_code = code;
            }
        }
    }
    response
}

/// Broker settings the coordinator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions` (Kafka default 50).
    pub offsets_partitions: i32,
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000): how long the first
    /// rebalance of an Empty group waits for more members, extended by each new member
    /// up to the rebalance timeout. 0 ends the join phase as soon as everyone joined.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` (Kafka default 6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout_ms: i32,
    /// `offset.metadata.max.bytes` (Kafka default 4096).
    pub max_metadata_bytes: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            offsets_partitions: 50,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_metadata_bytes: 4096,
        }
    }
}

/// Who sent a JoinGroup: the request header's client id and the peer address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The request header's `client_id` (empty when null).
    pub client_id: String,
    /// The peer address, as DescribeGroups reports it (Kafka writes `/ip`).
    pub client_host: String,
}

/// A response now, or later through [`Effect::Respond`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T> {
    /// The response.
    Now(T),
    /// The request is parked; its response will come out of `poll_effect`.
    Parked,
}

impl<T> Reply<T> {
    /// The immediate response, if any.
    pub fn now(self) -> Option<T> {
        match self {
            Reply::Now(r) => Some(r),
            Reply::Parked => None,
        }
    }
}

/// A deferred response.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupResponse {
    /// A parked JoinGroup's response.
    Join(JoinGroupResponse),
    /// A parked SyncGroup's response.
    Sync(SyncGroupResponse),
    /// A parked OffsetCommit's response.
    OffsetCommit(OffsetCommitResponse),
}

impl GroupResponse {
    /// As kafka-protocol's response enum, for the wire layer.
    pub fn into_response_kind(self) -> ResponseKind {
        match self {
            GroupResponse::Join(r) => ResponseKind::JoinGroup(r),
            GroupResponse::Sync(r) => ResponseKind::SyncGroup(r),
            GroupResponse::OffsetCommit(r) => ResponseKind::OffsetCommit(r),
        }
    }
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send `response` for the parked request `request_id`.
    Respond {
        /// The driver's id of the parked request.
        request_id: u64,
        /// Its response.
        response: GroupResponse,
    },
    /// Append `records` (key, value; see [`super::codec`]) to `__consumer_offsets`
    /// partition `partition` with acks=all. When `request_id` is `Some`, call
    /// [`GroupCoordinator::complete_append`] with it once the records are committed or
    /// the append failed; `None` marks a write no request waits for (a group emptied by a
    /// timer), whose outcome the coordinator does not need.
    AppendOffsets {
        /// The request waiting on the append.
        request_id: Option<u64>,
        /// The `__consumer_offsets` partition.
        partition: i32,
        /// The records, in order.
        records: Vec<(Bytes, Bytes)>,
    },
}

/// What a pending append completes.
#[derive(Debug, Clone)]
pub(crate) enum PendingAppend {
    /// An OffsetCommit: on success the offsets become visible and the response is sent.
    Commit {
        group: String,
        partition: i32,
        offsets: Vec<((String, i32), OffsetValue)>,
        /// The response with per-partition codes already decided (e.g. metadata too
        /// large); the appended partitions are filled in on completion.
        response: OffsetCommitResponse,
    },
    /// The leader's SyncGroup of `generation`.
    GroupSync { group: String, generation: i32 },
}

/// Effects and pending appends, kept apart from the groups so both can be borrowed.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub effects: VecDeque<Effect>,
    pub pending: BTreeMap<u64, PendingAppend>,
}

impl Outbox {
    pub(crate) fn respond(&mut self, request_id: u64, response: GroupResponse) {
        self.effects.push_back(Effect::Respond {
            request_id,
            response,
        });
    }
}
