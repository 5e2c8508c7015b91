//! Unit tests of [`Controller`]: every operation and every error code it answers.

use kafka_protocol::ResponseError as E;

use super::*;
use crate::replication::NO_BROKER;

const T: &str = "orders";

fn endpoint(id: i32) -> Vec<Endpoint> {
    vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: "localhost".into(),
        port: 9090 + id as u16,
        security_protocol: 0,
    }]
}

/// Registers brokers `1..=n` at time 0 and unfences them; returns their epochs (index = id).
fn cluster(n: i32, config: ControllerConfig) -> (Controller, Vec<i64>) {
    let mut c = Controller::new(config);
    let mut epochs = vec![-1];
    for b in 1..=n {
        let e = c
            .register_broker(b, &format!("inc-{b}"), endpoint(b), None, -1, 0)
            .unwrap();
        epochs.push(e);
    }
    for b in 1..=n {
        let off = c.image().last_offset();
        let r = c
            .heartbeat(b, epochs[b as usize], off, false, false, 0)
            .unwrap();
        assert!(!r.is_fenced);
    }
    (c, epochs)
}

fn part(c: &Controller, p: i32) -> PartitionImage {
    c.image().partition(T, p).unwrap().clone()
}

fn topic_id(c: &Controller) -> TopicId {
    c.image().topic(T).unwrap().id
}

/// Keeps every broker in `alive` heartbeating at `now`.
fn heartbeat_all(c: &mut Controller, epochs: &[i64], alive: &[i32], now: u64) {
    for b in alive {
        let off = c.image().last_offset();
        c.heartbeat(*b, epochs[*b as usize], off, false, false, now)
            .unwrap();
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, ControllerError>) -> E {
    r.unwrap_err().error
}

fn with_min_isr(min_isr: &str, unclean: &str) -> Vec<(String, String)> {
    vec![
        ("min.insync.replicas".into(), min_isr.into()),
        ("unclean.leader.election.enable".into(), unclean.into()),
    ]
}

fn alter(c: &Controller, leader: i32, isr: &[(i32, i64)]) -> AlterPartitionRequest {
    let p = part(c, 0);
    assert_eq!(p.leader, leader);
    AlterPartitionRequest {
        topic_id: topic_id(c),
        partition: 0,
        leader_epoch: p.leader_epoch,
        new_isr_with_epochs: isr.to_vec(),
        partition_epoch: p.partition_epoch,
        leader_recovery_state: LeaderRecoveryState::Recovered,
    }
}

// ---------------------------------------------------------------------------------------
// Brokers

#[test]
fn registration_gives_the_record_offset_as_epoch_and_starts_fenced() {
    let mut c = Controller::new(ControllerConfig::default());
    let e1 = c
        .register_broker(1, "a", endpoint(1), Some("r1".into()), -1, 0)
        .unwrap();
    let e2 = c.register_broker(2, "b", endpoint(2), None, -1, 0).unwrap();
    assert_eq!((e1, e2), (0, 1));
    let reg = c.image().broker(1).unwrap();
    assert!(reg.fenced);
    assert_eq!(reg.rack.as_deref(), Some("r1"));
    assert!(c.image().live_brokers().is_empty());
    // The same incarnation registering again gets a new, larger epoch.
    let e1b = c
        .register_broker(1, "a", endpoint(1), None, e1, 10)
        .unwrap();
    assert!(e1b > e2);
    assert_eq!(c.image().broker_epoch(1), Some(e1b));
    assert_eq!(
        code(c.register_broker(-3, "x", vec![], None, -1, 0)),
        E::InvalidRequest
    );
}

#[test]
fn another_incarnation_is_refused_while_the_session_lives() {
    let mut c = Controller::new(ControllerConfig::default());
    c.register_broker(1, "a", endpoint(1), None, -1, 1000)
        .unwrap();
    let before = c.image().clone();
    let e = c.register_broker(1, "b", endpoint(1), None, -1, 1000 + 9000);
    assert_eq!(e.unwrap_err().code(), 101);
    assert_eq!(c.image(), &before, "a refused request appends nothing");
    // Once the session has expired the new incarnation takes the id.
    let epoch = c
        .register_broker(1, "b", endpoint(1), None, -1, 1000 + 9001)
        .unwrap();
    assert_eq!(c.image().broker(1).unwrap().incarnation_id, "b");
    assert_eq!(c.image().broker_epoch(1), Some(epoch));
}

#[test]
fn heartbeat_unfences_a_caught_up_broker_only() {
    let mut c = Controller::new(ControllerConfig::default());
    let e = c.register_broker(1, "a", endpoint(1), None, -1, 0).unwrap();
    c.register_broker(2, "b", endpoint(2), None, -1, 0).unwrap();
    // Behind its own registration record: not caught up, stays fenced.
    let r = c.heartbeat(1, e, e - 1, false, false, 100).unwrap();
    assert_eq!(
        r,
        HeartbeatReply {
            is_caught_up: false,
            is_fenced: true,
            should_shut_down: false
        }
    );
    // Caught up but asking to stay fenced.
    let r = c.heartbeat(1, e, e, true, false, 200).unwrap();
    assert!(r.is_caught_up && r.is_fenced);
    let r = c.heartbeat(1, e, e, false, false, 300).unwrap();
    assert!(r.is_caught_up && !r.is_fenced);
    assert!(c.image().is_live(1));
    assert_eq!(c.last_heartbeat_ms(1), Some(300));
    // An unfenced broker that asks to be fenced is fenced.
    let r = c.heartbeat(1, e, e, true, false, 400).unwrap();
    assert!(r.is_fenced);
    assert!(!c.image().is_live(1));
}

#[test]
fn heartbeat_errors() {
    let mut c = Controller::new(ControllerConfig::default());
    let e = c.register_broker(1, "a", endpoint(1), None, -1, 0).unwrap();
    assert_eq!(
        c.heartbeat(7, 0, 0, false, false, 0).unwrap_err().code(),
        102
    );
    assert_eq!(
        c.heartbeat(1, e + 5, 0, false, false, 0)
            .unwrap_err()
            .code(),
        77
    );
}

#[test]
fn tick_fences_expired_sessions_and_moves_leadership() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(T, Some(1), Some(3), None, &[]).unwrap();
    let p = part(&c, 0);
    assert_eq!(p.isr.len(), 3);
    let leader = p.leader;
    let others: Vec<i32> = (1..=3).filter(|b| *b != leader).collect();
    // Within the session: nothing happens.
    heartbeat_all(&mut c, &epochs, &others, 9000);
    assert!(c.tick(9000).is_empty());
    // The leader stops heartbeating.
    assert_eq!(c.tick(9001), vec![leader]);
    let q = part(&c, 0);
    assert!(!c.image().is_live(leader));
    assert!(!q.isr.contains(&leader));
    assert_eq!(q.leader, *q.isr.first().unwrap());
    assert_eq!(q.leader_epoch, p.leader_epoch + 1);
    assert_eq!(q.partition_epoch, p.partition_epoch + 1);
    // A follower's fencing is an ISR-only change: the partition epoch alone moves.
    let follower = *q.isr.iter().find(|b| **b != q.leader).unwrap();
    c.heartbeat(q.leader, epochs[q.leader as usize], 0, false, false, 20000)
        .unwrap();
    assert_eq!(c.tick(20000), vec![follower]);
    let r = part(&c, 0);
    assert_eq!(r.isr, vec![q.leader]);
    assert_eq!(
        (r.leader_epoch, r.partition_epoch),
        (q.leader_epoch, q.partition_epoch + 1)
    );
    assert!(
        c.tick(20000).is_empty(),
        "fenced brokers are not fenced again"
    );
}

