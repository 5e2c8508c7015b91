//! The KRaft messages of the quorum, Kafka's own from kafka-protocol, and the core's types:
//! requests the core sends (Vote, BeginQuorumEpoch, EndQuorumEpoch, a voter's Fetch) encoded,
//! answers the core reads decoded, and the Fetch answer filled from the core's decision.
//! Framing only: what a message means is the core's business ([`crate::quorum`]).

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, LeaderIdAndEpoch, PartitionData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::error_codes as codes;
use crate::node::metadata_log::{split_batches, METADATA_TOPIC};
use crate::quorum::{self, FetchAnswer, FetchResult, ReplicaId, Request, SnapshotId};

pub(super) fn metadata_topic() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

/// The partitions of the three quorum requests, for [`quorum_partition`].
pub(super) trait HasPartitionIndex {
    fn partition_index(&self) -> i32;
}

impl HasPartitionIndex for vote_request::PartitionData {
    fn partition_index(&self) -> i32 {
        self.partition_index
    }
}

impl HasPartitionIndex for begin_quorum_epoch_request::PartitionData {
    fn partition_index(&self) -> i32 {
        self.partition_index
    }
}

impl HasPartitionIndex for end_quorum_epoch_request::PartitionData {
    fn partition_index(&self) -> i32 {
        self.partition_index
    }
}

/// The single partition a quorum request must address: `__cluster_metadata-0`.
pub(super) fn quorum_partition<'a, P>(
    topics: impl IntoIterator<Item = (&'a TopicName, &'a [P])>,
) -> Result<&'a P, i16>
where
    P: 'a + HasPartitionIndex,
{
    let mut topics = topics.into_iter();
    let (Some((name, parts)), None) = (topics.next(), topics.next()) else {
        return Err(codes::INVALID_REQUEST);
    };
    match parts {
        [p] if name.0.as_str() == METADATA_TOPIC && p.partition_index() == 0 => Ok(p),
        _ => Err(codes::INVALID_REQUEST),
    }
}

/// A quorum request of the core as Kafka's message, with the API version it is sent at.
pub(super) fn encode_request(
    cluster_id: Option<StrBytes>,
    to: ReplicaId,
    request: Request,
) -> (i16, RequestKind) {
    match request {
        // Vote v2 carries KIP-996's PreVote and names the receiver (VoterId, v1+).
        Request::Vote(v) => (
            2,
            RequestKind::Vote(
                VoteRequest::default()
                    .with_cluster_id(cluster_id)
                    .with_voter_id(BrokerId(to))
                    .with_topics(vec![vote_request::TopicData::default()
                        .with_topic_name(metadata_topic())
                        .with_partitions(vec![vote_request::PartitionData::default()
                            .with_partition_index(0)
                            .with_replica_epoch(v.candidate_epoch)
                            .with_replica_id(BrokerId(v.candidate_id))
                            .with_last_offset_epoch(v.last_epoch)
                            .with_last_offset(v.end_offset)
                            .with_pre_vote(v.pre_vote)])]),
            ),
        ),
        Request::BeginQuorumEpoch(r) => (
            0,
            RequestKind::BeginQuorumEpoch(
                BeginQuorumEpochRequest::default()
                    .with_cluster_id(cluster_id)
                    .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
                        .with_topic_name(metadata_topic())
                        .with_partitions(vec![
                            begin_quorum_epoch_request::PartitionData::default()
                                .with_partition_index(0)
                                .with_leader_id(BrokerId(r.leader_id))
                                .with_leader_epoch(r.leader_epoch),
                        ])]),
            ),
        ),
        Request::EndQuorumEpoch(r) => (
            0,
            RequestKind::EndQuorumEpoch(
                EndQuorumEpochRequest::default()
                    .with_cluster_id(cluster_id)
                    .with_topics(vec![end_quorum_epoch_request::TopicData::default()
                        .with_topic_name(metadata_topic())
                        .with_partitions(vec![
                            end_quorum_epoch_request::PartitionData::default()
                                .with_partition_index(0)
                                .with_leader_id(BrokerId(r.leader_id))
                                .with_leader_epoch(r.leader_epoch),
                        ])]),
            ),
        ),
    }
}

/// A voter's Fetch of `__cluster_metadata-0` from the leader (`ReplicaId` = its voter id).
pub(super) fn fetch_request(
    id: ReplicaId,
    max_wait_ms: i32,
    req: &quorum::FetchRequest,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(metadata_topic())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(req.epoch)
                .with_fetch_offset(req.fetch_offset)
                .with_last_fetched_epoch(req.last_fetched_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(8 << 20)])])
}

