//! Replicas whose log failed to open or recover, and how the broker tells the controller.
//!
//! Kafka (KIP-858) records each replica's log directory in the partition's metadata, and a
//! replica in a directory that is offline may neither lead nor be in the ISR or ELR. A broker
//! whose directory fails sends the directory in its BrokerHeartbeat's `OfflineLogDirs`; one
//! that places a replica in a directory sends AssignReplicasToDirs, and the controller treats
//! an assignment to a directory that is not online as that replica going offline. Osprey's
//! broker has one log directory, and what fails is one partition's log (a corrupt segment, a
//! gap between segments, a malformed checkpoint), not the disk: so it assigns just that
//! replica to `DirectoryId.LOST` with AssignReplicasToDirs, and the controller takes it out
//! of the ISR and the ELR and elects another leader (the model's `LogFails`). A whole-
//! directory report would take every partition of the broker offline for one bad file.
//!
//! A failed log stays offline until the broker restarts (as in Kafka, where an offline log
//! directory comes back only with a restart): the operator repairs or removes the files in
//! between. When a restarted broker opens the log and the metadata still says LOST, it
//! assigns the replica to its own directory again; the replica then fetches from the leader
//! like any follower and rejoins the ISR through the leader's AlterPartition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::assign_replicas_to_dirs_request::{
    DirectoryData, PartitionData, TopicData,
};
use kafka_protocol::messages::{AssignReplicasToDirsRequest, BrokerId, RequestKind, ResponseKind};

use super::partitions::TopicPartition;
use super::shared::NodeShared;
use super::view::ClusterView;
use crate::client::Connection;
use crate::controller::records::{DirectoryId, DIRECTORY_LOST};

/// How often the broker compares its failed logs with the metadata and reports what the
/// controller does not know yet.
const REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// One failed log: its topic id and why it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedLog {
    pub topic_id: [u8; 16],
    pub error: String,
}

/// The replicas of this broker whose log is offline.
#[derive(Debug, Default)]
pub struct OfflineLogs {
    failed: Mutex<BTreeMap<TopicPartition, FailedLog>>,
}

impl OfflineLogs {
    /// Records that `tp`'s log failed to open or recover. Logged once per partition (the
    /// log is not opened again until the broker restarts).
    pub fn failed(&self, tp: &TopicPartition, topic_id: [u8; 16], error: &anyhow::Error) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.contains_key(tp) {
            return;
        }
        tracing::error!(
            %tp,
            error = %format!("{error:#}"),
            "the partition's log cannot be opened: the replica is offline until its files are repaired or removed and the broker restarts"
        );
        failed.insert(
            tp.clone(),
            FailedLog {
                topic_id,
                error: format!("{error:#}"),
            },
        );
    }

    /// Whether `tp`'s log failed (then the broker does not try to open it again).
    pub fn is_failed(&self, tp: &TopicPartition) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(tp)
    }

    /// Forgets partitions this broker no longer hosts (deleted, or moved away).
    pub fn retain(&self, keep: impl Fn(&TopicPartition) -> bool) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|tp, _| keep(tp));
    }

    /// The failed logs, in partition order.
    pub fn all(&self) -> Vec<(TopicPartition, FailedLog)> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(tp, f)| (tp.clone(), f.clone()))
            .collect()
    }
}

/// What the controller must be told: replicas to assign to LOST (failed here, online in the
/// metadata) and replicas to assign back to `own_dir` (open here, LOST in the metadata).
pub fn pending_assignments(
    me: i32,
    view: &ClusterView,
    failed: &[(TopicPartition, FailedLog)],
    hosted: &[TopicPartition],
    own_dir: DirectoryId,
) -> Vec<([u8; 16], i32, DirectoryId)> {
    let offline_in_metadata = |tp: &TopicPartition| {
        view.topics.get(&tp.topic).and_then(|t| {
            let p = t.partitions.get(usize::try_from(tp.partition).ok()?)?;
            p.replicas
                .contains(&me)
                .then(|| (t.id, p.offline_logs.contains(&me)))
        })
    };
    let mut out = Vec::new();
    for (tp, f) in failed {
        if let Some((id, false)) = offline_in_metadata(tp) {
            if id == f.topic_id {
                out.push((id, tp.partition, DIRECTORY_LOST));
            }
        }
    }
    for tp in hosted {
        if let Some((id, true)) = offline_in_metadata(tp) {
            out.push((id, tp.partition, own_dir));
        }
    }
    out
}

