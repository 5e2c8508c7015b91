//! The KRaft quorum model: `KraftModel` implements stateright's `Model`. Every step is a pure
//! function of the state, written to be read next to KIP-595.

use super::action::KraftAction;
use super::config::{KraftConfig, KraftVariant};
use super::state::*;
use crate::config::FlushPolicy;

/// A KRaft controller quorum of `config.voters` voters.
#[derive(Clone, Debug)]
pub struct KraftModel {
    pub config: KraftConfig,
}

impl KraftModel {
    pub fn new(config: KraftConfig) -> Self {
        KraftModel { config }
    }

    fn n(&self) -> VoterId {
        self.config.voters
    }

    /// Every voter starts in epoch 0, unattached, with an empty log.
    pub fn initial_state(&self) -> KraftState {
        let mut voters = [Voter::new(); MAX_VOTERS];
        for v in voters.iter_mut().skip(self.n() as usize) {
            v.alive = false;
        }
        KraftState {
            quorum_size: self.n(),
            voters,
            ghost: Ghost {
                committed: [None; MAX_LOG],
                committed_conflict: false,
                leader_of_epoch: [NO_VOTER; EPOCH_SLOTS],
                two_leaders_in_epoch: false,
                appended: 0,
                crashes: 0,
                stable_leader_disrupted: false,
            },
        }
    }

    /// Every step that may be enabled in `s`; `step` decides.
    pub fn enabled_actions(&self, s: &KraftState, out: &mut Vec<KraftAction>) {
        for a in 0..self.n() {
            out.push(KraftAction::Timeout { voter: a });
            out.push(KraftAction::BecomeLeader { candidate: a });
            out.push(KraftAction::Append { leader: a });
            out.push(KraftAction::Fetch { follower: a });
            out.push(KraftAction::HandleFetchResponse { follower: a });
            out.push(KraftAction::Resign { leader: a });
            out.push(KraftAction::Crash { voter: a });
            out.push(KraftAction::Restart { voter: a });
            for b in 0..self.n() {
                if a != b {
                    out.push(KraftAction::HandleVote {
                        candidate: a,
                        voter: b,
                    });
                    out.push(KraftAction::HandlePreVote {
                        candidate: a,
                        voter: b,
                    });
                    out.push(KraftAction::BeginQuorumEpoch {
                        leader: a,
                        voter: b,
                    });
                }
            }
        }
        out.retain(|a| self.step(s, *a).is_some());
    }

    /// The state after `action`, or `None` when it is not enabled or would change nothing.
    pub fn step(&self, s: &KraftState, action: KraftAction) -> Option<KraftState> {
        let mut next = *s;
        let changed = match action {
            KraftAction::Timeout { voter } => self.timeout(&mut next, voter),
            KraftAction::HandleVote { candidate, voter } => {
                self.handle_vote(&mut next, candidate, voter)
            }
            KraftAction::HandlePreVote { candidate, voter } => {
                self.handle_pre_vote(&mut next, candidate, voter)
            }
            KraftAction::BecomeLeader { candidate } => self.become_leader(&mut next, candidate),
            KraftAction::BeginQuorumEpoch { leader, voter } => {
                self.begin_quorum_epoch(&mut next, leader, voter)
            }
            KraftAction::Append { leader } => self.append(&mut next, leader),
            KraftAction::Fetch { follower } => self.fetch(&mut next, follower),
            KraftAction::HandleFetchResponse { follower } => {
                self.handle_fetch_response(&mut next, follower)
            }
            KraftAction::Resign { leader } => self.resign(&mut next, leader),
            KraftAction::Crash { voter } => self.crash(&mut next, voter),
            KraftAction::Restart { voter } => self.restart(&mut next, voter),
        };
        if !changed || next == *s {
            return None;
        }
        // Ghost: a Vote or BeginQuorumEpoch (another voter's doing, not the leader's or the
        // follower's own timeout, crash or resignation) moved a member of a live majority.
        if let KraftAction::HandleVote { voter, .. } | KraftAction::BeginQuorumEpoch { voter, .. } =
            action
        {
            let member = |v: &Voter| (v.role, v.epoch, v.leader);
            if self.stable_majority(s) & (1 << voter) != 0
                && member(&s.voters[voter as usize]) != member(&next.voters[voter as usize])
            {
                next.ghost.stable_leader_disrupted = true;
            }
        }
        Some(next)
    }

