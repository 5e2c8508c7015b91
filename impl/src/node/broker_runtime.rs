//! The broker role's background work, all of it I/O around the deterministic cores:
//!
//! * registration with the controller and heartbeats (KIP-631), which keep the broker
//!   unfenced;
//! * following the controller's metadata log with a long-polling Fetch, applying its
//!   records to the local [`MetadataImage`], and turning partition records into
//!   `become_leader` / `become_follower` on the hosted replicas; a Fetch below the
//!   controller's log start is answered with its snapshot id, and the broker fetches that
//!   snapshot (FetchSnapshot, KIP-630) and rebuilds its image from it;
//! * one follower fetcher per leader broker (Kafka's `ReplicaFetcherThread`), which sends
//!   the replicas' own fetch requests and hands the answers back to them;
//! * the AlterPartition sender for the leaders' ISR proposals;
//! * a timer driving produce timeouts, ISR expiry, the flush policy and the
//!   high-watermark checkpoint.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{
    BrokerState, PartitionData as AlterPartitionData, TopicData as AlterTopicData,
};
use kafka_protocol::messages::broker_registration_request::Listener as RegistrationListener;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::broker_api::BrokerApi;
use super::meta_properties;
use super::metadata_log::{decode_batches, METADATA_TOPIC};
use super::metadata_snapshot;
use super::partitions::{OutgoingAlterPartition, PartitionSlot, ReplicaManager, TopicPartition};
use super::repeated_log::RepeatedLog;
use super::view::{BrokerView, ClusterView, PartitionView, TopicView};
use super::{new_shared, now_ms, serve, NodeShared};
use crate::client::Connection;
use crate::config::NodeConfig;
use crate::controller::image::MetadataImage;
use crate::controller::records::ConfigResourceType;
use crate::replication::{
    AlterPartitionResponse, EpochEndOffset, FetchRequestPartition,
    FetchResponse as ReplicaFetchResponse, FetchResult, FollowerFetchOutcome, PartitionState,
    ReplicaConfig,
};
use crate::storage::{FlushPolicy, LogConfig, TimestampType};

/// Starts the broker role: binds its listener, registers, catches up with the metadata log,
/// then spawns its tasks.
pub async fn start(config: NodeConfig) -> anyhow::Result<(Arc<NodeShared>, Vec<JoinHandle<()>>)> {
    // Every broker listener is bound before anything else, so a port in use or a host that
    // does not resolve stops the node at once, naming the listener.
    let mut bound = Vec::new();
    for listener_cfg in config.broker_listeners() {
        let addr = NodeConfig::bind_addr(listener_cfg)?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {addr} (listener {} in `listeners`): {e}",
                listener_cfg.name
            )
        })?;
        bound.push((listener_cfg.name.clone(), addr, listener));
    }
    if bound.is_empty() {
        anyhow::bail!("no broker listener in `listeners`");
    }

    let log_config = LogConfig {
        segment_bytes: config.log_segment_bytes.min(i32::MAX as u64),
        max_batch_bytes: config.message_max_bytes,
        flush_policy: match (
            config.log_flush_interval_messages,
            config.log_flush_interval_ms,
        ) {
            (Some(1), _) => FlushPolicy::EveryBatch,
            (Some(n), _) => FlushPolicy::EveryMessages(n),
            (None, Some(ms)) => FlushPolicy::EveryMillis(ms),
            (None, None) => FlushPolicy::Os,
        },
        ..LogConfig::default()
    };
    let replica_config = ReplicaConfig {
        broker_id: config.node_id,
        min_insync_replicas: config.min_insync_replicas.max(1) as usize,
        replica_lag_time_max_ms: config.replica_lag_time_max_ms,
        faults: crate::faults::Faults::default(),
    };
    let (replicas, alter_rx) =
        ReplicaManager::new(config.log_dir().to_path_buf(), log_config, replica_config);
    let cluster_id = config.effective_cluster_id();
    let shared = Arc::new(new_shared(config.clone(), cluster_id, replicas));

    // KIP-966: a broker that shut down cleanly registers with its previous broker epoch and
    // stays an eligible leader; after a crash it registers with -1 and the controller removes
    // it from every ELR (its unflushed tail may be gone).
    let previous_epoch = take_clean_shutdown_marker(&config);
    shared.broker_epoch.store(previous_epoch, Ordering::Release);
    register(&shared).await;
    // Catch up before serving, so the first Metadata answer is not empty.
    for _ in 0..50 {
        match fetch_metadata_once(&shared, 0).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "initial metadata fetch");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    let mut tasks = Vec::new();
    for (name, addr, listener) in bound {
        let api = Arc::new(BrokerApi {
            shared: shared.clone(),
            listener: name.clone(),
        });
        tasks.push(tokio::spawn(serve(
            listener,
            api,
            config.socket_request_max_bytes,
        )));
        tracing::info!(broker = config.node_id, listener = %name, %addr, "broker listening");
    }
    tasks.push(tokio::spawn(heartbeat_loop(shared.clone())));
    tasks.push(tokio::spawn(metadata_loop(shared.clone())));
    tasks.push(tokio::spawn(alter_partition_loop(shared.clone(), alter_rx)));
    tasks.push(tokio::spawn(fetcher_manager(shared.clone())));
    tasks.push(tokio::spawn(timer_loop(shared.clone())));
    tasks.push(tokio::spawn(super::offline_logs::run(
        shared.clone(),
        own_directory_id(&config),
    )));
    tasks.push(tokio::spawn(super::groups::run(shared.clone())));
    Ok((shared, tasks))
}

