//! Structural pre-validation of request bodies against Osprey's request layout table.
//!
//! Why this exists: kafka-protocol 0.18.0 decodes arrays with
//! `Vec::with_capacity(count)` where `count` is read straight off the wire
//! (`Array`/`CompactArray` in `protocol/types.rs`), *before* checking it against the bytes
//! left. Measured: a five-byte Metadata v0 body declaring 54 million topics makes it
//! reserve 3.9 GB before failing, and a four-byte body declaring `i32::MAX` topics asks for
//! 154 GB, which the allocator refuses, aborting the process (not a panic one could catch,
//! and catching would be the wrong design anyway). Upstream has open fixes
//! (kafka-protocol-rs PRs #152, #161, #200) but the pinned 0.18.0 has none.
//!
//! So every request body is first walked once against [`LAYOUTS`], Osprey's own table of
//! the field kinds each served request carries at each served version. The walk mirrors
//! the crate's decoder byte for byte — same varint quirks, same nullable-struct marker,
//! same tagged-field layout — and checks every declared length or count against the bytes
//! that remain, using the smallest possible encoding of one element (Kafka's own rule,
//! KAFKA-14063, tightened by that minimum). A body that passes is then decoded by
//! kafka-protocol along exactly the path that was checked, so its allocations are linear
//! in the frame size.
//!
//! This is a validator, not a decoder: it produces no message values. Every typed request
//! still comes from kafka-protocol. The table is checked against kafka-protocol by a
//! round-trip property test: random bodies generated from the table, for every served API
//! and version, must pass the walk, decode with kafka-protocol using every byte, and
//! re-encode to the same bytes. A layout that disagrees with the crate fails that test.

use kafka_protocol::messages::ApiKey;

/// Why a body does not match its schema (or could not be checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The body ends before a field does.
    #[error("body truncated at byte {at}: {needed} bytes needed, {remaining} remain")]
    Truncated {
        /// Offset in the body.
        at: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A length prefix below -1.
    #[error("invalid length {len} at byte {at}")]
    BadLength {
        /// Offset in the body.
        at: usize,
        /// The decoded length.
        len: i64,
    },
    /// An array count that the remaining bytes cannot possibly hold.
    #[error(
        "array {field} of {count} elements at byte {at} cannot fit in the {remaining} \
         remaining bytes (each element takes at least {min_element} bytes)"
    )]
    ArrayTooLong {
        /// The field's name in the layout table.
        field: &'static str,
        /// Offset in the body.
        at: usize,
        /// Declared element count.
        count: u64,
        /// Smallest wire size of one element.
        min_element: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A known tagged field whose value does not fill exactly its declared size.
    #[error(
        "tagged field {tag} ({field}) at byte {at} declares {size} bytes but its value uses \
         {used}"
    )]
    TaggedFieldSize {
        /// The field's name in the layout table.
        field: &'static str,
        /// Offset of the value.
        at: usize,
        /// The tag.
        tag: u32,
        /// Declared size.
        size: usize,
        /// Bytes the value actually took.
        used: usize,
    },
    /// No layout for this API key.
    #[error("no request layout for API key {0}")]
    NoSchema(i16),
    /// The version is outside the versions the layout describes.
    #[error("{name} has no version {version}")]
    UnknownVersion {
        /// Message name.
        name: &'static str,
        /// Requested version.
        version: i16,
    },
}

// ---------------------------------------------------------------------------------------
// The layout vocabulary.

/// An inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Versions {
    min: i16,
    max: i16,
}

impl Versions {
    fn contains(self, v: i16) -> bool {
        self.min <= v && v <= self.max
    }
}

/// Versions `min..=max`.
const fn v(min: i16, max: i16) -> Versions {
    Versions { min, max }
}

/// Versions `min` and later.
const fn from(min: i16) -> Versions {
    v(min, i16::MAX)
}

/// Every version.
const ALL: Versions = from(0);
/// No version.
const NEVER: Versions = v(1, 0);

