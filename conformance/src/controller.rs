//! The controller side of the replay, behind [`ControllerDriver`].
//!
//! The broker's own deterministic controller core (`osprey-broker`'s `controller` module:
//! elections ISR → ELR → unclean, fencing, AlterPartition validation) is being written
//! separately. Until it lands, the replay drives [`ModelRulesController`], a port of the
//! model's controller rules (`model/src/partition.rs`: `fence_broker`, `unfence_broker`,
//! `elect_leader`, `move_leader`, `alter_partition`, `set_isr`, `install_leader`, and the
//! registration part of `restart`) onto the broker's types ([`PartitionState`],
//! [`AlterPartitionProposal`], [`AlterPartitionResponse`]). Swapping in the real controller
//! is one `impl ControllerDriver` for it: this trait is the seam.
//!
//! Model bounds (`max_epoch`, `max_isr_changes`, `max_crashes`) are not the controller's
//! business: a trace only contains steps the model enabled, so within a replay they hold.

use std::collections::{BTreeMap, BTreeSet};

use osprey_broker::replication::error_codes::{
    FENCED_LEADER_EPOCH, INELIGIBLE_REPLICA, INVALID_UPDATE_VERSION,
};
use osprey_broker::replication::{
    AlterPartitionProposal, AlterPartitionResponse, BrokerId, PartitionState, NO_BROKER,
};
use osprey_model::trace::ControllerView;

/// A controller step the controller refused, with why. In a replay this is a mismatch:
/// the model took the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What the replay needs from a controller, in the broker's vocabulary.
pub trait ControllerDriver {
    /// The partition state brokers learn from the metadata log (BecomeLeader/BecomeFollower).
    fn partition_state(&self) -> PartitionState;
    /// A broker (re)registers with `broker_epoch` (KIP-903). `clean_shutdown` is false after
    /// an unclean shutdown: the broker then leaves the ELR (KIP-966). It stays fenced.
    fn register(&mut self, broker: BrokerId, broker_epoch: i64, clean_shutdown: bool);
    /// Missed heartbeats: fence `broker`, drop it from the ISR (into the ELR below min ISR),
    /// and if it led elect `new_leader` in the same change (`None`: the partition goes
    /// offline, allowed only when nobody is eligible).
    fn fence(&mut self, broker: BrokerId, new_leader: Option<BrokerId>) -> Result<(), Refused>;
    /// Heartbeats resumed.
    fn unfence(&mut self, broker: BrokerId) -> Result<(), Refused>;
    /// Elect `broker` for an offline partition; `unclean` must match the kind of election
    /// the controller's rules give.
    fn elect(&mut self, broker: BrokerId, unclean: bool) -> Result<(), Refused>;
    /// Preferred-leader election to another unfenced ISR member.
    fn move_leader(&mut self, to: BrokerId) -> Result<(), Refused>;
    /// Handle a leader's AlterPartition (KIP-497, KIP-841, KIP-903).
    fn alter_partition(&mut self, proposal: &AlterPartitionProposal) -> AlterPartitionResponse;
    /// The controller's state as the model's traces show it.
    fn view(&self) -> ControllerView;
}

/// The model's controller rules over broker-side types (see the module docs).
#[derive(Debug, Clone)]
pub struct ModelRulesController {
    replicas: Vec<BrokerId>,
    min_isr: usize,
    unclean_election: bool,
    leader: BrokerId,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: BTreeSet<BrokerId>,
    elr: BTreeSet<BrokerId>,
    fenced: BTreeSet<BrokerId>,
    /// Each broker's current registration (KIP-903).
    broker_epochs: BTreeMap<BrokerId, i64>,
}

impl ModelRulesController {
    /// The partition just created: `replicas[0]` leads in epoch 0 with every replica in the
    /// ISR, every broker registered with `broker_epoch` 0 and unfenced (the model's initial
    /// state).
    pub fn new(replicas: Vec<BrokerId>, min_isr: usize, unclean_election: bool) -> Self {
        ModelRulesController {
            leader: replicas.first().copied().unwrap_or(NO_BROKER),
            leader_epoch: 0,
            partition_epoch: 0,
            isr: replicas.iter().copied().collect(),
            elr: BTreeSet::new(),
            fenced: BTreeSet::new(),
            broker_epochs: replicas.iter().map(|&b| (b, 0)).collect(),
            replicas,
            min_isr,
            unclean_election,
        }
    }

