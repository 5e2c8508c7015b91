//! Replaying KRaft model traces against the quorum core (`osprey_broker::quorum`).
//!
//! A [`Quorum`] holds one [`QuorumCore`] per model voter, the log the driver keeps for each
//! (entries `(record id, epoch)` and a flushed mark), the quorum state each last persisted,
//! and a simulated network. [`Quorum::apply`] performs one model step with the core's calls
//! and delivers exactly the messages the step implies; [`replay`] applies a trace step by
//! step and compares the abstraction ([`crate::kraft_abstraction`]) with the model's
//! recorded state after each, stopping at the first mismatch.
//!
//! Every effect the core queues is performed in order, as the tokio driver does: the
//! quorum state is "persisted" (kept for the next restart), appends and truncations go to
//! the stored log (with the model's flush policy: `every` flushes each append and reports
//! it with [`QuorumCore::flushed`], `never` flushes nothing), requests go into the network,
//! and a leader's high watermark marks the entries below it committed.
//!
//! The network and the driver's choices, each where the model folds something the core
//! spells out:
//! * **Requests** are kept per (sender, receiver), the latest superseding the earlier (as
//!   the tokio driver sends only the latest queued request to a peer). A step that delivers
//!   a Vote or BeginQuorumEpoch takes the one in flight when it is of the sender's current
//!   epoch; otherwise the sender re-sends first (`send_vote_requests`,
//!   `send_begin_quorum_epoch`: the candidate's polling and the leader's periodic re-send).
//! * **Vote responses** go back to the candidate in the same step, except one that would
//!   make it leader: the core turns leader in the call that counts the majority's last vote,
//!   the model in a separate `BecomeLeader` step. Such responses are held and delivered by
//!   `BecomeLeader`.
//! * **EndQuorumEpoch** requests are dropped (lost messages): the model folds their effect,
//!   an early election, into `Timeout`, which the trace fires explicitly.
//! * **Timers** are not run: the trace's `Timeout` steps are the timer firings.
//! * **A crash** drops the voter's core (its volatile state), cuts its stored log to the
//!   flushed mark, and closes its connections: requests to and from it, the Fetch response
//!   in flight to it and the vote responses held for it are gone. Responses it already sent
//!   stay in flight. `Restart` rebuilds the core from the persisted quorum state and the
//!   stored log ([`QuorumCore::restart`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use osprey_broker::quorum::{
    Batch, Effect, FetchResponse, QuorumCore, QuorumState, ReplicaId, Request, Role, VoteResponse,
};
use osprey_model::kraft::trace::{KraftStateView, KraftTrace};
use osprey_model::kraft::{KraftAction, KraftConfig};
use osprey_model::FlushPolicy;

use crate::kraft_abstraction::{diff, state_view, StoredEntry, VoterSlot};
use crate::mismatch::{replay_steps, Implementation};

/// The record id of the LeaderChange control record (the model's `LEADER_CHANGE`).
const LEADER_CHANGE: u8 = 0;

/// The first step where the core and the model disagree.
pub type KraftMismatch = crate::mismatch::Mismatch<KraftAction, KraftStateView>;

/// The outcome of replaying one trace: steps replayed and compared, and the first mismatch.
pub type KraftReplayOutcome = crate::mismatch::ReplayOutcome<KraftAction, KraftStateView>;

/// The core side of a replay: voters, their stored logs, and the network.
#[derive(Clone)]
pub struct Quorum {
    config: KraftConfig,
    voter_ids: Vec<ReplicaId>,
    slots: Vec<VoterSlot>,
    /// The latest request from each sender to each receiver.
    requests: BTreeMap<(ReplicaId, ReplicaId), Request>,
    /// Per follower: the response to its one outstanding Fetch.
    fetch_responses: Vec<Option<FetchResponse>>,
    /// Per candidate: vote responses held until `BecomeLeader`, with their sender.
    held_votes: Vec<Vec<(ReplicaId, VoteResponse)>>,
    /// Metadata records appended so far (the next one is `appended + 1`).
    appended: u8,
    /// Per offset: the first entry a leader's high watermark passed there.
    committed: Vec<Option<StoredEntry>>,
}