/// What one field looks like on the wire.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Fixed width: bool/int8 (1), int16/uint16 (2), int32 (4), int64 (8), uuid (16).
    Fixed(usize),
    /// A string: i16 length, or uvarint length + 1 in flexible versions.
    String,
    /// Bytes or a record set: i32 length, or uvarint length + 1 in flexible versions.
    Bytes,
    /// An array: i32 count, or uvarint count + 1 in flexible versions.
    Array(&'static Kind),
    /// A nested struct (ending in a tagged-field section in flexible versions).
    Struct(&'static [Field]),
}

const BOOL: Kind = Kind::Fixed(1);
const I8: Kind = Kind::Fixed(1);
const I16: Kind = Kind::Fixed(2);
const U16: Kind = Kind::Fixed(2);
const I32: Kind = Kind::Fixed(4);
const I64: Kind = Kind::Fixed(8);
const UUID: Kind = Kind::Fixed(16);
const STR: Kind = Kind::String;
const BYTES: Kind = Kind::Bytes;
const RECORDS: Kind = Kind::Bytes;

/// One field of a struct.
#[derive(Debug, Clone, Copy)]
struct Field {
    /// For error messages.
    name: &'static str,
    kind: Kind,
    /// Versions in which the field is on the wire at all.
    versions: Versions,
    /// Versions in which a null (length -1, or the struct marker) is allowed.
    nullable: Versions,
    /// `Some(tag)`: carried in the tagged-field section rather than in line.
    tag: Option<u32>,
}

/// An in-line field present in `versions`.
const fn f(name: &'static str, kind: Kind, versions: Versions) -> Field {
    Field {
        name,
        kind,
        versions,
        nullable: NEVER,
        tag: None,
    }
}

/// A tagged field with tag `tag`, known in `versions`.
const fn tagged(name: &'static str, tag: u32, kind: Kind, versions: Versions) -> Field {
    Field {
        tag: Some(tag),
        ..f(name, kind, versions)
    }
}

impl Field {
    /// The same field, nullable in `versions`.
    const fn null(self, versions: Versions) -> Field {
        Field {
            nullable: versions,
            ..self
        }
    }
}

/// An array of `elem`.
const fn array(elem: &'static Kind) -> Kind {
    Kind::Array(elem)
}

/// The layout of one request message.
#[derive(Debug)]
pub struct RequestLayout {
    /// e.g. "MetadataRequest".
    pub name: &'static str,
    /// The API.
    pub api_key: ApiKey,
    /// Versions this layout describes (exactly the served range).
    valid: Versions,
    /// Versions using compact lengths and tagged-field sections.
    flexible: Versions,
    root: &'static [Field],
}

impl RequestLayout {
    /// The versions this layout describes, inclusive.
    pub fn valid_versions(&self) -> (i16, i16) {
        (self.valid.min, self.valid.max)
    }

    /// Whether `version` uses the flexible (compact + tagged fields) encoding.
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible.contains(version)
    }

    /// Walks `body` (the bytes after the request header) at `version`.
    ///
    /// Returns the number of bytes the message occupies; anything after that is ignored,
    /// as kafka-protocol (and Kafka) ignore it.
    pub fn validate(&self, version: i16, body: &[u8]) -> Result<usize, SchemaError> {
        if !self.valid.contains(version) {
            return Err(SchemaError::UnknownVersion {
                name: self.name,
                version,
            });
        }
        let ctx = Ctx {
            version,
            flexible: self.is_flexible(version),
        };
        let mut r = Reader::new(body);
        ctx.walk_struct(self.root, &mut r)?;
        Ok(r.pos)
    }
}

/// The layout of `api_key`'s request, if it is in the table.
pub fn request_layout(api_key: i16) -> Option<&'static RequestLayout> {
    LAYOUTS.iter().find(|l| l.api_key as i16 == api_key)
}

/// Validates a request body for `api_key` at `version`; see [`RequestLayout::validate`].
pub fn validate_request(api_key: i16, version: i16, body: &[u8]) -> Result<usize, SchemaError> {
    request_layout(api_key)
        .ok_or(SchemaError::NoSchema(api_key))?
        .validate(version, body)
}

// ---------------------------------------------------------------------------------------
// The table: one entry per served API, covering exactly its served versions.
//
// Field order is wire order. Version bounds are where kafka-protocol 0.18.0's decoder
// starts or stops reading a field; the round-trip test in `schema_tests.rs` fails if any
// entry disagrees with it.

macro_rules! layout {
    ($name:literal, $key:ident, $valid:expr, flexible: $flex:expr, $root:expr) => {
        RequestLayout {
            name: $name,
            api_key: ApiKey::$key,
            valid: $valid,
            flexible: $flex,
            root: $root,
        }
    };
}

