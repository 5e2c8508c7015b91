//! The APIs and version ranges Osprey serves: one table, read by both the ApiVersions
//! response (what we advertise) and the request decoder (what we accept), so the two can
//! never disagree.
//!
//! Choosing ranges: every range must lie inside what kafka-protocol 0.18.0 can decode
//! (checked by a unit test), and must overlap what today's clients negotiate
//! (librdkafka 2.0–2.11, kafka-python 2.x/3.x, the Java client 3.x/4.x). Lower bounds
//! that differ from "0" are where kafka-protocol (generated from Kafka 4.1, which removed
//! them under KIP-896) no longer has the old versions. Notable choices:
//!
//! * Produce 3–9: v3 is the first version carrying v2 record batches (what every client
//!   sends); v10+ add KIP-951 leader hints and v12/v13 transaction/topic-id changes.
//! * Fetch 4–12: v12 is the last version addressing topics by name. v13+ address topics
//!   by id only, which needs a topic-id aware broker; clients that could use v13 fall back
//!   to v12 when we advertise 12.
//! * ApiVersions 0–3: a v4 request (Java 4.x) gets UNSUPPORTED_VERSION in v0 format plus
//!   this table, and the client retries with v3 (KIP-511 behaviour).
//! * AlterConfigs is not served (IncrementalAlterConfigs is); to serve it, add a row here
//!   and its request layout to `schema::LAYOUTS`.
//! * The classic group APIs (JoinGroup 0–7, SyncGroup 0–5, Heartbeat 0–4, LeaveGroup
//!   0–4, OffsetCommit 2–8, OffsetFetch 1–8, DescribeGroups 0–5, ListGroups 0–4) are
//!   served in full by `group::GroupCoordinator`, except static membership (KIP-345,
//!   `group.instance.id` on JoinGroup v5+), which is answered UNSUPPORTED_VERSION.
//! * AlterPartition, BrokerRegistration, BrokerHeartbeat are the inter-broker/controller
//!   APIs the broker uses; AlterPartition starts at 2 (kafka-protocol has no 0–1).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

/// One row of the served-API table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedApi {
    /// The API.
    pub key: ApiKey,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served.
    pub max: i16,
}

impl ServedApi {
    const fn new(key: ApiKey, min: i16, max: i16) -> Self {
        assert!(0 <= min && min <= max, "empty or negative version range");
        Self { key, min, max }
    }

    /// The row as a kafka-protocol [`VersionRange`].
    pub fn range(&self) -> VersionRange {
        VersionRange {
            min: self.min,
            max: self.max,
        }
    }

