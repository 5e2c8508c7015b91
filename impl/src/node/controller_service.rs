//! The controller role: the tokio driver of [`Controller`].
//!
//! Each request runs one controller operation under the controller's lock; the records it
//! appends are written to the metadata log (`__cluster_metadata-0`, fsynced) before the
//! answer goes out, so an acknowledged metadata change survives a controller restart. On
//! start the controller replays that log ([`Controller::replay`]). Brokers read the log with
//! a long-polling Fetch, served here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_partition_response::{
    PartitionData as AlterPartitionResult, TopicData as AlterPartitionTopicResult,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metadata_log::{decode_batches, encode_batch, METADATA_TOPIC};
use super::{now_ms, serve};
use crate::config::NodeConfig;
use crate::controller::records::{Endpoint, LeaderRecoveryState, MetadataRecord};
use crate::controller::{
    AlterPartitionRequest as CoreAlterPartition, ConfigChange, Controller, ControllerConfig,
    ControllerError, ElectionType,
};
use crate::storage::{FlushPolicy, LogConfig, PartitionLog};
use crate::wire::versions::api_versions_response;
use crate::wire::RequestHandler;

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

/// The controller's state: the state machine and its log, locked together so records reach
/// the log in offset order.
pub struct ControllerService {
    state: Mutex<State>,
    /// The metadata log's end offset, for long-polling fetches.
    log_end: watch::Sender<i64>,
}

struct State {
    controller: Controller,
    log: PartitionLog,
}

/// Starts the controller role: replays the metadata log, binds the controller listener,
/// and spawns the request server and the session timer.
pub async fn start(config: &NodeConfig) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let listener_cfg = config
        .controller_listener()
        .ok_or_else(|| anyhow::anyhow!("no controller listener in `listeners`"))?;
    let addr = NodeConfig::bind_addr(listener_cfg)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (controller listener): {e}"))?;
    let service = Arc::new(ControllerService::open(config)?);
    tracing::info!(node = config.node_id, %addr, "controller listening");
    let rebalance_every = config
        .auto_leader_rebalance_enable
        .then_some(config.leader_imbalance_check_interval_seconds * 1000);
    let ticker = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut last_rebalance = now_ms();
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = now_ms();
                service.commit(|c| {
                    let fenced = c.tick(now);
                    if !fenced.is_empty() {
                        tracing::info!(?fenced, "broker sessions expired: fenced");
                    }
                });
                if rebalance_every.is_some_and(|every| now.saturating_sub(last_rebalance) >= every)
                {
                    last_rebalance = now;
                    service.commit(elect_preferred_leaders);
                }
            }
        })
    };
    let server = tokio::spawn(serve(listener, service, config.socket_request_max_bytes));
    Ok(vec![ticker, server])
}

impl ControllerService {
    /// Opens the metadata log under the node's log dir and replays it.
    pub fn open(config: &NodeConfig) -> anyhow::Result<ControllerService> {
        let dir = config.log_dir().join(format!("{METADATA_TOPIC}-0"));
        let log = PartitionLog::open(
            &dir,
            LogConfig {
                flush_policy: FlushPolicy::EveryBatch,
                ..LogConfig::default()
            },
        )?;
        let mut records = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 4 << 20)?;
            if bytes.is_empty() {
                break;
            }
            let batch = decode_batches(bytes)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            offset = last + 1;
            records.extend(
                batch
                    .into_iter()
                    .filter(|(o, _)| *o >= log.log_start_offset()),
            );
        }
        let replayed = records.len();
        let controller = Controller::replay(controller_config(config), records, now_ms());
        tracing::info!(records = replayed, "metadata log replayed");
        let (log_end, _) = watch::channel(log.log_end_offset());
        Ok(ControllerService {
            state: Mutex::new(State { controller, log }),
            log_end,
        })
    }

    /// Runs one controller operation and makes its records durable before returning.
    fn commit<T>(&self, op: impl FnOnce(&mut Controller) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let out = op(&mut state.controller);
        let records = state.controller.drain_records();
        if let Some(&(first, _)) = records.first() {
            let values: Vec<MetadataRecord> = records.into_iter().map(|(_, r)| r).collect();
            let result = encode_batch(&values, now_ms() as i64)
                .and_then(|batch| Ok(state.log.append_as_leader(batch, 0)?));
            match result {
                Ok(info) if info.first_offset == first => {}
                Ok(info) => tracing::error!(
                    expected = first,
                    got = info.first_offset,
                    "metadata log and controller disagree on offsets"
                ),
                Err(e) => tracing::error!(error = %e, "cannot write the metadata log"),
            }
            let end = state.log.log_end_offset();
            state.log.set_high_watermark(end);
            self.log_end.send_replace(end);
        }
        out
    }

    /// `validate_only` requests run the operation on a copy of the controller and keep
    /// nothing; others commit.
    fn commit_or_validate<T>(
        &self,
        validate_only: bool,
        op: impl FnOnce(&mut Controller) -> T,
    ) -> T {
        if validate_only {
            let mut scratch = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .controller
                .clone();
            op(&mut scratch)
        } else {
            self.commit(op)
        }
    }

    fn read_log(&self, from: i64, max_bytes: usize) -> Result<(Bytes, i64), i16> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let end = state.log.log_end_offset();
        match state.log.read(from, max_bytes) {
            Ok(bytes) => Ok((bytes, end)),
            Err(e) => Err(e.kafka_error_code()),
        }
    }
}