/// Every served request's layout.
pub const LAYOUTS: &[RequestLayout] = &[
    layout!("ProduceRequest", Produce, v(3, 9), flexible: from(9), PRODUCE),
    layout!("FetchRequest", Fetch, v(4, 12), flexible: from(12), FETCH),
    layout!("ListOffsetsRequest", ListOffsets, v(1, 7), flexible: from(6), LIST_OFFSETS),
    layout!("MetadataRequest", Metadata, v(0, 12), flexible: from(9), METADATA),
    layout!("OffsetCommitRequest", OffsetCommit, v(2, 8), flexible: from(8), OFFSET_COMMIT),
    layout!("OffsetFetchRequest", OffsetFetch, v(1, 8), flexible: from(6), OFFSET_FETCH),
    layout!("FindCoordinatorRequest", FindCoordinator, v(0, 4), flexible: from(3), FIND_COORDINATOR),
    layout!("JoinGroupRequest", JoinGroup, v(0, 7), flexible: from(6), JOIN_GROUP),
    layout!("HeartbeatRequest", Heartbeat, v(0, 4), flexible: from(4), HEARTBEAT),
    layout!("LeaveGroupRequest", LeaveGroup, v(0, 4), flexible: from(4), LEAVE_GROUP),
    layout!("SyncGroupRequest", SyncGroup, v(0, 5), flexible: from(4), SYNC_GROUP),
    layout!("DescribeGroupsRequest", DescribeGroups, v(0, 5), flexible: from(5), DESCRIBE_GROUPS),
    layout!("ListGroupsRequest", ListGroups, v(0, 4), flexible: from(3), LIST_GROUPS),
    layout!("ApiVersionsRequest", ApiVersions, v(0, 3), flexible: from(3), API_VERSIONS),
    layout!("CreateTopicsRequest", CreateTopics, v(2, 7), flexible: from(5), CREATE_TOPICS),
    layout!("DeleteTopicsRequest", DeleteTopics, v(1, 6), flexible: from(4), DELETE_TOPICS),
    layout!("InitProducerIdRequest", InitProducerId, v(0, 4), flexible: from(2), INIT_PRODUCER_ID),
    layout!("OffsetForLeaderEpochRequest", OffsetForLeaderEpoch, v(2, 4), flexible: from(4), OFFSET_FOR_LEADER_EPOCH),
    layout!("DescribeConfigsRequest", DescribeConfigs, v(1, 4), flexible: from(4), DESCRIBE_CONFIGS),
    layout!("IncrementalAlterConfigsRequest", IncrementalAlterConfigs, v(0, 1), flexible: from(1), INCREMENTAL_ALTER_CONFIGS),
    layout!("CreatePartitionsRequest", CreatePartitions, v(0, 3), flexible: from(2), CREATE_PARTITIONS),
    layout!("DescribeClusterRequest", DescribeCluster, v(0, 1), flexible: ALL, DESCRIBE_CLUSTER),
    layout!("AlterPartitionRequest", AlterPartition, v(2, 3), flexible: ALL, ALTER_PARTITION),
    layout!("BrokerRegistrationRequest", BrokerRegistration, v(0, 3), flexible: ALL, BROKER_REGISTRATION),
    layout!("BrokerHeartbeatRequest", BrokerHeartbeat, v(0, 1), flexible: ALL, BROKER_HEARTBEAT),
    layout!("AllocateProducerIdsRequest", AllocateProducerIds, v(0, 0), flexible: ALL, ALLOCATE_PRODUCER_IDS),
    layout!("AssignReplicasToDirsRequest", AssignReplicasToDirs, v(0, 0), flexible: ALL, ASSIGN_REPLICAS_TO_DIRS),
    layout!("VoteRequest", Vote, v(0, 2), flexible: ALL, VOTE),
    layout!("BeginQuorumEpochRequest", BeginQuorumEpoch, v(0, 0), flexible: NEVER, BEGIN_QUORUM_EPOCH),
    layout!("EndQuorumEpochRequest", EndQuorumEpoch, v(0, 0), flexible: NEVER, END_QUORUM_EPOCH),
    layout!("DescribeQuorumRequest", DescribeQuorum, v(0, 1), flexible: ALL, DESCRIBE_QUORUM),
    layout!("FetchSnapshotRequest", FetchSnapshot, v(0, 0), flexible: ALL, FETCH_SNAPSHOT),
];

// Produce.
const PRODUCE: &[Field] = &[
    f("transactional_id", STR, ALL).null(ALL),
    f("acks", I16, ALL),
    f("timeout_ms", I32, ALL),
    f("topic_data", array(&Kind::Struct(PRODUCE_TOPIC)), ALL),
];
const PRODUCE_TOPIC: &[Field] = &[
    f("name", STR, v(0, 12)),
    f("topic_id", UUID, from(13)),
    f(
        "partition_data",
        array(&Kind::Struct(PRODUCE_PARTITION)),
        ALL,
    ),
];
const PRODUCE_PARTITION: &[Field] = &[f("index", I32, ALL), f("records", RECORDS, ALL).null(ALL)];

