//! The controller's metadata records: every change to the cluster's metadata is one of these.
//!
//! They mirror KRaft's metadata records by name (`RegisterBrokerRecord`, `FenceBrokerRecord`,
//! `TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`, `RemoveTopicRecord`,
//! `ConfigRecord`, `ProducerIdsRecord`, ...) so that the later KRaft quorum can replicate them
//! as they are. They are serde-tagged JSON-friendly values, not Kafka's binary record format:
//! the quorum's log will carry them as its payload.

use serde::{Deserialize, Serialize};

use crate::replication::BrokerId;

/// A topic id (Kafka's `Uuid`), 16 bytes. Never all zeroes (Kafka's "no topic id").
pub type TopicId = [u8; 16];

/// Kafka's "no topic id" (`Uuid.ZERO_UUID`).
pub const ZERO_TOPIC_ID: TopicId = [0; 16];

/// Formats a topic id the way people read Uuids: 32 lowercase hex digits with dashes.
pub fn topic_id_string(id: &TopicId) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A log directory id (Kafka's `Uuid`, KIP-858): where a replica's log lives.
pub type DirectoryId = [u8; 16];

/// Kafka's `DirectoryId.UNASSIGNED` (`Uuid(0, 0)`): the replica's directory is not known;
/// it counts as online. Every replica starts here, and Osprey's brokers (one log
/// directory each) leave it there while the replica's log is healthy.
pub const DIRECTORY_UNASSIGNED: DirectoryId = [0; 16];

/// Kafka's `DirectoryId.LOST` (`Uuid(0, 1)`): the replica's log is offline. Such a replica
/// is an offline replica in Metadata, is in neither the ISR nor the ELR, and is never
/// elected, until its broker assigns it to a directory again.
pub const DIRECTORY_LOST: DirectoryId = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// One listener of a broker, as in `RegisterBrokerRecord.EndPoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id (0 = PLAINTEXT).
    pub security_protocol: i16,
}

/// Whether a partition's leader may serve: KIP-704's leader recovery state. An unclean
/// election starts a leader in `Recovering`; the leader's first accepted AlterPartition marks
/// it `Recovered`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderRecoveryState {
    #[default]
    Recovered,
    Recovering,
}

impl LeaderRecoveryState {
    /// Kafka's wire value (0 recovered, 1 recovering).
    pub fn as_i8(self) -> i8 {
        match self {
            LeaderRecoveryState::Recovered => 0,
            LeaderRecoveryState::Recovering => 1,
        }
    }

    /// From Kafka's wire value; `None` for anything else.
    pub fn from_i8(v: i8) -> Option<Self> {
        match v {
            0 => Some(LeaderRecoveryState::Recovered),
            1 => Some(LeaderRecoveryState::Recovering),
            _ => None,
        }
    }
}

/// What a `ConfigRecord` configures (Kafka's `ConfigResource.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResourceType {
    Topic,
    /// A broker; the resource name `""` is the cluster-wide default, as in Kafka.
    Broker,
}

/// One metadata record. Applying a sequence of them to an empty
/// [`MetadataImage`](super::image::MetadataImage) is the only way metadata changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker registered (or registered again). `broker_epoch` is the offset of this record,
    /// as in KRaft. A registered broker starts fenced.
    RegisterBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
        incarnation_id: String,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        fenced: bool,
    },
    /// A broker left the cluster (the UnregisterBroker API).
    UnregisterBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// A broker's session expired or it asked to be fenced: it may not lead or be in an ISR.
    FenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// A caught-up broker's heartbeat: it may lead and join ISRs again.
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    /// A topic was created.
    Topic { name: String, topic_id: TopicId },
    /// A partition was created (or fully replaced).
    Partition {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        /// Eligible leader replicas (KIP-966).
        elr: Vec<BrokerId>,
        /// -1 when the partition has no leader.
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        leader_recovery_state: LeaderRecoveryState,
        /// Each replica's log directory, in replica order (KIP-858's `Directories`); empty
        /// when every replica's is [`DIRECTORY_UNASSIGNED`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        directories: Vec<DirectoryId>,
    },
    /// A change to one partition. Fields left `None` are unchanged. Applying it bumps the
    /// partition epoch, and the leader epoch too when the leader changes.
    PartitionChange {
        topic_id: TopicId,
        partition: i32,
        isr: Option<Vec<BrokerId>>,
        elr: Option<Vec<BrokerId>>,
        /// `Some(-1)`: the partition goes offline.
        leader: Option<BrokerId>,
        leader_recovery_state: Option<LeaderRecoveryState>,
        /// Every replica's log directory, in replica order (KIP-858), when one changed: a
        /// replica assigned to [`DIRECTORY_LOST`] has an offline log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        directories: Option<Vec<DirectoryId>>,
    },
    /// A topic was deleted, with its partitions and configs.
    RemoveTopic { topic_id: TopicId },
    /// A config was set (`value: Some`) or deleted (`None`).
    Config {
        resource_type: ConfigResourceType,
        resource_name: String,
        name: String,
        value: Option<String>,
    },
    /// A block of producer ids was handed to `broker_id` (KIP-730): the next block starts at
    /// `next_producer_id_block_start`.
    ProducerIds {
        broker_id: BrokerId,
        broker_epoch: i64,
        next_producer_id_block_start: i64,
    },
    /// The quorum's LeaderChange control record (KIP-595): the first entry a new quorum
    /// leader appends, so that an entry of its epoch can commit. It changes no metadata.
    LeaderChange { leader_id: i32, leader_epoch: i32 },
    /// The first record of a snapshot file (KIP-630's `SnapshotHeaderRecord`): the id of
    /// the snapshot it opens. It changes no metadata.
    SnapshotHeader { end_offset: i64, epoch: i32 },
    /// The last record of a snapshot file (`SnapshotFooterRecord`): how many metadata
    /// records came between header and footer, so that a cut file is detected.
    SnapshotFooter { records: u64 },
}