    /// Whether `version` is served.
    pub fn contains(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// Every API Osprey serves, with the versions it serves. Edit here, nowhere else.
pub const SERVED_APIS: &[ServedApi] = &[
    ServedApi::new(ApiKey::Produce, 3, 9),
    ServedApi::new(ApiKey::Fetch, 4, 12),
    ServedApi::new(ApiKey::ListOffsets, 1, 7),
    ServedApi::new(ApiKey::Metadata, 0, 12),
    ServedApi::new(ApiKey::OffsetCommit, 2, 8),
    ServedApi::new(ApiKey::OffsetFetch, 1, 8),
    ServedApi::new(ApiKey::FindCoordinator, 0, 4),
    ServedApi::new(ApiKey::JoinGroup, 0, 7),
    ServedApi::new(ApiKey::Heartbeat, 0, 4),
    ServedApi::new(ApiKey::LeaveGroup, 0, 4),
    ServedApi::new(ApiKey::SyncGroup, 0, 5),
    ServedApi::new(ApiKey::DescribeGroups, 0, 5),
    ServedApi::new(ApiKey::ListGroups, 0, 4),
    ServedApi::new(ApiKey::ApiVersions, 0, 3),
    ServedApi::new(ApiKey::CreateTopics, 2, 7),
    ServedApi::new(ApiKey::DeleteTopics, 1, 6),
    ServedApi::new(ApiKey::InitProducerId, 0, 4),
    ServedApi::new(ApiKey::OffsetForLeaderEpoch, 2, 4),
    ServedApi::new(ApiKey::DescribeConfigs, 1, 4),
    ServedApi::new(ApiKey::IncrementalAlterConfigs, 0, 1),
    ServedApi::new(ApiKey::CreatePartitions, 0, 3),
    ServedApi::new(ApiKey::DescribeCluster, 0, 1),
    // Inter-broker / controller APIs.
    ServedApi::new(ApiKey::AlterPartition, 2, 3),
    ServedApi::new(ApiKey::BrokerRegistration, 0, 3),
    ServedApi::new(ApiKey::BrokerHeartbeat, 0, 1),
    ServedApi::new(ApiKey::AllocateProducerIds, 0, 0),
    // KIP-858: a broker reports a replica whose log failed (assigned to DirectoryId.LOST).
    ServedApi::new(ApiKey::AssignReplicasToDirs, 0, 0),
    // The KRaft quorum (KIP-595), between controllers; DescribeQuorum for tools.
    ServedApi::new(ApiKey::Vote, 0, 2),
    ServedApi::new(ApiKey::BeginQuorumEpoch, 0, 0),
    ServedApi::new(ApiKey::EndQuorumEpoch, 0, 0),
    ServedApi::new(ApiKey::DescribeQuorum, 0, 1),
    // KIP-630: a follower or broker below the leader's log start fetches its snapshot.
    ServedApi::new(ApiKey::FetchSnapshot, 0, 0),
];

/// The served row for `key`, if the API is served at all.
pub fn served(key: ApiKey) -> Option<&'static ServedApi> {
    SERVED_APIS.iter().find(|api| api.key == key)
}

/// Whether `key` is served at `version`.
pub fn is_served(key: ApiKey, version: i16) -> bool {
    served(key).is_some_and(|api| api.contains(version))
}

/// The ApiVersions response body advertising [`SERVED_APIS`], with `error_code`.
///
/// Everything else is left at its default on purpose: kafka-protocol omits tagged
/// fields that hold their default value, and librdkafka before 2.1.2 (Debian's kcat uses
/// 2.0.2) mis-skips any tagged field it receives (it skips `len - 1` bytes), so a
/// SupportedFeatures/FinalizedFeatures/ZkMigrationReady value here would break it.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SERVED_APIS
                .iter()
                .map(|api| {
                    ApiVersion::default()
                        .with_api_key(api.key as i16)
                        .with_min_version(api.min)
                        .with_max_version(api.max)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_range_is_within_what_kafka_protocol_supports() {
        for api in SERVED_APIS {
            let crate_range = api.key.valid_versions();
            assert!(
                crate_range.min <= api.min && api.max <= crate_range.max,
                "{:?} {}..{} outside kafka-protocol's {}",
                api.key,
                api.min,
                api.max,
                crate_range
            );
        }
    }

    #[test]
    fn keys_are_unique_and_api_versions_is_served() {
        let keys: HashSet<i16> = SERVED_APIS.iter().map(|a| a.key as i16).collect();
        assert_eq!(keys.len(), SERVED_APIS.len());
        assert!(is_served(ApiKey::ApiVersions, 0));
        assert!(is_served(ApiKey::ApiVersions, 3));
        assert!(!is_served(ApiKey::ApiVersions, 4));
        assert!(served(ApiKey::SaslHandshake).is_none());
    }

    #[test]
    fn clients_get_the_versions_they_need() {
        // v2 record batches need Produce >= 3 and Fetch >= 4.
        assert_eq!(served(ApiKey::Produce).unwrap().min, 3);
        assert_eq!(served(ApiKey::Fetch).unwrap().min, 4);
        // Every served API must be reachable by some client: ranges are non-empty.
        for api in SERVED_APIS {
            assert!(api.min <= api.max);
        }
    }

    #[test]
    fn api_versions_response_mirrors_the_table_and_has_no_tagged_values() {
        let resp = api_versions_response(0);
        assert_eq!(resp.api_keys.len(), SERVED_APIS.len());
        for (entry, api) in resp.api_keys.iter().zip(SERVED_APIS) {
            assert_eq!(entry.api_key, api.key as i16);
            assert_eq!((entry.min_version, entry.max_version), (api.min, api.max));
            assert!(entry.unknown_tagged_fields.is_empty());
        }
        assert!(resp.supported_features.is_empty());
        assert!(resp.finalized_features.is_empty());
        assert_eq!(resp.finalized_features_epoch, -1);
        assert!(!resp.zk_migration_ready);
        assert_eq!(
            api_versions_response(crate::error_codes::UNSUPPORTED_VERSION).error_code,
            crate::error_codes::UNSUPPORTED_VERSION
        );
    }
}
