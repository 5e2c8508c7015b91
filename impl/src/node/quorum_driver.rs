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
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::metadata_log::{decode_batches, encode_batch, METADATA_TOPIC};
use super::metadata_snapshot::{self, Chunk};
use super::now_ms;
use super::quorum_progress::{self, ReplicaProgress};
use super::repeated_log::RepeatedLog;
use crate::client::Connection;
use crate::config::NodeConfig;
use crate::controller::records::MetadataRecord;
use crate::controller::{Controller, ControllerConfig, MetadataImage};
use crate::quorum::{
    self, codes, Batch, Effect, EpochRequest, EpochResponse, FetchAnswer, FetchResult,
    FetchSnapshotAnswer, LogSummary, QuorumCore, QuorumState, ReplicaId, Request, Role, SnapshotId,
    Timer,
};
use crate::storage::{BatchHeader, FlushPolicy, LogConfig, PartitionLog};

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

/// The largest chunk of a snapshot a follower asks for in one FetchSnapshot.
const SNAPSHOT_CHUNK_BYTES: i32 = 32 * 1024;

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

/// Kafka's INVALID_VOTER_KEY: the request's `VoterId` is not the receiver.
const INVALID_VOTER_KEY: i16 = 125;

/// The partitions of the three quorum requests, for [`QuorumDriver::quorum_partition`].
trait HasPartitionIndex {
    fn partition_index(&self) -> i32;
}

impl HasPartitionIndex for vote_request::PartitionData {
    fn partition_index(&self) -> i32 {
        self.partition_index
    }
}

impl HasPartitionIndex for begin_quorum_epoch_request::PartitionData {
    fn partition_index(&self) -> i32 {
        self.partition_index
    }
}

impl HasPartitionIndex for end_quorum_epoch_request::PartitionData {
    fn partition_index(&self) -> i32 {
        self.partition_index
    }
}

/// The `quorum-state` file, in Kafka's JSON layout.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuorumStateFile {
    leader_id: i32,
    leader_epoch: i32,
    voted_id: i32,
    applied_offset: i64,
    current_voters: Vec<VoterEntry>,
    #[serde(rename = "data_version")]
    data_version: i16,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VoterEntry {
    voter_id: i32,
}

fn read_quorum_state(path: &std::path::Path) -> anyhow::Result<QuorumState> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(QuorumState::default()),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let f: QuorumStateFile = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("malformed quorum state {}: {e}", path.display()))?;
    Ok(QuorumState {
        epoch: f.leader_epoch.max(0),
        voted_for: (f.voted_id >= 0).then_some(f.voted_id),
        leader: (f.leader_id >= 0).then_some(f.leader_id),
    })
}

/// A failure to write the metadata log or the quorum state leaves the voter unable to keep
/// its promises: stop the process, as Kafka's raft client does.
fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "{what}; stopping");
    eprintln!("fatal: {what}: {e}");
    std::process::exit(1)
}

fn metadata_topic() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

/// Splits fetched bytes into whole batches with their offsets and epochs.
pub fn split_batches(bytes: &Bytes) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = BatchHeader::parse(&bytes[pos..]) {
        let size = h.size() as usize;
        if size == 0 || pos + size > bytes.len() {
            break;
        }
        out.push(Batch {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            epoch: h.partition_leader_epoch,
            data: bytes.slice(pos..pos + size),
        });
        pos += size;
    }
    out
}

