//! Random interleavings of produce, follower fetch, fetch-response handling, ISR changes and
//! clean leader moves between three replicas (real logs), checking after every step:
//!
//! * the leader's high watermark is at most every (maximal-)ISR member's log end offset;
//! * every replica's log up to its high watermark, and every follower's whole log once it
//!   has fetched from the current leader, is a prefix of the leader's log;
//! * no offset acknowledged to an acks=all producer is ever truncated or replaced.

#[path = "replication_harness.rs"]
mod harness;

/// Named `replication::…` so `cargo test -p osprey-broker replication` selects them.
mod replication {
    use std::collections::HashMap;

    use super::harness::Cluster;
    use bytes::Bytes;
    use osprey_broker::error_codes::NONE;
    use osprey_broker::replication::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Produce {
            acks_all: bool,
        },
        Fetch(i32),
        Deliver(i32),
        /// The controller moves leadership to an ISR member.
        MoveLeader(i32),
        /// Time passes beyond replica.lag.time.max.ms and the leader proposes its ISR change.
        LagTick,
        /// The leader proposes an ISR change now (expansions).
        IsrChange,
        /// The controller handles the leader's pending AlterPartition; everyone learns the result.
        AlterPartition,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<bool>().prop_map(|acks_all| Op::Produce { acks_all }),
            4 => (0..3i32).prop_map(Op::Fetch),
            4 => (0..3i32).prop_map(Op::Deliver),
            1 => (0..3i32).prop_map(Op::MoveLeader),
            1 => Just(Op::LagTick),
            1 => Just(Op::IsrChange),
            1 => Just(Op::AlterPartition),
        ]
    }

    struct World {
        c: Cluster,
        inflight: [Option<FetchResponse>; 3],
        /// Followers that appended from the current leader in its current epoch.
        synced: [bool; 3],
        next_id: u64,
        /// acks=all produces waiting: request id → (offset, stored batch bytes).
        waiting: HashMap<u64, (i64, Bytes)>,
        acked: Vec<(i64, Bytes)>,
        /// An AlterPartition on its way to the controller.
        proposal: Option<AlterPartitionProposal>,
    }

    impl World {
        fn new() -> World {
            World {
                c: Cluster::new(3, 2, &[0, 1, 2], 0),
                inflight: [None, None, None],
                synced: [false; 3],
                next_id: 0,
                waiting: HashMap::new(),
                acked: Vec::new(),
                proposal: None,
            }
        }

        fn leader(&self) -> i32 {
            self.c.state.leader
        }

        fn stored_batch(&self, b: i32, offset: i64) -> Bytes {
            self.c.r(b).log().read(offset, 1).unwrap()
        }

        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Produce { acks_all } => {
                    self.next_id += 1;
                    let id = self.next_id;
                    let l = self.leader();
                    let acks = if acks_all { Acks::All } else { Acks::Leader };
                    match self.c.produce(l, id, acks) {
                        ProduceOutcome::Completed(p) if acks_all && p.error_code == NONE => {
                            let bytes = self.stored_batch(l, p.base_offset);
                            self.acked.push((p.base_offset, bytes));
                        }
                        ProduceOutcome::Delayed { base_offset } => {
                            let bytes = self.stored_batch(l, base_offset);
                            self.waiting.insert(id, (base_offset, bytes));
                        }
                        ProduceOutcome::Completed(_) => {}
                        ProduceOutcome::Rejected(r) => panic!("valid batch refused: {r}"),
                    }
                }
                Op::Fetch(f) => {
                    if self.inflight[f as usize].is_none() {
                        self.inflight[f as usize] = self.c.fetch(f);
                    }
                }
                Op::Deliver(f) => {
                    if let Some(resp) = self.inflight[f as usize].take() {
                        let outcome = self.c.deliver(f, &resp);
                        if matches!(outcome, FollowerFetchOutcome::Appended { .. }) {
                            self.synced[f as usize] = true;
                        }
                    }
                }
                Op::MoveLeader(to) => {
                    if to != self.leader() && self.c.state.isr.contains(&to) {
                        self.c.elect(to, None);
                        self.synced = [false; 3];
                    }
                }
                Op::LagTick | Op::IsrChange => {
                    if matches!(op, Op::LagTick) {
                        self.c.now += self.c.lag_ms + 1;
                    }
                    let (l, now) = (self.leader(), self.c.now);
                    if let Some(p) = self.c.r_mut(l).isr_changes_due(now) {
                        self.proposal = Some(p);
                    }
                }
                Op::AlterPartition => {
                    if let Some(p) = self.proposal.take() {
                        self.c.round_trip(&p);
                    }
                }
            }
            for b in 0..3 {
                for done in self.c.completions(b) {
                    if let Some(w) = self.waiting.remove(&done.request_id) {
                        if done.error_code == NONE {
                            self.acked.push(w);
                        }
                    }
                }
            }
        }

        fn check(&self) -> Result<(), TestCaseError> {
            let l = self.leader();
            let leader = self.c.r(l);
            let hw = leader.high_watermark();
            let ls = leader.leader_state().expect("the elected broker leads");
            // The committed ISR, and any member a pending AlterPartition would add (KIP-497).
            for m in ls.maximal_isr() {
                prop_assert!(
                    self.c.r(m).log_end_offset() >= hw,
                    "HW {hw} above ISR member {m}'s LEO {}",
                    self.c.r(m).log_end_offset()
                );
            }
            let leader_log = self.c.log_bytes(l);
            // Every batch holds one record of the same size, so offsets map to byte ranges.
            let size = if leader.log_end_offset() > 0 {
                leader_log.len() / leader.log_end_offset() as usize
            } else {
                0
            };
            for b in 0..3 {
                if b == l {
                    continue;
                }
                let r = self.c.r(b);
                let log = self.c.log_bytes(b);
                let committed = r.high_watermark() as usize * size;
                prop_assert!(
                    leader_log.starts_with(&log[..committed.min(log.len())]),
                    "broker {b}'s committed prefix (HW {}) differs from the leader's",
                    r.high_watermark()
                );
                if self.synced[b as usize] {
                    prop_assert!(
                        leader_log.starts_with(&log),
                        "follower {b} is not a prefix of leader {l}"
                    );
                }
            }
            for (offset, bytes) in &self.acked {
                prop_assert!(
                    *offset < leader.log_end_offset(),
                    "acked offset {offset} truncated"
                );
                let at = *offset as usize * size;
                prop_assert_eq!(
                    &leader_log[at..at + size],
                    &bytes[..],
                    "acked offset {} replaced",
                    offset
                );
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_interleavings_keep_the_replication_invariants(ops in proptest::collection::vec(op(), 1..80)) {
            let mut w = World::new();
            for op in &ops {
                w.apply(op);
                w.check()?;
            }
        }
    }
}