impl MetadataRecord {
    /// KRaft's name for this record type.
    pub fn kraft_name(&self) -> &'static str {
        match self {
            MetadataRecord::RegisterBroker { .. } => "RegisterBrokerRecord",
            MetadataRecord::UnregisterBroker { .. } => "UnregisterBrokerRecord",
            MetadataRecord::FenceBroker { .. } => "FenceBrokerRecord",
            MetadataRecord::UnfenceBroker { .. } => "UnfenceBrokerRecord",
            MetadataRecord::Topic { .. } => "TopicRecord",
            MetadataRecord::Partition { .. } => "PartitionRecord",
            MetadataRecord::PartitionChange { .. } => "PartitionChangeRecord",
            MetadataRecord::RemoveTopic { .. } => "RemoveTopicRecord",
            MetadataRecord::Config { .. } => "ConfigRecord",
            MetadataRecord::ProducerIds { .. } => "ProducerIdsRecord",
            MetadataRecord::LeaderChange { .. } => "LeaderChangeMessage",
            MetadataRecord::SnapshotHeader { .. } => "SnapshotHeaderRecord",
            MetadataRecord::SnapshotFooter { .. } => "SnapshotFooterRecord",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<MetadataRecord> {
        let id = [7u8; 16];
        vec![
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                broker_epoch: 4,
                incarnation_id: "inc-1".into(),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9092,
                    security_protocol: 0,
                }],
                rack: Some("r1".into()),
                fenced: true,
            },
            MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                elr: vec![3],
                leader: 1,
                leader_epoch: 2,
                partition_epoch: 5,
                leader_recovery_state: LeaderRecoveryState::Recovered,
                directories: vec![DIRECTORY_UNASSIGNED, DIRECTORY_LOST, DIRECTORY_UNASSIGNED],
            },
            MetadataRecord::PartitionChange {
                topic_id: id,
                partition: 0,
                isr: Some(vec![1]),
                elr: None,
                leader: Some(-1),
                leader_recovery_state: Some(LeaderRecoveryState::Recovering),
                directories: Some(vec![DIRECTORY_LOST, DIRECTORY_UNASSIGNED, [9; 16]]),
            },
            MetadataRecord::RemoveTopic { topic_id: id },
            MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 4,
                next_producer_id_block_start: 2000,
            },
        ]
    }

    #[test]
    fn every_record_round_trips_through_json() {
        for rec in every_kind() {
            let json = serde_json::to_string(&rec).unwrap();
            let back: MetadataRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(back, rec, "{json}");
        }
    }

    #[test]
    fn records_are_tagged_with_their_kind() {
        let json = serde_json::to_value(MetadataRecord::FenceBroker {
            broker_id: 3,
            broker_epoch: 9,
        })
        .unwrap();
        assert_eq!(json["type"], "FenceBroker");
        assert_eq!(json["broker_id"], 3);
        assert_eq!(json["broker_epoch"], 9);
        let names: Vec<_> = every_kind().iter().map(|r| r.kraft_name()).collect();
        assert_eq!(names[0], "RegisterBrokerRecord");
        assert_eq!(names[6], "PartitionChangeRecord");
    }

    #[test]
    fn topic_ids_print_as_uuids() {
        let mut id = [0u8; 16];
        id[0] = 0xab;
        id[15] = 0x01;
        assert_eq!(topic_id_string(&id), "ab000000-0000-0000-0000-000000000001");
    }

    #[test]
    fn leader_recovery_state_uses_kafkas_numbers() {
        for s in [
            LeaderRecoveryState::Recovered,
            LeaderRecoveryState::Recovering,
        ] {
            assert_eq!(LeaderRecoveryState::from_i8(s.as_i8()), Some(s));
        }
        assert_eq!(LeaderRecoveryState::Recovering.as_i8(), 1);
        assert_eq!(LeaderRecoveryState::from_i8(2), None);
    }
}
