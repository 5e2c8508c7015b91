//! One test per transition, mirroring the model's unit tests.

use super::*;
use crate::error_codes as codes;

/// A voter of {1, 2, 3} with KIP-595's transitions alone (a timeout starts an election):
/// the tests of those transitions use it. The Pre-Vote tests use [`pv_voter`].
fn voter(id: ReplicaId) -> QuorumCore {
    let mut c = QuorumCore::restart(
        id,
        vec![1, 2, 3],
        QuorumState::default(),
        LogSummary::default(),
    )
    .with_pre_vote(false);
    c.take_effects();
    c
}

/// A voter of {1, 2, 3} with Pre-Vote (KIP-996), the default.
fn pv_voter(id: ReplicaId) -> QuorumCore {
    let mut c = QuorumCore::restart(
        id,
        vec![1, 2, 3],
        QuorumState::default(),
        LogSummary::default(),
    );
    c.take_effects();
    c
}

fn sends(effects: &[Effect]) -> Vec<(ReplicaId, Request)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(to, r) => Some((*to, *r)),
            _ => None,
        })
        .collect()
}

/// Voter 1 leads epoch 1 with voter 2's vote; voter 2 follows it. Returns (1, 2, 3).
fn elected() -> (QuorumCore, QuorumCore, QuorumCore) {
    let (mut a, mut b, c) = (voter(1), voter(2), voter(3));
    a.timeout();
    let effects = a.take_effects();
    let Some((_, Request::Vote(req))) = sends(&effects).first().copied() else {
        panic!("no vote request in {effects:?}");
    };
    let resp = b.handle_vote(req);
    assert!(resp.vote_granted);
    b.take_effects();
    a.handle_vote_response(2, resp);
    assert_eq!(a.role(), Role::Leader);
    a.flushed(a.log().end_offset());
    a.take_effects();
    b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 1,
    });
    b.take_effects();
    (a, b, c)
}

/// One Fetch round trip from `f` to the leader `l`, with `l`'s batches of one record each.
fn fetch_round(l: &mut QuorumCore, f: &mut QuorumCore) {
    let (_, req) = f.fetch_request().expect("a follower");
    let answer = l.handle_fetch(req);
    let resp = answer
        .into_response(&req, |from, to| {
            Ok::<_, ()>(
                (from..to)
                    .map(|o| Batch {
                        base_offset: o,
                        last_offset: o,
                        epoch: l.log().epoch_at(o).unwrap(),
                        data: bytes::Bytes::new(),
                    })
                    .collect(),
            )
        })
        .unwrap();
    f.handle_fetch_response(resp);
    f.flushed(f.log().end_offset());
}

#[test]
fn timeout_starts_an_election_and_persists_the_self_vote_first() {
    let mut a = voter(1);
    a.timeout();
    assert_eq!(a.role(), Role::Candidate);
    assert_eq!((a.epoch(), a.voted_for()), (1, Some(1)));
    let effects = a.take_effects();
    assert_eq!(
        effects[0],
        Effect::PersistQuorumState(QuorumState {
            epoch: 1,
            voted_for: Some(1),
            leader: None
        })
    );
    assert_eq!(
        sends(&effects)
            .iter()
            .map(|(to, _)| *to)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
}

#[test]
fn a_voter_grants_one_vote_per_epoch() {
    let (mut a, mut b, mut c) = (voter(1), voter(2), voter(3));
    a.timeout();
    b.timeout();
    let req_a = VoteRequest {
        pre_vote: false,
        candidate_epoch: 1,
        candidate_id: 1,
        last_epoch: 0,
        end_offset: 0,
    };
    let r = c.handle_vote(req_a);
    assert!(r.vote_granted);
    assert_eq!(c.role(), Role::Voted);
    assert!(matches!(
        c.take_effects()[..],
        [Effect::PersistQuorumState(_), ..]
    ));
    // Again for the same candidate: still granted; for another: refused.
    assert!(c.handle_vote(req_a).vote_granted);
    let req_b = VoteRequest {
        candidate_id: 2,
        ..req_a
    };
    assert!(!c.handle_vote(req_b).vote_granted);
    // A candidate does not vote for another candidate of its epoch.
    assert!(!a.handle_vote(req_b).vote_granted);
    // An older epoch is fenced.
    let mut d = voter(3);
    d.timeout();
    d.timeout();
    let r = d.handle_vote(req_a);
    assert_eq!(r.error_code, codes::FENCED_LEADER_EPOCH);
    assert_eq!(r.epoch, 2);
}

#[test]
fn a_vote_needs_a_log_at_least_as_up_to_date() {
    let (mut a, mut b, mut c) = elected();
    a.append(1).unwrap();
    a.flushed(a.log().end_offset());
    fetch_round(&mut a, &mut b);
    assert_eq!(b.log().end_offset(), 2);
    // Voter 3 never saw epoch 1's log; its candidacy in epoch 2 is refused by voter 2,
    // which still moves to epoch 2.
    c.timeout();
    c.timeout();
    let r = b.handle_vote(VoteRequest {
        pre_vote: false,
        candidate_epoch: 2,
        candidate_id: 3,
        last_epoch: 0,
        end_offset: 0,
    });
    assert!(!r.vote_granted);
    assert_eq!((b.epoch(), b.role()), (2, Role::Unattached));
    // Last epochs compare first, then end offsets.
    assert!(b.log_up_to_date(2, 1));
    assert!(!b.log_up_to_date(1, 1));
    assert!(b.log_up_to_date(1, 2));
}

#[test]
fn become_leader_appends_a_leader_change_and_begins_the_epoch() {
    let (mut a, mut b, _) = (voter(1), voter(2), voter(3));
    a.timeout();
    a.take_effects();
    let req = VoteRequest {
        pre_vote: false,
        candidate_epoch: 1,
        candidate_id: 1,
        last_epoch: 0,
        end_offset: 0,
    };
    a.handle_vote_response(2, b.handle_vote(req));
    assert!(a.is_leader());
    let effects = a.take_effects();
    assert!(effects.contains(&Effect::AppendLeaderChange {
        offset: 0,
        epoch: 1
    }));
    assert!(effects.contains(&Effect::Send(
        3,
        Request::BeginQuorumEpoch(EpochRequest {
            leader_id: 1,
            leader_epoch: 1
        })
    )));
    // A single-voter quorum elects itself on its first timeout.
    let mut solo = QuorumCore::restart(7, vec![7], QuorumState::default(), LogSummary::default())
        .with_pre_vote(false);
    assert_eq!(solo.take_effects(), vec![Effect::SetTimer(Timer::Backoff)]);
    solo.timeout();
    assert!(solo.is_leader());
    solo.flushed(1);
    assert_eq!(solo.high_watermark(), 1);
}

#[test]
fn begin_quorum_epoch_makes_a_follower() {
    let mut b = voter(2);
    let r = b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 3,
        leader_epoch: 4,
    });
    assert_eq!(r.error_code, 0);
    assert_eq!(
        (b.role(), b.epoch(), b.leader()),
        (Role::Follower, 4, Some(3))
    );
    let effects = b.take_effects();
    assert_eq!(
        effects,
        vec![
            Effect::PersistQuorumState(QuorumState {
                epoch: 4,
                voted_for: None,
                leader: Some(3)
            }),
            Effect::SetTimer(Timer::Fetch)
        ]
    );
    let stale = b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 3,
    });
    assert_eq!(stale.error_code, codes::FENCED_LEADER_EPOCH);
    assert_eq!(b.leader(), Some(3));
}