impl Quorum {
    /// The model's initial state: every voter unattached in epoch 0 with an empty log.
    /// A quorum of one is refused: its core elects itself in the `Timeout` call, where the
    /// model takes a separate `BecomeLeader` step.
    pub fn new(config: KraftConfig) -> Result<Quorum, String> {
        config.validate().map_err(|e| e.to_string())?;
        if config.voters < 2 {
            return Err("the replay needs at least 2 voters".into());
        }
        let n = config.voters as usize;
        let voter_ids: Vec<ReplicaId> = (0..n as ReplicaId).collect();
        let mut q = Quorum {
            config,
            voter_ids: voter_ids.clone(),
            slots: Vec::with_capacity(n),
            requests: BTreeMap::new(),
            fetch_responses: vec![None; n],
            held_votes: vec![Vec::new(); n],
            appended: 0,
            committed: Vec::new(),
        };
        for &id in &voter_ids {
            let durable = QuorumState::default();
            let slot = VoterSlot {
                core: None,
                log: Vec::new(),
                flushed: 0,
                durable,
            };
            // Pre-Vote (KIP-996) as the model runs it: on, except in `no-pre-vote`.
            let core = QuorumCore::restart(id, voter_ids.clone(), durable, slot.summary())
                .with_pre_vote(config.pre_vote());
            q.slots.push(VoterSlot {
                core: Some(core),
                ..slot
            });
            q.perform(id)?;
        }
        Ok(q)
    }

    /// The quorum as the model's view.
    pub fn view(&self) -> Result<KraftStateView, String> {
        state_view(&self.slots, &self.committed)
    }

    fn core(&mut self, v: u8) -> Result<&mut QuorumCore, String> {
        self.slots
            .get_mut(v as usize)
            .and_then(|s| s.core.as_mut())
            .ok_or_else(|| format!("voter {v} is down"))
    }

    /// Performs one model step on the cores.
    pub fn apply(&mut self, action: KraftAction) -> Result<(), String> {
        match action {
            KraftAction::Timeout { voter } => {
                self.held_votes[voter as usize].clear();
                self.core(voter)?.timeout();
                self.perform(voter.into())
            }
            KraftAction::HandleVote { candidate, voter } => self.handle_vote(candidate, voter),
            KraftAction::HandlePreVote { candidate, voter } => {
                self.handle_pre_vote(candidate, voter)
            }
            KraftAction::BecomeLeader { candidate } => {
                let held = std::mem::take(&mut self.held_votes[candidate as usize]);
                let core = self.core(candidate)?;
                for (from, resp) in held {
                    core.handle_vote_response(from, resp);
                }
                // The last held vote already made the candidate leader; the model's step
                // is `become_leader`, a no-op on a leader, called for a candidate whose
                // majority was counted without a held vote.
                core.become_leader();
                self.perform(candidate.into())
            }
            KraftAction::BeginQuorumEpoch { leader, voter } => {
                let req = match self.take_request(leader, voter) {
                    Some(Request::BeginQuorumEpoch(r))
                        if r.leader_epoch == self.core(leader)?.epoch() =>
                    {
                        r
                    }
                    _ => {
                        self.core(leader)?.send_begin_quorum_epoch();
                        self.perform(leader.into())?;
                        match self.take_request(leader, voter) {
                            Some(Request::BeginQuorumEpoch(r)) => r,
                            other => {
                                return Err(format!(
                                    "leader {leader} sends no BeginQuorumEpoch to voter {voter} (in flight: {other:?})"
                                ))
                            }
                        }
                    }
                };
                let resp = self.core(voter)?.handle_begin_quorum_epoch(req);
                self.perform(voter.into())?;
                self.core(leader)?.handle_epoch_response(resp);
                self.perform(leader.into())
            }
            KraftAction::Append { leader } => {
                let core = self.core(leader)?;
                let (base, epoch) = core
                    .append(1)
                    .map_err(|e| format!("voter {leader} refused the append: {e:?}"))?;
                let slot = &mut self.slots[leader as usize];
                if base != slot.log.len() as i64 {
                    return Err(format!(
                        "voter {leader} appends at offset {base}, its log ends at {}",
                        slot.log.len()
                    ));
                }
                self.appended += 1;
                slot.log.push((self.appended, epoch));
                self.flush(leader.into());
                self.perform(leader.into())
            }
            KraftAction::Fetch { follower } => self.fetch(follower),
            KraftAction::HandleFetchResponse { follower } => {
                let resp = self.fetch_responses[follower as usize]
                    .take()
                    .ok_or_else(|| format!("no Fetch response in flight to voter {follower}"))?;
                self.core(follower)?.handle_fetch_response(resp);
                self.perform(follower.into())
            }
            KraftAction::Resign { leader } => {
                self.core(leader)?.resign();
                self.perform(leader.into())
            }
            KraftAction::Crash { voter } => {
                let id = ReplicaId::from(voter);
                let slot = &mut self.slots[voter as usize];
                if slot.core.take().is_none() {
                    return Err(format!("voter {voter} is already down"));
                }
                slot.log.truncate(slot.flushed);
                self.requests
                    .retain(|&(from, to), _| from != id && to != id);
                self.fetch_responses[voter as usize] = None;
                self.held_votes[voter as usize].clear();
                Ok(())
            }
            KraftAction::Restart { voter } => {
                let slot = &mut self.slots[voter as usize];
                if slot.core.is_some() {
                    return Err(format!("voter {voter} is up"));
                }
                slot.core = Some(
                    QuorumCore::restart(
                        voter.into(),
                        self.voter_ids.clone(),
                        slot.durable,
                        slot.summary(),
                    )
                    .with_pre_vote(self.config.pre_vote()),
                );
                self.perform(voter.into())
            }
        }
    }

