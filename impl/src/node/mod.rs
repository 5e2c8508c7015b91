//! A running Osprey node: the tokio driver around the deterministic cores.
//!
//! A node has one or both of Kafka's KRaft roles (`process.roles`):
//!
//! * **controller** — [`quorum_driver`] runs the KRaft quorum core ([`crate::quorum`]) with
//!   the other voters of `controller.quorum.voters` over the controller listener, keeping
//!   the metadata log and `quorum-state` on disk; [`controller_service`] is the
//!   [`crate::controller::Controller`] state machine on the quorum leader (the active
//!   controller: BrokerRegistration, BrokerHeartbeat, AlterPartition, the admin requests
//!   brokers forward) and the Fetch of `__cluster_metadata` through which brokers learn
//!   committed metadata.
//! * **broker** — [`broker_api`] serves clients; [`broker_runtime`] registers and
//!   heartbeats with the controller, follows the metadata log, turns partition metadata into
//!   `become_leader`/`become_follower` calls, runs the follower fetchers, sends AlterPartition
//!   and ticks the replicas' timers; [`partitions`] holds the replicas.
//!
//! Time enters the state machines only as `now_ms` from [`now_ms`].

pub mod broker_api;
pub mod broker_runtime;
pub mod controller_service;
pub mod groups;
pub mod meta_properties;
pub mod metadata_log;
pub mod metadata_snapshot;
pub mod offline_logs;
pub mod partitions;
pub mod quorum_driver;
pub mod quorum_progress;
pub mod repeated_log;
pub mod view;

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client::Connection;
use crate::config::NodeConfig;
use crate::controller::image::MetadataImage;
use crate::wire::{serve_connection_with, ConnectionConfig, RequestHandler};
use partitions::{ReplicaManager, TopicPartition};
use view::ClusterView;

/// Wall-clock milliseconds since the Unix epoch: the only clock the node reads.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Kafka's legal topic names: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn topic_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// State shared by a broker's request handlers and background tasks.
pub struct NodeShared {
    pub config: NodeConfig,
    pub cluster_id: String,
    pub replicas: Arc<ReplicaManager>,
    /// Hosted replicas whose log failed to open or recover (reported offline).
    pub offline_logs: offline_logs::OfflineLogs,
    /// The metadata image this broker has applied, and the view handlers read.
    pub image: Mutex<MetadataImage>,
    view: RwLock<Arc<ClusterView>>,
    view_version: watch::Sender<i64>,
    /// This broker's epoch from its latest registration (-1 before).
    pub broker_epoch: AtomicI64,
    pub groups: groups::GroupService,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    controller_conn: tokio::sync::Mutex<Option<Connection>>,
    /// Which of `controller.quorum.voters` to try first.
    controller_index: AtomicUsize,
}

impl NodeShared {
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_view(&self, view: ClusterView) {
        let offset = view.metadata_offset;
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        self.view_version.send_replace(offset);
    }

