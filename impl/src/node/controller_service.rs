//! The controller role: the [`Controller`] state machine behind the KRaft quorum.
//!
//! Controllers form the quorum of `controller.quorum.voters` ([`QuorumDriver`]); only its
//! leader is the active controller. There each request runs one controller operation, whose
//! records are appended through the quorum (`__cluster_metadata-0`, fsynced on every voter
//! that acknowledges) and answered only after they commit, so an acknowledged metadata
//! change survives the loss of any minority of controllers. Other voters answer
//! NOT_CONTROLLER, and brokers move on to the next voter. Brokers read the committed log
//! with a long-polling Fetch, served by the quorum leader.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_response::{
    PartitionData as AlterPartitionResult, TopicData as AlterPartitionTopicResult,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::clock::now_ms;
use super::listener::serve;
use super::quorum_driver::{NotActive, QuorumDriver};
use crate::config::NodeConfig;
use crate::controller::records::{Endpoint, LeaderRecoveryState};
use crate::controller::{
    AlterPartitionRequest as CoreAlterPartition, ConfigChange, Controller, ControllerConfig,
    ControllerError, ElectionType,
};
use crate::wire::versions::api_versions_response;
use crate::wire::RequestHandler;

use crate::error_codes::{INVALID_REQUEST, NOT_CONTROLLER, UNKNOWN_TOPIC_ID};

/// The controller role: the quorum voter and, while it leads, the active controller.
pub struct ControllerService {
    quorum: Arc<QuorumDriver>,
}

/// Starts the controller role: opens the metadata log and quorum state, binds the
/// controller listener, and spawns the quorum's tasks, the request server and the session
/// timer. Returns them with the quorum driver (to resign on a clean shutdown).
pub async fn start(
    config: &NodeConfig,
) -> anyhow::Result<(Vec<JoinHandle<()>>, Arc<QuorumDriver>)> {
    let listener_cfg = config
        .controller_listener()
        .ok_or_else(|| anyhow::anyhow!("no controller listener in `listeners`"))?;
    let addr = NodeConfig::bind_addr(listener_cfg)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (controller listener): {e}"))?;
    let (quorum, mut tasks) = QuorumDriver::start(config, controller_config(config))?;
    let service = Arc::new(ControllerService {
        quorum: quorum.clone(),
    });
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
                let _ = service
                    .commit(|c| {
                        let fenced = c.tick(now);
                        if !fenced.is_empty() {
                            tracing::info!(?fenced, "broker sessions expired: fenced");
                        }
                    })
                    .await;
                if rebalance_every.is_some_and(|every| now.saturating_sub(last_rebalance) >= every)
                {
                    last_rebalance = now;
                    let _ = service.commit(elect_preferred_leaders).await;
                }
            }
        })
    };
    tasks.push(ticker);
    tasks.push(tokio::spawn(serve(
        listener,
        service,
        config.socket_request_max_bytes,
    )));
    Ok((tasks, quorum))
}

impl ControllerService {
    /// Runs one controller operation on the active controller; returns after its records
    /// commit.
    async fn commit<T>(&self, op: impl FnOnce(&mut Controller) -> T) -> Result<T, NotActive> {
        self.quorum.commit(op).await
    }

    /// `validate_only` requests run the operation on a copy of the controller and keep
    /// nothing; others commit.
    async fn commit_or_validate<T>(
        &self,
        validate_only: bool,
        op: impl FnOnce(&mut Controller) -> T,
    ) -> Result<T, NotActive> {
        if validate_only {
            let mut scratch = self.quorum.controller_snapshot()?;
            Ok(op(&mut scratch))
        } else {
            self.commit(op).await
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
        Ok(Some(match request {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_response(0)),
            RequestKind::Vote(req) => ResponseKind::Vote(self.quorum.handle_vote(&req)),
            // A broker of another cluster is refused by every controller, active or not.
            RequestKind::BrokerRegistration(req)
                if !self
                    .quorum
                    .cluster_id_matches(&Some(req.cluster_id.clone())) =>
            {
                ResponseKind::BrokerRegistration(
                    BrokerRegistrationResponse::default()
                        .with_broker_epoch(-1)
                        .with_error_code(crate::error_codes::INCONSISTENT_CLUSTER_ID),
                )
            }
            RequestKind::BeginQuorumEpoch(req) => {
                ResponseKind::BeginQuorumEpoch(self.quorum.handle_begin_quorum_epoch(&req))
            }
            RequestKind::EndQuorumEpoch(req) => {
                ResponseKind::EndQuorumEpoch(self.quorum.handle_end_quorum_epoch(&req))
            }
            RequestKind::DescribeQuorum(_) => {
                ResponseKind::DescribeQuorum(self.quorum.describe_quorum())
            }
            RequestKind::Fetch(req) => ResponseKind::Fetch(self.quorum.fetch(req).await),
            RequestKind::FetchSnapshot(req) => {
                ResponseKind::FetchSnapshot(self.quorum.fetch_snapshot(&req))
            }
            other => {
                let fallback = not_controller_response(&other);
                match self.handle_active(v, other).await {
                    Ok(resp) => resp,
                    Err(NotActive) => match fallback {
                        Some(resp) => resp,
                        None => {
                            anyhow::bail!("the controller listener does not serve this request")
                        }
                    },
                }
            }
        }))
    }
}

