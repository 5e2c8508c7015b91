//! Leader election and ISR/ELR bookkeeping for one partition: the model's
//! `election_candidates`, `set_isr` and `install_leader`, over a [`PartitionImage`].
//!
//! A [`PartitionChange`] starts as a copy of the partition's state, is edited with the model's
//! rules, and becomes a `PartitionChangeRecord` naming only what changed (or nothing at all).

use super::image::PartitionImage;
use super::records::{DirectoryId, LeaderRecoveryState, MetadataRecord, TopicId};
use crate::replication::{BrokerId, NO_BROKER};

/// The members of `set` in the partition's replica order (KRaft keeps ISR and ELR lists in
/// that order, and elections prefer earlier replicas).
pub fn in_replica_order(replicas: &[BrokerId], set: impl Fn(BrokerId) -> bool) -> Vec<BrokerId> {
    replicas.iter().copied().filter(|r| set(*r)).collect()
}

/// Who may lead when `excluding` loses leadership (the model's `election_candidates`): live
/// ISR members, else live ELR members (KIP-966), else, when unclean election is allowed, any
/// live replica. A replica whose log is offline ([`PartitionImage::is_log_offline`], the
/// model's `LogFails`) is never a candidate, not even for an unclean election: it has no log
/// to serve. Returns whether the election is unclean, and the candidates in replica order
/// (the first is elected).
pub fn election_candidates(
    p: &PartitionImage,
    is_live: impl Fn(BrokerId) -> bool,
    excluding: BrokerId,
    unclean_allowed: bool,
) -> (bool, Vec<BrokerId>) {
    let live = |b: BrokerId| b != excluding && is_live(b) && !p.is_log_offline(b);
    let isr = in_replica_order(&p.replicas, |b| p.isr.contains(&b) && live(b));
    if !isr.is_empty() {
        return (false, isr);
    }
    let elr = in_replica_order(&p.replicas, |b| p.elr.contains(&b) && live(b));
    if !elr.is_empty() {
        return (false, elr);
    }
    if unclean_allowed {
        let any = in_replica_order(&p.replicas, live);
        if !any.is_empty() {
            return (true, any);
        }
    }
    (false, Vec::new())
}

/// A partition's next state, built from its current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionChange {
    replicas: Vec<BrokerId>,
    min_isr: usize,
    pub isr: Vec<BrokerId>,
    pub elr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_recovery_state: LeaderRecoveryState,
    /// Whether ISR changes keep the ELR (KIP-966); off only under a test fault.
    pub elr_enabled: bool,
    /// Each replica's log directory in replica order (KIP-858; empty: all unassigned).
    pub directories: Vec<DirectoryId>,
}

impl PartitionChange {
    /// Starts from `p`, with the topic's effective `min.insync.replicas`.
    pub fn new(p: &PartitionImage, min_isr: usize) -> Self {
        PartitionChange {
            replicas: p.replicas.clone(),
            min_isr,
            isr: p.isr.clone(),
            elr: p.elr.clone(),
            leader: p.leader,
            leader_recovery_state: p.leader_recovery_state,
            elr_enabled: true,
            directories: p.directories.clone(),
        }
    }

    /// Records `replica`'s log directory (KIP-858's AssignReplicasToDirs).
    pub fn set_directory(&mut self, replica: BrokerId, dir: DirectoryId) {
        let Some(i) = self.replicas.iter().position(|r| *r == replica) else {
            return;
        };
        if self.directories.len() != self.replicas.len() {
            self.directories = vec![super::records::DIRECTORY_UNASSIGNED; self.replicas.len()];
        }
        self.directories[i] = dir;
    }

    /// The model's `set_isr` (KIP-966): replicas that leave an ISR smaller than
    /// min.insync.replicas become eligible leaders; the ELR empties once the ISR is large
    /// enough; an ISR member is never in the ELR.
    pub fn set_isr(&mut self, isr: &[BrokerId], removed: &[BrokerId]) {
        self.isr = in_replica_order(&self.replicas, |b| isr.contains(&b));
        if !self.elr_enabled {
            return;
        }
        if self.isr.len() >= self.min_isr {
            self.elr.clear();
        } else {
            let (old_elr, new_isr) = (&self.elr, &self.isr);
            self.elr = in_replica_order(&self.replicas, |b| {
                (old_elr.contains(&b) || removed.contains(&b)) && !new_isr.contains(&b)
            });
        }
    }

    /// The model's `install_leader`: a leader from the ELR or an unclean one starts an ISR of
    /// itself alone. An unclean leader also empties the ELR and starts `Recovering` (KIP-704).
    pub fn install_leader(&mut self, leader: BrokerId, unclean: bool) {
        self.leader = leader;
        if unclean {
            self.isr = vec![leader];
            self.elr.clear();
            self.leader_recovery_state = LeaderRecoveryState::Recovering;
        } else if !self.isr.contains(&leader) {
            self.elr.retain(|b| *b != leader);
            self.set_isr(&[leader], &[]);
        }
    }

    /// Elects the first candidate, or takes the partition offline when there is none.
    pub fn elect(&mut self, candidates: (bool, Vec<BrokerId>)) {
        match candidates.1.first() {
            Some(l) => self.install_leader(*l, candidates.0),
            None => self.leader = NO_BROKER,
        }
    }

