//! The driver of the consumer-group coordinator ([`GroupCoordinator`]): FindCoordinator,
//! the group APIs, and the coordinator's storage in the replicated `__consumer_offsets`
//! topic.
//!
//! * Requests get a fresh request id; parked JoinGroup/SyncGroup/OffsetCommit answers come
//!   back through the coordinator's effects and are routed to the waiting handler.
//! * `AppendOffsets` effects become acks=all produces on this broker's replica of the
//!   `__consumer_offsets` partition; the coordinator learns the outcome through
//!   `complete_append` once the high watermark passes the records (so a committed offset
//!   survives the coordinator's death).
//! * When metadata makes this broker the leader of an offsets partition, the partition's log
//!   is read to its end (not just to the high watermark, which a new leader may not know
//!   yet) and loaded; when it stops leading, the partition is unloaded and parked requests
//!   get NOT_COORDINATOR.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use tokio::sync::{mpsc, oneshot};

use super::partitions::{ProduceWait, TopicPartition};
use super::view::ClusterView;
use super::{now_ms, NodeShared};
use crate::config::NodeConfig;
use crate::group::{partition_for, CoordinatorConfig, Effect, GroupCoordinator, Reply};
use crate::replication::Acks;
use crate::storage::{BatchBuilder, PartitionLog};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const INVALID_REQUEST: i16 = 42;

struct Append {
    request_id: Option<u64>,
    partition: i32,
    records: Vec<(Bytes, Bytes)>,
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

