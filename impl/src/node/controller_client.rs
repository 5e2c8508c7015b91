//! A broker's client of the active controller: one connection shared by the request
//! handlers, moved to the next of `controller.quorum.voters` whenever the one it holds is
//! gone or answers that it is not the active controller (a quorum follower).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::client::Connection;
use crate::config::NodeConfig;

/// The broker's way to the active controller.
pub struct ControllerClient {
    /// The voters' addresses, in `controller.quorum.voters` order.
    voters: Vec<String>,
    client_id: String,
    conn: tokio::sync::Mutex<Option<Connection>>,
    /// Which of the voters to try first.
    index: AtomicUsize,
}

impl ControllerClient {
    pub fn new(config: &NodeConfig) -> Self {
        ControllerClient {
            voters: config
                .controller_quorum_voters
                .iter()
                .map(|v| v.addr())
                .collect(),
            client_id: format!("broker-{}", config.node_id),
            conn: tokio::sync::Mutex::new(None),
            index: AtomicUsize::new(0),
        }
    }

    /// Connects to a controller, trying the voters in turn from the one that last answered
    /// as the active controller.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let voters = &self.voters;
        let client_id = &self.client_id;
        let mut last_err = None;
        for _ in 0..voters.len() {
            let i = self.index.load(Ordering::Relaxed) % voters.len().max(1);
            match Connection::connect(&voters[i], client_id, Duration::from_secs(1)).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    last_err = Some(e);
                    self.next();
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no controller reachable")))
    }

    /// The voter tried last is not (or no longer) the active controller: try the next.
    pub fn next(&self) {
        self.index.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends a request to the active controller: reconnects, and moves on to the next
    /// voter when one answers NOT_CONTROLLER (a quorum follower) or is gone, for up to
    /// five seconds (a controller failover takes well under two).
    pub async fn request(
        &self,
        version: i16,
        request: RequestKind,
    ) -> anyhow::Result<ResponseKind> {
        let mut conn = self.conn.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if conn.is_none() {
                match self.connect().await {
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
                    Ok(resp) if !is_not_controller(&resp) => return Ok(resp),
                    Ok(resp) if tokio::time::Instant::now() >= deadline => return Ok(resp),
                    Ok(_) => {
                        *conn = None;
                        self.next();
                    }
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => {
                        *conn = None;
                        self.next();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One request on a task's own controller connection; a voter that is gone or answers
    /// NOT_CONTROLLER is dropped for the next one (the caller retries).
    pub async fn send_on(
        &self,
        conn: &mut Option<Connection>,
        version: i16,
        request: RequestKind,
        timeout: Duration,
    ) -> anyhow::Result<ResponseKind> {
        if conn.is_none() {
            *conn = Some(self.connect().await?);
        }
        let c = conn
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no controller reachable"))?;
        match c.send(version, request, timeout).await {
            Ok(r) if is_not_controller(&r) => {
                *conn = None;
                self.next();
                anyhow::bail!("not the active controller")
            }
            Ok(r) => Ok(r),
            Err(e) => {
                *conn = None;
                self.next();
                Err(e)
            }
        }
    }
}

/// Whether a controller's response says it is not the active controller (or, for a
/// metadata Fetch, not the quorum leader): the broker then tries the next voter.
pub fn is_not_controller(resp: &ResponseKind) -> bool {
    const E: i16 = crate::error_codes::NOT_CONTROLLER;
    match resp {
        ResponseKind::BrokerRegistration(r) => r.error_code == E,
        ResponseKind::BrokerHeartbeat(r) => r.error_code == E,
        ResponseKind::AlterPartition(r) => r.error_code == E,
        ResponseKind::AllocateProducerIds(r) => r.error_code == E,
        ResponseKind::AssignReplicasToDirs(r) => r.error_code == E,
        ResponseKind::CreateTopics(r) => r.topics.iter().any(|t| t.error_code == E),
        ResponseKind::DeleteTopics(r) => r.responses.iter().any(|t| t.error_code == E),
        ResponseKind::CreatePartitions(r) => r.results.iter().any(|t| t.error_code == E),
        ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().any(|t| t.error_code == E),
        ResponseKind::Fetch(r) => r.responses.iter().flat_map(|t| &t.partitions).any(|p| {
            p.error_code == crate::error_codes::NOT_LEADER_OR_FOLLOWER
                || p.error_code == crate::error_codes::UNKNOWN_LEADER_EPOCH
        }),
        ResponseKind::DescribeQuorum(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code == crate::error_codes::NOT_LEADER_OR_FOLLOWER),
        ResponseKind::FetchSnapshot(r) => r.topics.iter().flat_map(|t| &t.partitions).any(|p| {
            p.error_code == crate::error_codes::NOT_LEADER_OR_FOLLOWER
                || p.error_code == crate::error_codes::UNKNOWN_LEADER_EPOCH
        }),
        _ => false,
    }
}
