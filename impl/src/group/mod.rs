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
pub mod rebalance;
pub mod state;

pub use coordinator::{
    ClientInfo, CoordinatorConfig, Effect, GroupCoordinator, GroupResponse, Reply,
};
pub use state::{GroupState, GroupView, MemberView};

/// Java's `String.hashCode` over `s`: `s[0]*31^(n-1) + ... + s[n-1]` in wrapping 32-bit
/// arithmetic, where `s[i]` are the UTF-16 code units (so a character outside the BMP
/// contributes its two surrogates). Kafka places groups with this hash, so Osprey must
/// compute it bit for bit to agree with Java clients and tools about coordinators.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that stores `group_id`:
/// `Utils.abs(groupId.hashCode) % num_partitions`, where Kafka's `Utils.abs` is
/// `x & 0x7fffffff` (so `i32::MIN` maps to 0 rather than staying negative as
/// `Math.abs` would). `num_partitions` is `offsets.topic.num.partitions` (default 50);
/// a non-positive count is treated as 1.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    (java_string_hash(group_id) & 0x7fff_ffff) % num_partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_hand_computed_values() {
        // h("") = 0; h("a") = 97; h("ab") = 97*31 + 98; h("abc") = 3105*31 + 99.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 3105);
        assert_eq!(java_string_hash("abc"), 96_354);
        // U+1F600 is the surrogate pair 0xD83D 0xDE00: 55357*31 + 56832.
        assert_eq!(java_string_hash("\u{1F600}"), 1_772_899);
        // "group1" = g r o u p 1 = 103 114 111 117 112 49:
        // 103*31+114 = 3307; *31+111 = 102628; *31+117 = 3181585; *31+112 = 98629247;
        // *31+49 = 3057506706, which as i32 is 3057506706 - 2^32 = -1237460590.
        assert_eq!(java_string_hash("group1"), -1_237_460_590);
        // The classic string whose hashCode is Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partition_uses_kafka_abs_semantics() {
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("abc", 50), 96_354 % 50);
        // -1237460590 & 0x7fffffff = 910023058; % 50 = 8.
        assert_eq!(partition_for("group1", 50), 8);
        // Math.abs(MIN_VALUE) would stay negative; Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(partition_for("anything", 0), 0);
    }
}