#[test]
fn shutdown_request_fences_and_answers_shut_down() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic(T, Some(1), Some(2), None, &[]).unwrap();
    let leader = part(&c, 0).leader;
    let off = c.image().last_offset();
    let r = c
        .heartbeat(leader, epochs[leader as usize], off, false, true, 10)
        .unwrap();
    assert!(r.should_shut_down && r.is_fenced);
    let p = part(&c, 0);
    assert_ne!(p.leader, leader);
    assert!(!p.isr.contains(&leader));
}

/// A broker's ordinary heartbeat that the controller handles after its shutdown heartbeat
/// (two connections, no order between them) leaves it fenced: unfencing it would hand it
/// leaderships again just as it stops. Registering again ends the controlled shutdown.
#[test]
fn a_late_ordinary_heartbeat_does_not_unfence_a_broker_in_controlled_shutdown() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic(T, Some(1), Some(2), None, &[]).unwrap();
    let leader = part(&c, 0).leader;
    let epoch = epochs[leader as usize];
    let off = c.image().last_offset();
    assert!(
        c.heartbeat(leader, epoch, off, false, true, 10)
            .unwrap()
            .should_shut_down
    );
    let off = c.image().last_offset();
    let r = c.heartbeat(leader, epoch, off, false, false, 20).unwrap();
    assert!(r.is_fenced && !r.should_shut_down);
    assert!(!c.image().is_live(leader));
    assert_ne!(part(&c, 0).leader, leader);

    let new_epoch = c
        .register_broker(leader, &format!("inc-{leader}"), vec![], None, epoch, 30)
        .unwrap();
    let off = c.image().last_offset();
    let r = c
        .heartbeat(leader, new_epoch, off, false, false, 40)
        .unwrap();
    assert!(
        !r.is_fenced,
        "a new registration ends the controlled shutdown"
    );
}

#[test]
fn unregistering_leaves_isr_and_elr() {
    let (mut c, _) = cluster(3, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2, 3]]),
        &with_min_isr("3", "false"),
    )
    .unwrap();
    // Nobody heartbeated since time 0: every session expires.
    assert_eq!(c.tick(9001), vec![1, 2, 3]);
    let p = part(&c, 0);
    assert_eq!(p.leader, NO_BROKER);
    assert_eq!(p.elr, vec![1, 2, 3]);
    c.unregister_broker(2).unwrap();
    assert!(c.image().broker(2).is_none());
    assert_eq!(part(&c, 0).elr, vec![1, 3]);
    assert_eq!(c.unregister_broker(2).unwrap_err().code(), 102);
}

// ---------------------------------------------------------------------------------------
// Elections and the ELR (KIP-966)

/// Fences broker `b` by letting every other live broker heartbeat at `now` and ticking.
fn fence(c: &mut Controller, epochs: &[i64], b: i32, now: u64) {
    let alive: Vec<i32> = c
        .image()
        .live_brokers()
        .into_iter()
        .filter(|x| *x != b)
        .collect();
    heartbeat_all(c, epochs, &alive, now);
    assert_eq!(c.tick(now), vec![b]);
}

