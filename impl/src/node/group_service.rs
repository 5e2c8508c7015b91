//! [`GroupService`]: the broker's consumer-group coordinator ([`GroupCoordinator`]) behind
//! its lock, with the plumbing the coordinator does not do itself: parked requests waiting
//! for their answer, the queue of its `__consumer_offsets` appends, and which offsets
//! partitions are loaded. The requests and tasks around it are in [`super::groups`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::{mpsc, oneshot};

use super::clock::now_ms;
use super::partitions::{ReplicaManager, TopicPartition};
use super::view::ClusterView;
use crate::config::NodeConfig;
use crate::group::{CoordinatorConfig, Effect, GroupCoordinator, Reply};
use crate::storage::PartitionLog;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// One append the coordinator asked for.
pub(super) struct Append {
    pub request_id: Option<u64>,
    pub partition: i32,
    pub records: Vec<(Bytes, Bytes)>,
}

/// The coordinator, its parked requests and its pending appends.
pub struct GroupService {
    coordinator: Mutex<GroupCoordinator>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<ResponseKind>>>,
    next_request_id: AtomicU64,
    appends_tx: mpsc::UnboundedSender<Append>,
    appends_rx: Mutex<Option<mpsc::UnboundedReceiver<Append>>>,
    /// Offsets partitions this broker coordinates, with the leader epoch it loaded them in.
    loaded: Mutex<HashMap<i32, i32>>,
    partitions: i32,
    replication_factor: i16,
}

impl GroupService {
    pub fn new(config: &NodeConfig) -> Self {
        let (appends_tx, rx) = mpsc::unbounded_channel();
        GroupService {
            coordinator: Mutex::new(GroupCoordinator::new(CoordinatorConfig {
                offsets_partitions: config.offsets_topic_num_partitions,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                ..CoordinatorConfig::default()
            })),
            waiters: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            appends_tx,
            appends_rx: Mutex::new(Some(rx)),
            loaded: Mutex::new(HashMap::new()),
            partitions: config.offsets_topic_num_partitions,
            replication_factor: config.offsets_topic_replication_factor,
        }
    }

