//! [`Replica`]: one broker's replica of one partition, as a deterministic state machine.
//!
//! Each public transition is the counterpart of a step of the model
//! (`model/src/partition.rs`) and carries its name, so the two read side by side. Where
//! Kafka does more than the model (request timeouts, replica.lag.time.max.ms, stale
//! broker-epoch fetches), the extra behaviour is marked.
//!
//! The replica owns its [`PartitionLog`] and mutates it synchronously; nothing else here
//! touches the outside world. Record batches stay `Bytes`/`BytesMut` end to end: the core
//! never decodes records.

use std::collections::VecDeque;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};

use super::ids::{BrokerId, LeaderEpoch, NO_BROKER, UNKNOWN_BROKER_EPOCH};
use super::producer_state::{Check, ProducerStateManager};
use super::purgatory::{DelayedProduce, ProduceCompletion, ProducePurgatory};
use crate::error_codes::*;
use crate::fault;
use crate::faults::Faults;
use crate::storage::{
    set_create_time_max_timestamps, validate_produce, BatchHeader, BatchRejection, PartitionLog,
    StorageError, TimestampType, ValidationConfig, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};

/// What the replica asks its driver to do, drained with [`Replica::poll_effect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answer a produce request that was waiting in the purgatory.
    CompleteProduce(ProduceCompletion),
    /// Send this AlterPartition request to the controller (from [`Replica::handle_timeout`]).
    SendAlterPartition(AlterPartitionProposal),
}

/// The settings the protocol reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This broker's id.
    pub broker_id: BrokerId,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`: how long a follower may stay behind the leader's log end
    /// before the leader proposes dropping it from the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Test-only flaws put back (`faults` feature; empty otherwise).
    pub faults: Faults,
}

impl ReplicaConfig {
    pub fn new(broker_id: BrokerId) -> Self {
        ReplicaConfig {
            broker_id,
            min_insync_replicas: 2,
            replica_lag_time_max_ms: 30_000,
            faults: Faults::default(),
        }
    }
}

/// The partition state a broker learns from the controller's metadata (KRaft's
/// PartitionRecord / PartitionChangeRecord).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// The leader, [`NO_BROKER`] while the partition is offline.
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    /// Bumped on every change of the partition state (the AlterPartition version check).
    pub partition_epoch: i32,
    pub isr: Vec<BrokerId>,
    /// Every assigned replica, leader included.
    pub replicas: Vec<BrokerId>,
}

/// What the leader knows of one follower, from the follower's fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerState {
    pub broker_id: BrokerId,
    /// The follower's log end offset as its last valid fetch told; `None` until it fetches
    /// in this leader epoch (the model's `UNKNOWN_OFFSET`: it blocks the high watermark).
    pub log_end_offset: Option<i64>,
    /// The broker epoch its last valid fetch carried (KIP-903).
    pub broker_epoch: i64,
    /// Kafka's `lastCaughtUpTimeMs`: the last time it was known to have the leader's whole
    /// log (replica.lag.time.max.ms is measured from here).
    pub last_caught_up_time_ms: u64,
    /// Time and leader log end of its previous fetch (Kafka's `lastFetchTimeMs` and
    /// `lastFetchLeaderLogEndOffset`).
    pub last_fetch_time_ms: u64,
    pub last_fetch_leader_log_end_offset: i64,
}

/// An ISR change sent to the controller and not yet answered (KIP-497).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingIsr {
    pub isr: Vec<BrokerId>,
    /// For an expansion: the broker epoch of the added replica as the leader saw it
    /// fetching (the model's `pending_added_broker_epoch`, KIP-903).
    pub added_broker_epoch: Option<i64>,
}

/// Leader-only state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderState {
    /// The committed ISR, as last learned from the controller.
    pub isr: Vec<BrokerId>,
    pub pending_isr: Option<PendingIsr>,
    pub partition_epoch: i32,
    /// The log end offset when this leader epoch began (Kafka's `leaderEpochStartOffsetOpt`,
    /// the model's `epoch_start_offset`). Also assigned in the log's epoch cache on
    /// becoming leader; kept here too in case that checkpoint write failed.
    pub epoch_start_offset: i64,
    /// Every other assigned replica.
    pub followers: Vec<FollowerState>,
}

impl LeaderState {
    /// The ISR the high watermark uses while an AlterPartition is pending: committed ∪
    /// proposed (KIP-497's maximal ISR), so a shrink never advances it early and an
    /// expansion already waits for the new member.
    pub fn maximal_isr(&self) -> impl Iterator<Item = BrokerId> + '_ {
        let pending = self.pending_isr.iter().flat_map(|p| p.isr.iter());
        self.isr
            .iter()
            .copied()
            .chain(pending.copied().filter(|b| !self.isr.contains(b)))
    }

    pub fn follower(&self, id: BrokerId) -> Option<&FollowerState> {
        self.followers.iter().find(|f| f.broker_id == id)
    }

    fn follower_mut(&mut self, id: BrokerId) -> Option<&mut FollowerState> {
        self.followers.iter_mut().find(|f| f.broker_id == id)
    }
}

/// What this broker believes about the partition's leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No leader known (just restarted, or the partition is offline).
    None,
    Leader(LeaderState),
    Follower {
        leader: BrokerId,
    },
}

/// Produce `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0.
    None,
    /// acks=1: answered once the leader appended.
    Leader,
    /// acks=-1: answered once the high watermark passes the records.
    All,
}

