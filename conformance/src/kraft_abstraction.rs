//! The abstraction of the KRaft replay: the one function from the quorum core's state (and
//! the log its driver keeps) to the model's [`KraftStateView`], and a field-by-field diff.
//!
//! What is read where, per voter:
//! * `role`, `epoch`, `voted_for`, `leader`, `high_watermark`: the [`QuorumCore`]'s
//!   accessors while the voter is up. While it is down there is no core: the view shows the
//!   quorum state last persisted (the model's durable epoch, vote and leader) and a high
//!   watermark of 0 (the model's crash clears it; the core keeps it in memory only).
//! * `log`: the entries the driver stored, as `(record id, epoch)`; record 0 is the
//!   LeaderChange control record. The core only keeps a [`LogSummary`] of epochs and
//!   offsets, so the view also checks that the summary describes the stored log: a core
//!   that miscounts its own log is reported even when the stored entries are right.
//! * `log_end_offset`, `flushed_offset`: the core's summary while up; the stored log and
//!   its flushed mark while down.
//! * `committed`: the replay's ghost, the same as the model's: every entry below a leader's
//!   high watermark when the leader published it (`Effect::HighWatermark`), the first
//!   committed entry per offset.

use osprey_broker::quorum::{LogSummary, QuorumCore, QuorumState, ReplicaId, Role};
use osprey_model::kraft::trace::{KraftStateView, VoterRole, VoterView};

/// One stored entry: (record id, epoch of the leader that appended it).
pub type StoredEntry = (u8, i32);

/// A voter of the replay: its core while it is up, and what survives a crash.
#[derive(Clone, Debug)]
pub struct VoterSlot {
    /// The core; `None` while the voter is down (its volatile state is gone).
    pub core: Option<QuorumCore>,
    /// The metadata log the driver keeps for the core.
    pub log: Vec<StoredEntry>,
    /// How much of `log` is on disk.
    pub flushed: usize,
    /// The quorum state last persisted (`Effect::PersistQuorumState`).
    pub durable: QuorumState,
}

impl VoterSlot {
    /// The epoch cache of the stored log: `(epoch, start offset)` where each epoch begins.
    pub fn epochs(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = Vec::new();
        for (o, &(_, e)) in self.log.iter().enumerate() {
            if out.last().is_none_or(|&(last, _)| last != e) {
                out.push((e, o as i64));
            }
        }
        out
    }

    /// The summary a restarting core reads from the stored log.
    pub fn summary(&self) -> LogSummary {
        LogSummary::new(self.epochs(), self.log.len() as i64, self.flushed as i64)
    }
}

fn small<T: TryInto<u8> + Copy + std::fmt::Display>(what: &str, v: T) -> Result<u8, String> {
    v.try_into()
        .map_err(|_| format!("{what} {v} is outside the model's range"))
}

fn id(what: &str, v: Option<ReplicaId>) -> Result<Option<u8>, String> {
    v.map(|v| small(what, v)).transpose()
}

