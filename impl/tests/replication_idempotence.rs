//! Idempotent producers through [`Replica`]: duplicates answered with their original
//! offsets (also after a leader failover and a restart), producer state dropped with
//! truncated batches, and sequence errors as Kafka error codes. Real logs in a tempdir.

#[path = "replication_harness.rs"]
mod harness;

/// Named `replication::…` so `cargo test -p osprey-broker replication` selects them.
mod replication {
    use super::harness::{idempotent_batch, producer_batches, Cluster};
    use osprey_broker::error_codes::*;
    use osprey_broker::replication::*;
    use osprey_broker::storage::BatchHeader;

    const PID: i64 = 1000;

    fn ok(request_id: u64, base_offset: i64) -> ProduceOutcome {
        ProduceOutcome::Completed(ProduceCompletion {
            request_id,
            error_code: NONE,
            base_offset,
        })
    }

    fn failed(request_id: u64, error_code: i16) -> ProduceOutcome {
        ProduceOutcome::Completed(ProduceCompletion {
            request_id,
            error_code,
            base_offset: -1,
        })
    }

    /// Sends `(seq, records)` at `epoch` 0 to `leader` with acks=1.
    fn send(c: &mut Cluster, leader: i32, id: u64, seq: i32, records: usize) -> ProduceOutcome {
        c.produce_batch(
            leader,
            id,
            idempotent_batch(PID, 0, seq, records),
            Acks::Leader,
        )
    }

    /// Fetch rounds until every follower has the leader's log and the high watermark.
    fn replicate_all(c: &mut Cluster, followers: &[i32]) {
        for _ in 0..3 {
            for &f in followers {
                c.replicate(f);
            }
        }
    }

    #[test]
    fn a_retry_of_the_last_batch_gets_its_original_offset() {
        let mut c = Cluster::new(3, 1, &[0, 1, 2], 0);
        assert_eq!(send(&mut c, 0, 1, 0, 2), ok(1, 0));
        assert_eq!(send(&mut c, 0, 2, 2, 1), ok(2, 2));
        assert_eq!(
            send(&mut c, 0, 3, 2, 1),
            ok(3, 2),
            "retry of the last batch"
        );
        assert_eq!(
            send(&mut c, 0, 4, 0, 2),
            ok(4, 0),
            "retry of an earlier batch"
        );
        assert_eq!(c.r(0).log_end_offset(), 3, "nothing appended twice");
        assert_eq!(send(&mut c, 0, 5, 3, 1), ok(5, 3));
    }

    #[test]
    fn an_acks_all_retry_of_an_uncommitted_batch_waits_like_the_original() {
        let mut c = Cluster::new(3, 2, &[0, 1, 2], 0);
        let b = || idempotent_batch(PID, 0, 0, 1);
        assert_eq!(
            c.produce_batch(0, 1, b(), Acks::All),
            ProduceOutcome::Delayed { base_offset: 0 }
        );
        assert_eq!(
            c.produce_batch(0, 2, b(), Acks::All),
            ProduceOutcome::Delayed { base_offset: 0 }
        );
        assert_eq!(c.r(0).log_end_offset(), 1);
        assert!(c.completions(0).is_empty());
        replicate_all(&mut c, &[1, 2]);
        let done: Vec<_> = c
            .completions(0)
            .iter()
            .map(|p| (p.request_id, p.error_code, p.base_offset))
            .collect();
        assert_eq!(done, vec![(1, NONE, 0), (2, NONE, 0)]);
        // Once committed, a further retry is answered at once.
        assert_eq!(c.produce_batch(0, 3, b(), Acks::All), ok(3, 0));
    }