// Fetch.
const FETCH: &[Field] = &[
    tagged("cluster_id", 0, STR, from(12)).null(from(12)),
    f("replica_id", I32, v(0, 14)),
    tagged(
        "replica_state",
        1,
        Kind::Struct(FETCH_REPLICA_STATE),
        from(15),
    ),
    f("max_wait_ms", I32, ALL),
    f("min_bytes", I32, ALL),
    f("max_bytes", I32, from(3)),
    f("isolation_level", I8, from(4)),
    f("session_id", I32, from(7)),
    f("session_epoch", I32, from(7)),
    f("topics", array(&Kind::Struct(FETCH_TOPIC)), ALL),
    f(
        "forgotten_topics_data",
        array(&Kind::Struct(FETCH_FORGOTTEN)),
        from(7),
    ),
    f("rack_id", STR, from(11)),
];
const FETCH_REPLICA_STATE: &[Field] = &[
    f("replica_id", I32, from(15)),
    f("replica_epoch", I64, from(15)),
];
const FETCH_TOPIC: &[Field] = &[
    f("topic", STR, v(0, 12)),
    f("topic_id", UUID, from(13)),
    f("partitions", array(&Kind::Struct(FETCH_PARTITION)), ALL),
];
const FETCH_PARTITION: &[Field] = &[
    f("partition", I32, ALL),
    f("current_leader_epoch", I32, from(9)),
    f("fetch_offset", I64, ALL),
    f("last_fetched_epoch", I32, from(12)),
    f("log_start_offset", I64, from(5)),
    f("partition_max_bytes", I32, ALL),
    tagged("replica_directory_id", 0, UUID, from(17)),
    tagged("high_watermark", 1, I64, from(18)),
];
const FETCH_FORGOTTEN: &[Field] = &[
    f("topic", STR, v(7, 12)),
    f("topic_id", UUID, from(13)),
    f("partitions", array(&I32), from(7)),
];

// ListOffsets.
const LIST_OFFSETS: &[Field] = &[
    f("replica_id", I32, ALL),
    f("isolation_level", I8, from(2)),
    f("topics", array(&Kind::Struct(LIST_OFFSETS_TOPIC)), ALL),
    f("timeout_ms", I32, from(10)),
];
const LIST_OFFSETS_TOPIC: &[Field] = &[
    f("name", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(LIST_OFFSETS_PARTITION)),
        ALL,
    ),
];
const LIST_OFFSETS_PARTITION: &[Field] = &[
    f("partition_index", I32, ALL),
    f("current_leader_epoch", I32, from(4)),
    f("timestamp", I64, ALL),
];

// Metadata.
const METADATA: &[Field] = &[
    f("topics", array(&Kind::Struct(METADATA_TOPIC)), ALL).null(from(1)),
    f("allow_auto_topic_creation", BOOL, from(4)),
    f("include_cluster_authorized_operations", BOOL, v(8, 10)),
    f("include_topic_authorized_operations", BOOL, from(8)),
];
const METADATA_TOPIC: &[Field] = &[
    f("topic_id", UUID, from(10)),
    f("name", STR, ALL).null(from(10)),
];

// OffsetCommit.
const OFFSET_COMMIT: &[Field] = &[
    f("group_id", STR, ALL),
    f("generation_id_or_member_epoch", I32, ALL),
    f("member_id", STR, ALL),
    f("group_instance_id", STR, from(7)).null(from(7)),
    f("retention_time_ms", I64, v(2, 4)),
    f("topics", array(&Kind::Struct(OFFSET_COMMIT_TOPIC)), ALL),
];
const OFFSET_COMMIT_TOPIC: &[Field] = &[
    f("name", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(OFFSET_COMMIT_PARTITION)),
        ALL,
    ),
];
const OFFSET_COMMIT_PARTITION: &[Field] = &[
    f("partition_index", I32, ALL),
    f("committed_offset", I64, ALL),
    f("committed_leader_epoch", I32, from(6)),
    f("committed_metadata", STR, ALL).null(ALL),
];

// OffsetFetch: one group before v8, a list of groups from v8.
const OFFSET_FETCH: &[Field] = &[
    f("group_id", STR, v(0, 7)),
    f("topics", array(&Kind::Struct(OFFSET_FETCH_TOPIC)), v(0, 7)).null(from(2)),
    f("groups", array(&Kind::Struct(OFFSET_FETCH_GROUP)), from(8)),
    f("require_stable", BOOL, from(7)),
];
const OFFSET_FETCH_TOPIC: &[Field] = &[
    f("name", STR, v(0, 7)),
    f("partition_indexes", array(&I32), v(0, 7)),
];
const OFFSET_FETCH_GROUP: &[Field] = &[
    f("group_id", STR, from(8)),
    f("member_id", STR, from(9)).null(from(9)),
    f("member_epoch", I32, from(9)),
    f(
        "topics",
        array(&Kind::Struct(OFFSET_FETCH_GROUP_TOPIC)),
        from(8),
    )
    .null(from(8)),
];
const OFFSET_FETCH_GROUP_TOPIC: &[Field] = &[
    f("name", STR, from(8)),
    f("partition_indexes", array(&I32), from(8)),
];

// FindCoordinator.
const FIND_COORDINATOR: &[Field] = &[
    f("key", STR, v(0, 3)),
    f("key_type", I8, from(1)),
    f("coordinator_keys", array(&STR), from(4)),
];