/// Kafka's automatic preferred-leader election (`auto.leader.rebalance.enable`): moves
/// leadership back to each partition's first replica when it is a live ISR member (the
/// model's `MoveLeader`).
fn elect_preferred_leaders(c: &mut Controller) {
    let image = c.image();
    let wanted: Vec<(String, i32)> = image
        .topics()
        .flat_map(|t| {
            t.partitions.iter().enumerate().filter_map(|(i, p)| {
                let preferred = *p.replicas.first()?;
                (p.leader != preferred && p.isr.contains(&preferred) && image.is_live(preferred))
                    .then(|| (t.name.clone(), i as i32))
            })
        })
        .collect();
    if !wanted.is_empty() {
        let moved = c
            .elect_leaders(ElectionType::Preferred, &wanted)
            .iter()
            .filter(|r| r.is_ok())
            .count();
        tracing::info!(moved, "preferred leader election");
    }
}

fn controller_config(config: &NodeConfig) -> ControllerConfig {
    ControllerConfig {
        broker_session_timeout_ms: config.broker_session_timeout_ms,
        broker_heartbeat_interval_ms: config.broker_heartbeat_interval_ms,
        default_replication_factor: config.default_replication_factor,
        num_partitions: config.num_partitions,
        min_insync_replicas: config.min_insync_replicas,
        unclean_leader_election_enable: config.unclean_leader_election_enable,
        ..ControllerConfig::default()
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn error_parts(e: &ControllerError) -> (i16, Option<StrBytes>) {
    (e.code(), Some(str_bytes(&e.to_string())))
}

impl RequestHandler for ControllerService {
    async fn handle(
        &self,
        header: RequestHeader,
        request: RequestKind,
    ) -> anyhow::Result<Option<ResponseKind>> {
        let v = header.request_api_version;
        let now = now_ms();
        Ok(Some(match request {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_response(0)),
            RequestKind::BrokerRegistration(req) => {
                let endpoints = req
                    .listeners
                    .iter()
                    .map(|l| Endpoint {
                        name: l.name.to_string(),
                        host: l.host.to_string(),
                        port: l.port,
                        security_protocol: l.security_protocol,
                    })
                    .collect();
                let result = self.commit(|c| {
                    c.register_broker(
                        req.broker_id.0,
                        &req.incarnation_id.to_string(),
                        endpoints,
                        req.rack.as_ref().map(|r| r.to_string()),
                        req.previous_broker_epoch,
                        now,
                    )
                });
                let mut resp = BrokerRegistrationResponse::default().with_broker_epoch(-1);
                match result {
                    Ok(epoch) => resp.broker_epoch = epoch,
                    Err(e) => resp.error_code = e.code(),
                }
                ResponseKind::BrokerRegistration(resp)
            }
            RequestKind::BrokerHeartbeat(req) => {
                let result = self.commit(|c| {
                    c.heartbeat(
                        req.broker_id.0,
                        req.broker_epoch,
                        req.current_metadata_offset,
                        req.want_fence,
                        req.want_shut_down,
                        now,
                    )
                });
                let mut resp = BrokerHeartbeatResponse::default();
                match result {
                    Ok(r) => {
                        resp.is_caught_up = r.is_caught_up;
                        resp.is_fenced = r.is_fenced;
                        resp.should_shut_down = r.should_shut_down;
                    }
                    Err(e) => {
                        resp.error_code = e.code();
                        resp.is_fenced = true;
                    }
                }
                ResponseKind::BrokerHeartbeat(resp)
            }
            RequestKind::AlterPartition(req) => {
                ResponseKind::AlterPartition(self.alter_partition(req))
            }
            RequestKind::AllocateProducerIds(req) => {
                let result =
                    self.commit(|c| c.allocate_producer_ids(req.broker_id.0, req.broker_epoch));
                let mut resp = AllocateProducerIdsResponse::default();
                match result {
                    Ok((start, len)) => {
                        resp.producer_id_start = ProducerId(start);
                        resp.producer_id_len = len;
                    }
                    Err(e) => resp.error_code = e.code(),
                }
                ResponseKind::AllocateProducerIds(resp)
            }
            RequestKind::CreateTopics(req) => {
                ResponseKind::CreateTopics(self.create_topics(v, req))
            }
            RequestKind::DeleteTopics(req) => {
                ResponseKind::DeleteTopics(self.delete_topics(v, req))
            }
            RequestKind::CreatePartitions(req) => {
                ResponseKind::CreatePartitions(self.create_partitions(req))
            }
            RequestKind::IncrementalAlterConfigs(req) => {
                ResponseKind::IncrementalAlterConfigs(self.alter_configs(req))
            }
            RequestKind::Fetch(req) => ResponseKind::Fetch(self.fetch_metadata(req).await),
            other => anyhow::bail!("the controller listener does not serve {other:?}"),
        }))
    }
}

impl ControllerService {
    fn alter_partition(&self, req: AlterPartitionRequest) -> AlterPartitionResponse {
        let mut resp = AlterPartitionResponse::default();
        for topic in req.topics {
            let mut tr = AlterPartitionTopicResult::default().with_topic_id(topic.topic_id);
            for p in topic.partitions {
                let core = CoreAlterPartition {
                    topic_id: *topic.topic_id.as_bytes(),
                    partition: p.partition_index,
                    leader_epoch: p.leader_epoch,
                    new_isr_with_epochs: p
                        .new_isr_with_epochs
                        .iter()
                        .map(|b| (b.broker_id.0, b.broker_epoch))
                        .collect(),
                    partition_epoch: p.partition_epoch,
                    leader_recovery_state: LeaderRecoveryState::from_i8(p.leader_recovery_state)
                        .unwrap_or_default(),
                };
                let result =
                    self.commit(|c| c.alter_partition(req.broker_id.0, req.broker_epoch, &core));
                let mut pr =
                    AlterPartitionResult::default().with_partition_index(p.partition_index);
                match result {
                    Ok(image) => {
                        pr.leader_id = BrokerId(image.leader);
                        pr.leader_epoch = image.leader_epoch;
                        pr.partition_epoch = image.partition_epoch;
                        pr.isr = image.isr.iter().map(|&b| BrokerId(b)).collect();
                        pr.leader_recovery_state = image.leader_recovery_state.as_i8();
                    }
                    Err(e) => pr.error_code = e.code(),
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }

    fn create_topics(&self, version: i16, req: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut resp = CreateTopicsResponse::default();
        for t in req.topics {
            let name = t.name.0.to_string();
            let manual = (!t.assignments.is_empty()).then(|| {
                let mut a: Vec<_> = t.assignments.iter().collect();
                a.sort_by_key(|a| a.partition_index);
                a.iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect::<Vec<Vec<i32>>>()
            });
            let configs: Vec<(String, String)> = t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let create = |c: &mut Controller| {
                c.create_topic(
                    &name,
                    (t.num_partitions >= 0).then_some(t.num_partitions),
                    (t.replication_factor >= 0).then_some(t.replication_factor),
                    manual.clone(),
                    &configs,
                )
                .map(|id| {
                    let topic = c.image().topic(&name);
                    let partitions = topic.map_or(0, |t| t.partitions.len() as i32);
                    let rf = topic
                        .and_then(|t| t.partitions.first())
                        .map_or(0, |p| p.replicas.len() as i16);
                    (id, partitions, rf)
                })
            };
            let result = self.commit_or_validate(req.validate_only, create);
            let mut r = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            match result {
                Ok((id, partitions, rf)) => {
                    if version >= 7 {
                        r.topic_id = uuid::Uuid::from_bytes(id);
                    }
                    if version >= 5 {
                        r.num_partitions = partitions;
                        r.replication_factor = rf;
                    }
                }
                Err(e) => {
                    let (code, msg) = error_parts(&e);
                    r.error_code = code;
                    if version >= 1 {
                        r.error_message = msg;
                    }
                }
            }
            resp.topics.push(r);
        }
        resp
    }

    fn delete_topics(&self, version: i16, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
        let mut resp = DeleteTopicsResponse::default();
        let names: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
                .collect()
        };
        for (name, id) in names {
            let name = name.or_else(|| {
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state
                    .controller
                    .image()
                    .topic_by_id(id.as_bytes())
                    .map(|t| t.name.clone())
            });
            let mut r = DeletableTopicResult::default().with_topic_id(id);
            match name {
                None => r.error_code = 100, // UNKNOWN_TOPIC_ID
                Some(name) => {
                    r.name = Some(TopicName(str_bytes(&name)));
                    match self.commit(|c| c.delete_topic(&name)) {
                        Ok(id) if version >= 6 => r.topic_id = uuid::Uuid::from_bytes(id),
                        Ok(_) => {}
                        Err(e) => {
                            let (code, msg) = error_parts(&e);
                            r.error_code = code;
                            if version >= 5 {
                                r.error_message = msg;
                            }
                        }
                    }
                }
            }
            resp.responses.push(r);
        }
        resp
    }

    fn create_partitions(&self, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
        let mut resp = CreatePartitionsResponse::default();
        for t in req.topics {
            let name = t.name.0.to_string();
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if t.assignments.is_some() {
                r.error_code = INVALID_REQUEST;
                r.error_message = Some(str_bytes(
                    "manual assignment of new partitions is not supported",
                ));
            } else {
                let result = self
                    .commit_or_validate(req.validate_only, |c| c.create_partitions(&name, t.count));
                if let Err(e) = result {
                    (r.error_code, r.error_message) = error_parts(&e);
                }
            }
            resp.results.push(r);
        }
        resp
    }

    fn alter_configs(
        &self,
        req: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        const TOPIC: i8 = 2;
        let mut resp = IncrementalAlterConfigsResponse::default();
        for res in req.resources {
            let mut r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if res.resource_type != TOPIC {
                r.error_code = INVALID_REQUEST;
                r.error_message = Some(str_bytes("only topic configs can be altered"));
                resp.responses.push(r);
                continue;
            }
            let mut changes = Vec::new();
            for c in &res.configs {
                match (c.config_operation, &c.value) {
                    (0, Some(v)) => {
                        changes.push(ConfigChange::Set(c.name.to_string(), v.to_string()))
                    }
                    (1, _) => changes.push(ConfigChange::Delete(c.name.to_string())),
                    _ => {
                        r.error_code = INVALID_REQUEST;
                        r.error_message = Some(str_bytes(&format!(
                            "config operation {} on {} is not supported (SET and DELETE are)",
                            c.config_operation, c.name
                        )));
                    }
                }
            }
            if r.error_code == 0 {
                let topic = res.resource_name.to_string();
                let result = self
                    .commit_or_validate(req.validate_only, |c| c.alter_configs(&topic, &changes));
                if let Err(e) = result {
                    (r.error_code, r.error_message) = error_parts(&e);
                }
            }
            resp.responses.push(r);
        }
        resp
    }

    /// Brokers follow the metadata log with this Fetch, long-polling for new records.
    async fn fetch_metadata(&self, req: FetchRequest) -> FetchResponse {
        let mut resp = FetchResponse::default();
        let Some((topic, part)) = req
            .topics
            .first()
            .and_then(|t| Some((t, t.partitions.first()?)))
        else {
            resp.error_code = INVALID_REQUEST;
            return resp;
        };
        let mut pr = PartitionData::default()
            .with_partition_index(part.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        if topic.topic.0.as_str() != METADATA_TOPIC || part.partition != 0 {
            pr.error_code = UNSUPPORTED_VERSION;
        } else {
            let from = part.fetch_offset;
            let mut end_rx = self.log_end.subscribe();
            let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, 10_000) as u64);
            if *end_rx.borrow_and_update() <= from && !max_wait.is_zero() {
                let _ = tokio::time::timeout(max_wait, end_rx.wait_for(|&end| end > from)).await;
            }
            match self.read_log(from, part.partition_max_bytes.max(1) as usize) {
                Ok((bytes, end)) => {
                    pr.high_watermark = end;
                    pr.last_stable_offset = end;
                    pr.log_start_offset = 0;
                    pr.records = Some(bytes);
                }
                Err(code) => pr.error_code = code,
            }
        }
        resp.responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(vec![pr]),
        );
        resp
    }
}