#[test]
fn below_min_isr_fenced_replicas_become_eligible_and_lead_again() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2, 3]]),
        &with_min_isr("2", "false"),
    )
    .unwrap();
    fence(&mut c, &epochs, 3, 10_000);
    let p = part(&c, 0);
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 2], vec![]));
    fence(&mut c, &epochs, 2, 20_000);
    let p = part(&c, 0);
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2]));
    // The leader goes too: no live ISR or ELR member, the partition goes offline.
    fence(&mut c, &epochs, 1, 30_000);
    let p = part(&c, 0);
    assert_eq!(p.leader, NO_BROKER);
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![], vec![1, 2]));
    assert_eq!(p.leader_epoch, 1);
    // Broker 3 (out of sync, not eligible) comes back: unclean election is off, still offline.
    let off = c.image().last_offset();
    c.heartbeat(3, epochs[3], off, false, false, 31_000)
        .unwrap();
    assert_eq!(part(&c, 0).leader, NO_BROKER);
    // An ELR member comes back: it leads, with an ISR of itself.
    c.heartbeat(2, epochs[2], off, false, false, 31_000)
        .unwrap();
    let q = part(&c, 0);
    assert_eq!(q.leader, 2);
    assert_eq!((q.isr.clone(), q.elr.clone()), (vec![2], vec![1]));
    assert_eq!(q.leader_epoch, 2);
    assert_eq!(q.leader_recovery_state, LeaderRecoveryState::Recovered);
}

#[test]
fn unclean_election_when_the_topic_allows_it() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2]]),
        &with_min_isr("1", "true"),
    )
    .unwrap();
    fence(&mut c, &epochs, 2, 10_000);
    fence(&mut c, &epochs, 1, 20_000);
    let p = part(&c, 0);
    assert_eq!(p.leader, NO_BROKER);
    assert_eq!(p.elr, vec![1]);
    // Broker 2 was out of sync and is not eligible, but unclean election is on.
    let off = c.image().last_offset();
    c.heartbeat(2, epochs[2], off, false, false, 21_000)
        .unwrap();
    let q = part(&c, 0);
    assert_eq!(
        (q.leader, q.isr.clone(), q.elr.clone()),
        (2, vec![2], vec![])
    );
    assert_eq!(q.leader_recovery_state, LeaderRecoveryState::Recovering);
    // The leader's first AlterPartition marks it recovered; a recovering leader may not grow
    // its ISR, and a recovered one may not go back.
    let mut req = alter(&c, 2, &[(2, epochs[2]), (1, epochs[1])]);
    req.leader_recovery_state = LeaderRecoveryState::Recovering;
    assert_eq!(
        code(c.alter_partition(2, epochs[2], &req)),
        E::InvalidRequest
    );
    let req = alter(&c, 2, &[(2, epochs[2])]);
    let r = c.alter_partition(2, epochs[2], &req).unwrap();
    assert_eq!(r.leader_recovery_state, LeaderRecoveryState::Recovered);
    let mut req = alter(&c, 2, &[(2, epochs[2])]);
    req.leader_recovery_state = LeaderRecoveryState::Recovering;
    assert_eq!(
        code(c.alter_partition(2, epochs[2], &req)),
        E::InvalidRequest
    );
}

#[test]
fn a_broker_back_from_an_unclean_shutdown_leaves_the_elr() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2, 3]]),
        &with_min_isr("3", "false"),
    )
    .unwrap();
    fence(&mut c, &epochs, 3, 10_000);
    fence(&mut c, &epochs, 2, 20_000);
    assert_eq!(part(&c, 0).elr, vec![2, 3]);
    // Broker 2 shut down cleanly: it names its previous epoch and stays eligible.
    c.register_broker(2, "inc-2", endpoint(2), None, epochs[2], 40_000)
        .unwrap();
    assert_eq!(part(&c, 0).elr, vec![2, 3]);
    // Broker 3 did not: it leaves the ELR, in a partition change.
    let pe = part(&c, 0).partition_epoch;
    c.register_broker(3, "inc-3", endpoint(3), None, -1, 40_000)
        .unwrap();
    let p = part(&c, 0);
    assert_eq!(p.elr, vec![2]);
    assert_eq!(p.partition_epoch, pe + 1);
}

#[test]
fn re_registering_a_live_leader_fences_it_first() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic(T, None, None, Some(vec![vec![1, 2]]), &[])
        .unwrap();
    let e = c
        .register_broker(1, "inc-1", endpoint(1), None, epochs[1], 5)
        .unwrap();
    let p = part(&c, 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert!(c.image().broker(1).unwrap().fenced);
    assert!(e > epochs[2]);
}

