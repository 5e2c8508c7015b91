//! The partition replication model: one Kafka partition replicated on every broker, with its
//! controller. `PartitionModel` implements stateright's `Model`; every step is a pure function
//! of the state, written so that it can be read next to the broker code that implements it.

use crate::action::Action;
use crate::config::{AcksChoice, FetchDelivery, FlushPolicy, ModelConfig, Variant};
use crate::state::*;
use crate::types::*;

/// A follower whose log end offset the leader has not learned since it became leader.
pub const UNKNOWN_OFFSET: Offset = u8::MAX;

/// One Kafka partition, replicated on `config.brokers` brokers, and its controller.
#[derive(Clone, Debug)]
pub struct PartitionModel {
    pub config: ModelConfig,
}

impl PartitionModel {
    pub fn new(config: ModelConfig) -> Self {
        PartitionModel { config }
    }

    fn n(&self) -> u8 {
        self.config.brokers
    }

    fn all(&self) -> BrokerSet {
        BrokerSet::all(self.n() as usize)
    }

    /// Whether the bounds allow one more partition change that is not an election. Elections
    /// bump both epochs, so the difference counts the other changes.
    fn isr_change_allowed(&self, c: &Controller) -> bool {
        c.partition_epoch - c.leader_epoch < self.config.max_isr_changes
    }

    fn elr_enabled(&self) -> bool {
        !self.config.is(Variant::LastReplicaStanding)
    }

    /// The initial state: the partition was just created, broker 0 leads in epoch 0 with every
    /// replica in the ISR, and every broker has learned it.
    pub fn initial_state(&self) -> PartitionState {
        let n = self.n();
        let mut brokers = [Replica::new(); MAX_BROKERS];
        for (b, r) in brokers.iter_mut().enumerate() {
            if b >= n as usize {
                r.alive = false;
                continue;
            }
            r.leader = 0;
            r.leader_epoch = 0;
            r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
        }
        let leader = &mut brokers[0];
        leader.isr = BrokerSet::all(n as usize);
        leader.epoch_cache.assign(0, 0);
        PartitionState {
            brokers,
            controller: Controller {
                leader: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: BrokerSet::all(n as usize),
                elr: BrokerSet::EMPTY,
                fenced: BrokerSet::EMPTY,
                offline_logs: BrokerSet::EMPTY,
            },
            ghost: Ghost {
                records: [RecordStatus::NotSent; MAX_RECORDS],
                committed: [None; MAX_RECORDS],
                committed_conflict: false,
                crashes: 0,
                unclean_shutdown: BrokerSet::EMPTY,
                truncated_diverged_tail: false,
            },
            scope: Scope {
                brokers: n,
                max_crashes: self.config.max_crashes,
                fenced_fetch: !self.config.is(Variant::UnfencedTruncation),
                offline_epoch_unobservable: !self.config.is(Variant::HwTruncation),
                zombie_proposal_unobservable: !self.config.is(Variant::EagerIsrShrink)
                    && !self.config.is(Variant::UnfencedTruncation),
                min_isr: self.config.min_isr,
                hw_stops_below_min_isr: !self.config.is(Variant::LastReplicaStanding),
                expand_guard: !self.config.is(Variant::NoExpandGuard),
            },
        }
    }

    /// Every step enabled in `s`. A step whose effect would leave the state unchanged is
    /// dropped by `next_state`.
    pub fn enabled_actions(&self, s: &PartitionState, out: &mut Vec<Action>) {
        let cfg = &self.config;
        let c = &s.controller;
        for b in 0..self.n() {
            let r = s.replica(b);
            // A replica whose log failed takes no step of its own (its broker hosts no log).
            if r.alive && !c.offline_logs.contains(b) {
                if r.is_leader(b) && s.next_record(cfg.records).is_some() {
                    out.push(Action::Produce {
                        leader: b,
                        acks_all: true,
                    });
                    if cfg.acks == AcksChoice::Both {
                        out.push(Action::Produce {
                            leader: b,
                            acks_all: false,
                        });
                    }
                }
                if r.leader != b && r.leader != NO_BROKER && r.inflight_fetch.is_none() {
                    out.push(Action::Fetch { follower: b });
                }
                if r.inflight_fetch.is_some() {
                    out.push(Action::HandleFetchResponse { follower: b });
                }
                if r.is_leader(b) && r.pending_isr.is_none() {
                    for f in 0..self.n() {
                        if f != b {
                            out.push(Action::ProposeIsrShrink {
                                leader: b,
                                follower: f,
                            });
                            out.push(Action::ProposeIsrExpand {
                                leader: b,
                                follower: f,
                            });
                        }
                    }
                }
                if r.pending_isr.is_some() {
                    out.push(Action::AlterPartition { leader: b });
                }
                if c.leader == b {
                    out.push(Action::BecomeLeader { broker: b });
                } else {
                    out.push(Action::BecomeFollower { broker: b });
                }
                if s.ghost.crashes < cfg.max_crashes {
                    out.push(Action::Crash {
                        broker: b,
                        clean: true,
                        kept: r.log_end_offset(),
                    });
                    out.push(Action::Crash {
                        broker: b,
                        clean: false,
                        kept: r.flushed,
                    });
                }
                if c.fenced.contains(b) {
                    out.push(Action::UnfenceBroker { broker: b });
                }
                if c.offline_logs.len() < cfg.max_log_failures as usize {
                    self.log_failure_actions(c, b, out);
                }
            } else if r.alive && c.fenced.contains(b) {
                // The broker still heartbeats: only its replica is offline.
                out.push(Action::UnfenceBroker { broker: b });
            } else if !r.alive && c.fenced.contains(b) {
                out.push(Action::Restart { broker: b });
            }
            if !c.fenced.contains(b) && (!s.replica(b).alive || s.ghost.crashes < cfg.max_crashes) {
                if c.leader == b {
                    let candidates = self.election_candidates(c, b);
                    if candidates.1.is_empty() {
                        out.push(Action::FenceBroker {
                            broker: b,
                            new_leader: None,
                        });
                    }
                    for l in candidates.1.iter() {
                        out.push(Action::FenceBroker {
                            broker: b,
                            new_leader: Some(l),
                        });
                    }
                } else {
                    out.push(Action::FenceBroker {
                        broker: b,
                        new_leader: None,
                    });
                }
            }
        }
        if c.leader == NO_BROKER {
            let (unclean, candidates) = self.election_candidates(c, NO_BROKER);
            for b in candidates.iter() {
                out.push(Action::ElectLeader { broker: b, unclean });
            }
        } else {
            for to in c.isr.iter() {
                if to != c.leader && !c.fenced.contains(to) {
                    out.push(Action::MoveLeader { to });
                }
            }
        }
    }