impl Acks {
    /// From the wire value (0, 1, -1).
    pub fn from_i16(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// The immediate outcome of a produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProduceOutcome {
    /// Answered now (appended with acks 0/1, refused by the producer state or the ISR, or
    /// already committed).
    Completed(ProduceCompletion),
    /// A batch failed validation ([`crate::storage::validate`]): nothing was appended. The
    /// rejection carries the Kafka error, the message and the record errors for Produce v8+.
    Rejected(BatchRejection),
    /// Appended at `base_offset` and parked in the purgatory; the answer comes later as an
    /// [`Effect::CompleteProduce`].
    Delayed { base_offset: i64 },
}

/// One partition of a follower's Fetch request (what the model's `fetch` builds from the
/// follower's state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchRequestPartition {
    pub replica_id: BrokerId,
    /// The follower's broker epoch (Fetch's `ReplicaState.ReplicaEpoch`, KIP-903).
    pub replica_broker_epoch: i64,
    pub fetch_offset: i64,
    /// KIP-595's `LastFetchedEpoch`; `None` for an empty log.
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// KIP-320's `CurrentLeaderEpoch`.
    pub current_leader_epoch: LeaderEpoch,
    pub max_bytes: usize,
}

/// Fetch's `DivergingEpoch`: the leader's largest epoch at or below the follower's last
/// fetched epoch and where it ends on the leader; `-1, -1` when the leader knows none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: LeaderEpoch,
    pub end_offset: i64,
}

impl EpochEndOffset {
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_EPOCH_OFFSET,
    };

    fn from_option(end: Option<(LeaderEpoch, i64)>) -> Self {
        end.map_or(Self::UNDEFINED, |(epoch, end_offset)| EpochEndOffset {
            epoch,
            end_offset,
        })
    }
}

/// The leader's answer for one partition of a follower's Fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResult {
    pub error_code: i16,
    /// The leader's high watermark after handling the fetch (-1 on error).
    pub high_watermark: i64,
    /// Set when the follower's log diverges: it must truncate before fetching again.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Whole batches from the fetch offset (maybe empty).
    pub records: Bytes,
}

impl FetchResult {
    fn error(error_code: i16) -> Self {
        FetchResult {
            error_code,
            high_watermark: -1,
            diverging_epoch: None,
            records: Bytes::new(),
        }
    }
}

/// A fetch response as the follower's fetcher hands it back: the leader and epoch the
/// request went to, the offset it asked for, and the leader's answer (the model's
/// `FetchResponse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub fetch_offset: i64,
    pub result: FetchResult,
}

/// What the follower did with a fetch response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerFetchOutcome {
    /// Not for the current leader and epoch, or for an offset it no longer fetches from.
    Dropped,
    /// The leader answered with an error; nothing changed.
    Error(i16),
    /// Diverging epoch handled; the log now ends at `log_end_offset` (maybe unchanged).
    Truncated { log_end_offset: i64 },
    /// Records appended; the log now ends at `log_end_offset`.
    Appended { log_end_offset: i64 },
}

/// One member of a proposed ISR, with its broker epoch (AlterPartition's
/// `NewIsrWithEpochs`, KIP-903); -1 when the leader has not seen it fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

/// An AlterPartition request for this partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionProposal {
    pub leader_id: BrokerId,
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the proposal is based on (the controller's version check).
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
}

/// The controller's answer to an AlterPartition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterPartitionResponse {
    /// The new partition state was committed.
    Committed {
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
    },
    /// Rejected (INVALID_UPDATE_VERSION, FENCED_LEADER_EPOCH, INELIGIBLE_REPLICA, ...).
    Error(i16),
}

/// One broker's replica of one partition.
#[derive(Debug)]
pub struct Replica {
    config: ReplicaConfig,
    log: PartitionLog,
    /// The broker epoch of this broker's current registration (KIP-903).
    broker_epoch: i64,
    /// The leader epoch last learned from metadata (-1 before any).
    leader_epoch: LeaderEpoch,
    role: Role,
    purgatory: ProducePurgatory,
    /// Idempotent producers' state, always equal to what the log's batches imply.
    producers: ProducerStateManager,
    effects: VecDeque<Effect>,
    /// Faults `SingleEpochTruncation` and `UnfencedTruncation` only: the follower validated
    /// its log against its leader once (before KIP-279 one OffsetsForLeaderEpoch lookup) and
    /// now fetches without a last fetched epoch. Always false in a correct broker.
    epoch_validated: bool,
}

impl Replica {
    /// A replica over an opened (recovered) log that has not learned any metadata yet.
    /// The producer state is rebuilt from the log's batch headers (one header-only pass,
    /// see [`ProducerStateManager::rebuild`]); reading them can fail.
    pub fn new(
        config: ReplicaConfig,
        log: PartitionLog,
        broker_epoch: i64,
    ) -> Result<Self, StorageError> {
        let producers = ProducerStateManager::from_log(&log)?;
        Ok(Replica {
            config,
            log,
            broker_epoch,
            leader_epoch: UNDEFINED_EPOCH,
            role: Role::None,
            purgatory: ProducePurgatory::new(),
            producers,
            effects: VecDeque::new(),
            epoch_validated: false,
        })
    }