    fn take_request(&mut self, from: u8, to: u8) -> Option<Request> {
        self.requests.remove(&(from.into(), to.into()))
    }

    /// HandleVote: the candidate's Vote request delivered to the voter, and the voter's
    /// response delivered back (or held, when it would complete the majority).
    fn handle_vote(&mut self, candidate: u8, voter: u8) -> Result<(), String> {
        let epoch = self.core(candidate)?.epoch();
        let req = match self.take_request(candidate, voter) {
            Some(Request::Vote(r)) if r.candidate_epoch == epoch && !r.pre_vote => r,
            _ => {
                self.core(candidate)?.send_vote_requests();
                self.perform(candidate.into())?;
                match self.take_request(candidate, voter) {
                    Some(Request::Vote(r)) => r,
                    other => {
                        return Err(format!(
                            "candidate {candidate} sends no Vote request to voter {voter} (in flight: {other:?})"
                        ))
                    }
                }
            }
        };
        let resp = self.core(voter)?.handle_vote(req);
        self.perform(voter.into())?;
        let held = &mut self.held_votes[candidate as usize];
        let core = self.slots[candidate as usize]
            .core
            .as_mut()
            .ok_or_else(|| format!("voter {candidate} is down"))?;
        held.retain(|(_, r)| r.epoch == core.epoch() && core.role() == Role::Candidate);
        let mut probe = core.clone();
        for (from, r) in held.iter() {
            probe.handle_vote_response(*from, *r);
        }
        probe.handle_vote_response(voter.into(), resp);
        if probe.role() == Role::Leader {
            held.push((voter.into(), resp));
            Ok(())
        } else {
            core.handle_vote_response(voter.into(), resp);
            self.perform(candidate.into())
        }
    }

