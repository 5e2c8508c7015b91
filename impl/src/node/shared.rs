//! [`NodeShared`]: the state a broker's request handlers and background tasks share — its
//! configuration, its replicas, the metadata image and the cluster view read from it, the
//! group coordinator, and the client of the active controller.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::messages::*;
use tokio::sync::watch;

use super::controller_client::ControllerClient;
use super::group_service::GroupService;
use super::partitions::{ReplicaManager, TopicPartition};
use super::view::ClusterView;
use crate::config::NodeConfig;
use crate::controller::image::MetadataImage;

/// State shared by a broker's request handlers and background tasks.
pub struct NodeShared {
    pub config: NodeConfig,
    pub cluster_id: String,
    pub replicas: Arc<ReplicaManager>,
    /// Hosted replicas whose log failed to open or recover (reported offline).
    pub offline_logs: super::offline_logs::OfflineLogs,
    /// The metadata image this broker has applied, and the view handlers read.
    pub image: Mutex<MetadataImage>,
    view: RwLock<Arc<ClusterView>>,
    view_version: watch::Sender<i64>,
    /// This broker's epoch from its latest registration (-1 before).
    pub broker_epoch: AtomicI64,
    pub groups: GroupService,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// The way to the active controller.
    pub controller: ControllerClient,
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
            None => crate::error_codes::UNKNOWN_TOPIC_OR_PARTITION,
            Some(_) => crate::error_codes::NOT_LEADER_OR_FOLLOWER,
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
            match r.leader_epoch_error(current_leader_epoch) {
                Some(code) => Err(code),
                None => Ok(f(r)),
            }
        })
    }

    /// InitProducerId for idempotent producers: the next id of this broker's block, a new
    /// block from the controller when it runs out (KIP-730's AllocateProducerIds).
    pub async fn init_producer_id(&self, req: InitProducerIdRequest) -> InitProducerIdResponse {
        let mut resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if req.transactional_id.is_some() {
            resp.error_code = crate::error_codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
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
                .controller
                .request(0, RequestKind::AllocateProducerIds(request))
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
                    resp.error_code = crate::error_codes::COORDINATOR_NOT_AVAILABLE;
                    return resp;
                }
            }
        }
        resp.producer_id = ProducerId(block.0);
        resp.producer_epoch = 0;
        block.0 += 1;
        resp
    }

    pub(crate) fn new(
        config: NodeConfig,
        cluster_id: String,
        replicas: Arc<ReplicaManager>,
    ) -> NodeShared {
        let (view_version, _) = watch::channel(-1);
        let groups = GroupService::new(&config);
        let controller = ControllerClient::new(&config);
        NodeShared {
            config,
            cluster_id,
            replicas,
            offline_logs: super::offline_logs::OfflineLogs::default(),
            image: Mutex::new(MetadataImage::new()),
            view: RwLock::new(Arc::new(ClusterView::default())),
            view_version,
            broker_epoch: AtomicI64::new(-1),
            groups,
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            controller,
        }
    }
}
