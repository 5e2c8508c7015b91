//! Encoding a typed response into a size-prefixed frame.
//!
//! The response header version comes from kafka-protocol (`ApiKey::response_header_version`)
//! with one rule pinned here as well: ApiVersions responses always use header v0, even at
//! flexible versions, because a client reads them before it knows whether the broker
//! understands flexible headers (KIP-511). A tagged-field byte there breaks every client.
//!
//! Compatibility note for whoever fills responses: kafka-protocol writes a tagged field
//! only when it differs from its default. librdkafka before 2.1.2 (Debian's kcat links
//! 2.0.2) skips `len - 1` bytes for each received tagged field, so any non-default tagged
//! value in a response it parses desynchronises it ("Read underflow"). Prefer leaving
//! tagged fields at their defaults when talking to such clients.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::versions;

/// Why a response could not be encoded. These are broker bugs, not peer misbehaviour.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The request header names an api key kafka-protocol does not know.
    #[error("unknown api key {0} in request header")]
    UnknownApiKey(i16),
    /// The handler answered with a response for a different API.
    #[error("{request:?} request answered with a {response} response")]
    Mismatch {
        /// The request's API.
        request: ApiKey,
        /// The response's variant (or "unserved" if not a served API).
        response: &'static str,
    },
    /// kafka-protocol refused to encode (e.g. a field set that the version cannot carry).
    #[error("cannot encode {api_key:?} v{api_version} response: {source:#}")]
    Encode {
        /// The API.
        api_key: ApiKey,
        /// Version.
        api_version: i16,
        /// What went wrong.
        source: anyhow::Error,
    },
    /// The encoded frame does not fit the i32 size prefix.
    #[error("encoded frame of {0} bytes does not fit an i32 size prefix")]
    TooLarge(usize),
}

/// Appends `[size][response header][body]` answering `request` to `out`.
///
/// On error `out` is left as it was.
pub fn encode_response(
    out: &mut BytesMut,
    request: &RequestHeader,
    response: &ResponseKind,
) -> Result<(), ResponseError> {
    let api_key = ApiKey::try_from(request.request_api_key)
        .map_err(|_| ResponseError::UnknownApiKey(request.request_api_key))?;
    let (kind, name) = response_api_key(response);
    if kind != Some(api_key) {
        return Err(ResponseError::Mismatch {
            request: api_key,
            response: name,
        });
    }
    let api_version = request.request_api_version;
    let header = ResponseHeader::default().with_correlation_id(request.correlation_id);
    let header_version = response_header_version(api_key, api_version);
    write_framed(out, |buf| {
        header.encode(buf, header_version)?;
        response.encode(buf, api_version)
    })
    .map_err(|source| match source.downcast::<ResponseError>() {
        Ok(e) => e,
        Err(source) => ResponseError::Encode {
            api_key,
            api_version,
            source,
        },
    })
}

/// Appends Kafka's answer to an ApiVersions request at a version we do not serve:
/// UNSUPPORTED_VERSION, in the v0 body format with a v0 header, listing what we serve.
pub fn encode_unsupported_api_versions(
    out: &mut BytesMut,
    correlation_id: i32,
) -> Result<(), ResponseError> {
    let body = versions::api_versions_response(crate::error_codes::UNSUPPORTED_VERSION);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    write_framed(out, |buf| {
        header.encode(buf, 0)?;
        body.encode(buf, 0)
    })
    .map_err(|source| ResponseError::Encode {
        api_key: ApiKey::ApiVersions,
        api_version: 0,
        source,
    })
}

/// The response header version for `api_key` at `api_version`.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    }
}