    /// Waits until the applied metadata reaches `offset` (or `timeout` passes).
    pub async fn wait_for_metadata(&self, offset: i64, timeout: Duration) -> bool {
        let mut rx = self.view_version.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|&v| v >= offset))
            .await
            .is_ok();
        ok
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// The error for a partition this broker does not host: the topic or partition does
    /// not exist, or another broker has it.
    pub fn not_hosted_error(&self, tp: &TopicPartition) -> i16 {
        match self.view().partition(&tp.topic, tp.partition) {
            None => broker_api::codes::UNKNOWN_TOPIC_OR_PARTITION,
            Some(_) => crate::replication::error_codes::NOT_LEADER_OR_FOLLOWER,
        }
    }

    /// Runs `f` on the replica of `tp` if this broker leads it in `current_leader_epoch`
    /// (-1: any epoch, KIP-320); otherwise the Kafka error a client acts on.
    pub fn with_led_replica<T>(
        &self,
        tp: &TopicPartition,
        current_leader_epoch: i32,
        f: impl FnOnce(&crate::replication::Replica) -> T,
    ) -> Result<T, i16> {
        let slot = self
            .replicas
            .get(tp)
            .ok_or_else(|| self.not_hosted_error(tp))?;
        slot.with_replica(&self.replicas, |r| {
            match broker_api::leader_epoch_check(r, current_leader_epoch) {
                Some(code) => Err(code),
                None => Ok(f(r)),
            }
        })
    }

    /// Connects to a controller, trying the voters in turn from the one that last answered
    /// as the active controller.
    pub async fn connect_controller(&self) -> anyhow::Result<Connection> {
        let voters = &self.config.controller_quorum_voters;
        let client_id = format!("broker-{}", self.config.node_id);
        let mut last_err = None;
        for _ in 0..voters.len() {
            let i = self.controller_index.load(Ordering::Relaxed) % voters.len().max(1);
            match Connection::connect(&voters[i].addr(), &client_id, Duration::from_secs(1)).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    last_err = Some(e);
                    self.next_controller();
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no controller reachable")))
    }

    /// The voter tried last is not (or no longer) the active controller: try the next.
    pub fn next_controller(&self) {
        self.controller_index.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends a request to the active controller: reconnects, and moves on to the next
    /// voter when one answers NOT_CONTROLLER (a quorum follower) or is gone, for up to
    /// five seconds (a controller failover takes well under two).
    pub async fn controller_request(
        &self,
        version: i16,
        request: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        let mut conn = self.controller_conn.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if conn.is_none() {
                match self.connect_controller().await {
                    Ok(c) => *conn = Some(c),
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => {}
                }
            }
            if let Some(c) = conn.as_mut() {
                match c
                    .send(version, request.clone(), Duration::from_secs(15))
                    .await
                {
                    Ok(resp) if !controller_service::is_not_controller(&resp) => return Ok(resp),
                    Ok(resp) if tokio::time::Instant::now() >= deadline => return Ok(resp),
                    Ok(_) => {
                        *conn = None;
                        self.next_controller();
                    }
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => {
                        *conn = None;
                        self.next_controller();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forwards an admin request to the controller (as KRaft brokers do with Envelope),
    /// then waits until this broker has applied the resulting metadata so that a Metadata
    /// request right after sees it.
    pub async fn forward_to_controller(
        &self,
        version: i16,
        request: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        let resp = self.controller_request(version, request).await?;
        self.catch_up_metadata().await;
        Ok(resp)
    }

    /// Fetches and applies whatever the controller's metadata log has beyond this broker's
    /// image, now, instead of waiting for the long-polling follower loop.
    pub async fn catch_up_metadata(&self) {
        if let Err(e) = broker_runtime::fetch_metadata_once(self, 0).await {
            tracing::debug!(error = %e, "metadata catch-up failed");
        }
    }

    /// Creates `names` with the cluster defaults (auto-creation).
    pub async fn create_topics_default(&self, names: &[String]) {
        let topics = names
            .iter()
            .map(|n| {
                CreatableTopic::default()
                    .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                        n.clone(),
                    )))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect();
        let req = CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(5_000);
        if let Err(e) = self
            .forward_to_controller(5, RequestKind::CreateTopics(req))
            .await
        {
            tracing::warn!(error = %e, "auto-creating topics failed");
        }
    }

    /// InitProducerId for idempotent producers: the next id of this broker's block, a new
    /// block from the controller when it runs out (KIP-730's AllocateProducerIds).
    pub async fn init_producer_id(&self, req: InitProducerIdRequest) -> InitProducerIdResponse {
        let mut resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if req.transactional_id.is_some() {
            resp.error_code = broker_api::codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
            return resp;
        }
        // KIP-360: a producer that already has an id bumps its epoch.
        if req.producer_id.0 >= 0 && req.producer_epoch >= 0 {
            if req.producer_epoch == i16::MAX {
                // Epoch exhausted: a fresh id, as Kafka does.
            } else {
                resp.producer_id = req.producer_id;
                resp.producer_epoch = req.producer_epoch + 1;
                return resp;
            }
        }
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let request = AllocateProducerIdsRequest::default()
                .with_broker_id(BrokerId(self.config.node_id))
                .with_broker_epoch(self.broker_epoch());
            match self
                .controller_request(0, RequestKind::AllocateProducerIds(request))
                .await
            {
                Ok(ResponseKind::AllocateProducerIds(r)) if r.error_code == 0 => {
                    *block = (
                        r.producer_id_start.0,
                        r.producer_id_start.0 + i64::from(r.producer_id_len),
                    );
                }
                Ok(ResponseKind::AllocateProducerIds(r)) => {
                    resp.error_code = r.error_code;
                    return resp;
                }
                _ => {
                    resp.error_code = broker_api::codes::COORDINATOR_NOT_AVAILABLE;
                    return resp;
                }
            }
        }
        resp.producer_id = ProducerId(block.0);
        resp.producer_epoch = 0;
        block.0 += 1;
        resp
    }
}

/// Serves `handler` on `listener` until the task is aborted.
pub async fn serve<H: RequestHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    max_request_bytes: usize,
) {
    let config = ConnectionConfig {
        max_request_bytes,
        ..ConnectionConfig::default()
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = serve_connection_with(stream, handler, config).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs a node until `shutdown` resolves: the controller role, the broker role, or both.
pub async fn run(
    mut config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(config.log_dir()).map_err(|e| {
        anyhow::anyhow!("cannot create log dir {}: {e}", config.log_dir().display())
    })?;
    // Format the directory on first start, or check it was formatted for this cluster and
    // node; from here on every role uses the cluster id in force.
    let meta = meta_properties::format_or_check(
        config.log_dir(),
        config.cluster_id.as_deref(),
        config.node_id,
    )?;
    config.cluster_id = Some(meta.cluster_id);
    let mut tasks = Vec::new();
    let mut quorum = None;
    if config.process_roles.controller {
        let (controller_tasks, driver) = controller_service::start(&config).await?;
        tasks.extend(controller_tasks);
        quorum = Some(driver);
    }
    let mut broker = None;
    if config.process_roles.broker {
        let (shared, broker_tasks) = broker_runtime::start(config.clone()).await?;
        tasks.extend(broker_tasks);
        broker = Some(shared);
    }
    tracing::info!(node_id = config.node_id, "node started");
    shutdown.await;
    tracing::info!(node_id = config.node_id, "shutting down");
    if let Some(shared) = broker {
        broker_runtime::shutdown(&shared).await;
    }
    if let Some(driver) = quorum {
        // A leader resigns (EndQuorumEpoch) so the others elect at once.
        if driver.resign() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

pub(crate) fn new_shared(
    config: NodeConfig,
    cluster_id: String,
    replicas: Arc<ReplicaManager>,
) -> NodeShared {
    let (view_version, _) = watch::channel(-1);
    let groups = groups::GroupService::new(&config);
    NodeShared {
        config,
        cluster_id,
        replicas,
        offline_logs: offline_logs::OfflineLogs::default(),
        image: Mutex::new(MetadataImage::new()),
        view: RwLock::new(Arc::new(ClusterView::default())),
        view_version,
        broker_epoch: AtomicI64::new(-1),
        groups,
        producer_ids: tokio::sync::Mutex::new((0, 0)),
        controller_conn: tokio::sync::Mutex::new(None),
        controller_index: AtomicUsize::new(0),
    }
}