    #[test]
    fn a_retry_after_failover_is_deduplicated_by_the_new_leader() {
        let mut c = Cluster::new(3, 1, &[0, 1, 2], 0);
        assert_eq!(send(&mut c, 0, 1, 0, 1), ok(1, 0));
        assert_eq!(send(&mut c, 0, 2, 1, 3), ok(2, 1));
        replicate_all(&mut c, &[1, 2]);
        assert_eq!(c.r(1).producer_state(), c.r(0).producer_state());
        c.elect(1, None);
        assert!(c.r(1).is_leader());
        // The answer to request 2 was lost; the producer retries at the new leader.
        assert_eq!(send(&mut c, 1, 3, 1, 3), ok(3, 1));
        assert_eq!(c.r(1).log_end_offset(), 4);
        assert_eq!(send(&mut c, 1, 4, 4, 1), ok(4, 4));
        assert_eq!(
            send(&mut c, 1, 5, 6, 1),
            failed(5, OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
    }

    #[test]
    fn the_state_is_rebuilt_after_a_restart() {
        let mut c = Cluster::new(1, 1, &[0], 0);
        assert_eq!(send(&mut c, 0, 1, 0, 1), ok(1, 0));
        assert_eq!(send(&mut c, 0, 2, 1, 1), ok(2, 1));
        let before = c.r(0).producer_state().clone();
        assert_eq!(before.entry(PID).map(|e| e.batches.len()), Some(2));
        c.crash(0, true);
        c.restart(0);
        assert_eq!(c.r(0).producer_state(), &before);
        c.elect(0, None);
        assert_eq!(send(&mut c, 0, 3, 1, 1), ok(3, 1), "retry after restart");
        assert_eq!(send(&mut c, 0, 4, 2, 1), ok(4, 2));
    }

    #[test]
    fn batches_lost_in_an_unclean_crash_are_forgotten() {
        let mut c = Cluster::new(1, 1, &[0], 0);
        assert_eq!(send(&mut c, 0, 1, 0, 1), ok(1, 0));
        c.crash(0, false);
        c.restart(0);
        // Nothing was fsynced (the OS flush policy): the batch and its state are gone, so
        // its retry is written again instead of being answered with a lost offset.
        assert_eq!(c.r(0).log_end_offset(), 0);
        assert!(c.r(0).producer_state().is_empty());
        c.elect(0, None);
        assert_eq!(send(&mut c, 0, 2, 0, 1), ok(2, 0));
        assert_eq!(c.r(0).log_end_offset(), 1);
    }

    #[test]
    fn a_truncated_batch_is_no_longer_a_duplicate() {
        let mut c = Cluster::new(3, 1, &[0, 1, 2], 0);
        assert_eq!(send(&mut c, 0, 1, 0, 1), ok(1, 0));
        replicate_all(&mut c, &[1, 2]);
        // Written at broker 0 only, then broker 1 takes over without it.
        assert_eq!(send(&mut c, 0, 2, 1, 1), ok(2, 1));
        c.elect(1, Some(&[1, 2]));
        let seq1 = BatchHeader::parse(&idempotent_batch(PID, 0, 1, 1)).unwrap();
        assert_eq!(
            c.r(0).producer_state().check(&seq1),
            Ok(Check::Duplicate {
                base_offset: 1,
                last_offset: 1
            }),
            "before broker 0 learns of the divergence"
        );
        assert!(matches!(
            c.replicate(0),
            Some(FollowerFetchOutcome::Truncated { log_end_offset: 1 })
        ));
        assert_eq!(c.r(0).producer_state().check(&seq1), Ok(Check::Append));
        assert_eq!(c.r(0).producer_state(), c.r(1).producer_state());
        // The producer retries at the new leader: written again, as a new batch.
        assert_eq!(send(&mut c, 1, 3, 1, 1), ok(3, 1));
        replicate_all(&mut c, &[0, 2]);
        assert_eq!(
            producer_batches(&c.log_bytes(0)),
            vec![(PID, 0, 0, 0), (PID, 1, 1, 1)]
        );
        assert_eq!(c.r(0).producer_state(), c.r(1).producer_state());
    }

    #[test]
    fn sequence_and_epoch_errors_are_kafka_error_codes() {
        let mut c = Cluster::new(1, 1, &[0], 0);
        assert_eq!(send(&mut c, 0, 1, 0, 1), ok(1, 0));
        assert_eq!(
            send(&mut c, 0, 2, 2, 1),
            failed(2, OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        let bumped = |seq| idempotent_batch(PID, 1, seq, 1);
        assert_eq!(
            c.produce_batch(0, 3, bumped(5), Acks::Leader),
            failed(3, OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(c.produce_batch(0, 4, bumped(0), Acks::Leader), ok(4, 1));
        assert_eq!(send(&mut c, 0, 5, 1, 1), failed(5, INVALID_PRODUCER_EPOCH));
        assert_eq!(
            c.r(0).log_end_offset(),
            2,
            "refused batches are not appended"
        );
    }

    #[test]
    fn a_multi_batch_produce_is_checked_batch_by_batch() {
        let mut c = Cluster::new(1, 1, &[0], 0);
        let two = |a: i32, b: i32| {
            let mut buf = idempotent_batch(PID, 0, a, 1);
            buf.extend_from_slice(&idempotent_batch(PID, 0, b, 1));
            buf
        };
        assert_eq!(c.produce_batch(0, 1, two(0, 1), Acks::Leader), ok(1, 0));
        assert_eq!(
            c.produce_batch(0, 2, two(2, 4), Acks::Leader),
            failed(2, OUT_OF_ORDER_SEQUENCE_NUMBER),
            "the second batch leaves a gap: nothing is appended"
        );
        assert_eq!(c.r(0).log_end_offset(), 2);
        assert_eq!(c.produce_batch(0, 3, two(0, 1), Acks::Leader), ok(3, 0));
        assert_eq!(c.produce_batch(0, 4, two(2, 3), Acks::Leader), ok(4, 2));
    }

    #[test]
    fn batches_without_a_producer_id_are_never_deduplicated() {
        let mut c = Cluster::new(1, 1, &[0], 0);
        assert_eq!(c.produce(0, 1, Acks::Leader), ok(1, 0));
        assert_eq!(c.produce(0, 1, Acks::Leader), ok(1, 1));
        assert!(c.r(0).producer_state().is_empty());
    }
}
