//! Partition replication: the replica state machine of one partition on one broker.
//!
//! This is the deterministic core, in the style of quinn-proto or raft-rs's `RawNode`: no
//! sockets, clocks or randomness inside. The driver passes requests, responses, metadata and
//! the current time (`now_ms`) in, and takes results and [`Effect`]s out. The only side
//! effect is on the replica's own [`crate::storage::PartitionLog`], mutated synchronously.
//!
//! Every step of the model (`osprey-model`'s `partition.rs`) has its counterpart here, under
//! the same name, so the two can be read side by side and the conformance suite can replay
//! model traces against it:
//!
//! | model step            | [`Replica`] method                                      |
//! |-----------------------|---------------------------------------------------------|
//! | `Produce`             | [`Replica::append_as_leader`]                           |
//! | `Fetch` (at leader)   | [`Replica::fetch_request`] → [`Replica::handle_fetch_from_follower`] |
//! | `HandleFetchResponse` | [`Replica::handle_fetch_response`]                      |
//! | `ProposeIsrShrink`    | [`Replica::propose_isr_shrink`] (or [`Replica::isr_changes_due`]) |
//! | `ProposeIsrExpand`    | [`Replica::propose_isr_expand`] (or [`Replica::isr_changes_due`]) |
//! | `AlterPartition` (leader's side) | [`Replica::handle_alter_partition_response`] |
//! | `BecomeLeader`        | [`Replica::become_leader`]                              |
//! | `BecomeFollower`      | [`Replica::become_follower`]                            |
//! | `Crash` / `Restart`   | [`Replica::crash`] / [`Replica::restart`]               |
//!
//! Modules, one job each:
//! * [`partition`] — [`Replica`], the role state and every transition;
//! * [`purgatory`] — [`ProducePurgatory`], acks=all produces waiting for the high watermark;
//! * [`producer_state`] — [`ProducerStateManager`], idempotent producers' epochs and last
//!   batches (KIP-98 duplicate detection and sequence checks).

pub mod partition;
pub mod producer_state;
pub mod purgatory;

pub use partition::{
    Acks, AlterPartitionProposal, AlterPartitionResponse, EpochEndOffset, FetchRequestPartition,
    FetchResponse, FetchResult, FollowerFetchOutcome, FollowerState, IsrMember, LeaderState,
    PartitionState, PendingIsr, ProduceOutcome, Replica, ReplicaConfig, Role,
};
pub use producer_state::{
    BatchMetadata, Check, ProducerBatch, ProducerIdBlock, ProducerStateEntry, ProducerStateError,
    ProducerStateManager, MAX_BATCHES_PER_PRODUCER, PRODUCER_ID_BLOCK_SIZE,
};
pub use purgatory::{DelayedProduce, ProduceCompletion, ProducePurgatory};

/// A Kafka broker (node) id.
pub type BrokerId = i32;
/// A leader epoch (KIP-101); -1 is "none".
pub type LeaderEpoch = i32;
/// "No broker" (Kafka's -1 leader id).
pub const NO_BROKER: BrokerId = -1;
/// "Unknown broker epoch" (Kafka's -1 in NewIsrWithEpochs and in Fetch's ReplicaEpoch).
pub const UNKNOWN_BROKER_EPOCH: i64 = -1;

/// Kafka's error codes, with Kafka's numbers, for the errors this layer produces.
pub mod error_codes {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// Not produced by this layer (see [`super::producer_state`], KIP-360); for the wire layer.
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const INVALID_UPDATE_VERSION: i16 = 95;
    pub const INVALID_RECORD: i16 = 87;
    pub const INELIGIBLE_REPLICA: i16 = 107;
}

/// What the replica asks its driver to do, drained with [`Replica::poll_effect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answer a produce request that was waiting in the purgatory.
    CompleteProduce(ProduceCompletion),
    /// Send this AlterPartition request to the controller (from [`Replica::handle_timeout`]).
    SendAlterPartition(AlterPartitionProposal),
}