#[test]
fn the_high_watermark_advances_by_majority() {
    let (mut a, mut b, _) = elected();
    a.append(1).unwrap();
    a.flushed(2);
    // The leader alone is not a majority of 3.
    assert_eq!(a.high_watermark(), 0);
    fetch_round(&mut a, &mut b);
    // The fetch at offset 0 told the leader nothing it did not know.
    assert_eq!(a.high_watermark(), 0);
    fetch_round(&mut a, &mut b);
    assert_eq!(a.high_watermark(), 2);
    assert!(a.take_effects().contains(&Effect::HighWatermark(2)));
    // The answer to the fetch that advanced it already carries it.
    assert_eq!(b.high_watermark(), 2);
    // The leader counts only what it has flushed.
    a.append(1).unwrap();
    fetch_round(&mut a, &mut b);
    fetch_round(&mut a, &mut b);
    assert_eq!(a.high_watermark(), 2);
    a.flushed(3);
    assert_eq!(a.high_watermark(), 3);
}

#[test]
fn the_high_watermark_waits_for_an_entry_of_the_current_epoch() {
    // Voter 1 leads epoch 3 with an old entry of epoch 1 that voter 2 also holds.
    let old = LogSummary::new(vec![(1, 0)], 1, 1);
    let mut a = QuorumCore::restart(1, vec![1, 2, 3], QuorumState::default(), old.clone())
        .with_pre_vote(false);
    let mut b =
        QuorumCore::restart(2, vec![1, 2, 3], QuorumState::default(), old).with_pre_vote(false);
    a.timeout();
    a.timeout();
    a.timeout();
    let req = VoteRequest {
        pre_vote: false,
        candidate_epoch: 3,
        candidate_id: 1,
        last_epoch: 1,
        end_offset: 1,
    };
    a.handle_vote_response(2, b.handle_vote(req));
    assert!(a.is_leader());
    // Not flushed yet: the LeaderChange entry of epoch 3 is at offset 1.
    b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 3,
    });
    fetch_round(&mut a, &mut b);
    // A majority holds offset 0 but its entry is of epoch 1, not 3.
    assert_eq!(a.high_watermark(), 0);
    a.flushed(2);
    fetch_round(&mut a, &mut b);
    assert_eq!(a.high_watermark(), 2);
}

#[test]
fn a_follower_truncates_on_a_diverging_epoch() {
    // Voter 2 holds two entries of epoch 1 that the leader of epoch 2 never had.
    let mut a = QuorumCore::restart(
        1,
        vec![1, 2, 3],
        QuorumState {
            epoch: 1,
            voted_for: Some(1),
            leader: None,
        },
        LogSummary::default(),
    )
    .with_pre_vote(false);
    let mut b = QuorumCore::restart(
        2,
        vec![1, 2, 3],
        QuorumState::default(),
        LogSummary::new(vec![(1, 0)], 2, 2),
    )
    .with_pre_vote(false);
    a.timeout();
    let mut c = voter(3);
    a.handle_vote_response(
        3,
        c.handle_vote(VoteRequest {
            pre_vote: false,
            candidate_epoch: 2,
            candidate_id: 1,
            last_epoch: 0,
            end_offset: 0,
        }),
    );
    assert!(a.is_leader());
    a.flushed(1);
    a.take_effects();
    b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 2,
    });
    b.take_effects();
    let (_, req) = b.fetch_request().unwrap();
    assert!(matches!(
        a.handle_fetch(req),
        FetchAnswer::DivergingEpoch {
            diverging_epoch: 0,
            end_offset: 0,
            ..
        }
    ));
    fetch_round(&mut a, &mut b);
    assert!(b.take_effects().contains(&Effect::Truncate(0)));
    assert_eq!(b.log().end_offset(), 0);
    fetch_round(&mut a, &mut b);
    assert_eq!(b.log(), a.log());
}