    /// The voters of a stable leader's live majority, as a bit set (0 when there is none):
    /// a live leader and the live voters that follow it in its epoch, when together they are
    /// a majority. Check-quorum keeps a leader in office only while it has one.
    pub fn stable_majority(&self, s: &KraftState) -> u8 {
        let vs = &s.voters[..self.n() as usize];
        for (lid, l) in vs.iter().enumerate() {
            if !l.is_leader() {
                continue;
            }
            let mut members = 1u8 << lid;
            for (fid, f) in vs.iter().enumerate() {
                if f.alive
                    && f.role == Role::Follower
                    && f.leader as usize == lid
                    && f.epoch == l.epoch
                {
                    members |= 1 << fid;
                }
            }
            if members.count_ones() as usize >= self.config.majority() {
                return members;
            }
        }
        0
    }

    /// KIP-996 / Raft §9.6: a voter that hears from a live leader (the leader itself, or a
    /// follower whose fetch timer has not fired; in the model a follower's timeout may fire
    /// at any time) refuses Votes and pre-votes and does not move to a later epoch on one.
    fn has_live_leader(&self, v: &Voter) -> bool {
        self.config.pre_vote() && matches!(v.role, Role::Leader | Role::Follower)
    }

    /// Moves a voter to a new epoch, unattached: no vote, no leader, nothing in flight.
    fn enter_epoch(v: &mut Voter, epoch: Epoch) {
        v.epoch = epoch;
        v.role = Role::Unattached;
        v.voted_for = NO_VOTER;
        v.leader = NO_VOTER;
        Self::clear_volatile(v);
    }

    /// Drops the candidate's votes, the leader's follower offsets and the Fetch response in
    /// flight: they belong to the role and epoch being left (a stale response would be
    /// discarded on arrival).
    fn clear_volatile(v: &mut Voter) {
        v.votes = 0;
        v.end_offsets = [0; MAX_VOTERS];
        v.fetch_response = None;
    }

    /// Timeout: a voter that is not the leader stands. With Pre-Vote it becomes prospective
    /// in its epoch, keeping its vote and leader (a quorum of one stands at once); without,
    /// it starts an election in the next epoch.
    fn timeout(&self, s: &mut KraftState, id: VoterId) -> bool {
        let v = &mut s.voters[id as usize];
        if !v.alive || v.role == Role::Leader || v.epoch >= self.config.max_epoch {
            return false;
        }
        if self.config.pre_vote() && self.config.majority() > 1 {
            Self::clear_volatile(v);
            v.role = Role::Prospective;
            v.votes = 1 << id;
            return true;
        }
        Self::start_election(v, id);
        true
    }

    /// The election proper: the next epoch, as a candidate that voted for itself.
    fn start_election(v: &mut Voter, id: VoterId) {
        Self::enter_epoch(v, v.epoch + 1);
        v.role = Role::Candidate;
        v.voted_for = id;
        v.votes = 1 << id;
    }

    /// HandlePreVote (KIP-996): a voter answers a prospective's pre-vote for the epoch after
    /// the prospective's, changing nothing at the voter. A voter in a later epoch teaches it
    /// (the prospective moves there, following the leader it names). A voter that hears from
    /// a live leader refuses; when that voter is the leader of the prospective's own epoch,
    /// the prospective follows it again. Otherwise the pre-vote is granted iff the
    /// prospective's log is at least as up to date; on a majority the prospective starts the
    /// election.
    fn handle_pre_vote(&self, s: &mut KraftState, cid: VoterId, vid: VoterId) -> bool {
        let v = s.voters[vid as usize];
        let c = &mut s.voters[cid as usize];
        if !c.alive || c.role != Role::Prospective || c.votes & (1 << vid) != 0 || !v.alive {
            return false;
        }
        if v.epoch > c.epoch {
            Self::enter_epoch(c, v.epoch);
            if v.leader != NO_VOTER && v.leader != cid {
                c.role = Role::Follower;
                c.leader = v.leader;
            }
            return true;
        }
        if self.has_live_leader(&v) {
            // Only the leader's own refusal shows it alive (a follower naming it may be
            // about to time out itself).
            if v.epoch == c.epoch
                && v.leader == vid
                && (c.leader == NO_VOTER || c.leader == v.leader)
            {
                Self::clear_volatile(c);
                c.role = Role::Follower;
                c.leader = v.leader;
                return true;
            }
            return false;
        }
        // The pre-vote keeps its log check in `vote-without-log-check`: that variant removes
        // KIP-595's check on the Vote that elects, which is what safety rests on.
        if !Self::log_up_to_date(&c.log, &v.log) {
            return false;
        }
        c.votes |= 1 << vid;
        if c.votes.count_ones() as usize >= self.config.majority() {
            Self::start_election(c, cid);
        }
        true
    }

