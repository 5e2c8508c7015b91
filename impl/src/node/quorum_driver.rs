//! The tokio driver of the KRaft quorum core ([`crate::quorum::QuorumCore`]) on a
//! controller node.
//!
//! It performs the core's effects in order, under one lock with the metadata log
//! (`__cluster_metadata-0`, an ordinary [`PartitionLog`] fsynced on every append) and the
//! `quorum-state` file (written atomically and fsynced before any vote or answer that
//! depends on it leaves); it draws the timers' jitter and fires [`QuorumCore::timeout`];
//! it carries Kafka's own KRaft messages from kafka-protocol over the controller
//! listener — Vote, BeginQuorumEpoch, EndQuorumEpoch, and Fetch of `__cluster_metadata`
//! with `ReplicaId` = the voter id — one connection per peer.
//!
//! Every voter keeps the committed metadata image: the latest snapshot's image with the
//! committed records after it applied as the high watermark passes them
//! (`apply_committed`). Only the quorum leader is the active controller: once its
//! LeaderChange record commits, a fresh [`Controller`] starts from that image, and
//! [`QuorumDriver::commit`] then runs operations, appends their records through the quorum
//! and returns only when the high watermark passes them. Brokers are observers: their
//! Fetch reads only committed records.
//!
//! Snapshots (KIP-630): once `metadata.log.max.record.bytes.between.snapshots` bytes of
//! batches have been committed since the last snapshot, the voter writes its committed
//! image as a snapshot (`maybe_snapshot`, [`metadata_snapshot`]), deletes the log's
//! segments below it and tells the core ([`QuorumCore::snapshot_taken`]). The leader
//! answers a Fetch below its log start with its snapshot id and serves FetchSnapshot
//! ([`QuorumDriver::fetch_snapshot`]); a follower told so fetches the snapshot in chunks
//! (`download_snapshot`) and installs it ([`QuorumCore::install_snapshot`]). A restarted
//! voter starts from its latest snapshot and the log after it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

mod active;
mod codec;
mod snapshot;
mod state_file;

use codec::{decode_fetch_response, decode_vote_response, fill_fetch_partition, metadata_topic};

use super::clock::now_ms;
use super::metadata_log::{
    batches_starting_below, decode_batches, encode_batch, split_batches, METADATA_TOPIC,
};
use super::metadata_snapshot::{self, open_snapshot};
use super::quorum_progress::{self, ReplicaProgress};
use super::repeated_log::RepeatedLog;
use crate::client::Connection;
use crate::config::NodeConfig;
use crate::controller::records::MetadataRecord;
use crate::controller::{Controller, ControllerConfig, MetadataImage};
use crate::error_codes as codes;
use crate::quorum::{
    self, Effect, EpochRequest, EpochResponse, FetchAnswer, FetchResult, LogSummary, QuorumCore,
    ReplicaId, Request, Role, SnapshotId, Timer,
};
use crate::storage::{FlushPolicy, LogConfig, PartitionLog};

/// What waiters watch: the quorum's progress as of the last effects performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub epoch: i32,
    pub leader: Option<ReplicaId>,
    /// This node is the leader and has replayed the committed log: the active controller.
    pub active: bool,
    pub high_watermark: i64,
    pub log_end: i64,
}

/// This node is not the active controller (NOT_CONTROLLER to the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotActive;

pub struct State {
    pub core: QuorumCore,
    pub log: PartitionLog,
    /// `Some` only on the active controller.
    pub controller: Option<Controller>,
    /// The committed metadata: the latest snapshot's image and the committed records after
    /// it (up to the high watermark, whole batches).
    pub image: MetadataImage,
    /// Bytes of batches applied to `image` since the last snapshot.
    bytes_since_snapshot: u64,
    /// A fetched snapshot's image, until the core installs it.
    installing: Option<(SnapshotId, MetadataImage)>,
    deadline_ms: Option<u64>,
}