#[test]
fn elect_leaders_codes() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2, 3]]),
        &with_min_isr("1", "false"),
    )
    .unwrap();
    let tp = |p| vec![(T.to_string(), p)];
    assert_eq!(
        c.elect_leaders(ElectionType::Preferred, &tp(0))[0]
            .as_ref()
            .unwrap_err()
            .error,
        E::ElectionNotNeeded
    );
    assert_eq!(
        c.elect_leaders(ElectionType::Unclean, &tp(0))[0]
            .as_ref()
            .unwrap_err()
            .error,
        E::ElectionNotNeeded
    );
    assert_eq!(
        c.elect_leaders(ElectionType::Preferred, &tp(4))[0]
            .as_ref()
            .unwrap_err()
            .error,
        E::UnknownTopicOrPartition
    );
    // Broker 1 (preferred) is fenced: leadership moves to 2, and 1 is not available.
    fence(&mut c, &epochs, 1, 10_000);
    assert_eq!(part(&c, 0).leader, 2);
    assert_eq!(
        c.elect_leaders(ElectionType::Preferred, &tp(0))[0]
            .as_ref()
            .unwrap_err()
            .error,
        E::PreferredLeaderNotAvailable
    );
    // Broker 1 is back and rejoins the ISR: the preferred election moves leadership back,
    // bumping the leader epoch, keeping the ISR (the model's MoveLeader).
    let off = c.image().last_offset();
    c.heartbeat(1, epochs[1], off, false, false, 10_001)
        .unwrap();
    let req = alter(&c, 2, &[(1, epochs[1]), (2, epochs[2]), (3, epochs[3])]);
    c.alter_partition(2, epochs[2], &req).unwrap();
    let before = part(&c, 0);
    assert_eq!(
        c.elect_leaders(ElectionType::Preferred, &tp(0)),
        vec![Ok(())]
    );
    let after = part(&c, 0);
    assert_eq!(after.leader, 1);
    assert_eq!(after.isr, before.isr);
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    // Everything fenced: no leader can be elected, even uncleanly.
    fence(&mut c, &epochs, 3, 20_000);
    fence(&mut c, &epochs, 2, 30_000);
    fence(&mut c, &epochs, 1, 40_000);
    assert_eq!(part(&c, 0).leader, NO_BROKER);
    assert_eq!(
        c.elect_leaders(ElectionType::Unclean, &tp(0))[0]
            .as_ref()
            .unwrap_err()
            .error,
        E::EligibleLeadersNotAvailable
    );
}

#[test]
fn unclean_elect_leaders_forces_an_out_of_sync_leader() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2]]),
        &with_min_isr("1", "false"),
    )
    .unwrap();
    fence(&mut c, &epochs, 2, 10_000);
    fence(&mut c, &epochs, 1, 20_000);
    let off = c.image().last_offset();
    c.heartbeat(2, epochs[2], off, false, false, 20_001)
        .unwrap();
    assert_eq!(part(&c, 0).leader, NO_BROKER, "unclean election is off");
    let r = c.elect_leaders(ElectionType::Unclean, &[(T.to_string(), 0)]);
    assert_eq!(r, vec![Ok(())]);
    let p = part(&c, 0);
    assert_eq!(
        (p.leader, p.isr.clone(), p.elr.clone()),
        (2, vec![2], vec![])
    );
}

// ---------------------------------------------------------------------------------------
// Topics

#[test]
fn create_topic_places_replicas_and_records_everything() {
    let (mut c, _) = cluster(3, ControllerConfig::default());
    c.drain_records();
    let id = c
        .create_topic(
            T,
            Some(6),
            Some(2),
            None,
            &[("retention.ms".into(), "1000".into())],
        )
        .unwrap();
    let t = c.image().topic(T).unwrap();
    assert_eq!(t.id, id);
    assert_eq!(t.partitions.len(), 6);
    for p in &t.partitions {
        assert_eq!(p.replicas.len(), 2);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
    }
    // Leaders spread evenly over the three brokers.
    for b in 1..=3 {
        assert_eq!(t.partitions.iter().filter(|p| p.leader == b).count(), 2);
    }
    assert_eq!(c.image().topic_config(T, "retention.ms"), Some("1000"));
    let recs = c.drain_records();
    let kinds: Vec<_> = recs.iter().map(|(_, r)| r.kraft_name()).collect();
    assert_eq!(kinds[0], "TopicRecord");
    assert_eq!(kinds[1], "ConfigRecord");
    assert_eq!(kinds.iter().filter(|k| **k == "PartitionRecord").count(), 6);
    // Offsets are consecutive.
    for w in recs.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
    }
    // The same requests on another controller place identically (no randomness).
    let (mut d, _) = cluster(3, ControllerConfig::default());
    d.create_topic(
        T,
        Some(6),
        Some(2),
        None,
        &[("retention.ms".into(), "1000".into())],
    )
    .unwrap();
    assert_eq!(c.image(), d.image());
}

#[test]
fn create_topic_defaults_come_from_the_config() {
    let config = ControllerConfig {
        num_partitions: 3,
        default_replication_factor: 2,
        ..ControllerConfig::default()
    };
    let (mut c, _) = cluster(2, config);
    c.create_topic(T, Some(-1), Some(-1), None, &[]).unwrap();
    let t = c.image().topic(T).unwrap();
    assert_eq!(t.partitions.len(), 3);
    assert!(t.partitions.iter().all(|p| p.replicas.len() == 2));
}