    /// Whether a candidate's log, given by its last epoch and end offset, is at least as up to
    /// date as `voter`'s (KIP-595: compare last epochs, then end offsets).
    pub fn log_up_to_date(candidate: &Log, voter: &Log) -> bool {
        (candidate.last_epoch(), candidate.end_offset()) >= (voter.last_epoch(), voter.end_offset())
    }

    /// HandleVote: a voter that hears from a live leader (with Pre-Vote) refuses and stays
    /// in its epoch. Otherwise a voter seeing a higher epoch moves to it (without Pre-Vote a
    /// leader steps down). It grants its vote iff it has not voted for another voter in that
    /// epoch, knows no leader of it, and the candidate's log is at least as up to date as its
    /// own; a prospective grants what it would have granted before it timed out.
    fn handle_vote(&self, s: &mut KraftState, cid: VoterId, vid: VoterId) -> bool {
        let c = s.voters[cid as usize];
        if !c.alive || c.role != Role::Candidate || c.votes & (1 << vid) != 0 {
            return false;
        }
        let pre_vote = self.config.pre_vote();
        let v = &mut s.voters[vid as usize];
        if !v.alive || v.epoch > c.epoch {
            return false;
        }
        if pre_vote && matches!(v.role, Role::Leader | Role::Follower) {
            return false;
        }
        if v.epoch < c.epoch {
            Self::enter_epoch(v, c.epoch);
        }
        let may_vote = match v.role {
            Role::Unattached => true,
            Role::Voted => v.voted_for == cid,
            Role::Prospective => {
                v.leader == NO_VOTER && (v.voted_for == NO_VOTER || v.voted_for == cid)
            }
            _ => false,
        };
        let log_ok = self.config.is(KraftVariant::VoteWithoutLogCheck)
            || Self::log_up_to_date(&c.log, &v.log);
        if may_vote && log_ok {
            if v.voted_for == NO_VOTER {
                v.role = Role::Voted;
                v.voted_for = cid;
                v.votes = 0;
            }
            s.voters[cid as usize].votes |= 1 << vid;
        }
        true
    }

    /// BecomeLeader: a candidate granted votes by a majority leads its epoch, and appends a
    /// LeaderChange control record so that an entry of its epoch can commit (KIP-595).
    fn become_leader(&self, s: &mut KraftState, id: VoterId) -> bool {
        let v = &mut s.voters[id as usize];
        if !v.alive
            || v.role != Role::Candidate
            || (v.votes.count_ones() as usize) < self.config.majority()
        {
            return false;
        }
        Self::clear_volatile(v);
        v.role = Role::Leader;
        v.leader = id;
        let epoch = v.epoch;
        if !v.log.is_full() {
            v.log.append(Entry {
                record: LEADER_CHANGE,
                epoch,
            });
            self.flush_appended(v);
        }
        let slot = &mut s.ghost.leader_of_epoch[epoch as usize];
        if *slot != NO_VOTER && *slot != id {
            s.ghost.two_leaders_in_epoch = true;
        }
        *slot = id;
        self.advance_high_watermark(s, id);
        true
    }