/// Decodes a response frame body (size prefix removed) — the client side, used by
/// inter-broker callers and tests. The caller supplies the API and version it sent.
/// Only for trusted peers: it does not apply the request-side schema walk.
pub fn decode_response(
    mut frame: bytes::Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> anyhow::Result<(ResponseHeader, ResponseKind)> {
    let header = ResponseHeader::decode(&mut frame, response_header_version(api_key, api_version))?;
    let body = ResponseKind::decode(api_key, &mut frame, api_version)?;
    Ok((header, body))
}

/// Writes an i32 size prefix, then whatever `fill` writes, then patches the size.
/// Restores `out` if `fill` fails or the frame is too large.
pub(crate) fn write_framed(
    out: &mut BytesMut,
    fill: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let start = out.len();
    out.put_i32(0);
    if let Err(e) = fill(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 4;
    let Ok(size) = i32::try_from(len) else {
        out.truncate(start);
        return Err(ResponseError::TooLarge(len).into());
    };
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

macro_rules! served_response_kinds {
    ($($variant:ident),* $(,)?) => {
        /// Which API a response answers, for the served APIs (`None` otherwise), plus the
        /// variant name for error messages.
        fn response_api_key(response: &ResponseKind) -> (Option<ApiKey>, &'static str) {
            match response {
                $(ResponseKind::$variant(_) => (Some(ApiKey::$variant), stringify!($variant)),)*
                _ => (None, "unserved"),
            }
        }

        /// The APIs [`response_api_key`] recognises (checked against the served table).
        #[cfg(test)]
        const RESPONSE_KINDS: &[ApiKey] = &[$(ApiKey::$variant),*];
    };
}

// Keep in step with `versions::SERVED_APIS` (a unit test checks).
served_response_kinds!(
    Produce,
    Fetch,
    ListOffsets,
    Metadata,
    OffsetCommit,
    OffsetFetch,
    FindCoordinator,
    JoinGroup,
    Heartbeat,
    LeaveGroup,
    SyncGroup,
    DescribeGroups,
    ListGroups,
    ApiVersions,
    CreateTopics,
    DeleteTopics,
    InitProducerId,
    OffsetForLeaderEpoch,
    DescribeConfigs,
    AlterConfigs,
    IncrementalAlterConfigs,
    CreatePartitions,
    DescribeCluster,
    AlterPartition,
    BrokerRegistration,
    BrokerHeartbeat,
    AllocateProducerIds,
    AssignReplicasToDirs,
    Vote,
    BeginQuorumEpoch,
    EndQuorumEpoch,
    DescribeQuorum,
    FetchSnapshot,
);

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    fn request_header(key: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
    }

    /// Encodes, checks the size prefix, decodes back with the crate.
    fn round_trip(key: ApiKey, version: i16, response: ResponseKind) -> BytesMut {
        let mut out = BytesMut::new();
        encode_response(&mut out, &request_header(key, version, 9), &response).unwrap();
        let size = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(size, out.len() - 4);
        let (header, body) = decode_response(out.clone().split_off(4).freeze(), key, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e:#}"));
        assert_eq!(header.correlation_id, 9);
        assert_eq!(body, response, "{key:?} v{version}");
        out
    }

    #[test]
    fn every_served_api_has_a_response_mapping() {
        for api in versions::SERVED_APIS {
            assert!(RESPONSE_KINDS.contains(&api.key), "{:?}", api.key);
        }
    }

    #[test]
    fn api_versions_v3_is_exactly_what_librdkafka_2_0_2_parses() {
        let resp = versions::api_versions_response(0);
        let out = round_trip(ApiKey::ApiVersions, 3, ResponseKind::ApiVersions(resp));
        let n = versions::SERVED_APIS.len();
        // size, header v0 = correlation id only (no tag byte), error code, compact array
        // count, n * (key, min, max, empty tags), throttle time, empty tags.
        let mut expected = Vec::new();
        expected.extend_from_slice(&((4 + 2 + 1 + n * 7 + 4 + 1) as i32).to_be_bytes());
        expected.extend_from_slice(&9i32.to_be_bytes());
        expected.extend_from_slice(&0i16.to_be_bytes());
        expected.push(n as u8 + 1);
        for api in versions::SERVED_APIS {
            expected.extend_from_slice(&(api.key as i16).to_be_bytes());
            expected.extend_from_slice(&api.min.to_be_bytes());
            expected.extend_from_slice(&api.max.to_be_bytes());
            expected.push(0);
        }
        expected.extend_from_slice(&0i32.to_be_bytes());
        expected.push(0);
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn api_versions_header_is_v0_at_every_version() {
        for v in 0..=4 {
            assert_eq!(response_header_version(ApiKey::ApiVersions, v), 0);
        }
        // while other flexible responses do use header v1.
        assert_eq!(response_header_version(ApiKey::Metadata, 9), 1);
        assert_eq!(response_header_version(ApiKey::Metadata, 8), 0);
    }

    #[test]
    fn unsupported_api_versions_answer_is_v0() {
        let mut out = BytesMut::new();
        encode_unsupported_api_versions(&mut out, 31).unwrap();
        let (header, body) =
            decode_response(out.split_off(4).freeze(), ApiKey::ApiVersions, 0).unwrap();
        assert_eq!(header.correlation_id, 31);
        let ResponseKind::ApiVersions(body) = body else {
            panic!()
        };
        assert_eq!(body.error_code, crate::error_codes::UNSUPPORTED_VERSION);
        let av = body
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .unwrap();
        assert_eq!((av.min_version, av.max_version), (0, 3));
    }

    #[test]
    fn mismatched_response_is_refused_and_buffer_untouched() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let err = encode_response(
            &mut out,
            &request_header(ApiKey::Produce, 9, 1),
            &ResponseKind::Metadata(MetadataResponse::default()),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ResponseError::Mismatch {
                request: ApiKey::Produce,
                ..
            }
        ));
        assert_eq!(&out[..], b"keep");
        // A version the crate cannot encode fails cleanly too.
        let err = encode_response(
            &mut out,
            &request_header(ApiKey::Metadata, 99, 1),
            &ResponseKind::Metadata(MetadataResponse::default()),
        )
        .unwrap_err();
        assert!(matches!(err, ResponseError::Encode { .. }));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn responses_round_trip_per_family() {
        let metadata = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092)])
            .with_controller_id(BrokerId(1))
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)])])]);
        for v in 0..=12 {
            let mut m = metadata.clone();
            if v < 1 {
                m.controller_id = BrokerId(-1);
            }
            if (8..=10).contains(&v) {
                m.cluster_authorized_operations = -2147483648;
            }
            round_trip(ApiKey::Metadata, v, ResponseKind::Metadata(m));
        }
        let produce =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_responses(vec![PartitionProduceResponse::default()
                    .with_index(0)
                    .with_base_offset(41)])]);
        for v in 3..=9 {
            round_trip(ApiKey::Produce, v, ResponseKind::Produce(produce.clone()));
        }
        let fetch =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(10)
                    .with_records(Some(bytes::Bytes::from_static(b"opaque batch bytes")))])]);
        for v in 4..=12 {
            round_trip(ApiKey::Fetch, v, ResponseKind::Fetch(fetch.clone()));
        }
        for v in 0..=4 {
            let hb = HeartbeatResponse::default().with_error_code(27);
            round_trip(ApiKey::Heartbeat, v, ResponseKind::Heartbeat(hb));
        }
    }
}
