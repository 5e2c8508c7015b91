//! The KRaft voter as a deterministic state machine, step for step the model's
//! (`model/src/kraft/model.rs`): `timeout`, `handle_vote`, `become_leader`,
//! `handle_begin_quorum_epoch`, `append`, `fetch_request`/`handle_fetch`,
//! `handle_fetch_response`, `resign`, and `restart` after a crash.
//!
//! The core does no I/O and reads no clock. Every call may queue [`Effect`]s, which the
//! driver takes with [`QuorumCore::take_effects`] and performs in order, before answering
//! the request that caused them: persisting the quorum state comes before any message that
//! depends on it (a vote must be durable before it is granted), appending and truncating the
//! local log, sending requests to other voters, arming the one timer, and publishing the
//! high watermark. Randomness stays outside too: the driver draws each timer's jitter.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::log::{LogSummary, SnapshotId};
use crate::error_codes as codes;

/// A voter's (or observer's) id: `node.id`.
pub type ReplicaId = i32;

/// A voter's state as KIP-595 (and the model's `Role`) names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// In an epoch with no known leader and no vote cast.
    Unattached,
    /// Voted for another voter in its epoch, no leader known.
    Voted,
    /// KIP-996: its election or fetch timer fired; it asks for pre-votes for the next epoch
    /// without leaving its own (nothing durable changes), and stands only once a majority
    /// grants them. Keeps the vote and the leader of its epoch it had.
    Prospective,
    /// Started an election in its epoch and voted for itself.
    Candidate,
    Leader,
    /// Knows the leader of its epoch and fetches from it.
    Follower,
    /// Was the leader of its epoch and gave it up, or restarted as its leader.
    Resigned,
}

/// The durable quorum state (Kafka's `quorum-state` file): persisted before any message
/// that depends on it leaves the voter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    pub epoch: i32,
    pub voted_for: Option<ReplicaId>,
    pub leader: Option<ReplicaId>,
}

/// The one timer a voter runs; the driver draws the jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Not the leader and not following one: start an election when it fires
    /// (`controller.quorum.election.timeout.ms` plus jitter).
    Election,
    /// Following a leader: the leader is presumed gone when no Fetch succeeds in
    /// `controller.quorum.fetch.timeout.ms`.
    Fetch,
    /// The leader resigned (EndQuorumEpoch) or the quorum is this voter alone: elect soon,
    /// after a short random backoff so that voters do not all stand at once.
    Backoff,
    /// The leader runs no timer.
    Off,
}

/// Vote (KIP-595): a candidate asks for a voter's vote in `candidate_epoch`; with
/// `pre_vote` (KIP-996, Vote v2's `PreVote`) a prospective asks whether the voter would
/// grant it in `candidate_epoch` (its epoch plus one), which changes nothing at the voter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRequest {
    pub pre_vote: bool,
    pub candidate_epoch: i32,
    pub candidate_id: ReplicaId,
    /// The epoch of the candidate's last entry (Kafka's `LastOffsetEpoch`).
    pub last_epoch: i32,
    /// The candidate's log end offset (Kafka's `LastOffset`).
    pub end_offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteResponse {
    /// Whether this answers a pre-vote. Not on the wire: the sender knows which request
    /// it sent, and must never count a pre-vote as a vote (a pre-vote is not durable).
    pub pre_vote: bool,
    pub error_code: i16,
    pub epoch: i32,
    pub leader: Option<ReplicaId>,
    pub vote_granted: bool,
}

/// BeginQuorumEpoch and EndQuorumEpoch carry the same two fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRequest {
    pub leader_id: ReplicaId,
    pub leader_epoch: i32,
}

/// The answer to BeginQuorumEpoch / EndQuorumEpoch: the receiver's epoch and leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochResponse {
    pub error_code: i16,
    pub epoch: i32,
    pub leader: Option<ReplicaId>,
}

/// A request the core sends to another voter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Vote(VoteRequest),
    BeginQuorumEpoch(EpochRequest),
    EndQuorumEpoch(EpochRequest),
}

/// A Fetch of the metadata log by a follower (a voter) or an observer (a broker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The fetching replica; negative or not a voter: an observer.
    pub replica_id: ReplicaId,
    /// The epoch the fetcher believes current (Kafka's `CurrentLeaderEpoch`).
    pub epoch: i32,
    /// The fetcher's log end offset.
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
}

/// The leader's decision on a Fetch; the driver reads `[from_offset, up_to)` from its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchAnswer {
    Records {
        epoch: i32,
        leader: ReplicaId,
        high_watermark: i64,
        from_offset: i64,
        /// Voters read to the log end; observers only to the high watermark.
        up_to: i64,
    },
    /// The fetch offset and last fetched epoch are not in the leader's log: the largest
    /// epoch the leader has at most the last fetched epoch, and its end offset.
    DivergingEpoch {
        epoch: i32,
        leader: ReplicaId,
        high_watermark: i64,
        diverging_epoch: i32,
        end_offset: i64,
    },
    /// The fetch offset is below the leader's log start, or the divergence lies below it
    /// (KIP-630): the follower must fetch this snapshot (FetchSnapshot) and install it.
    Snapshot {
        epoch: i32,
        leader: ReplicaId,
        high_watermark: i64,
        snapshot: SnapshotId,
    },
    Error {
        code: i16,
        epoch: i32,
        leader: Option<ReplicaId>,
    },
}

/// A FetchSnapshot of the metadata log's snapshot by a follower or an observer (KIP-630).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchSnapshotRequest {
    pub replica_id: ReplicaId,
    /// The epoch the fetcher believes current (`CurrentLeaderEpoch`; -1 from observers).
    pub epoch: i32,
    pub snapshot: SnapshotId,
}