// JoinGroup.
const JOIN_GROUP: &[Field] = &[
    f("group_id", STR, ALL),
    f("session_timeout_ms", I32, ALL),
    f("rebalance_timeout_ms", I32, from(1)),
    f("member_id", STR, ALL),
    f("group_instance_id", STR, from(5)).null(from(5)),
    f("protocol_type", STR, ALL),
    f("protocols", array(&Kind::Struct(JOIN_GROUP_PROTOCOL)), ALL),
    f("reason", STR, from(8)).null(from(8)),
];
const JOIN_GROUP_PROTOCOL: &[Field] = &[f("name", STR, ALL), f("metadata", BYTES, ALL)];

// Heartbeat.
const HEARTBEAT: &[Field] = &[
    f("group_id", STR, ALL),
    f("generation_id", I32, ALL),
    f("member_id", STR, ALL),
    f("group_instance_id", STR, from(3)).null(from(3)),
];

// LeaveGroup: one member before v3, a list of members from v3.
const LEAVE_GROUP: &[Field] = &[
    f("group_id", STR, ALL),
    f("member_id", STR, v(0, 2)),
    f("members", array(&Kind::Struct(LEAVE_GROUP_MEMBER)), from(3)),
];
const LEAVE_GROUP_MEMBER: &[Field] = &[
    f("member_id", STR, from(3)),
    f("group_instance_id", STR, from(3)).null(from(3)),
    f("reason", STR, from(5)).null(from(5)),
];

// SyncGroup.
const SYNC_GROUP: &[Field] = &[
    f("group_id", STR, ALL),
    f("generation_id", I32, ALL),
    f("member_id", STR, ALL),
    f("group_instance_id", STR, from(3)).null(from(3)),
    f("protocol_type", STR, from(5)).null(from(5)),
    f("protocol_name", STR, from(5)).null(from(5)),
    f(
        "assignments",
        array(&Kind::Struct(SYNC_GROUP_ASSIGNMENT)),
        ALL,
    ),
];
const SYNC_GROUP_ASSIGNMENT: &[Field] = &[f("member_id", STR, ALL), f("assignment", BYTES, ALL)];

// DescribeGroups.
const DESCRIBE_GROUPS: &[Field] = &[
    f("groups", array(&STR), ALL),
    f("include_authorized_operations", BOOL, from(3)),
];

// ListGroups.
const LIST_GROUPS: &[Field] = &[
    f("states_filter", array(&STR), from(4)),
    f("types_filter", array(&STR), from(5)),
];

// ApiVersions.
const API_VERSIONS: &[Field] = &[
    f("client_software_name", STR, from(3)),
    f("client_software_version", STR, from(3)),
];

// CreateTopics.
const CREATE_TOPICS: &[Field] = &[
    f("topics", array(&Kind::Struct(CREATE_TOPICS_TOPIC)), ALL),
    f("timeout_ms", I32, ALL),
    f("validate_only", BOOL, from(1)),
];
const CREATE_TOPICS_TOPIC: &[Field] = &[
    f("name", STR, ALL),
    f("num_partitions", I32, ALL),
    f("replication_factor", I16, ALL),
    f(
        "assignments",
        array(&Kind::Struct(CREATE_TOPICS_ASSIGNMENT)),
        ALL,
    ),
    f("configs", array(&Kind::Struct(CREATE_TOPICS_CONFIG)), ALL),
];
const CREATE_TOPICS_ASSIGNMENT: &[Field] = &[
    f("partition_index", I32, ALL),
    f("broker_ids", array(&I32), ALL),
];
const CREATE_TOPICS_CONFIG: &[Field] = &[f("name", STR, ALL), f("value", STR, ALL).null(ALL)];

// DeleteTopics: names before v6, name-or-id states from v6.
const DELETE_TOPICS: &[Field] = &[
    f("topics", array(&Kind::Struct(DELETE_TOPICS_STATE)), from(6)),
    f("topic_names", array(&STR), v(0, 5)),
    f("timeout_ms", I32, ALL),
];
const DELETE_TOPICS_STATE: &[Field] = &[
    f("name", STR, from(6)).null(from(6)),
    f("topic_id", UUID, from(6)),
];

// InitProducerId.
const INIT_PRODUCER_ID: &[Field] = &[
    f("transactional_id", STR, ALL).null(ALL),
    f("transaction_timeout_ms", I32, ALL),
    f("producer_id", I64, from(3)),
    f("producer_epoch", I16, from(3)),
];

// OffsetForLeaderEpoch.
const OFFSET_FOR_LEADER_EPOCH: &[Field] = &[
    f("replica_id", I32, from(3)),
    f("topics", array(&Kind::Struct(OFFSET_FOR_LEADER_TOPIC)), ALL),
];
const OFFSET_FOR_LEADER_TOPIC: &[Field] = &[
    f("topic", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(OFFSET_FOR_LEADER_PARTITION)),
        ALL,
    ),
];
const OFFSET_FOR_LEADER_PARTITION: &[Field] = &[
    f("partition", I32, ALL),
    f("current_leader_epoch", I32, from(2)),
    f("leader_epoch", I32, ALL),
];

