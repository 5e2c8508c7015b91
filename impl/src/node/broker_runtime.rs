//! The broker role's background work, all of it I/O around the deterministic cores:
//!
//! * registration with the controller and heartbeats (KIP-631), which keep the broker
//!   unfenced;
//! * following the controller's metadata log ([`super::metadata_follower`]);
//! * one follower fetcher per leader broker ([`super::replica_fetcher`]);
//! * the AlterPartition sender for the leaders' ISR proposals;
//! * a timer driving produce timeouts, ISR expiry, the flush policy and the
//!   high-watermark checkpoint.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{
    BrokerState, PartitionData as AlterPartitionData, TopicData as AlterTopicData,
};
use kafka_protocol::messages::broker_registration_request::Listener as RegistrationListener;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::broker_api::BrokerApi;
use super::clock::now_ms;
use super::listener::serve;
use super::meta_properties;
use super::partitions::{OutgoingAlterPartition, ReplicaManager};
use super::repeated_log::RepeatedLog;
use super::shared::NodeShared;
use super::{metadata_follower, replica_fetcher};
use crate::client::Connection;
use crate::config::NodeConfig;
use crate::replication::{AlterPartitionResponse, ReplicaConfig};
use crate::storage::{FlushPolicy, LogConfig};

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
    let shared = Arc::new(NodeShared::new(config.clone(), cluster_id, replicas));

    // KIP-966: a broker that shut down cleanly registers with its previous broker epoch and
    // stays an eligible leader; after a crash it registers with -1 and the controller removes
    // it from every ELR (its unflushed tail may be gone).
    let previous_epoch = take_clean_shutdown_marker(&config);
    shared.broker_epoch.store(previous_epoch, Ordering::Release);
    register(&shared).await;
    // Catch up before serving, so the first Metadata answer is not empty.
    for _ in 0..50 {
        match metadata_follower::fetch_metadata_once(&shared, 0).await {
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
    tasks.push(tokio::spawn(metadata_follower::metadata_loop(
        shared.clone(),
    )));
    tasks.push(tokio::spawn(alter_partition_loop(shared.clone(), alter_rx)));
    tasks.push(tokio::spawn(replica_fetcher::fetcher_manager(
        shared.clone(),
    )));
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
        match shared
            .controller
            .send_on(&mut conn, 1, request, timeout)
            .await
        {
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
            .controller
            .request(3, RequestKind::BrokerRegistration(req))
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
        match shared
            .controller
            .send_on(&mut conn, 1, RequestKind::BrokerHeartbeat(req), timeout)
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
        let answer = match shared
            .controller
            .send_on(&mut conn, 3, RequestKind::AlterPartition(req), timeout)
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
        shared.groups.tick(now);
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
