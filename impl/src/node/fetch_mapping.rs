//! Kafka's Fetch and the replication core's fetch types, converted both ways in one place:
//! what the core decides ([`Replica::read_for_consumer`],
//! [`Replica::handle_fetch_from_follower`], [`Replica::handle_fetch_response`]) is here
//! only carried to and from kafka-protocol's messages, for the leader answering a Fetch
//! ([`super::broker_api`]) and for a follower's fetcher ([`super::broker_runtime`]).
//!
//! [`Replica::read_for_consumer`]: crate::replication::Replica::read_for_consumer
//! [`Replica::handle_fetch_from_follower`]: crate::replication::Replica::handle_fetch_from_follower
//! [`Replica::handle_fetch_response`]: crate::replication::Replica::handle_fetch_response

use std::collections::BTreeMap;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, LeaderIdAndEpoch, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::partitions::TopicPartition;
use crate::replication::{
    self, ConsumerFetch, ConsumerRead, FetchRequestPartition, FetchResponse, FetchResult,
};

// -----------------------------------------------------------------------------------------
// The leader's side: a Fetch request's partition in, the response's partition out.

/// A response partition before the core has answered: every field at Kafka's "unknown".
pub fn unanswered_partition(partition: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_diverging_epoch(EpochEndOffset::default().with_epoch(-1).with_end_offset(-1))
        .with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(-1))
                .with_leader_epoch(-1),
        )
        .with_preferred_read_replica(BrokerId(-1))
}

/// A follower's fetch of one partition as the core reads it.
pub fn follower_fetch(
    p: &FetchPartition,
    replica_id: i32,
    replica_broker_epoch: i64,
    max_bytes: usize,
) -> FetchRequestPartition {
    FetchRequestPartition {
        replica_id,
        replica_broker_epoch,
        fetch_offset: p.fetch_offset,
        last_fetched_epoch: (p.last_fetched_epoch >= 0).then_some(p.last_fetched_epoch),
        current_leader_epoch: p.current_leader_epoch,
        max_bytes,
    }
}

/// Fills `pd` with the core's answer to a follower. Returns whether the answer must go out
/// at once (an error, or a diverging epoch the follower must truncate to).
pub fn answer_follower(pd: &mut PartitionData, result: FetchResult) -> bool {
    pd.error_code = result.error_code;
    pd.high_watermark = result.high_watermark;
    pd.last_stable_offset = result.high_watermark;
    let mut urgent = result.error_code != 0;
    if let Some(d) = result.diverging_epoch {
        pd.diverging_epoch.epoch = d.epoch;
        pd.diverging_epoch.end_offset = d.end_offset;
        urgent = true;
    }
    pd.records = Some(result.records);
    urgent
}

/// A consumer's fetch of one partition as the core reads it.
pub fn consumer_fetch(p: &FetchPartition, max_bytes: usize) -> ConsumerFetch {
    ConsumerFetch {
        fetch_offset: p.fetch_offset,
        current_leader_epoch: p.current_leader_epoch,
        max_bytes,
    }
}

/// Fills `pd` with the core's answer to a consumer, in the fields Fetch `version` has
/// (LogStartOffset from v5, CurrentLeader from v12; `leader_id` is this broker). Returns
/// whether the answer must go out at once (an error).
pub fn answer_consumer(
    pd: &mut PartitionData,
    read: ConsumerRead,
    version: i16,
    leader_id: i32,
) -> bool {
    let urgent = read.is_error();
    match read {
        ConsumerRead::Refused(code) => pd.error_code = code,
        ConsumerRead::Read {
            error_code,
            high_watermark,
            log_start_offset,
            leader_epoch,
            records,
        } => {
            pd.high_watermark = high_watermark;
            pd.last_stable_offset = high_watermark;
            if version >= 5 {
                pd.log_start_offset = log_start_offset;
            }
            if version >= 12 {
                pd.current_leader.leader_id = BrokerId(leader_id);
                pd.current_leader.leader_epoch = leader_epoch;
            }
            pd.error_code = error_code;
            if error_code == 0 {
                pd.records = Some(records);
            }
        }
    }
    urgent
}

// -----------------------------------------------------------------------------------------
// The follower's side: the core's requests out, the leader's partitions back in.

/// One Fetch to a leader carrying the core's request for each of `parts`, grouped by topic.
pub fn follower_fetch_request(
    me: i32,
    max_wait_ms: i32,
    max_bytes: usize,
    parts: &[(TopicPartition, FetchRequestPartition)],
) -> FetchRequest {
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, req) in parts {
        by_topic.entry(&tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(req.current_leader_epoch)
                .with_fetch_offset(req.fetch_offset)
                .with_last_fetched_epoch(req.last_fetched_epoch.unwrap_or(-1))
                .with_log_start_offset(-1)
                .with_partition_max_bytes(req.max_bytes as i32),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes((max_bytes * 8).min(i32::MAX as usize) as i32)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        )
}

/// The leader's answer for one partition, as the follower's core reads it: tied to the
/// leader and epoch the request `req` went to and the offset it asked for.
pub fn follower_fetch_response(
    leader: i32,
    req: &FetchRequestPartition,
    p: PartitionData,
) -> FetchResponse {
    let diverging = (p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0).then_some(
        replication::EpochEndOffset {
            epoch: p.diverging_epoch.epoch,
            end_offset: p.diverging_epoch.end_offset,
        },
    );
    FetchResponse {
        leader,
        leader_epoch: req.current_leader_epoch,
        fetch_offset: req.fetch_offset,
        result: FetchResult {
            error_code: p.error_code,
            high_watermark: p.high_watermark,
            diverging_epoch: diverging,
            records: p.records.unwrap_or_default(),
        },
    }
}