    /// Runs `f` on the coordinator, then routes its effects.
    fn with_coordinator<T>(&self, f: impl FnOnce(&mut GroupCoordinator) -> T) -> T {
        let mut c = self.coordinator.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut c);
        while let Some(effect) = c.poll_effect() {
            match effect {
                Effect::Respond {
                    request_id,
                    response,
                } => {
                    let tx = self
                        .waiters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&request_id);
                    if let Some(tx) = tx {
                        let _ = tx.send(response.into_response_kind());
                    }
                }
                Effect::AppendOffsets {
                    request_id,
                    partition,
                    records,
                } => {
                    let _ = self.appends_tx.send(Append {
                        request_id,
                        partition,
                        records,
                    });
                }
            }
        }
        out
    }

    /// The group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
    /// OffsetFetch, ListGroups, DescribeGroups); `Ok(None)` for any other request.
    pub async fn handle_group_request(
        &self,
        header: &RequestHeader,
        request: RequestKind,
    ) -> anyhow::Result<Option<ResponseKind>> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request_id, tx);
        let now = now_ms();
        let reply = self.with_coordinator(|c| {
            c.handle_request(request_id, header, "/127.0.0.1", request, now)
                .map_err(|_| ())
        });
        match reply {
            Err(_) => {
                self.forget(request_id);
                Ok(None)
            }
            Ok(Reply::Now(resp)) => {
                self.forget(request_id);
                Ok(Some(resp))
            }
            Ok(Reply::Parked) => match tokio::time::timeout(Duration::from_secs(330), rx).await {
                Ok(Ok(resp)) => Ok(Some(resp)),
                _ => anyhow::bail!("group request {request_id} was never answered"),
            },
        }
    }

    fn forget(&self, request_id: u64) {
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&request_id);
    }

    /// Loads and unloads offsets partitions as this broker gains and loses their
    /// leadership.
    pub fn on_metadata(&self, me: i32, replicas: &ReplicaManager, view: &ClusterView) {
        let Some(topic) = view.topic(OFFSETS_TOPIC) else {
            return;
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        for p in &topic.partitions {
            let leads = p.leader == me;
            match (leads, loaded.get(&p.partition).copied()) {
                (true, Some(epoch)) if epoch == p.leader_epoch => {}
                (true, _) => {
                    let records = read_offsets_partition(replicas, p.partition);
                    let now = now_ms();
                    let epoch = p.leader_epoch;
                    self.with_coordinator(|c| {
                        c.begin_loading(p.partition, epoch);
                        c.load_partition(p.partition, epoch, records, now);
                    });
                    loaded.insert(p.partition, epoch);
                }
                (false, Some(_)) => {
                    self.with_coordinator(|c| c.unload_partition(p.partition));
                    loaded.remove(&p.partition);
                }
                (false, None) => {}
            }
        }
    }

    pub fn tick(&self, now: u64) {
        let due = self
            .coordinator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_deadline()
            .is_some_and(|d| d <= now);
        if due {
            self.with_coordinator(|c| c.tick(now));
        }
    }

    pub(super) fn complete_append(&self, request_id: Option<u64>, error_code: i16) {
        if let Some(id) = request_id {
            let now = now_ms();
            self.with_coordinator(|c| c.complete_append(id, error_code, now));
        }
    }

    /// The `__consumer_offsets` partition count (`offsets.topic.num.partitions`).
    pub fn offsets_partitions(&self) -> i32 {
        self.partitions
    }

    /// `offsets.topic.replication.factor`.
    pub fn offsets_replication_factor(&self) -> i16 {
        self.replication_factor
    }

    /// The queue of the coordinator's appends, for the one task that performs them.
    pub(super) fn take_appends(&self) -> Option<mpsc::UnboundedReceiver<Append>> {
        self.appends_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Every (key, value) of an offsets partition this broker has just become leader of.
fn read_offsets_partition(replicas: &ReplicaManager, partition: i32) -> Vec<(Bytes, Bytes)> {
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
    let Some(slot) = replicas.get(&tp) else {
        return Vec::new();
    };
    slot.with_replica(replicas, |r| offsets_log_records(r.log()))
}

/// Every (key, value) in `log`, in offset order, up to the log end — not the high
/// watermark. A follower learns the high watermark only from its next fetch, so when it is
/// elected leader, commits the old leader already acknowledged (its high watermark had
/// passed them) can sit above the new leader's own high watermark; loading only up to it
/// would forget them. A leader never truncates its log, so everything in it stays, and
/// Kafka's coordinator loads to the log end as well.
fn offsets_log_records(log: &PartitionLog) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let Ok(bytes) = log.read(offset, 1 << 20) else {
            break;
        };
        if bytes.is_empty() {
            break;
        }
        let mut buf = bytes;
        let Ok(sets) = RecordBatchDecoder::decode_all(&mut buf) else {
            break;
        };
        let before = offset;
        for record in sets.into_iter().flat_map(|s| s.records) {
            if record.offset < before {
                continue; // the first batch read may start before `offset`
            }
            offset = record.offset + 1;
            if let Some(key) = record.key {
                out.push((key, record.value.unwrap_or_default()));
            }
        }
        if offset == before {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BatchBuilder;
    use crate::storage::LogConfig;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::protocol::StrBytes;

    fn commit_request(offset: i64) -> OffsetCommitRequest {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("readers")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("clicks")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])])
    }

    /// Commits `offset` through `coordinator` and appends its records to `log` as the
    /// driver does; the append is reported committed.
    fn commit(coordinator: &mut GroupCoordinator, log: &mut PartitionLog, id: u64, offset: i64) {
        let reply = coordinator.handle_offset_commit(id, 7, commit_request(offset), 1_000);
        assert_eq!(reply, Reply::Parked);
        let Some(Effect::AppendOffsets { records, .. }) = coordinator.poll_effect() else {
            panic!("no append");
        };
        assert_eq!(coordinator.poll_effect(), None);
        let mut builder = BatchBuilder::new(1_000);
        for (k, v) in &records {
            builder = builder.record(1_000, Some(k), Some(v));
        }
        log.append_as_leader(builder.build(), 0).unwrap();
        coordinator.complete_append(id, 0, 1_000);
        let Some(Effect::Respond { request_id, .. }) = coordinator.poll_effect() else {
            panic!("no response");
        };
        assert_eq!(request_id, id);
    }

    fn committed(coordinator: &GroupCoordinator) -> i64 {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("readers")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("clicks")))
                .with_partition_indexes(vec![0])]));
        let resp = coordinator.handle_offset_fetch(7, req);
        assert_eq!(resp.error_code, 0);
        resp.topics[0].partitions[0].committed_offset
    }

    /// The old leader acknowledged both commits, but this replica, elected next, heard of
    /// the high watermark only up to the first one: the new coordinator still has both.
    #[test]
    fn new_coordinator_loads_commits_above_its_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let config = CoordinatorConfig {
            offsets_partitions: 1,
            ..CoordinatorConfig::default()
        };
        let mut old = GroupCoordinator::new(config);
        old.begin_loading(0, 0);
        old.load_partition(0, 0, Vec::new(), 0);
        commit(&mut old, &mut log, 1, 100);
        log.set_high_watermark(log.log_end_offset());
        commit(&mut old, &mut log, 2, 200);
        assert_eq!(committed(&old), 200);
        assert!(log.high_watermark() < log.log_end_offset());

        let mut new = GroupCoordinator::new(config);
        new.begin_loading(0, 1);
        new.load_partition(0, 1, offsets_log_records(&log), 2_000);
        assert_eq!(
            committed(&new),
            200,
            "the acknowledged commit survives the failover"
        );
    }
}