#[test]
fn fetches_from_stale_or_unknown_epochs_and_observers() {
    let (mut a, _, _) = elected();
    let stale = FetchRequest {
        replica_id: 3,
        epoch: 0,
        fetch_offset: 0,
        last_fetched_epoch: 0,
    };
    assert!(matches!(
        a.handle_fetch(stale),
        FetchAnswer::Error {
            code: codes::FENCED_LEADER_EPOCH,
            epoch: 1,
            leader: Some(1)
        }
    ));
    let ahead = FetchRequest { epoch: 2, ..stale };
    assert!(matches!(
        a.handle_fetch(ahead),
        FetchAnswer::Error {
            code: codes::UNKNOWN_LEADER_EPOCH,
            ..
        }
    ));
    // An observer (a broker) reads only to the high watermark, and does not count.
    let observer = FetchRequest {
        replica_id: -1,
        epoch: -1,
        ..stale
    };
    assert!(matches!(
        a.handle_fetch(observer),
        FetchAnswer::Records {
            from_offset: 0,
            up_to: 0,
            ..
        }
    ));
    // A non-leader refuses and names the leader it knows.
    let mut b = voter(2);
    b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 1,
    });
    assert!(matches!(
        b.handle_fetch(observer),
        FetchAnswer::Error {
            code: codes::NOT_LEADER_OR_FOLLOWER,
            leader: Some(1),
            ..
        }
    ));
}

#[test]
fn a_higher_epoch_deposes_the_leader() {
    let (mut a, _, _) = elected();
    let r = a.handle_vote(VoteRequest {
        pre_vote: false,
        candidate_epoch: 5,
        candidate_id: 3,
        last_epoch: 1,
        end_offset: 1,
    });
    assert!(r.vote_granted);
    assert_eq!(
        (a.role(), a.epoch(), a.voted_for()),
        (Role::Voted, 5, Some(3))
    );
    assert!(a.append(1).is_err());
}

#[test]
fn resign_sends_end_quorum_epoch_and_followers_back_off() {
    let (mut a, mut b, _) = elected();
    a.resign();
    assert_eq!(a.role(), Role::Resigned);
    let effects = a.take_effects();
    let Some((2, Request::EndQuorumEpoch(req))) = sends(&effects).first().copied() else {
        panic!("no EndQuorumEpoch in {effects:?}");
    };
    b.handle_end_quorum_epoch(req);
    assert_eq!(b.take_effects(), vec![Effect::SetTimer(Timer::Backoff)]);
}

#[test]
fn restart_takes_the_role_from_the_quorum_state() {
    let state = |voted_for, leader| QuorumState {
        epoch: 3,
        voted_for,
        leader,
    };
    let role = |s| {
        QuorumCore::restart(1, vec![1, 2, 3], s, LogSummary::default())
            .with_pre_vote(false)
            .role()
    };
    assert_eq!(role(state(Some(1), Some(1))), Role::Resigned);
    assert_eq!(role(state(None, Some(2))), Role::Follower);
    assert_eq!(role(state(Some(1), None)), Role::Candidate);
    assert_eq!(role(state(Some(2), None)), Role::Voted);
    assert_eq!(role(state(None, None)), Role::Unattached);
    let follower = QuorumCore::restart(
        1,
        vec![1, 2, 3],
        state(None, Some(2)),
        LogSummary::default(),
    )
    .with_pre_vote(false);
    assert_eq!(follower.fetch_request().unwrap().0, 2);
    assert_eq!(follower.high_watermark(), 0);
}

#[test]
fn a_late_fetch_answer_for_an_older_log_is_dropped() {
    let (mut a, mut b, _) = elected();
    a.append(1).unwrap();
    a.flushed(2);
    // Two fetches from offset 0 are in flight (a retry after a reconnect).
    let (_, first) = b.fetch_request().unwrap();
    let (_, second) = b.fetch_request().unwrap();
    assert_eq!(first, second);
    let answer = |l: &mut QuorumCore, req: FetchRequest| {
        let answer = l.handle_fetch(req);
        assert!(matches!(answer, FetchAnswer::Records { .. }), "{answer:?}");
        answer
            .into_response(&req, |from, to| {
                Ok::<_, ()>(
                    (from..to)
                        .map(|o| Batch {
                            base_offset: o,
                            last_offset: o,
                            epoch: 1,
                            data: bytes::Bytes::new(),
                        })
                        .collect(),
                )
            })
            .unwrap()
    };
    let r1 = answer(&mut a, first);
    let r2 = answer(&mut a, second);
    b.handle_fetch_response(r1);
    assert_eq!(b.log().end_offset(), 2);
    b.take_effects();
    // The duplicate answers a log of length 0 that b no longer has: nothing happens.
    b.handle_fetch_response(r2);
    assert!(b.take_effects().is_empty());
    assert_eq!(b.log().end_offset(), 2);
    // A follower with an unflushed tail does not fetch until it is durable.
    let mut c = QuorumCore::restart(
        3,
        vec![1, 2, 3],
        QuorumState {
            epoch: 1,
            voted_for: None,
            leader: Some(1),
        },
        LogSummary::new(vec![(1, 0)], 2, 1),
    )
    .with_pre_vote(false);
    assert!(c.fetch_request().is_none());
    c.flushed(2);
    assert_eq!(c.fetch_request().unwrap().1.fetch_offset, 2);
}