/// Voter `id`'s view, or why the core's state cannot be read as the model's.
pub fn voter_view(voter: u8, slot: &VoterSlot) -> Result<VoterView, String> {
    let log = slot
        .log
        .iter()
        .map(|&(r, e)| Ok((r, small("log epoch", e)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let Some(core) = &slot.core else {
        return Ok(VoterView {
            id: voter,
            role: VoterRole::Down,
            epoch: small("epoch", slot.durable.epoch)?,
            voted_for: id("voted_for", slot.durable.voted_for)?,
            leader: id("leader", slot.durable.leader)?,
            log_end_offset: small("log end offset", slot.log.len())?,
            log,
            high_watermark: 0,
            flushed_offset: small("flushed offset", slot.flushed)?,
        });
    };
    let summary = core.log();
    if summary.end_offset() != slot.log.len() as i64 || summary.epochs() != slot.epochs() {
        return Err(format!(
            "voter {voter}: the core's log summary (end offset {}, epochs {:?}) does not describe its stored log {:?}",
            summary.end_offset(),
            summary.epochs(),
            slot.log
        ));
    }
    Ok(VoterView {
        id: voter,
        role: match core.role() {
            Role::Unattached => VoterRole::Unattached,
            Role::Voted => VoterRole::Voted,
            Role::Candidate => VoterRole::Candidate,
            Role::Leader => VoterRole::Leader,
            Role::Follower => VoterRole::Follower,
            Role::Resigned => VoterRole::Resigned,
            Role::Prospective => VoterRole::Prospective,
        },
        epoch: small("epoch", core.epoch())?,
        voted_for: id("voted_for", core.voted_for())?,
        leader: id("leader", core.leader())?,
        log,
        log_end_offset: small("log end offset", summary.end_offset())?,
        high_watermark: small("high watermark", core.high_watermark())?,
        flushed_offset: small("flushed offset", summary.flushed())?,
    })
}

/// The quorum's view: every voter's, and the committed prefix.
pub fn state_view(
    voters: &[VoterSlot],
    committed: &[Option<StoredEntry>],
) -> Result<KraftStateView, String> {
    let voters = voters
        .iter()
        .enumerate()
        .map(|(i, s)| voter_view(small("voter id", i)?, s))
        .collect::<Result<Vec<_>, String>>()?;
    let committed = committed
        .iter()
        .map_while(|c| *c)
        .map(|(r, e)| Ok((r, small("committed epoch", e)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(KraftStateView { voters, committed })
}

/// Field-by-field differences between the model's view and the core's, one line each
/// (`voter 1 role: model Voted, core Unattached`). Empty when they agree.
pub fn diff(model: &KraftStateView, core: &KraftStateView) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: String, m: String, c: String| {
        if m != c {
            out.push(format!("{what}: model {m}, core {c}"));
        }
    };
    for (m, c) in model.voters.iter().zip(&core.voters) {
        let p = format!("voter {}", m.id);
        field(format!("{p} role"), fmt(&m.role), fmt(&c.role));
        field(format!("{p} epoch"), fmt(&m.epoch), fmt(&c.epoch));
        field(
            format!("{p} voted_for"),
            fmt(&m.voted_for),
            fmt(&c.voted_for),
        );
        field(format!("{p} leader"), fmt(&m.leader), fmt(&c.leader));
        field(format!("{p} log"), fmt(&m.log), fmt(&c.log));
        field(
            format!("{p} log_end_offset"),
            fmt(&m.log_end_offset),
            fmt(&c.log_end_offset),
        );
        field(
            format!("{p} high_watermark"),
            fmt(&m.high_watermark),
            fmt(&c.high_watermark),
        );
        field(
            format!("{p} flushed_offset"),
            fmt(&m.flushed_offset),
            fmt(&c.flushed_offset),
        );
    }
    field(
        "voters".into(),
        model.voters.len().to_string(),
        core.voters.len().to_string(),
    );
    field(
        "committed".into(),
        fmt(&model.committed),
        fmt(&core.committed),
    );
    out
}

fn fmt(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(log: Vec<StoredEntry>) -> VoterSlot {
        VoterSlot {
            core: None,
            flushed: log.len(),
            log,
            durable: QuorumState {
                epoch: 2,
                voted_for: Some(1),
                leader: None,
            },
        }
    }

    #[test]
    fn the_epoch_cache_starts_each_epoch_where_its_first_entry_is() {
        let s = slot(vec![(0, 1), (1, 1), (0, 2), (2, 2), (0, 4)]);
        assert_eq!(s.epochs(), vec![(1, 0), (2, 2), (4, 4)]);
        assert_eq!(s.summary().end_offset_for_epoch(3), (2, 4));
    }

    #[test]
    fn a_down_voter_shows_its_durable_quorum_state_and_what_it_flushed() {
        let v = voter_view(1, &slot(vec![(0, 1)])).unwrap();
        assert_eq!(v.role, VoterRole::Down);
        assert_eq!((v.epoch, v.voted_for, v.leader), (2, Some(1), None));
        assert_eq!((v.log.clone(), v.log_end_offset), (vec![(0, 1)], 1));
        assert_eq!(v.high_watermark, 0);
    }

    #[test]
    fn a_core_whose_summary_disagrees_with_its_log_is_reported() {
        let mut s = slot(vec![(0, 1)]);
        s.core = Some(QuorumCore::restart(
            1,
            vec![0, 1, 2],
            s.durable,
            LogSummary::default(),
        ));
        let err = voter_view(1, &s).unwrap_err();
        assert!(err.contains("does not describe its stored log"), "{err}");
        s.core = Some(QuorumCore::restart(
            1,
            vec![0, 1, 2],
            s.durable,
            s.summary(),
        ));
        let v = voter_view(1, &s).unwrap();
        // Its durable vote is for itself: it stands again in epoch 2.
        assert_eq!((v.role, v.epoch), (VoterRole::Candidate, 2));
        assert_eq!(v.log_end_offset, 1);
    }

    #[test]
    fn the_diff_names_each_differing_field() {
        let a = state_view(&[slot(vec![(0, 1)])], &[Some((0, 1)), None]).unwrap();
        let mut b = a.clone();
        assert!(diff(&a, &b).is_empty());
        b.voters[0].epoch = 3;
        b.committed.clear();
        let d = diff(&a, &b);
        assert_eq!(
            d,
            vec![
                "voter 0 epoch: model 2, core 3".to_string(),
                "committed: model [(0, 1)], core []".to_string()
            ]
        );
    }
}