#[test]
fn create_topic_errors() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic("a.b", None, None, None, &[]).unwrap();
    let before = c.image().clone();
    let cases: Vec<(Result<TopicId, ControllerError>, E)> = vec![
        (
            c.create_topic("", None, None, None, &[]),
            E::InvalidTopicException,
        ),
        (
            c.create_topic("..", None, None, None, &[]),
            E::InvalidTopicException,
        ),
        (
            c.create_topic("a b", None, None, None, &[]),
            E::InvalidTopicException,
        ),
        (
            c.create_topic(&"x".repeat(250), None, None, None, &[]),
            E::InvalidTopicException,
        ),
        (
            c.create_topic("a_b", None, None, None, &[]),
            E::InvalidTopicException,
        ),
        (
            c.create_topic("a.b", None, None, None, &[]),
            E::TopicAlreadyExists,
        ),
        (
            c.create_topic(T, Some(0), None, None, &[]),
            E::InvalidPartitions,
        ),
        (
            c.create_topic(T, Some(-5), None, None, &[]),
            E::InvalidPartitions,
        ),
        (
            c.create_topic(T, Some(10_001), None, None, &[]),
            E::InvalidPartitions,
        ),
        (
            c.create_topic(T, None, Some(3), None, &[]),
            E::InvalidReplicationFactor,
        ),
        (
            c.create_topic(T, None, Some(0), None, &[]),
            E::InvalidReplicationFactor,
        ),
        (
            c.create_topic(
                T,
                None,
                None,
                None,
                &[("cleanup.policy".into(), "compact".into())],
            ),
            E::InvalidConfig,
        ),
        (
            c.create_topic(T, None, None, None, &[("bogus".into(), "1".into())]),
            E::InvalidConfig,
        ),
        (
            c.create_topic(
                T,
                None,
                None,
                None,
                &[
                    ("retention.ms".into(), "1".into()),
                    ("retention.ms".into(), "2".into()),
                ],
            ),
            E::InvalidRequest,
        ),
        (
            c.create_topic(T, Some(1), None, Some(vec![vec![1]]), &[]),
            E::InvalidRequest,
        ),
        (
            c.create_topic(T, None, None, Some(vec![vec![]]), &[]),
            E::InvalidReplicaAssignment,
        ),
        (
            c.create_topic(T, None, None, Some(vec![vec![1, 1]]), &[]),
            E::InvalidReplicaAssignment,
        ),
        (
            c.create_topic(T, None, None, Some(vec![vec![9]]), &[]),
            E::InvalidReplicaAssignment,
        ),
        (
            c.create_topic(T, None, None, Some(vec![vec![1], vec![1, 2]]), &[]),
            E::InvalidReplicaAssignment,
        ),
        (
            c.create_topic(T, None, None, Some(vec![]), &[]),
            E::InvalidPartitions,
        ),
    ];
    for (i, (r, want)) in cases.into_iter().enumerate() {
        assert_eq!(r.unwrap_err().error, want, "case {i}");
    }
    assert_eq!(c.image(), &before, "refused requests append nothing");
    // Replicas only on fenced brokers: no ISR to start from.
    fence(&mut c, &epochs, 2, 10_000);
    assert_eq!(
        code(c.create_topic(T, None, None, Some(vec![vec![2]]), &[])),
        E::InvalidReplicationFactor
    );
    // A manual assignment that names a fenced broker leaves it out of the initial ISR.
    c.create_topic(T, None, None, Some(vec![vec![2, 1]]), &[])
        .unwrap();
    let p = part(&c, 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    // Only live brokers count for the replication factor.
    assert_eq!(
        code(c.create_topic("two", None, Some(2), None, &[])),
        E::InvalidReplicationFactor
    );
}

#[test]
fn delete_topic_removes_it_with_its_configs() {
    let (mut c, _) = cluster(1, ControllerConfig::default());
    let id = c
        .create_topic(T, None, None, None, &[("retention.ms".into(), "5".into())])
        .unwrap();
    assert_eq!(c.delete_topic(T).unwrap(), id);
    assert!(c.image().topic(T).is_none());
    assert_eq!(c.image().topic_config(T, "retention.ms"), None);
    assert_eq!(code(c.delete_topic(T)), E::UnknownTopicOrPartition);
    // Created again, it gets a new id.
    assert_ne!(c.create_topic(T, None, None, None, &[]).unwrap(), id);
}

#[test]
fn create_partitions_grows_with_the_same_replication_factor() {
    let (mut c, _) = cluster(3, ControllerConfig::default());
    c.create_topic(T, Some(2), Some(2), None, &[]).unwrap();
    assert_eq!(code(c.create_partitions(T, 2)), E::InvalidPartitions);
    assert_eq!(code(c.create_partitions(T, 1)), E::InvalidPartitions);
    assert_eq!(code(c.create_partitions(T, -1)), E::InvalidPartitions);
    assert_eq!(
        code(c.create_partitions("nope", 3)),
        E::UnknownTopicOrPartition
    );
    c.create_partitions(T, 5).unwrap();
    let t = c.image().topic(T).unwrap();
    assert_eq!(t.partitions.len(), 5);
    assert!(t
        .partitions
        .iter()
        .all(|p| p.replicas.len() == 2 && p.isr == p.replicas));
}

#[test]
fn alter_configs_validates_and_applies() {
    let (mut c, _) = cluster(1, ControllerConfig::default());
    c.create_topic(T, None, None, None, &[]).unwrap();
    assert_eq!(
        code(c.alter_configs(T, &[ConfigChange::Set("bogus".into(), "1".into())])),
        E::InvalidConfig
    );
    assert_eq!(
        code(c.alter_configs(
            T,
            &[ConfigChange::Set("min.insync.replicas".into(), "0".into())]
        )),
        E::InvalidConfig
    );
    assert_eq!(
        code(c.alter_configs(T, &[ConfigChange::Delete("bogus".into())])),
        E::InvalidConfig
    );
    assert_eq!(
        code(c.alter_configs("nope", &[])),
        E::UnknownTopicOrPartition
    );
    c.alter_configs(
        T,
        &[ConfigChange::Set("retention.bytes".into(), "100".into())],
    )
    .unwrap();
    assert_eq!(c.image().topic_config(T, "retention.bytes"), Some("100"));
    c.alter_configs(T, &[ConfigChange::Delete("retention.bytes".into())])
        .unwrap();
    assert_eq!(c.image().topic_config(T, "retention.bytes"), None);
}