/// Fills a Fetch answer's partition from the core's answer and the records read for it.
pub(super) fn fill_fetch_partition(
    pd: &mut PartitionData,
    answer: FetchAnswer,
    records: Result<Bytes, i16>,
) {
    match answer {
        FetchAnswer::Records {
            epoch,
            leader,
            high_watermark,
            ..
        } => {
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
            pd.high_watermark = high_watermark;
            pd.last_stable_offset = high_watermark;
            match records {
                Ok(bytes) => pd.records = Some(bytes),
                Err(code) => pd.error_code = code,
            }
        }
        FetchAnswer::DivergingEpoch {
            epoch,
            leader,
            high_watermark,
            diverging_epoch,
            end_offset,
        } => {
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
            pd.high_watermark = high_watermark;
            pd.diverging_epoch = EpochEndOffset::default()
                .with_epoch(diverging_epoch)
                .with_end_offset(end_offset);
        }
        FetchAnswer::Snapshot {
            epoch,
            leader,
            high_watermark,
            snapshot,
        } => {
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
            pd.high_watermark = high_watermark;
            pd.snapshot_id = fetch_response::SnapshotId::default()
                .with_end_offset(snapshot.end_offset)
                .with_epoch(snapshot.epoch);
        }
        FetchAnswer::Error {
            code,
            epoch,
            leader,
        } => {
            pd.error_code = code;
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                .with_leader_epoch(epoch);
        }
    }
}

/// A Vote response as the core reads it; `pre_vote` is what the request asked (the wire
/// does not echo it). A top-level error (INCONSISTENT_CLUSTER_ID) carries no answer.
pub(super) fn decode_vote_response(
    r: &VoteResponse,
    pre_vote: bool,
) -> Option<quorum::VoteResponse> {
    if r.error_code != 0 {
        return None;
    }
    let p = r.topics.first()?.partitions.first()?;
    Some(quorum::VoteResponse {
        pre_vote,
        error_code: p.error_code,
        epoch: p.leader_epoch,
        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
        vote_granted: p.vote_granted,
    })
}

/// A voter's Fetch response as the core reads it.
pub(super) fn decode_fetch_response(
    resp: FetchResponse,
    req: &quorum::FetchRequest,
) -> Option<quorum::FetchResponse> {
    let p = resp
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()?;
    let leader = (p.current_leader.leader_id.0 >= 0).then_some(p.current_leader.leader_id.0);
    let result = if p.error_code != 0 {
        FetchResult::Error(p.error_code)
    } else if p.snapshot_id.end_offset >= 0 {
        FetchResult::Snapshot(SnapshotId {
            end_offset: p.snapshot_id.end_offset,
            epoch: p.snapshot_id.epoch,
        })
    } else if p.diverging_epoch.end_offset >= 0 {
        FetchResult::DivergingEpoch {
            epoch: p.diverging_epoch.epoch,
            end_offset: p.diverging_epoch.end_offset,
        }
    } else {
        FetchResult::Records(p.records.as_ref().map(split_batches).unwrap_or_default())
    };
    Some(quorum::FetchResponse {
        fetch_offset: req.fetch_offset,
        last_fetched_epoch: req.last_fetched_epoch,
        epoch: p.current_leader.leader_epoch,
        leader,
        high_watermark: p.high_watermark,
        result,
    })
}

/// A BeginQuorumEpoch answer as the core reads it.
pub(super) fn decode_begin_quorum_epoch_response(
    r: &BeginQuorumEpochResponse,
) -> Option<quorum::EpochResponse> {
    let p = r.topics.first()?.partitions.first()?;
    Some(quorum::EpochResponse {
        error_code: p.error_code,
        epoch: p.leader_epoch,
        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
    })
}

/// An EndQuorumEpoch answer as the core reads it.
pub(super) fn decode_end_quorum_epoch_response(
    r: &EndQuorumEpochResponse,
) -> Option<quorum::EpochResponse> {
    let p = r.topics.first()?.partitions.first()?;
    Some(quorum::EpochResponse {
        error_code: p.error_code,
        epoch: p.leader_epoch,
        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
    })
}

/// The core's answer to a Vote as Kafka's response.
pub(super) fn vote_response(r: &quorum::VoteResponse) -> VoteResponse {
    VoteResponse::default().with_topics(vec![vote_response::TopicData::default()
        .with_topic_name(metadata_topic())
        .with_partitions(vec![vote_response::PartitionData::default()
            .with_partition_index(0)
            .with_error_code(r.error_code)
            .with_leader_id(BrokerId(r.leader.unwrap_or(-1)))
            .with_leader_epoch(r.epoch)
            .with_vote_granted(r.vote_granted)])])
}

/// The core's answer to a BeginQuorumEpoch as Kafka's response.
pub(super) fn begin_quorum_epoch_response(r: &quorum::EpochResponse) -> BeginQuorumEpochResponse {
    BeginQuorumEpochResponse::default().with_topics(vec![
        begin_quorum_epoch_response::TopicData::default()
            .with_topic_name(metadata_topic())
            .with_partitions(vec![begin_quorum_epoch_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(r.error_code)
                .with_leader_id(BrokerId(r.leader.unwrap_or(-1)))
                .with_leader_epoch(r.epoch)]),
    ])
}

/// The core's answer to an EndQuorumEpoch as Kafka's response.
pub(super) fn end_quorum_epoch_response(r: &quorum::EpochResponse) -> EndQuorumEpochResponse {
    EndQuorumEpochResponse::default().with_topics(vec![
        end_quorum_epoch_response::TopicData::default()
            .with_topic_name(metadata_topic())
            .with_partitions(vec![end_quorum_epoch_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(r.error_code)
                .with_leader_id(BrokerId(r.leader.unwrap_or(-1)))
                .with_leader_epoch(r.epoch)]),
    ])
}