/// How long a clean shutdown keeps asking the controller to move leadership away.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Clean shutdown, as Kafka's controlled shutdown: heartbeats with `WantShutDown` until the
/// controller answers `ShouldShutDown` (it has fenced the broker and moved its leaderships
/// away), each on its own short-lived connection so that a dead connection to a controller
/// that has gone costs one attempt, not the whole shutdown; then flush. If no controller
/// answers in time, the broker stops anyway and its session expires as after a crash.
pub async fn shutdown(shared: &NodeShared) {
    let req = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(shared.config.node_id))
        .with_broker_epoch(shared.broker_epoch())
        .with_current_metadata_offset(shared.view().metadata_offset - 1)
        .with_want_shut_down(true);
    let deadline = tokio::time::Instant::now() + CONTROLLED_SHUTDOWN_TIMEOUT;
    let mut conn: Option<Connection> = None;
    loop {
        let request = RequestKind::BrokerHeartbeat(req.clone());
        let timeout = Duration::from_secs(1);
        match send_to_controller(shared, &mut conn, 1, request, timeout).await {
            Ok(ResponseKind::BrokerHeartbeat(r)) if r.should_shut_down => {
                tracing::info!("controlled shutdown: the controller moved leadership away");
                break;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "controlled shutdown: asking again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(ResponseKind::BrokerHeartbeat(r)) if r.error_code != 0 => {
                tracing::warn!(code = r.error_code, "controlled shutdown refused");
                break;
            }
            _ if tokio::time::Instant::now() >= deadline => {
                tracing::warn!("no controller confirmed the controlled shutdown; stopping anyway");
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    shared.replicas.shutdown();
    let marker = shared.config.log_dir().join(CLEAN_SHUTDOWN_FILE);
    if let Err(e) = std::fs::write(&marker, shared.broker_epoch().to_string()) {
        tracing::warn!(error = %e, "cannot write the clean-shutdown marker");
    }
}

/// Written on clean shutdown with the broker epoch (Kafka's `.kafka_cleanshutdown`).
const CLEAN_SHUTDOWN_FILE: &str = ".osprey_cleanshutdown";

/// The broker epoch of the last clean shutdown, or -1 after a crash; removes the marker so
/// a crash after this start is not taken for a clean shutdown.
fn take_clean_shutdown_marker(config: &NodeConfig) -> i64 {
    let path = config.log_dir().join(CLEAN_SHUTDOWN_FILE);
    let epoch = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(-1);
    let _ = std::fs::remove_file(&path);
    epoch
}

// -----------------------------------------------------------------------------------------
// Registration and heartbeats

async fn register(shared: &NodeShared) {
    let config = &shared.config;
    let listeners: Vec<RegistrationListener> = config
        .advertised_broker_listeners()
        .into_iter()
        .map(|l| {
            RegistrationListener::default()
                .with_name(StrBytes::from_string(l.name))
                .with_host(StrBytes::from_string(l.host))
                .with_port(l.port)
                .with_security_protocol(0)
        })
        .collect();
    let incarnation = incarnation_id(config);
    loop {
        let req = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(config.node_id))
            .with_cluster_id(StrBytes::from_string(shared.cluster_id.clone()))
            .with_incarnation_id(incarnation)
            .with_listeners(listeners.clone())
            .with_previous_broker_epoch(shared.broker_epoch());
        match shared
            .controller_request(3, RequestKind::BrokerRegistration(req))
            .await
        {
            Ok(ResponseKind::BrokerRegistration(r)) if r.error_code == 0 => {
                shared.broker_epoch.store(r.broker_epoch, Ordering::Release);
                tracing::info!(
                    broker = config.node_id,
                    broker_epoch = r.broker_epoch,
                    "registered"
                );
                return;
            }
            Ok(ResponseKind::BrokerRegistration(r)) => {
                tracing::warn!(code = r.error_code, "registration refused; retrying")
            }
            Ok(_) => tracing::warn!("unexpected registration response"),
            Err(e) => tracing::info!(error = %e, "controller not reachable yet"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// This broker's log directory id (`directory.id` in `meta.properties`), to which it assigns
/// a replica whose log is online again (KIP-858).
fn own_directory_id(config: &NodeConfig) -> crate::controller::records::DirectoryId {
    match meta_properties::format_or_check(
        config.log_dir(),
        config.cluster_id.as_deref(),
        config.node_id,
    ) {
        Ok(props) => *props.directory_id.as_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read meta.properties");
            *meta_properties::new_uuid(config.node_id).as_bytes()
        }
    }
}

/// The broker's incarnation id, kept in `meta.properties` in its log dir (beside
/// `cluster.id`, `node.id` and `directory.id`), so a restarted broker re-registers as the
/// same incarnation instead of waiting for its old session to expire; a second process
/// configured with the same node id but another log dir is still refused
/// (DUPLICATE_BROKER_REGISTRATION).
fn incarnation_id(config: &NodeConfig) -> uuid::Uuid {
    let dir = config.log_dir();
    match meta_properties::format_or_check(dir, config.cluster_id.as_deref(), config.node_id) {
        Ok(mut props) => match props.incarnation_id {
            Some(id) => id,
            None => {
                let id = meta_properties::new_uuid(config.node_id);
                props.incarnation_id = Some(id);
                if let Err(e) = props.store(dir) {
                    tracing::warn!(error = %e, "cannot keep the incarnation id");
                }
                id
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read meta.properties");
            meta_properties::new_uuid(config.node_id)
        }
    }
}

async fn heartbeat_loop(shared: Arc<NodeShared>) {
    let interval = Duration::from_millis(shared.config.broker_heartbeat_interval_ms);
    let mut conn: Option<Connection> = None;
    loop {
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(shared.config.node_id))
            .with_broker_epoch(shared.broker_epoch())
            .with_current_metadata_offset(shared.view().metadata_offset - 1);
        // A heartbeat that is not answered within two intervals is given up and sent again
        // on a new connection: a connection to a controller that went away (a container back
        // with another address) must not outlast the broker's session.
        let timeout = (interval * 2).max(Duration::from_secs(1));
        match send_to_controller(
            &shared,
            &mut conn,
            1,
            RequestKind::BrokerHeartbeat(req),
            timeout,
        )
        .await
        {
            Ok(ResponseKind::BrokerHeartbeat(r)) => match r.error_code {
                0 => {}
                // STALE_BROKER_EPOCH, BROKER_ID_NOT_REGISTERED: register again.
                77 | 109 => register(&shared).await,
                code => tracing::debug!(code, "heartbeat refused"),
            },
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// One request on a task's own controller connection; a voter that is gone or answers
/// NOT_CONTROLLER is dropped for the next one (the caller retries).
pub(crate) async fn send_to_controller(
    shared: &NodeShared,
    conn: &mut Option<Connection>,
    version: i16,
    request: RequestKind,
    timeout: Duration,
) -> anyhow::Result<ResponseKind> {
    if conn.is_none() {
        *conn = Some(shared.connect_controller().await?);
    }
    let c = conn
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("no controller reachable"))?;
    match c.send(version, request, timeout).await {
        Ok(r) if super::controller_service::is_not_controller(&r) => {
            *conn = None;
            shared.next_controller();
            anyhow::bail!("not the active controller")
        }
        Ok(r) => Ok(r),
        Err(e) => {
            *conn = None;
            shared.next_controller();
            Err(e)
        }
    }
}

// -----------------------------------------------------------------------------------------
// Metadata

/// The replica id a broker fetches the metadata log with: its node id, as Kafka's observers
/// do (so DescribeQuorum lists it), except on a combined node, whose id is a voter's: there
/// the quorum would count the broker's fetch offset as the voter's, so it fetches as an
/// anonymous observer (-1).
fn metadata_observer_id(config: &NodeConfig) -> i32 {
    let voter = config
        .controller_quorum_voters
        .iter()
        .any(|v| v.id == config.node_id);
    if voter {
        -1
    } else {
        config.node_id
    }
}

fn metadata_fetch_request(observer_id: i32, from_offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(observer_id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(from_offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(8 << 20)])])
}

/// Applies a metadata Fetch response; returns how many records were new. An answer naming
/// the controller's snapshot (the fetch offset is below its log start) fetches that
/// snapshot and replaces the image with it.
async fn apply_metadata_response(
    shared: &NodeShared,
    resp: FetchResponse,
) -> anyhow::Result<usize> {
    let Some(p) = resp.responses.into_iter().flat_map(|t| t.partitions).next() else {
        anyhow::bail!("empty metadata fetch response");
    };
    if p.error_code != 0 {
        anyhow::bail!("metadata fetch failed with error {}", p.error_code);
    }
    if p.snapshot_id.end_offset >= 0 {
        let id = crate::quorum::SnapshotId {
            end_offset: p.snapshot_id.end_offset,
            epoch: p.snapshot_id.epoch,
        };
        return install_metadata_snapshot(shared, id).await;
    }
    let records = match p.records {
        Some(bytes) if !bytes.is_empty() => decode_batches(bytes)?,
        _ => return Ok(0),
    };
    let mut image = shared.image.lock().unwrap_or_else(|e| e.into_inner());
    let mut applied = 0;
    for (offset, rec) in &records {
        if *offset > image.last_offset() {
            image.apply(*offset, rec);
            applied += 1;
        }
    }
    if applied > 0 {
        let view = build_view(&image, &shared.config);
        reconcile(shared, &view);
        shared.set_view(view);
    }
    Ok(applied)
}

/// Fetches the controller's snapshot `id` in chunks (FetchSnapshot) and replaces the
/// broker's image with the one it holds; returns how many records it held.
async fn install_metadata_snapshot(
    shared: &NodeShared,
    id: crate::quorum::SnapshotId,
) -> anyhow::Result<usize> {
    let mut bytes = bytes::BytesMut::new();
    loop {
        let req =
            metadata_snapshot::fetch_snapshot_request(-1, -1, id, bytes.len() as i64, 1 << 20);
        let resp = match shared
            .controller_request(0, RequestKind::FetchSnapshot(req))
            .await?
        {
            ResponseKind::FetchSnapshot(r) => r,
            _ => anyhow::bail!("unexpected response to FetchSnapshot"),
        };
        let Some(chunk) = metadata_snapshot::decode_fetch_snapshot_response(resp) else {
            anyhow::bail!("empty FetchSnapshot response");
        };
        if chunk.error_code != 0 {
            anyhow::bail!(
                "FetchSnapshot of {}-{} failed with error {}",
                id.end_offset,
                id.epoch,
                chunk.error_code
            );
        }
        if chunk.position != bytes.len() as i64 {
            anyhow::bail!("FetchSnapshot answered position {}", chunk.position);
        }
        bytes.extend_from_slice(&chunk.bytes);
        if bytes.len() as i64 >= chunk.size {
            break;
        }
        if chunk.bytes.is_empty() {
            anyhow::bail!("FetchSnapshot made no progress at {}", bytes.len());
        }
    }
    let what = format!("{} from the controller", metadata_snapshot::file_name(id));
    let records = metadata_snapshot::decode(id, bytes.freeze(), &what)?;
    let n = records.len();
    let mut image = shared.image.lock().unwrap_or_else(|e| e.into_inner());
    if image.last_offset() + 1 >= id.end_offset {
        // Already past it (another fetch got there first).
        return Ok(0);
    }
    *image = MetadataImage::from_snapshot(id.end_offset, &records);
    let view = build_view(&image, &shared.config);
    reconcile(shared, &view);
    shared.set_view(view);
    tracing::info!(
        broker = shared.config.node_id,
        end_offset = id.end_offset,
        epoch = id.epoch,
        records = n,
        "metadata image loaded from the controller's snapshot"
    );
    Ok(n.max(1))
}

/// One metadata Fetch from the controller (long-polling up to `max_wait_ms`), applied.
pub async fn fetch_metadata_once(shared: &NodeShared, max_wait_ms: i32) -> anyhow::Result<usize> {
    let from = shared
        .image
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_offset()
        + 1;
    let req = metadata_fetch_request(metadata_observer_id(&shared.config), from, max_wait_ms);
    match shared
        .controller_request(12, RequestKind::Fetch(req))
        .await?
    {
        ResponseKind::Fetch(resp) => apply_metadata_response(shared, resp).await,
        _ => anyhow::bail!("unexpected response to a metadata fetch"),
    }
}

async fn metadata_loop(shared: Arc<NodeShared>) {
    let mut conn: Option<Connection> = None;
    loop {
        let from = shared
            .image
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_offset()
            + 1;
        let req = metadata_fetch_request(metadata_observer_id(&shared.config), from, 500);
        // The long poll waits 500 ms; an answer later than that and a margin means the
        // connection is dead, and a broker must not serve old metadata for long.
        let timeout = Duration::from_millis(2_500);
        match send_to_controller(&shared, &mut conn, 12, RequestKind::Fetch(req), timeout).await {
            Ok(ResponseKind::Fetch(resp)) => {
                if let Err(e) = apply_metadata_response(&shared, resp).await {
                    tracing::warn!(error = %e, "metadata fetch");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The handlers' view of the image.
pub fn build_view(image: &MetadataImage, config: &NodeConfig) -> ClusterView {
    let brokers = image
        .brokers()
        .filter_map(|b| {
            let ep = b
                .endpoints
                .iter()
                .find(|e| Some(e.name.as_str()) == config.inter_broker_listener())
                .or_else(|| b.endpoints.first())?;
            Some((
                b.broker_id,
                BrokerView {
                    id: b.broker_id,
                    broker_epoch: b.epoch,
                    host: ep.host.clone(),
                    port: ep.port,
                    listeners: b
                        .endpoints
                        .iter()
                        .map(|e| (e.name.clone(), (e.host.clone(), e.port)))
                        .collect(),
                    rack: b.rack.clone(),
                    fenced: b.fenced,
                },
            ))
        })
        .collect();
    let topics = image
        .topics()
        .map(|t| {
            let configs = image
                .configs_of(ConfigResourceType::Topic, &t.name)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionView {
                    partition: i as i32,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    elr: p.elr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    offline_logs: p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| p.is_log_offline(*r))
                        .collect(),
                })
                .collect();
            (
                t.name.clone(),
                TopicView {
                    name: t.name.clone(),
                    id: t.id,
                    partitions,
                    configs,
                },
            )
        })
        .collect();
    ClusterView {
        metadata_offset: image.last_offset() + 1,
        brokers,
        topics,
        defaults: cluster_defaults(config, image),
    }
}

/// The cluster-wide topic defaults: this node's settings, overridden by cluster-level
/// ConfigRecords.
fn cluster_defaults(config: &NodeConfig, image: &MetadataImage) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    d.insert(
        "min.insync.replicas".into(),
        config.min_insync_replicas.to_string(),
    );
    d.insert(
        "unclean.leader.election.enable".into(),
        config.unclean_leader_election_enable.to_string(),
    );
    d.insert(
        "retention.ms".into(),
        config.log_retention_ms.unwrap_or(-1).to_string(),
    );
    d.insert(
        "retention.bytes".into(),
        config.log_retention_bytes.to_string(),
    );
    d.insert("segment.bytes".into(), config.log_segment_bytes.to_string());
    d.insert(
        "max.message.bytes".into(),
        config.message_max_bytes.to_string(),
    );
    d.insert(
        "message.timestamp.before.max.ms".into(),
        config.log_message_timestamp_before_max_ms.to_string(),
    );
    d.insert(
        "message.timestamp.after.max.ms".into(),
        config.log_message_timestamp_after_max_ms.to_string(),
    );
    d.insert(
        "message.timestamp.type".into(),
        match config.log_message_timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
        .into(),
    );
    d.insert("cleanup.policy".into(), "delete".into());
    for (k, v) in image.configs_of(ConfigResourceType::Broker, "") {
        d.insert(k.to_string(), v.to_string());
    }
    d
}

/// Makes the hosted replicas match the metadata: every partition with this broker among its
/// replicas is opened and told its leader; partitions no longer assigned here are removed.
fn reconcile(shared: &NodeShared, view: &ClusterView) {
    let me = shared.config.node_id;
    let now = now_ms();
    let broker_epoch = shared.broker_epoch();
    let mut assigned = HashSet::new();
    for topic in view.topics.values() {
        let min_isr = view.min_insync_replicas(&topic.name);
        let max_message_bytes = view.max_message_bytes(&topic.name);
        let timestamp_type = view.message_timestamp_type(&topic.name);
        let (before_max_ms, after_max_ms) = view.message_timestamp_bounds(&topic.name);
        let segment_bytes = view.segment_bytes(&topic.name);
        for p in &topic.partitions {
            if !p.replicas.contains(&me) {
                continue;
            }
            let tp = TopicPartition::new(topic.name.clone(), p.partition);
            assigned.insert(tp.clone());
            if shared.offline_logs.is_failed(&tp) {
                // Offline until the broker restarts; the controller has been told.
                continue;
            }
            let state = PartitionState {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                isr: p.isr.clone(),
                replicas: p.replicas.clone(),
            };
            if let Err(e) = shared.replicas.apply_partition_state(
                &tp,
                topic.id,
                &state,
                min_isr,
                broker_epoch,
                now,
            ) {
                shared.offline_logs.failed(&tp, topic.id, &e);
            } else if let Some(slot) = shared.replicas.get(&tp) {
                slot.with_replica(&shared.replicas, |r| {
                    r.set_max_message_bytes(max_message_bytes);
                    r.set_message_timestamp_type(timestamp_type);
                    r.set_message_timestamp_bounds(before_max_ms, after_max_ms);
                    if let Some(b) = segment_bytes {
                        r.set_segment_bytes(b);
                    }
                });
            }
        }
    }
    for slot in shared.replicas.all() {
        if !assigned.contains(&slot.tp) {
            shared.replicas.remove(&slot.tp);
        }
    }
    shared.offline_logs.retain(|tp| assigned.contains(tp));
    shared.groups.on_metadata(shared, view);
}

// -----------------------------------------------------------------------------------------
// AlterPartition

async fn alter_partition_loop(
    shared: Arc<NodeShared>,
    mut rx: mpsc::UnboundedReceiver<OutgoingAlterPartition>,
) {
    let mut conn: Option<Connection> = None;
    // A leader retries a refused AlterPartition until new metadata arrives (every 50 ms
    // while a broker restarts): one line per run of identical refusals, with a count.
    let rejections = RepeatedLog::default();
    while let Some(out) = rx.recv().await {
        let p = &out.proposal;
        let req = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(shared.config.node_id))
            .with_broker_epoch(shared.broker_epoch())
            .with_topics(vec![AlterTopicData::default()
                .with_topic_id(uuid::Uuid::from_bytes(out.topic_id))
                .with_partitions(vec![AlterPartitionData::default()
                    .with_partition_index(out.tp.partition)
                    .with_leader_epoch(p.leader_epoch)
                    .with_partition_epoch(p.partition_epoch)
                    .with_new_isr_with_epochs(
                        p.new_isr
                            .iter()
                            .map(|m| {
                                BrokerState::default()
                                    .with_broker_id(BrokerId(m.broker_id))
                                    .with_broker_epoch(m.broker_epoch)
                            })
                            .collect(),
                    )])]);
        let timeout = Duration::from_secs(10);
        let answer = match send_to_controller(
            &shared,
            &mut conn,
            3,
            RequestKind::AlterPartition(req),
            timeout,
        )
        .await
        {
            Ok(ResponseKind::AlterPartition(r)) if r.error_code != 0 => {
                AlterPartitionResponse::Error(r.error_code)
            }
            Ok(ResponseKind::AlterPartition(r)) => {
                match r.topics.into_iter().flat_map(|t| t.partitions).next() {
                    Some(pr) if pr.error_code == 0 => AlterPartitionResponse::Committed {
                        leader_epoch: pr.leader_epoch,
                        partition_epoch: pr.partition_epoch,
                        isr: pr.isr.iter().map(|b| b.0).collect(),
                    },
                    Some(pr) => AlterPartitionResponse::Error(pr.error_code),
                    None => AlterPartitionResponse::Error(-1),
                }
            }
            _ => AlterPartitionResponse::Error(-1),
        };
        if let AlterPartitionResponse::Error(code) = &answer {
            let key = format!("{} {code}", out.tp);
            if let Some(count) = rejections.note(now_ms(), &key) {
                tracing::info!(
                    tp = %out.tp,
                    code,
                    count,
                    "AlterPartition rejected (count: this and identical ones since the last line)"
                );
            }
        }
        if let Some(slot) = shared.replicas.get(&out.tp) {
            slot.with_replica(&shared.replicas, |r| {
                r.handle_alter_partition_response(&answer)
            });
        }
    }
}

// -----------------------------------------------------------------------------------------
// Follower fetchers

async fn fetcher_manager(shared: Arc<NodeShared>) {
    let running: Arc<Mutex<HashSet<i32>>> = Arc::new(Mutex::new(HashSet::new()));
    loop {
        let mut leaders = HashSet::new();
        for slot in shared.replicas.all() {
            if let Some((leader, _)) = slot.with_replica(&shared.replicas, |r| r.fetch_request(0)) {
                leaders.insert(leader);
            }
        }
        for leader in leaders {
            let new = running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(leader);
            if new {
                let shared = shared.clone();
                let running = running.clone();
                tokio::spawn(async move {
                    fetcher(shared, leader).await;
                    running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&leader);
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fetches for every partition this broker follows on `leader`, until it follows none
/// there for a while.
async fn fetcher(shared: Arc<NodeShared>, leader: i32) {
    let me = shared.config.node_id;
    let max_bytes = shared.config.replica_fetch_max_bytes;
    let mut conn: Option<Connection> = None;
    let mut idle_since = None;
    loop {
        let mut parts: Vec<(Arc<PartitionSlot>, FetchRequestPartition)> = Vec::new();
        for slot in shared.replicas.all() {
            if let Some((l, req)) =
                slot.with_replica(&shared.replicas, |r| r.fetch_request(max_bytes))
            {
                if l == leader {
                    parts.push((slot, req));
                }
            }
        }
        if parts.is_empty() {
            let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        idle_since = None;
        let Some(addr) = shared.view().brokers.get(&leader).map(BrokerView::addr) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if conn.as_ref().is_none_or(|c| c.addr() != addr) {
            match Connection::connect(
                &addr,
                &format!("replica-fetcher-{me}"),
                Duration::from_secs(1),
            )
            .await
            {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let mut by_topic: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
        for (slot, req) in &parts {
            by_topic.entry(slot.tp.topic.clone()).or_default().push(
                FetchPartition::default()
                    .with_partition(slot.tp.partition)
                    .with_current_leader_epoch(req.current_leader_epoch)
                    .with_fetch_offset(req.fetch_offset)
                    .with_last_fetched_epoch(req.last_fetched_epoch.unwrap_or(-1))
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(req.max_bytes as i32),
            );
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(me))
            .with_max_wait_ms(shared.config.replica_fetch_wait_max_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes((max_bytes * 8).min(i32::MAX as usize) as i32)
            .with_session_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let timeout = Duration::from_millis(shared.config.replica_fetch_wait_max_ms + 10_000);
        let c = conn.as_mut().expect("connected above");
        let resp = match c.send(12, RequestKind::Fetch(request), timeout).await {
            Ok(ResponseKind::Fetch(r)) => r,
            _ => {
                conn = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut requests: HashMap<TopicPartition, (Arc<PartitionSlot>, FetchRequestPartition)> =
            parts
                .into_iter()
                .map(|(s, r)| (s.tp.clone(), (s, r)))
                .collect();
        let mut errors = false;
        for topic in resp.responses {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.to_string(), p.partition_index);
                let Some((slot, req)) = requests.remove(&tp) else {
                    continue;
                };
                let diverging = (p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0)
                    .then_some(EpochEndOffset {
                        epoch: p.diverging_epoch.epoch,
                        end_offset: p.diverging_epoch.end_offset,
                    });
                errors |= p.error_code != 0;
                let response = ReplicaFetchResponse {
                    leader,
                    leader_epoch: req.current_leader_epoch,
                    fetch_offset: req.fetch_offset,
                    result: FetchResult {
                        error_code: p.error_code,
                        high_watermark: p.high_watermark,
                        diverging_epoch: diverging,
                        records: p.records.unwrap_or_default(),
                    },
                };
                let outcome = slot.with_replica(&shared.replicas, |r| {
                    let before = r.log_end_offset();
                    (before, r.handle_fetch_response(&response))
                });
                match outcome {
                    (_, Err(e)) => {
                        tracing::error!(%tp, error = %e, "follower append failed");
                        errors = true;
                    }
                    // What an operator looks for after a partition heals: the records a
                    // deposed leader wrote that the new leader never had are cut here.
                    (before, Ok(FollowerFetchOutcome::Truncated { log_end_offset }))
                        if log_end_offset < before =>
                    {
                        tracing::info!(
                            %tp,
                            from = before,
                            to = log_end_offset,
                            leader,
                            "truncated the log to where it diverged from the leader"
                        );
                    }
                    _ => {}
                }
            }
        }
        if errors {
            // The leader or epoch moved: wait for metadata rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// -----------------------------------------------------------------------------------------
// Timers

async fn timer_loop(shared: Arc<NodeShared>) {
    let mut last_checkpoint = 0u64;
    let mut last_retention = now_ms();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = now_ms();
        let checkpoint = now.saturating_sub(last_checkpoint) >= 1_000;
        if checkpoint {
            last_checkpoint = now;
        }
        shared.replicas.tick(now, checkpoint);
        shared.groups.tick(&shared, now);
        if now.saturating_sub(last_retention) >= RETENTION_CHECK_INTERVAL_MS {
            last_retention = now;
            apply_retention(&shared, now);
        }
    }
}

/// Kafka's `log.retention.check.interval.ms` default.
const RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;

/// Deletes whole segments past `retention.ms` / `retention.bytes` (the topic's or the
/// cluster's), never above the high watermark.
fn apply_retention(shared: &NodeShared, now: u64) {
    let view = shared.view();
    let limit = |topic: &str, key: &str| {
        view.topic_config(topic, key)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| u64::try_from(v).ok())
    };
    for slot in shared.replicas.all() {
        let ms = limit(&slot.tp.topic, "retention.ms");
        let bytes = limit(&slot.tp.topic, "retention.bytes");
        slot.with_replica(&shared.replicas, |r| {
            match r.log_mut().apply_retention(now, ms, bytes) {
                Ok(0) => {}
                Ok(n) => tracing::info!(tp = %slot.tp, segments = n, "retention deleted segments"),
                Err(e) => tracing::warn!(tp = %slot.tp, error = %e, "retention failed"),
            }
        });
    }
}
