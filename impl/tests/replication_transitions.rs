//! One test per transition of the replica state machine, on real logs in a tempdir.
//! Each mirrors a step (or a unit test) of the model in `model/src/partition.rs`.

#[path = "replication_harness.rs"]
mod harness;

/// Named `replication::…` so `cargo test -p osprey-broker replication` selects them.
mod replication {
    use super::harness::Cluster;
    use osprey_broker::error_codes::*;
    use osprey_broker::replication::*;

    fn ok(id: u64, base_offset: i64) -> ProduceCompletion {
        ProduceCompletion {
            request_id: id,
            error_code: NONE,
            base_offset,
        }
    }

    #[test]
    fn produce_appends_with_the_leader_epoch() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 5);
        let out = c.produce(0, 1, Acks::Leader);
        assert_eq!(out, ProduceOutcome::Completed(ok(1, 0)));
        let log = c.r(0).log();
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(log.latest_epoch(), Some(5));
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 1)));
        // Not yet replicated: the high watermark waits for the ISR.
        assert_eq!(c.r(0).high_watermark(), 0);
        // A follower cannot take produces.
        let out = c.produce(1, 2, Acks::Leader);
        assert!(
            matches!(out, ProduceOutcome::Completed(p) if p.error_code == NOT_LEADER_OR_FOLLOWER)
        );
    }

    #[test]
    fn acks_all_waits_for_every_isr_member_and_completes_when_hw_passes() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        assert_eq!(
            c.produce(0, 7, Acks::All),
            ProduceOutcome::Delayed { base_offset: 0 }
        );
        c.replicate(1);
        c.replicate(2);
        assert_eq!(c.r(1).log_end_offset(), 1);
        // The leader learns follower 1 has the record; follower 2 still blocks the HW.
        c.replicate(1);
        assert_eq!(c.r(0).high_watermark(), 0);
        assert!(c.completions(0).is_empty());
        c.replicate(2);
        assert_eq!(c.r(0).high_watermark(), 1);
        assert_eq!(c.completions(0), vec![ok(7, 0)]);
        // The followers learn the HW on their next fetch.
        c.replicate(1);
        assert_eq!(c.r(1).high_watermark(), 1);
    }

    #[test]
    fn acks_all_is_refused_below_min_insync_replicas() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.set_isr(&[0]);
        let out = c.produce(0, 1, Acks::All);
        assert_eq!(
            out,
            ProduceOutcome::Completed(ProduceCompletion {
                request_id: 1,
                error_code: NOT_ENOUGH_REPLICAS,
                base_offset: -1
            })
        );
        assert_eq!(c.r(0).log_end_offset(), 0, "refused before the append");
        // acks=1 still appends.
        assert_eq!(
            c.produce(0, 2, Acks::Leader),
            ProduceOutcome::Completed(ok(2, 0))
        );
    }

    #[test]
    fn a_fetch_from_a_stale_epoch_is_fenced() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        let (_, mut req) = c.r(2).fetch_request(1024).unwrap();
        c.elect(1, None);
        // Broker 2's request still names broker 0 in epoch 0: no longer a leader.
        let res = c.r_mut(0).handle_fetch_from_follower(&req, 0);
        assert_eq!(res.error_code, NOT_LEADER_OR_FOLLOWER);
        // At the new leader, epoch 0 is fenced and epoch 2 is not known yet.
        let res = c.r_mut(1).handle_fetch_from_follower(&req, 0);
        assert_eq!(res.error_code, FENCED_LEADER_EPOCH);
        req.current_leader_epoch = 2;
        let res = c.r_mut(1).handle_fetch_from_follower(&req, 0);
        assert_eq!(res.error_code, UNKNOWN_LEADER_EPOCH);
        req.current_leader_epoch = 1;
        let res = c.r_mut(1).handle_fetch_from_follower(&req, 0);
        assert_eq!(res.error_code, NONE);
    }

    #[test]
    fn a_response_for_an_old_leader_epoch_is_dropped() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::Leader);
        let resp = c.fetch(1).unwrap();
        c.elect(0, None); // same leader, new epoch
        assert_eq!(c.deliver(1, &resp), FollowerFetchOutcome::Dropped);
        assert_eq!(c.r(1).log_end_offset(), 0);
    }

    #[test]
    fn a_diverging_follower_truncates_then_catches_up() {
        // The model's `a_diverged_tail_is_truncated_on_fetch`.
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::All); // r1, nobody fetches it
        c.elect(1, None);
        assert_eq!(
            c.completions(0)[0].error_code,
            NOT_LEADER_OR_FOLLOWER,
            "the waiting produce fails"
        );
        c.produce(1, 2, Acks::All); // r2 at the same offset, epoch 1
        let resp = c.fetch(0).unwrap();
        // The new leader knows no epoch as old as 0 in its log: (0, 0) in Kafka's terms.
        let d = resp.result.diverging_epoch.expect("diverging");
        assert_eq!(d.end_offset, 0);
        assert_eq!(
            c.deliver(0, &resp),
            FollowerFetchOutcome::Truncated { log_end_offset: 0 }
        );
        assert_eq!(
            c.replicate(0),
            Some(FollowerFetchOutcome::Appended { log_end_offset: 1 })
        );
        assert_eq!(c.log_bytes(0), c.log_bytes(1));
        assert_eq!(c.r(0).log().latest_epoch(), Some(1));
    }

    #[test]
    fn a_follower_with_a_longer_older_epoch_truncates_to_the_epoch_end() {
        let mut c = Cluster::new(3, 1, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::Leader);
        c.replicate(1);
        c.replicate(2);
        c.produce(0, 2, Acks::Leader); // only broker 0 gets r2
        c.elect(1, None);
        c.produce(1, 3, Acks::Leader); // offset 1 in epoch 1
        let resp = c.fetch(0).unwrap();
        assert_eq!(
            resp.result.diverging_epoch,
            Some(EpochEndOffset {
                epoch: 0,
                end_offset: 1
            })
        );
        assert_eq!(
            c.deliver(0, &resp),
            FollowerFetchOutcome::Truncated { log_end_offset: 1 }
        );
        c.replicate(0);
        assert_eq!(c.log_bytes(0), c.log_bytes(1));
    }

    #[test]
    fn high_watermark_does_not_advance_under_min_isr() {
        let mut c = Cluster::new(3, 2, &[0], 0);
        c.produce(0, 1, Acks::Leader);
        c.replicate(1);
        c.replicate(1);
        assert_eq!(
            c.r(0).high_watermark(),
            0,
            "committed ISR {{0}} < min ISR 2"
        );
        // A pending expansion does not help: KIP-966 reads the committed ISR.
        let p = c.r_mut(0).propose_isr_expand(1).expect("1 caught up");
        assert_eq!(c.r(0).high_watermark(), 0);
        c.round_trip(&p);
        assert_eq!(c.r(0).leader_state().unwrap().isr, vec![0, 1]);
        assert_eq!(c.r(0).high_watermark(), 1);
    }

    #[test]
    fn shrink_after_replica_lag_time_passes() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::All);
        c.replicate(1);
        c.replicate(1);
        assert_eq!(c.r(0).high_watermark(), 0, "broker 2 never fetched");
        let (t0, lag) = (c.now, c.lag_ms);
        assert_eq!(c.r_mut(0).isr_changes_due(t0 + lag), None, "not yet");
        assert_eq!(c.r_mut(0).propose_isr_shrink(2, t0 + 1), None);
        let p = c
            .r_mut(0)
            .isr_changes_due(t0 + lag + 1)
            .expect("broker 2 lags");
        assert_eq!(
            p.new_isr.iter().map(|m| m.broker_id).collect::<Vec<_>>(),
            vec![0, 1]
        );
        // The maximal ISR still holds broker 2 until the controller commits.
        assert_eq!(c.r(0).high_watermark(), 0);
        c.round_trip(&p);
        assert_eq!(c.r(0).high_watermark(), 1);
        assert_eq!(c.completions(0), vec![ok(1, 0)]);
        // Broker 1 is caught up: never out of sync however late it is.
        assert_eq!(c.r_mut(0).isr_changes_due(t0 + 1_000_000), None);
    }

    #[test]
    fn expand_is_guarded_by_the_leader_epoch_start_offset() {
        let mut c = Cluster::new(3, 1, &[0, 1], 0);
        c.produce(0, 1, Acks::Leader);
        c.replicate(1);
        c.replicate(1); // HW 1
        c.replicate(2);
        c.replicate(2); // broker 2 (not in the ISR) has offset 0
        c.produce(0, 2, Acks::Leader);
        c.produce(0, 3, Acks::Leader); // LEO 3, HW 1
        assert_eq!(c.r(0).high_watermark(), 1);
        c.elect(0, None); // same leader, new epoch starting at 3
        assert_eq!(c.r(0).leader_state().unwrap().epoch_start_offset, 3);
        // Broker 2 fetches at 1 >= HW, but below the epoch start (KAFKA-7128).
        let resp = c.fetch(2).unwrap();
        assert_eq!(resp.fetch_offset, 1);
        assert_eq!(c.r_mut(0).propose_isr_expand(2), None);
        assert_eq!(c.r_mut(0).isr_changes_due(1_000), None);
        c.deliver(2, &resp);
        c.replicate(2); // now reports 3
        let p = c.r_mut(0).propose_isr_expand(2).expect("may join");
        assert_eq!(p.new_isr.len(), 3);
    }

    #[test]
    fn alter_partition_proposals_carry_the_broker_epoch() {
        let mut c = Cluster::new(3, 1, &[0, 1], 0);
        c.replicate(2);
        let p = c.r_mut(0).propose_isr_expand(2).expect("caught up");
        let epoch2 = c.r(2).broker_epoch();
        assert!(p.new_isr.contains(&IsrMember {
            broker_id: 2,
            broker_epoch: epoch2
        }));
        assert!(p.new_isr.contains(&IsrMember {
            broker_id: 0,
            broker_epoch: c.r(0).broker_epoch()
        }));
        assert_eq!((p.leader_id, p.leader_epoch, p.partition_epoch), (0, 0, 0));
        let pending = c.r(0).leader_state().unwrap().pending_isr.clone().unwrap();
        assert_eq!(pending.added_broker_epoch, Some(epoch2));
        // Another change waits for the answer.
        assert_eq!(c.r_mut(0).isr_changes_due(1_000), None);
        // Broker 2 restarts with a new broker epoch before the controller sees the proposal:
        // KIP-903 rejects it, and the leader drops the pending change.
        c.crash(2, true);
        c.restart(2);
        let resp = c.alter_partition(&p);
        assert_eq!(resp, AlterPartitionResponse::Error(INELIGIBLE_REPLICA));
        assert!(c.r_mut(0).handle_alter_partition_response(&resp));
        assert_eq!(c.r(0).leader_state().unwrap().pending_isr, None);
        assert_eq!(c.r(0).leader_state().unwrap().isr, vec![0, 1]);
    }

    #[test]
    fn alter_partition_on_a_stale_partition_epoch_is_rejected() {
        let mut c = Cluster::new(3, 1, &[0, 1, 2], 0);
        let p = c
            .r_mut(0)
            .isr_changes_due(1_000 + 100_000)
            .expect("both lag");
        assert_eq!(p.new_isr.len(), 1);
        c.state.partition_epoch += 1; // another change got in first
        let resp = c.alter_partition(&p);
        assert_eq!(resp, AlterPartitionResponse::Error(INVALID_UPDATE_VERSION));
        // As Kafka's leader: the change stays pending and nothing more is proposed until the
        // metadata with the newer partition epoch arrives, which resets it.
        assert!(!c.r_mut(0).handle_alter_partition_response(&resp));
        assert!(c.r(0).leader_state().unwrap().pending_isr.is_some());
        assert_eq!(c.r_mut(0).isr_changes_due(1_000 + 200_000), None);
        let state = c.state.clone();
        assert!(c.r_mut(0).become_leader(&state, 200_000));
        assert_eq!(c.r(0).leader_state().unwrap().pending_isr, None);
    }

    #[test]
    fn purgatory_fails_waiting_produces_on_leadership_loss() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::All);
        c.produce(0, 2, Acks::All);
        c.elect(1, None);
        let done = c.completions(0);
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|d| d.error_code == NOT_LEADER_OR_FOLLOWER));
        assert!(c.r(0).purgatory().is_empty());
    }

    #[test]
    fn purgatory_times_out_waiting_produces() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::All);
        let deadline = c.r(0).purgatory().next_deadline_ms().unwrap();
        assert_eq!(deadline, c.now + 30_000);
        c.r_mut(0).handle_timeout(deadline - 1);
        assert!(c.completions(0).is_empty());
        c.r_mut(0).handle_timeout(deadline);
        let done = c.completions(0);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].error_code, REQUEST_TIMED_OUT);
    }

    #[test]
    fn unclean_crash_loses_the_unflushed_tail_and_restart_knows_no_leader() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::Leader);
        c.replicate(1);
        assert_eq!(c.r(1).log_end_offset(), 1);
        let old_epoch = c.r(1).broker_epoch();
        c.crash(1, false);
        c.restart(1);
        assert_eq!(c.r(1).log_end_offset(), 0, "never fsynced");
        assert!(c.r(1).broker_epoch() > old_epoch);
        assert_eq!(c.r(1).role(), &Role::None);
        c.propagate();
        c.replicate(1);
        assert_eq!(c.log_bytes(1), c.log_bytes(0));
        // A clean crash keeps everything.
        c.crash(1, true);
        c.restart(1);
        assert_eq!(c.r(1).log_end_offset(), 1);
    }

    #[test]
    fn become_leader_with_a_newer_partition_epoch_only_updates_the_isr() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        c.produce(0, 1, Acks::All);
        c.set_isr(&[0, 1]);
        // Same leader epoch: the waiting produce survives, and 2 no longer blocks the HW.
        assert!(c.completions(0).is_empty());
        c.replicate(1);
        c.replicate(1);
        assert_eq!(c.completions(0), vec![ok(1, 0)]);
        // Stale or repeated metadata changes nothing.
        let state = c.state.clone();
        assert!(!c.r_mut(0).become_leader(&state, 0));
        assert!(!c.r_mut(1).become_follower(&state));
    }

    #[test]
    fn a_pending_expansion_member_holds_back_the_high_watermark() {
        let mut c = Cluster::new(3, 1, &[0, 1], 0);
        c.replicate(2);
        let p = c.r_mut(0).propose_isr_expand(2).expect("caught up at 0");
        c.produce(0, 1, Acks::All);
        c.replicate(1);
        c.replicate(1);
        // KIP-497: the maximal ISR {0, 1, 2} counts while the expansion is pending.
        assert_eq!(c.r(0).high_watermark(), 0);
        c.replicate(2);
        c.replicate(2);
        assert_eq!(c.r(0).high_watermark(), 1);
        assert_eq!(c.completions(0), vec![ok(1, 0)]);
        c.round_trip(&p);
        assert_eq!(c.r(0).leader_state().unwrap().isr, vec![0, 1, 2]);
    }
}
