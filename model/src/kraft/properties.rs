//! The properties the checker proves (always) and the witnesses it must find (sometimes),
//! named as in `specs/kraft.md`.

use super::model::KraftModel;
use super::state::*;
use stateright::{Expectation, Property};

fn voters<'a>(m: &KraftModel, s: &'a KraftState) -> &'a [Voter] {
    &s.voters[..m.config.voters as usize]
}

/// No two voters ever became leader of the same epoch (ghost history), and no two alive
/// leaders share an epoch now.
pub fn at_most_one_leader_per_epoch(m: &KraftModel, s: &KraftState) -> bool {
    let vs = voters(m, s);
    !s.ghost.two_leaders_in_epoch
        && vs.iter().enumerate().all(|(a, va)| {
            vs[a + 1..]
                .iter()
                .all(|vb| !(va.is_leader() && vb.is_leader() && va.epoch == vb.epoch))
        })
}

/// Every leader's log holds every entry committed in its epoch or an earlier one, at its
/// offset (Raft's leader completeness).
pub fn leader_completeness(m: &KraftModel, s: &KraftState) -> bool {
    voters(m, s).iter().filter(|v| v.is_leader()).all(|l| {
        s.ghost.committed.iter().enumerate().all(|(o, c)| match c {
            Some((entry, epoch)) if *epoch <= l.epoch => l.log.get(o as Offset) == Some(*entry),
            _ => true,
        })
    })
}

/// Two voters whose logs hold an entry of the same epoch at the same offset agree on every
/// entry up to it (Raft's log matching).
pub fn log_matching(m: &KraftModel, s: &KraftState) -> bool {
    let vs = voters(m, s);
    vs.iter().enumerate().all(|(a, va)| {
        vs[a + 1..].iter().all(|vb| {
            let (la, lb) = (&va.log, &vb.log);
            let common = la.end_offset().min(lb.end_offset());
            (0..common)
                .rev()
                .find(|&o| la.get(o).map(|e| e.epoch) == lb.get(o).map(|e| e.epoch))
                .is_none_or(|o| la.entries()[..=o as usize] == lb.entries()[..=o as usize])
        })
    })
}

/// A committed entry is never replaced at its offset, and stays in the log of a majority of
/// voters (a crashed voter's log is what it flushed).
pub fn committed_record_never_lost(m: &KraftModel, s: &KraftState) -> bool {
    let vs = voters(m, s);
    !s.ghost.committed_conflict
        && s.ghost.committed.iter().enumerate().all(|(o, c)| match c {
            Some((entry, _)) => {
                vs.iter()
                    .filter(|v| v.log.get(o as Offset) == Some(*entry))
                    .count()
                    >= m.config.majority()
            }
            None => true,
        })
}

/// Every voter's high watermark is at most its log end offset.
pub fn high_watermark_below_log_end(m: &KraftModel, s: &KraftState) -> bool {
    voters(m, s)
        .iter()
        .all(|v| v.high_watermark <= v.log.end_offset())
}

/// A stable leader (one with a live majority of followers in its epoch) is never disrupted
/// by another voter's Vote or BeginQuorumEpoch: neither it nor a follower of that majority
/// moves to another epoch or role because of one (ghost flag set by `KraftModel::step`). A
/// voter cut off from the leader times out (timeouts fire at any time) and comes back; with
/// Pre-Vote it cannot raise the epoch, without it (`no-pre-vote`) it deposes the leader.
pub fn stable_leader_not_disrupted(_: &KraftModel, s: &KraftState) -> bool {
    !s.ghost.stable_leader_disrupted
}

/// Witness: some voter leads.
pub fn leader_elected(m: &KraftModel, s: &KraftState) -> bool {
    voters(m, s).iter().any(|v| v.is_leader())
}

/// Witness: a voter leads an epoch after another epoch had a leader.
pub fn leader_failover(m: &KraftModel, s: &KraftState) -> bool {
    voters(m, s).iter().any(|l| {
        l.is_leader()
            && s.ghost.leader_of_epoch[..l.epoch as usize]
                .iter()
                .any(|&v| v != NO_VOTER)
    })
}

/// Witness: a metadata record (not a LeaderChange record) is committed.
pub fn record_committed(_: &KraftModel, s: &KraftState) -> bool {
    s.ghost
        .committed
        .iter()
        .flatten()
        .any(|(e, _)| e.record != LEADER_CHANGE)
}

/// The properties, in the order they are reported.
pub fn all() -> Vec<Property<KraftModel>> {
    vec![
        Property::always("AtMostOneLeaderPerEpoch", at_most_one_leader_per_epoch),
        Property::always("LeaderCompleteness", leader_completeness),
        Property::always("LogMatching", log_matching),
        Property::always("CommittedRecordNeverLost", committed_record_never_lost),
        Property::always("HighWatermarkBelowLogEnd", high_watermark_below_log_end),
        Property::always("StableLeaderNotDisrupted", stable_leader_not_disrupted),
        Property::sometimes("LeaderElected", leader_elected),
        Property::sometimes("LeaderFailover", leader_failover),
        Property::sometimes("RecordCommitted", record_committed),
    ]
}

/// The always-properties that `s` violates.
pub fn violated(m: &KraftModel, s: &KraftState) -> Vec<String> {
    all()
        .into_iter()
        .filter(|p| p.expectation == Expectation::Always && !(p.condition)(m, s))
        .map(|p| p.name.to_string())
        .collect()
}