impl ControllerService {
    /// Requests only the active controller serves.
    async fn handle_active(&self, v: i16, request: RequestKind) -> Result<ResponseKind, NotActive> {
        let now = now_ms();
        Ok(match request {
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
                let result = self
                    .commit(|c| {
                        c.register_broker(
                            req.broker_id.0,
                            &req.incarnation_id.to_string(),
                            endpoints,
                            req.rack.as_ref().map(|r| r.to_string()),
                            req.previous_broker_epoch,
                            now,
                        )
                    })
                    .await?;
                let mut resp = BrokerRegistrationResponse::default().with_broker_epoch(-1);
                match result {
                    Ok(epoch) => resp.broker_epoch = epoch,
                    Err(e) => resp.error_code = e.code(),
                }
                ResponseKind::BrokerRegistration(resp)
            }
            RequestKind::BrokerHeartbeat(req) => {
                let result = self
                    .commit(|c| {
                        c.heartbeat(
                            req.broker_id.0,
                            req.broker_epoch,
                            req.current_metadata_offset,
                            req.want_fence,
                            req.want_shut_down,
                            now,
                        )
                    })
                    .await?;
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
                ResponseKind::AlterPartition(self.alter_partition(req).await?)
            }
            RequestKind::AssignReplicasToDirs(req) => {
                ResponseKind::AssignReplicasToDirs(self.assign_replicas_to_dirs(req).await?)
            }
            RequestKind::AllocateProducerIds(req) => {
                let result = self
                    .commit(|c| c.allocate_producer_ids(req.broker_id.0, req.broker_epoch))
                    .await?;
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
                ResponseKind::CreateTopics(self.create_topics(v, req).await?)
            }
            RequestKind::DeleteTopics(req) => {
                ResponseKind::DeleteTopics(self.delete_topics(v, req).await?)
            }
            RequestKind::CreatePartitions(req) => {
                ResponseKind::CreatePartitions(self.create_partitions(req).await?)
            }
            RequestKind::IncrementalAlterConfigs(req) => {
                ResponseKind::IncrementalAlterConfigs(self.alter_configs(req).await?)
            }
            other => {
                tracing::debug!(
                    ?other,
                    "the controller listener does not serve this request"
                );
                return Err(NotActive);
            }
        })
    }
}

impl ControllerService {
    /// AssignReplicasToDirs (KIP-858): one commit for the whole request, one error code per
    /// partition in the request's shape.
    async fn assign_replicas_to_dirs(
        &self,
        req: AssignReplicasToDirsRequest,
    ) -> Result<AssignReplicasToDirsResponse, NotActive> {
        use kafka_protocol::messages::assign_replicas_to_dirs_response as r;
        let assignments: Vec<([u8; 16], i32, [u8; 16])> = req
            .directories
            .iter()
            .flat_map(|d| {
                d.topics.iter().flat_map(move |t| {
                    t.partitions
                        .iter()
                        .map(move |p| (*t.topic_id.as_bytes(), p.partition_index, *d.id.as_bytes()))
                })
            })
            .collect();
        let result = self
            .commit(|c| c.assign_replicas_to_dirs(req.broker_id.0, req.broker_epoch, &assignments))
            .await?;
        let mut resp = AssignReplicasToDirsResponse::default();
        let codes = match result {
            Ok(each) => each
                .into_iter()
                .map(|e| e.err().map_or(0, |e| e.code()))
                .collect::<Vec<i16>>(),
            Err(e) => {
                resp.error_code = e.code();
                return Ok(resp);
            }
        };
        let mut codes = codes.into_iter();
        for d in &req.directories {
            let mut dr = r::DirectoryData::default().with_id(d.id);
            for t in &d.topics {
                let mut tr = r::TopicData::default().with_topic_id(t.topic_id);
                for p in &t.partitions {
                    tr.partitions.push(
                        r::PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(codes.next().unwrap_or(0)),
                    );
                }
                dr.topics.push(tr);
            }
            resp.directories.push(dr);
        }
        Ok(resp)
    }

