//! One test per transition of the KRaft quorum model.

use super::super::properties;
use super::*;
use KraftAction::*;

/// KIP-595's transitions alone: the tests of those steps use it.
fn model() -> KraftModel {
    KraftModel::new(KraftConfig {
        variant: Some(KraftVariant::NoPreVote),
        ..KraftConfig::default()
    })
}

/// The default model, with Pre-Vote (KIP-996).
fn pv_model() -> KraftModel {
    KraftModel::new(KraftConfig::default())
}

fn run(m: &KraftModel, actions: &[KraftAction]) -> KraftState {
    actions.iter().fold(m.initial_state(), |s, a| {
        m.step(&s, *a)
            .unwrap_or_else(|| panic!("{} is not enabled", a.describe()))
    })
}

/// Voter 0 leads epoch 1 with votes from 0 and 1; voter 1 follows it.
fn elected() -> Vec<KraftAction> {
    vec![
        Timeout { voter: 0 },
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
fn a_voter_grants_one_vote_per_epoch() {
    let m = model();
    let s = run(
        &m,
        &[
            Timeout { voter: 0 },
            Timeout { voter: 1 },
            HandleVote {
                candidate: 0,
                voter: 2,
            },
        ],
    );
    assert_eq!(s.voters[2].role, Role::Voted);
    assert_eq!(s.voters[2].voted_for, 0);
    assert_eq!(s.voters[0].votes, 0b101);
    // Voter 1 is a candidate in the same epoch; voter 2 already voted for 0.
    assert!(m
        .step(
            &s,
            HandleVote {
                candidate: 1,
                voter: 2
            }
        )
        .is_none());
    // A candidate does not vote for another candidate of its epoch.
    assert!(m
        .step(
            &s,
            HandleVote {
                candidate: 1,
                voter: 0
            }
        )
        .is_none());
}

#[test]
fn a_vote_needs_a_log_at_least_as_up_to_date() {
    let m = model();
    let mut steps = elected();
    steps.extend([
        Append { leader: 0 },
        Fetch { follower: 1 },
        HandleFetchResponse { follower: 1 },
        // Voter 2 never saw epoch 1's log; it starts epoch 1, then epoch 2.
        Timeout { voter: 2 },
        Timeout { voter: 2 },
    ]);
    let s = run(&m, &steps);
    assert_eq!(s.voters[1].log.end_offset(), 2);
    // Voter 1's log (last epoch 1) is ahead of the candidate's empty log: no vote, but it
    // moves to epoch 2.
    let t = m
        .step(
            &s,
            HandleVote {
                candidate: 2,
                voter: 1,
            },
        )
        .expect("the higher epoch is adopted");
    assert_eq!(t.voters[1].epoch, 2);
    assert_eq!(t.voters[1].role, Role::Unattached);
    assert_eq!(t.voters[2].votes, 1 << 2);
    // Without the check the vote is granted.
    let flawed = KraftModel::new(KraftConfig {
        variant: Some(KraftVariant::VoteWithoutLogCheck),
        ..KraftConfig::default()
    });
    let t = flawed
        .step(
            &t,
            HandleVote {
                candidate: 2,
                voter: 1,
            },
        )
        .unwrap();
    assert_eq!(t.voters[2].votes, 0b110);
    // The comparison is by last epoch first, then end offset.
    let mut longer_old = Log::default();
    longer_old.append(Entry {
        record: 0,
        epoch: 1,
    });
    longer_old.append(Entry {
        record: 1,
        epoch: 1,
    });
    let mut shorter_new = Log::default();
    shorter_new.append(Entry {
        record: 0,
        epoch: 2,
    });
    assert!(KraftModel::log_up_to_date(&shorter_new, &longer_old));
    assert!(!KraftModel::log_up_to_date(&longer_old, &shorter_new));
}

#[test]
fn the_high_watermark_advances_by_majority() {
    let m = model();
    let mut steps = elected();
    steps.push(Append { leader: 0 });
    let s = run(&m, &steps);
    // The leader alone is not a majority of 3.
    assert_eq!(s.voters[0].high_watermark, 0);
    let s = run(&m, &[steps.clone(), vec![Fetch { follower: 1 }]].concat());
    // The fetch at offset 0 tells the leader nothing it did not know.
    assert_eq!(s.voters[0].high_watermark, 0);
    let s = run(
        &m,
        &[
            steps,
            vec![
                Fetch { follower: 1 },
                HandleFetchResponse { follower: 1 },
                Fetch { follower: 1 },
            ],
        ]
        .concat(),
    );
    assert_eq!(s.voters[0].high_watermark, 2);
    assert_eq!(
        s.ghost.committed[1],
        Some((
            Entry {
                record: 1,
                epoch: 1
            },
            1
        ))
    );
}

#[test]
fn the_high_watermark_waits_for_an_entry_of_the_current_epoch() {
    let m = model();
    let mut s = m.initial_state();
    // Voter 0 leads epoch 3 with an old entry of epoch 1 that voter 1 also holds.
    for v in 0..2 {
        s.voters[v].log.append(Entry {
            record: 1,
            epoch: 1,
        });
        s.voters[v].flushed = 1;
        s.voters[v].epoch = 3;
        s.voters[v].leader = 0;
    }
    s.voters[0].role = Role::Leader;
    s.voters[1].role = Role::Follower;
    s.ghost.appended = 1;
    let mut t = s;
    m.fetch(&mut t, 1);
    // A majority holds offset 0, but its entry is of epoch 1, not 3.
    assert_eq!(t.voters[0].end_offsets[1], 1);
    assert_eq!(t.voters[0].high_watermark, 0);
    assert!(t.ghost.committed[0].is_none());
    // Once an entry of epoch 3 is replicated, both commit.
    let s = [
        Append { leader: 0 },
        // The response in flight was cut before the append.
        HandleFetchResponse { follower: 1 },
        Fetch { follower: 1 },
        HandleFetchResponse { follower: 1 },
        Fetch { follower: 1 },
    ]
    .iter()
    .fold(t, |s, a| m.step(&s, *a).unwrap());
    assert_eq!(s.voters[0].high_watermark, 2);
    assert_eq!(
        s.ghost.committed[0],
        Some((
            Entry {
                record: 1,
                epoch: 1
            },
            3
        ))
    );
}

#[test]
fn a_follower_truncates_on_a_diverging_epoch() {
    let m = model();
    let mut s = m.initial_state();
    // Voter 1 holds an entry of epoch 1 that the leader of epoch 2 never had.
    s.voters[0].log.append(Entry {
        record: 0,
        epoch: 2,
    });
    s.voters[1].log.append(Entry {
        record: 0,
        epoch: 1,
    });
    s.voters[1].log.append(Entry {
        record: 1,
        epoch: 1,
    });
    for v in 0..2 {
        s.voters[v].flushed = s.voters[v].log.end_offset();
        s.voters[v].epoch = 2;
        s.voters[v].leader = 0;
    }
    s.voters[0].role = Role::Leader;
    s.voters[1].role = Role::Follower;
    let s = m.step(&s, Fetch { follower: 1 }).unwrap();
    assert_eq!(
        s.voters[1].fetch_response.unwrap().result,
        FetchResult::DivergingEpoch {
            epoch: 0,
            end_offset: 0
        }
    );
    // The leader learned nothing about the follower's end offset.
    assert_eq!(s.voters[0].end_offsets[1], 0);
    let s = m.step(&s, HandleFetchResponse { follower: 1 }).unwrap();
    assert_eq!(s.voters[1].log.end_offset(), 0);
    assert_eq!(s.voters[1].flushed, 0);
    // The next fetch replicates the leader's log.
    let s = [Fetch { follower: 1 }, HandleFetchResponse { follower: 1 }]
        .iter()
        .fold(s, |s, a| m.step(&s, *a).unwrap());
    assert_eq!(s.voters[1].log, s.voters[0].log);
}

#[test]
fn a_crash_keeps_the_quorum_state_and_the_flushed_log() {
    let m = KraftModel::new(KraftConfig {
        flush: FlushPolicy::Never,
        variant: Some(KraftVariant::NoPreVote),
        ..KraftConfig::default()
    });
    let mut steps = elected();
    steps.extend([
        Append { leader: 0 },
        Crash { voter: 0 },
        Restart { voter: 0 },
    ]);
    let s = run(&m, &steps);
    let v = s.voters[0];
    assert_eq!(
        (v.role, v.epoch, v.voted_for, v.leader),
        (Role::Resigned, 1, 0, 0)
    );
    assert_eq!(v.log.end_offset(), 0);
    // Only `max_crashes` crashes.
    assert!(m.step(&s, Crash { voter: 1 }).is_none());
    // With every append flushed, the log survives.
    let s = run(&model(), &steps);
    assert_eq!(s.voters[0].log.end_offset(), 2);
}

/// With Pre-Vote: voter 0 wins voter 1's pre-vote, then its vote, and leads epoch 1;
/// voter 1 follows it.
fn pv_elected() -> Vec<KraftAction> {
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
fn a_timeout_asks_for_pre_votes_and_a_majority_of_them_starts_the_election() {
    let m = pv_model();
    let s = run(&m, &[Timeout { voter: 0 }]);
    let v = s.voters[0];
    assert_eq!(
        (v.role, v.epoch, v.voted_for, v.votes),
        (Role::Prospective, 0, NO_VOTER, 1)
    );
    // Not a candidate: no Vote yet.
    assert!(m
        .step(
            &s,
            HandleVote {
                candidate: 0,
                voter: 1
            }
        )
        .is_none());
    let t = run(
        &m,
        &[
            Timeout { voter: 0 },
            HandlePreVote {
                candidate: 0,
                voter: 1,
            },
        ],
    );
    // The pre-vote changed nothing at voter 1; with 2 of 3 voter 0 stands in epoch 1.
    assert_eq!(t.voters[1], s.voters[1]);
    let v = t.voters[0];
    assert_eq!((v.role, v.epoch, v.voted_for), (Role::Candidate, 1, 0));
    let t = run(&m, &pv_elected());
    assert!(t.voters[0].is_leader());
}

#[test]
fn a_live_leaders_voters_refuse_and_a_returning_voter_follows_the_leader_again() {
    let m = pv_model();
    let mut steps = pv_elected();
    // Voter 1's fetch timer fires (it was cut off), and it asks the others.
    steps.push(Timeout { voter: 1 });
    let s = run(&m, &steps);
    assert_eq!(
        (s.voters[1].role, s.voters[1].epoch),
        (Role::Prospective, 1)
    );
    // Back on the network, the leader answers its pre-vote: refused, naming the leader
    // of voter 1's epoch, which voter 1 follows again.
    let t = m
        .step(
            &s,
            HandlePreVote {
                candidate: 1,
                voter: 0,
            },
        )
        .unwrap();
    assert_eq!(
        (t.voters[1].role, t.voters[1].epoch, t.voters[1].leader),
        (Role::Follower, 1, 0)
    );
    assert!(properties::stable_leader_not_disrupted(&m, &t));
    // A candidate's Vote to the leader or its follower changes nothing.
    let mut c = s;
    c.voters[2].role = Role::Candidate;
    c.voters[2].epoch = 2;
    c.voters[2].voted_for = 2;
    c.voters[2].votes = 1 << 2;
    assert!(m
        .step(
            &c,
            HandleVote {
                candidate: 2,
                voter: 0
            }
        )
        .is_none());
}

#[test]
fn without_pre_vote_a_returning_voter_deposes_the_stable_leader() {
    let m = model();
    let mut steps = elected();
    steps.extend([
        BeginQuorumEpoch {
            leader: 0,
            voter: 2,
        },
        // Voter 2 is cut off: it times out into epoch 2, then comes back.
        Timeout { voter: 2 },
        HandleVote {
            candidate: 2,
            voter: 0,
        },
    ]);
    let s = run(&m, &steps);
    assert_eq!((s.voters[0].role, s.voters[0].epoch), (Role::Unattached, 2));
    assert!(!properties::stable_leader_not_disrupted(&m, &s));
}
