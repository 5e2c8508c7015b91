//! Turning a frame body into (`RequestHeader`, typed request) with kafka-protocol.
//!
//! Order of checks, each before any work that depends on it:
//! 1. the fixed header prefix (api key, api version, correlation id) is present;
//! 2. the api key is one kafka-protocol knows (unknown → close, as Kafka does);
//! 3. the request header, at the header version the crate derives from key + version;
//! 4. the version is in [`SERVED_APIS`](super::versions::SERVED_APIS) — except that an
//!    unsupported ApiVersions version is not an error: Kafka answers it (see
//!    [`Decoded::UnsupportedApiVersions`]);
//! 5. the body passes the schema walk ([`super::schema`]), which rules out the
//!    untrusted-count allocations kafka-protocol 0.18.0 would otherwise make;
//! 6. kafka-protocol decodes the body.
//!
//! kafka-protocol's own `decode_request_header_from_buffer` slices the first four bytes
//! without a length check (it panics on shorter input), so step 1 is done here.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::schema::{self, SchemaError};
use super::versions;

/// Bytes of the header prefix every request header version starts with.
const HEADER_PREFIX: usize = 8;

/// A successfully decoded frame.
// Almost every frame is a `Request`, moved once into its handler task; boxing the body to
// shrink the rare variant would only add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A served request.
    Request {
        /// The request header.
        header: RequestHeader,
        /// The typed body, decoded at `header.request_api_version`.
        body: RequestKind,
    },
    /// An ApiVersions request at a version we do not serve. Kafka does not close the
    /// connection for this: it answers UNSUPPORTED_VERSION in the v0 response format
    /// with the versions it does serve, and the client retries with one of those. The
    /// body is not decoded (it may be a format from the future).
    UnsupportedApiVersions {
        /// The request header (needed for the correlation id).
        header: RequestHeader,
    },
}

/// Why a frame cannot be served. Every variant means: close the connection.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Fewer bytes than the fixed header prefix.
    #[error("request of {len} bytes is shorter than a request header")]
    TooShort {
        /// Frame length.
        len: usize,
    },
    /// An api key kafka-protocol does not know.
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        /// Raw api key.
        api_key: i16,
        /// Raw api version.
        api_version: i16,
        /// Correlation id.
        correlation_id: i32,
    },
    /// A known API (other than ApiVersions) at a version, or of a kind, we do not serve.
    #[error("{api_key:?} v{api_version} is not served (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// Requested version.
        api_version: i16,
        /// Correlation id.
        correlation_id: i32,
    },
    /// The request header does not decode.
    #[error("malformed {api_key:?} v{api_version} request header: {source:#}")]
    MalformedHeader {
        /// The API.
        api_key: ApiKey,
        /// Requested version.
        api_version: i16,
        /// What went wrong.
        source: anyhow::Error,
    },
    /// The body does not match the API's schema (truncated, impossible lengths, ...).
    #[error(
        "malformed {api_key:?} v{api_version} body (correlation id {correlation_id}): {source}"
    )]
    InvalidBody {
        /// The API.
        api_key: ApiKey,
        /// Requested version.
        api_version: i16,
        /// Correlation id.
        correlation_id: i32,
        /// What went wrong.
        source: SchemaError,
    },
    /// kafka-protocol rejected a body that passed the schema walk (e.g. bad UTF-8).
    #[error(
        "undecodable {api_key:?} v{api_version} body (correlation id {correlation_id}): {source:#}"
    )]
    MalformedBody {
        /// The API.
        api_key: ApiKey,
        /// Requested version.
        api_version: i16,
        /// Correlation id.
        correlation_id: i32,
        /// What went wrong.
        source: anyhow::Error,
    },
}

