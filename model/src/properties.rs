//! The properties the checker proves (always) and the witnesses it must find (sometimes),
//! named as in `specs/replication.md`.

use crate::replication::PartitionModel;
use crate::state::*;
use crate::types::*;
use stateright::{Expectation, Property};

/// Every acks=all record acknowledged to the producer is at its offset in the log of every
/// leader of that epoch or a later one.
pub fn no_committed_write_loss(m: &PartitionModel, s: &PartitionState) -> bool {
    s.ghost.records[..m.config.records as usize]
        .iter()
        .enumerate()
        .all(|(i, st)| match *st {
            RecordStatus::Acked {
                offset,
                epoch,
                acks_all: true,
            } => leaders_since(m, s, epoch)
                .all(|r| r.log.get(offset).map(|e| e.record) == Some(i as u8 + 1)),
            _ => true,
        })
}

/// A record that was ever below a leader's high watermark is never removed or changed: every
/// leader of that epoch or a later one holds it at its offset, and no other entry is ever
/// committed at that offset.
pub fn consumed_never_lost(m: &PartitionModel, s: &PartitionState) -> bool {
    !s.ghost.committed_conflict
        && s.ghost.committed.iter().enumerate().all(|(o, c)| match c {
            Some((entry, epoch)) => {
                leaders_since(m, s, *epoch).all(|r| r.log.get(o as Offset) == Some(*entry))
            }
            None => true,
        })
}

/// Two replicas that hold the same (offset, epoch) agree on every earlier record.
pub fn log_matching(m: &PartitionModel, s: &PartitionState) -> bool {
    let n = m.config.brokers as usize;
    for a in 0..n {
        for b in a + 1..n {
            let (la, lb) = (&s.brokers[a].log, &s.brokers[b].log);
            let common = la.end_offset().min(lb.end_offset());
            for o in (0..common).rev() {
                if la.get(o).map(|e| e.epoch) == lb.get(o).map(|e| e.epoch) {
                    if la.entries()[..=o as usize] != lb.entries()[..=o as usize] {
                        return false;
                    }
                    break;
                }
            }
        }
    }
    true
}

/// No two brokers lead in the same leader epoch.
pub fn at_most_one_leader_per_epoch(m: &PartitionModel, s: &PartitionState) -> bool {
    let n = m.config.brokers;
    (0..n).all(|a| {
        (a + 1..n).all(|b| {
            let (ra, rb) = (s.replica(a), s.replica(b));
            !(ra.is_leader(a) && rb.is_leader(b) && ra.leader_epoch == rb.leader_epoch)
        })
    })
}

/// Leader epochs only grow: along every log and every epoch cache, and no broker knows an
/// epoch newer than the controller's.
pub fn leader_epochs_monotonic(m: &PartitionModel, s: &PartitionState) -> bool {
    s.brokers[..m.config.brokers as usize].iter().all(|r| {
        r.leader_epoch <= s.controller.leader_epoch
            && r.log.entries().windows(2).all(|w| w[0].epoch <= w[1].epoch)
            && r.epoch_cache
                .entries()
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            && r.log
                .last()
                .is_none_or(|e| r.epoch_cache.latest_epoch().is_some_and(|c| c >= e.epoch))
    })
}

/// With unclean election off, the leader is always a member of the ISR.
pub fn leader_in_isr(m: &PartitionModel, s: &PartitionState) -> bool {
    let c = &s.controller;
    m.config.unclean_election() || c.leader == NO_BROKER || c.isr.contains(c.leader)
}

/// The ISR is a subset of the replicas, disjoint from the ELR, and non-empty while the
/// partition has a leader (KIP-966 lets it empty only while the partition is leaderless).
pub fn isr_valid(m: &PartitionModel, s: &PartitionState) -> bool {
    let c = &s.controller;
    let all = BrokerSet::all(m.config.brokers as usize);
    c.isr.is_subset(all)
        && c.elr.is_subset(all)
        && (c.isr.0 & c.elr.0) == 0
        && (c.leader == NO_BROKER || !c.isr.is_empty())
}

