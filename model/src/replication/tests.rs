//! One test per transition of the replication model, and the eager steps.

use super::*;
use crate::config::{FetchDelivery, ModelConfig};

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
