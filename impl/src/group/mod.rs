//! The classic consumer-group coordinator (Kafka's `group.protocol=classic`, the
//! JoinGroup/SyncGroup/Heartbeat/LeaveGroup protocol with client-side assignment) and its
//! storage in the `__consumer_offsets` topic.
//!
//! * [`coordinator`] — [`GroupCoordinator`], one per broker: a deterministic state machine
//!   for every group whose `__consumer_offsets` partition this broker leads. Requests in,
//!   responses and [`Effect`]s out; time is passed in, nothing here touches a socket,
//!   file, clock or random number.
//! * [`dispatch`] — [`GroupCoordinator::handle_request`]: one entry point taking the wire
//!   layer's `RequestKind` for every group API.
//! * [`state`] — the group and member bookkeeping and Kafka's group states (with the
//!   state diagram and where each transition is implemented).
//! * [`rebalance`] — the transitions themselves: prepare a rebalance, complete the join
//!   phase, remove a member, store and restore a group.
//! * [`offsets`] — OffsetCommit / OffsetFetch.
//! * [`codec`] — Osprey's own versioned binary encoding of the `__consumer_offsets`
//!   records (committed offsets and group metadata).
//!
//! Which broker coordinates a group is decided by [`partition_for`]: the group lives in
//! `__consumer_offsets` partition `abs(hash(group_id)) % offsets.topic.num.partitions`, and
//! the leader of that partition is its coordinator (FindCoordinator answers with it).
//!
//! Driving it (the node runtime's side):
//! 1. When this broker becomes leader of `__consumer_offsets` partition `p`:
//!    `begin_loading(p, leader_epoch)`, read the log to its end (a new leader's own high
//!    watermark may still be below commits the old leader acknowledged),
//!    `load_partition(p, leader_epoch, records, now)`.
//!    When it stops leading `p`: `unload_partition(p)`.
//! 2. Pass each request to `handle_request` (or the matching `handle_*` method) with a
//!    fresh request id; send a [`Reply::Now`] response at once.
//! 3. After every call, drain `poll_effect()`: send [`Effect::Respond`] responses to the
//!    connection that sent `request_id`; append [`Effect::AppendOffsets`] records to the
//!    partition and, for `Some(request_id)`, call `complete_append(request_id, error_code,
//!    now)` when the append is committed (error 0) or fails.
//! 4. Call `tick(now)` no later than `next_deadline()`.

pub mod codec;
pub mod coordinator;
pub mod dispatch;
pub mod offsets;
pub mod placement;
pub mod rebalance;
pub mod state;
pub mod types;

pub use coordinator::GroupCoordinator;
pub use placement::{java_string_hash, partition_for};
pub use state::{GroupState, GroupView, MemberView};
pub use types::{ClientInfo, CoordinatorConfig, Effect, GroupResponse, Reply};
