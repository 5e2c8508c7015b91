//! The broker's client-facing Kafka API: each request is turned into calls on the
//! partitions' deterministic replicas ([`ReplicaManager`]) or forwarded to the active
//! controller, and answered with kafka-protocol response structs.
//!
//! Produce and Fetch never decode records: produce batches go to the replica as sent
//! (copied once into a mutable buffer for in-place offset/epoch stamping), fetched batches
//! come back as the log's bytes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset as OffsetEpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::clock::now_ms;
use super::fetch_mapping;
use super::forward;
use super::groups;
use super::partitions::{ProduceWait, ReplicaManager, TopicPartition};
use super::shared::NodeShared;
use super::view::{ClusterView, PartitionView};
use crate::controller::assignment::topic_name_error;
use crate::error_codes as ec;
use crate::replication::{Acks, UNKNOWN_BROKER_EPOCH};
use crate::storage::{BatchHeader, TimestampType};
use crate::wire::versions::api_versions_response;
use crate::wire::RequestHandler;

/// The client-facing request handler of one broker listener.
pub struct BrokerApi {
    pub shared: Arc<NodeShared>,
    /// The listener's name: Metadata, DescribeCluster and FindCoordinator answer with each
    /// broker's address on this listener (a client inside the container network and one on
    /// the host each get addresses they can reach).
    pub listener: String,
}

impl RequestHandler for BrokerApi {
    async fn handle(
        &self,
        header: RequestHeader,
        request: RequestKind,
    ) -> anyhow::Result<Option<ResponseKind>> {
        let v = header.request_api_version;
        let s = &self.shared;
        Ok(Some(match request {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(s)),
            RequestKind::Metadata(req) => ResponseKind::Metadata(self.metadata(v, req).await),
            RequestKind::Produce(req) => {
                return Ok(self.produce(v, req).await.map(ResponseKind::Produce))
            }
            RequestKind::Fetch(req) => ResponseKind::Fetch(self.fetch(v, req).await),
            RequestKind::ListOffsets(req) => ResponseKind::ListOffsets(self.list_offsets(v, req)),
            RequestKind::OffsetForLeaderEpoch(req) => {
                ResponseKind::OffsetForLeaderEpoch(self.offset_for_leader_epoch(req))
            }
            RequestKind::DescribeCluster(_) => {
                ResponseKind::DescribeCluster(self.describe_cluster(v))
            }
            RequestKind::DescribeConfigs(req) => {
                ResponseKind::DescribeConfigs(self.describe_configs(req))
            }
            RequestKind::InitProducerId(req) => {
                ResponseKind::InitProducerId(s.init_producer_id(req).await)
            }
            RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::IncrementalAlterConfigs(_)
            | RequestKind::ElectLeaders(_) => forward::forward_to_controller(s, v, request).await?,
            // As Kafka's brokers do, so `metadata-quorum describe` works through a broker.
            RequestKind::DescribeQuorum(_) => s.controller.request(v, request).await?,
            other => match groups::handle(s, &self.listener, &header, other).await? {
                Some(resp) => resp,
                None => anyhow::bail!("request not served by the broker listener"),
            },
        }))
    }
}

fn api_versions(s: &NodeShared) -> ApiVersionsResponse {
    let _ = s;
    let mut resp = api_versions_response(0);
    resp.api_keys
        .retain(|a: &ApiVersion| !is_controller_only(a.api_key));
    resp
}

/// APIs served on the controller listener only: the broker listener neither advertises nor
/// serves them (a client negotiating from ApiVersions must not be told otherwise).
/// DescribeQuorum is not among them: a broker forwards it to the active controller, as
/// Kafka's brokers do, so `metadata-quorum describe --bootstrap-server` works.
pub const CONTROLLER_ONLY: [ApiKey; 9] = [
    ApiKey::BrokerRegistration,
    ApiKey::BrokerHeartbeat,
    ApiKey::AlterPartition,
    ApiKey::AllocateProducerIds,
    ApiKey::AssignReplicasToDirs,
    // The KRaft quorum (KIP-595) and its snapshots (KIP-630): between controllers, and
    // from brokers to the controllers' listener.
    ApiKey::Vote,
    ApiKey::BeginQuorumEpoch,
    ApiKey::EndQuorumEpoch,
    ApiKey::FetchSnapshot,
];