/// The whole batches of `bytes` that start below `up_to`.
fn cut_at(bytes: Bytes, up_to: i64) -> Bytes {
    let mut end = 0usize;
    for b in split_batches(&bytes) {
        if b.base_offset >= up_to {
            break;
        }
        end += b.data.len();
    }
    bytes.slice(..end)
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
        let persisted = read_quorum_state(&state_path)?;
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
                let file = QuorumStateFile {
                    leader_id: s.leader.unwrap_or(-1),
                    leader_epoch: s.epoch,
                    voted_id: s.voted_for.unwrap_or(-1),
                    applied_offset: 0,
                    current_voters: st
                        .core
                        .voters()
                        .iter()
                        .map(|&voter_id| VoterEntry { voter_id })
                        .collect(),
                    data_version: 0,
                };
                let bytes = serde_json::to_vec(&file).unwrap_or_default();
                if let Err(e) = crate::storage::checkpoint::atomic_write(&self.state_path, &bytes) {
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
            let (version, kind) = self.encode_request(peer, request);
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
                            if let Some(p) = r.topics.first().and_then(|t| t.partitions.first()) {
                                st.core.handle_epoch_response(EpochResponse {
                                    error_code: p.error_code,
                                    epoch: p.leader_epoch,
                                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                                });
                            }
                        }
                        (_, ResponseKind::EndQuorumEpoch(r)) => {
                            if let Some(p) = r.topics.first().and_then(|t| t.partitions.first()) {
                                st.core.handle_epoch_response(EpochResponse {
                                    error_code: p.error_code,
                                    epoch: p.leader_epoch,
                                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                                });
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

    fn encode_request(&self, to: ReplicaId, request: Request) -> (i16, RequestKind) {
        match request {
            // Vote v2 carries KIP-996's PreVote and names the receiver (VoterId, v1+).
            Request::Vote(v) => (
                2,
                RequestKind::Vote(
                    VoteRequest::default()
                        .with_cluster_id(self.cluster_id())
                        .with_voter_id(BrokerId(to))
                        .with_topics(vec![vote_request::TopicData::default()
                            .with_topic_name(metadata_topic())
                            .with_partitions(vec![vote_request::PartitionData::default()
                                .with_partition_index(0)
                                .with_replica_epoch(v.candidate_epoch)
                                .with_replica_id(BrokerId(v.candidate_id))
                                .with_last_offset_epoch(v.last_epoch)
                                .with_last_offset(v.end_offset)
                                .with_pre_vote(v.pre_vote)])]),
                ),
            ),
            Request::BeginQuorumEpoch(r) => (
                0,
                RequestKind::BeginQuorumEpoch(
                    BeginQuorumEpochRequest::default()
                        .with_cluster_id(self.cluster_id())
                        .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
                            .with_topic_name(metadata_topic())
                            .with_partitions(vec![
                                begin_quorum_epoch_request::PartitionData::default()
                                    .with_partition_index(0)
                                    .with_leader_id(BrokerId(r.leader_id))
                                    .with_leader_epoch(r.leader_epoch),
                            ])]),
                ),
            ),
            Request::EndQuorumEpoch(r) => (
                0,
                RequestKind::EndQuorumEpoch(
                    EndQuorumEpochRequest::default()
                        .with_cluster_id(self.cluster_id())
                        .with_topics(vec![end_quorum_epoch_request::TopicData::default()
                            .with_topic_name(metadata_topic())
                            .with_partitions(vec![
                                end_quorum_epoch_request::PartitionData::default()
                                    .with_partition_index(0)
                                    .with_leader_id(BrokerId(r.leader_id))
                                    .with_leader_epoch(r.leader_epoch),
                            ])]),
                ),
            ),
        }
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
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(self.id))
                .with_max_wait_ms(max_wait)
                .with_min_bytes(1)
                .with_max_bytes(8 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(metadata_topic())
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(req.epoch)
                        .with_fetch_offset(req.fetch_offset)
                        .with_last_fetched_epoch(req.last_fetched_epoch)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(8 << 20)])]);
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

    /// Fetches snapshot `req.snapshot` from the leader in chunks into its partial file,
    /// checks it, renames it into place and has the core install it. Returns early (Ok)
    /// when the leader answers with an error (the core decides what next) or the core no
    /// longer wants this snapshot.
    async fn download_snapshot(
        &self,
        c: &mut Connection,
        req: quorum::FetchSnapshotRequest,
    ) -> anyhow::Result<()> {
        use std::io::Write;
        let id = req.snapshot;
        let part = metadata_snapshot::partial_path(&self.dir, id);
        let mut file = std::fs::File::create(&part)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", part.display()))?;
        let mut position = 0i64;
        let timeout = Duration::from_millis(self.fetch_timeout_ms + 500);
        loop {
            let request = metadata_snapshot::fetch_snapshot_request(
                self.id,
                req.epoch,
                id,
                position,
                SNAPSHOT_CHUNK_BYTES,
            );
            let resp = match c
                .send(0, RequestKind::FetchSnapshot(request), timeout)
                .await
            {
                Ok(ResponseKind::FetchSnapshot(r)) => r,
                Ok(_) => anyhow::bail!("unexpected answer to FetchSnapshot"),
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(e);
                }
            };
            let Some(chunk) = metadata_snapshot::decode_fetch_snapshot_response(resp) else {
                anyhow::bail!("empty FetchSnapshot answer");
            };
            let still_wanted = {
                let mut st = self.lock();
                let result = match chunk.error_code {
                    0 => Ok(()),
                    code => Err(code),
                };
                st.core
                    .handle_fetch_snapshot_response(chunk.epoch, chunk.leader, result);
                self.perform(&mut st);
                st.core.snapshot_request().map(|(_, r)| r) == Some(req)
            };
            if chunk.error_code != 0 || !still_wanted {
                let _ = std::fs::remove_file(&part);
                if chunk.error_code != 0 {
                    tracing::info!(
                        node = self.id,
                        code = chunk.error_code,
                        ?id,
                        "FetchSnapshot refused"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Ok(());
            }
            if chunk.position != position {
                let _ = std::fs::remove_file(&part);
                anyhow::bail!(
                    "FetchSnapshot answered position {} for {position}",
                    chunk.position
                );
            }
            file.write_all(&chunk.bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", part.display()))?;
            position += chunk.bytes.len() as i64;
            if position >= chunk.size {
                break;
            }
            if chunk.bytes.is_empty() {
                let _ = std::fs::remove_file(&part);
                anyhow::bail!("FetchSnapshot made no progress at position {position}");
            }
        }
        file.sync_all()
            .map_err(|e| anyhow::anyhow!("fsyncing {}: {e}", part.display()))?;
        drop(file);
        let records = match metadata_snapshot::read_file(&part, id) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        metadata_snapshot::complete(&self.dir, id)?;
        let image = MetadataImage::from_snapshot(id.end_offset, &records);
        let mut st = self.lock();
        st.installing = Some((id, image));
        if st.core.install_snapshot(id) {
            self.perform(&mut st);
        } else {
            st.installing = None;
            // Not wanted any more; unless it is this voter's own latest snapshot too.
            if st.core.log().snapshot() != Some(id) {
                let _ = std::fs::remove_file(metadata_snapshot::path(&self.dir, id));
            }
        }
        Ok(())
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

    /// Deletes the segments that lie wholly below the latest snapshot (a segment that was
    /// still active when the snapshot was taken goes once the log has rolled past it), and
    /// moves the core's log start with them.
    /// Returns how many segments went.
    fn delete_below_snapshot(&self, st: &mut State) -> usize {
        let Some(id) = st.core.log().snapshot() else {
            return 0;
        };
        let deleted = match st.log.delete_segments_below(id.end_offset) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => fatal("cannot delete metadata log segments below the snapshot", e),
        };
        st.core.snapshot_taken(id, st.log.log_start_offset());
        deleted
    }

    /// Writes a snapshot of the committed image once enough was committed since the last
    /// one, deletes the log's segments below it, and tells the core.
    fn maybe_snapshot(&self, st: &mut State) {
        if st.bytes_since_snapshot < self.max_bytes_between_snapshots {
            return;
        }
        let end = st.image.last_offset() + 1;
        if st
            .core
            .log()
            .snapshot()
            .is_some_and(|s| s.end_offset >= end)
        {
            return;
        }
        let Some(epoch) = st.core.log().epoch_at(end - 1) else {
            return;
        };
        let id = SnapshotId {
            end_offset: end,
            epoch,
        };
        let records = st.image.image_records();
        st.bytes_since_snapshot = 0;
        let size = match metadata_snapshot::write(&self.dir, id, &records) {
            Ok(size) => size,
            Err(e) => {
                tracing::error!(node = self.id, error = %format!("{e:#}"), "cannot write a metadata snapshot");
                return;
            }
        };
        st.core.snapshot_taken(id, st.log.log_start_offset());
        let deleted = self.delete_below_snapshot(st);
        if let Err(e) = metadata_snapshot::delete_older(&self.dir, id) {
            tracing::warn!(error = %e, "cannot delete older snapshots");
        }
        tracing::info!(
            node = self.id,
            end_offset = end,
            epoch,
            records = records.len(),
            bytes = size,
            segments_deleted = deleted,
            log_start = st.log.log_start_offset(),
            "metadata snapshot written"
        );
    }

    /// Rebuilds the committed image from the latest snapshot (the log after it is applied
    /// again by `apply_committed`).
    fn reload_image(&self, st: &mut State) {
        st.image = match metadata_snapshot::load_latest(&self.dir) {
            Ok(Some((_, image))) => image,
            Ok(None) => MetadataImage::new(),
            Err(e) => fatal("cannot reload the metadata snapshot", format!("{e:#}")),
        };
    }

    // -------------------------------------------------------------------------------------
    // Serving the quorum's requests

    /// FetchSnapshot (KIP-630) of `__cluster_metadata-0` from a follower or an observer:
    /// the core decides, the snapshot file supplies the bytes from `Position`, at most
    /// `MaxBytes`.
    pub fn fetch_snapshot(&self, req: &FetchSnapshotRequest) -> FetchSnapshotResponse {
        let Some((topic, p)) = req
            .topics
            .first()
            .and_then(|t| Some((t, t.partitions.first()?)))
        else {
            return FetchSnapshotResponse::default().with_error_code(42);
        };
        let mut out = fetch_snapshot_response::PartitionSnapshot::default()
            .with_index(p.partition)
            .with_snapshot_id(
                fetch_snapshot_response::SnapshotId::default()
                    .with_end_offset(p.snapshot_id.end_offset)
                    .with_epoch(p.snapshot_id.epoch),
            )
            .with_position(p.position);
        if topic.name.0.as_str() != METADATA_TOPIC || p.partition != 0 {
            out.error_code = 3; // UNKNOWN_TOPIC_OR_PARTITION
        } else {
            let mut st = self.lock();
            let answer = st.core.handle_fetch_snapshot(quorum::FetchSnapshotRequest {
                replica_id: req.replica_id.0,
                epoch: p.current_leader_epoch,
                snapshot: SnapshotId {
                    end_offset: p.snapshot_id.end_offset,
                    epoch: p.snapshot_id.epoch,
                },
            });
            self.perform(&mut st);
            let (epoch, leader) = match answer {
                FetchSnapshotAnswer::Serve {
                    epoch,
                    leader,
                    snapshot,
                } => {
                    let max = req.max_bytes.max(1) as usize;
                    match metadata_snapshot::read_chunk(&self.dir, snapshot, p.position, max) {
                        Ok(Chunk::Data { size, bytes }) => {
                            out.size = size as i64;
                            out.unaligned_records = bytes;
                        }
                        Ok(Chunk::OutOfRange { size }) => {
                            out.size = size as i64;
                            out.error_code = codes::POSITION_OUT_OF_RANGE;
                        }
                        Ok(Chunk::NotFound) => out.error_code = codes::SNAPSHOT_NOT_FOUND,
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "reading a snapshot");
                            out.error_code = -1; // UNKNOWN_SERVER_ERROR
                        }
                    }
                    (epoch, Some(leader))
                }
                FetchSnapshotAnswer::Error {
                    code,
                    epoch,
                    leader,
                } => {
                    out.error_code = code;
                    (epoch, leader)
                }
            };
            out.current_leader = fetch_snapshot_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                .with_leader_epoch(epoch);
        }
        FetchSnapshotResponse::default().with_topics(vec![
            fetch_snapshot_response::TopicSnapshot::default()
                .with_name(topic.name.clone())
                .with_partitions(vec![out]),
        ])
    }

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

    /// The single partition a quorum request must address: `__cluster_metadata-0`.
    fn quorum_partition<'a, P>(
        topics: impl IntoIterator<Item = (&'a TopicName, &'a [P])>,
    ) -> Result<&'a P, i16>
    where
        P: 'a + HasPartitionIndex,
    {
        let mut topics = topics.into_iter();
        let (Some((name, parts)), None) = (topics.next(), topics.next()) else {
            return Err(codes::INVALID_REQUEST);
        };
        match parts {
            [p] if name.0.as_str() == METADATA_TOPIC && p.partition_index() == 0 => Ok(p),
            _ => Err(codes::INVALID_REQUEST),
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
        let p = match Self::quorum_partition(
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
                error_code: INVALID_VOTER_KEY,
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
        VoteResponse::default().with_topics(vec![vote_response::TopicData::default()
            .with_topic_name(metadata_topic())
            .with_partitions(vec![vote_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(r.error_code)
                .with_leader_id(BrokerId(r.leader.unwrap_or(-1)))
                .with_leader_epoch(r.epoch)
                .with_vote_granted(r.vote_granted)])])
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
        let p = match Self::quorum_partition(
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
                error_code: INVALID_VOTER_KEY,
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
        BeginQuorumEpochResponse::default().with_topics(vec![
            begin_quorum_epoch_response::TopicData::default()
                .with_topic_name(metadata_topic())
                .with_partitions(vec![begin_quorum_epoch_response::PartitionData::default()
                    .with_partition_index(0)
                    .with_error_code(r.error_code)
                    .with_leader_id(BrokerId(r.leader.unwrap_or(-1)))
                    .with_leader_epoch(r.epoch)]),
        ])
    }

    /// EndQuorumEpoch: checked as BeginQuorumEpoch.
    pub fn handle_end_quorum_epoch(&self, req: &EndQuorumEpochRequest) -> EndQuorumEpochResponse {
        if !self.cluster_id_matches(&req.cluster_id) {
            return EndQuorumEpochResponse::default()
                .with_error_code(codes::INCONSISTENT_CLUSTER_ID);
        }
        let p = match Self::quorum_partition(
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
        EndQuorumEpochResponse::default().with_topics(vec![
            end_quorum_epoch_response::TopicData::default()
                .with_topic_name(metadata_topic())
                .with_partitions(vec![end_quorum_epoch_response::PartitionData::default()
                    .with_partition_index(0)
                    .with_error_code(r.error_code)
                    .with_leader_id(BrokerId(r.leader.unwrap_or(-1)))
                    .with_leader_epoch(r.epoch)]),
        ])
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
            resp.error_code = 42;
            return resp;
        };
        let mut pd = PartitionData::default()
            .with_partition_index(part.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        if topic.topic.0.as_str() != METADATA_TOPIC || part.partition != 0 {
            pd.error_code = 3; // UNKNOWN_TOPIC_OR_PARTITION
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
                                Ok(bytes) => Ok(cut_at(bytes, up_to)),
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

    /// Runs one controller operation on the active controller, appends its records through
    /// the quorum as one batch, and returns once the high watermark has passed them.
    pub async fn commit<T>(&self, op: impl FnOnce(&mut Controller) -> T) -> Result<T, NotActive> {
        let (out, end, epoch) = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let Some(c) = st.controller.as_mut() else {
                return Err(NotActive);
            };
            let out = op(c);
            let records = c.drain_records();
            let Some(&(first, _)) = records.first() else {
                return Ok(out);
            };
            let (base, epoch) = st
                .core
                .append(records.len() as i64)
                .map_err(|_| NotActive)?;
            if base != first {
                fatal(
                    "the controller and the metadata log disagree on offsets",
                    format!("controller {first}, log {base}"),
                );
            }
            let values: Vec<MetadataRecord> = records.into_iter().map(|(_, r)| r).collect();
            let result = encode_batch(&values, now_ms() as i64)
                .and_then(|batch| Ok(st.log.append_as_leader(batch, epoch)?));
            if let Err(e) = result {
                fatal("cannot write the metadata log", e);
            }
            let end = st.log.log_end_offset();
            st.core.flushed(end);
            self.perform(st);
            (out, end, epoch)
        };
        let mut rx = self.progress();
        let done = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|p| p.high_watermark >= end || p.epoch != epoch || !p.active),
        )
        .await;
        match done {
            Ok(Ok(p)) if p.high_watermark >= end && p.epoch == epoch => Ok(out),
            _ => Err(NotActive),
        }
    }

    /// Clean shutdown: the leader resigns and tells the other voters (EndQuorumEpoch).
    /// Returns whether it was the leader.
    pub fn resign(&self) -> bool {
        let mut st = self.lock();
        let was_leader = st.core.is_leader();
        st.core.resign();
        self.perform(&mut st);
        was_leader
    }

    /// A copy of the active controller (for validate-only requests and lookups).
    pub fn controller_snapshot(&self) -> Result<Controller, NotActive> {
        self.lock().controller.clone().ok_or(NotActive)
    }
}

fn fill_fetch_partition(pd: &mut PartitionData, answer: FetchAnswer, records: Result<Bytes, i16>) {
    match answer {
        FetchAnswer::Records {
            epoch,
            leader,
            high_watermark,
            ..
        } => {
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
            pd.high_watermark = high_watermark;
            pd.last_stable_offset = high_watermark;
            match records {
                Ok(bytes) => pd.records = Some(bytes),
                Err(code) => pd.error_code = code,
            }
        }
        FetchAnswer::DivergingEpoch {
            epoch,
            leader,
            high_watermark,
            diverging_epoch,
            end_offset,
        } => {
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
            pd.high_watermark = high_watermark;
            pd.diverging_epoch = EpochEndOffset::default()
                .with_epoch(diverging_epoch)
                .with_end_offset(end_offset);
        }
        FetchAnswer::Snapshot {
            epoch,
            leader,
            high_watermark,
            snapshot,
        } => {
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch);
            pd.high_watermark = high_watermark;
            pd.snapshot_id = fetch_response::SnapshotId::default()
                .with_end_offset(snapshot.end_offset)
                .with_epoch(snapshot.epoch);
        }
        FetchAnswer::Error {
            code,
            epoch,
            leader,
        } => {
            pd.error_code = code;
            pd.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                .with_leader_epoch(epoch);
        }
    }
}

/// A Vote response as the core reads it; `pre_vote` is what the request asked (the wire
/// does not echo it). A top-level error (INCONSISTENT_CLUSTER_ID) carries no answer.
fn decode_vote_response(r: &VoteResponse, pre_vote: bool) -> Option<quorum::VoteResponse> {
    if r.error_code != 0 {
        return None;
    }
    let p = r.topics.first()?.partitions.first()?;
    Some(quorum::VoteResponse {
        pre_vote,
        error_code: p.error_code,
        epoch: p.leader_epoch,
        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
        vote_granted: p.vote_granted,
    })
}

/// A voter's Fetch response as the core reads it.
fn decode_fetch_response(
    resp: FetchResponse,
    req: &quorum::FetchRequest,
) -> Option<quorum::FetchResponse> {
    let p = resp
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()?;
    let leader = (p.current_leader.leader_id.0 >= 0).then_some(p.current_leader.leader_id.0);
    let result = if p.error_code != 0 {
        FetchResult::Error(p.error_code)
    } else if p.snapshot_id.end_offset >= 0 {
        FetchResult::Snapshot(SnapshotId {
            end_offset: p.snapshot_id.end_offset,
            epoch: p.snapshot_id.epoch,
        })
    } else if p.diverging_epoch.end_offset >= 0 {
        FetchResult::DivergingEpoch {
            epoch: p.diverging_epoch.epoch,
            end_offset: p.diverging_epoch.end_offset,
        }
    } else {
        FetchResult::Records(p.records.as_ref().map(split_batches).unwrap_or_default())
    };
    Some(quorum::FetchResponse {
        fetch_offset: req.fetch_offset,
        last_fetched_epoch: req.last_fetched_epoch,
        epoch: p.current_leader.leader_epoch,
        leader,
        high_watermark: p.high_watermark,
        result,
    })
}

/// Opens the latest snapshot of the metadata log in `dir` and lines the log up with it:
/// leftover partial snapshots are deleted; a log that ends before the snapshot (a crash
/// while installing a fetched one) restarts at the snapshot's end; segments wholly below it
/// are deleted. A log that starts after offset 0 without a snapshot that reaches its start,
/// or a snapshot file that does not decode, is an error naming what is wrong.
fn open_snapshot(
    dir: &std::path::Path,
    log: &mut PartitionLog,
) -> anyhow::Result<(Option<SnapshotId>, MetadataImage)> {
    metadata_snapshot::delete_partials(dir)?;
    let Some((id, image)) = metadata_snapshot::load_latest(dir)
        .map_err(|e| anyhow::anyhow!("cannot load the latest metadata snapshot: {e:#}"))?
    else {
        if log.log_start_offset() > 0 {
            anyhow::bail!(
                "the metadata log in {} starts at offset {} but there is no snapshot to cover the offsets below it",
                dir.display(),
                log.log_start_offset()
            );
        }
        return Ok((None, MetadataImage::new()));
    };
    if log.log_start_offset() > id.end_offset {
        anyhow::bail!(
            "the metadata log in {} starts at offset {} but its latest snapshot {} ends at {}: the records in between are missing",
            dir.display(),
            log.log_start_offset(),
            metadata_snapshot::file_name(id),
            id.end_offset
        );
    }
    if log.log_end_offset() < id.end_offset {
        log.truncate_fully_and_start_at(id.end_offset)?;
    } else {
        log.delete_segments_below(id.end_offset)?;
    }
    Ok((Some(id), image))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(records: usize, base: i64, epoch: i32) -> Bytes {
        let recs: Vec<MetadataRecord> = (0..records)
            .map(|i| MetadataRecord::LeaderChange {
                leader_id: i as i32,
                leader_epoch: epoch,
            })
            .collect();
        let mut b = encode_batch(&recs, 0).expect("encodes");
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[12..16].copy_from_slice(&epoch.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn fetched_bytes_split_into_batches_and_cut_at_the_high_watermark() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&batch_of(2, 0, 1));
        all.extend_from_slice(&batch_of(1, 2, 1));
        all.extend_from_slice(&batch_of(3, 3, 2));
        let all = all.freeze();
        let batches = split_batches(&all);
        let spans: Vec<(i64, i64, i32)> = batches
            .iter()
            .map(|b| (b.base_offset, b.last_offset, b.epoch))
            .collect();
        assert_eq!(spans, vec![(0, 1, 1), (2, 2, 1), (3, 5, 2)]);
        // Observers read below the high watermark only, in whole batches.
        assert_eq!(split_batches(&cut_at(all.clone(), 3)).len(), 2);
        assert_eq!(split_batches(&cut_at(all.clone(), 2)).len(), 1);
        assert!(cut_at(all.clone(), 0).is_empty());
        assert_eq!(cut_at(all.clone(), 6), all);
        // A torn tail is not a batch.
        assert_eq!(split_batches(&all.slice(..all.len() - 1)).len(), 2);
    }

    fn open_log(dir: &std::path::Path) -> PartitionLog {
        PartitionLog::open(
            dir,
            LogConfig {
                segment_bytes: 1024,
                flush_policy: FlushPolicy::EveryBatch,
                oversized_batch_own_segment: true,
                ..LogConfig::default()
            },
        )
        .unwrap()
    }

    fn topic(i: u8) -> MetadataRecord {
        MetadataRecord::Topic {
            name: format!("t{i}"),
            topic_id: [i + 1; 16],
        }
    }

    #[test]
    fn a_restart_starts_from_the_latest_snapshot_and_the_log_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        // 30 one-record batches of epoch 1 over several 1 KiB segments.
        for i in 0..30u8 {
            let b = encode_batch(&[topic(i)], 0).unwrap();
            log.append_as_leader(b, 1).unwrap();
        }
        assert!(log.segment_base_offsets().len() > 3);
        let (none, image) = open_snapshot(dir.path(), &mut log).unwrap();
        assert_eq!((none, image.last_offset()), (None, -1));
        // A snapshot of the first 20 records, and a leftover partial one.
        let id = SnapshotId {
            end_offset: 20,
            epoch: 1,
        };
        let records: Vec<MetadataRecord> = (0..20).map(topic).collect();
        metadata_snapshot::write(dir.path(), id, &records).unwrap();
        std::fs::write(
            metadata_snapshot::partial_path(
                dir.path(),
                SnapshotId {
                    end_offset: 25,
                    epoch: 1,
                },
            ),
            b"half",
        )
        .unwrap();
        let (got, image) = open_snapshot(dir.path(), &mut log).unwrap();
        assert_eq!(got, Some(id));
        assert_eq!(image.last_offset(), 19);
        assert_eq!(image.topics().count(), 20);
        // Segments wholly below the snapshot are gone; the log after it stays.
        assert!(log.log_start_offset() > 0 && log.log_start_offset() <= 20);
        assert_eq!(log.log_end_offset(), 30);
        assert_eq!(metadata_snapshot::list(dir.path()).unwrap(), vec![id]);
        assert!(!metadata_snapshot::partial_path(
            dir.path(),
            SnapshotId {
                end_offset: 25,
                epoch: 1
            }
        )
        .exists());
        // A snapshot past the log end (a crash during an install): the log restarts there.
        let later = SnapshotId {
            end_offset: 40,
            epoch: 2,
        };
        metadata_snapshot::write(dir.path(), later, &records).unwrap();
        let (got, image) = open_snapshot(dir.path(), &mut log).unwrap();
        assert_eq!(got, Some(later));
        assert_eq!(image.last_offset(), 39);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    }

    #[test]
    fn a_corrupt_snapshot_or_a_log_without_its_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        let id = SnapshotId {
            end_offset: 5,
            epoch: 1,
        };
        metadata_snapshot::write(dir.path(), id, &[topic(1)]).unwrap();
        let path = metadata_snapshot::path(dir.path(), id);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        let err = open_snapshot(dir.path(), &mut log).unwrap_err().to_string();
        assert!(
            err.contains("cannot load the latest metadata snapshot")
                && err.contains("00000000000000000005-0000000001.checkpoint"),
            "{err}"
        );
        // No snapshot, but the log starts at 5.
        std::fs::remove_file(&path).unwrap();
        log.truncate_fully_and_start_at(5).unwrap();
        let err = open_snapshot(dir.path(), &mut log).unwrap_err().to_string();
        assert!(
            err.contains("starts at offset 5 but there is no snapshot"),
            "{err}"
        );
        // A snapshot that ends before the log start.
        metadata_snapshot::write(
            dir.path(),
            SnapshotId {
                end_offset: 3,
                epoch: 1,
            },
            &[],
        )
        .unwrap();
        let err = open_snapshot(dir.path(), &mut log).unwrap_err().to_string();
        assert!(err.contains("records in between are missing"), "{err}");
    }

    #[test]
    fn the_quorum_state_file_round_trips_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quorum-state");
        assert_eq!(read_quorum_state(&path).unwrap(), QuorumState::default());
        let file = QuorumStateFile {
            leader_id: 2,
            leader_epoch: 7,
            voted_id: 3,
            applied_offset: 0,
            current_voters: vec![VoterEntry { voter_id: 1 }],
            data_version: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        assert_eq!(
            read_quorum_state(&path).unwrap(),
            QuorumState {
                epoch: 7,
                voted_for: Some(3),
                leader: Some(2)
            }
        );
        std::fs::write(&path, b"{not json").unwrap();
        let err = read_quorum_state(&path).unwrap_err().to_string();
        assert!(err.contains("malformed quorum state"), "{err}");
    }
}