// DescribeConfigs.
const DESCRIBE_CONFIGS: &[Field] = &[
    f(
        "resources",
        array(&Kind::Struct(DESCRIBE_CONFIGS_RESOURCE)),
        ALL,
    ),
    f("include_synonyms", BOOL, from(1)),
    f("include_documentation", BOOL, from(3)),
];
const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", I8, ALL),
    f("resource_name", STR, ALL),
    f("configuration_keys", array(&STR), ALL).null(ALL),
];

// IncrementalAlterConfigs.
const INCREMENTAL_ALTER_CONFIGS: &[Field] = &[
    f(
        "resources",
        array(&Kind::Struct(ALTER_CONFIGS_RESOURCE)),
        ALL,
    ),
    f("validate_only", BOOL, ALL),
];
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    f("resource_type", I8, ALL),
    f("resource_name", STR, ALL),
    f("configs", array(&Kind::Struct(ALTERABLE_CONFIG)), ALL),
];
const ALTERABLE_CONFIG: &[Field] = &[
    f("name", STR, ALL),
    f("config_operation", I8, ALL),
    f("value", STR, ALL).null(ALL),
];

// CreatePartitions.
const CREATE_PARTITIONS: &[Field] = &[
    f("topics", array(&Kind::Struct(CREATE_PARTITIONS_TOPIC)), ALL),
    f("timeout_ms", I32, ALL),
    f("validate_only", BOOL, ALL),
];
const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    f("name", STR, ALL),
    f("count", I32, ALL),
    f(
        "assignments",
        array(&Kind::Struct(CREATE_PARTITIONS_ASSIGNMENT)),
        ALL,
    )
    .null(ALL),
];
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[f("broker_ids", array(&I32), ALL)];

// DescribeCluster.
const DESCRIBE_CLUSTER: &[Field] = &[
    f("include_cluster_authorized_operations", BOOL, ALL),
    f("endpoint_type", I8, from(1)),
    f("include_fenced_brokers", BOOL, from(2)),
];

// AlterPartition (topics by id from v2; ISR with broker epochs from v3).
const ALTER_PARTITION: &[Field] = &[
    f("broker_id", I32, ALL),
    f("broker_epoch", I64, ALL),
    f("topics", array(&Kind::Struct(ALTER_PARTITION_TOPIC)), ALL),
];
const ALTER_PARTITION_TOPIC: &[Field] = &[
    f("topic_id", UUID, from(2)),
    f(
        "partitions",
        array(&Kind::Struct(ALTER_PARTITION_PARTITION)),
        ALL,
    ),
];
const ALTER_PARTITION_PARTITION: &[Field] = &[
    f("partition_index", I32, ALL),
    f("leader_epoch", I32, ALL),
    f("new_isr", array(&I32), v(0, 2)),
    f(
        "new_isr_with_epochs",
        array(&Kind::Struct(ALTER_PARTITION_BROKER)),
        from(3),
    ),
    f("leader_recovery_state", I8, from(1)),
    f("partition_epoch", I32, ALL),
];
const ALTER_PARTITION_BROKER: &[Field] = &[
    f("broker_id", I32, from(3)),
    f("broker_epoch", I64, from(3)),
];

// BrokerRegistration.
const BROKER_REGISTRATION: &[Field] = &[
    f("broker_id", I32, ALL),
    f("cluster_id", STR, ALL),
    f("incarnation_id", UUID, ALL),
    f("listeners", array(&Kind::Struct(BROKER_LISTENER)), ALL),
    f("features", array(&Kind::Struct(BROKER_FEATURE)), ALL),
    f("rack", STR, ALL).null(ALL),
    f("is_migrating_zk_broker", BOOL, from(1)),
    f("log_dirs", array(&UUID), from(2)),
    f("previous_broker_epoch", I64, from(3)),
];
const BROKER_LISTENER: &[Field] = &[
    f("name", STR, ALL),
    f("host", STR, ALL),
    f("port", U16, ALL),
    f("security_protocol", I16, ALL),
];
const BROKER_FEATURE: &[Field] = &[
    f("name", STR, ALL),
    f("min_supported_version", I16, ALL),
    f("max_supported_version", I16, ALL),
];

// BrokerHeartbeat.
const BROKER_HEARTBEAT: &[Field] = &[
    f("broker_id", I32, ALL),
    f("broker_epoch", I64, ALL),
    f("current_metadata_offset", I64, ALL),
    f("want_fence", BOOL, ALL),
    f("want_shut_down", BOOL, ALL),
    tagged("offline_log_dirs", 0, array(&UUID), from(1)),
];

// AllocateProducerIds (KIP-730).
const ALLOCATE_PRODUCER_IDS: &[Field] = &[f("broker_id", I32, ALL), f("broker_epoch", I64, ALL)];