#[test]
fn check_quorum_resigns_a_leader_no_majority_fetches_from() {
    let (mut a, mut b, _) = elected();
    a.take_effects();
    // The first check only opens an interval.
    a.check_quorum();
    assert!(a.is_leader());
    // Voter 2 fetches: with the leader that is a majority of 3.
    fetch_round(&mut a, &mut b);
    a.check_quorum();
    assert!(a.is_leader());
    // Nobody fetches for a whole interval: the leader resigns and says so.
    a.take_effects();
    a.check_quorum();
    assert_eq!(a.role(), Role::Resigned);
    assert_eq!(sends(&a.take_effects()).len(), 2);
    // A quorum of one never resigns.
    let mut solo = QuorumCore::restart(7, vec![7], QuorumState::default(), LogSummary::default())
        .with_pre_vote(false);
    solo.timeout();
    solo.check_quorum();
    solo.check_quorum();
    assert!(solo.is_leader());
}

#[test]
fn a_restarted_candidate_asks_for_votes_again_in_its_epoch() {
    let mut log = LogSummary::default();
    log.append(1, 2);
    let mut c = QuorumCore::restart(
        1,
        vec![1, 2, 3],
        QuorumState {
            epoch: 2,
            voted_for: Some(1),
            leader: None,
        },
        log,
    )
    .with_pre_vote(false);
    assert_eq!(c.role(), Role::Candidate);
    let expected = VoteRequest {
        pre_vote: false,
        candidate_epoch: 2,
        candidate_id: 1,
        last_epoch: 1,
        end_offset: 2,
    };
    assert_eq!(
        sends(&c.take_effects()),
        vec![(2, Request::Vote(expected)), (3, Request::Vote(expected))]
    );
    // Voter 2 grants: only voter 3 is asked again; with the majority it leads epoch 2.
    let mut b = voter(2);
    let resp = b.handle_vote(expected);
    assert!(resp.vote_granted);
    c.send_vote_requests();
    assert_eq!(sends(&c.take_effects()).len(), 2);
    c.handle_vote_response(2, resp);
    assert_eq!((c.role(), c.epoch()), (Role::Leader, 2));
    c.take_effects();
    c.send_vote_requests();
    assert!(sends(&c.take_effects()).is_empty());
}

// -----------------------------------------------------------------------------------------
// Snapshots (KIP-630)

/// Voter 1 leads epoch 1; voter 2 follows and has fetched; the leader has appended
/// `records` more entries, committed with voter 2, snapshotted at its high watermark and
/// deleted its log below `delete_below`. Voter 3 has nothing.
fn leader_with_snapshot(records: i64, delete_below: i64) -> (QuorumCore, QuorumCore, QuorumCore) {
    let (mut a, mut b, c) = elected();
    for _ in 0..records {
        a.append(1).unwrap();
        a.flushed(a.log().end_offset());
    }
    fetch_round(&mut a, &mut b);
    fetch_round(&mut a, &mut b);
    let hw = a.high_watermark();
    assert_eq!(hw, records + 1);
    let id = SnapshotId {
        end_offset: hw,
        epoch: 1,
    };
    a.snapshot_taken(id, delete_below);
    a.take_effects();
    assert_eq!(a.log().snapshot(), Some(id));
    assert_eq!(a.log().start_offset(), delete_below.min(hw));
    (a, b, c)
}

fn follower_of_1(id: ReplicaId) -> QuorumCore {
    let mut c = voter(id);
    c.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 1,
    });
    c.take_effects();
    c
}

#[test]
fn a_snapshot_is_taken_only_of_committed_entries() {
    let (mut a, _, _) = elected();
    a.append(3).unwrap();
    a.flushed(a.log().end_offset());
    // Nothing past the high watermark (only voter 1 has the entries).
    a.snapshot_taken(
        SnapshotId {
            end_offset: 4,
            epoch: 1,
        },
        4,
    );
    assert_eq!(a.log().snapshot(), None);
    assert_eq!(a.log().start_offset(), 0);
}

#[test]
fn a_fetch_below_the_log_start_is_answered_with_the_snapshot_id() {
    let (mut a, _, _) = leader_with_snapshot(4, 5);
    let snapshot = SnapshotId {
        end_offset: 5,
        epoch: 1,
    };
    let c = follower_of_1(3);
    let (_, req) = c.fetch_request().unwrap();
    assert_eq!(req.fetch_offset, 0);
    let answer = a.handle_fetch(req);
    assert_eq!(
        answer,
        FetchAnswer::Snapshot {
            epoch: 1,
            leader: 1,
            high_watermark: 5,
            snapshot
        }
    );
    // A snapshot answer does not count as the voter's end offset.
    assert_eq!(a.voter_end_offsets()[2], (3, 0));
    // Observers (brokers) below the log start get it too.
    let observer = FetchRequest {
        replica_id: -1,
        epoch: -1,
        fetch_offset: 2,
        last_fetched_epoch: -1,
    };
    assert!(matches!(
        a.handle_fetch(observer),
        FetchAnswer::Snapshot { snapshot: s, .. } if s == snapshot
    ));
    // At the log start: records.
    let at_start = FetchRequest {
        fetch_offset: 5,
        ..observer
    };
    assert!(matches!(
        a.handle_fetch(at_start),
        FetchAnswer::Records { from_offset: 5, .. }
    ));
    // On the wire, the answer carries the snapshot id.
    let resp = answer
        .into_response(&req, |_, _| -> Result<Vec<Batch>, ()> {
            panic!("nothing is read for a snapshot answer")
        })
        .unwrap();
    assert_eq!(resp.result, FetchResult::Snapshot(snapshot));
}