    /// HandlePreVote: the prospective's pre-vote request to the voter (re-sent if the one in
    /// flight is not for the epoch after the prospective's), the voter's answer, and the
    /// prospective's handling of it, which starts the election on a majority, as the
    /// model's step does.
    fn handle_pre_vote(&mut self, candidate: u8, voter: u8) -> Result<(), String> {
        let next = self.core(candidate)?.epoch() + 1;
        let req = match self.take_request(candidate, voter) {
            Some(Request::Vote(r)) if r.candidate_epoch == next && r.pre_vote => r,
            _ => {
                self.core(candidate)?.send_vote_requests();
                self.perform(candidate.into())?;
                match self.take_request(candidate, voter) {
                    Some(Request::Vote(r)) if r.pre_vote => r,
                    other => {
                        return Err(format!(
                            "prospective {candidate} sends no pre-vote to voter {voter} (in flight: {other:?})"
                        ))
                    }
                }
            }
        };
        let resp = self.core(voter)?.handle_vote(req);
        self.perform(voter.into())?;
        self.core(candidate)?
            .handle_vote_response(voter.into(), resp);
        self.perform(candidate.into())
    }

    /// Fetch: the follower builds its request, the leader it names handles it, and the
    /// response (read from the leader's stored log) goes in flight.
    fn fetch(&mut self, follower: u8) -> Result<(), String> {
        let (leader, req) = self
            .core(follower)?
            .fetch_request()
            .ok_or_else(|| format!("voter {follower} has no leader to fetch from"))?;
        let leader = u8::try_from(leader)
            .ok()
            .filter(|&l| (l as usize) < self.slots.len())
            .ok_or_else(|| format!("voter {follower} fetches from unknown voter {leader}"))?;
        let answer = self.core(leader)?.handle_fetch(req);
        self.perform(leader.into())?;
        let log = &self.slots[leader as usize].log;
        let resp = answer.into_response(&req, |from, to| {
            let range = from.max(0) as usize..to.max(0) as usize;
            let entries = log.get(range.clone()).ok_or_else(|| {
                format!(
                    "voter {leader} answers offsets {range:?}, its log ends at {}",
                    log.len()
                )
            })?;
            Ok::<_, String>(
                entries
                    .iter()
                    .zip(range.start..)
                    .map(|(&(record, epoch), o)| Batch {
                        base_offset: o as i64,
                        last_offset: o as i64,
                        epoch,
                        data: Bytes::copy_from_slice(&[record]),
                    })
                    .collect(),
            )
        })?;
        self.fetch_responses[follower as usize] = Some(resp);
        Ok(())
    }

    /// Flushes voter `v`'s stored log per the model's flush policy and tells its core.
    fn flush(&mut self, v: ReplicaId) {
        if self.config.flush != FlushPolicy::Every {
            return;
        }
        let slot = &mut self.slots[v as usize];
        slot.flushed = slot.log.len();
        if let Some(core) = slot.core.as_mut() {
            core.flushed(slot.flushed as i64);
        }
    }

    /// Performs voter `v`'s queued effects in order, until the core queues no more.
    fn perform(&mut self, v: ReplicaId) -> Result<(), String> {
        loop {
            let effects = match self.slots[v as usize].core.as_mut() {
                Some(core) => core.take_effects(),
                None => return Ok(()),
            };
            if effects.is_empty() {
                return Ok(());
            }
            for effect in effects {
                self.perform_one(v, effect)?;
            }
        }
    }

