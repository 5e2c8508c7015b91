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
//! * [`consumer_read`] — the consumer read rule ([`Replica::read_for_consumer`]): the
//!   leader-epoch check, the out-of-range check, whole batches below the high watermark;
//! * [`purgatory`] — [`ProducePurgatory`], acks=all produces waiting for the high watermark;
//! * [`producer_state`] — [`ProducerStateManager`], idempotent producers' epochs and last
//!   batches (KIP-98 duplicate detection and sequence checks).

pub mod consumer_read;
pub mod ids;
pub mod partition;
pub mod producer_state;
pub mod purgatory;

pub use consumer_read::{ConsumerFetch, ConsumerRead};
pub use ids::{BrokerId, LeaderEpoch, NO_BROKER, UNKNOWN_BROKER_EPOCH};
pub use partition::{
    Acks, AlterPartitionProposal, AlterPartitionResponse, Effect, EpochEndOffset,
    FetchRequestPartition, FetchResponse, FetchResult, FollowerFetchOutcome, FollowerState,
    IsrMember, LeaderState, PartitionRegistration, PendingIsr, ProduceOutcome, Replica,
    ReplicaConfig, Role,
};
pub use producer_state::{
    BatchMetadata, Check, ProducerBatch, ProducerIdBlock, ProducerStateEntry, ProducerStateError,
    ProducerStateManager, MAX_BATCHES_PER_PRODUCER, PRODUCER_ID_BLOCK_SIZE,
};
pub use purgatory::{DelayedProduce, ProduceCompletion, ProducePurgatory};