    /// Who the controller may elect when `excluding` loses leadership: live (unfenced) ISR
    /// members, else live ELR members (KIP-966), else, with unclean election on, any live
    /// replica. Returns whether the election is unclean, and the candidates.
    pub fn election_candidates(&self, c: &Controller, excluding: BrokerId) -> (bool, BrokerSet) {
        // A replica whose log is offline is never a candidate, not even an unclean one.
        let mut live = self
            .all()
            .without_fenced(c.fenced)
            .without_fenced(c.offline_logs);
        if excluding != NO_BROKER {
            live = live.without(excluding);
        }
        let isr = BrokerSet(c.isr.0 & live.0);
        if !isr.is_empty() {
            return (false, isr);
        }
        let elr = BrokerSet(c.elr.0 & live.0);
        if !elr.is_empty() {
            return (false, elr);
        }
        if self.config.unclean_election() {
            return (true, live);
        }
        (false, BrokerSet::EMPTY)
    }

    /// Applies `action` to `s`; `None` when it is not enabled or would change nothing.
    pub fn step(&self, s: &PartitionState, action: Action) -> Option<PartitionState> {
        if action
            .replica_step_of()
            .is_some_and(|b| s.controller.offline_logs.contains(b))
        {
            return None;
        }
        let mut n = *s;
        let applied = match action {
            Action::Produce { leader, acks_all } => self.produce(&mut n, leader, acks_all),
            Action::Fetch { follower } => self.fetch(&mut n, follower),
            Action::HandleFetchResponse { follower } => {
                self.handle_fetch_response(&mut n, follower)
            }
            Action::ProposeIsrShrink { leader, follower } => {
                self.propose_isr_shrink(&mut n, leader, follower)
            }
            Action::ProposeIsrExpand { leader, follower } => {
                self.propose_isr_expand(&mut n, leader, follower)
            }
            Action::AlterPartition { leader } => self.alter_partition(&mut n, leader),
            Action::BecomeLeader { broker } => self.become_leader(&mut n, broker),
            Action::BecomeFollower { broker } => self.become_follower(&mut n, broker),
            Action::Crash {
                broker,
                clean,
                kept,
            } => self.crash(&mut n, broker, clean, kept),
            Action::Restart { broker } => self.restart(&mut n, broker),
            Action::FenceBroker { broker, new_leader } => {
                self.fence_broker(&mut n, broker, new_leader)
            }
            Action::UnfenceBroker { broker } => self.unfence_broker(&mut n, broker),
            Action::ElectLeader { broker, unclean } => self.elect_leader(&mut n, broker, unclean),
            Action::MoveLeader { to } => self.move_leader(&mut n, to),
            Action::LogFails { broker, new_leader } => self.log_fails(&mut n, broker, new_leader),
        };
        if applied {
            crate::canonical::drop_stale_fetch_responses(&mut n);
        }
        (applied && n != *s).then_some(n)
    }

    /// The successor the checker explores: `action`'s step followed by the eager steps it
    /// enables (see [`PartitionModel::eager_step`]). Together with those steps it is a run of
    /// the model; [`PartitionModel::with_eager_steps`] names them.
    pub fn successor(&self, s: &PartitionState, action: Action) -> Option<PartitionState> {
        let mut n = self.step(s, action)?;
        let mut last = action;
        while let Some(eager) = self.eager_step(last, &n) {
            n = self
                .step(&n, eager)
                .expect("an eager step is enabled and changes the state");
            last = eager;
        }
        Some(n)
    }

    /// The steps of the checker's transitions taken by `actions` from the initial state: each
    /// action followed by the eager steps [`PartitionModel::successor`] takes with it.
    /// The result replays step by step with [`PartitionModel::step`].
    pub fn with_eager_steps(&self, actions: &[Action]) -> Vec<Action> {
        let mut s = self.initial_state();
        let mut out = Vec::with_capacity(actions.len());
        for a in actions {
            out.push(*a);
            let Some(mut n) = self.step(&s, *a) else {
                // Not a run of the model: keep the rest as is, so replay reports this step.
                out.extend_from_slice(&actions[out.len()..]);
                return out;
            };
            let mut last = *a;
            while let Some(eager) = self.eager_step(last, &n) {
                n = self
                    .step(&n, eager)
                    .expect("an eager step is enabled and changes the state");
                out.push(eager);
                last = eager;
            }
            s = n;
        }
        out
    }

    /// The step the checker takes at once after `last`, in the same transition, if any:
    /// - under atomic fetch delivery ([`FetchDelivery::Atomic`]), the follower handles the
    ///   response to the Fetch it just sent (a fetch whose response would change nothing
    ///   leaves none in flight);
    /// - otherwise a BecomeFollower of a live follower whose metadata is dead
    ///   ([`PartitionModel::eager_follower`]).
    pub fn eager_step(&self, last: Action, s: &PartitionState) -> Option<Action> {
        if let Action::Fetch { follower } = last {
            if self.config.fetch == FetchDelivery::Atomic
                && s.replica(follower).inflight_fetch.is_some()
            {
                return Some(Action::HandleFetchResponse { follower });
            }
        }
        self.eager_follower(s)
            .map(|broker| Action::BecomeFollower { broker })
    }