    /// Who may lead when `excluding` loses leadership: unfenced ISR members, else unfenced
    /// ELR members (KIP-966), else with unclean election any unfenced replica. Returns
    /// whether that election is unclean, and the candidates.
    fn candidates(&self, excluding: BrokerId) -> (bool, BTreeSet<BrokerId>) {
        let live = |b: &&BrokerId| **b != excluding && !self.fenced.contains(b);
        let isr: BTreeSet<_> = self.isr.iter().filter(live).copied().collect();
        if !isr.is_empty() {
            return (false, isr);
        }
        let elr: BTreeSet<_> = self.elr.iter().filter(live).copied().collect();
        if !elr.is_empty() {
            return (false, elr);
        }
        if self.unclean_election {
            return (true, self.replicas.iter().filter(live).copied().collect());
        }
        (false, BTreeSet::new())
    }

    /// KIP-966's ELR upkeep on an ISR change: members that leave an ISR below min ISR
    /// become eligible; the ELR empties once the ISR is large enough again.
    fn set_isr(&mut self, isr: BTreeSet<BrokerId>, removed: &BTreeSet<BrokerId>) {
        if isr.len() >= self.min_isr {
            self.elr.clear();
        } else {
            self.elr = self.elr.union(removed).copied().collect();
            self.elr.retain(|b| !isr.contains(b));
        }
        self.isr = isr;
    }

    /// An election's partition change: a leader from the ELR or an unclean one starts an
    /// ISR of itself alone.
    fn install_leader(&mut self, leader: BrokerId, unclean: bool) {
        self.leader = leader;
        if unclean {
            self.isr = BTreeSet::from([leader]);
            self.elr.clear();
        } else if !self.isr.contains(&leader) {
            self.elr.remove(&leader);
            self.set_isr(BTreeSet::from([leader]), &BTreeSet::new());
        }
    }
}

impl ControllerDriver for ModelRulesController {
    fn partition_state(&self) -> PartitionState {
        PartitionState {
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: self.isr.iter().copied().collect(),
            replicas: self.replicas.clone(),
        }
    }

    fn register(&mut self, broker: BrokerId, broker_epoch: i64, clean_shutdown: bool) {
        self.broker_epochs.insert(broker, broker_epoch);
        if !clean_shutdown && self.elr.remove(&broker) {
            self.partition_epoch += 1;
        }
    }

    fn fence(&mut self, broker: BrokerId, new_leader: Option<BrokerId>) -> Result<(), Refused> {
        if self.fenced.contains(&broker) {
            return Err(Refused(format!("broker {broker} is already fenced")));
        }
        // Candidates are those of the partition state before the change (the fenced
        // broker excluded), as in the model.
        let (unclean, candidates) = self.candidates(broker);
        let was_leader = self.leader == broker;
        match (was_leader, new_leader) {
            (true, Some(l)) if !candidates.contains(&l) => {
                return Err(Refused(format!("broker {l} is not eligible to lead")));
            }
            (true, None) if !candidates.is_empty() => {
                return Err(Refused(format!(
                    "fencing leader {broker} must elect one of {candidates:?}"
                )));
            }
            (false, Some(_)) => {
                return Err(Refused(format!(
                    "broker {broker} does not lead: no election"
                )));
            }
            _ => {}
        }
        self.fenced.insert(broker);
        if self.isr.contains(&broker) {
            let mut isr = self.isr.clone();
            isr.remove(&broker);
            self.set_isr(isr, &BTreeSet::from([broker]));
        }
        if was_leader {
            match new_leader {
                Some(l) => self.install_leader(l, unclean),
                None => self.leader = NO_BROKER,
            }
            self.leader_epoch += 1;
        }
        self.partition_epoch += 1;
        Ok(())
    }

    fn unfence(&mut self, broker: BrokerId) -> Result<(), Refused> {
        if !self.fenced.remove(&broker) {
            return Err(Refused(format!("broker {broker} is not fenced")));
        }
        Ok(())
    }

    fn elect(&mut self, broker: BrokerId, unclean: bool) -> Result<(), Refused> {
        if self.leader != NO_BROKER {
            return Err(Refused(format!("broker {} already leads", self.leader)));
        }
        let (is_unclean, candidates) = self.candidates(NO_BROKER);
        if !candidates.contains(&broker) || is_unclean != unclean {
            return Err(Refused(format!(
                "broker {broker} is not eligible (candidates {candidates:?}, unclean {is_unclean})"
            )));
        }
        self.install_leader(broker, unclean);
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        Ok(())
    }

    fn move_leader(&mut self, to: BrokerId) -> Result<(), Refused> {
        if self.leader == NO_BROKER
            || self.leader == to
            || !self.isr.contains(&to)
            || self.fenced.contains(&to)
        {
            return Err(Refused(format!("cannot move leadership to broker {to}")));
        }
        self.leader = to;
        self.leader_epoch += 1;
        self.partition_epoch += 1;
        Ok(())
    }

