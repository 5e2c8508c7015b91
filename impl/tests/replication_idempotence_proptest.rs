//! Random sends, retries and reorderings by one to three idempotent producers against a
//! three-replica partition with leader failovers (real logs). After every step, on every
//! replica's log:
//!
//! * no (producer id, sequence) is stored twice;
//! * each producer's batches are stored in sequence order, each continuing the previous one;
//!
//! and every successful answer names an offset where the leader holds that very batch
//! (a deduplicated retry is answered with the original's offset).

#[path = "replication_harness.rs"]
mod harness;

/// Named `replication::…` so `cargo test -p osprey-broker replication` selects them.
mod replication {
    use std::collections::HashSet;

    use super::harness::{idempotent_batch, producer_batches, Cluster};
    use osprey_broker::error_codes::NONE;
    use osprey_broker::replication::producer_state::in_sequence;
    use osprey_broker::replication::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// Producer `p` creates its next batch of `records` records and sends it.
        Send { p: usize, records: usize },
        /// Producer `p` creates its next batch, but the request is delayed (sent later by a
        /// `Resend`), so later batches arrive first.
        Hold { p: usize, records: usize },
        /// Producer `p` sends again the batch it created `back` batches ago (a retry after a
        /// lost answer, or the delayed request finally arriving).
        Resend { p: usize, back: usize },
        /// One fetch round trip of broker `f`.
        Replicate(i32),
        /// The controller moves leadership to broker `to` (ISR: everyone).
        Failover(i32),
    }

    fn op(producers: usize) -> impl Strategy<Value = Op> {
        let p = 0..producers;
        prop_oneof![
            4 => (p.clone(), 1..=3usize).prop_map(|(p, records)| Op::Send { p, records }),
            1 => (p.clone(), 1..=3usize).prop_map(|(p, records)| Op::Hold { p, records }),
            3 => (p, 0..8usize).prop_map(|(p, back)| Op::Resend { p, back }),
            4 => (0..3i32).prop_map(Op::Replicate),
            1 => (0..3i32).prop_map(Op::Failover),
        ]
    }

    struct World {
        c: Cluster,
        /// Per producer: every batch it created, as (first sequence, records).
        created: Vec<Vec<(i32, usize)>>,
        next_id: u64,
    }

    impl World {
        fn pid(p: usize) -> i64 {
            500 + p as i64
        }

        fn next_seq(&self, p: usize) -> i32 {
            self.created[p].last().map_or(0, |&(s, n)| s + n as i32)
        }

        fn send(&mut self, p: usize, (seq, records): (i32, usize)) {
            self.next_id += 1;
            let l = self.c.state.leader;
            let batch = idempotent_batch(Self::pid(p), 0, seq, records);
            let out = self.c.produce_batch(l, self.next_id, batch, Acks::Leader);
            if let ProduceOutcome::Completed(c) = out {
                if c.error_code == NONE {
                    let stored =
                        producer_batches(&self.c.r(l).log().read(c.base_offset, 1).unwrap());
                    let want = (Self::pid(p), seq, seq + records as i32 - 1, c.base_offset);
                    assert_eq!(
                        stored.first(),
                        Some(&want),
                        "answered offset holds the batch"
                    );
                }
            }
        }

        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Send { p, records } | Op::Hold { p, records } => {
                    let b = (self.next_seq(p), records);
                    self.created[p].push(b);
                    if matches!(op, Op::Send { .. }) {
                        self.send(p, b);
                    }
                }
                Op::Resend { p, back } => {
                    let n = self.created[p].len();
                    if back < n {
                        let b = self.created[p][n - 1 - back];
                        self.send(p, b);
                    }
                }
                Op::Replicate(f) => {
                    if f != self.c.state.leader {
                        self.c.replicate(f);
                    }
                }
                Op::Failover(to) => {
                    if to != self.c.state.leader {
                        self.c.elect(to, Some(&[0, 1, 2]));
                    }
                }
            }
        }

        fn check(&self) {
            for b in 0..3 {
                let mut seen = HashSet::new();
                let mut last: Vec<Option<i32>> = vec![None; self.created.len()];
                for (pid, first, end, offset) in producer_batches(&self.c.log_bytes(b)) {
                    let p = (pid - 500) as usize;
                    for s in first..=end {
                        assert!(
                            seen.insert((pid, s)),
                            "broker {b}: producer {pid} sequence {s} stored twice (offset {offset})"
                        );
                    }
                    if let Some(prev) = last[p] {
                        assert!(
                            in_sequence(prev, first),
                            "broker {b}: producer {pid} batch {first}..={end} at {offset} after {prev}"
                        );
                    }
                    last[p] = Some(end);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn idempotent_producers_never_duplicate_or_reorder(
            (producers, ops) in (1..=3usize).prop_flat_map(|n| {
                (Just(n), proptest::collection::vec(op(n), 1..60))
            })
        ) {
            let mut w = World {
                c: Cluster::new(3, 1, &[0, 1, 2], 0),
                created: vec![Vec::new(); producers],
                next_id: 0,
            };
            for o in &ops {
                w.apply(o);
                w.check();
            }
        }
    }
}
