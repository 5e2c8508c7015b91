//! Controller steps of the replication model: AlterPartition, fencing and unfencing,
//! clean, ELR and unclean election, preferred-leader moves, and the ISR/ELR bookkeeping they
//! share. Mirrors `impl/src/controller/election.rs` (`election_candidates`, `set_isr`,
//! `install_leader`) and `impl/src/controller/controller.rs`.

use super::PartitionModel;
use crate::action::Action;
use crate::config::Variant;
use crate::state::*;
use crate::types::*;

impl PartitionModel {
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
    // ---------------------------------------------------------------------------------------
    // AlterPartition (KIP-497)

    pub(super) fn alter_partition(&self, s: &mut PartitionState, l: BrokerId) -> bool {
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
    pub(super) fn set_isr(&self, c: &mut Controller, isr: BrokerSet, removed: BrokerSet) {
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
    // Controller

    pub(super) fn fence_broker(
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
    pub(super) fn install_leader(&self, c: &mut Controller, l: BrokerId, unclean: bool) {
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

    pub(super) fn unfence_broker(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        if !s.replica(b).alive || !s.controller.fenced.contains(b) {
            return false;
        }
        s.controller.fenced = s.controller.fenced.without(b);
        true
    }

    pub(super) fn elect_leader(&self, s: &mut PartitionState, b: BrokerId, unclean: bool) -> bool {
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
    pub(super) fn log_failure_actions(&self, c: &Controller, b: BrokerId, out: &mut Vec<Action>) {
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
    pub(super) fn log_fails(
        &self,
        s: &mut PartitionState,
        b: BrokerId,
        new_leader: Option<BrokerId>,
    ) -> bool {
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

    pub(super) fn move_leader(&self, s: &mut PartitionState, to: BrokerId) -> bool {
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

impl BrokerSet {
    pub(super) fn without_fenced(self, fenced: BrokerSet) -> BrokerSet {
        BrokerSet(self.0 & !fenced.0)
    }
}