#[test]
fn a_divergence_below_the_log_start_is_answered_with_the_snapshot_id() {
    // The leader's log: epoch 1 at 0..3, then epoch 2 from 3 on; snapshot at 7, log start 4.
    let mut a = QuorumCore::restart(
        1,
        vec![1, 2, 3],
        QuorumState {
            epoch: 2,
            voted_for: Some(1),
            leader: None,
        },
        LogSummary::new(vec![(1, 0)], 3, 3),
    )
    .with_pre_vote(false);
    a.take_effects();
    a.handle_vote_response(
        2,
        VoteResponse {
            pre_vote: false,
            error_code: 0,
            epoch: 2,
            leader: None,
            vote_granted: true,
        },
    );
    assert!(a.is_leader());
    a.append(3).unwrap();
    a.flushed(a.log().end_offset());
    a.take_effects();
    // Voter 2 has everything: the high watermark is the log end.
    a.handle_fetch(FetchRequest {
        replica_id: 2,
        epoch: 2,
        fetch_offset: 7,
        last_fetched_epoch: 2,
    });
    assert_eq!(a.high_watermark(), 7);
    a.snapshot_taken(
        SnapshotId {
            end_offset: 7,
            epoch: 2,
        },
        4,
    );
    assert_eq!(a.log().epochs(), &[(2, 4)]);
    // Voter 3 holds epoch-1 entries to offset 5 that the leader never had past 3: the
    // divergence (epoch 1 ends at 3) is below the log start (4).
    let answer = a.handle_fetch(FetchRequest {
        replica_id: 3,
        epoch: 2,
        fetch_offset: 5,
        last_fetched_epoch: 1,
    });
    assert!(matches!(answer, FetchAnswer::Snapshot { .. }), "{answer:?}");
    // One whose divergence is at or above the log start gets the diverging epoch.
    let answer = a.handle_fetch(FetchRequest {
        replica_id: 3,
        epoch: 2,
        fetch_offset: 9,
        last_fetched_epoch: 2,
    });
    assert!(
        matches!(
            answer,
            FetchAnswer::DivergingEpoch {
                diverging_epoch: 2,
                end_offset: 7,
                ..
            }
        ),
        "{answer:?}"
    );
}

#[test]
fn a_follower_fetches_the_snapshot_and_installs_it() {
    let (mut a, _, _) = leader_with_snapshot(4, 5);
    let snapshot = SnapshotId {
        end_offset: 5,
        epoch: 1,
    };
    let mut c = follower_of_1(3);
    fetch_round(&mut a, &mut c);
    // The follower now waits for the snapshot: no Fetch, a FetchSnapshot.
    assert!(c.fetch_request().is_none());
    let (to, sreq) = c.snapshot_request().unwrap();
    assert_eq!((to, sreq.snapshot, sreq.epoch), (1, snapshot, 1));
    // The leader serves it; another id is SNAPSHOT_NOT_FOUND.
    assert_eq!(
        a.handle_fetch_snapshot(sreq),
        FetchSnapshotAnswer::Serve {
            epoch: 1,
            leader: 1,
            snapshot
        }
    );
    let other = FetchSnapshotRequest {
        snapshot: SnapshotId {
            end_offset: 3,
            epoch: 1,
        },
        ..sreq
    };
    assert!(matches!(
        a.handle_fetch_snapshot(other),
        FetchSnapshotAnswer::Error {
            code: codes::SNAPSHOT_NOT_FOUND,
            ..
        }
    ));
    // A chunk keeps the fetch timer from firing.
    c.take_effects();
    c.handle_fetch_snapshot_response(1, Some(1), Ok(()));
    assert_eq!(c.take_effects(), vec![Effect::SetTimer(Timer::Fetch)]);
    // Installing a snapshot nobody asked for does nothing.
    assert!(!c.install_snapshot(other.snapshot));
    assert!(c.install_snapshot(snapshot));
    assert_eq!(
        c.take_effects(),
        vec![
            Effect::InstallSnapshot(snapshot),
            Effect::HighWatermark(5),
            Effect::SetTimer(Timer::Fetch)
        ]
    );
    assert_eq!(c.log().start_offset(), 5);
    assert_eq!((c.log().end_offset(), c.log().last_epoch()), (5, 1));
    assert!(c.log().epochs().is_empty());
    assert_eq!(c.high_watermark(), 5);
    // Then it fetches records from the snapshot's end, and the leader counts it.
    let (_, req) = c.fetch_request().unwrap();
    assert_eq!((req.fetch_offset, req.last_fetched_epoch), (5, 1));
    a.append(1).unwrap();
    a.flushed(a.log().end_offset());
    fetch_round(&mut a, &mut c);
    assert_eq!(c.log().end_offset(), 6);
    assert_eq!(c.log().epochs(), &[(1, 5)]);
    assert_eq!(a.voter_end_offsets()[2], (3, 5));
}