    fn perform_one(&mut self, v: ReplicaId, effect: Effect) -> Result<(), String> {
        let slot = &mut self.slots[v as usize];
        match effect {
            Effect::PersistQuorumState(s) => slot.durable = s,
            Effect::AppendLeaderChange { offset, epoch } => {
                if offset != slot.log.len() as i64 {
                    return Err(format!(
                        "voter {v} appends its LeaderChange at {offset}, its log ends at {}",
                        slot.log.len()
                    ));
                }
                slot.log.push((LEADER_CHANGE, epoch));
                self.flush(v);
            }
            Effect::Append(batches) => {
                for b in batches {
                    if b.base_offset != slot.log.len() as i64
                        || b.data.len() as i64 != b.last_offset - b.base_offset + 1
                    {
                        return Err(format!(
                            "voter {v} appends batch {}..={} at log end {}",
                            b.base_offset,
                            b.last_offset,
                            slot.log.len()
                        ));
                    }
                    slot.log.extend(b.data.iter().map(|&r| (r, b.epoch)));
                }
                self.flush(v);
            }
            Effect::Truncate(to) => {
                let to = to.max(0) as usize;
                slot.log.truncate(to);
                slot.flushed = slot.flushed.min(to);
            }
            // Lost: the model folds EndQuorumEpoch into the receivers' Timeout.
            Effect::Send(_, Request::EndQuorumEpoch(_)) => {}
            Effect::Send(to, req) => {
                self.requests.insert((v, to), req);
            }
            Effect::HighWatermark(hw) => {
                let leads = slot.core.as_ref().is_some_and(|c| c.is_leader());
                if leads {
                    let hw = (hw.max(0) as usize).min(slot.log.len());
                    if self.committed.len() < hw {
                        self.committed.resize(hw, None);
                    }
                    for (c, e) in self.committed.iter_mut().zip(&slot.log[..hw]) {
                        c.get_or_insert(*e);
                    }
                }
            }
            Effect::SetTimer(_) => {}
            // The model has no snapshots; the replayed voters never take one.
            Effect::InstallSnapshot(id) => {
                return Err(format!(
                    "voter {v} installs snapshot {id:?}, which the model has not"
                ));
            }
        }
        Ok(())
    }
}

/// Replays `trace` on a fresh [`Quorum`], comparing the abstraction with the model's
/// recorded state after the initial state and after every step. Stops at the first mismatch.
pub fn replay(trace: &KraftTrace) -> KraftReplayOutcome {
    let mut quorum = match Quorum::new(trace.config) {
        Ok(q) => q,
        Err(e) => return KraftReplayOutcome::failed(Quorum::NAME, 0, None, e, None, None, vec![]),
    };
    replay_steps(
        &mut quorum,
        trace.steps.iter().map(|s| (s.index, s.action, &s.state)),
    )
}