/// The request for `assignments`, grouped by directory then topic.
fn request(
    me: i32,
    broker_epoch: i64,
    assignments: &[([u8; 16], i32, DirectoryId)],
) -> AssignReplicasToDirsRequest {
    let mut by_dir: BTreeMap<DirectoryId, BTreeMap<[u8; 16], Vec<i32>>> = BTreeMap::new();
    for (topic_id, partition, dir) in assignments {
        by_dir
            .entry(*dir)
            .or_default()
            .entry(*topic_id)
            .or_default()
            .push(*partition);
    }
    AssignReplicasToDirsRequest::default()
        .with_broker_id(BrokerId(me))
        .with_broker_epoch(broker_epoch)
        .with_directories(
            by_dir
                .into_iter()
                .map(|(dir, topics)| {
                    DirectoryData::default()
                        .with_id(uuid::Uuid::from_bytes(dir))
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(id, parts)| {
                                    TopicData::default()
                                        .with_topic_id(uuid::Uuid::from_bytes(id))
                                        .with_partitions(
                                            parts
                                                .into_iter()
                                                .map(|p| {
                                                    PartitionData::default().with_partition_index(p)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// Reports failed and recovered logs to the controller until the broker stops: every
/// [`REPORT_INTERVAL`], whatever the metadata does not show yet is sent again, so a lost
/// request or a controller failover only delays the report.
pub async fn run(shared: Arc<NodeShared>, own_dir: DirectoryId) {
    let mut conn: Option<Connection> = None;
    loop {
        tokio::time::sleep(REPORT_INTERVAL).await;
        let broker_epoch = shared.broker_epoch();
        if broker_epoch < 0 {
            continue;
        }
        let hosted: Vec<TopicPartition> = shared
            .replicas
            .all()
            .into_iter()
            .map(|s| s.tp.clone())
            .collect();
        let assignments = pending_assignments(
            shared.config.node_id,
            &shared.view(),
            &shared.offline_logs.all(),
            &hosted,
            own_dir,
        );
        if assignments.is_empty() {
            continue;
        }
        let req = request(shared.config.node_id, broker_epoch, &assignments);
        match shared
            .controller
            .send_on(
                &mut conn,
                0,
                RequestKind::AssignReplicasToDirs(req),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(ResponseKind::AssignReplicasToDirs(r)) if r.error_code == 0 => {
                for (topic_id, partition, dir) in &assignments {
                    tracing::info!(
                        topic_id = %uuid::Uuid::from_bytes(*topic_id),
                        partition,
                        offline = *dir == DIRECTORY_LOST,
                        "reported the replica's log to the controller (AssignReplicasToDirs)"
                    );
                }
                let errors: Vec<i16> = r
                    .directories
                    .iter()
                    .flat_map(|d| &d.topics)
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code)
                    .filter(|c| *c != 0)
                    .collect();
                if !errors.is_empty() {
                    tracing::warn!(?errors, "AssignReplicasToDirs refused some partitions");
                }
            }
            Ok(ResponseKind::AssignReplicasToDirs(r)) => {
                tracing::warn!(code = r.error_code, "AssignReplicasToDirs refused");
            }
            Ok(other) => tracing::warn!(?other, "unexpected answer to AssignReplicasToDirs"),
            Err(e) => tracing::debug!(error = %e, "AssignReplicasToDirs not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::view::{PartitionView, TopicView};

    fn view(offline_logs: Vec<i32>) -> ClusterView {
        let mut v = ClusterView::default();
        v.topics.insert(
            "t".into(),
            TopicView {
                name: "t".into(),
                id: [3; 16],
                partitions: vec![PartitionView {
                    partition: 0,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                    elr: vec![],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    offline_logs,
                }],
                configs: Default::default(),
            },
        );
        v
    }

    fn failed() -> Vec<(TopicPartition, FailedLog)> {
        vec![(
            TopicPartition::new("t", 0),
            FailedLog {
                topic_id: [3; 16],
                error: "corrupt".into(),
            },
        )]
    }

    #[test]
    fn a_failed_log_is_reported_lost_until_the_metadata_shows_it() {
        let own = [9; 16];
        assert_eq!(
            pending_assignments(3, &view(vec![]), &failed(), &[], own),
            vec![([3; 16], 0, DIRECTORY_LOST)]
        );
        assert!(pending_assignments(3, &view(vec![3]), &failed(), &[], own).is_empty());
        // Not a replica here (moved away): nothing to say.
        assert!(pending_assignments(4, &view(vec![]), &failed(), &[], own).is_empty());
    }

    #[test]
    fn an_opened_log_that_the_metadata_calls_lost_is_assigned_back() {
        let own = [9; 16];
        let hosted = [TopicPartition::new("t", 0)];
        assert_eq!(
            pending_assignments(3, &view(vec![3]), &[], &hosted, own),
            vec![([3; 16], 0, own)]
        );
        assert!(pending_assignments(3, &view(vec![]), &[], &hosted, own).is_empty());
    }

    #[test]
    fn the_request_groups_partitions_by_directory_and_topic() {
        let req = request(
            3,
            17,
            &[
                ([1; 16], 0, DIRECTORY_LOST),
                ([1; 16], 2, DIRECTORY_LOST),
                ([2; 16], 1, [9; 16]),
            ],
        );
        assert_eq!((req.broker_id.0, req.broker_epoch), (3, 17));
        assert_eq!(req.directories.len(), 2);
        let lost = &req.directories[0];
        assert_eq!(*lost.id.as_bytes(), DIRECTORY_LOST);
        assert_eq!(lost.topics.len(), 1);
        assert_eq!(lost.topics[0].partitions.len(), 2);
    }
}