/// The leader's decision on a FetchSnapshot: serve the bytes of `snapshot` (the driver reads
/// them from the snapshot file at the request's position), or an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchSnapshotAnswer {
    Serve {
        epoch: i32,
        leader: ReplicaId,
        snapshot: SnapshotId,
    },
    Error {
        code: i16,
        epoch: i32,
        leader: Option<ReplicaId>,
    },
}

impl FetchAnswer {
    /// The response the follower that sent `req` reads for this answer. The core keeps only
    /// offsets and epochs, so the records of `[from, to)` come from `read`, over the leader's
    /// stored log. Simulations and the conformance replay build responses this way; the
    /// tokio driver writes the same fields into Kafka's FetchResponse.
    pub fn into_response<E>(
        self,
        req: &FetchRequest,
        read: impl FnOnce(i64, i64) -> Result<Vec<Batch>, E>,
    ) -> Result<FetchResponse, E> {
        let (epoch, leader, high_watermark, result) = match self {
            FetchAnswer::Records {
                epoch,
                leader,
                high_watermark,
                from_offset,
                up_to,
            } => (
                epoch,
                Some(leader),
                high_watermark,
                FetchResult::Records(read(from_offset, up_to)?),
            ),
            FetchAnswer::DivergingEpoch {
                epoch,
                leader,
                high_watermark,
                diverging_epoch,
                end_offset,
            } => (
                epoch,
                Some(leader),
                high_watermark,
                FetchResult::DivergingEpoch {
                    epoch: diverging_epoch,
                    end_offset,
                },
            ),
            FetchAnswer::Snapshot {
                epoch,
                leader,
                high_watermark,
                snapshot,
            } => (
                epoch,
                Some(leader),
                high_watermark,
                FetchResult::Snapshot(snapshot),
            ),
            FetchAnswer::Error {
                code,
                epoch,
                leader,
            } => (epoch, leader, -1, FetchResult::Error(code)),
        };
        Ok(FetchResponse {
            fetch_offset: req.fetch_offset,
            last_fetched_epoch: req.last_fetched_epoch,
            epoch,
            leader,
            high_watermark,
            result,
        })
    }
}

/// One record batch of the metadata log, as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub epoch: i32,
    pub data: Bytes,
}

/// What a Fetch response carried, as the follower reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchResult {
    Records(Vec<Batch>),
    DivergingEpoch {
        epoch: i32,
        end_offset: i64,
    },
    /// KIP-630's `SnapshotId` in the partition's answer: fetch this snapshot.
    Snapshot(SnapshotId),
    Error(i16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    /// The fetch offset and last fetched epoch of the request this answers (the driver
    /// knows what it sent): an answer to a log the follower no longer has is stale.
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    pub epoch: i32,
    pub leader: Option<ReplicaId>,
    pub high_watermark: i64,
    pub result: FetchResult,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write and fsync the quorum-state file.
    PersistQuorumState(QuorumState),
    /// Append the LeaderChange control record of `epoch` at `offset` (a new leader's first
    /// entry), and report the flush with [`QuorumCore::flushed`].
    AppendLeaderChange { offset: i64, epoch: i32 },
    /// Append these batches (fetched from the leader) at the log end, then report the flush.
    Append(Vec<Batch>),
    /// Cut the log to end at this offset.
    Truncate(i64),
    /// Send a request to another voter; its response goes back to the core.
    Send(ReplicaId, Request),
    /// Entries below this offset are committed: apply them.
    HighWatermark(i64),
    /// The snapshot fetched from the leader (complete and fsynced) replaces the log: empty
    /// the log and start it at the snapshot's end offset, and load the metadata image from
    /// the snapshot.
    InstallSnapshot(SnapshotId),
    /// (Re)arm the timer; [`QuorumCore::timeout`] when it fires.
    SetTimer(Timer),
}

/// The leader is someone else, or no one: the caller must go to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    pub epoch: i32,
    pub leader: Option<ReplicaId>,
}

/// One voter of the KRaft quorum.
#[derive(Clone, Debug)]
pub struct QuorumCore {
    id: ReplicaId,
    voters: Vec<ReplicaId>,
    role: Role,
    /// Durable: the current epoch.
    epoch: i32,
    /// Durable: the voter this one voted for in `epoch`.
    voted_for: Option<ReplicaId>,
    /// Durable: the leader of `epoch` this voter knows.
    leader: Option<ReplicaId>,
    log: LogSummary,
    /// Volatile: offsets below it are committed (as far as this voter knows).
    high_watermark: i64,
    /// Candidate only: the voters that granted their vote.
    votes: Vec<ReplicaId>,
    /// Leader only: each voter's end offset as its last valid Fetch told.
    end_offsets: Vec<(ReplicaId, i64)>,
    /// Leader only: the voters that fetched since the last [`QuorumCore::check_quorum`],
    /// and whether a check has opened the first interval yet.
    fetched_since_check: Vec<ReplicaId>,
    quorum_checked: bool,
    /// Follower only: the leader's snapshot this follower must fetch before it can fetch
    /// records again (the leader answered a Fetch with its snapshot id).
    snapshot_to_fetch: Option<SnapshotId>,
    /// KIP-996 (on by default): a timeout starts a pre-vote instead of an election, and a
    /// voter that hears from a leader (the leader itself, or a follower whose fetch timer
    /// has not fired) refuses Votes and later epochs. Off, the voter behaves as KIP-595
    /// alone: the variant in which a disconnected voter deposes a healthy leader.
    pre_vote: bool,
    /// The quorum state as last persisted (or restarted from): what [`Self::persist`]
    /// checks the next one against.
    persisted: QuorumState,
    effects: Vec<Effect>,
}