impl Implementation for Quorum {
    type Action = KraftAction;
    type View = KraftStateView;
    const NAME: &'static str = "core";
    fn apply(&mut self, action: KraftAction) -> Result<(), String> {
        Quorum::apply(self, action)
    }
    fn view(&self) -> Result<KraftStateView, String> {
        Quorum::view(self)
    }
    fn diff(model: &KraftStateView, core: &KraftStateView) -> Vec<String> {
        diff(model, core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::kraft::trace::VoterRole;
    use osprey_model::kraft::KraftModel;
    use KraftAction::*;

    /// Replays `actions` from the model's initial state; returns the core's final view.
    fn run(config: KraftConfig, actions: &[KraftAction]) -> KraftStateView {
        let trace = KraftTrace::from_actions(&KraftModel::new(config), actions).unwrap();
        let outcome = replay(&trace);
        if let Some(m) = outcome.mismatch {
            panic!("{m}");
        }
        let mut q = Quorum::new(config).unwrap();
        for a in actions {
            q.apply(*a).unwrap();
        }
        q.view().unwrap()
    }

    /// Voter 0 wins voter 1's pre-vote, then its vote, leads epoch 1; voter 1 follows.
    fn elected() -> Vec<KraftAction> {
        vec![
            Timeout { voter: 0 },
            HandlePreVote {
                candidate: 0,
                voter: 1,
            },
            HandleVote {
                candidate: 0,
                voter: 1,
            },
            BecomeLeader { candidate: 0 },
            BeginQuorumEpoch {
                leader: 0,
                voter: 1,
            },
        ]
    }

    #[test]
    fn the_vote_that_makes_a_majority_waits_for_become_leader() {
        let config = KraftConfig::default();
        let v = run(config, &elected()[..1]);
        assert_eq!(v.voters[0].role, VoterRole::Prospective);
        let v = run(config, &elected()[..3]);
        assert_eq!(v.voters[0].role, VoterRole::Candidate);
        assert_eq!(v.voters[1].role, VoterRole::Voted);
        let v = run(config, &elected()[..4]);
        assert_eq!(v.voters[0].role, VoterRole::Leader);
        assert_eq!(v.voters[0].log, vec![(0, 1)]);
    }

    #[test]
    fn records_commit_through_fetches_and_a_crash_keeps_what_was_flushed() {
        let mut steps = elected();
        steps.extend([
            Append { leader: 0 },
            Fetch { follower: 1 },
            HandleFetchResponse { follower: 1 },
            Fetch { follower: 1 },
        ]);
        let v = run(KraftConfig::default(), &steps);
        assert_eq!(v.voters[0].high_watermark, 2);
        assert_eq!(v.committed, vec![(0, 1), (1, 1)]);
        steps.extend([Crash { voter: 1 }, Restart { voter: 1 }]);
        let v = run(KraftConfig::default(), &steps);
        assert_eq!(v.voters[1].role, VoterRole::Follower);
        assert_eq!(v.voters[1].log, vec![(0, 1), (1, 1)]);
        // Crashed and not yet restarted: down, with what it had flushed.
        let v = run(KraftConfig::default(), &steps[..steps.len() - 1]);
        assert_eq!(v.voters[1].role, VoterRole::Down);
        assert_eq!(v.voters[1].log, vec![(0, 1), (1, 1)]);
    }

    #[test]
    fn a_restarted_candidate_collects_votes_in_its_epoch() {
        let steps = [
            Timeout { voter: 2 },
            HandlePreVote {
                candidate: 2,
                voter: 0,
            },
            Crash { voter: 2 },
            Restart { voter: 2 },
            HandleVote {
                candidate: 2,
                voter: 0,
            },
            BecomeLeader { candidate: 2 },
        ];
        let v = run(KraftConfig::default(), &steps);
        assert_eq!(
            (v.voters[2].role, v.voters[2].epoch),
            (VoterRole::Leader, 1)
        );
    }

    #[test]
    fn a_resigned_leaders_end_quorum_epoch_changes_no_other_voter() {
        let mut steps = elected();
        steps.push(Resign { leader: 0 });
        let v = run(KraftConfig::default(), &steps);
        assert_eq!(v.voters[0].role, VoterRole::Resigned);
        assert_eq!(v.voters[1].role, VoterRole::Follower);
        assert_eq!(
            (v.voters[2].role, v.voters[2].epoch),
            (VoterRole::Unattached, 0)
        );
    }

    #[test]
    fn a_prospective_refused_by_the_leader_follows_it_again() {
        let mut steps = elected();
        steps.extend([
            Timeout { voter: 1 },
            HandlePreVote {
                candidate: 1,
                voter: 0,
            },
        ]);
        let v = run(KraftConfig::default(), &steps);
        assert_eq!(
            (v.voters[1].role, v.voters[1].epoch, v.voters[1].leader),
            (VoterRole::Follower, 1, Some(0))
        );
        assert_eq!(v.voters[0].role, VoterRole::Leader);
    }

    #[test]
    fn without_pre_vote_a_timeout_starts_the_election() {
        let config = KraftConfig {
            variant: Some(osprey_model::kraft::KraftVariant::NoPreVote),
            ..KraftConfig::default()
        };
        let mut steps = elected();
        steps.remove(1);
        let v = run(config, &steps);
        assert_eq!(v.voters[0].role, VoterRole::Leader);
        // A returning voter's Vote (it timed out twice while cut off) deposes the leader.
        steps.extend([
            Timeout { voter: 2 },
            Timeout { voter: 2 },
            HandleVote {
                candidate: 2,
                voter: 0,
            },
        ]);
        let v = run(config, &steps);
        assert_eq!(
            (v.voters[0].role, v.voters[0].epoch),
            (VoterRole::Unattached, 2)
        );
    }

    #[test]
    fn a_quorum_of_one_is_refused() {
        let one = KraftConfig {
            voters: 1,
            ..KraftConfig::default()
        };
        assert!(Quorum::new(one).is_err());
    }
}