    /// A live follower whose metadata is dead and that the checker moves to the controller's
    /// metadata at once, in the transition that killed it (an "eager local step").
    ///
    /// Dead metadata, as in `canonical::erase_unobservable`: the follower `b` has no response
    /// in flight, and its (leader, leader epoch) is not the controller's and is not led by
    /// that leader any more (or names no leader). Then no step can ever fetch with it (the
    /// controller's leader epoch only grows and has one leader per epoch, fetches are fenced
    /// by epoch, KIP-320), and while it stays dead no step and no property reads it: other
    /// brokers' steps and the controller's never read a follower's leader, leader epoch or
    /// validation flag; b's own Fetch and HandleFetchResponse are disabled; BecomeFollower
    /// and BecomeLeader overwrite it without reading it (b is not its old leader, so no
    /// delayed produce fails); Crash resets it (the leader epoch of a broker with no leader
    /// is erased). LeaderEpochsMonotonic reads the leader epoch, but holds for every copy of
    /// a controller epoch.
    ///
    /// Soundness: let `t` be the state with b's metadata dead and `t'` the state after b's
    /// BecomeFollower. Relate two states when they are equal but for some live brokers whose
    /// metadata is dead on the left and whatever (not themselves as leader, nothing in
    /// flight) on the right. Every step from the left state is enabled on the right and leads
    /// to related states: the steps of other brokers and of the controller do not read the
    /// differing fields, b's BecomeFollower, BecomeLeader and Crash lead to equal states, and
    /// dead metadata stays dead. Related states give every property the same verdict. So
    /// every state reachable without the eager step is related to one reachable with it,
    /// which violates the same properties; conversely the eager transitions are runs of the
    /// model, so every state the reduced search reaches is reachable. The reduced search loses
    /// only interleavings of an invisible step whose every alternative it simulates. Each
    /// stored state is expanded in full (the eager steps only skip transient states), so no
    /// step is ignored along a cycle.
    ///
    /// Off under the unfenced-truncation variant (unfenced fetches make old metadata live)
    /// and the hw-truncation variant (its BecomeFollower truncates the log, so it is visible).
    /// Never for the controller's leader (that is BecomeLeader, which is visible) nor while
    /// the partition is offline (BecomeFollower then only copies an epoch that is erased).
    pub fn eager_follower(&self, s: &PartitionState) -> Option<BrokerId> {
        if !s.scope.fenced_fetch || !s.scope.offline_epoch_unobservable {
            return None;
        }
        let c = &s.controller;
        if c.leader == NO_BROKER {
            return None;
        }
        (0..self.n()).find(|&b| {
            let r = s.replica(b);
            r.alive
                && !c.offline_logs.contains(b)
                && c.leader != b
                && r.leader != b
                && r.inflight_fetch.is_none()
                && (r.leader, r.leader_epoch) != (c.leader, c.leader_epoch)
                && (r.leader >= self.n() || {
                    let l = s.replica(r.leader);
                    !(l.is_leader(r.leader) && l.leader_epoch == r.leader_epoch)
                })
        })
    }

    // ---------------------------------------------------------------------------------------
    // Producer

    fn produce(&self, s: &mut PartitionState, b: BrokerId, acks_all: bool) -> bool {
        let cfg = &self.config;
        let Some(record) = s.next_record(cfg.records) else {
            return false;
        };
        if !s.replica(b).is_leader(b) || (!acks_all && cfg.acks == AcksChoice::All) {
            return false;
        }
        let slot = (record - 1) as usize;
        // acks=all is refused before the append while the ISR is below min.insync.replicas.
        if acks_all && s.replica(b).isr.len() < cfg.min_isr as usize {
            s.ghost.records[slot] = RecordStatus::Failed;
            return true;
        }
        let r = s.replica_mut(b);
        let offset = r.log_end_offset();
        let epoch = r.leader_epoch;
        r.log.push(Entry { record, epoch });
        r.epoch_cache.assign(epoch, offset);
        if cfg.flush == FlushPolicy::Every {
            r.flushed = r.log_end_offset();
        }
        let acked_now = !acks_all || cfg.is(Variant::AckBeforeReplication);
        s.ghost.records[slot] = if acked_now {
            RecordStatus::Acked {
                offset,
                epoch,
                acks_all,
            }
        } else {
            RecordStatus::Pending {
                leader: b,
                epoch,
                offset,
                acks_all,
            }
        };
        self.maybe_advance_high_watermark(s, b);
        true
    }

    // ---------------------------------------------------------------------------------------
    // Fetch

    fn fetch(&self, s: &mut PartitionState, f: BrokerId) -> bool {
        let cfg = &self.config;
        let fr = *s.replica(f);
        let l = fr.leader;
        if !fr.alive || l == f || l == NO_BROKER || fr.inflight_fetch.is_some() {
            return false;
        }
        // The request, built from the follower's state.
        let fetch_offset = fr.log_end_offset();
        // Before KIP-595's fetch, a follower validated its log against a new leader once (an
        // OffsetsForLeaderEpoch lookup, modelled as a fetch carrying the last fetched epoch) and
        // then fetched without validation; the variants that model that era do so.
        let validates_once =
            cfg.is(Variant::SingleEpochTruncation) || cfg.is(Variant::UnfencedTruncation);
        let last_fetched_epoch =
            if cfg.is(Variant::HwTruncation) || (validates_once && fr.epoch_validated()) {
                None
            } else {
                fr.epoch_cache.latest_epoch()
            };
        let current_leader_epoch = fr.leader_epoch;

        // Handled by the broker the follower believes leads.
        let lr = *s.replica(l);
        if !lr.is_leader(l) {
            return false; // NOT_LEADER_OR_FOLLOWER: nothing changes.
        }
        if !cfg.is(Variant::UnfencedTruncation) && current_leader_epoch != lr.leader_epoch {
            return false; // FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH: nothing changes.
        }
        let leader_end = lr.log_end_offset();
        let result = match last_fetched_epoch {
            Some(e) => match lr.epoch_cache.end_offset_for(e, leader_end) {
                Some((le, end)) if le >= e && end >= fetch_offset => None,
                other => Some(FetchResult::Diverging { end: other }),
            },
            None => None,
        };
        let result = match result {
            Some(r) => r,
            None if fetch_offset > leader_end => FetchResult::Diverging {
                // OFFSET_OUT_OF_RANGE: the follower is ahead of the leader's log end.
                end: Some((lr.epoch_cache.latest_epoch().unwrap_or(0), leader_end)),
            },
            None => {
                let lm = s.replica_mut(l);
                lm.follower_end_offset[f as usize] = fetch_offset;
                lm.follower_broker_epoch[f as usize] = fr.broker_epoch;
                self.maybe_advance_high_watermark(s, l);
                FetchResult::Records {
                    fetch_offset,
                    records: s.replica(l).log.suffix(fetch_offset),
                }
            }
        };
        let response = FetchResponse {
            leader: l,
            leader_epoch: current_leader_epoch,
            result,
            high_watermark: s.replica(l).high_watermark,
        };
        // A response that would change nothing at the follower is not worth a step of its own
        // unless the request itself changed the leader's state.
        let useless = match response.result {
            FetchResult::Records { records, .. } => {
                records.end_offset() == 0
                    && response.high_watermark.min(fetch_offset) == fr.high_watermark
            }
            FetchResult::Diverging { .. } => false,
        };
        if !useless {
            s.replica_mut(f).inflight_fetch = Some(response);
        }
        true
    }

