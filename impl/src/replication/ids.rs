//! The replication layer's names for Kafka's ids and epochs.

/// A Kafka broker (node) id.
pub type BrokerId = i32;
/// A leader epoch (KIP-101); -1 is "none".
pub type LeaderEpoch = i32;
/// "No broker" (Kafka's -1 leader id).
pub const NO_BROKER: BrokerId = -1;
/// "Unknown broker epoch" (Kafka's -1 in NewIsrWithEpochs and in Fetch's ReplicaEpoch).
pub const UNKNOWN_BROKER_EPOCH: i64 = -1;