    /// BeginQuorumEpoch: a voter in the leader's epoch or an earlier one follows the leader.
    /// With Pre-Vote a voter that hears from a live leader of an earlier epoch refuses (the
    /// new leader re-sends it once that voter's fetch timer fired).
    fn begin_quorum_epoch(&self, s: &mut KraftState, lid: VoterId, vid: VoterId) -> bool {
        let l = s.voters[lid as usize];
        let live = self.has_live_leader(&s.voters[vid as usize]);
        let v = &mut s.voters[vid as usize];
        if !l.is_leader() || !v.alive || v.epoch > l.epoch {
            return false;
        }
        if v.epoch == l.epoch && v.role == Role::Follower {
            return false;
        }
        if v.epoch < l.epoch && live {
            return false;
        }
        // A prospective of the leader's epoch that knows the leader returns to it through
        // the leader's refusal of its pre-vote (`HandlePreVote`), to the same state: the
        // leader re-sends BeginQuorumEpoch only to voters that have not fetched from it, so
        // the core would not send one here.
        if v.epoch == l.epoch && v.role == Role::Prospective && v.leader == lid {
            return false;
        }
        if v.epoch == l.epoch && v.leader != NO_VOTER && v.leader != lid {
            return false;
        }
        if v.epoch < l.epoch {
            Self::enter_epoch(v, l.epoch);
        } else {
            Self::clear_volatile(v);
        }
        v.role = Role::Follower;
        v.leader = lid;
        true
    }

    /// Append: the leader appends the next metadata record.
    fn append(&self, s: &mut KraftState, id: VoterId) -> bool {
        if s.ghost.appended >= self.config.records {
            return false;
        }
        let v = &mut s.voters[id as usize];
        if !v.is_leader() || v.log.is_full() {
            return false;
        }
        s.ghost.appended += 1;
        let entry = Entry {
            record: s.ghost.appended,
            epoch: v.epoch,
        };
        v.log.append(entry);
        self.flush_appended(v);
        self.advance_high_watermark(s, id);
        true
    }

    fn flush_appended(&self, v: &mut Voter) {
        if self.config.flush == FlushPolicy::Every {
            v.flushed = v.log.end_offset();
        }
    }

    /// Fetch: the follower sends its fetch offset (log end offset) and last fetched epoch to
    /// the leader it knows. The leader answers with a diverging epoch when that pair is not in
    /// its log; otherwise it records the follower's end offset, advances its high watermark,
    /// and answers with the entries from the fetch offset on.
    fn fetch(&self, s: &mut KraftState, fid: VoterId) -> bool {
        let f = s.voters[fid as usize];
        if !f.alive || f.role != Role::Follower || f.fetch_response.is_some() {
            return false;
        }
        let lid = f.leader;
        let l = s.voters[lid as usize];
        if !l.is_leader() || l.epoch != f.epoch {
            return false;
        }
        let fetch_offset = f.log.end_offset();
        let last_fetched_epoch = f.log.last_epoch();
        let (epoch, end_offset) = l.log.end_offset_for_epoch(last_fetched_epoch);
        let result =
            if fetch_offset > 0 && (epoch != last_fetched_epoch || end_offset < fetch_offset) {
                FetchResult::DivergingEpoch { epoch, end_offset }
            } else {
                s.voters[lid as usize].end_offsets[fid as usize] = fetch_offset;
                self.advance_high_watermark(s, lid);
                FetchResult::Records(l.log.suffix(fetch_offset))
            };
        s.voters[fid as usize].fetch_response = Some(FetchResponse {
            leader: lid,
            epoch: l.epoch,
            high_watermark: s.voters[lid as usize].high_watermark,
            result,
        });
        true
    }

    /// HandleFetchResponse: on a diverging epoch the follower truncates to the smaller of the
    /// leader's end offset for that epoch and its own; otherwise it appends the entries and
    /// takes the leader's high watermark, bounded by its own log end offset.
    fn handle_fetch_response(&self, s: &mut KraftState, fid: VoterId) -> bool {
        let f = &mut s.voters[fid as usize];
        let Some(resp) = f.fetch_response.take() else {
            return false;
        };
        if !f.alive {
            return false;
        }
        match resp.result {
            FetchResult::DivergingEpoch { epoch, end_offset } => {
                let (_, own_end) = f.log.end_offset_for_epoch(epoch);
                let to = end_offset.min(own_end);
                f.log.truncate(to);
                f.flushed = f.flushed.min(to);
                f.high_watermark = f.high_watermark.min(to);
            }
            FetchResult::Records(entries) => {
                for e in entries.entries() {
                    if f.log.is_full() {
                        break;
                    }
                    f.log.append(*e);
                }
                self.flush_appended(f);
                let hw = resp.high_watermark.min(f.log.end_offset());
                f.high_watermark = f.high_watermark.max(hw);
            }
        }
        true
    }

