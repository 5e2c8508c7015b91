//! Kafka's error codes: the one table of them in the broker, as `i16` constants the
//! deterministic cores use without depending on wire types. The numbers come from
//! kafka-protocol's [`ResponseError`] (Kafka's `org.apache.kafka.common.protocol.Errors`),
//! so none is written by hand; the names are Kafka's. A comment says when Osprey answers
//! with a code where that is not obvious from its name.

use kafka_protocol::ResponseError as E;

/// No error.
pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = E::UnknownServerError.code();
/// A fetch offset below the log start or past the log end offset.
pub const OFFSET_OUT_OF_RANGE: i16 = E::OffsetOutOfRange.code();
/// A batch whose CRC or framing does not check.
pub const CORRUPT_MESSAGE: i16 = E::CorruptMessage.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = E::UnknownTopicOrPartition.code();
pub const LEADER_NOT_AVAILABLE: i16 = E::LeaderNotAvailable.code();
/// This replica is not the leader (or, for the quorum, knows none): retry on the leader it names.
pub const NOT_LEADER_OR_FOLLOWER: i16 = E::NotLeaderOrFollower.code();
/// An acks=all produce (or an offsets append) did not reach the high watermark in time.
pub const REQUEST_TIMED_OUT: i16 = E::RequestTimedOut.code();
pub const MESSAGE_TOO_LARGE: i16 = E::MessageTooLarge.code();
/// A commit's metadata string exceeds `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
/// The coordinator is still loading the group's `__consumer_offsets` partition.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = E::CoordinatorLoadInProgress.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
/// This broker does not lead the group's `__consumer_offsets` partition.
pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
pub const INVALID_TOPIC_EXCEPTION: i16 = E::InvalidTopicException.code();
pub const RECORD_LIST_TOO_LARGE: i16 = E::RecordListTooLarge.code();
/// The ISR is smaller than `min.insync.replicas`: the produce is refused before it is appended.
pub const NOT_ENOUGH_REPLICAS: i16 = E::NotEnoughReplicas.code();
/// The ISR shrank below `min.insync.replicas` after the produce was appended.
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = E::NotEnoughReplicasAfterAppend.code();
pub const INVALID_REQUIRED_ACKS: i16 = E::InvalidRequiredAcks.code();
/// The request's generation is not the group's.
pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
/// The member's protocol type or protocols do not fit the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
/// `session.timeout.ms` is outside the broker's allowed range.
pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
/// The group is rebalancing: rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
pub const INVALID_COMMIT_OFFSET_SIZE: i16 = E::InvalidCommitOffsetSize.code();
pub const INVALID_TIMESTAMP: i16 = E::InvalidTimestamp.code();
/// Also: static membership (`group.instance.id`), which Osprey does not support.
pub const UNSUPPORTED_VERSION: i16 = E::UnsupportedVersion.code();
/// This controller is not the active one.
pub const NOT_CONTROLLER: i16 = E::NotController.code();
/// A malformed request; for the quorum: a negative id or offset, a candidate's last log epoch not below its candidate epoch, a Vote from the receiver itself, a BeginQuorumEpoch/EndQuorumEpoch naming a leader the receiver knows is not the leader of that epoch, or another partition than `__cluster_metadata-0`.
pub const INVALID_REQUEST: i16 = E::InvalidRequest.code();
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = E::OutOfOrderSequenceNumber.code();
pub const INVALID_PRODUCER_EPOCH: i16 = E::InvalidProducerEpoch.code();
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = E::TransactionalIdAuthorizationFailed.code();
pub const KAFKA_STORAGE_ERROR: i16 = E::KafkaStorageError.code();
/// Not produced by the replication core (KIP-360); for the wire layer.
pub const UNKNOWN_PRODUCER_ID: i16 = E::UnknownProducerId.code();
/// The request's leader epoch is older than the receiver's.
pub const FENCED_LEADER_EPOCH: i16 = E::FencedLeaderEpoch.code();
/// The request's leader epoch is newer than the receiver's (for the quorum also: newer than it accepts while its leader is live).
pub const UNKNOWN_LEADER_EPOCH: i16 = E::UnknownLeaderEpoch.code();
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = E::UnsupportedCompressionType.code();
/// KIP-394: retry JoinGroup with the member id in this response.
pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
pub const INVALID_RECORD: i16 = E::InvalidRecord.code();
/// The sender, or the receiver itself, is not one of `controller.quorum.voters`.
pub const INCONSISTENT_VOTER_SET: i16 = E::InconsistentVoterSet.code();
/// AlterPartition with a stale partition epoch.
pub const INVALID_UPDATE_VERSION: i16 = E::InvalidUpdateVersion.code();
/// FetchSnapshot (KIP-630): the leader holds no snapshot with the requested id.
pub const SNAPSHOT_NOT_FOUND: i16 = E::SnapshotNotFound.code();
/// FetchSnapshot: the position is past the snapshot's size.
pub const POSITION_OUT_OF_RANGE: i16 = E::PositionOutOfRange.code();
pub const UNKNOWN_TOPIC_ID: i16 = E::UnknownTopicId.code();
/// The request names another cluster.
pub const INCONSISTENT_CLUSTER_ID: i16 = E::InconsistentClusterId.code();
/// AlterPartition proposing an ISR member that is fenced or shutting down (KIP-903).
pub const INELIGIBLE_REPLICA: i16 = E::IneligibleReplica.code();
/// A quorum request's `VoterId` is not the receiver.
pub const INVALID_VOTER_KEY: i16 = E::InvalidVoterKey.code();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_are_kafkas() {
        // A few codes clients act on, checked against the numbers Kafka documents.
        assert_eq!(NONE, 0);
        assert_eq!(UNKNOWN_SERVER_ERROR, -1);
        assert_eq!(OFFSET_OUT_OF_RANGE, 1);
        assert_eq!(NOT_LEADER_OR_FOLLOWER, 6);
        assert_eq!(NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20);
        assert_eq!(NOT_CONTROLLER, 41);
        assert_eq!(FENCED_LEADER_EPOCH, 74);
        assert_eq!(INELIGIBLE_REPLICA, 107);
        assert_eq!(INVALID_VOTER_KEY, 125);
    }
}