#[test]
fn fetch_snapshot_errors_follow_kip_630() {
    let (mut a, mut b, _) = leader_with_snapshot(2, 3);
    let req = FetchSnapshotRequest {
        replica_id: 2,
        epoch: 1,
        snapshot: SnapshotId {
            end_offset: 3,
            epoch: 1,
        },
    };
    // Only the leader serves snapshots.
    assert!(matches!(
        b.handle_fetch_snapshot(req),
        FetchSnapshotAnswer::Error {
            code: codes::NOT_LEADER_OR_FOLLOWER,
            leader: Some(1),
            ..
        }
    ));
    // A voter's stale epoch is fenced, a future one unknown; observers send -1.
    assert!(matches!(
        a.handle_fetch_snapshot(FetchSnapshotRequest { epoch: 0, ..req }),
        FetchSnapshotAnswer::Error {
            code: codes::FENCED_LEADER_EPOCH,
            ..
        }
    ));
    assert!(matches!(
        a.handle_fetch_snapshot(FetchSnapshotRequest { epoch: 2, ..req }),
        FetchSnapshotAnswer::Error {
            code: codes::UNKNOWN_LEADER_EPOCH,
            ..
        }
    ));
    assert!(matches!(
        a.handle_fetch_snapshot(FetchSnapshotRequest {
            replica_id: -1,
            epoch: -1,
            ..req
        }),
        FetchSnapshotAnswer::Serve { .. }
    ));
    // A follower told SNAPSHOT_NOT_FOUND goes back to Fetch.
    let mut c = follower_of_1(3);
    fetch_round(&mut a, &mut c);
    assert!(c.snapshot_request().is_some());
    c.handle_fetch_snapshot_response(1, Some(1), Err(codes::SNAPSHOT_NOT_FOUND));
    assert!(c.snapshot_request().is_none());
    assert!(c.fetch_request().is_some());
    // A new leader: the follower forgets the old leader's snapshot.
    fetch_round(&mut a, &mut c);
    assert!(c.snapshot_request().is_some());
    c.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 2,
        leader_epoch: 2,
    });
    assert!(c.snapshot_request().is_none());
}

#[test]
fn votes_compare_the_snapshot_id_when_the_log_is_empty() {
    // Voter 3 installed a snapshot ending at 5 in epoch 1; its log is empty after it.
    let (mut a, _, _) = leader_with_snapshot(4, 5);
    let mut c = follower_of_1(3);
    fetch_round(&mut a, &mut c);
    let (_, sreq) = c.snapshot_request().unwrap();
    assert!(c.install_snapshot(sreq.snapshot));
    c.take_effects();
    assert_eq!((c.log().last_epoch(), c.log().end_offset()), (1, 5));
    // A candidate whose log ends before the snapshot is not up to date; one that matches
    // or passes it is.
    assert!(!c.log_up_to_date(1, 4));
    assert!(!c.log_up_to_date(0, 9));
    assert!(c.log_up_to_date(1, 5));
    assert!(c.log_up_to_date(2, 1));
    // Its own candidacy carries the snapshot's id.
    c.timeout();
    let effects = c.take_effects();
    let Some((_, Request::Vote(v))) = sends(&effects).first().copied() else {
        panic!("no vote request in {effects:?}");
    };
    assert_eq!((v.last_epoch, v.end_offset), (1, 5));
    // A restarted voter with a snapshot and an empty log answers the same.
    let restarted = QuorumCore::restart(
        3,
        vec![1, 2, 3],
        c.quorum_state(),
        LogSummary::new(Vec::new(), 5, 5).with_snapshot(5, Some(sreq.snapshot)),
    )
    .with_pre_vote(false);
    assert!(!restarted.log_up_to_date(1, 4));
    assert!(restarted.log_up_to_date(1, 5));
    assert_eq!(restarted.high_watermark(), 5);
}

// -----------------------------------------------------------------------------------------
// Pre-Vote (KIP-996) and the checks on quorum requests

/// The first request of `kind` among the effects.
fn first_vote(effects: &[Effect]) -> VoteRequest {
    match sends(effects).first() {
        Some((_, Request::Vote(r))) => *r,
        other => panic!("no Vote request in {effects:?} ({other:?})"),
    }
}

/// With Pre-Vote: voter 1 wins the pre-vote and the vote of voter 2, leads epoch 1, and
/// voter 2 follows it. Returns (1, 2, 3).
fn pv_elected() -> (QuorumCore, QuorumCore, QuorumCore) {
    let (mut a, mut b, c) = (pv_voter(1), pv_voter(2), pv_voter(3));
    a.timeout();
    let pre = first_vote(&a.take_effects());
    let resp = b.handle_vote(pre);
    assert!(resp.vote_granted && resp.pre_vote);
    a.handle_vote_response(2, resp);
    let vote = first_vote(&a.take_effects());
    a.handle_vote_response(2, b.handle_vote(vote));
    assert_eq!((a.role(), a.epoch()), (Role::Leader, 1));
    a.flushed(a.log().end_offset());
    a.take_effects();
    b.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 1,
    });
    assert_eq!(b.role(), Role::Follower);
    b.take_effects();
    (a, b, c)
}