impl QuorumCore {
    /// A voter starting (or restarting after a crash) from its durable quorum state and its
    /// log. The role follows from the quorum state, as the model's `Restart`: the leader of
    /// the epoch resigns, a voter that knows the leader follows it, one that voted for
    /// itself is a candidate again, one that voted for another stays voted.
    pub fn restart(
        id: ReplicaId,
        voters: Vec<ReplicaId>,
        state: QuorumState,
        log: LogSummary,
    ) -> QuorumCore {
        let role = match (state.leader, state.voted_for) {
            (Some(l), _) if l == id => Role::Resigned,
            (Some(_), _) => Role::Follower,
            (None, Some(v)) if v == id => Role::Candidate,
            (None, Some(_)) => Role::Voted,
            (None, None) => Role::Unattached,
        };
        let mut core = QuorumCore {
            id,
            voters,
            role,
            epoch: state.epoch,
            voted_for: state.voted_for,
            leader: state.leader,
            // A snapshot holds only committed entries.
            high_watermark: log.snapshot().map_or(0, |s| s.end_offset),
            log,
            votes: if role == Role::Candidate {
                vec![id]
            } else {
                Vec::new()
            },
            end_offsets: Vec::new(),
            fetched_since_check: Vec::new(),
            quorum_checked: false,
            pre_vote: true,
            snapshot_to_fetch: None,
            persisted: state,
            effects: Vec::new(),
        };
        let timer = if core.voters == [id] {
            Timer::Backoff
        } else if role == Role::Follower {
            Timer::Fetch
        } else {
            Timer::Election
        };
        core.effects.push(Effect::SetTimer(timer));
        core.send_vote_requests();
        core
    }

