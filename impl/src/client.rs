//! A minimal async Kafka protocol client: one TCP connection, requests encoded and
//! responses decoded with kafka-protocol. Brokers use it to talk to the controller
//! (BrokerRegistration, BrokerHeartbeat, AlterPartition, forwarded admin requests, the
//! metadata-log Fetch) and to fetch from partition leaders; `osprey topics` uses it as an
//! admin client.
//!
//! Requests on one [`Connection`] are sent one at a time (the caller owns the connection
//! mutably); callers that want concurrency open several connections. Every call is bounded
//! by a timeout so a dead peer never hangs a caller.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{decode_response, encode_request};

/// Largest response accepted (a fetch response is bounded by the request's max bytes).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// One client connection to a Kafka-protocol server.
pub struct Connection {
    stream: TcpStream,
    addr: String,
    client_id: StrBytes,
    next_correlation_id: i32,
    buf: BytesMut,
}

impl Connection {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 1,
            buf: BytesMut::with_capacity(4096),
        })
    }

    /// The peer's address as given to [`Connection::connect`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits (at most `timeout`) for its response.
    pub async fn send(
        &mut self,
        version: i16,
        request: RequestKind,
        timeout: Duration,
    ) -> anyhow::Result<ResponseKind> {
        tokio::time::timeout(timeout, self.send_inner(version, request))
            .await
            .with_context(|| format!("request to {} timed out after {timeout:?}", self.addr))?
    }

    async fn send_inner(
        &mut self,
        version: i16,
        request: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        let api_key = api_key_of(&request)?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        self.buf.clear();
        encode_request(&mut self.buf, &header, &request)?;
        self.stream.write_all(&self.buf).await?;
        let size = self.stream.read_i32().await?;
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            bail!("response from {} has invalid size {size}", self.addr);
        }
        let mut frame = BytesMut::zeroed(size as usize);
        self.stream.read_exact(&mut frame).await?;
        let (resp_header, body) = decode_response(frame.freeze(), api_key, version)?;
        if resp_header.correlation_id != correlation_id {
            bail!(
                "response from {} has correlation id {} instead of {correlation_id}",
                self.addr,
                resp_header.correlation_id
            );
        }
        Ok(body)
    }
}

/// The API key of a request body.
pub fn api_key_of(request: &RequestKind) -> anyhow::Result<ApiKey> {
    Ok(match request {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::FindCoordinator(_) => ApiKey::FindCoordinator,
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::Heartbeat(_) => ApiKey::Heartbeat,
        RequestKind::LeaveGroup(_) => ApiKey::LeaveGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        RequestKind::DescribeGroups(_) => ApiKey::DescribeGroups,
        RequestKind::ListGroups(_) => ApiKey::ListGroups,
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        RequestKind::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
        RequestKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        RequestKind::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
        RequestKind::CreatePartitions(_) => ApiKey::CreatePartitions,
        RequestKind::DescribeCluster(_) => ApiKey::DescribeCluster,
        RequestKind::ElectLeaders(_) => ApiKey::ElectLeaders,
        RequestKind::AlterPartition(_) => ApiKey::AlterPartition,
        RequestKind::BrokerRegistration(_) => ApiKey::BrokerRegistration,
        RequestKind::BrokerHeartbeat(_) => ApiKey::BrokerHeartbeat,
        RequestKind::AllocateProducerIds(_) => ApiKey::AllocateProducerIds,
        RequestKind::AssignReplicasToDirs(_) => ApiKey::AssignReplicasToDirs,
        RequestKind::Vote(_) => ApiKey::Vote,
        RequestKind::BeginQuorumEpoch(_) => ApiKey::BeginQuorumEpoch,
        RequestKind::EndQuorumEpoch(_) => ApiKey::EndQuorumEpoch,
        RequestKind::DescribeQuorum(_) => ApiKey::DescribeQuorum,
        RequestKind::FetchSnapshot(_) => ApiKey::FetchSnapshot,
        other => bail!("the client does not send {other:?}"),
    })
}