#[test]
fn changing_min_isr_clears_the_elr_and_enabling_unclean_elects() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2]]),
        &with_min_isr("2", "false"),
    )
    .unwrap();
    fence(&mut c, &epochs, 2, 10_000);
    assert_eq!(part(&c, 0).elr, vec![2]);
    c.alter_configs(
        T,
        &[ConfigChange::Set("min.insync.replicas".into(), "1".into())],
    )
    .unwrap();
    assert_eq!(part(&c, 0).elr, Vec::<i32>::new());
    fence(&mut c, &epochs, 1, 20_000);
    let off = c.image().last_offset();
    c.heartbeat(2, epochs[2], off, false, false, 20_001)
        .unwrap();
    assert_eq!(part(&c, 0).leader, NO_BROKER);
    c.alter_configs(
        T,
        &[ConfigChange::Set(
            "unclean.leader.election.enable".into(),
            "true".into(),
        )],
    )
    .unwrap();
    assert_eq!(part(&c, 0).leader, 2);
}

// ---------------------------------------------------------------------------------------
// AlterPartition

#[test]
fn alter_partition_shrinks_and_expands_the_isr() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(
        T,
        None,
        None,
        Some(vec![vec![1, 2, 3]]),
        &with_min_isr("2", "false"),
    )
    .unwrap();
    let p0 = part(&c, 0);
    let req = alter(&c, 1, &[(1, epochs[1]), (2, epochs[2])]);
    let p1 = c.alter_partition(1, epochs[1], &req).unwrap();
    assert_eq!(p1.isr, vec![1, 2]);
    assert_eq!(p1.elr, Vec::<i32>::new());
    assert_eq!((p1.leader_epoch, p1.partition_epoch), (p0.leader_epoch, 1));
    // Below min ISR: the removed member becomes eligible (KIP-966).
    let req = alter(&c, 1, &[(1, -1)]);
    let p2 = c.alter_partition(1, epochs[1], &req).unwrap();
    assert_eq!((p2.isr.clone(), p2.elr.clone()), (vec![1], vec![2]));
    // Expanding back to min ISR empties the ELR.
    let req = alter(&c, 1, &[(1, -1), (3, epochs[3])]);
    let p3 = c.alter_partition(1, epochs[1], &req).unwrap();
    assert_eq!((p3.isr.clone(), p3.elr.clone()), (vec![1, 3], vec![]));
    assert_eq!(p3.partition_epoch, 3);
    // The same ISR again changes nothing.
    let req = alter(&c, 1, &[(1, -1), (3, -1)]);
    assert_eq!(c.alter_partition(1, epochs[1], &req).unwrap(), p3);
}

#[test]
fn alter_partition_error_codes_in_kafkas_order() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(T, None, None, Some(vec![vec![1, 2]]), &[])
        .unwrap();
    let ok = alter(&c, 1, &[(1, epochs[1]), (2, epochs[2])]);
    let mut r = |broker: i32, epoch: i64, f: &dyn Fn(&mut AlterPartitionRequest)| {
        let mut req = ok.clone();
        f(&mut req);
        c.alter_partition(broker, epoch, &req).unwrap_err().code()
    };
    assert_eq!(r(1, epochs[1] + 1, &|_| {}), 77); // STALE_BROKER_EPOCH
    assert_eq!(r(9, 0, &|_| {}), 77); // unregistered sender
    assert_eq!(r(1, epochs[1], &|q| q.topic_id = [9; 16]), 100); // UNKNOWN_TOPIC_ID
    assert_eq!(r(1, epochs[1], &|q| q.partition = 3), 3); // UNKNOWN_TOPIC_OR_PARTITION
    assert_eq!(r(1, epochs[1], &|q| q.leader_epoch = 1), 41); // NOT_CONTROLLER
    assert_eq!(r(2, epochs[2], &|_| {}), 42); // not the leader: INVALID_REQUEST
    assert_eq!(
        r(1, epochs[1], &|q| q.new_isr_with_epochs =
            vec![(1, -1), (3, -1)]),
        42
    );
    assert_eq!(
        r(1, epochs[1], &|q| q.new_isr_with_epochs =
            vec![(1, -1), (1, -1)]),
        42
    );
    assert_eq!(
        r(1, epochs[1], &|q| q.new_isr_with_epochs = vec![(2, -1)]),
        42
    );
    assert_eq!(r(1, epochs[1], &|q| q.new_isr_with_epochs = vec![]), 42);
    // KIP-903: a member whose broker epoch is not its registration's.
    assert_eq!(
        r(1, epochs[1], &|q| q.new_isr_with_epochs =
            vec![(1, -1), (2, epochs[2] - 1)]),
        107
    );
    // Shrink once, so the leader's old partition epoch is stale.
    let shrink = alter(&c, 1, &[(1, -1)]);
    c.alter_partition(1, epochs[1], &shrink).unwrap();
    let stale = c.alter_partition(1, epochs[1], &ok).unwrap_err();
    assert_eq!(stale.code(), 95); // INVALID_UPDATE_VERSION
                                  // KIP-841: a fenced broker cannot join.
    fence(&mut c, &epochs, 2, 10_000);
    let join = alter(&c, 1, &[(1, -1), (2, epochs[2])]);
    assert_eq!(
        code(c.alter_partition(1, epochs[1], &join)),
        E::IneligibleReplica
    );
    // A new leader epoch fences the old leader's request.
    let old = alter(&c, 1, &[(1, -1)]);
    fence(&mut c, &epochs, 1, 20_000);
    let off = c.image().last_offset();
    c.heartbeat(2, epochs[2], off, false, false, 20_001)
        .unwrap();
    c.heartbeat(1, epochs[1], off, false, false, 20_001)
        .unwrap();
    assert_eq!(
        part(&c, 0).leader,
        1,
        "broker 1 was eligible (ELR) and led again"
    );
    assert_eq!(
        code(c.alter_partition(1, epochs[1], &old)),
        E::FencedLeaderEpoch
    );
}