// AssignReplicasToDirs (KIP-858).
const ASSIGN_REPLICAS_TO_DIRS: &[Field] = &[
    f("broker_id", I32, ALL),
    f("broker_epoch", I64, ALL),
    f(
        "directories",
        array(&Kind::Struct(ASSIGN_REPLICAS_DIRECTORY)),
        ALL,
    ),
];
const ASSIGN_REPLICAS_DIRECTORY: &[Field] = &[
    f("id", UUID, ALL),
    f("topics", array(&Kind::Struct(ASSIGN_REPLICAS_TOPIC)), ALL),
];
const ASSIGN_REPLICAS_TOPIC: &[Field] = &[
    f("topic_id", UUID, ALL),
    f(
        "partitions",
        array(&Kind::Struct(ASSIGN_REPLICAS_PARTITION)),
        ALL,
    ),
];
const ASSIGN_REPLICAS_PARTITION: &[Field] = &[f("partition_index", I32, ALL)];

// The KRaft quorum (KIP-595), version 0 only.
const VOTE: &[Field] = &[
    f("cluster_id", STR, ALL).null(ALL),
    f("voter_id", I32, from(1)),
    f("topics", array(&Kind::Struct(VOTE_TOPIC)), ALL),
];
const VOTE_TOPIC: &[Field] = &[
    f("topic_name", STR, ALL),
    f("partitions", array(&Kind::Struct(VOTE_PARTITION)), ALL),
];
const VOTE_PARTITION: &[Field] = &[
    f("partition_index", I32, ALL),
    f("replica_epoch", I32, ALL),
    f("replica_id", I32, ALL),
    f("replica_directory_id", UUID, from(1)),
    f("voter_directory_id", UUID, from(1)),
    f("last_offset_epoch", I32, ALL),
    f("last_offset", I64, ALL),
    f("pre_vote", BOOL, from(2)),
];
const BEGIN_QUORUM_EPOCH: &[Field] = &[
    f("cluster_id", STR, ALL).null(ALL),
    f(
        "topics",
        array(&Kind::Struct(BEGIN_QUORUM_EPOCH_TOPIC)),
        ALL,
    ),
];
const BEGIN_QUORUM_EPOCH_TOPIC: &[Field] = &[
    f("topic_name", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(BEGIN_QUORUM_EPOCH_PARTITION)),
        ALL,
    ),
];
const BEGIN_QUORUM_EPOCH_PARTITION: &[Field] = &[
    f("partition_index", I32, ALL),
    f("leader_id", I32, ALL),
    f("leader_epoch", I32, ALL),
];
const END_QUORUM_EPOCH: &[Field] = &[
    f("cluster_id", STR, ALL).null(ALL),
    f("topics", array(&Kind::Struct(END_QUORUM_EPOCH_TOPIC)), ALL),
];
const END_QUORUM_EPOCH_TOPIC: &[Field] = &[
    f("topic_name", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(END_QUORUM_EPOCH_PARTITION)),
        ALL,
    ),
];
const END_QUORUM_EPOCH_PARTITION: &[Field] = &[
    f("partition_index", I32, ALL),
    f("leader_id", I32, ALL),
    f("leader_epoch", I32, ALL),
    f("preferred_successors", array(&I32), ALL),
];
const DESCRIBE_QUORUM: &[Field] = &[f(
    "topics",
    array(&Kind::Struct(DESCRIBE_QUORUM_TOPIC)),
    ALL,
)];
const DESCRIBE_QUORUM_TOPIC: &[Field] = &[
    f("topic_name", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(DESCRIBE_QUORUM_PARTITION)),
        ALL,
    ),
];
const DESCRIBE_QUORUM_PARTITION: &[Field] = &[f("partition_index", I32, ALL)];
// FetchSnapshot (KIP-630).
const FETCH_SNAPSHOT: &[Field] = &[
    tagged("cluster_id", 0, STR, ALL).null(ALL),
    f("replica_id", I32, ALL),
    f("max_bytes", I32, ALL),
    f("topics", array(&Kind::Struct(FETCH_SNAPSHOT_TOPIC)), ALL),
];
const FETCH_SNAPSHOT_TOPIC: &[Field] = &[
    f("name", STR, ALL),
    f(
        "partitions",
        array(&Kind::Struct(FETCH_SNAPSHOT_PARTITION)),
        ALL,
    ),
];
const FETCH_SNAPSHOT_PARTITION: &[Field] = &[
    f("partition", I32, ALL),
    f("current_leader_epoch", I32, ALL),
    f("snapshot_id", Kind::Struct(FETCH_SNAPSHOT_ID), ALL),
    f("position", I64, ALL),
    tagged("replica_directory_id", 0, UUID, from(1)),
];
const FETCH_SNAPSHOT_ID: &[Field] = &[f("end_offset", I64, ALL), f("epoch", I32, ALL)];