    /// FindCoordinator and the group APIs; `Ok(None)` for any other request.
    pub async fn handle(
        &self,
        shared: &NodeShared,
        listener: &str,
        header: &RequestHeader,
        request: RequestKind,
    ) -> anyhow::Result<Option<ResponseKind>> {
        if let RequestKind::FindCoordinator(req) = request {
            return Ok(Some(ResponseKind::FindCoordinator(
                self.find_coordinator(shared, listener, header.request_api_version, req)
                    .await,
            )));
        }
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

    async fn find_coordinator(
        &self,
        shared: &NodeShared,
        listener: &str,
        version: i16,
        req: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        let keys: Vec<StrBytes> = if version >= 4 {
            req.coordinator_keys.clone()
        } else {
            vec![req.key.clone()]
        };
        if shared.view().topic(OFFSETS_TOPIC).is_none() && req.key_type == 0 {
            self.create_offsets_topic(shared).await;
        }
        let view = shared.view();
        let mut coordinators = Vec::new();
        for key in keys {
            let mut c = Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if req.key_type != 0 {
                c.error_code = INVALID_REQUEST;
                c.error_message = Some(StrBytes::from_static_str(
                    "only group coordinators exist (no transactions)",
                ));
            } else {
                let p = partition_for(key.as_str(), self.partitions);
                let leader = view.partition(OFFSETS_TOPIC, p).map(|p| p.leader);
                let coordinator = leader
                    .and_then(|l| view.brokers.get(&l).filter(|b| !b.fenced))
                    .and_then(|b| Some((b.id, b.endpoint(listener)?)));
                match coordinator {
                    Some((id, (host, port))) => {
                        c.node_id = BrokerId(id);
                        c.host = StrBytes::from_string(host.to_string());
                        c.port = i32::from(port);
                    }
                    None => c.error_code = COORDINATOR_NOT_AVAILABLE,
                }
            }
            coordinators.push(c);
        }
        let mut resp = FindCoordinatorResponse::default();
        if version >= 4 {
            resp.coordinators = coordinators;
        } else if let Some(c) = coordinators.pop() {
            resp.error_code = c.error_code;
            if version >= 1 {
                resp.error_message = c.error_message;
            }
            resp.node_id = c.node_id;
            resp.host = c.host;
            resp.port = c.port;
        }
        resp
    }

    /// Creates `__consumer_offsets` (offsets.topic.num.partitions partitions), replicated
    /// offsets.topic.replication.factor times — fewer only when the cluster has fewer live
    /// brokers, so a development cluster still gets a coordinator.
    async fn create_offsets_topic(&self, shared: &NodeShared) {
        let live = shared.view().live_brokers().count() as i16;
        let rf = self.replication_factor.min(live.max(1));
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(OFFSETS_TOPIC)))
                .with_num_partitions(self.partitions)
                .with_replication_factor(rf)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("min.insync.replicas"))
                        .with_value(Some(StrBytes::from_string(rf.clamp(1, 2).to_string()))),
                ])]);
        if let Err(e) = shared
            .forward_to_controller(5, RequestKind::CreateTopics(req))
            .await
        {
            tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
        }
    }

    /// Loads and unloads offsets partitions as this broker gains and loses their
    /// leadership.
    pub fn on_metadata(&self, shared: &NodeShared, view: &ClusterView) {
        let me = shared.config.node_id;
        let Some(topic) = view.topic(OFFSETS_TOPIC) else {
            return;
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        for p in &topic.partitions {
            let leads = p.leader == me;
            match (leads, loaded.get(&p.partition).copied()) {
                (true, Some(epoch)) if epoch == p.leader_epoch => {}
                (true, _) => {
                    let records = read_offsets_partition(shared, p.partition);
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

    pub fn tick(&self, _shared: &NodeShared, now: u64) {
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

    fn complete_append(&self, request_id: Option<u64>, error_code: i16) {
        if let Some(id) = request_id {
            let now = now_ms();
            self.with_coordinator(|c| c.complete_append(id, error_code, now));
        }
    }
}

/// Every (key, value) of an offsets partition this broker has just become leader of.
fn read_offsets_partition(shared: &NodeShared, partition: i32) -> Vec<(Bytes, Bytes)> {
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
    let Some(slot) = shared.replicas.get(&tp) else {
        return Vec::new();
    };
    slot.with_replica(&shared.replicas, |r| offsets_log_records(r.log()))
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

/// Writes the coordinator's records to `__consumer_offsets` with acks=all and reports
/// each outcome back, in the order the coordinator asked for them: appends to a partition
/// commit in offset order, and a second task awaits them in that same order, so an older
/// commit's completion can never overtake a newer one's.
pub async fn run(shared: Arc<NodeShared>) {
    let rx = shared
        .groups
        .appends_rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(mut rx) = rx else { return };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Option<u64>, Completion)>();
    let completer = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some((request_id, completion)) = done_rx.recv().await {
                let code = match completion {
                    Completion::Now(code) => code,
                    // Answered by the replica itself at the latest at its timeout.
                    Completion::Wait(wait) => {
                        match tokio::time::timeout(Duration::from_secs(10), wait).await {
                            Ok(Ok(c)) => c.error_code,
                            _ => crate::replication::error_codes::REQUEST_TIMED_OUT,
                        }
                    }
                };
                shared.groups.complete_append(request_id, code);
            }
        })
    };
    while let Some(append) = rx.recv().await {
        let tp = TopicPartition::new(OFFSETS_TOPIC, append.partition);
        let completion = match shared.replicas.get(&tp) {
            None => Completion::Now(NOT_COORDINATOR),
            Some(slot) => {
                let now = now_ms();
                let mut builder = BatchBuilder::new(now as i64);
                for (k, v) in &append.records {
                    builder =
                        builder.record(now as i64, Some(k), (!v.is_empty()).then_some(&v[..]));
                }
                match slot.produce(&shared.replicas, builder.build(), Acks::All, 5_000, now) {
                    ProduceWait::Done(c) => Completion::Now(c.error_code),
                    ProduceWait::Rejected(r) => Completion::Now(r.error_code),
                    ProduceWait::Parked(wait) => Completion::Wait(wait),
                }
            }
        };
        if done_tx.send((append.request_id, completion)).is_err() {
            break;
        }
    }
    completer.abort();
}

/// An append's outcome: known now, or when the replica's purgatory answers.
enum Completion {
    Now(i16),
    Wait(oneshot::Receiver<crate::replication::ProduceCompletion>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LogConfig;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;

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