pub struct QuorumDriver {
    id: ReplicaId,
    cluster_id: Option<String>,
    peers: Vec<(ReplicaId, String)>,
    election_timeout_ms: u64,
    fetch_timeout_ms: u64,
    controller_config: ControllerConfig,
    /// The metadata log's directory (segments, quorum state, snapshots).
    dir: PathBuf,
    max_bytes_between_snapshots: u64,
    state_path: PathBuf,
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
    timer: Notify,
    outbox: Vec<(ReplicaId, mpsc::UnboundedSender<Request>)>,
    rng: Mutex<u64>,
    /// Each fetching replica's progress, for DescribeQuorum.
    replica_progress: Mutex<ReplicaProgress>,
    /// Refused quorum requests, logged once per run ([`RepeatedLog`]).
    rejections: RepeatedLog,
}

/// A failure to write the metadata log or the quorum state leaves the voter unable to keep
/// its promises: stop the process, as Kafka's raft client does.
fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "{what}; stopping");
    eprintln!("fatal: {what}: {e}");
    std::process::exit(1)
}

impl QuorumDriver {
    /// Opens the metadata log and the quorum state under the node's log dir and starts the
    /// voter's tasks: the timer, one sender per peer, and the follower's fetcher.
    pub fn start(
        config: &NodeConfig,
        controller_config: ControllerConfig,
    ) -> anyhow::Result<(Arc<QuorumDriver>, Vec<JoinHandle<()>>)> {
        let dir = config.log_dir().join(format!("{METADATA_TOPIC}-0"));
        let mut log = PartitionLog::open(
            &dir,
            LogConfig {
                segment_bytes: config.metadata_log_segment_bytes,
                flush_policy: FlushPolicy::EveryBatch,
                oversized_batch_own_segment: true,
                ..LogConfig::default()
            },
        )?;
        let (snapshot, image) = open_snapshot(&dir, &mut log)?;
        let state_path = dir.join("quorum-state");
        let persisted = state_file::read(&state_path)?;
        let summary = LogSummary::new(
            log.epoch_cache()
                .entries()
                .iter()
                .map(|e| (e.epoch, e.start_offset))
                .collect(),
            log.log_end_offset(),
            log.log_end_offset(),
        )
        .with_snapshot(log.log_start_offset(), snapshot);
        let voters: Vec<ReplicaId> = config
            .controller_quorum_voters
            .iter()
            .map(|v| v.id)
            .collect();
        let core = QuorumCore::restart(config.node_id, voters, persisted, summary);
        tracing::info!(
            node = config.node_id,
            epoch = persisted.epoch,
            role = ?core.role(),
            log_start = log.log_start_offset(),
            log_end = log.log_end_offset(),
            snapshot = ?snapshot,
            "quorum voter starting"
        );
        let peers: Vec<(ReplicaId, String)> = config
            .controller_quorum_voters
            .iter()
            .filter(|v| v.id != config.node_id)
            .map(|v| (v.id, v.addr()))
            .collect();
        let mut outbox = Vec::new();
        let mut inboxes = Vec::new();
        for (id, addr) in &peers {
            let (tx, rx) = mpsc::unbounded_channel();
            outbox.push((*id, tx));
            inboxes.push((*id, addr.clone(), rx));
        }
        let (progress, _) = watch::channel(Progress {
            epoch: core.epoch(),
            leader: core.leader(),
            active: false,
            high_watermark: 0,
            log_end: log.log_end_offset(),
        });
        let driver = Arc::new(QuorumDriver {
            id: config.node_id,
            cluster_id: Some(config.effective_cluster_id()),
            peers,
            election_timeout_ms: config.controller_quorum_election_timeout_ms,
            fetch_timeout_ms: config.controller_quorum_fetch_timeout_ms,
            controller_config,
            dir,
            max_bytes_between_snapshots: config
                .metadata_log_max_record_bytes_between_snapshots
                .max(1),
            state_path,
            state: Mutex::new(State {
                core,
                log,
                controller: None,
                image,
                bytes_since_snapshot: 0,
                installing: None,
                deadline_ms: None,
            }),
            progress,
            timer: Notify::new(),
            outbox,
            rng: Mutex::new(now_ms() ^ (u64::from(std::process::id()) << 32) | 1),
            replica_progress: Mutex::new(ReplicaProgress::default()),
            rejections: RepeatedLog::default(),
        });
        {
            let mut st = driver.lock();
            driver.perform(&mut st);
        }
        let mut tasks = vec![
            tokio::spawn(driver.clone().timer_loop()),
            tokio::spawn(driver.clone().fetch_loop()),
            tokio::spawn(driver.clone().leader_loop()),
        ];
        for (id, addr, rx) in inboxes {
            tasks.push(tokio::spawn(driver.clone().peer_loop(id, addr, rx)));
        }
        Ok((driver, tasks))
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    fn jitter(&self, below: u64) -> u64 {
        let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        // xorshift64: the driver's randomness (timer jitter only).
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % below.max(1)
    }

    /// Performs the core's effects in order, then activates or deactivates the controller
    /// and publishes the progress.
    pub fn perform(&self, st: &mut State) {
        loop {
            let effects = st.core.take_effects();
            if effects.is_empty() {
                break;
            }
            for e in effects {
                self.perform_one(st, e);
            }
        }
        self.apply_committed(st);
        if st.core.is_leader() {
            if st.controller.is_none()
                && st.core.high_watermark() >= st.log.log_end_offset()
                && st.image.last_offset() + 1 >= st.log.log_end_offset()
            {
                st.controller = Some(Controller::from_image(
                    self.controller_config.clone(),
                    st.image.clone(),
                    now_ms(),
                ));
                tracing::info!(
                    node = self.id,
                    epoch = st.core.epoch(),
                    snapshot = ?st.core.log().snapshot(),
                    log_start = st.log.log_start_offset(),
                    log_end = st.log.log_end_offset(),
                    "active controller: metadata image loaded from the snapshot and the log"
                );
            }
        } else if st.controller.take().is_some() {
            tracing::info!(
                node = self.id,
                epoch = st.core.epoch(),
                "no longer the active controller"
            );
        }
        self.progress.send_replace(Progress {
            epoch: st.core.epoch(),
            leader: st.core.leader(),
            active: st.controller.is_some(),
            high_watermark: st.core.high_watermark(),
            log_end: st.log.log_end_offset(),
        });
    }

    fn perform_one(&self, st: &mut State, effect: Effect) {
        match effect {
            Effect::PersistQuorumState(s) => {
                if let Err(e) = state_file::write(&self.state_path, s, st.core.voters()) {
                    fatal("cannot write the quorum state", e);
                }
            }
            Effect::AppendLeaderChange { offset, epoch } => {
                let record = MetadataRecord::LeaderChange {
                    leader_id: self.id,
                    leader_epoch: epoch,
                };
                let result = encode_batch(&[record], now_ms() as i64)
                    .and_then(|b| Ok(st.log.append_as_leader(b, epoch)?));
                match result {
                    Ok(info) if info.first_offset == offset => {}
                    Ok(info) => fatal(
                        "the metadata log and the quorum disagree on offsets",
                        format!("expected {offset}, got {}", info.first_offset),
                    ),
                    Err(e) => fatal("cannot append the LeaderChange record", e),
                }
                tracing::info!(node = self.id, epoch, "quorum leader elected");
                st.core.flushed(st.log.log_end_offset());
            }
            Effect::Append(batches) => {
                let mut bytes = BytesMut::new();
                for b in &batches {
                    bytes.extend_from_slice(&b.data);
                }
                if let Err(e) = st.log.append_as_follower(bytes.freeze()) {
                    fatal("cannot append fetched metadata batches", e);
                }
                st.core.flushed(st.log.log_end_offset());
            }
            Effect::Truncate(to) => {
                if let Err(e) = st.log.truncate_to(to) {
                    fatal("cannot truncate the metadata log", e);
                }
                tracing::info!(
                    node = self.id,
                    to,
                    "metadata log truncated (diverging epoch)"
                );
                if st.image.last_offset() >= to {
                    // Only uncommitted records are ever cut, so this does not happen; if it
                    // did, the image is rebuilt from the snapshot and the log.
                    tracing::warn!(node = self.id, to, "truncated below the applied image");
                    self.reload_image(st);
                }
            }
            Effect::InstallSnapshot(id) => {
                let image = match st.installing.take() {
                    Some((i, image)) if i == id => image,
                    _ => fatal(
                        "installing a snapshot that was not fetched",
                        format!("{id:?}"),
                    ),
                };
                if let Err(e) = st.log.truncate_fully_and_start_at(id.end_offset) {
                    fatal("cannot restart the metadata log at the snapshot", e);
                }
                st.image = image;
                st.bytes_since_snapshot = 0;
                if let Err(e) = metadata_snapshot::delete_older(&self.dir, id) {
                    tracing::warn!(error = %e, "cannot delete older snapshots");
                }
                tracing::info!(
                    node = self.id,
                    end_offset = id.end_offset,
                    epoch = id.epoch,
                    "snapshot fetched from the leader installed: the log starts at its end"
                );
            }
            Effect::Send(to, request) => {
                if let Some((_, tx)) = self.outbox.iter().find(|(id, _)| *id == to) {
                    let _ = tx.send(request);
                }
            }
            Effect::HighWatermark(hw) => {
                st.log.set_high_watermark(hw);
            }
            Effect::SetTimer(timer) => {
                let e = self.election_timeout_ms;
                st.deadline_ms = match timer {
                    Timer::Off => None,
                    Timer::Election => Some(now_ms() + e + self.jitter(e)),
                    Timer::Fetch => Some(now_ms() + self.fetch_timeout_ms + self.jitter(e)),
                    Timer::Backoff => Some(now_ms() + self.jitter(e / 2)),
                };
                self.timer.notify_one();
            }
        }
    }

    /// Fires [`QuorumCore::timeout`] when the armed timer expires.
    async fn timer_loop(self: Arc<Self>) {
        loop {
            let deadline = self.lock().deadline_ms;
            match deadline {
                None => self.timer.notified().await,
                Some(d) => {
                    let now = now_ms();
                    if now >= d {
                        let mut st = self.lock();
                        if st.deadline_ms.is_some_and(|d| now_ms() >= d) {
                            st.deadline_ms = None;
                            tracing::info!(node = self.id, role = ?st.core.role(), epoch = st.core.epoch(), "quorum timeout: standing for election");
                            st.core.timeout();
                            self.perform(&mut st);
                        }
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(d - now)) => {}
                            _ = self.timer.notified() => {}
                        }
                    }
                }
            }
        }
    }

    /// The leader re-sends BeginQuorumEpoch to voters that have not fetched yet, and checks
    /// every 1.5 fetch timeouts that a majority still fetches from it.
    async fn leader_loop(self: Arc<Self>) {
        let check_every = self.fetch_timeout_ms * 3 / 2;
        let mut last_check = now_ms();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut st = self.lock();
            if st.core.is_leader() {
                st.core.send_begin_quorum_epoch();
                if now_ms().saturating_sub(last_check) >= check_every {
                    last_check = now_ms();
                    st.core.check_quorum();
                    if !st.core.is_leader() {
                        tracing::warn!(
                            node = self.id,
                            epoch = st.core.epoch(),
                            "no majority fetched within 1.5 fetch timeouts: resigning"
                        );
                    }
                }
                self.perform(&mut st);
            }
        }
    }

    /// Sends the core's requests to one peer over one connection, and hands the answers
    /// back to the core. Only the latest queued request is sent: each supersedes the ones
    /// before it (they are all about the current epoch).
    async fn peer_loop(
        self: Arc<Self>,
        peer: ReplicaId,
        addr: String,
        mut rx: mpsc::UnboundedReceiver<Request>,
    ) {
        let mut conn: Option<Connection> = None;
        let client_id = format!("controller-{}", self.id);
        while let Some(mut request) = rx.recv().await {
            while let Ok(newer) = rx.try_recv() {
                request = newer;
            }
            if conn.is_none() {
                match Connection::connect(&addr, &client_id, Duration::from_millis(500)).await {
                    Ok(c) => conn = Some(c),
                    Err(_) => continue,
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            let (version, kind) = codec::encode_request(self.cluster_id(), peer, request);
            match c.send(version, kind, Duration::from_secs(2)).await {
                Ok(resp) => {
                    let mut st = self.lock();
                    match (request, resp) {
                        (Request::Vote(sent), ResponseKind::Vote(r)) => {
                            if let Some(v) = decode_vote_response(&r, sent.pre_vote) {
                                st.core.handle_vote_response(peer, v);
                            }
                        }
                        (_, ResponseKind::BeginQuorumEpoch(r)) => {
                            if let Some(e) = codec::decode_begin_quorum_epoch_response(&r) {
                                st.core.handle_epoch_response(e);
                            }
                        }
                        (_, ResponseKind::EndQuorumEpoch(r)) => {
                            if let Some(e) = codec::decode_end_quorum_epoch_response(&r) {
                                st.core.handle_epoch_response(e);
                            }
                        }
                        _ => {}
                    }
                    self.perform(&mut st);
                }
                Err(e) => {
                    tracing::debug!(peer, error = %e, "quorum request failed");
                    conn = None;
                }
            }
        }
    }

    fn cluster_id(&self) -> Option<StrBytes> {
        self.cluster_id.clone().map(StrBytes::from_string)
    }

    /// The follower's fetcher: while the core follows a leader, fetch from it (long-polling
    /// for half the fetch timeout) and hand the answers to the core.
    async fn fetch_loop(self: Arc<Self>) {
        let mut conn: Option<(ReplicaId, Connection)> = None;
        let client_id = format!("controller-{}", self.id);
        let mut progress = self.progress();
        loop {
            let (next, snapshot) = {
                let st = self.lock();
                (st.core.fetch_request(), st.core.snapshot_request())
            };
            let Some(leader) = snapshot.map(|(l, _)| l).or(next.map(|(l, _)| l)) else {
                let _ = tokio::time::timeout(Duration::from_millis(100), progress.changed()).await;
                continue;
            };
            if conn.as_ref().is_none_or(|(l, _)| *l != leader) {
                conn = None;
                let Some((_, addr)) = self.peers.iter().find(|(id, _)| *id == leader) else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                match Connection::connect(addr, &client_id, Duration::from_millis(500)).await {
                    Ok(c) => conn = Some((leader, c)),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some((_, c)) = conn.as_mut() else {
                continue;
            };
            if let Some((_, sreq)) = snapshot {
                if let Err(e) = self.download_snapshot(c, sreq).await {
                    tracing::warn!(node = self.id, error = %e, "fetching the leader's snapshot");
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            let Some((_, req)) = next else {
                continue;
            };
            let max_wait = (self.fetch_timeout_ms / 2) as i32;
            let request = codec::fetch_request(self.id, max_wait, &req);
            let timeout = Duration::from_millis(self.fetch_timeout_ms + 500);
            match c.send(12, RequestKind::Fetch(request), timeout).await {
                Ok(ResponseKind::Fetch(resp)) => {
                    if let Some(r) = decode_fetch_response(resp, &req) {
                        let failed = matches!(r.result, FetchResult::Error(_));
                        {
                            let mut st = self.lock();
                            st.core.handle_fetch_response(r);
                            self.perform(&mut st);
                        }
                        if failed {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Applies the committed records the image does not have yet: whole batches below the
    /// high watermark. Then snapshots if enough was committed since the last snapshot.
    fn apply_committed(&self, st: &mut State) {
        let hw = st.core.high_watermark().min(st.log.log_end_offset());
        let mut offset = st.image.last_offset() + 1;
        let mut applied = false;
        'read: while offset < hw {
            if offset < st.log.log_start_offset() {
                fatal(
                    "the metadata image is behind the log start",
                    format!("image at {offset}, log start {}", st.log.log_start_offset()),
                );
            }
            let bytes = match st.log.read(offset, 1 << 20) {
                Ok(b) => b,
                Err(e) => fatal("cannot read the metadata log", e),
            };
            let mut progressed = false;
            for b in split_batches(&bytes) {
                if b.last_offset >= hw {
                    break 'read;
                }
                if b.last_offset < offset {
                    continue;
                }
                let records = match decode_batches(b.data.clone()) {
                    Ok(r) => r,
                    Err(e) => fatal("cannot decode the metadata log", format!("{e:#}")),
                };
                for (o, r) in &records {
                    if *o >= offset {
                        st.image.apply(*o, r);
                    }
                }
                st.bytes_since_snapshot += b.data.len() as u64;
                offset = b.last_offset + 1;
                progressed = true;
                applied = true;
            }
            if !progressed {
                break;
            }
        }
        if applied {
            self.maybe_snapshot(st);
        }
        // A segment still active when the snapshot was taken goes once the log rolls.
        self.delete_below_snapshot(st);
    }

    // -------------------------------------------------------------------------------------
    // Serving the quorum's requests

    /// Logs a refused quorum request: the first of a run at once, then one line with a
    /// count per interval (a flood of forged Votes writes a few lines, not one per Vote).
    fn note_rejection(&self, node: ReplicaId, api: &str, sender: ReplicaId, code: i16, epoch: i32) {
        let key = format!("{api} {sender} {code}");
        if let Some(count) = self.rejections.note(now_ms(), &key) {
            tracing::info!(
                node,
                api,
                sender,
                code,
                request_epoch = epoch,
                count,
                "quorum request refused (count: this and identical ones since the last line)"
            );
        }
    }

    /// Kafka's first check on every quorum request: a request naming another cluster is
    /// INCONSISTENT_CLUSTER_ID. A request without a cluster id (older senders) passes, as
    /// in Kafka.
    pub fn cluster_id_matches(&self, requested: &Option<StrBytes>) -> bool {
        match (requested, &self.cluster_id) {
            (Some(r), Some(own)) => r.as_str() == own.as_str(),
            _ => true,
        }
    }

    /// Vote (KIP-595; v2 adds KIP-996's PreVote). The driver checks what the core cannot
    /// know: the cluster id (top-level INCONSISTENT_CLUSTER_ID), the partition
    /// (INVALID_REQUEST) and that the request names this voter (`VoterId`, v1+:
    /// INVALID_VOTER_KEY); the core does the rest.
    pub fn handle_vote(&self, req: &VoteRequest) -> VoteResponse {
        if !self.cluster_id_matches(&req.cluster_id) {
            return VoteResponse::default().with_error_code(codes::INCONSISTENT_CLUSTER_ID);
        }
        let p = match codec::quorum_partition(
            req.topics
                .iter()
                .map(|t| (&t.topic_name, t.partitions.as_slice())),
        ) {
            Ok(p) => p,
            Err(code) => return VoteResponse::default().with_error_code(code),
        };
        let mut st = self.lock();
        let r = if req.voter_id.0 >= 0 && req.voter_id.0 != self.id {
            quorum::VoteResponse {
                pre_vote: p.pre_vote,
                error_code: codes::INVALID_VOTER_KEY,
                epoch: st.core.epoch(),
                leader: st.core.leader(),
                vote_granted: false,
            }
        } else {
            st.core.handle_vote(quorum::VoteRequest {
                pre_vote: p.pre_vote,
                candidate_epoch: p.replica_epoch,
                candidate_id: p.replica_id.0,
                last_epoch: p.last_offset_epoch,
                end_offset: p.last_offset,
            })
        };
        // The grant is durable before the answer leaves.
        self.perform(&mut st);
        drop(st);
        if r.error_code != 0 || !r.vote_granted {
            self.note_rejection(
                self.id,
                "Vote",
                p.replica_id.0,
                r.error_code,
                p.replica_epoch,
            );
        }
        codec::vote_response(&r)
    }

    /// BeginQuorumEpoch: the cluster id and partition are checked here, the rest (voters,
    /// epochs, who can lead) by the core.
    pub fn handle_begin_quorum_epoch(
        &self,
        req: &BeginQuorumEpochRequest,
    ) -> BeginQuorumEpochResponse {
        if !self.cluster_id_matches(&req.cluster_id) {
            return BeginQuorumEpochResponse::default()
                .with_error_code(codes::INCONSISTENT_CLUSTER_ID);
        }
        let p = match codec::quorum_partition(
            req.topics
                .iter()
                .map(|t| (&t.topic_name, t.partitions.as_slice())),
        ) {
            Ok(p) => p,
            Err(code) => return BeginQuorumEpochResponse::default().with_error_code(code),
        };
        let mut st = self.lock();
        let r = if req.voter_id.0 >= 0 && req.voter_id.0 != self.id {
            EpochResponse {
                error_code: codes::INVALID_VOTER_KEY,
                epoch: st.core.epoch(),
                leader: st.core.leader(),
            }
        } else {
            st.core.handle_begin_quorum_epoch(EpochRequest {
                leader_id: p.leader_id.0,
                leader_epoch: p.leader_epoch,
            })
        };
        self.perform(&mut st);
        drop(st);
        if r.error_code != 0 {
            self.note_rejection(
                self.id,
                "BeginQuorumEpoch",
                p.leader_id.0,
                r.error_code,
                p.leader_epoch,
            );
        }
        codec::begin_quorum_epoch_response(&r)
    }

    /// EndQuorumEpoch: checked as BeginQuorumEpoch.
    pub fn handle_end_quorum_epoch(&self, req: &EndQuorumEpochRequest) -> EndQuorumEpochResponse {
        if !self.cluster_id_matches(&req.cluster_id) {
            return EndQuorumEpochResponse::default()
                .with_error_code(codes::INCONSISTENT_CLUSTER_ID);
        }
        let p = match codec::quorum_partition(
            req.topics
                .iter()
                .map(|t| (&t.topic_name, t.partitions.as_slice())),
        ) {
            Ok(p) => p,
            Err(code) => return EndQuorumEpochResponse::default().with_error_code(code),
        };
        let mut st = self.lock();
        let r = st.core.handle_end_quorum_epoch(EpochRequest {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
        });
        self.perform(&mut st);
        drop(st);
        if r.error_code != 0 {
            self.note_rejection(
                self.id,
                "EndQuorumEpoch",
                p.leader_id.0,
                r.error_code,
                p.leader_epoch,
            );
        }
        codec::end_quorum_epoch_response(&r)
    }

    /// DescribeQuorum (KIP-595): the leader, its epoch and high watermark, and each voter's
    /// log end offset as the leader knows it; NOT_LEADER_OR_FOLLOWER from other voters.
    pub fn describe_quorum(&self) -> DescribeQuorumResponse {
        let st = self.lock();
        let epoch = st.core.epoch();
        let mut p = describe_quorum_response::PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(st.core.leader().unwrap_or(-1)))
            .with_leader_epoch(epoch)
            .with_high_watermark(st.core.high_watermark());
        if st.core.role() == Role::Leader {
            let progress = self
                .replica_progress
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = now_ms() as i64;
            let state = |id: i32, end: i64, seen: Option<quorum_progress::Progress>| {
                let (fetch, caught_up) = match seen {
                    _ if id == self.id => (now, now),
                    Some(p) => (p.last_fetch_ms, p.last_caught_up_ms),
                    None => (-1, -1),
                };
                describe_quorum_response::ReplicaState::default()
                    .with_replica_id(BrokerId(id))
                    .with_log_end_offset(end)
                    .with_last_fetch_timestamp(fetch)
                    .with_last_caught_up_timestamp(caught_up)
            };
            let voters = st.core.voter_end_offsets();
            let voter_ids: Vec<i32> = voters.iter().map(|v| v.0).collect();
            p.current_voters = voters
                .into_iter()
                .map(|(id, end)| state(id, end, progress.get(epoch, id)))
                .collect();
            p.observers = progress
                .observers(epoch, &voter_ids)
                .into_iter()
                .map(|(id, seen)| state(id, seen.log_end_offset, Some(seen)))
                .collect();
        } else {
            p.error_code = codes::NOT_LEADER_OR_FOLLOWER;
        }
        DescribeQuorumResponse::default().with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(metadata_topic())
                .with_partitions(vec![p]),
        ])
    }

    /// Fetch of `__cluster_metadata` from a voter (`ReplicaId` = its id) or an observer
    /// (a broker): the core decides, the log supplies the records; an answer with nothing
    /// to send waits up to `MaxWaitMs` for the log or the high watermark to move.
    pub async fn fetch(&self, req: FetchRequest) -> FetchResponse {
        let mut resp = FetchResponse::default();
        let Some((topic, part)) = req
            .topics
            .first()
            .and_then(|t| Some((t, t.partitions.first()?)))
        else {
            resp.error_code = codes::INVALID_REQUEST;
            return resp;
        };
        let mut pd = PartitionData::default()
            .with_partition_index(part.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        if topic.topic.0.as_str() != METADATA_TOPIC || part.partition != 0 {
            pd.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
        } else {
            let request = quorum::FetchRequest {
                replica_id: req.replica_id.0,
                epoch: part.current_leader_epoch,
                fetch_offset: part.fetch_offset,
                last_fetched_epoch: part.last_fetched_epoch,
            };
            let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, 10_000) as u64);
            let deadline = tokio::time::Instant::now() + max_wait;
            let mut progress = self.progress();
            loop {
                progress.borrow_and_update();
                let (answer, records, log_start) = {
                    let mut st = self.lock();
                    let answer = st.core.handle_fetch(request);
                    if st.core.role() == Role::Leader && request.replica_id >= 0 {
                        self.replica_progress
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record_fetch(
                                st.core.epoch(),
                                request.replica_id,
                                request.fetch_offset,
                                st.log.log_end_offset(),
                                now_ms() as i64,
                            );
                    }
                    self.perform(&mut st);
                    let records = match answer {
                        FetchAnswer::Records {
                            from_offset, up_to, ..
                        } if from_offset < up_to => {
                            match st
                                .log
                                .read(from_offset, part.partition_max_bytes.max(1) as usize)
                            {
                                Ok(bytes) => Ok(batches_starting_below(bytes, up_to)),
                                Err(e) => Err(e.kafka_error_code()),
                            }
                        }
                        _ => Ok(Bytes::new()),
                    };
                    (answer, records, st.log.log_start_offset())
                };
                let empty = matches!(records, Ok(ref b) if b.is_empty());
                let waiting = matches!(answer, FetchAnswer::Records { .. })
                    && empty
                    && tokio::time::Instant::now() < deadline;
                if waiting
                    && tokio::time::timeout_at(deadline, progress.changed())
                        .await
                        .is_ok_and(|r| r.is_ok())
                {
                    continue;
                }
                fill_fetch_partition(&mut pd, answer, records);
                pd.log_start_offset = log_start;
                break;
            }
        }
        resp.responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(vec![pd]),
        );
        resp
    }
}