    /// The record for this change, naming only the fields that differ from `old`; `None` when
    /// nothing changes.
    pub fn into_record(
        self,
        topic_id: TopicId,
        partition: i32,
        old: &PartitionImage,
    ) -> Option<MetadataRecord> {
        let isr = (self.isr != old.isr).then_some(self.isr);
        let elr = (self.elr != old.elr).then_some(self.elr);
        let leader = (self.leader != old.leader).then_some(self.leader);
        let leader_recovery_state = (self.leader_recovery_state != old.leader_recovery_state)
            .then_some(self.leader_recovery_state);
        let directories = {
            let unassigned =
                |d: &[DirectoryId]| d.iter().all(|x| *x == super::records::DIRECTORY_UNASSIGNED);
            let same = self.directories == old.directories
                || (unassigned(&self.directories) && unassigned(&old.directories));
            (!same).then_some(self.directories)
        };
        if isr.is_none()
            && elr.is_none()
            && leader.is_none()
            && leader_recovery_state.is_none()
            && directories.is_none()
        {
            return None;
        }
        Some(MetadataRecord::PartitionChange {
            topic_id,
            partition,
            isr,
            elr,
            leader,
            leader_recovery_state,
            directories,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(isr: &[i32], elr: &[i32], leader: i32) -> PartitionImage {
        PartitionImage {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            elr: elr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            directories: vec![],
        }
    }

    #[test]
    fn candidates_prefer_isr_then_elr_then_unclean() {
        let all = |_| true;
        assert_eq!(
            election_candidates(&part(&[1, 3], &[], 1), all, 1, false),
            (false, vec![3])
        );
        assert_eq!(
            election_candidates(&part(&[1], &[2], 1), all, 1, true),
            (false, vec![2])
        );
        assert_eq!(
            election_candidates(&part(&[1], &[], 1), all, 1, true),
            (true, vec![2, 3])
        );
        assert_eq!(
            election_candidates(&part(&[1], &[], 1), all, 1, false),
            (false, vec![])
        );
        // Fenced brokers are never candidates.
        let live = |b| b == 3;
        assert_eq!(
            election_candidates(&part(&[], &[2], -1), live, -1, false),
            (false, vec![])
        );
        assert_eq!(
            election_candidates(&part(&[], &[2], -1), live, -1, true),
            (true, vec![3])
        );
    }

    #[test]
    fn shrinking_below_min_isr_fills_the_elr_and_growing_empties_it() {
        let p = part(&[1, 2, 3], &[], 1);
        let mut c = PartitionChange::new(&p, 2);
        c.set_isr(&[1, 2], &[3]);
        assert_eq!((c.isr.clone(), c.elr.clone()), (vec![1, 2], vec![]));
        c.set_isr(&[1], &[2]);
        assert_eq!((c.isr.clone(), c.elr.clone()), (vec![1], vec![2]));
        c.set_isr(&[], &[1]);
        assert_eq!((c.isr.clone(), c.elr.clone()), (vec![], vec![1, 2]));
        c.set_isr(&[2], &[]);
        assert_eq!((c.isr.clone(), c.elr.clone()), (vec![2], vec![1]));
        c.set_isr(&[2, 3], &[]);
        assert_eq!((c.isr.clone(), c.elr.clone()), (vec![2, 3], vec![]));
    }

    #[test]
    fn an_elr_or_unclean_leader_starts_an_isr_of_itself() {
        let p = part(&[], &[2, 3], -1);
        let mut c = PartitionChange::new(&p, 2);
        c.install_leader(3, false);
        assert_eq!(
            (c.leader, c.isr.clone(), c.elr.clone()),
            (3, vec![3], vec![2])
        );
        let mut u = PartitionChange::new(&p, 2);
        u.install_leader(1, true);
        assert_eq!((u.isr.clone(), u.elr.clone()), (vec![1], vec![]));
        assert_eq!(u.leader_recovery_state, LeaderRecoveryState::Recovering);
        let rec = u.into_record([1; 16], 0, &p).unwrap();
        let MetadataRecord::PartitionChange { leader, isr, .. } = rec else {
            panic!("{rec:?}");
        };
        assert_eq!((leader, isr), (Some(1), Some(vec![1])));
    }

    #[test]
    fn no_change_no_record() {
        let p = part(&[1, 2], &[], 1);
        assert_eq!(
            PartitionChange::new(&p, 1).into_record([1; 16], 0, &p),
            None
        );
        let mut c = PartitionChange::new(&p, 1);
        c.elect((false, vec![]));
        let rec = c.into_record([1; 16], 0, &p).unwrap();
        assert!(matches!(
            rec,
            MetadataRecord::PartitionChange {
                leader: Some(-1),
                isr: None,
                elr: None,
                ..
            }
        ));
    }

    #[test]
    fn a_replica_with_an_offline_log_is_never_a_candidate() {
        let all = |_| true;
        let mut p = part(&[1, 2, 3], &[], 1);
        let mut c = PartitionChange::new(&p, 1);
        c.set_directory(2, super::super::records::DIRECTORY_LOST);
        p.directories = c.directories.clone();
        assert_eq!(election_candidates(&p, all, 1, false), (false, vec![3]));
        // Not from the ELR, not even unclean.
        let mut q = part(&[1], &[2], 1);
        q.directories = p.directories.clone();
        assert_eq!(election_candidates(&q, all, 1, false), (false, vec![]));
        assert_eq!(election_candidates(&q, all, 1, true), (true, vec![3]));
    }
}