#[test]
fn timeout_with_pre_vote_asks_for_pre_votes_without_leaving_the_epoch() {
    let mut a = pv_voter(1);
    a.timeout();
    assert_eq!(a.role(), Role::Prospective);
    assert_eq!((a.epoch(), a.voted_for()), (0, None));
    let effects = a.take_effects();
    // Nothing durable changes: no quorum state is written.
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::PersistQuorumState(_))));
    let expected = VoteRequest {
        pre_vote: true,
        candidate_epoch: 1,
        candidate_id: 1,
        last_epoch: 0,
        end_offset: 0,
    };
    assert_eq!(
        sends(&effects),
        vec![(2, Request::Vote(expected)), (3, Request::Vote(expected))]
    );
}

#[test]
fn a_pre_vote_changes_nothing_at_the_voter_and_needs_an_up_to_date_log() {
    let (mut a, mut b, mut c) = pv_elected();
    a.append(1).unwrap();
    a.flushed(a.log().end_offset());
    fetch_round(&mut a, &mut b);
    // Voter 2's fetch timer fires: it no longer hears from a leader and grants pre-votes,
    // several of them, without voting or moving to their epoch.
    b.timeout();
    b.take_effects();
    assert_eq!(b.role(), Role::Prospective);
    let pre = |id, last_epoch, end_offset| VoteRequest {
        pre_vote: true,
        candidate_epoch: 2,
        candidate_id: id,
        last_epoch,
        end_offset,
    };
    assert!(b.handle_vote(pre(1, 1, 2)).vote_granted);
    // Voter 3 never saw epoch 1's log.
    assert!(!b.handle_vote(pre(3, 0, 0)).vote_granted);
    assert_eq!(
        (b.epoch(), b.voted_for(), b.role()),
        (1, Some(1), Role::Prospective)
    );
    assert!(b.take_effects().is_empty());
    // Voter 3 grants to anyone up to date, and stays as it was.
    assert!(c.handle_vote(pre(2, 1, 2)).vote_granted);
    assert!(c.handle_vote(pre(1, 1, 2)).vote_granted);
    assert_eq!((c.epoch(), c.voted_for()), (0, None));
    assert!(c.take_effects().is_empty());
}

#[test]
fn a_won_pre_vote_starts_the_election_and_a_pre_vote_never_counts_as_a_vote() {
    let (mut a, mut b) = (pv_voter(1), pv_voter(2));
    a.timeout();
    let pre = first_vote(&a.take_effects());
    let granted = b.handle_vote(pre);
    // A vote is not a pre-vote.
    let mut prospective = a.clone();
    prospective.handle_vote_response(
        2,
        VoteResponse {
            pre_vote: false,
            ..granted
        },
    );
    assert_eq!(prospective.role(), Role::Prospective);
    // The majority of pre-votes: the election in epoch 1, the self-vote durable first.
    a.handle_vote_response(2, granted);
    assert_eq!(
        (a.role(), a.epoch(), a.voted_for()),
        (Role::Candidate, 1, Some(1))
    );
    let effects = a.take_effects();
    assert!(matches!(effects[0], Effect::PersistQuorumState(_)));
    assert!(!first_vote(&effects).pre_vote);
    // A granted pre-vote of the candidate's epoch (voter 3 was already in epoch 1)
    // arriving now is not a vote: it does not make the candidate leader.
    a.handle_vote_response(
        3,
        VoteResponse {
            epoch: 1,
            ..granted
        },
    );
    assert_eq!(a.role(), Role::Candidate);
}

#[test]
fn a_voter_with_a_live_leader_refuses_votes_and_stays_in_its_epoch() {
    let (mut a, mut b, _) = pv_elected();
    for pre_vote in [false, true] {
        let forged = VoteRequest {
            pre_vote,
            candidate_epoch: 101,
            candidate_id: 3,
            last_epoch: 1,
            end_offset: 100,
        };
        for v in [&mut a, &mut b] {
            let before = (v.role(), v.epoch(), v.leader());
            let r = v.handle_vote(forged);
            assert_eq!((r.error_code, r.vote_granted), (0, false));
            assert_eq!((r.epoch, r.leader), (1, Some(1)));
            assert_eq!((v.role(), v.epoch(), v.leader()), before);
            assert!(v.take_effects().is_empty());
        }
    }
    assert!(a.is_leader());
    // Once its fetch timer fires, the follower grants again.
    b.timeout();
    b.take_effects();
    let r = b.handle_vote(VoteRequest {
        pre_vote: false,
        candidate_epoch: 2,
        candidate_id: 3,
        last_epoch: 1,
        end_offset: 1,
    });
    assert!(r.vote_granted);
    assert_eq!(
        (b.role(), b.epoch(), b.voted_for()),
        (Role::Voted, 2, Some(3))
    );
}

#[test]
fn without_pre_vote_a_raised_epoch_deposes_a_live_leader() {
    let (a, _, _) = pv_elected();
    let mut a = a.with_pre_vote(false);
    let r = a.handle_vote(VoteRequest {
        pre_vote: false,
        candidate_epoch: 101,
        candidate_id: 3,
        last_epoch: 1,
        end_offset: 1,
    });
    assert!(r.vote_granted);
    assert_eq!((a.role(), a.epoch()), (Role::Voted, 101));
}