    /// Turns Pre-Vote (KIP-996) and the live-leader checks on or off (on by default); off
    /// is the KIP-595-only variant the simulation and the model compare against.
    pub fn with_pre_vote(mut self, on: bool) -> QuorumCore {
        self.pre_vote = on;
        self
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    pub fn voters(&self) -> &[ReplicaId] {
        &self.voters
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    pub fn voted_for(&self) -> Option<ReplicaId> {
        self.voted_for
    }

    pub fn leader(&self) -> Option<ReplicaId> {
        self.leader
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn log(&self) -> &LogSummary {
        &self.log
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// Leader only: each voter's end offset (the leader's own: what it has flushed).
    pub fn voter_end_offsets(&self) -> Vec<(ReplicaId, i64)> {
        self.voters
            .iter()
            .map(|&v| (v, self.end_offset_of(v)))
            .collect()
    }

    pub fn quorum_state(&self) -> QuorumState {
        QuorumState {
            epoch: self.epoch,
            voted_for: self.voted_for,
            leader: self.leader,
        }
    }

    /// The effects queued since the last call, in the order they must be performed.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        // Also after changes of the log that do not move the high watermark itself.
        assert!(
            self.high_watermark <= self.log.end_offset(),
            "voter {}: high watermark {} past the log end offset {}",
            self.id,
            self.high_watermark,
            self.log.end_offset()
        );
        std::mem::take(&mut self.effects)
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn is_voter(&self, id: ReplicaId) -> bool {
        self.voters.contains(&id)
    }

    /// Queues the quorum state to be made durable. The epoch never goes back, and a vote
    /// once cast stands for the rest of its epoch: `voted_for` changes only with the epoch
    /// (or from none to a vote). Both are the election's safety (one leader per epoch), so
    /// they are asserted here, where every durable change passes.
    fn persist(&mut self) {
        let state = self.quorum_state();
        let before = self.persisted;
        assert!(
            state.epoch >= before.epoch,
            "voter {}: epoch would go back from {} to {}",
            self.id,
            before.epoch,
            state.epoch
        );
        assert!(
            state.epoch > before.epoch
                || before.voted_for.is_none()
                || state.voted_for == before.voted_for,
            "voter {}: vote changed from {:?} to {:?} within epoch {}",
            self.id,
            before.voted_for,
            state.voted_for,
            state.epoch
        );
        self.persisted = state;
        self.effects.push(Effect::PersistQuorumState(state));
    }

    /// The only write of the high watermark: it never passes the log end offset (a
    /// follower takes the leader's bounded by its own log end; the leader computes it from
    /// end offsets its own log reaches).
    fn set_high_watermark(&mut self, hw: i64) {
        assert!(
            hw <= self.log.end_offset(),
            "voter {}: high watermark {hw} past the log end offset {}",
            self.id,
            self.log.end_offset()
        );
        self.high_watermark = hw;
    }

    fn not_leader(&self) -> NotLeader {
        NotLeader {
            epoch: self.epoch,
            leader: self.leader,
        }
    }

    /// Moves to a new epoch, unattached: no vote, no leader, no candidate or leader
    /// bookkeeping (the model's `enter_epoch`). The caller persists.
    fn enter_epoch(&mut self, epoch: i32) {
        self.epoch = epoch;
        self.role = Role::Unattached;
        self.voted_for = None;
        self.leader = None;
        self.votes.clear();
        self.end_offsets.clear();
        self.snapshot_to_fetch = None;
    }

    /// Learned of a later epoch from a response or request; follows its leader when named.
    fn observe_epoch(&mut self, epoch: i32, leader: Option<ReplicaId>) {
        if epoch < self.epoch || (epoch == self.epoch && self.leader.is_some()) {
            return;
        }
        if epoch > self.epoch {
            self.enter_epoch(epoch);
        }
        match leader.filter(|&l| l != self.id && self.is_voter(l)) {
            Some(l) => self.become_follower(l),
            None => {
                self.persist();
                self.effects.push(Effect::SetTimer(Timer::Election));
            }
        }
    }

    fn become_follower(&mut self, leader: ReplicaId) {
        self.role = Role::Follower;
        self.leader = Some(leader);
        self.votes.clear();
        self.end_offsets.clear();
        self.snapshot_to_fetch = None;
        self.persist();
        self.effects.push(Effect::SetTimer(Timer::Fetch));
    }

    /// Timeout: a voter that is not the leader stands. With Pre-Vote (KIP-996) it becomes
    /// `Prospective` and asks for pre-votes first ([`QuorumCore::start_pre_vote`]);
    /// without, it starts an election in the next epoch at once
    /// ([`QuorumCore::start_election`]). A quorum of one is elected at once either way.
    pub fn timeout(&mut self) {
        if self.role == Role::Leader || !self.is_voter(self.id) {
            return;
        }
        if self.pre_vote {
            self.start_pre_vote();
        } else {
            self.start_election();
        }
    }

    /// KIP-996's prospective: asks every other voter whether it would grant a vote in the
    /// next epoch, without moving to it, voting or persisting anything. The epoch, vote and
    /// leader it had stay, so that a voter cut off from the quorum comes back in the epoch
    /// it left and deposes no one; only a majority of pre-votes lets it stand.
    fn start_pre_vote(&mut self) {
        self.role = Role::Prospective;
        self.votes = vec![self.id];
        self.end_offsets.clear();
        self.snapshot_to_fetch = None;
        self.effects.push(Effect::SetTimer(Timer::Election));
        self.send_vote_requests();
        if self.votes.len() >= self.majority() {
            self.start_election();
        }
    }

    /// The election proper: the next epoch, as a candidate that voted for itself (durable
    /// before any Vote leaves); with a quorum of one it is elected at once.
    fn start_election(&mut self) {
        self.enter_epoch(self.epoch + 1);
        self.role = Role::Candidate;
        self.voted_for = Some(self.id);
        self.votes = vec![self.id];
        self.persist();
        self.effects.push(Effect::SetTimer(Timer::Election));
        self.send_vote_requests();
        self.become_leader();
    }

    /// Candidate (or prospective): (re)sends its Vote (or pre-vote) request to every voter
    /// that has not granted it. Kafka's candidate keeps polling the voters it has no answer
    /// from until its election timeout, including after a restart that finds it standing in
    /// its epoch; a candidate that sent nothing after a restart could only wait for the next
    /// epoch. The request carries the log as it is now, which cannot change while the voter
    /// stands (it fetches nothing then).
    pub fn send_vote_requests(&mut self) {
        let (pre_vote, candidate_epoch) = match self.role {
            Role::Candidate => (false, self.epoch),
            Role::Prospective => (true, self.epoch + 1),
            _ => return,
        };
        let request = VoteRequest {
            pre_vote,
            candidate_epoch,
            candidate_id: self.id,
            last_epoch: self.log.last_epoch(),
            end_offset: self.log.end_offset(),
        };
        for v in self.voters.clone() {
            if v != self.id && !self.votes.contains(&v) {
                self.effects.push(Effect::Send(v, Request::Vote(request)));
            }
        }
    }

    /// Whether a candidate's log, given by its last epoch and end offset, is at least as up
    /// to date as this voter's (compare last epochs, then end offsets).
    pub fn log_up_to_date(&self, last_epoch: i32, end_offset: i64) -> bool {
        (last_epoch, end_offset) >= (self.log.last_epoch(), self.log.end_offset())
    }

    /// KIP-996 / Raft §9.6: whether this voter hears from a leader of its epoch: it is the
    /// leader (check-quorum resigns a leader that stops hearing from a majority), or it
    /// follows one whose fetch timer has not fired (when it fires the follower becomes
    /// prospective). Such a voter refuses Votes and pre-votes and does not move to a later
    /// epoch on a Vote, BeginQuorumEpoch or EndQuorumEpoch, so a stray or forged request
    /// deposes no one. Without Pre-Vote, nobody is protected.
    pub fn has_live_leader(&self) -> bool {
        self.pre_vote && matches!(self.role, Role::Leader | Role::Follower)
    }

    /// The checks every quorum request from `sender` passes first, in Kafka's order: a
    /// stale epoch is fenced, a negative id is malformed, and the sender and the receiver
    /// must both be voters. (A Vote from the receiver's own id, or a leader naming the
    /// receiver, is refused by the request's own checks.)
    fn validate_voter_request(&self, sender: ReplicaId, epoch: i32) -> Result<(), i16> {
        if epoch < self.epoch {
            return Err(codes::FENCED_LEADER_EPOCH);
        }
        if sender < 0 {
            return Err(codes::INVALID_REQUEST);
        }
        if !self.is_voter(sender) || !self.is_voter(self.id) {
            return Err(codes::INCONSISTENT_VOTER_SET);
        }
        Ok(())
    }

    /// HandleVote. A malformed request (negative offsets, a last log epoch not below the
    /// candidate epoch, a Vote from this voter's own id) is INVALID_REQUEST; a stale epoch
    /// FENCED_LEADER_EPOCH; a non-voter INCONSISTENT_VOTER_SET. A voter that hears from a
    /// live leader grants nothing and stays in its epoch ([`QuorumCore::has_live_leader`]).
    ///
    /// A pre-vote changes nothing: it is granted iff the candidate's log is at least as up
    /// to date (a voter may grant pre-votes to several prospectives). A Vote for a higher
    /// epoch moves the voter to it (a leader without Pre-Vote steps down); it is granted iff
    /// the voter has not voted for another voter in that epoch, knows no leader of it, and
    /// the candidate's log is at least as up to date. The grant is persisted (an effect
    /// queued before the caller answers).
    pub fn handle_vote(&mut self, req: VoteRequest) -> VoteResponse {
        let refuse = |core: &Self, code| core.vote_response(req.pre_vote, code, false);
        if req.end_offset < 0
            || req.last_epoch < 0
            || req.last_epoch >= req.candidate_epoch
            || req.candidate_id == self.id
        {
            return refuse(self, codes::INVALID_REQUEST);
        }
        if let Err(code) = self.validate_voter_request(req.candidate_id, req.candidate_epoch) {
            return refuse(self, code);
        }
        if self.has_live_leader() {
            return refuse(self, 0);
        }
        let up_to_date = self.log_up_to_date(req.last_epoch, req.end_offset);
        if req.pre_vote {
            return self.vote_response(true, 0, up_to_date);
        }
        if req.candidate_epoch > self.epoch {
            self.enter_epoch(req.candidate_epoch);
            self.persist();
            self.effects.push(Effect::SetTimer(Timer::Election));
        }
        let may_vote = match self.role {
            Role::Unattached => true,
            Role::Voted => self.voted_for == Some(req.candidate_id),
            // A prospective has its old epoch's vote and leader: it grants what it would
            // have granted before it timed out.
            Role::Prospective => {
                self.leader.is_none() && self.voted_for.is_none_or(|v| v == req.candidate_id)
            }
            _ => false,
        };
        let granted = may_vote && up_to_date;
        if granted && self.voted_for.is_none() {
            self.role = Role::Voted;
            self.voted_for = Some(req.candidate_id);
            self.votes.clear();
            self.persist();
            self.effects.push(Effect::SetTimer(Timer::Election));
        }
        self.vote_response(false, 0, granted)
    }

    fn vote_response(&self, pre_vote: bool, error_code: i16, vote_granted: bool) -> VoteResponse {
        VoteResponse {
            pre_vote,
            error_code,
            epoch: self.epoch,
            leader: self.leader,
            vote_granted,
        }
    }

    /// A candidate counts a vote and becomes leader on a majority; a prospective counts a
    /// pre-vote and stands on a majority. A pre-vote answer never counts as a vote (nor the
    /// reverse). A pre-vote granted by a voter still in an earlier epoch counts (granting
    /// changed nothing there, and that voter would otherwise never catch up through
    /// pre-votes). A prospective refused by the leader of its epoch itself follows it
    /// again: the leader it lost contact with is alive.
    pub fn handle_vote_response(&mut self, from: ReplicaId, resp: VoteResponse) {
        if resp.epoch > self.epoch {
            self.observe_epoch(resp.epoch, resp.leader);
            return;
        }
        if !self.is_voter(from) {
            return;
        }
        if resp.pre_vote {
            if self.role != Role::Prospective {
                return;
            }
            if !resp.vote_granted {
                // Only the leader's own answer shows that it is alive: a follower naming it
                // may itself be about to time out, and following on its word would keep
                // two followers of a dead leader bouncing back to it forever.
                match resp.leader {
                    Some(l)
                        if l == from
                            && resp.epoch == self.epoch
                            && l != self.id
                            && self.leader.is_none_or(|k| k == l) =>
                    {
                        self.become_follower(l)
                    }
                    _ => {}
                }
                return;
            }
            if !self.votes.contains(&from) {
                self.votes.push(from);
                if self.votes.len() >= self.majority() {
                    self.start_election();
                }
            }
            return;
        }
        if self.role != Role::Candidate
            || resp.epoch != self.epoch
            || !resp.vote_granted
            || self.votes.contains(&from)
        {
            return;
        }
        self.votes.push(from);
        self.become_leader();
    }

    /// BecomeLeader: a candidate granted votes by a majority leads its epoch, and appends a
    /// LeaderChange control record so that an entry of its epoch can commit (KIP-595).
    /// BeginQuorumEpoch goes to every other voter.
    pub fn become_leader(&mut self) {
        if self.role != Role::Candidate || self.votes.len() < self.majority() {
            return;
        }
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.end_offsets.clear();
        self.fetched_since_check.clear();
        self.quorum_checked = false;
        self.persist();
        self.effects.push(Effect::SetTimer(Timer::Off));
        let offset = self.log.end_offset();
        self.log.append(self.epoch, 1);
        self.effects.push(Effect::AppendLeaderChange {
            offset,
            epoch: self.epoch,
        });
        self.send_begin_quorum_epoch();
    }

    /// Leader: (re)sends BeginQuorumEpoch to every voter that has not fetched in this epoch
    /// (the driver calls this periodically, so a voter that was down learns the leader).
    pub fn send_begin_quorum_epoch(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let req = EpochRequest {
            leader_id: self.id,
            leader_epoch: self.epoch,
        };
        for v in self.voters.clone() {
            if v != self.id && !self.end_offsets.iter().any(|&(r, _)| r == v) {
                self.effects
                    .push(Effect::Send(v, Request::BeginQuorumEpoch(req)));
            }
        }
    }

    /// Whether `leader` can be the leader of `epoch` as far as this voter knows: not when it
    /// knows another leader of that epoch, nor when it names this voter without this voter
    /// leading (or having led) that epoch. One leader per epoch is the protocol's first
    /// invariant, so a request claiming otherwise is forged or corrupt.
    fn can_lead(&self, leader: ReplicaId, epoch: i32) -> bool {
        if epoch == self.epoch && self.leader.is_some() {
            return self.leader == Some(leader);
        }
        leader != self.id
    }

    /// BeginQuorumEpoch: a voter in the leader's epoch or an earlier one follows the leader.
    /// Refused: a stale epoch (FENCED_LEADER_EPOCH), a non-voter (INCONSISTENT_VOTER_SET), a
    /// leader that cannot hold the epoch (INVALID_REQUEST, [`QuorumCore::can_lead`]), and
    /// with Pre-Vote a later epoch while this voter hears from a live leader
    /// (UNKNOWN_LEADER_EPOCH): a leader of a later epoch needed a majority of pre-votes,
    /// which voters hearing from a live leader refuse; when the quorum really moved on, the
    /// old leader resigns by check-quorum and the new leader's repeated BeginQuorumEpoch is
    /// then accepted.
    pub fn handle_begin_quorum_epoch(&mut self, req: EpochRequest) -> EpochResponse {
        if let Err(code) = self.validate_voter_request(req.leader_id, req.leader_epoch) {
            return self.epoch_response(code);
        }
        if !self.can_lead(req.leader_id, req.leader_epoch) {
            return self.epoch_response(codes::INVALID_REQUEST);
        }
        if req.leader_epoch == self.epoch && matches!(self.role, Role::Leader | Role::Resigned) {
            // Its own epoch, named by someone else: it already knows.
            return self.epoch_response(0);
        }
        if req.leader_epoch == self.epoch && self.role == Role::Follower {
            return self.epoch_response(0);
        }
        if req.leader_epoch > self.epoch {
            if self.has_live_leader() {
                return self.epoch_response(codes::UNKNOWN_LEADER_EPOCH);
            }
            self.enter_epoch(req.leader_epoch);
        }
        self.become_follower(req.leader_id);
        self.epoch_response(0)
    }

    /// EndQuorumEpoch: the leader of this epoch resigned; stand for election after a short
    /// backoff instead of waiting for the fetch timeout. Refused as BeginQuorumEpoch is: a
    /// stale epoch, a non-voter, a leader that cannot hold the epoch, a later epoch while
    /// this voter hears from a live leader. A later epoch otherwise only teaches the epoch.
    pub fn handle_end_quorum_epoch(&mut self, req: EpochRequest) -> EpochResponse {
        if let Err(code) = self.validate_voter_request(req.leader_id, req.leader_epoch) {
            return self.epoch_response(code);
        }
        if !self.can_lead(req.leader_id, req.leader_epoch)
            || (req.leader_epoch == self.epoch && self.role == Role::Leader)
        {
            // The leader of this epoch is this voter, and it has not resigned.
            return self.epoch_response(codes::INVALID_REQUEST);
        }
        if req.leader_epoch > self.epoch {
            if self.has_live_leader() {
                return self.epoch_response(codes::UNKNOWN_LEADER_EPOCH);
            }
            self.observe_epoch(req.leader_epoch, None);
        }
        if req.leader_epoch == self.epoch
            && self.leader == Some(req.leader_id)
            && self.role == Role::Follower
        {
            self.effects.push(Effect::SetTimer(Timer::Backoff));
        }
        self.epoch_response(0)
    }

    /// Responses to BeginQuorumEpoch / EndQuorumEpoch only teach epochs.
    pub fn handle_epoch_response(&mut self, resp: EpochResponse) {
        if resp.epoch > self.epoch {
            self.observe_epoch(resp.epoch, resp.leader);
        }
    }

    fn epoch_response(&self, error_code: i16) -> EpochResponse {
        EpochResponse {
            error_code,
            epoch: self.epoch,
            leader: self.leader,
        }
    }

    /// Append: the leader appends `count` metadata records (one batch) and returns the
    /// offset of the first and the epoch to stamp on the batch. The driver writes them
    /// at once and reports the flush.
    pub fn append(&mut self, count: i64) -> Result<(i64, i32), NotLeader> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        let base = self.log.end_offset();
        self.log.append(self.epoch, count);
        Ok((base, self.epoch))
    }

    /// The driver flushed the log up to `offset`; the leader counts its flushed offset in
    /// the high watermark.
    pub fn flushed(&mut self, offset: i64) {
        self.log.flush(offset);
        if self.role == Role::Leader {
            self.advance_high_watermark();
        }
    }

    /// Fetch, the follower's half: what to ask the leader for (its log end offset and last
    /// fetched epoch), or `None` when it follows no one.
    ///
    /// The fetch offset counts towards the leader's high watermark, so it must be durable:
    /// a voter that still holds an unflushed tail (from its own time as leader) must flush
    /// before it fetches (the driver fsyncs every append, so this never waits there).
    ///
    /// A follower that must fetch the leader's snapshot first sends no Fetch
    /// ([`QuorumCore::snapshot_request`] instead).
    pub fn fetch_request(&self) -> Option<(ReplicaId, FetchRequest)> {
        if self.role != Role::Follower
            || self.log.flushed() < self.log.end_offset()
            || self.snapshot_to_fetch.is_some()
        {
            return None;
        }
        Some((
            self.leader?,
            FetchRequest {
                replica_id: self.id,
                epoch: self.epoch,
                fetch_offset: self.log.end_offset(),
                last_fetched_epoch: self.log.last_epoch(),
            },
        ))
    }

    /// What Fetch and FetchSnapshot check first (KIP-595, KIP-630): only the leader answers,
    /// a voter's stale epoch is fenced and a future one is unknown (observers send no epoch
    /// that could be stale). Returns whether the fetcher is another voter, or the error code.
    fn validate_fetcher(&self, replica_id: ReplicaId, epoch: i32) -> Result<bool, i16> {
        if self.role != Role::Leader {
            return Err(codes::NOT_LEADER_OR_FOLLOWER);
        }
        let voter = self.is_voter(replica_id) && replica_id != self.id;
        if voter && epoch < self.epoch {
            return Err(codes::FENCED_LEADER_EPOCH);
        }
        if epoch > self.epoch {
            return Err(codes::UNKNOWN_LEADER_EPOCH);
        }
        Ok(voter)
    }

    /// Fetch, the leader's half: a diverging epoch when the fetch offset and last fetched
    /// epoch are not in its log; otherwise it records a voter's end offset, advances the
    /// high watermark, and answers with the entries from the fetch offset on (to its log
    /// end for a voter, to the high watermark for an observer).
    pub fn handle_fetch(&mut self, req: FetchRequest) -> FetchAnswer {
        let error = |core: &Self, code| FetchAnswer::Error {
            code,
            epoch: core.epoch,
            leader: core.leader,
        };
        let voter = match self.validate_fetcher(req.replica_id, req.epoch) {
            Ok(voter) => voter,
            Err(code) => return error(self, code),
        };
        let (epoch, end_offset) = self.log.end_offset_for_epoch(req.last_fetched_epoch);
        // Observers (brokers) read only committed records, which never diverge; they send
        // no last fetched epoch.
        let checked = voter || req.last_fetched_epoch >= 0;
        let diverging = checked
            && req.fetch_offset > 0
            && (epoch != req.last_fetched_epoch || end_offset < req.fetch_offset);
        // KIP-630: what the fetcher needs is below the log start (or the divergence is):
        // only the snapshot has it.
        if let Some(snapshot) = self.log.snapshot() {
            let start = self.log.start_offset();
            if req.fetch_offset < start || (diverging && end_offset < start) {
                return FetchAnswer::Snapshot {
                    epoch: self.epoch,
                    leader: self.id,
                    high_watermark: self.high_watermark,
                    snapshot,
                };
            }
        }
        if diverging {
            return FetchAnswer::DivergingEpoch {
                epoch: self.epoch,
                leader: self.id,
                high_watermark: self.high_watermark,
                diverging_epoch: epoch,
                end_offset,
            };
        }
        if voter {
            if !self.fetched_since_check.contains(&req.replica_id) {
                self.fetched_since_check.push(req.replica_id);
            }
            match self
                .end_offsets
                .iter_mut()
                .find(|(r, _)| *r == req.replica_id)
            {
                Some((_, o)) => *o = req.fetch_offset,
                None => self.end_offsets.push((req.replica_id, req.fetch_offset)),
            }
            self.advance_high_watermark();
        }
        FetchAnswer::Records {
            epoch: self.epoch,
            leader: self.id,
            high_watermark: self.high_watermark,
            from_offset: req.fetch_offset,
            up_to: if voter {
                self.log.end_offset()
            } else {
                self.high_watermark
            },
        }
    }

    /// HandleFetchResponse: on a diverging epoch the follower truncates to the smaller of
    /// the leader's end offset for that epoch and its own; otherwise it appends the batches
    /// that continue its log and takes the leader's high watermark, bounded by its log end.
    pub fn handle_fetch_response(&mut self, resp: FetchResponse) {
        if resp.epoch > self.epoch {
            self.observe_epoch(resp.epoch, resp.leader);
        }
        if self.role != Role::Follower || resp.epoch != self.epoch || resp.leader != self.leader {
            return;
        }
        // The model keeps one Fetch in flight, so the log cannot change under it; here a
        // late answer (a duplicate, or one overtaken by a reconnect) is recognised by the
        // log it was asked for, and dropped. Applying it could truncate entries the leader
        // has already counted towards its high watermark.
        if (resp.fetch_offset, resp.last_fetched_epoch)
            != (self.log.end_offset(), self.log.last_epoch())
        {
            return;
        }
        match resp.result {
            FetchResult::Error(_) => return,
            FetchResult::Snapshot(id) => {
                // Fetch the snapshot (FetchSnapshot), then install it.
                self.snapshot_to_fetch = Some(id);
            }
            FetchResult::DivergingEpoch { epoch, end_offset } => {
                let (_, own_end) = self.log.end_offset_for_epoch(epoch);
                // Never below the log start: that prefix is committed (in the snapshot).
                let to = end_offset.min(own_end).max(self.log.start_offset()).max(0);
                self.log.truncate(to);
                self.effects.push(Effect::Truncate(to));
                self.set_high_watermark(self.high_watermark.min(to));
            }
            FetchResult::Records(batches) => {
                let mut accepted = Vec::new();
                for b in batches {
                    if b.base_offset < self.log.end_offset() {
                        continue;
                    }
                    if b.base_offset != self.log.end_offset() || b.last_offset < b.base_offset {
                        break;
                    }
                    self.log.append(b.epoch, b.last_offset - b.base_offset + 1);
                    accepted.push(b);
                }
                if !accepted.is_empty() {
                    self.effects.push(Effect::Append(accepted));
                }
                let hw = resp.high_watermark.min(self.log.end_offset());
                if hw > self.high_watermark {
                    self.set_high_watermark(hw);
                    self.effects.push(Effect::HighWatermark(hw));
                }
            }
        }
        self.effects.push(Effect::SetTimer(Timer::Fetch));
    }

    /// FetchSnapshot, the follower's half: the snapshot to fetch from the leader, while the
    /// leader's last Fetch answer named one.
    pub fn snapshot_request(&self) -> Option<(ReplicaId, FetchSnapshotRequest)> {
        if self.role != Role::Follower {
            return None;
        }
        Some((
            self.leader?,
            FetchSnapshotRequest {
                replica_id: self.id,
                epoch: self.epoch,
                snapshot: self.snapshot_to_fetch?,
            },
        ))
    }

    /// FetchSnapshot, the leader's half: serve its latest snapshot if that is the one asked
    /// for. KIP-630's errors: NOT_LEADER_OR_FOLLOWER from a non-leader,
    /// FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a voter's stale or future epoch,
    /// SNAPSHOT_NOT_FOUND for any other snapshot id (the fetcher then fetches again and
    /// learns the current one). A voter's FetchSnapshot counts as hearing from it for
    /// check-quorum. The driver checks the position against the snapshot's size.
    pub fn handle_fetch_snapshot(&mut self, req: FetchSnapshotRequest) -> FetchSnapshotAnswer {
        let error = |core: &Self, code| FetchSnapshotAnswer::Error {
            code,
            epoch: core.epoch,
            leader: core.leader,
        };
        let voter = match self.validate_fetcher(req.replica_id, req.epoch) {
            Ok(voter) => voter,
            Err(code) => return error(self, code),
        };
        if self.log.snapshot() != Some(req.snapshot) {
            return error(self, codes::SNAPSHOT_NOT_FOUND);
        }
        if voter && !self.fetched_since_check.contains(&req.replica_id) {
            self.fetched_since_check.push(req.replica_id);
        }
        FetchSnapshotAnswer::Serve {
            epoch: self.epoch,
            leader: self.id,
            snapshot: req.snapshot,
        }
    }

    /// A FetchSnapshot answer from the leader of this epoch: a chunk arrived (`Ok`), which
    /// keeps the fetch timer from firing, or an error. SNAPSHOT_NOT_FOUND and
    /// POSITION_OUT_OF_RANGE send the follower back to Fetch (the leader has a newer
    /// snapshot, or the snapshot changed under it); a later epoch is observed.
    pub fn handle_fetch_snapshot_response(
        &mut self,
        epoch: i32,
        leader: Option<ReplicaId>,
        result: Result<(), i16>,
    ) {
        if epoch > self.epoch {
            self.observe_epoch(epoch, leader);
        }
        if self.role != Role::Follower || epoch != self.epoch || leader != self.leader {
            return;
        }
        match result {
            Ok(()) => self.effects.push(Effect::SetTimer(Timer::Fetch)),
            Err(codes::SNAPSHOT_NOT_FOUND | codes::POSITION_OUT_OF_RANGE) => {
                self.snapshot_to_fetch = None;
            }
            Err(_) => {}
        }
    }

    /// The whole snapshot `id` was fetched and fsynced: it replaces the follower's log
    /// (KIP-630). The log is empty and starts at the snapshot's end, the epoch cache is
    /// reset, and the snapshot's end is committed. Returns whether it was installed (it is
    /// not when the follower no longer waits for that snapshot).
    pub fn install_snapshot(&mut self, id: SnapshotId) -> bool {
        if self.role != Role::Follower || self.snapshot_to_fetch != Some(id) {
            return false;
        }
        self.snapshot_to_fetch = None;
        self.log.install_snapshot(id);
        self.effects.push(Effect::InstallSnapshot(id));
        if id.end_offset > self.high_watermark {
            self.set_high_watermark(id.end_offset);
            self.effects.push(Effect::HighWatermark(id.end_offset));
        }
        self.effects.push(Effect::SetTimer(Timer::Fetch));
        true
    }

    /// The driver wrote a snapshot of the committed entries below `id.end_offset` and
    /// deleted the log's segments below `log_start` (Kafka deletes below the latest
    /// snapshot): the core serves that snapshot to fetchers below the new log start.
    /// Any role may snapshot its own committed state.
    pub fn snapshot_taken(&mut self, id: SnapshotId, log_start: i64) {
        if id.end_offset > self.high_watermark {
            return;
        }
        self.log.snapshot_taken(id);
        self.log.advance_start(log_start);
    }

    /// Check-quorum (Kafka's leader resigns when a majority has not fetched for 1.5 fetch
    /// timeouts): the driver calls this at that interval. A leader that heard from fewer
    /// voters than a majority (itself included) since the previous call resigns, so that a
    /// leader cut off from the quorum stops serving stale metadata. The first call after
    /// an election only opens the first interval.
    pub fn check_quorum(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let heard = self.fetched_since_check.len() + 1;
        let first = !self.quorum_checked;
        self.quorum_checked = true;
        self.fetched_since_check.clear();
        if !first && heard < self.majority() {
            self.resign();
        }
    }

    /// Resign: the leader gives up its epoch and sends EndQuorumEpoch, so that the others
    /// stand for election at once (on a clean shutdown).
    pub fn resign(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        self.role = Role::Resigned;
        self.end_offsets.clear();
        let req = EpochRequest {
            leader_id: self.id,
            leader_epoch: self.epoch,
        };
        for v in self.voters.clone() {
            if v != self.id {
                self.effects
                    .push(Effect::Send(v, Request::EndQuorumEpoch(req)));
            }
        }
        self.effects.push(Effect::SetTimer(Timer::Election));
    }

    fn end_offset_of(&self, v: ReplicaId) -> i64 {
        if v == self.id {
            self.log.flushed()
        } else {
            self.end_offsets
                .iter()
                .find(|&&(r, _)| r == v)
                .map_or(0, |&(_, o)| o)
        }
    }

    /// The leader's high watermark: the largest offset that a majority of voters' end
    /// offsets reach (the leader counts what it has flushed), advanced only when the entry
    /// below it is of the leader's own epoch.
    fn advance_high_watermark(&mut self) {
        let mut ends: Vec<i64> = self.voters.iter().map(|&v| self.end_offset_of(v)).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = ends[self.majority() - 1];
        if candidate <= self.high_watermark || self.log.epoch_at(candidate - 1) != Some(self.epoch)
        {
            return;
        }
        self.set_high_watermark(candidate);
        self.effects.push(Effect::HighWatermark(candidate));
    }
}