/// Every replica's high watermark is at most its log end offset.
pub fn high_watermark_below_log_end(m: &PartitionModel, s: &PartitionState) -> bool {
    s.brokers[..m.config.brokers as usize]
        .iter()
        .all(|r| r.high_watermark <= r.log_end_offset())
}

/// A replica whose log failed (`LogFails`) is never the partition's leader, and never in
/// the ISR or the ELR.
pub fn offline_log_never_leader(_: &PartitionModel, s: &PartitionState) -> bool {
    let c = &s.controller;
    (c.leader == NO_BROKER || !c.offline_logs.contains(c.leader))
        && (c.isr.0 & c.offline_logs.0) == 0
        && (c.elr.0 & c.offline_logs.0) == 0
}

/// Witness: an acks=all record is acknowledged.
pub fn record_committed(m: &PartitionModel, s: &PartitionState) -> bool {
    s.ghost.records[..m.config.records as usize]
        .iter()
        .any(|st| matches!(st, RecordStatus::Acked { acks_all: true, .. }))
}

/// Witness: a leader elected after a record was committed leads with that record.
pub fn failover_keeps_committed(m: &PartitionModel, s: &PartitionState) -> bool {
    s.ghost.committed.iter().enumerate().any(|(o, c)| match c {
        Some((entry, epoch)) => (0..m.config.brokers).any(|b| {
            let r = s.replica(b);
            r.is_leader(b) && r.leader_epoch > *epoch && r.log.get(o as Offset) == Some(*entry)
        }),
        None => false,
    })
}

/// Witness: the ISR shrank and expanded back to every replica, under the first leader.
pub fn isr_shrinks_and_expands(m: &PartitionModel, s: &PartitionState) -> bool {
    let c = &s.controller;
    c.leader_epoch == 0
        && c.partition_epoch >= 2
        && c.isr == BrokerSet::all(m.config.brokers as usize)
}

/// Witness: a follower truncated a tail that diverged from its leader.
pub fn follower_truncates_diverged_tail(_: &PartitionModel, s: &PartitionState) -> bool {
    s.ghost.truncated_diverged_tail
}

/// Leaders (in their own view, alive) whose epoch is `epoch` or later.
fn leaders_since<'a>(
    m: &'a PartitionModel,
    s: &'a PartitionState,
    epoch: Epoch,
) -> impl Iterator<Item = &'a Replica> + 'a {
    (0..m.config.brokers)
        .filter(move |b| s.replica(*b).is_leader(*b) && s.replica(*b).leader_epoch >= epoch)
        .map(move |b| s.replica(b))
}

/// The properties, in the order they are reported.
pub fn all() -> Vec<Property<PartitionModel>> {
    vec![
        Property::always("NoCommittedWriteLoss", no_committed_write_loss),
        Property::always("ConsumedNeverLost", consumed_never_lost),
        Property::always("LogMatching", log_matching),
        Property::always("AtMostOneLeaderPerEpoch", at_most_one_leader_per_epoch),
        Property::always("LeaderEpochsMonotonic", leader_epochs_monotonic),
        Property::always("LeaderInIsr", leader_in_isr),
        Property::always("IsrValid", isr_valid),
        Property::always("HighWatermarkBelowLogEnd", high_watermark_below_log_end),
        Property::always("OfflineLogNeverLeader", offline_log_never_leader),
        Property::sometimes("RecordCommitted", record_committed),
        Property::sometimes("FailoverKeepsCommitted", failover_keeps_committed),
        Property::sometimes("IsrShrinksAndExpands", isr_shrinks_and_expands),
        Property::sometimes(
            "FollowerTruncatesDivergedTail",
            follower_truncates_diverged_tail,
        ),
    ]
}

/// The expectation's name as printed and serialized.
pub fn expectation_name(e: &Expectation) -> &'static str {
    match e {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
        Expectation::Eventually => "eventually",
    }
}