#[test]
fn a_prospective_refused_by_a_voter_naming_its_leader_follows_it_again() {
    let (mut a, mut b, _) = pv_elected();
    // Voter 2 was cut off for a while: its fetch timer fired, and again and again.
    for _ in 0..5 {
        b.timeout();
    }
    assert_eq!((b.role(), b.epoch()), (Role::Prospective, 1));
    let pre = first_vote(&b.take_effects());
    assert_eq!(pre.candidate_epoch, 2);
    // Back on the network: the leader refuses and names itself.
    let r = a.handle_vote(pre);
    assert!(!r.vote_granted);
    b.handle_vote_response(1, r);
    assert_eq!(
        (b.role(), b.epoch(), b.leader()),
        (Role::Follower, 1, Some(1))
    );
    assert_eq!(b.fetch_request().map(|(l, _)| l), Some(1));
    assert!(a.is_leader());
}

#[test]
fn votes_are_checked_as_kafka_checks_them() {
    let (mut a, _, _) = pv_elected();
    let vote = VoteRequest {
        pre_vote: false,
        candidate_epoch: 2,
        candidate_id: 3,
        last_epoch: 1,
        end_offset: 1,
    };
    let cases = [
        (
            VoteRequest {
                candidate_id: 9,
                ..vote
            },
            codes::INCONSISTENT_VOTER_SET,
        ),
        (
            VoteRequest {
                candidate_id: -1,
                ..vote
            },
            codes::INVALID_REQUEST,
        ),
        (
            VoteRequest {
                candidate_id: 1,
                ..vote
            },
            codes::INVALID_REQUEST,
        ),
        (
            VoteRequest {
                last_epoch: 2,
                ..vote
            },
            codes::INVALID_REQUEST,
        ),
        (
            VoteRequest {
                end_offset: -1,
                ..vote
            },
            codes::INVALID_REQUEST,
        ),
        (
            VoteRequest {
                candidate_epoch: 0,
                last_epoch: -1,
                ..vote
            },
            codes::INVALID_REQUEST,
        ),
    ];
    for (req, code) in cases {
        let r = a.handle_vote(req);
        assert_eq!((r.error_code, r.vote_granted), (code, false), "{req:?}");
        assert!(a.take_effects().is_empty());
    }
    // A stale epoch is fenced.
    let mut c = pv_voter(3);
    c.handle_begin_quorum_epoch(EpochRequest {
        leader_id: 1,
        leader_epoch: 4,
    });
    let r = c.handle_vote(VoteRequest {
        pre_vote: true,
        candidate_epoch: 3,
        candidate_id: 2,
        last_epoch: 0,
        end_offset: 0,
    });
    assert_eq!(r.error_code, codes::FENCED_LEADER_EPOCH);
    // A receiver that is not a voter itself refuses.
    let mut observer = QuorumCore::restart(
        9,
        vec![1, 2, 3],
        QuorumState::default(),
        LogSummary::default(),
    );
    let r = observer.handle_vote(vote);
    assert_eq!(r.error_code, codes::INCONSISTENT_VOTER_SET);
    assert!(a.is_leader());
}

#[test]
fn begin_and_end_quorum_epoch_only_from_a_voter_that_can_lead_the_epoch() {
    let (mut a, mut b, _) = pv_elected();
    let req = |leader_id, leader_epoch| EpochRequest {
        leader_id,
        leader_epoch,
    };
    let unchanged = |v: &mut QuorumCore| {
        assert_eq!((v.epoch(), v.leader()), (1, Some(1)));
        assert!(v.take_effects().is_empty());
    };
    // A follower: another leader of its epoch, itself named, a non-voter, a later epoch
    // while its leader is live.
    for (r, code) in [
        (req(3, 1), codes::INVALID_REQUEST),
        (req(2, 1), codes::INVALID_REQUEST),
        (req(9, 1), codes::INCONSISTENT_VOTER_SET),
        (req(3, 0), codes::FENCED_LEADER_EPOCH),
        (req(3, 7), codes::UNKNOWN_LEADER_EPOCH),
    ] {
        assert_eq!(b.handle_begin_quorum_epoch(r).error_code, code, "{r:?}");
        unchanged(&mut b);
        assert_eq!(b.handle_end_quorum_epoch(r).error_code, code, "{r:?}");
        unchanged(&mut b);
        assert_eq!(b.role(), Role::Follower);
    }
    // The leader: a second leader of its epoch, a resignation it did not make, a later epoch.
    for (r, code) in [
        (req(3, 1), codes::INVALID_REQUEST),
        (req(3, 7), codes::UNKNOWN_LEADER_EPOCH),
    ] {
        assert_eq!(a.handle_begin_quorum_epoch(r).error_code, code, "{r:?}");
        unchanged(&mut a);
        assert_eq!(a.handle_end_quorum_epoch(r).error_code, code, "{r:?}");
        unchanged(&mut a);
    }
    assert_eq!(
        a.handle_end_quorum_epoch(req(1, 1)).error_code,
        codes::INVALID_REQUEST
    );
    unchanged(&mut a);
    assert!(a.is_leader());
    // Once the follower's fetch timer fired, a later epoch's leader is followed.
    b.timeout();
    b.take_effects();
    assert_eq!(b.handle_begin_quorum_epoch(req(3, 2)).error_code, 0);
    assert_eq!(
        (b.role(), b.epoch(), b.leader()),
        (Role::Follower, 2, Some(3))
    );
}