    // -------------------------------------------------------------------------------------
    // Accessors

    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }
    /// Switches test-only faults (see [`crate::faults`]).
    pub fn set_faults(&mut self, faults: Faults) {
        self.config.faults = faults;
    }
    pub fn broker_id(&self) -> BrokerId {
        self.config.broker_id
    }
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }
    pub fn role(&self) -> &Role {
        &self.role
    }
    /// The idempotent producers' state of this partition.
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }
    /// The leader this broker believes in ([`NO_BROKER`] when none).
    pub fn leader(&self) -> BrokerId {
        match &self.role {
            Role::None => NO_BROKER,
            Role::Leader(_) => self.config.broker_id,
            Role::Follower { leader } => *leader,
        }
    }
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }
    pub fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }
    /// The log, for the driver's maintenance work that is not a protocol step: the flush
    /// policy, retention and the high-watermark checkpoint.
    pub fn log_mut(&mut self) -> &mut PartitionLog {
        &mut self.log
    }

    /// The topic's `min.insync.replicas` changed (IncrementalAlterConfigs).
    pub fn set_min_insync_replicas(&mut self, min_isr: usize) {
        self.config.min_insync_replicas = min_isr.max(1);
    }

    /// The topic's `max.message.bytes`: the largest batch this replica accepts as leader.
    pub fn set_max_message_bytes(&mut self, max: u64) {
        self.log.set_max_batch_bytes(max);
    }

    /// The topic's `segment.bytes`: the size at which this replica's log rolls a segment.
    pub fn set_segment_bytes(&mut self, segment_bytes: u64) {
        self.log.set_segment_bytes(segment_bytes);
    }

    /// The topic's `message.timestamp.type`: with LogAppendTime this replica, as leader,
    /// stamps each appended batch with the time it is appended.
    pub fn set_message_timestamp_type(&mut self, timestamp_type: TimestampType) {
        self.log.set_timestamp_type(timestamp_type);
    }

    /// The topic's `message.timestamp.before.max.ms` / `after.max.ms`: a CreateTime batch
    /// whose timestamps lie further from the broker's clock is refused (INVALID_TIMESTAMP).
    pub fn set_message_timestamp_bounds(&mut self, before_max_ms: i64, after_max_ms: i64) {
        self.log.set_timestamp_bounds(before_max_ms, after_max_ms);
    }

    pub fn log(&self) -> &PartitionLog {
        &self.log
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }
    pub fn purgatory(&self) -> &ProducePurgatory {
        &self.purgatory
    }

    /// The next effect for the driver, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    // -------------------------------------------------------------------------------------
    // Invariants

    /// What holds after every transition, checked where it changes state (a comparison and
    /// a scan of an ISR of a few brokers: free, so `assert!`). The high watermark never
    /// passes the log end offset; a leader's committed ISR holds the leader (so it is never
    /// empty): the controller elects from the ISR and never removes the leader from it, and
    /// this leader never proposes to drop itself.
    fn assert_invariants(&self) {
        let (hw, leo) = (self.log.high_watermark(), self.log.log_end_offset());
        assert!(
            hw <= leo,
            "replica {}: high watermark {hw} past the log end offset {leo}",
            self.config.broker_id
        );
        if let Role::Leader(l) = &self.role {
            assert!(
                l.isr.contains(&self.config.broker_id),
                "replica {} leads epoch {} with an ISR {:?} that does not hold it",
                self.config.broker_id,
                self.leader_epoch,
                l.isr
            );
        }
    }

    /// The only write of the leader epoch: metadata moves it forward, never back (stale
    /// metadata is ignored before this is reached).
    fn set_leader_epoch(&mut self, epoch: LeaderEpoch) {
        assert!(
            epoch >= self.leader_epoch,
            "replica {}: leader epoch would go back from {} to {epoch}",
            self.config.broker_id,
            self.leader_epoch
        );
        self.leader_epoch = epoch;
    }

    // -------------------------------------------------------------------------------------
    // Metadata: BecomeLeader / BecomeFollower

    /// Model step `BecomeLeader`: the metadata says this broker leads. A new leader epoch
    /// fails the produces still waiting from an earlier leadership, resets what it knows
    /// of followers (their offsets are unknown until they fetch; ISR members count as
    /// caught up now, as Kafka's `resetReplicaState`), and remembers where its epoch starts.
    /// The same leader epoch with a newer partition epoch only updates the ISR. Returns
    /// whether anything changed; stale metadata (older epochs) is ignored.
    pub fn become_leader(&mut self, state: &PartitionRegistration, now_ms: u64) -> bool {
        let me = self.config.broker_id;
        if state.leader != me || state.leader_epoch < self.leader_epoch {
            return false;
        }
        if let (Role::Leader(l), true) = (&mut self.role, state.leader_epoch == self.leader_epoch) {
            if state.partition_epoch <= l.partition_epoch {
                return false;
            }
            l.isr.clone_from(&state.isr);
            l.partition_epoch = state.partition_epoch;
            l.pending_isr = None;
            for &r in &state.replicas {
                if r != me && l.follower(r).is_none() {
                    l.followers.push(new_follower_state(r, false, now_ms));
                }
            }
            l.followers
                .retain(|f| state.replicas.contains(&f.broker_id));
        } else {
            self.fail_delayed_produces();
            self.epoch_validated = false;
            let followers = state
                .replicas
                .iter()
                .filter(|&&r| r != me)
                .map(|&r| new_follower_state(r, state.isr.contains(&r), now_ms))
                .collect();
            self.role = Role::Leader(LeaderState {
                isr: state.isr.clone(),
                pending_isr: None,
                partition_epoch: state.partition_epoch,
                epoch_start_offset: self.log.log_end_offset(),
                followers,
            });
            self.set_leader_epoch(state.leader_epoch);
            // As Kafka's `makeLeader` (and the model's BecomeLeader): the new epoch starts at
            // the log end now, not at the first append. Otherwise a leader that loses
            // leadership before appending would send an older last fetched epoch than the
            // model's and Kafka's, and answer followers' epoch lookups differently.
            if let Err(e) = self.log.assign_epoch_start(state.leader_epoch) {
                // The epoch start is still kept in `epoch_start_offset`, and the first
                // append assigns the epoch again.
                tracing::warn!(error = %e, "could not checkpoint the new leader epoch");
            }
        }
        self.maybe_advance_high_watermark();
        self.assert_invariants();
        true
    }

    /// Model step `BecomeFollower`: the metadata says another broker (or none) leads. No
    /// truncation here: the first fetch to the new leader validates the log (KIP-595) and
    /// truncates only a diverged tail. Produces waiting at a former leader fail.
    pub fn become_follower(&mut self, state: &PartitionRegistration) -> bool {
        if state.leader == self.config.broker_id || state.leader_epoch < self.leader_epoch {
            return false;
        }
        if self.leader() == state.leader && self.leader_epoch == state.leader_epoch {
            return false;
        }
        if self.is_leader() {
            self.fail_delayed_produces();
        }
        self.role = if state.leader == NO_BROKER {
            Role::None
        } else {
            Role::Follower {
                leader: state.leader,
            }
        };
        self.set_leader_epoch(state.leader_epoch);
        self.epoch_validated = false;
        if fault!(self.config.faults, HwTruncation) {
            // Before KIP-101: a new follower cut its log back to its high watermark.
            if let Err(e) = self.truncate_to_high_watermark() {
                tracing::warn!(error = %e, "truncating to the high watermark");
            }
        }
        self.assert_invariants();
        true
    }

    /// The pre-KIP-101 truncation (fault `HwTruncation` only).
    fn truncate_to_high_watermark(&mut self) -> Result<(), StorageError> {
        let hw = self.log.high_watermark();
        if hw < self.log.log_end_offset() {
            self.log.truncate_to(hw)?;
            self.producers.rebuild(&self.log)?;
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------------
    // Produce

    /// Model step `Produce`: appends a producer's batches in the leader epoch.
    ///
    /// acks=all is refused with NOT_ENOUGH_REPLICAS before the append while the committed
    /// ISR is below min.insync.replicas; otherwise it waits in the purgatory until the high
    /// watermark passes its last record (or `timeout_ms` passes). acks 0/1 are answered now.
    ///
    /// Idempotent producers (KIP-98): every batch is checked against the producer state
    /// first ([`ProducerStateManager::check_all`]); a refusal answers with its Kafka error
    /// and appends nothing. A retry of a batch already in the log appends nothing either
    /// and is answered with the original batch's base offset, exactly as if it had just
    /// been appended there: for acks=all it waits, like the original, until the high
    /// watermark passes the original's last offset (Kafka answers duplicates through the
    /// same `DelayedProduce` path).
    pub fn append_as_leader(
        &mut self,
        request_id: u64,
        mut batches: BytesMut,
        acks: Acks,
        timeout_ms: u64,
        now_ms: u64,
    ) -> ProduceOutcome {
        let done = |error_code, base_offset| {
            ProduceOutcome::Completed(ProduceCompletion {
                request_id,
                error_code,
                base_offset,
            })
        };
        let Role::Leader(l) = &self.role else {
            return done(NOT_LEADER_OR_FOLLOWER, -1);
        };
        if acks == Acks::All && l.isr.len() < self.config.min_insync_replicas {
            return done(NOT_ENOUGH_REPLICAS, -1);
        }
        // Kafka's LogValidator, before the producer state looks at the producer fields (a
        // corrupted header must not be mistaken for a retry) and before any offset exists.
        let log_config = self.log.config();
        let config = ValidationConfig {
            timestamp_before_max_ms: log_config.timestamp_before_max_ms,
            timestamp_after_max_ms: log_config.timestamp_after_max_ms,
            timestamp_type: log_config.timestamp_type,
            ..ValidationConfig::new(
                log_config.max_batch_bytes,
                i64::try_from(now_ms).unwrap_or(i64::MAX),
            )
        };
        let validated = match validate_produce(&batches, &config) {
            Ok(v) => v,
            Err(rejection) => return ProduceOutcome::Rejected(rejection),
        };
        if config.timestamp_type == TimestampType::CreateTime {
            set_create_time_max_timestamps(&mut batches, &validated);
        }
        let headers: Vec<BatchHeader> = validated.into_iter().map(|b| b.header).collect();
        match self.producers.check_all(&headers) {
            Err(e) => return done(e.kafka_error_code(), -1),
            Ok(Check::Duplicate {
                base_offset,
                last_offset,
            }) => {
                return self.answer_appended(
                    request_id,
                    acks,
                    base_offset,
                    last_offset,
                    timeout_ms,
                    now_ms,
                )
            }
            Ok(Check::Append) => {}
        }
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let info = match self
            .log
            .append_as_leader_at(batches, self.leader_epoch, Some(now))
        {
            Ok(info) => info,
            Err(e) => return done(e.kafka_error_code(), -1),
        };
        self.producers.update_from_append(&info.batches);
        self.maybe_advance_high_watermark();
        self.assert_invariants();
        if info.record_count == 0 {
            return done(NONE, info.first_offset);
        }
        self.answer_appended(
            request_id,
            acks,
            info.first_offset,
            info.last_offset,
            timeout_ms,
            now_ms,
        )
    }

    /// The answer for records in the log at `[base_offset, last_offset]`: now for acks 0/1
    /// or if already committed, otherwise parked in the purgatory.
    fn answer_appended(
        &mut self,
        request_id: u64,
        acks: Acks,
        base_offset: i64,
        last_offset: i64,
        timeout_ms: u64,
        now_ms: u64,
    ) -> ProduceOutcome {
        let done = |error_code| {
            ProduceOutcome::Completed(ProduceCompletion {
                request_id,
                error_code,
                base_offset,
            })
        };
        if acks != Acks::All || fault!(self.config.faults, AckBeforeReplication) {
            return done(NONE);
        }
        let required_offset = last_offset + 1;
        if self.log.high_watermark() >= required_offset {
            // Committed already (the ISR is this leader alone, or a duplicate of a
            // committed batch).
            let enough = self.maximal_isr_len() >= self.config.min_insync_replicas;
            return done(if enough {
                NONE
            } else {
                NOT_ENOUGH_REPLICAS_AFTER_APPEND
            });
        }
        self.purgatory.add(DelayedProduce {
            request_id,
            base_offset,
            required_offset,
            deadline_ms: now_ms.saturating_add(timeout_ms),
        });
        ProduceOutcome::Delayed { base_offset }
    }

    /// Times out waiting produces whose deadline passed, and queues the AlterPartition that
    /// [`Self::isr_changes_due`] finds (Kafka's purgatory reaper and isr-expiration task).
    /// The driver calls it on a fixed tick, as Kafka runs both tasks on a schedule: a
    /// follower falls out of sync by time passing, not at a deadline the replica could name.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let effects = &mut self.effects;
        self.purgatory
            .expire(now_ms, |c| effects.push_back(Effect::CompleteProduce(c)));
        if let Some(p) = self.isr_changes_due(now_ms) {
            self.effects.push_back(Effect::SendAlterPartition(p));
        }
    }

    // -------------------------------------------------------------------------------------
    // Fetch

    /// Follower side of model step `Fetch`: the request, built from this replica's state;
    /// `None` unless it follows a leader. Returns the leader to send it to.
    pub fn fetch_request(&self, max_bytes: usize) -> Option<(BrokerId, FetchRequestPartition)> {
        let Role::Follower { leader } = self.role else {
            return None;
        };
        let f = self.config.faults;
        // Faults: before KIP-101 there were no epochs to send; before KIP-279 only the first
        // fetch after a leader change validated the log.
        let validates_once = fault!(f, SingleEpochTruncation) || fault!(f, UnfencedTruncation);
        let no_epoch = fault!(f, HwTruncation) || (validates_once && self.epoch_validated);
        Some((
            leader,
            FetchRequestPartition {
                replica_id: self.config.broker_id,
                replica_broker_epoch: self.broker_epoch,
                fetch_offset: self.log.log_end_offset(),
                last_fetched_epoch: if no_epoch {
                    None
                } else {
                    self.log.latest_epoch()
                },
                current_leader_epoch: self.leader_epoch,
                max_bytes,
            },
        ))
    }

    /// Leader side of model step `Fetch`: a follower's fetch.
    ///
    /// Fenced unless this broker leads in exactly the follower's current leader epoch
    /// (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, KIP-320). Then the
    /// KIP-595 check: if the leader's end offset for the follower's last fetched epoch has a
    /// smaller epoch or ends below the fetch offset, the answer is a diverging epoch and
    /// nothing else changes. Otherwise the follower's offset and broker epoch are recorded,
    /// the high watermark may advance, and the records from the fetch offset are returned.
    pub fn handle_fetch_from_follower(
        &mut self,
        req: &FetchRequestPartition,
        now_ms: u64,
    ) -> FetchResult {
        let leader_epoch = self.leader_epoch;
        let Role::Leader(l) = &mut self.role else {
            return FetchResult::error(NOT_LEADER_OR_FOLLOWER);
        };
        // Fault: before KIP-320 fetches carried no current leader epoch.
        let fenced = !fault!(self.config.faults, UnfencedTruncation);
        if fenced && req.current_leader_epoch < leader_epoch {
            return FetchResult::error(FENCED_LEADER_EPOCH);
        }
        if fenced && req.current_leader_epoch > leader_epoch {
            return FetchResult::error(UNKNOWN_LEADER_EPOCH);
        }
        // Kafka (not modelled): a fetch from an older incarnation of the follower is stale.
        match l.follower(req.replica_id) {
            Some(f)
                if req.replica_broker_epoch == UNKNOWN_BROKER_EPOCH
                    || req.replica_broker_epoch >= f.broker_epoch => {}
            _ => return FetchResult::error(NOT_LEADER_OR_FOLLOWER),
        }
        let leader_end = self.log.log_end_offset();
        let hw = self.log.high_watermark();
        let diverging = |end| FetchResult {
            error_code: NONE,
            high_watermark: hw,
            diverging_epoch: Some(EpochEndOffset::from_option(end)),
            records: Bytes::new(),
        };
        if let Some(e) = req.last_fetched_epoch {
            match leader_end_offset_for_epoch(&self.log, e) {
                Some((le, end)) if le >= e && end >= req.fetch_offset => {}
                other => return diverging(other),
            }
        }
        if req.fetch_offset > leader_end {
            // The follower is past the leader's log end (the model answers as a divergence).
            return diverging(Some((leader_epoch, leader_end)));
        }
        if req.fetch_offset < self.log.log_start_offset() {
            return FetchResult::error(OFFSET_OUT_OF_RANGE);
        }
        if let Some(f) = l.follower_mut(req.replica_id) {
            // Kafka's `updateFetchState`: caught up if it has the whole log, or everything
            // the leader had at its previous fetch.
            if req.fetch_offset >= leader_end {
                f.last_caught_up_time_ms = f.last_caught_up_time_ms.max(now_ms);
            } else if req.fetch_offset >= f.last_fetch_leader_log_end_offset {
                f.last_caught_up_time_ms = f.last_caught_up_time_ms.max(f.last_fetch_time_ms);
            }
            f.last_fetch_time_ms = now_ms;
            f.last_fetch_leader_log_end_offset = leader_end;
            f.log_end_offset = Some(req.fetch_offset);
            f.broker_epoch = req.replica_broker_epoch;
        }
        self.maybe_advance_high_watermark();
        self.assert_invariants();
        match self.log.read(req.fetch_offset, req.max_bytes) {
            Ok(records) => FetchResult {
                error_code: NONE,
                high_watermark: self.log.high_watermark(),
                diverging_epoch: None,
                records,
            },
            Err(e) => FetchResult::error(e.kafka_error_code()),
        }
    }

    /// Model step `HandleFetchResponse`, at the follower.
    ///
    /// Used only while it still follows the leader and epoch it fetched from (KIP-320). A
    /// diverging epoch truncates to the smaller of the leader's end offset for that epoch
    /// and this log's own end offset for it (to zero when the leader knows no such epoch).
    /// Records are appended if they start at the log end, and the high watermark becomes
    /// min(leader's high watermark, log end offset).
    pub fn handle_fetch_response(
        &mut self,
        resp: &FetchResponse,
    ) -> Result<FollowerFetchOutcome, StorageError> {
        // Fault: before KIP-320 a response was used whoever the follower follows now.
        let f = self.config.faults;
        let unfenced = fault!(f, UnfencedTruncation);
        let follows =
            matches!(self.role, Role::Follower { leader } if leader == resp.leader || unfenced);
        if !follows || (resp.leader_epoch != self.leader_epoch && !unfenced) {
            return Ok(FollowerFetchOutcome::Dropped);
        }
        let r = &resp.result;
        if r.error_code != NONE {
            return Ok(FollowerFetchOutcome::Error(r.error_code));
        }
        let leo = self.log.log_end_offset();
        if let Some(d) = r.diverging_epoch {
            let target = if d.epoch == UNDEFINED_EPOCH || d.end_offset == UNDEFINED_EPOCH_OFFSET {
                0
            } else if fault!(f, SingleEpochTruncation) || fault!(f, HwTruncation) {
                // Fault: the leader's answer is trusted as is, no lookup of our own.
                d.end_offset
            } else {
                match self.log.end_offset_for_epoch(d.epoch) {
                    Some((_, end)) => end.min(d.end_offset),
                    // An epoch newer than any this log has: it ends at our log end.
                    None => leo.min(d.end_offset),
                }
            };
            if target < leo {
                self.log.truncate_to(target)?;
                // Batches above the cut may have been a producer's last ones: replay the
                // log so a retry of a removed batch is appended again, not "deduplicated".
                self.producers.rebuild(&self.log)?;
            }
            self.epoch_validated = fault!(f, SingleEpochTruncation);
            self.assert_invariants();
            return Ok(FollowerFetchOutcome::Truncated {
                log_end_offset: self.log.log_end_offset(),
            });
        }
        if resp.fetch_offset != leo {
            return Ok(FollowerFetchOutcome::Dropped);
        }
        let info = self.log.append_as_follower(r.records.clone())?;
        self.producers.update_from_append(&info.batches);
        self.epoch_validated = fault!(f, SingleEpochTruncation) || unfenced;
        let leo = self.log.log_end_offset();
        self.log.set_high_watermark(r.high_watermark.min(leo));
        self.assert_invariants();
        Ok(FollowerFetchOutcome::Appended {
            log_end_offset: leo,
        })
    }

    // -------------------------------------------------------------------------------------
    // High watermark

    /// The model's `maybe_advance_high_watermark`: the smallest log end offset over the
    /// maximal ISR (a member whose offset is unknown blocks it), advanced only while the
    /// committed ISR has min.insync.replicas members (KIP-966: Kafka's `isUnderMinIsr` reads
    /// the committed ISR, so a pending expansion cannot let a zombie leader commit).
    /// Completes the waiting produces it passes. Returns whether it advanced.
    pub fn maybe_advance_high_watermark(&mut self) -> bool {
        let me = self.config.broker_id;
        let Role::Leader(l) = &self.role else {
            return false;
        };
        let below_min_isr = l.isr.len() < self.config.min_insync_replicas;
        if below_min_isr && !fault!(self.config.faults, LastReplicaStanding) {
            return false;
        }
        let mut hw = self.log.log_end_offset();
        let mut known = true;
        let mut visit = |m: BrokerId| {
            if m != me {
                match l.follower(m).and_then(|f| f.log_end_offset) {
                    Some(end) => hw = hw.min(end),
                    None => known = false,
                }
            }
        };
        let eager = fault!(self.config.faults, EagerIsrShrink);
        match &l.pending_isr {
            // Before KIP-497's maximal ISR: a pending shrink already counts.
            Some(p) if eager => p.isr.iter().copied().for_each(&mut visit),
            _ => l.maximal_isr().for_each(&mut visit),
        }
        if !known {
            return false;
        }
        if hw <= self.log.high_watermark() {
            return false;
        }
        let enough = l.maximal_isr().count() >= self.config.min_insync_replicas;
        let hw = self.log.set_high_watermark(hw);
        let effects = &mut self.effects;
        self.purgatory.complete_up_to(hw, enough, |c| {
            effects.push_back(Effect::CompleteProduce(c))
        });
        self.assert_invariants();
        true
    }

    fn maximal_isr_len(&self) -> usize {
        self.leader_state().map_or(0, |l| l.maximal_isr().count())
    }

    /// The model's `fail_delayed_produces`: NOT_LEADER_OR_FOLLOWER for every waiting produce.
    fn fail_delayed_produces(&mut self) {
        let effects = &mut self.effects;
        self.purgatory.fail_all(NOT_LEADER_OR_FOLLOWER, |c| {
            effects.push_back(Effect::CompleteProduce(c))
        });
    }

    // -------------------------------------------------------------------------------------
    // ISR changes (KIP-497 AlterPartition)

    /// Whether the leader would consider `follower` out of sync at `now_ms`: not caught up
    /// to the leader's log end, and not caught up for more than replica.lag.time.max.ms
    /// (Kafka's `isCaughtUp`; the model abstracts the time away).
    fn out_of_sync(&self, f: &FollowerState, now_ms: u64) -> bool {
        let caught_up = f.log_end_offset == Some(self.log.log_end_offset());
        !caught_up
            && now_ms.saturating_sub(f.last_caught_up_time_ms) > self.config.replica_lag_time_max_ms
    }

    /// Whether `follower` may join the ISR: its offset is known, at least the high
    /// watermark, and at least where this leader epoch starts (KAFKA-7128: otherwise it
    /// could still hold a tail from an earlier epoch that it must truncate).
    fn may_join_isr(&self, l: &LeaderState, f: &FollowerState) -> bool {
        let guard = !fault!(self.config.faults, NoExpandGuard);
        f.log_end_offset.is_some_and(|end| {
            end >= self.log.high_watermark() && (!guard || end >= l.epoch_start_offset)
        })
    }

    /// Model step `ProposeIsrShrink`: propose dropping a lagging `follower` from the ISR.
    pub fn propose_isr_shrink(
        &mut self,
        follower: BrokerId,
        now_ms: u64,
    ) -> Option<AlterPartitionProposal> {
        let l = self.leader_state()?;
        if l.pending_isr.is_some() || !l.isr.contains(&follower) {
            return None;
        }
        if !l
            .follower(follower)
            .is_some_and(|f| self.out_of_sync(f, now_ms))
        {
            return None;
        }
        let isr = l.isr.iter().copied().filter(|&b| b != follower).collect();
        self.propose(isr, None)
    }

    /// Model step `ProposeIsrExpand`: propose adding a caught-up `follower` to the ISR,
    /// carrying the broker epoch it fetched with (KIP-903).
    pub fn propose_isr_expand(&mut self, follower: BrokerId) -> Option<AlterPartitionProposal> {
        let l = self.leader_state()?;
        if l.pending_isr.is_some() || l.isr.contains(&follower) {
            return None;
        }
        let f = l.follower(follower)?;
        if !self.may_join_isr(l, f) {
            return None;
        }
        let added = f.broker_epoch;
        let mut isr = l.isr.clone();
        isr.push(follower);
        self.propose(isr, Some(added))
    }

    /// The ISR change due at `now_ms`, if any, as Kafka's leader makes them: first a shrink
    /// dropping every out-of-sync member at once, else an expansion by the first follower
    /// that may join. Nothing while another change is pending.
    pub fn isr_changes_due(&mut self, now_ms: u64) -> Option<AlterPartitionProposal> {
        let l = self.leader_state()?;
        if l.pending_isr.is_some() {
            return None;
        }
        let me = self.config.broker_id;
        let lagging =
            |b: BrokerId| b != me && l.follower(b).is_some_and(|f| self.out_of_sync(f, now_ms));
        if l.isr.iter().any(|&b| lagging(b)) {
            let isr = l.isr.iter().copied().filter(|&b| !lagging(b)).collect();
            return self.propose(isr, None);
        }
        let joiner = l
            .followers
            .iter()
            .find(|f| !l.isr.contains(&f.broker_id) && self.may_join_isr(l, f))
            .map(|f| f.broker_id)?;
        self.propose_isr_expand(joiner)
    }

    /// Records `isr` as pending and builds its AlterPartition. A shrink takes effect on the
    /// high watermark at once (the maximal ISR is unchanged, so it cannot advance early).
    fn propose(
        &mut self,
        isr: Vec<BrokerId>,
        added_broker_epoch: Option<i64>,
    ) -> Option<AlterPartitionProposal> {
        let me = self.config.broker_id;
        let broker_epoch = self.broker_epoch;
        let leader_epoch = self.leader_epoch;
        let Role::Leader(l) = &mut self.role else {
            return None;
        };
        let new_isr = isr
            .iter()
            .map(|&b| IsrMember {
                broker_id: b,
                broker_epoch: if b == me {
                    broker_epoch
                } else {
                    l.follower(b)
                        .map_or(UNKNOWN_BROKER_EPOCH, |f| f.broker_epoch)
                },
            })
            .collect();
        let proposal = AlterPartitionProposal {
            leader_id: me,
            leader_epoch,
            partition_epoch: l.partition_epoch,
            new_isr,
        };
        l.pending_isr = Some(PendingIsr {
            isr,
            added_broker_epoch,
        });
        self.maybe_advance_high_watermark();
        Some(proposal)
    }

    /// The leader's side of model step `AlterPartition`: a committed change becomes the ISR
    /// (and may advance the high watermark). A rejection for a stale leader or partition
    /// epoch (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION) changes nothing: as Kafka's
    /// `Partition.handleAlterPartitionError`, the change stays pending, nothing more is
    /// proposed, and the metadata that `become_leader` brings resets it. Any other error
    /// (INELIGIBLE_REPLICA, or the request never reached the controller) returns to the
    /// committed ISR, so the leader may propose again. Answers for another leader epoch, or
    /// older than the partition state it has, are ignored. Returns whether it changed.
    pub fn handle_alter_partition_response(&mut self, resp: &AlterPartitionResponse) -> bool {
        let leader_epoch = self.leader_epoch;
        let Role::Leader(l) = &mut self.role else {
            return false;
        };
        if l.pending_isr.is_none() {
            return false;
        }
        match resp {
            AlterPartitionResponse::Committed {
                leader_epoch: e,
                partition_epoch,
                isr,
            } => {
                if *e != leader_epoch || *partition_epoch <= l.partition_epoch {
                    return false;
                }
                l.isr.clone_from(isr);
                l.partition_epoch = *partition_epoch;
                l.pending_isr = None;
                self.maybe_advance_high_watermark();
                self.assert_invariants();
            }
            AlterPartitionResponse::Error(FENCED_LEADER_EPOCH | INVALID_UPDATE_VERSION) => {
                return false
            }
            AlterPartitionResponse::Error(_) => l.pending_isr = None,
        }
        true
    }

    // -------------------------------------------------------------------------------------
    // Crash and restart

    /// Model step `Crash`: the broker stops. Waiting produces are failed (their answers
    /// are discarded with the connections). A clean shutdown flushes and checkpoints the
    /// log; an unclean one keeps only what was fsynced. Returns the partition directory for
    /// [`Self::restart`].
    pub fn crash(mut self, clean: bool) -> Result<PathBuf, StorageError> {
        self.fail_delayed_produces();
        let dir = self.log.dir().to_path_buf();
        if clean {
            self.log.close()?;
            Ok(dir)
        } else {
            self.log.simulate_unclean_crash()
        }
    }

    /// Model step `Restart`: the log was recovered ([`PartitionLog::open`]) and the broker
    /// registered again with a new, larger broker epoch. It knows no leader until metadata
    /// tells it. The producer state is rebuilt from the recovered log.
    pub fn restart(
        config: ReplicaConfig,
        log: PartitionLog,
        broker_epoch: i64,
    ) -> Result<Self, StorageError> {
        let mut r = Replica::new(config, log, broker_epoch)?;
        if fault!(r.config.faults, HwTruncation) {
            r.truncate_to_high_watermark()?;
        }
        r.assert_invariants();
        Ok(r)
    }
}

fn new_follower_state(broker_id: BrokerId, in_isr: bool, now_ms: u64) -> FollowerState {
    FollowerState {
        broker_id,
        log_end_offset: None,
        broker_epoch: UNKNOWN_BROKER_EPOCH,
        last_caught_up_time_ms: if in_isr { now_ms } else { 0 },
        last_fetch_time_ms: 0,
        last_fetch_leader_log_end_offset: 0,
    }
}

/// The leader's end offset for `requested`, as if its current epoch were already in its
/// epoch cache (Kafka assigns it on becoming leader; our log learns it at the first
/// append). Until then the log's latest epoch ends at the log end, where the current epoch
/// starts, so an epoch between the two gets `(latest, log end)` instead of "unknown".
fn leader_end_offset_for_epoch(log: &PartitionLog, requested: LeaderEpoch) -> Option<(i32, i64)> {
    match (log.end_offset_for_epoch(requested), log.latest_epoch()) {
        (None, Some(latest)) if requested > latest => Some((latest, log.log_end_offset())),
        (answer, _) => answer,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
