//! Polls the cluster's own view of itself while faults run: every broker's Metadata (leader,
//! leader epoch and ISR of each partition of the workload topics) and every controller's
//! DescribeQuorum (the quorum leader, its epoch, high watermark and log end offset). Each
//! answer is one history line; the checker tests them against the model's always-properties.
//! A node that does not answer within the timeout (dead, paused, cut off) is skipped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::client::Connection;
use serde_json::json;

use super::history::History;

const TIMEOUT: Duration = Duration::from_millis(400);
pub const TOPICS: [&str; 2] = ["nemesis-queue", "nemesis-log"];

/// What the nemesis needs to know now: the active controller as last reported, and
/// whether the last broker that answered showed every partition led with a full ISR.
#[derive(Default, Clone, Copy, Debug)]
pub struct Latest {
    pub quorum_leader: Option<i32>,
    pub healthy: bool,
    /// When `healthy` was last computed (wall-clock ms).
    pub healthy_at: i64,
}

pub struct Targets {
    pub brokers: Vec<(i32, String)>,
    pub controllers: Vec<(i32, String)>,
}

async fn metadata(addr: &str) -> anyhow::Result<MetadataResponse> {
    let mut conn = Connection::connect(addr, "osprey-nemesis-observer", TIMEOUT).await?;
    let req = MetadataRequest::default().with_topics(Some(
        TOPICS
            .iter()
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str(t))))
            })
            .collect(),
    ));
    match conn.send(9, RequestKind::Metadata(req), TIMEOUT).await? {
        ResponseKind::Metadata(r) => Ok(r),
        _ => anyhow::bail!("unexpected response to Metadata"),
    }
}

async fn quorum(addr: &str) -> anyhow::Result<DescribeQuorumResponse> {
    let mut conn = Connection::connect(addr, "osprey-nemesis-observer", TIMEOUT).await?;
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    match conn
        .send(1, RequestKind::DescribeQuorum(req), TIMEOUT)
        .await?
    {
        ResponseKind::DescribeQuorum(r) => Ok(r),
        _ => anyhow::bail!("unexpected response to DescribeQuorum"),
    }
}

async fn poll_once(targets: &Targets, history: &History, latest: &Mutex<Latest>) {
    // Every node is asked at once, so a dead or paused one costs one timeout, not one each.
    let brokers: Vec<_> = targets
        .brokers
        .iter()
        .map(|(id, addr)| {
            let (id, addr) = (*id, addr.clone());
            tokio::spawn(async move { (id, metadata(&addr).await) })
        })
        .collect();
    let controllers: Vec<_> = targets
        .controllers
        .iter()
        .map(|(id, addr)| {
            let (id, addr) = (*id, addr.clone());
            tokio::spawn(async move { (id, quorum(&addr).await) })
        })
        .collect();
    let mut broker_answers = Vec::new();
    for h in brokers {
        if let Ok(a) = h.await {
            broker_answers.push(a);
        }
    }
    let mut controller_answers = Vec::new();
    for h in controllers {
        if let Ok(a) = h.await {
            controller_answers.push(a);
        }
    }
    let (brokers, controllers) = (broker_answers, controller_answers);
    if let Some(healthy) = brokers
        .iter()
        .find_map(|(_, r)| r.as_ref().ok().map(all_fully_replicated))
    {
        let mut l = latest.lock().unwrap_or_else(|e| e.into_inner());
        l.healthy = healthy;
        l.healthy_at = super::history::now_ms();
    }
    for (from, r) in brokers {
        let Ok(r) = r else { continue };
        for t in r.topics {
            let Some(name) = t.name else { continue };
            if t.error_code != 0 {
                continue;
            }
            for p in t.partitions {
                history.record(json!({
                    "op": "observe-partition",
                    "from": from,
                    "topic": name.0.as_str(),
                    "p": p.partition_index,
                    "leader": p.leader_id.0,
                    "epoch": p.leader_epoch,
                    "isr": p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                }));
            }
        }
    }
    for (from, r) in controllers {
        let Ok(r) = r else { continue };
        if r.error_code != 0 {
            continue;
        }
        for p in r.topics.iter().flat_map(|t| &t.partitions) {
            if p.error_code != 0 || p.leader_id.0 != from {
                continue;
            }
            let leo = p
                .current_voters
                .iter()
                .find(|v| v.replica_id.0 == from)
                .map(|v| v.log_end_offset);
            history.record(json!({
                "op": "observe-quorum",
                "from": from,
                "leader": p.leader_id.0,
                "epoch": p.leader_epoch,
                "hw": p.high_watermark,
                "leo": leo,
            }));
            latest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .quorum_leader = Some(from);
        }
    }
}

/// Every workload partition has a leader and all its replicas in the ISR.
fn all_fully_replicated(r: &MetadataResponse) -> bool {
    let mut partitions = 0;
    for t in &r.topics {
        if t.error_code != 0 {
            return false;
        }
        for p in &t.partitions {
            partitions += 1;
            if p.leader_id.0 < 0 || p.isr_nodes.len() < p.replica_nodes.len() {
                return false;
            }
        }
    }
    partitions > 0
}

/// Polls every `period` until `stop` is set.
pub async fn run(
    targets: Targets,
    history: History,
    latest: Arc<Mutex<Latest>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    period: Duration,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        poll_once(&targets, &history, &latest).await;
        tokio::time::sleep(period).await;
    }
}
