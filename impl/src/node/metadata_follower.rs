//! A broker following the controller's metadata log: a long-polling Fetch of
//! `__cluster_metadata` as an observer, its records applied to the local
//! [`MetadataImage`], and the partition records turned into `become_leader` /
//! `become_follower` on the hosted replicas ([`reconcile`]). A Fetch below the controller's
//! log start is answered with its snapshot id; the broker then fetches that snapshot
//! (FetchSnapshot, KIP-630) and rebuilds its image from it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::clock::now_ms;
use super::metadata_log::{decode_batches, METADATA_TOPIC};
use super::metadata_snapshot;
use super::partitions::TopicPartition;
use super::shared::NodeShared;
use super::view::{BrokerView, ClusterView, PartitionView, TopicView};
use crate::client::Connection;
use crate::config::NodeConfig;
use crate::controller::image::MetadataImage;
use crate::controller::records::ConfigResourceType;
use crate::replication::PartitionRegistration;
use crate::storage::TimestampType;

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
            .controller
            .request(0, RequestKind::FetchSnapshot(req))
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
        .controller
        .request(12, RequestKind::Fetch(req))
        .await?
    {
        ResponseKind::Fetch(resp) => apply_metadata_response(shared, resp).await,
        _ => anyhow::bail!("unexpected response to a metadata fetch"),
    }
}

pub async fn metadata_loop(shared: Arc<NodeShared>) {
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
        match shared
            .controller
            .send_on(&mut conn, 12, RequestKind::Fetch(req), timeout)
            .await
        {
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
            let state = PartitionRegistration {
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
    shared
        .groups
        .on_metadata(shared.config.node_id, &shared.replicas, view);
}