pub fn is_controller_only(api_key: i16) -> bool {
    CONTROLLER_ONLY.iter().any(|k| *k as i16 == api_key)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

fn uuid(id: &[u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

impl BrokerApi {
    // ---------------------------------------------------------------------------------
    // Metadata

    async fn metadata(&self, version: i16, req: MetadataRequest) -> MetadataResponse {
        let s = &self.shared;
        let requested: Option<Vec<String>> = match &req.topics {
            None => None,
            Some(t) if t.is_empty() && version == 0 => None,
            Some(t) => Some(
                t.iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .collect(),
            ),
        };
        // Auto-create what is missing, as Kafka does, before answering.
        let auto_create =
            s.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
        if let (Some(names), true) = (&requested, auto_create) {
            let view = s.view();
            let missing: Vec<String> = names
                .iter()
                .filter(|n| view.topic(n).is_none() && topic_name_error(n).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                forward::create_topics_default(s, &missing).await;
            }
        }
        let view = s.view();
        let mut resp = MetadataResponse::default();
        resp.brokers = view
            .live_brokers()
            .filter_map(|b| {
                let (host, port) = b.endpoint(&self.listener)?;
                Some(
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(host))
                        .with_port(i32::from(port))
                        .with_rack(b.rack.as_deref().filter(|_| version >= 1).map(str_bytes)),
                )
            })
            .collect();
        if version >= 2 {
            resp.cluster_id = Some(str_bytes(&s.cluster_id));
        }
        if version >= 1 {
            resp.controller_id = BrokerId(view.live_brokers().map(|b| b.id).min().unwrap_or(-1));
        }
        let names: Vec<String> = match requested {
            Some(n) => n,
            None => view.topics.keys().cloned().collect(),
        };
        for name in names {
            let mut t = MetadataResponseTopic::default().with_name(Some(topic_name(&name)));
            match view.topic(&name) {
                None => {
                    t.error_code = if topic_name_error(&name).is_none() {
                        if s.config.auto_create_topics_enable {
                            ec::LEADER_NOT_AVAILABLE
                        } else {
                            ec::UNKNOWN_TOPIC_OR_PARTITION
                        }
                    } else {
                        ec::INVALID_TOPIC_EXCEPTION
                    }
                }
                Some(topic) => {
                    if version >= 10 {
                        t.topic_id = uuid(&topic.id);
                    }
                    t.is_internal = version >= 1 && name.starts_with("__");
                    t.partitions = topic
                        .partitions
                        .iter()
                        .map(|p| metadata_partition(&view, p, version))
                        .collect();
                }
            }
            resp.topics.push(t);
        }
        resp
    }

    // ---------------------------------------------------------------------------------
    // Produce

    async fn produce(&self, version: i16, req: ProduceRequest) -> Option<ProduceResponse> {
        let s = &self.shared;
        let acks = Acks::from_i16(req.acks);
        let timeout_ms = req.timeout_ms.max(0) as u64;
        let now = now_ms();
        let mut waits: Vec<(usize, usize, ProduceWait)> = Vec::new();
        let mut resp = ProduceResponse::default();
        for (ti, topic) in req.topic_data.iter().enumerate() {
            let name = topic.name.0.to_string();
            let mut tr = TopicProduceResponse::default().with_name(topic.name.clone());
            for (pi, p) in topic.partition_data.iter().enumerate() {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let tp = TopicPartition::new(name.clone(), p.index);
                let slot = s.replicas.get(&tp);
                match (acks, slot, &p.records) {
                    (None, _, _) => pr.error_code = ec::INVALID_REQUIRED_ACKS,
                    (_, _, _) if req.transactional_id.is_some() => {
                        pr.error_code = ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                    }
                    (_, None, _) => pr.error_code = s.not_hosted_error(&tp),
                    (_, Some(_), None) => pr.error_code = ec::CORRUPT_MESSAGE,
                    // Kafka: zstd needs Produce v7+ (KIP-110); older clients cannot read it.
                    (_, Some(_), Some(records)) if version < 7 && has_zstd(records) => {
                        pr.error_code = ec::UNSUPPORTED_COMPRESSION_TYPE
                    }
                    (Some(acks), Some(slot), Some(records)) => {
                        let batches = BytesMut::from(&records[..]);
                        let wait = slot.produce(&s.replicas, batches, acks, timeout_ms, now);
                        waits.push((ti, pi, wait));
                    }
                }
                tr.partition_responses.push(pr);
            }
            resp.responses.push(tr);
        }
        for (ti, pi, wait) in waits {
            let completion = match wait {
                ProduceWait::Done(c) => Some(c),
                ProduceWait::Rejected(r) => {
                    let pr = &mut resp.responses[ti].partition_responses[pi];
                    answer_rejection(pr, &r);
                    continue;
                }
                // The replica answers at the latest when the request times out; the extra
                // margin only guards against a replica that was removed meanwhile.
                ProduceWait::Parked(rx) => {
                    tokio::time::timeout(Duration::from_millis(timeout_ms + 5_000), rx)
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
            };
            let topic = resp.responses[ti].name.0.to_string();
            let pr = &mut resp.responses[ti].partition_responses[pi];
            match completion {
                Some(c) => {
                    pr.error_code = c.error_code;
                    pr.base_offset = c.base_offset;
                }
                None => pr.error_code = ec::REQUEST_TIMED_OUT,
            }
            // The time the leader stamped the batches with (`now` went to the replica).
            if pr.error_code == 0
                && version >= 2
                && s.view().message_timestamp_type(&topic) == TimestampType::LogAppendTime
            {
                pr.log_append_time_ms = now as i64;
            }
            if version < 5 {
                continue;
            }
            if let Some(slot) = s.replicas.get(&TopicPartition::new(topic, pr.index)) {
                pr.log_start_offset =
                    slot.with_replica(&s.replicas, |r| r.log().log_start_offset());
            }
        }
        if req.acks == 0 {
            return None;
        }
        Some(resp)
    }

    // ---------------------------------------------------------------------------------
    // Fetch

    async fn fetch(&self, version: i16, req: FetchRequest) -> FetchResponse {
        let s = &self.shared;
        let replica_id = if version >= 15 {
            req.replica_state.replica_id.0
        } else {
            req.replica_id.0
        };
        let replica_epoch = if version >= 15 {
            req.replica_state.replica_epoch
        } else {
            UNKNOWN_BROKER_EPOCH
        };
        let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, 30_000) as u64);
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut changes = s.replicas.subscribe();
        loop {
            changes.borrow_and_update();
            let (resp, bytes, urgent) =
                fetch_once(&s.replicas, version, &req, replica_id, replica_epoch);
            let done = urgent
                || bytes >= req.min_bytes.max(1) as usize
                || tokio::time::Instant::now() >= deadline;
            if done {
                return resp;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let (resp, _, _) =
                    fetch_once(&s.replicas, version, &req, replica_id, replica_epoch);
                return resp;
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // ListOffsets and OffsetForLeaderEpoch

    fn list_offsets(&self, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
        let s = &self.shared;
        let mut resp = ListOffsetsResponse::default();
        for topic in &req.topics {
            let mut tr = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
            for p in &topic.partitions {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                let mut pr = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                let led = s.with_led_replica(&tp, p.current_leader_epoch, |r| {
                    if version >= 4 {
                        pr.leader_epoch = r.leader_epoch();
                    }
                    match p.timestamp {
                        // LATEST (and MAX_TIMESTAMP's offset): the high watermark.
                        -1 => pr.offset = r.high_watermark(),
                        // EARLIEST
                        -2 => pr.offset = r.log().log_start_offset(),
                        ts => {
                            if let Some((offset, t)) =
                                offset_for_timestamp(r.log(), ts, r.high_watermark())
                            {
                                pr.offset = offset;
                                pr.timestamp = t;
                            }
                        }
                    }
                });
                if let Err(code) = led {
                    pr.error_code = code;
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }

    fn offset_for_leader_epoch(
        &self,
        req: OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let s = &self.shared;
        let mut resp = OffsetForLeaderEpochResponse::default();
        for topic in &req.topics {
            let mut tr = OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
            for p in &topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.to_string(), p.partition);
                let mut pr = OffsetEpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                let led = s.with_led_replica(&tp, p.current_leader_epoch, |r| {
                    let answer = if p.leader_epoch == r.leader_epoch() {
                        Some((r.leader_epoch(), r.log_end_offset()))
                    } else {
                        r.log().end_offset_for_epoch(p.leader_epoch)
                    };
                    if let Some((epoch, end)) = answer {
                        pr.leader_epoch = epoch;
                        pr.end_offset = end;
                    }
                });
                if let Err(code) = led {
                    pr.error_code = code;
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }

    // ---------------------------------------------------------------------------------
    // Cluster and configs

    fn describe_cluster(&self, version: i16) -> DescribeClusterResponse {
        let s = &self.shared;
        let view = s.view();
        let mut resp = DescribeClusterResponse::default()
            .with_cluster_id(str_bytes(&s.cluster_id))
            // EndpointType (v1+) is 1, brokers, by default; v0 cannot carry another value.
            .with_controller_id(BrokerId(
                view.live_brokers().map(|b| b.id).min().unwrap_or(-1),
            ));
        resp.brokers = view
            .brokers
            .values()
            .filter_map(|b| {
                let (host, port) = b.endpoint(&self.listener)?;
                Some(
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(host))
                        .with_port(i32::from(port))
                        .with_rack(b.rack.as_deref().map(str_bytes))
                        .with_is_fenced(b.fenced && version >= 2),
                )
            })
            .collect();
        resp
    }

    fn describe_configs(&self, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
        const TOPIC: i8 = 2;
        const BROKER: i8 = 4;
        let s = &self.shared;
        let view = s.view();
        let mut resp = DescribeConfigsResponse::default();
        for res in &req.resources {
            let mut r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let name = res.resource_name.to_string();
            let entries: Vec<(String, String, i8)> = match res.resource_type {
                TOPIC => match view.topic(&name) {
                    None => {
                        r.error_code = ec::UNKNOWN_TOPIC_OR_PARTITION;
                        Vec::new()
                    }
                    Some(topic) => {
                        let mut all: BTreeMap<String, (String, i8)> = view
                            .defaults
                            .iter()
                            .map(|(k, v)| (k.clone(), (v.clone(), 5))) // DEFAULT_CONFIG
                            .collect();
                        for (k, v) in &topic.configs {
                            all.insert(k.clone(), (v.clone(), 1)); // TOPIC_CONFIG
                        }
                        all.into_iter().map(|(k, (v, src))| (k, v, src)).collect()
                    }
                },
                BROKER => view
                    .defaults
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone(), 5))
                    .collect(),
                _ => {
                    r.error_code = ec::INVALID_REQUEST;
                    r.error_message = Some(str_bytes("only topic and broker configs exist"));
                    Vec::new()
                }
            };
            for (k, v, src) in entries {
                let wanted = res
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|key| key.as_str() == k));
                if wanted {
                    r.configs.push(
                        DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(&k))
                            .with_value(Some(str_bytes(&v)))
                            .with_config_source(src)
                            .with_config_type(config_type(&k)),
                    );
                }
            }
            resp.results.push(r);
        }
        resp
    }
}

/// DescribeConfigs' config type: 1 boolean, 2 string, 3 int, 5 long.
fn config_type(key: &str) -> i8 {
    match key {
        "unclean.leader.election.enable" => 1,
        "min.insync.replicas" => 3,
        "retention.ms" | "retention.bytes" | "segment.bytes" => 5,
        _ => 2,
    }
}

fn metadata_partition(
    view: &ClusterView,
    p: &PartitionView,
    version: i16,
) -> MetadataResponsePartition {
    let offline = if version >= 5 {
        view.offline_replicas(p)
    } else {
        Vec::new()
    };
    MetadataResponsePartition::default()
        .with_error_code(if p.leader < 0 {
            ec::LEADER_NOT_AVAILABLE
        } else {
            0
        })
        .with_partition_index(p.partition)
        .with_leader_id(BrokerId(p.leader))
        .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
        .with_replica_nodes(p.replicas.iter().map(|&b| BrokerId(b)).collect())
        .with_isr_nodes(p.isr.iter().map(|&b| BrokerId(b)).collect())
        .with_offline_replicas(offline.into_iter().map(BrokerId).collect())
}

/// The first offset whose batch's max timestamp is at least `ts`, below the high
/// watermark (ListOffsets by timestamp). Reads batch headers only.
fn offset_for_timestamp(
    log: &crate::storage::PartitionLog,
    ts: i64,
    hw: i64,
) -> Option<(i64, i64)> {
    let mut offset = log.log_start_offset();
    while offset < hw {
        let bytes = log.read(offset, 1 << 20).ok()?;
        if bytes.is_empty() {
            return None;
        }
        let mut pos = 0usize;
        while let Some(h) = bytes.get(pos..).and_then(BatchHeader::parse) {
            if h.size() == 0 {
                return None;
            }
            pos += h.size() as usize;
            if h.base_offset >= hw {
                return None;
            }
            if h.max_timestamp >= ts {
                return Some((h.base_offset.max(offset), h.max_timestamp));
            }
            offset = h.next_offset();
        }
    }
    None
}

/// One pass over a Fetch request: the response, how many record bytes it carries, and
/// whether it must be sent now (an error or a diverging epoch). The replicas decide
/// ([`crate::replication::Replica::read_for_consumer`] for a consumer,
/// [`crate::replication::Replica::handle_fetch_from_follower`] for a follower);
/// [`fetch_mapping`] carries their answers into the response.
fn fetch_once(
    replicas: &ReplicaManager,
    version: i16,
    req: &FetchRequest,
    replica_id: i32,
    replica_epoch: i64,
) -> (FetchResponse, usize, bool) {
    let now = now_ms();
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    let mut urgent = false;
    let budget = req.max_bytes.max(1) as usize;
    for topic in &req.topics {
        let mut tr = FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id);
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.topic.0.to_string(), p.partition);
            let mut pr = fetch_mapping::unanswered_partition(p.partition);
            let max_bytes =
                (p.partition_max_bytes.max(0) as usize).min(budget.saturating_sub(total).max(1));
            urgent |= match replicas.get(&tp) {
                None => {
                    pr.error_code = ec::NOT_LEADER_OR_FOLLOWER;
                    true
                }
                Some(slot) => slot.with_replica(replicas, |r| {
                    if replica_id >= 0 {
                        let fetch =
                            fetch_mapping::follower_fetch(p, replica_id, replica_epoch, max_bytes);
                        fetch_mapping::answer_follower(
                            &mut pr,
                            r.handle_fetch_from_follower(&fetch, now),
                        )
                    } else {
                        let read =
                            r.read_for_consumer(&fetch_mapping::consumer_fetch(p, max_bytes));
                        fetch_mapping::answer_consumer(&mut pr, read, version, replicas.broker_id)
                    }
                }),
            };
            total += pr.records.as_ref().map_or(0, |b| b.len());
            tr.partitions.push(pr);
        }
        resp.responses.push(tr);
    }
    (resp, total, urgent)
}

/// A produce refused by validation: Kafka's error, its message and (Produce v8+) the
/// records at fault. Versions below 8 simply do not encode the last two.
fn answer_rejection(pr: &mut PartitionProduceResponse, r: &crate::storage::BatchRejection) {
    pr.error_code = r.error_code;
    pr.base_offset = -1;
    pr.error_message = Some(StrBytes::from_string(r.message.clone()));
    pr.record_errors = r
        .record_errors
        .iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(e.message.clone())))
        })
        .collect();
}

/// Whether any batch header of a produce names zstd (codec 4).
fn has_zstd(records: &[u8]) -> bool {
    let mut pos = 0usize;
    while let Some(h) = records.get(pos..).and_then(BatchHeader::parse) {
        if h.compression_id() == 4 {
            return true;
        }
        match usize::try_from(h.size()) {
            Ok(n) if n > 0 => pos += n,
            _ => break,
        }
    }
    false
}
