//! The follower fetchers: one per leader broker (Kafka's `ReplicaFetcherThread`), each
//! sending the followed replicas' own fetch requests in one Fetch and handing the leader's
//! answers back to them. The replicas decide; [`super::fetch_mapping`] converts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::*;

use super::fetch_mapping;
use super::partitions::{PartitionSlot, TopicPartition};
use super::shared::NodeShared;
use super::view::BrokerView;
use crate::client::Connection;
use crate::replication::{FetchRequestPartition, FollowerFetchOutcome};

pub async fn fetcher_manager(shared: Arc<NodeShared>) {
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
        let parts = followed_on(&shared, leader, max_bytes);
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
            let client_id = format!("replica-fetcher-{me}");
            match Connection::connect(&addr, &client_id, Duration::from_secs(1)).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let wanted: Vec<(TopicPartition, FetchRequestPartition)> = parts
            .iter()
            .map(|(slot, req)| (slot.tp.clone(), *req))
            .collect();
        let request = fetch_mapping::follower_fetch_request(
            me,
            shared.config.replica_fetch_wait_max_ms as i32,
            max_bytes,
            &wanted,
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
        if hand_back(&shared, leader, parts, resp) {
            // The leader or epoch moved: wait for metadata rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The replicas that follow `leader`, each with the fetch request it builds.
fn followed_on(
    shared: &NodeShared,
    leader: i32,
    max_bytes: usize,
) -> Vec<(Arc<PartitionSlot>, FetchRequestPartition)> {
    let mut parts = Vec::new();
    for slot in shared.replicas.all() {
        if let Some((l, req)) = slot.with_replica(&shared.replicas, |r| r.fetch_request(max_bytes))
        {
            if l == leader {
                parts.push((slot, req));
            }
        }
    }
    parts
}

/// Hands the leader's answer for each partition back to its replica. Returns whether any
/// partition failed (an error from the leader, or an append that failed here).
fn hand_back(
    shared: &NodeShared,
    leader: i32,
    parts: Vec<(Arc<PartitionSlot>, FetchRequestPartition)>,
    resp: FetchResponse,
) -> bool {
    let mut requests: HashMap<TopicPartition, (Arc<PartitionSlot>, FetchRequestPartition)> = parts
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
            errors |= p.error_code != 0;
            let response = fetch_mapping::follower_fetch_response(leader, &req, p);
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
    errors
}