    fn alter_partition(&mut self, p: &AlterPartitionProposal) -> AlterPartitionResponse {
        if p.leader_id != self.leader || p.leader_epoch != self.leader_epoch {
            return AlterPartitionResponse::Error(FENCED_LEADER_EPOCH);
        }
        if p.partition_epoch != self.partition_epoch {
            return AlterPartitionResponse::Error(INVALID_UPDATE_VERSION);
        }
        let proposed: BTreeSet<BrokerId> = p.new_isr.iter().map(|m| m.broker_id).collect();
        for m in p
            .new_isr
            .iter()
            .filter(|m| !self.isr.contains(&m.broker_id))
        {
            // KIP-841: never add a fenced replica; KIP-903: nor one whose broker epoch is
            // not its current registration.
            if self.fenced.contains(&m.broker_id)
                || self.broker_epochs.get(&m.broker_id) != Some(&m.broker_epoch)
            {
                return AlterPartitionResponse::Error(INELIGIBLE_REPLICA);
            }
        }
        let removed: BTreeSet<BrokerId> = self.isr.difference(&proposed).copied().collect();
        self.set_isr(proposed, &removed);
        self.partition_epoch += 1;
        AlterPartitionResponse::Committed {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: self.isr.iter().copied().collect(),
        }
    }

    fn view(&self) -> ControllerView {
        let ids = |s: &BTreeSet<BrokerId>| s.iter().map(|&b| b as u8).collect();
        ControllerView {
            leader: (self.leader != NO_BROKER).then_some(self.leader as u8),
            leader_epoch: self.leader_epoch as u8,
            partition_epoch: self.partition_epoch as u8,
            isr: ids(&self.isr),
            elr: ids(&self.elr),
            fenced: ids(&self.fenced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_broker::replication::IsrMember;

    fn member(broker_id: BrokerId, broker_epoch: i64) -> IsrMember {
        IsrMember {
            broker_id,
            broker_epoch,
        }
    }

    #[test]
    fn fencing_the_leader_elects_from_the_isr_then_the_elr() {
        let mut c = ModelRulesController::new(vec![0, 1, 2], 2, false);
        assert!(c.fence(0, None).is_err(), "ISR members are eligible");
        c.fence(0, Some(1)).unwrap();
        assert_eq!(c.view().isr, vec![1, 2]);
        assert_eq!(c.view().leader, Some(1));
        assert_eq!((c.leader_epoch, c.partition_epoch), (1, 1));
        c.fence(2, None).unwrap();
        // The ISR fell below min ISR: the broker that left is eligible (KIP-966).
        assert_eq!(c.view().elr, vec![2]);
        c.fence(1, None).unwrap();
        assert_eq!(c.view().leader, None);
        assert_eq!(c.view().elr, vec![1, 2]);
        assert!(c.elect(1, false).is_err(), "fenced");
        c.unfence(2).unwrap();
        c.elect(2, false).unwrap();
        assert_eq!(c.view().isr, vec![2]);
        assert_eq!(c.view().elr, vec![1]);
    }

    #[test]
    fn alter_partition_checks_epochs_fencing_and_broker_epochs() {
        let mut c = ModelRulesController::new(vec![0, 1, 2], 2, false);
        let shrink = AlterPartitionProposal {
            leader_id: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![member(0, 0), member(1, 0)],
        };
        assert!(matches!(
            c.alter_partition(&shrink),
            AlterPartitionResponse::Committed {
                partition_epoch: 1,
                ..
            }
        ));
        assert_eq!(
            c.alter_partition(&shrink),
            AlterPartitionResponse::Error(INVALID_UPDATE_VERSION)
        );
        c.register(2, 1, true);
        let stale = AlterPartitionProposal {
            partition_epoch: 1,
            new_isr: vec![member(0, 0), member(1, 0), member(2, 0)],
            ..shrink.clone()
        };
        assert_eq!(
            c.alter_partition(&stale),
            AlterPartitionResponse::Error(INELIGIBLE_REPLICA)
        );
        let fresh = AlterPartitionProposal {
            new_isr: vec![member(0, 0), member(1, 0), member(2, 1)],
            ..stale
        };
        assert!(matches!(
            c.alter_partition(&fresh),
            AlterPartitionResponse::Committed {
                partition_epoch: 2,
                ..
            }
        ));
    }

    #[test]
    fn an_unclean_shutdown_leaves_the_elr_at_registration() {
        let mut c = ModelRulesController::new(vec![0, 1, 2], 3, false);
        c.fence(1, None).unwrap();
        assert_eq!(c.view().elr, vec![1]);
        c.register(1, 1, false);
        assert!(c.view().elr.is_empty());
        assert_eq!(c.partition_epoch, 2);
    }
}