/// Decodes one request frame body (size prefix already removed).
///
/// Never panics and never allocates more than a constant factor of `frame.len()`,
/// whatever the input.
pub fn decode_request(frame: Bytes) -> Result<Decoded, RequestError> {
    if frame.len() < HEADER_PREFIX {
        return Err(RequestError::TooShort { len: frame.len() });
    }
    let mut prefix = &frame[..HEADER_PREFIX];
    let raw_key = prefix.get_i16();
    let api_version = prefix.get_i16();
    let correlation_id = prefix.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApiKey {
        api_key: raw_key,
        api_version,
        correlation_id,
    })?;

    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(api_version))
        .map_err(|source| RequestError::MalformedHeader {
            api_key,
            api_version,
            source,
        })?;

    if !versions::is_served(api_key, api_version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(Decoded::UnsupportedApiVersions { header });
        }
        return Err(RequestError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }

    let used = schema::validate_request(raw_key, api_version, &buf).map_err(|source| {
        RequestError::InvalidBody {
            api_key,
            api_version,
            correlation_id,
            source,
        }
    })?;
    if used < buf.len() {
        // Kafka ignores trailing bytes after a request; so do we, but say so.
        tracing::debug!(
            ?api_key,
            api_version,
            correlation_id,
            trailing = buf.len() - used,
            "ignoring trailing bytes after request body"
        );
    }

    let body = RequestKind::decode(api_key, &mut buf, api_version).map_err(|source| {
        RequestError::MalformedBody {
            api_key,
            api_version,
            correlation_id,
            source,
        }
    })?;
    Ok(Decoded::Request { header, body })
}

