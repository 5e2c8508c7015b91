//! The driver of the consumer-group coordinator ([`GroupService`](super::group_service::GroupService)): FindCoordinator,
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

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};

use super::clock::now_ms;
use super::forward;
use super::group_service::OFFSETS_TOPIC;
use super::partitions::{ProduceWait, TopicPartition};
use super::shared::NodeShared;
use crate::error_codes::{COORDINATOR_NOT_AVAILABLE, INVALID_REQUEST, NOT_COORDINATOR};
use crate::group::partition_for;
use crate::replication::Acks;
use crate::storage::BatchBuilder;

/// FindCoordinator and the group APIs; `Ok(None)` for any other request.
pub async fn handle(
    shared: &NodeShared,
    listener: &str,
    header: &RequestHeader,
    request: RequestKind,
) -> anyhow::Result<Option<ResponseKind>> {
    if let RequestKind::FindCoordinator(req) = request {
        return Ok(Some(ResponseKind::FindCoordinator(
            find_coordinator(shared, listener, header.request_api_version, req).await,
        )));
    }
    shared.groups.handle_group_request(header, request).await
}

async fn find_coordinator(
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
        create_offsets_topic(shared).await;
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
            let p = partition_for(key.as_str(), shared.groups.offsets_partitions());
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
async fn create_offsets_topic(shared: &NodeShared) {
    let live = shared.view().live_brokers().count() as i16;
    let rf = shared.groups.offsets_replication_factor().min(live.max(1));
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(OFFSETS_TOPIC)))
            .with_num_partitions(shared.groups.offsets_partitions())
            .with_replication_factor(rf)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_string(rf.clamp(1, 2).to_string()))),
            ])]);
    if let Err(e) = forward::forward_to_controller(shared, 5, RequestKind::CreateTopics(req)).await
    {
        tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
    }
}

/// Writes the coordinator's records to `__consumer_offsets` with acks=all and reports
/// each outcome back, in the order the coordinator asked for them: appends to a partition
/// commit in offset order, and a second task awaits them in that same order, so an older
/// commit's completion can never overtake a newer one's.
pub async fn run(shared: Arc<NodeShared>) {
    let rx = shared.groups.take_appends();
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
                            _ => crate::error_codes::REQUEST_TIMED_OUT,
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