// ---------------------------------------------------------------------------------------
// Producer ids, records and replay

#[test]
fn producer_id_blocks_are_consecutive() {
    let (mut c, epochs) = cluster(2, ControllerConfig::default());
    assert_eq!(c.allocate_producer_ids(1, epochs[1]).unwrap(), (0, 1000));
    assert_eq!(c.allocate_producer_ids(2, epochs[2]).unwrap(), (1000, 1000));
    assert_eq!(
        c.allocate_producer_ids(1, epochs[2]).unwrap_err().code(),
        77
    );
    assert_eq!(c.image().next_producer_id(), 2000);
}

#[test]
fn drained_records_rebuild_the_image_and_replay_restarts_sessions() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(T, Some(3), Some(3), None, &with_min_isr("2", "false"))
        .unwrap();
    fence(&mut c, &epochs, 3, 10_000);
    c.allocate_producer_ids(1, epochs[1]).unwrap();
    let records = c.drain_records();
    assert!(c.pending_records().is_empty());
    let mut img = MetadataImage::new();
    for (o, r) in &records {
        // Every record survives the trip through JSON, as it will through the quorum's log.
        let r: MetadataRecord = serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap();
        img.apply(*o, &r);
    }
    assert_eq!(&img, c.image());
    let mut d = Controller::replay(ControllerConfig::default(), records, 50_000);
    assert_eq!(d.image(), c.image());
    assert_eq!(d.last_heartbeat_ms(3), Some(50_000));
    // Every broker gets a full session from the restart.
    assert!(d.tick(59_000).is_empty());
    assert_eq!(d.tick(59_001), vec![1, 2]);
}

/// One step of a random operation history (errors are part of the history: a refused
/// operation appends nothing).
#[derive(Clone, Debug)]
enum Op {
    Register(i32, u8),
    Heartbeat(i32, bool, bool),
    Tick(u64),
    Unregister(i32),
    CreateTopic(u8, i32, i16),
    DeleteTopic(u8),
    CreatePartitions(u8, i32),
    SetConfig(u8, u8),
    DeleteConfig(u8),
    AllocateProducerIds(i32),
    Elect(u8, bool),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (1..=4i32, 0..2u8).prop_map(|(b, i)| Op::Register(b, i)),
        (1..=4i32, any::<bool>(), any::<bool>()).prop_map(|(b, f, s)| Op::Heartbeat(b, f, s)),
        (0..20_000u64).prop_map(Op::Tick),
        (1..=4i32).prop_map(Op::Unregister),
        (0..4u8, 1..4i32, 1..4i16).prop_map(|(t, p, r)| Op::CreateTopic(t, p, r)),
        (0..4u8).prop_map(Op::DeleteTopic),
        (0..4u8, 1..6i32).prop_map(|(t, p)| Op::CreatePartitions(t, p)),
        (0..4u8, 0..4u8).prop_map(|(t, v)| Op::SetConfig(t, v)),
        (0..4u8).prop_map(Op::DeleteConfig),
        (1..=4i32).prop_map(Op::AllocateProducerIds),
        (0..4u8, any::<bool>()).prop_map(|(t, u)| Op::Elect(t, u)),
    ]
}

fn run_op(c: &mut Controller, now: &mut u64, op: &Op) {
    let topic = |t: &u8| format!("t{t}");
    let epoch = |c: &Controller, b: i32| c.image().broker_epoch(b).unwrap_or(-1);
    match op {
        Op::Register(b, i) => {
            let _ = c.register_broker(*b, &format!("inc-{b}-{i}"), endpoint(*b), None, -1, *now);
        }
        Op::Heartbeat(b, fence, shutdown) => {
            let off = c.image().last_offset();
            let e = epoch(c, *b);
            let _ = c.heartbeat(*b, e, off, *fence, *shutdown, *now);
        }
        Op::Tick(dt) => {
            *now += dt;
            c.tick(*now);
        }
        Op::Unregister(b) => {
            let _ = c.unregister_broker(*b);
        }
        Op::CreateTopic(t, p, r) => {
            let _ = c.create_topic(&topic(t), Some(*p), Some(*r), None, &[]);
        }
        Op::DeleteTopic(t) => {
            let _ = c.delete_topic(&topic(t));
        }
        Op::CreatePartitions(t, p) => {
            let _ = c.create_partitions(&topic(t), *p);
        }
        Op::SetConfig(t, v) => {
            let change = match v {
                0 => ConfigChange::Set("min.insync.replicas".into(), "2".into()),
                1 => ConfigChange::Set("min.insync.replicas".into(), "1".into()),
                2 => ConfigChange::Set("unclean.leader.election.enable".into(), "true".into()),
                _ => ConfigChange::Set("retention.ms".into(), "1000".into()),
            };
            let _ = c.alter_configs(&topic(t), &[change]);
        }
        Op::DeleteConfig(t) => {
            let _ = c.alter_configs(
                &topic(t),
                &[ConfigChange::Delete("min.insync.replicas".into())],
            );
        }
        Op::AllocateProducerIds(b) => {
            let e = epoch(c, *b);
            let _ = c.allocate_producer_ids(*b, e);
        }
        Op::Elect(t, unclean) => {
            let kind = if *unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            };
            let _ = c.elect_leaders(kind, &[(topic(t), 0)]);
        }
    }
}