    fn handle_fetch_response(&self, s: &mut PartitionState, f: BrokerId) -> bool {
        let cfg = &self.config;
        let r = s.replica_mut(f);
        let Some(resp) = r.inflight_fetch.take() else {
            return false;
        };
        if !r.alive {
            return false;
        }
        // KIP-320: a response is only used while the follower still follows the leader and
        // epoch it fetched from.
        let current = resp.leader == r.leader && resp.leader_epoch == r.leader_epoch;
        let follows = r.leader != f && r.leader != NO_BROKER;
        if !follows || (!current && !cfg.is(Variant::UnfencedTruncation)) {
            return true; // dropped
        }
        match resp.result {
            FetchResult::Diverging { end } => {
                let leo = r.log_end_offset();
                let target = match end {
                    None => 0,
                    Some((epoch, leader_end)) => {
                        if cfg.is(Variant::SingleEpochTruncation) || cfg.is(Variant::HwTruncation) {
                            // One lookup, trusted as is.
                            leader_end
                        } else {
                            match r.epoch_cache.end_offset_for(epoch, leo) {
                                Some((fe, fend)) if fe == epoch => leader_end.min(fend),
                                Some((_, fend)) => fend.min(leader_end),
                                None => 0,
                            }
                        }
                    }
                };
                if target < leo {
                    truncate_replica(r, target);
                    s.ghost.truncated_diverged_tail = true;
                }
                // Pre-KIP-279: one lookup, then plain fetches.
                let r = s.replica_mut(f);
                r.set_epoch_validated(cfg.is(Variant::SingleEpochTruncation));
            }
            FetchResult::Records {
                fetch_offset,
                records,
            } => {
                if fetch_offset != r.log_end_offset() {
                    return true; // stale: dropped
                }
                for e in records.entries() {
                    let offset = r.log_end_offset();
                    r.log.push(*e);
                    r.epoch_cache.assign(e.epoch, offset);
                }
                if cfg.flush == FlushPolicy::Every {
                    r.flushed = r.log_end_offset();
                }
                r.high_watermark = resp.high_watermark.min(r.log_end_offset());
                r.set_epoch_validated(
                    cfg.is(Variant::SingleEpochTruncation) || cfg.is(Variant::UnfencedTruncation),
                );
            }
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // High watermark and produce purgatory

    /// The leader's high watermark: the smallest log end offset over the ISR it uses (the
    /// maximal ISR while an AlterPartition is pending), advanced only while that ISR has at
    /// least min.insync.replicas members (KIP-966). Completes acks=all produces it passes.
    pub fn maybe_advance_high_watermark(&self, s: &mut PartitionState, l: BrokerId) {
        let cfg = &self.config;
        let r = *s.replica(l);
        if !r.is_leader(l) {
            return;
        }
        let isr = match (cfg.is(Variant::EagerIsrShrink), r.pending_isr) {
            (true, Some(p)) => p,
            _ => r.maximal_isr(),
        };
        // KIP-966: no progress while the committed ISR is below min.insync.replicas (Kafka's
        // `isUnderMinIsr` reads the committed ISR, not the maximal one: a zombie leader's
        // pending expansion must not let it commit).
        if !cfg.is(Variant::LastReplicaStanding) && r.isr.len() < cfg.min_isr as usize {
            return;
        }
        let mut hw = r.log_end_offset();
        for m in isr.iter() {
            if m != l {
                let end = r.follower_end_offset[m as usize];
                if end == UNKNOWN_OFFSET {
                    return;
                }
                hw = hw.min(end);
            }
        }
        if hw > r.high_watermark {
            for o in r.high_watermark..hw {
                let entry = r.log.get(o).expect("offset below the log end");
                match s.ghost.committed[o as usize] {
                    None => s.ghost.committed[o as usize] = Some((entry, r.leader_epoch)),
                    Some((seen, _)) if seen != entry => s.ghost.committed_conflict = true,
                    Some(_) => {}
                }
            }
            s.replica_mut(l).high_watermark = hw;
        }
        self.complete_delayed_produces(s, l);
    }

    /// Answers the acks=all produces waiting at `l` that its high watermark has passed:
    /// acknowledged while the ISR has min.insync.replicas members, otherwise
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    fn complete_delayed_produces(&self, s: &mut PartitionState, l: BrokerId) {
        let r = *s.replica(l);
        for slot in 0..MAX_RECORDS {
            if let RecordStatus::Pending {
                leader,
                epoch,
                offset,
                acks_all,
            } = s.ghost.records[slot]
            {
                if leader == l && epoch == r.leader_epoch && offset < r.high_watermark {
                    s.ghost.records[slot] = if r.maximal_isr().len() >= self.config.min_isr as usize
                    {
                        RecordStatus::Acked {
                            offset,
                            epoch,
                            acks_all,
                        }
                    } else {
                        RecordStatus::Failed
                    };
                }
            }
        }
    }

    /// Produces waiting at `b` fail when it stops leading (NOT_LEADER_OR_FOLLOWER).
    fn fail_delayed_produces(s: &mut PartitionState, b: BrokerId) {
        for slot in 0..MAX_RECORDS {
            if let RecordStatus::Pending { leader, .. } = s.ghost.records[slot] {
                if leader == b {
                    s.ghost.records[slot] = RecordStatus::Failed;
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // ISR changes (KIP-497 AlterPartition)

    fn propose_isr_shrink(&self, s: &mut PartitionState, l: BrokerId, f: BrokerId) -> bool {
        let r = s.replica_mut(l);
        if !r.is_leader(l) || r.pending_isr.is_some() || f == l || !r.isr.contains(f) {
            return false;
        }
        // Out of sync: it has not caught up to the leader's log end offset within
        // replica.lag.time.max.ms (time is abstracted away: any lagging follower may be dropped).
        let end = r.follower_end_offset[f as usize];
        if end != UNKNOWN_OFFSET && end >= r.log_end_offset() {
            return false;
        }
        r.pending_isr = Some(r.isr.without(f));
        self.maybe_advance_high_watermark(s, l);
        true
    }

    fn propose_isr_expand(&self, s: &mut PartitionState, l: BrokerId, f: BrokerId) -> bool {
        let cfg = &self.config;
        let r = s.replica_mut(l);
        if !r.is_leader(l) || r.pending_isr.is_some() || f == l || r.isr.contains(f) {
            return false;
        }
        let end = r.follower_end_offset[f as usize];
        if end == UNKNOWN_OFFSET || end < r.high_watermark {
            return false;
        }
        // KAFKA-7128: not before the follower reaches the start of the leader's epoch.
        if !cfg.is(Variant::NoExpandGuard) && end < r.epoch_start_offset() {
            return false;
        }
        r.pending_isr = Some(r.isr.with(f));
        r.pending_added_broker_epoch = r.follower_broker_epoch[f as usize];
        true
    }

    fn alter_partition(&self, s: &mut PartitionState, l: BrokerId) -> bool {
        let r = *s.replica(l);
        let Some(proposed) = r.pending_isr else {
            return false;
        };
        if !r.alive {
            return false;
        }
        let c = s.controller;
        let current = c.leader == l
            && c.leader_epoch == r.leader_epoch
            && c.partition_epoch == r.partition_epoch;
        if !current {
            // FENCED_LEADER_EPOCH / INVALID_UPDATE_VERSION: Kafka's leader keeps the change
            // pending, proposes nothing more and waits for the metadata that BecomeLeader or
            // BecomeFollower brings (`Partition.handleAlterPartitionError`). The answer
            // changes nothing, so the step is not taken.
            return false;
        }
        let eligible =
            // KIP-841: a fenced broker is never added to the ISR.
            BrokerSet(proposed.0 & !c.isr.0 & c.fenced.0).is_empty()
            // KIP-858: nor a replica whose log is offline.
            && BrokerSet(proposed.0 & !c.isr.0 & c.offline_logs.0).is_empty()
            // KIP-903: nor one whose broker epoch is not the one the leader saw fetching.
            && (self.config.is(Variant::StaleBrokerEpoch)
                || BrokerSet(proposed.0 & !c.isr.0)
                    .iter()
                    .all(|m| r.pending_added_broker_epoch == s.replica(m).broker_epoch));
        if !eligible {
            // INELIGIBLE_REPLICA: the leader goes back to its committed ISR and may propose
            // again.
            let r = s.replica_mut(l);
            r.pending_isr = None;
            r.pending_added_broker_epoch = 0;
            return true;
        }
        if !self.isr_change_allowed(&c) {
            return false; // outside the bounds
        }
        let removed = BrokerSet(c.isr.0 & !proposed.0);
        self.set_isr(&mut s.controller, proposed, removed);
        s.controller.partition_epoch += 1;
        let partition_epoch = s.controller.partition_epoch;
        let r = s.replica_mut(l);
        r.isr = proposed;
        r.partition_epoch = partition_epoch;
        r.pending_isr = None;
        r.pending_added_broker_epoch = 0;
        self.maybe_advance_high_watermark(s, l);
        true
    }

    /// Sets the controller's ISR, keeping the ELR as KIP-966 says: replicas that leave an ISR
    /// below min.insync.replicas become eligible; the ELR empties once the ISR is large enough.
    fn set_isr(&self, c: &mut Controller, isr: BrokerSet, removed: BrokerSet) {
        c.isr = isr;
        if !self.elr_enabled() {
            return;
        }
        if isr.len() >= self.config.min_isr as usize {
            c.elr = BrokerSet::EMPTY;
        } else {
            c.elr = BrokerSet((c.elr.0 | removed.0) & !isr.0);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Metadata: brokers learn the controller's partition state

    fn become_leader(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        let c = s.controller;
        let r = *s.replica(b);
        if !r.alive || c.leader != b {
            return false;
        }
        if r.leader == b && r.leader_epoch == c.leader_epoch {
            // Same leader epoch, new partition state (ISR changed by the controller).
            if r.partition_epoch == c.partition_epoch {
                return false;
            }
            let r = s.replica_mut(b);
            r.isr = c.isr;
            r.partition_epoch = c.partition_epoch;
            r.pending_isr = None;
            r.pending_added_broker_epoch = 0;
        } else {
            Self::fail_delayed_produces(s, b);
            let r = s.replica_mut(b);
            r.leader = b;
            r.leader_epoch = c.leader_epoch;
            r.isr = c.isr;
            r.partition_epoch = c.partition_epoch;
            r.pending_isr = None;
            r.pending_added_broker_epoch = 0;
            r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
            r.follower_broker_epoch = [0; MAX_BROKERS];
            r.inflight_fetch = None;
            r.set_epoch_validated(false);
            let leo = r.log_end_offset();
            r.epoch_cache.assign(c.leader_epoch, leo);
        }
        self.maybe_advance_high_watermark(s, b);
        true
    }

    fn become_follower(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        let cfg = &self.config;
        let c = s.controller;
        let r = *s.replica(b);
        if !r.alive || c.leader == b {
            return false;
        }
        if r.leader == c.leader && r.leader_epoch == c.leader_epoch {
            return false;
        }
        if r.leader == b {
            Self::fail_delayed_produces(s, b);
        }
        let r = s.replica_mut(b);
        r.leader = c.leader;
        r.leader_epoch = c.leader_epoch;
        r.isr = BrokerSet::EMPTY;
        r.partition_epoch = 0;
        r.pending_isr = None;
        r.pending_added_broker_epoch = 0;
        r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
        r.follower_broker_epoch = [0; MAX_BROKERS];
        r.set_epoch_validated(false);
        if cfg.is(Variant::HwTruncation) {
            let hw = r.high_watermark;
            truncate_replica(r, hw);
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // Crash and restart

    fn crash(&self, s: &mut PartitionState, b: BrokerId, clean: bool, kept: Offset) -> bool {
        let r = *s.replica(b);
        if !r.alive || s.ghost.crashes >= self.config.max_crashes {
            return false;
        }
        if clean && kept != r.log_end_offset() {
            return false;
        }
        if !clean && kept != r.flushed {
            return false;
        }
        Self::fail_delayed_produces(s, b);
        s.ghost.crashes += 1;
        s.ghost.unclean_shutdown = if clean {
            s.ghost.unclean_shutdown.without(b)
        } else {
            s.ghost.unclean_shutdown.with(b)
        };
        let r = s.replica_mut(b);
        truncate_replica(r, kept);
        r.flushed = kept;
        // Everything in memory is gone; what the broker knew of the partition it learns again
        // from the metadata log after it restarts.
        r.alive = false;
        r.leader = NO_BROKER;
        r.isr = BrokerSet::EMPTY;
        r.partition_epoch = 0;
        r.pending_isr = None;
        r.pending_added_broker_epoch = 0;
        r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
        r.follower_broker_epoch = [0; MAX_BROKERS];
        r.inflight_fetch = None;
        r.set_epoch_validated(false);
        true
    }

    fn restart(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        let cfg = &self.config;
        let r = s.replica(b);
        if r.alive || !s.controller.fenced.contains(b) {
            return false;
        }
        let r = s.replica_mut(b);
        r.alive = true;
        // Registering again gives the broker a new broker epoch (KIP-903).
        r.broker_epoch += 1;
        if cfg.is(Variant::HwTruncation) {
            let hw = r.high_watermark;
            truncate_replica(r, hw);
        }
        // Registration: a broker back from an unclean shutdown is no longer eligible (KIP-966).
        if s.ghost.unclean_shutdown.contains(b) {
            s.ghost.unclean_shutdown = s.ghost.unclean_shutdown.without(b);
            if self.elr_enabled() && s.controller.elr.contains(b) {
                s.controller.elr = s.controller.elr.without(b);
                if !self.isr_change_allowed(&s.controller) {
                    return false;
                }
                s.controller.partition_epoch += 1;
            }
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // Controller

    fn fence_broker(
        &self,
        s: &mut PartitionState,
        b: BrokerId,
        new_leader: Option<BrokerId>,
    ) -> bool {
        let cfg = &self.config;
        let c = s.controller;
        if c.fenced.contains(b) {
            return false;
        }
        if s.replica(b).alive {
            // A live broker cut off from the controller: a fault, bounded with crashes.
            if s.ghost.crashes >= cfg.max_crashes {
                return false;
            }
            s.ghost.crashes += 1;
        }
        let mut next = c;
        next.fenced = c.fenced.with(b);
        if c.isr.contains(b) {
            let last_member = c.isr == BrokerSet::single(b);
            // Before KIP-966 the last ISR member stays in the ISR.
            if !last_member || self.elr_enabled() {
                self.set_isr(&mut next, c.isr.without(b), BrokerSet::single(b));
            }
        }
        if c.leader == b {
            let (unclean, candidates) = self.election_candidates(&c, b);
            match new_leader {
                Some(l) if candidates.contains(l) => {
                    self.install_leader(&mut next, l, unclean);
                }
                None if candidates.is_empty() => {
                    next.leader = NO_BROKER;
                }
                _ => return false,
            }
            if next.leader_epoch >= cfg.max_epoch {
                return false;
            }
            next.leader_epoch += 1;
        } else if new_leader.is_some() {
            return false;
        }
        // Kafka writes a partition change only for the partitions whose ISR or leader the
        // fencing touches (`handleBrokerFenced`); fencing any other replica leaves the
        // partition epoch alone, so the leader's next AlterPartition still applies.
        let changed = next.leader != c.leader || next.isr != c.isr || next.elr != c.elr;
        if changed {
            if c.leader != b && !self.isr_change_allowed(&c) {
                return false;
            }
            next.partition_epoch += 1;
        }
        s.controller = next;
        true
    }

    /// The partition change of an election: a leader from the ELR or an unclean one starts a
    /// new ISR of itself alone.
    fn install_leader(&self, c: &mut Controller, l: BrokerId, unclean: bool) {
        c.leader = l;
        if unclean {
            c.isr = BrokerSet::single(l);
            c.elr = BrokerSet::EMPTY;
        } else if !c.isr.contains(l) {
            // Elected from the ELR.
            let isr = BrokerSet::single(l);
            c.elr = c.elr.without(l);
            self.set_isr(c, isr, BrokerSet::EMPTY);
        }
    }

    fn unfence_broker(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        if !s.replica(b).alive || !s.controller.fenced.contains(b) {
            return false;
        }
        s.controller.fenced = s.controller.fenced.without(b);
        true
    }

    fn elect_leader(&self, s: &mut PartitionState, b: BrokerId, unclean: bool) -> bool {
        let cfg = &self.config;
        let c = s.controller;
        if c.leader != NO_BROKER || c.leader_epoch >= cfg.max_epoch {
            return false;
        }
        let (is_unclean, candidates) = self.election_candidates(&c, NO_BROKER);
        if !candidates.contains(b) || is_unclean != unclean {
            return false;
        }
        let mut next = c;
        self.install_leader(&mut next, b, unclean);
        next.leader_epoch += 1;
        next.partition_epoch += 1;
        s.controller = next;
        true
    }

    /// The `LogFails` steps of broker `b`: one per leader the controller may elect in the
    /// same change if `b` leads, else one.
    fn log_failure_actions(&self, c: &Controller, b: BrokerId, out: &mut Vec<Action>) {
        if c.leader != b {
            out.push(Action::LogFails {
                broker: b,
                new_leader: None,
            });
            return;
        }
        let (_, candidates) = self.election_candidates(c, b);
        if candidates.is_empty() {
            out.push(Action::LogFails {
                broker: b,
                new_leader: None,
            });
        }
        for l in candidates.iter() {
            out.push(Action::LogFails {
                broker: b,
                new_leader: Some(l),
            });
        }
    }

    /// The model's `LogFails` (the controller's `assign_replicas_to_dirs` to
    /// `DirectoryId.LOST`): the replica leaves the ISR without entering the ELR (it has no
    /// log to serve), leaves the ELR, and, where it led, another leader is elected (ISR, else
    /// ELR, else unclean if allowed, never a replica whose log is offline) or none.
    fn log_fails(&self, s: &mut PartitionState, b: BrokerId, new_leader: Option<BrokerId>) -> bool {
        let cfg = &self.config;
        let c = s.controller;
        if !s.replica(b).alive
            || c.offline_logs.contains(b)
            || c.offline_logs.len() >= cfg.max_log_failures as usize
        {
            return false;
        }
        let mut next = c;
        next.offline_logs = c.offline_logs.with(b);
        if c.isr.contains(b) {
            self.set_isr(&mut next, c.isr.without(b), BrokerSet::EMPTY);
        }
        next.elr = next.elr.without(b);
        if c.leader == b {
            let (unclean, candidates) = self.election_candidates(&c, b);
            match new_leader {
                Some(l) if candidates.contains(l) => self.install_leader(&mut next, l, unclean),
                None if candidates.is_empty() => next.leader = NO_BROKER,
                _ => return false,
            }
            if next.leader_epoch >= cfg.max_epoch {
                return false;
            }
            next.leader_epoch += 1;
        } else if new_leader.is_some() {
            return false;
        }
        next.partition_epoch += 1;
        s.controller = next;
        true
    }

    fn move_leader(&self, s: &mut PartitionState, to: BrokerId) -> bool {
        let cfg = &self.config;
        let c = &mut s.controller;
        if c.leader == NO_BROKER
            || c.leader == to
            || !c.isr.contains(to)
            || c.fenced.contains(to)
            || c.leader_epoch >= cfg.max_epoch
        {
            return false;
        }
        c.leader = to;
        c.leader_epoch += 1;
        c.partition_epoch += 1;
        true
    }
}

/// Truncates a replica's log to `offset` with what goes with it: the epoch cache, the flushed
/// prefix and the high watermark never point past the log end.
pub fn truncate_replica(r: &mut Replica, offset: Offset) {
    r.log.truncate(offset);
    r.epoch_cache.truncate_from_end(offset);
    r.flushed = r.flushed.min(offset);
    r.high_watermark = r.high_watermark.min(offset);
}

impl BrokerSet {
    fn without_fenced(self, fenced: BrokerSet) -> BrokerSet {
        BrokerSet(self.0 & !fenced.0)
    }
}

impl stateright::Model for PartitionModel {
    type State = PartitionState;
    type Action = Action;

    fn init_states(&self) -> Vec<PartitionState> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &PartitionState, actions: &mut Vec<Action>) {
        self.enabled_actions(state, actions);
    }

    fn next_state(&self, last: &PartitionState, action: Action) -> Option<PartitionState> {
        self.successor(last, action)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        crate::properties::all()
    }

    fn format_action(&self, action: &Action) -> String {
        action.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    fn model() -> PartitionModel {
        PartitionModel::new(ModelConfig::default())
    }

    fn run(m: &PartitionModel, actions: &[Action]) -> PartitionState {
        let mut s = m.initial_state();
        for a in actions {
            s = m
                .step(&s, *a)
                .unwrap_or_else(|| panic!("{} is not enabled", a.describe()));
        }
        s
    }

    const PRODUCE: Action = Action::Produce {
        leader: 0,
        acks_all: true,
    };

    fn replicate(follower: BrokerId) -> [Action; 2] {
        [
            Action::Fetch { follower },
            Action::HandleFetchResponse { follower },
        ]
    }

    #[test]
    fn produce_appends_in_the_leader_epoch_and_waits_for_the_isr() {
        let m = model();
        let s = run(&m, &[PRODUCE]);
        assert_eq!(
            s.replica(0).log.entries(),
            &[Entry {
                record: 1,
                epoch: 0
            }]
        );
        assert_eq!(s.replica(0).high_watermark, 0);
        assert!(matches!(s.ghost.records[0], RecordStatus::Pending { .. }));
    }

    #[test]
    fn acks_all_is_acknowledged_once_every_isr_member_fetched_past_it() {
        let m = model();
        let mut steps = vec![PRODUCE];
        steps.extend(replicate(1));
        steps.extend(replicate(2));
        steps.push(Action::Fetch { follower: 1 });
        let s = run(&m, &steps);
        assert!(matches!(s.ghost.records[0], RecordStatus::Pending { .. }));
        let s = m.step(&s, Action::Fetch { follower: 2 }).unwrap();
        assert_eq!(s.replica(0).high_watermark, 1);
        assert!(matches!(
            s.ghost.records[0],
            RecordStatus::Acked { acks_all: true, .. }
        ));
    }

    #[test]
    fn acks_all_is_refused_below_min_insync_replicas() {
        let m = model();
        let s = run(
            &m,
            &[
                PRODUCE,
                Action::ProposeIsrShrink {
                    leader: 0,
                    follower: 1,
                },
                Action::AlterPartition { leader: 0 },
                Action::ProposeIsrShrink {
                    leader: 0,
                    follower: 2,
                },
                Action::AlterPartition { leader: 0 },
            ],
        );
        assert_eq!(s.controller.isr, BrokerSet::single(0));
        // KIP-966: the replicas that left an ISR below min.insync.replicas stay eligible.
        assert!(s.controller.elr.contains(2));
        let s = m.step(&s, PRODUCE).unwrap();
        assert_eq!(s.ghost.records[1], RecordStatus::Failed);
        assert_eq!(s.replica(0).log_end_offset(), 1);
    }

    #[test]
    fn a_fetch_from_a_stale_epoch_is_fenced() {
        let m = model();
        let s = run(
            &m,
            &[
                Action::MoveLeader { to: 1 },
                Action::BecomeLeader { broker: 1 },
                Action::BecomeFollower { broker: 0 },
            ],
        );
        // Broker 2 still believes broker 0 leads in epoch 0: its fetch reaches a non-leader.
        assert!(m.step(&s, Action::Fetch { follower: 2 }).is_none());
        let s = m.step(&s, Action::BecomeFollower { broker: 2 }).unwrap();
        assert!(m.step(&s, Action::Fetch { follower: 2 }).is_some());
    }

    #[test]
    fn a_diverged_tail_is_truncated_on_fetch() {
        let m = model();
        // Broker 0 appends r1 that nobody fetches, then loses leadership to broker 1, which
        // writes r2 at the same offset in epoch 1.
        let s = run(
            &m,
            &[
                PRODUCE,
                Action::MoveLeader { to: 1 },
                Action::BecomeLeader { broker: 1 },
                Action::Produce {
                    leader: 1,
                    acks_all: true,
                },
                Action::BecomeFollower { broker: 0 },
                Action::Fetch { follower: 0 },
            ],
        );
        let resp = s.replica(0).inflight_fetch.unwrap();
        // The new leader knows no epoch as old as the follower's: that epoch ends, for the
        // leader, where its first epoch starts (Kafka's answer), below the fetch offset.
        assert_eq!(resp.result, FetchResult::Diverging { end: Some((0, 0)) });
        let s = m
            .step(&s, Action::HandleFetchResponse { follower: 0 })
            .unwrap();
        assert_eq!(s.replica(0).log_end_offset(), 0);
        assert!(s.ghost.truncated_diverged_tail);
        let s = run_from(&m, s, &replicate(0));
        assert_eq!(
            s.replica(0).log.entries(),
            &[Entry {
                record: 2,
                epoch: 1
            }]
        );
    }

    fn run_from(m: &PartitionModel, mut s: PartitionState, actions: &[Action]) -> PartitionState {
        for a in actions {
            s = m.step(&s, *a).unwrap();
        }
        s
    }

    #[test]
    fn alter_partition_is_rejected_on_a_stale_partition_epoch() {
        let m = model();
        let s = run(
            &m,
            &[
                PRODUCE,
                Action::ProposeIsrShrink {
                    leader: 0,
                    follower: 2,
                },
                Action::FenceBroker {
                    broker: 1,
                    new_leader: None,
                },
            ],
        );
        // INVALID_UPDATE_VERSION: nothing changes; the proposal stays pending until the
        // leader learns the new partition state.
        assert!(m.step(&s, Action::AlterPartition { leader: 0 }).is_none());
        let s = m.step(&s, Action::BecomeLeader { broker: 0 }).unwrap();
        assert_eq!(s.replica(0).pending_isr, None);
        assert_eq!(s.replica(0).partition_epoch, s.controller.partition_epoch);
    }

    #[test]
    fn fencing_the_leader_elects_an_isr_member_in_a_new_epoch() {
        let m = model();
        let s = run(
            &m,
            &[
                Action::Crash {
                    broker: 0,
                    clean: false,
                    kept: 0,
                },
                Action::FenceBroker {
                    broker: 0,
                    new_leader: Some(2),
                },
            ],
        );
        assert_eq!(s.controller.leader, 2);
        assert_eq!(s.controller.leader_epoch, 1);
        assert_eq!(s.controller.isr.to_vec(), vec![1, 2]);
        let s = m.step(&s, Action::BecomeLeader { broker: 2 }).unwrap();
        assert_eq!(s.replica(2).epoch_cache.latest(), Some((1, 0)));
    }

    #[test]
    fn an_unclean_crash_loses_the_unflushed_tail_and_eligibility() {
        let m = model();
        let mut steps = vec![PRODUCE];
        steps.extend(replicate(1));
        let s = run(&m, &steps);
        assert_eq!(s.replica(1).log_end_offset(), 1);
        let s = run_from(
            &m,
            s,
            &[
                Action::Crash {
                    broker: 1,
                    clean: false,
                    kept: 0,
                },
                Action::FenceBroker {
                    broker: 1,
                    new_leader: None,
                },
                Action::Restart { broker: 1 },
            ],
        );
        assert_eq!(s.replica(1).log_end_offset(), 0);
        assert_eq!(s.replica(1).broker_epoch, 1);
        assert!(s.controller.fenced.contains(1));
        assert!(!s.controller.elr.contains(1));
    }

    #[test]
    fn a_follower_learns_new_metadata_eagerly_once_its_leader_stops_leading() {
        let m = model();
        let s = run(
            &m,
            &[
                Action::MoveLeader { to: 1 },
                Action::BecomeLeader { broker: 1 },
            ],
        );
        // Broker 0 still leads epoch 0 in its own view: broker 2 can still fetch from it.
        assert_eq!(m.eager_follower(&s), None);
        let bf0 = Action::BecomeFollower { broker: 0 };
        let fused = m.successor(&s, bf0).unwrap();
        let by_steps = run_from(&m, s, &[bf0, Action::BecomeFollower { broker: 2 }]);
        assert_eq!(fused, by_steps);
        assert_eq!(
            (fused.replica(2).leader, fused.replica(2).leader_epoch),
            (1, 1)
        );
        // Traces name the eager step, so they replay step by step.
        let taken = [
            Action::MoveLeader { to: 1 },
            Action::BecomeLeader { broker: 1 },
            bf0,
        ];
        let expanded = m.with_eager_steps(&taken);
        assert_eq!(expanded.last(), Some(&Action::BecomeFollower { broker: 2 }));
        let trace = crate::trace::Trace::from_actions(&m, &expanded).unwrap();
        trace.validate().unwrap();
    }

    #[test]
    fn an_atomic_fetch_is_handled_in_the_same_transition() {
        let m = model();
        let s = run(&m, &[PRODUCE]);
        let fetch = Action::Fetch { follower: 1 };
        let fused = m.successor(&s, fetch).unwrap();
        assert_eq!(fused.replica(1).inflight_fetch, None);
        assert_eq!(fused.replica(1).log_end_offset(), 1);
        assert_eq!(fused, run_from(&m, s, &replicate(1)));
        // Traces name both steps.
        let expanded = m.with_eager_steps(&[PRODUCE, fetch]);
        assert_eq!(expanded[1..], replicate(1));
        // Split delivery leaves the response in flight.
        let split = PartitionModel::new(ModelConfig {
            fetch: FetchDelivery::Split,
            ..ModelConfig::default()
        });
        let s = run(&split, &[PRODUCE]);
        assert!(split
            .successor(&s, fetch)
            .unwrap()
            .replica(1)
            .inflight_fetch
            .is_some());
    }

    #[test]
    fn no_eager_step_under_unfenced_truncation() {
        let m = PartitionModel::new(ModelConfig {
            variant: Some(Variant::UnfencedTruncation),
            ..ModelConfig::default()
        });
        let s = run(
            &m,
            &[
                Action::MoveLeader { to: 1 },
                Action::BecomeLeader { broker: 1 },
                Action::BecomeFollower { broker: 0 },
            ],
        );
        assert_eq!(m.eager_follower(&s), None);
    }

    #[test]
    fn a_step_that_changes_nothing_is_not_taken() {
        let m = model();
        let s = m.initial_state();
        // The first fetch tells the leader where the follower is; a second has nothing to say.
        let s = m.step(&s, Action::Fetch { follower: 1 }).unwrap();
        assert!(m.step(&s, Action::Fetch { follower: 1 }).is_none());
        assert!(m.step(&s, Action::BecomeLeader { broker: 0 }).is_none());
    }

    #[test]
    fn a_failed_log_leaves_isr_and_elr_and_is_never_elected() {
        let m = PartitionModel::new(ModelConfig {
            max_log_failures: 1,
            ..ModelConfig::default()
        });
        let s = m.initial_state();
        // Outside the bound: nothing.
        assert!(model()
            .step(
                &s,
                Action::LogFails {
                    broker: 0,
                    new_leader: Some(1)
                }
            )
            .is_none());
        // The leader's log fails: an ISR member is elected in the same change, not another.
        assert!(m
            .step(
                &s,
                Action::LogFails {
                    broker: 0,
                    new_leader: None
                }
            )
            .is_none());
        let s = m
            .step(
                &s,
                Action::LogFails {
                    broker: 0,
                    new_leader: Some(1),
                },
            )
            .unwrap();
        let c = s.controller;
        assert_eq!((c.leader, c.leader_epoch, c.partition_epoch), (1, 1, 1));
        assert!(!c.isr.contains(0) && !c.elr.contains(0) && c.offline_logs.contains(0));
        // The replica takes no step of its own, and only one log may fail.
        assert!(m.step(&s, Action::BecomeFollower { broker: 0 }).is_none());
        assert!(m
            .step(
                &s,
                Action::LogFails {
                    broker: 2,
                    new_leader: None
                }
            )
            .is_none());
        // Never a candidate, not even an unclean one.
        let u = PartitionModel::new(ModelConfig {
            unclean: true,
            min_isr: 1,
            max_log_failures: 1,
            ..ModelConfig::default()
        });
        let (_, candidates) = u.election_candidates(&c, 1);
        assert!(!candidates.contains(0), "{candidates:?}");
        assert!(crate::properties::offline_log_never_leader(&m, &s));
    }
}