/// Encodes a request frame (size prefix, header, body) — the client side, used by
/// inter-broker callers and tests. The header version is derived from the api key and
/// version in `header`.
pub fn encode_request(
    out: &mut BytesMut,
    header: &RequestHeader,
    body: &RequestKind,
) -> anyhow::Result<()> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
    let version = header.request_api_version;
    super::response::write_framed(out, |buf| {
        header.encode(buf, api_key.request_header_version(version))?;
        body.encode(buf, version)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    fn header(key: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test-client")))
    }

    /// Encodes, strips the size prefix, decodes, and checks the round trip.
    fn round_trip(key: ApiKey, version: i16, body: RequestKind) {
        let h = header(key, version, 42);
        let mut out = BytesMut::new();
        encode_request(&mut out, &h, &body).unwrap();
        let size = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(size, out.len() - 4);
        let frame = out.split_off(4).freeze();
        match decode_request(frame.clone()) {
            Ok(Decoded::Request { header, body: got }) => {
                assert_eq!(header, h, "{key:?} v{version}");
                assert_eq!(got, body, "{key:?} v{version}");
            }
            other => panic!("{key:?} v{version}: {other:?}"),
        }
        // Every proper prefix of a valid frame is rejected, never panics.
        for cut in 0..frame.len() {
            assert!(
                decode_request(frame.slice(..cut)).is_err(),
                "{key:?} v{version} truncated to {cut} bytes decoded"
            );
        }
    }

    fn topic(name: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(name))
    }

    #[test]
    fn produce_round_trips() {
        let records = Bytes::from_static(b"\x00\x01\x02 not parsed here");
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(3)
                    .with_records(Some(records))])]);
        for v in 3..=9 {
            round_trip(ApiKey::Produce, v, RequestKind::Produce(req.clone()));
        }
    }

    #[test]
    fn fetch_round_trips() {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(52_428_800)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(1234)
                    .with_partition_max_bytes(1 << 20)])]);
        for v in 4..=12 {
            let mut req = req.clone();
            if v >= 12 {
                // A known tagged field (tag 0) on the request.
                req.cluster_id = Some(StrBytes::from_static_str("cluster-1"));
            }
            round_trip(ApiKey::Fetch, v, RequestKind::Fetch(req));
        }
    }

    #[test]
    fn metadata_and_api_versions_round_trip() {
        for v in 0..=12 {
            let mut req = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("t"))),
            ]));
            if v >= 4 {
                req.allow_auto_topic_creation = false;
            }
            round_trip(ApiKey::Metadata, v, RequestKind::Metadata(req));
        }
        for v in 0..=3 {
            let mut req = ApiVersionsRequest::default();
            if v >= 3 {
                req.client_software_name = StrBytes::from_static_str("osprey-test");
                req.client_software_version = StrBytes::from_static_str("1.0");
            }
            round_trip(ApiKey::ApiVersions, v, RequestKind::ApiVersions(req));
        }
    }

    #[test]
    fn group_apis_round_trip() {
        for v in 0..=7 {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if v >= 1 { 30_000 } else { -1 })
                .with_member_id(StrBytes::from_static_str(""))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\x00\x01meta"))]);
            round_trip(ApiKey::JoinGroup, v, RequestKind::JoinGroup(req));
        }
        for v in 0..=5 {
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(1)
                .with_member_id(StrBytes::from_static_str("m"))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_static_str("m"))
                    .with_assignment(Bytes::from_static(b"assign"))]);
            round_trip(ApiKey::SyncGroup, v, RequestKind::SyncGroup(req));
        }
        for v in 2..=8 {
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(99)])]);
            round_trip(ApiKey::OffsetCommit, v, RequestKind::OffsetCommit(req));
        }
        for v in 0..=4 {
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(3)
                .with_member_id(StrBytes::from_static_str("m"));
            round_trip(ApiKey::Heartbeat, v, RequestKind::Heartbeat(req));
        }
    }

    #[test]
    fn admin_and_inter_broker_apis_round_trip() {
        for v in 2..=7 {
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![creatable_topic("new-topic")]);
            round_trip(ApiKey::CreateTopics, v, RequestKind::CreateTopics(req));
        }
        for v in 0..=1 {
            let req = BrokerHeartbeatRequest::default()
                .with_broker_id(BrokerId(1))
                .with_broker_epoch(7)
                .with_current_metadata_offset(100);
            round_trip(
                ApiKey::BrokerHeartbeat,
                v,
                RequestKind::BrokerHeartbeat(req),
            );
        }
        // BrokerHeartbeat v1 carries OfflineLogDirs as a tagged *array*: the tagged-field
        // path of the schema walk must check it too.
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(1))
            .with_offline_log_dirs(vec![Default::default(); 2]);
        round_trip(
            ApiKey::BrokerHeartbeat,
            1,
            RequestKind::BrokerHeartbeat(req),
        );
    }

    fn creatable_topic(name: &'static str) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(3)
            .with_replication_factor(1)
    }

    fn raw_frame(key: i16, version: i16, correlation_id: i32, rest: &[u8]) -> Bytes {
        let mut v = Vec::new();
        v.extend_from_slice(&key.to_be_bytes());
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&correlation_id.to_be_bytes());
        v.extend_from_slice(rest);
        Bytes::from(v)
    }

    #[test]
    fn short_frames_are_errors() {
        for len in 0..HEADER_PREFIX {
            let frame = Bytes::from(vec![0u8; len]);
            assert!(matches!(
                decode_request(frame),
                Err(RequestError::TooShort { len: l }) if l == len
            ));
        }
    }

    #[test]
    fn unknown_api_key_is_an_error() {
        let err = decode_request(raw_frame(9999, 0, 5, &[0xff, 0xff])).unwrap_err();
        assert!(matches!(
            err,
            RequestError::UnknownApiKey {
                api_key: 9999,
                correlation_id: 5,
                ..
            }
        ));
    }

    #[test]
    fn unsupported_versions() {
        // Produce v2 (below our minimum) closes.
        let err = decode_request(raw_frame(0, 2, 1, &[0xff, 0xff])).unwrap_err();
        assert!(matches!(
            err,
            RequestError::UnsupportedVersion {
                api_key: ApiKey::Produce,
                api_version: 2,
                ..
            }
        ));
        // An API the crate knows but we do not serve closes too.
        let err = decode_request(raw_frame(ApiKey::SaslHandshake as i16, 1, 1, &[0xff, 0xff]))
            .unwrap_err();
        assert!(matches!(err, RequestError::UnsupportedVersion { .. }));
        // ApiVersions v7 (from the future, flexible header v2) is answered, not closed.
        let mut rest = vec![0xff, 0xff, 0x00]; // null client id, no header tags
        rest.extend_from_slice(b"future body bytes");
        match decode_request(raw_frame(18, 7, 77, &rest)).unwrap() {
            Decoded::UnsupportedApiVersions { header } => {
                assert_eq!(header.correlation_id, 77);
                assert_eq!(header.request_api_version, 7);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The reproduction from kafka-protocol-rs PR #152: Metadata v0 declaring 54 million
    /// topics in a handful of bytes. Without the schema walk kafka-protocol reserves
    /// ~3.6 GiB before noticing the body is empty.
    #[test]
    fn huge_array_count_is_rejected_before_kafka_protocol_sees_it() {
        let frame = raw_frame(3, 0, 1, &[0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6]);
        let err = decode_request(frame).unwrap_err();
        assert!(
            matches!(
                err,
                RequestError::InvalidBody {
                    source: SchemaError::ArrayTooLong {
                        count: 54_266_880,
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );
        // Same attack through a compact (flexible) array: Metadata v9 with count 2^32-1.
        let frame = raw_frame(3, 9, 1, &[0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            decode_request(frame),
            Err(RequestError::InvalidBody {
                source: SchemaError::ArrayTooLong { .. },
                ..
            })
        ));
    }
}