proptest::proptest! {
    /// KIP-630's snapshot content: a controller rebuilt from its image records (a snapshot
    /// at its log end) equals the one rebuilt by replaying its whole history, and both go on
    /// to make the same records for the same further operations.
    #[test]
    fn image_records_rebuild_the_controller_that_replaying_the_log_builds(
        history in proptest::collection::vec(op(), 0..80),
        more in proptest::collection::vec(op(), 0..20),
    ) {
        let mut c = Controller::new(ControllerConfig::default());
        let mut now = 0u64;
        for o in &history {
            run_op(&mut c, &mut now, o);
        }
        let log = c.drain_records();
        let end = c.image().last_offset() + 1;
        let replayed = Controller::replay(ControllerConfig::default(), log, now);
        let snapshot = replayed.image_records();
        // Through JSON, as a snapshot file carries them.
        let snapshot: Vec<MetadataRecord> = snapshot
            .iter()
            .map(|r| serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap())
            .collect();
        let image = MetadataImage::from_snapshot(end, &snapshot);
        let from_snapshot = Controller::from_image(ControllerConfig::default(), image, now);
        proptest::prop_assert_eq!(from_snapshot.image(), replayed.image());
        proptest::prop_assert_eq!(from_snapshot.image(), c.image());
        // And the two continue alike.
        let (mut a, mut b) = (replayed, from_snapshot);
        let (mut na, mut nb) = (now, now);
        for o in &more {
            run_op(&mut a, &mut na, o);
            run_op(&mut b, &mut nb, o);
        }
        proptest::prop_assert_eq!(a.drain_records(), b.drain_records());
        proptest::prop_assert_eq!(a.image(), b.image());
    }
}

// ---------------------------------------------------------------------------------------
// AssignReplicasToDirs (KIP-858): a replica whose log failed

#[test]
fn a_replica_assigned_to_lost_leaves_isr_and_elr_and_is_never_elected() {
    let (mut c, epochs) = cluster(3, ControllerConfig::default());
    c.create_topic(T, Some(1), Some(3), None, &with_min_isr("2", "true"))
        .unwrap();
    let id = topic_id(&c);
    let p = part(&c, 0);
    let leader = p.leader;
    // A stale broker epoch, an unknown topic, a broker that is not a replica.
    assert_eq!(
        code(c.assign_replicas_to_dirs(leader, 999, &[(id, 0, DIRECTORY_LOST)])),
        E::StaleBrokerEpoch
    );
    let e = epochs[leader as usize];
    let r = c
        .assign_replicas_to_dirs(leader, e, &[([9; 16], 0, DIRECTORY_LOST)])
        .unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().error, E::UnknownTopicId);
    c.drain_records();
    // The leader's log fails: the next ISR member leads, in one partition change.
    let r = c
        .assign_replicas_to_dirs(leader, e, &[(id, 0, DIRECTORY_LOST)])
        .unwrap();
    assert!(r[0].is_ok());
    let recs = c.drain_records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let q = part(&c, 0);
    assert!(q.is_log_offline(leader));
    assert!(!q.isr.contains(&leader) && !q.elr.contains(&leader));
    assert_eq!(q.leader, q.isr[0]);
    assert_eq!(q.leader_epoch, p.leader_epoch + 1);
    assert_eq!(c.image().offline_replicas(T, 0), vec![leader]);
    // The leader may not add it back while its log is offline.
    let others: Vec<i32> = q.isr.clone();
    let mut with_it: Vec<(i32, i64)> = others.iter().map(|b| (*b, epochs[*b as usize])).collect();
    with_it.push((leader, e));
    assert_eq!(
        code(c.alter_partition(
            q.leader,
            epochs[q.leader as usize],
            &alter(&c, q.leader, &with_it)
        )),
        E::IneligibleReplica
    );
    // Every other broker gone: even with unclean election on, nobody is elected.
    c.heartbeat(leader, e, i64::MAX, false, false, 9000)
        .unwrap();
    assert_eq!(c.tick(9001).len(), 2);
    let gone = part(&c, 0);
    assert_eq!(gone.leader, NO_BROKER);
    assert_eq!(
        code(
            c.elect_leaders(ElectionType::Unclean, &[(T.to_string(), 0)])
                .remove(0)
        ),
        E::EligibleLeadersNotAvailable
    );
    // Repaired: assigned to its directory again, it is online (and may be elected
    // uncleanly, as the topic allows; it holds an empty log or its repaired one).
    let r = c
        .assign_replicas_to_dirs(leader, e, &[(id, 0, [7; 16])])
        .unwrap();
    assert!(r[0].is_ok());
    assert!(!part(&c, 0).is_log_offline(leader));
    assert!(c
        .image()
        .offline_replicas(T, 0)
        .iter()
        .all(|b| *b != leader));
}