    /// Resign: the leader gives up its epoch and sends EndQuorumEpoch, so that the others
    /// time out at once (timeouts are already free to fire in the model).
    fn resign(&self, s: &mut KraftState, id: VoterId) -> bool {
        let v = &mut s.voters[id as usize];
        if !v.is_leader() {
            return false;
        }
        Self::clear_volatile(v);
        v.role = Role::Resigned;
        true
    }

    /// Crash: the unflushed tail, the high watermark and all volatile state are lost; the
    /// quorum state (epoch, vote, leader) is durable.
    fn crash(&self, s: &mut KraftState, id: VoterId) -> bool {
        if s.ghost.crashes >= self.config.max_crashes {
            return false;
        }
        let v = &mut s.voters[id as usize];
        if !v.alive {
            return false;
        }
        v.alive = false;
        v.log.truncate(v.flushed);
        v.high_watermark = 0;
        v.role = Role::Unattached;
        Self::clear_volatile(v);
        s.ghost.crashes += 1;
        true
    }

    /// Restart: the role follows from the quorum state, as KIP-595's voters initialize: the
    /// leader of the epoch resigns, a voter that knows the leader follows it, one that voted
    /// for itself is a candidate again, one that voted for another stays voted.
    fn restart(&self, s: &mut KraftState, id: VoterId) -> bool {
        let v = &mut s.voters[id as usize];
        if v.alive || id >= self.n() {
            return false;
        }
        v.alive = true;
        v.role = if v.leader == id {
            Role::Resigned
        } else if v.leader != NO_VOTER {
            Role::Follower
        } else if v.voted_for == id {
            v.votes = 1 << id;
            Role::Candidate
        } else if v.voted_for != NO_VOTER {
            Role::Voted
        } else {
            Role::Unattached
        };
        true
    }

    /// The leader's high watermark: the largest offset that a majority of voters' end
    /// offsets reach (the leader counts what it has flushed), advanced only when the entry
    /// below it is of the leader's own epoch (KIP-595; Raft's current-term rule). Every entry
    /// below it is committed (ghost).
    fn advance_high_watermark(&self, s: &mut KraftState, lid: VoterId) {
        let n = self.n() as usize;
        let l = &s.voters[lid as usize];
        let mut ends: Vec<Offset> = (0..n)
            .map(|v| {
                if v == lid as usize {
                    l.flushed
                } else {
                    l.end_offsets[v]
                }
            })
            .collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = ends[self.config.majority() - 1];
        if candidate <= l.high_watermark
            || l.log.get(candidate - 1).map(|e| e.epoch) != Some(l.epoch)
        {
            return;
        }
        let (log, epoch) = (l.log, l.epoch);
        s.voters[lid as usize].high_watermark = candidate;
        for o in 0..candidate {
            let entry = log.get(o).expect("below the log end offset");
            match s.ghost.committed[o as usize] {
                None => s.ghost.committed[o as usize] = Some((entry, epoch)),
                Some((e, _)) if e != entry => s.ghost.committed_conflict = true,
                Some(_) => {}
            }
        }
    }
}

impl stateright::Model for KraftModel {
    type State = KraftState;
    type Action = KraftAction;

    fn init_states(&self) -> Vec<KraftState> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &KraftState, actions: &mut Vec<KraftAction>) {
        self.enabled_actions(state, actions);
    }

    fn next_state(&self, last: &KraftState, action: KraftAction) -> Option<KraftState> {
        self.step(last, action)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        super::properties::all()
    }

    fn format_action(&self, action: &KraftAction) -> String {
        action.describe()
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