// ---------------------------------------------------------------------------------------
// Walking bytes.

/// A cursor over the body; `end` lets tagged-field values be walked inside their
/// declared size.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SchemaError> {
        if n > self.remaining() {
            return Err(SchemaError::Truncated {
                at: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i8(&mut self) -> Result<i8, SchemaError> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> Result<i16, SchemaError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, SchemaError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Unsigned varint exactly as kafka-protocol 0.18.0 reads it: at most five bytes,
    /// bits beyond 32 silently dropped, and a fifth byte with the continuation bit set
    /// still ends the number.
    fn uvarint(&mut self) -> Result<u32, SchemaError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0] as u32;
            value |= (b & 0x7f).wrapping_shl(i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }
}

#[derive(Clone, Copy)]
struct Ctx {
    version: i16,
    flexible: bool,
}

impl Ctx {
    fn walk_struct(self, spec: &[Field], r: &mut Reader<'_>) -> Result<(), SchemaError> {
        let v = self.version;
        for f in spec {
            if f.versions.contains(v) && f.tag.is_none() {
                self.walk_value(f.name, &f.kind, f.nullable.contains(v), r)?;
            }
        }
        if !self.flexible {
            return Ok(());
        }
        let count = r.uvarint()?;
        for _ in 0..count {
            let tag = r.uvarint()?;
            let size = r.uvarint()? as usize;
            let at = r.pos;
            r.take(size)?;
            let known = spec
                .iter()
                .find(|f| f.tag == Some(tag) && f.versions.contains(v));
            if let Some(f) = known {
                // kafka-protocol decodes a known tag's value from the stream without
                // limiting it to `size`; insisting the value fills `size` exactly keeps
                // its path identical to ours.
                let mut sub = Reader {
                    buf: r.buf,
                    pos: at,
                    end: at + size,
                };
                self.walk_value(f.name, &f.kind, f.nullable.contains(v), &mut sub)?;
                if sub.pos != at + size {
                    return Err(SchemaError::TaggedFieldSize {
                        field: f.name,
                        at,
                        tag,
                        size,
                        used: sub.pos - at,
                    });
                }
            }
        }
        Ok(())
    }

    fn walk_value(
        self,
        name: &'static str,
        kind: &Kind,
        nullable: bool,
        r: &mut Reader<'_>,
    ) -> Result<(), SchemaError> {
        match kind {
            Kind::Fixed(n) => r.take(*n).map(drop),
            Kind::String | Kind::Bytes => {
                if let Some(len) = self.length(kind, r)? {
                    r.take(len)?;
                }
                Ok(())
            }
            Kind::Array(elem) => {
                let at = r.pos;
                let Some(count) = self.length(kind, r)? else {
                    return Ok(());
                };
                let min_element = self.min_size(elem, false).max(1);
                if (count as u64).saturating_mul(min_element as u64) > r.remaining() as u64 {
                    return Err(SchemaError::ArrayTooLong {
                        field: name,
                        at,
                        count: count as u64,
                        min_element,
                        remaining: r.remaining(),
                    });
                }
                for _ in 0..count {
                    self.walk_value(name, elem, false, r)?;
                }
                Ok(())
            }
            Kind::Struct(spec) => {
                // kafka-protocol's OptionStruct: an i8 marker, value present iff it is 1.
                if nullable && r.i8()? != 1 {
                    return Ok(());
                }
                self.walk_struct(spec, r)
            }
        }
    }

    /// Reads a string/bytes/array length prefix; `None` means null.
    fn length(self, kind: &Kind, r: &mut Reader<'_>) -> Result<Option<usize>, SchemaError> {
        let at = r.pos;
        let len: i64 = if self.flexible {
            i64::from(r.uvarint()?) - 1
        } else if matches!(kind, Kind::String) {
            i64::from(r.i16()?)
        } else {
            i64::from(r.i32()?)
        };
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(SchemaError::BadLength { at, len: n }),
            n => Ok(Some(n as usize)),
        }
    }

    /// The fewest bytes a value of `kind` can occupy at this version.
    fn min_size(self, kind: &Kind, nullable: bool) -> usize {
        let prefix = |wide: usize| if self.flexible { 1 } else { wide };
        match kind {
            Kind::Fixed(n) => *n,
            Kind::String => prefix(2),
            Kind::Bytes | Kind::Array(_) => prefix(4),
            Kind::Struct(_) if nullable => 1,
            Kind::Struct(spec) => {
                let v = self.version;
                let fields: usize = spec
                    .iter()
                    .filter(|f| f.versions.contains(v) && f.tag.is_none())
                    .map(|f| self.min_size(&f.kind, f.nullable.contains(v)))
                    .sum();
                fields + usize::from(self.flexible)
            }
        }
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