    async fn alter_partition(
        &self,
        req: AlterPartitionRequest,
    ) -> Result<AlterPartitionResponse, NotActive> {
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
                let result = self
                    .commit(|c| c.alter_partition(req.broker_id.0, req.broker_epoch, &core))
                    .await?;
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
        Ok(resp)
    }

    async fn create_topics(
        &self,
        version: i16,
        req: CreateTopicsRequest,
    ) -> Result<CreateTopicsResponse, NotActive> {
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
            let result = self.commit_or_validate(req.validate_only, create).await?;
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
        Ok(resp)
    }

    async fn delete_topics(
        &self,
        version: i16,
        req: DeleteTopicsRequest,
    ) -> Result<DeleteTopicsResponse, NotActive> {
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
            let name = match name {
                Some(n) => Some(n),
                None => self
                    .quorum
                    .controller_snapshot()?
                    .image()
                    .topic_by_id(id.as_bytes())
                    .map(|t| t.name.clone()),
            };
            let mut r = DeletableTopicResult::default().with_topic_id(id);
            match name {
                None => r.error_code = UNKNOWN_TOPIC_ID,
                Some(name) => {
                    r.name = Some(TopicName(str_bytes(&name)));
                    match self.commit(|c| c.delete_topic(&name)).await? {
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
        Ok(resp)
    }

    async fn create_partitions(
        &self,
        req: CreatePartitionsRequest,
    ) -> Result<CreatePartitionsResponse, NotActive> {
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
                    .commit_or_validate(req.validate_only, |c| c.create_partitions(&name, t.count))
                    .await?;
                if let Err(e) = result {
                    (r.error_code, r.error_message) = error_parts(&e);
                }
            }
            resp.results.push(r);
        }
        Ok(resp)
    }

    async fn alter_configs(
        &self,
        req: IncrementalAlterConfigsRequest,
    ) -> Result<IncrementalAlterConfigsResponse, NotActive> {
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
                    .commit_or_validate(req.validate_only, |c| c.alter_configs(&topic, &changes))
                    .await?;
                if let Err(e) = result {
                    (r.error_code, r.error_message) = error_parts(&e);
                }
            }
            resp.responses.push(r);
        }
        Ok(resp)
    }
}

/// The NOT_CONTROLLER answer to a request only the active controller serves, with the
/// error where each response carries it (per topic or per resource for admin requests).
fn not_controller_response(request: &RequestKind) -> Option<ResponseKind> {
    const E: i16 = NOT_CONTROLLER;
    Some(match request {
        RequestKind::BrokerRegistration(_) => ResponseKind::BrokerRegistration(
            BrokerRegistrationResponse::default()
                .with_error_code(E)
                .with_broker_epoch(-1),
        ),
        RequestKind::BrokerHeartbeat(_) => ResponseKind::BrokerHeartbeat(
            BrokerHeartbeatResponse::default()
                .with_error_code(E)
                .with_is_fenced(true),
        ),
        RequestKind::AlterPartition(_) => {
            ResponseKind::AlterPartition(AlterPartitionResponse::default().with_error_code(E))
        }
        RequestKind::AllocateProducerIds(_) => ResponseKind::AllocateProducerIds(
            AllocateProducerIdsResponse::default().with_error_code(E),
        ),
        RequestKind::AssignReplicasToDirs(_) => ResponseKind::AssignReplicasToDirs(
            AssignReplicasToDirsResponse::default().with_error_code(E),
        ),
        RequestKind::CreateTopics(req) => ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|t| {
                        CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(E)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteTopics(req) => {
            let mut results: Vec<DeletableTopicResult> = req
                .topics
                .iter()
                .map(|t| {
                    DeletableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_error_code(E)
                })
                .collect();
            results.extend(req.topic_names.iter().map(|n| {
                DeletableTopicResult::default()
                    .with_name(Some(n.clone()))
                    .with_error_code(E)
            }));
            ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(results))
        }
        RequestKind::CreatePartitions(req) => ResponseKind::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                req.topics
                    .iter()
                    .map(|t| {
                        CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(E)
                    })
                    .collect(),
            ),
        ),
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(
                req.resources
                    .iter()
                    .map(|r| {
                        AlterConfigsResourceResponse::default()
                            .with_resource_type(r.resource_type)
                            .with_resource_name(r.resource_name.clone())
                            .with_error_code(E)
                    })
                    .collect(),
            ),
        ),
        _ => return None,
    })
}
