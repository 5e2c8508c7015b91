//! Random runs of a simulated quorum: voters exchange messages through a network that
//! delivers them in any order or loses them, time out whenever the schedule says, crash
//! (losing what the leader had not flushed) and restart from their quorum state. After
//! every step the model's safety properties must hold: at most one leader per epoch,
//! a committed entry is never lost (every later leader has it, nothing different is ever
//! committed at its offset), and log matching (two logs with an entry of the same epoch at
//! an offset agree up to it).

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// A log entry as the simulation stores it: the epoch and a unique record id (0 is a
/// LeaderChange record).
type Entry = (i32, u64);

enum Msg {
    Request(ReplicaId, ReplicaId, Request),
    Vote(ReplicaId, ReplicaId, VoteResponse),
    Epoch(ReplicaId, EpochResponse),
    Fetch(ReplicaId, ReplicaId, FetchRequest),
    FetchResponse(ReplicaId, FetchResponse),
}

struct Node {
    core: QuorumCore,
    log: Vec<Entry>,
    flushed: usize,
    state: QuorumState,
    alive: bool,
}

struct Sim {
    voters: Vec<ReplicaId>,
    nodes: BTreeMap<ReplicaId, Node>,
    net: Vec<Msg>,
    next_record: u64,
    leader_of_epoch: BTreeMap<i32, ReplicaId>,
    /// Per offset: the committed entry and the epoch of the leader that first committed it.
    committed: Vec<(Entry, i32)>,
}

impl Sim {
    fn new(n: i32) -> Sim {
        let voters: Vec<ReplicaId> = (1..=n).collect();
        let mut sim = Sim {
            voters: voters.clone(),
            nodes: BTreeMap::new(),
            net: Vec::new(),
            next_record: 1,
            leader_of_epoch: BTreeMap::new(),
            committed: Vec::new(),
        };
        for &id in &voters {
            let core = QuorumCore::restart(
                id,
                voters.clone(),
                QuorumState::default(),
                LogSummary::default(),
            );
            sim.nodes.insert(
                id,
                Node {
                    core,
                    log: Vec::new(),
                    flushed: 0,
                    state: QuorumState::default(),
                    alive: true,
                },
            );
            sim.run_effects(id);
        }
        sim
    }

    fn summary(log: &[Entry], flushed: usize) -> LogSummary {
        let mut s = LogSummary::default();
        for &(e, _) in log {
            s.append(e, 1);
        }
        s.flush(flushed as i64);
        s
    }

    /// Performs the node's effects in order; appends replicated from a leader are flushed at
    /// once (the driver fsyncs the metadata log), the leader's own appends only on `Flush`.
    fn run_effects(&mut self, id: ReplicaId) {
        loop {
            let node = self.nodes.get_mut(&id).unwrap();
            let effects = node.core.take_effects();
            if effects.is_empty() {
                return;
            }
            for e in effects {
                let node = self.nodes.get_mut(&id).unwrap();
                match e {
                    Effect::PersistQuorumState(s) => node.state = s,
                    Effect::AppendLeaderChange { offset, epoch } => {
                        assert_eq!(offset as usize, node.log.len());
                        node.log.push((epoch, 0));
                    }
                    Effect::Append(batches) => {
                        for b in batches {
                            assert_eq!(b.base_offset as usize, node.log.len());
                            let record = u64::from_be_bytes(b.data[..8].try_into().unwrap());
                            node.log.push((b.epoch, record));
                        }
                        node.flushed = node.log.len();
                        let end = node.log.len() as i64;
                        node.core.flushed(end);
                    }
                    Effect::Truncate(to) => {
                        node.log.truncate(to as usize);
                        node.flushed = node.flushed.min(node.log.len());
                    }
                    Effect::Send(to, r) => self.net.push(Msg::Request(id, to, r)),
                    Effect::HighWatermark(hw) => self.check_commit(id, hw as usize),
                    Effect::SetTimer(_) => {}
                }
            }
        }
    }

    /// A leader's high watermark commits its prefix; a follower's must agree with it.
    fn check_commit(&mut self, id: ReplicaId, hw: usize) {
        let node = &self.nodes[&id];
        assert!(hw <= node.log.len(), "high watermark past the log end");
        for o in 0..hw {
            match self.committed.get(o) {
                Some((e, _)) => assert_eq!(*e, node.log[o], "a different entry committed at {o}"),
                None => {
                    assert!(
                        node.core.is_leader(),
                        "a follower committed past the leader"
                    );
                    self.committed.push((node.log[o], node.core.epoch()));
                }
            }
        }
    }

    fn check(&mut self) {
        for (id, node) in &self.nodes {
            if node.alive && node.core.is_leader() {
                let epoch = node.core.epoch();
                let prev = self.leader_of_epoch.insert(epoch, *id);
                assert!(
                    prev.is_none() || prev == Some(*id),
                    "two leaders in epoch {epoch}"
                );
                // Leader completeness, as the model states it: every entry committed in this
                // leader's epoch or an earlier one (a deposed leader that has not heard of
                // later epochs yet need not have later commits).
                for (o, (e, committed_in)) in self.committed.iter().enumerate() {
                    if *committed_in <= epoch {
                        assert_eq!(node.log.get(o), Some(e), "leader {id} lacks committed {o}");
                    }
                }
            }
            if node.alive {
                assert_eq!(node.core.log().end_offset() as usize, node.log.len());
            }
        }
        let logs: Vec<&Vec<Entry>> = self.nodes.values().map(|n| &n.log).collect();
        for a in &logs {
            for b in &logs {
                for o in (0..a.len().min(b.len())).rev() {
                    if a[o].0 == b[o].0 {
                        assert_eq!(a[..=o], b[..=o], "logs disagree below a matching entry");
                        break;
                    }
                }
            }
        }
    }

    fn alive(&self, id: ReplicaId) -> bool {
        self.nodes[&id].alive
    }

    /// Maps a random byte to a step kind, weighted so that runs make progress: mostly
    /// deliveries and fetches, now and then a timeout, a loss or a crash.
    fn weighted(kind: u8) -> u8 {
        match kind % 32 {
            0..=13 => 0,
            14 => 3,
            15..=16 => 4,
            17..=23 => 5,
            24..=26 => 6,
            27..=29 => 7,
            30 => 8,
            _ => 0,
        }
    }

    fn step(&mut self, kind: u8, x: usize, y: usize) {
        let id = self.voters[x % self.voters.len()];
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("STEP kind={kind} node={id} y={y} net={}", self.net.len());
        }
        match kind {
            // Deliver a message.
            0 if !self.net.is_empty() => {
                let msg = self.net.swap_remove(y % self.net.len());
                self.deliver(msg);
            }
            3 if !self.net.is_empty() => {
                let _lost = self.net.swap_remove(y % self.net.len());
            }
            4 if self.alive(id) => {
                self.nodes.get_mut(&id).unwrap().core.timeout();
                self.run_effects(id);
            }
            5 if self.alive(id) => {
                if let Some((to, req)) = self.nodes[&id].core.fetch_request() {
                    self.net.push(Msg::Fetch(id, to, req));
                }
            }
            6 if self.alive(id) => {
                let record = self.next_record;
                let node = self.nodes.get_mut(&id).unwrap();
                if let Ok((base, epoch)) = node.core.append(1) {
                    assert_eq!(base as usize, node.log.len());
                    node.log.push((epoch, record));
                    self.next_record += 1;
                }
                self.run_effects(id);
            }
            7 if self.alive(id) => {
                let node = self.nodes.get_mut(&id).unwrap();
                node.flushed = node.log.len();
                let end = node.log.len() as i64;
                node.core.flushed(end);
                self.run_effects(id);
            }
            8 => {
                let voters = self.voters.clone();
                let node = self.nodes.get_mut(&id).unwrap();
                if node.alive {
                    node.alive = false;
                    node.log.truncate(node.flushed);
                } else {
                    node.alive = true;
                    node.core = QuorumCore::restart(
                        id,
                        voters,
                        node.state,
                        Self::summary(&node.log, node.flushed),
                    );
                    self.run_effects(id);
                }
            }
            _ => {}
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            for (id, n) in &self.nodes {
                eprintln!(
                    "   {id} alive={} {:?} e={} vote={:?} leader={:?} hw={} flushed={} log={:?}",
                    n.alive,
                    n.core.role(),
                    n.core.epoch(),
                    n.core.voted_for(),
                    n.core.leader(),
                    n.core.high_watermark(),
                    n.flushed,
                    n.log
                );
            }
            eprintln!("   committed={:?}", self.committed);
        }
        self.check();
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Request(from, to, req) => {
                if !self.alive(to) {
                    return;
                }
                let core = &mut self.nodes.get_mut(&to).unwrap().core;
                let reply = match req {
                    Request::Vote(v) => Msg::Vote(to, from, core.handle_vote(v)),
                    Request::BeginQuorumEpoch(r) => {
                        Msg::Epoch(from, core.handle_begin_quorum_epoch(r))
                    }
                    Request::EndQuorumEpoch(r) => Msg::Epoch(from, core.handle_end_quorum_epoch(r)),
                };
                // The quorum state is persisted before the answer leaves.
                self.run_effects(to);
                self.net.push(reply);
            }
            Msg::Vote(from, to, resp) => {
                if self.alive(to) {
                    self.nodes
                        .get_mut(&to)
                        .unwrap()
                        .core
                        .handle_vote_response(from, resp);
                    self.run_effects(to);
                }
            }
            Msg::Epoch(to, resp) => {
                if self.alive(to) {
                    self.nodes
                        .get_mut(&to)
                        .unwrap()
                        .core
                        .handle_epoch_response(resp);
                    self.run_effects(to);
                }
            }
            Msg::Fetch(from, to, req) => {
                if !self.alive(to) {
                    return;
                }
                let node = self.nodes.get_mut(&to).unwrap();
                let answer = node.core.handle_fetch(req);
                let resp = answer
                    .into_response(&req, |from, to| {
                        Ok::<_, ()>(
                            (from..to)
                                .map(|o| {
                                    let (e, record) = node.log[o as usize];
                                    Batch {
                                        base_offset: o,
                                        last_offset: o,
                                        epoch: e,
                                        data: Bytes::copy_from_slice(&record.to_be_bytes()),
                                    }
                                })
                                .collect(),
                        )
                    })
                    .unwrap();
                self.run_effects(to);
                self.net.push(Msg::FetchResponse(from, resp));
            }
            Msg::FetchResponse(to, resp) => {
                if self.alive(to) {
                    self.nodes
                        .get_mut(&to)
                        .unwrap()
                        .core
                        .handle_fetch_response(resp);
                    self.run_effects(to);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_schedules_keep_the_quorum_safe(
        voters in 1i32..=5,
        steps in prop::collection::vec((any::<u8>(), any::<u8>() , any::<u8>()), 1..400),
    ) {
        let mut sim = Sim::new(voters);
        for (kind, x, y) in steps {
            sim.step(Sim::weighted(kind), x as usize, y as usize);
        }
    }
}

/// The schedule that matters most, written out: a leader commits, crashes, a new leader is
/// elected by the survivors, and the committed record is still there.
#[test]
fn failover_keeps_committed_records() {
    let mut sim = Sim::new(3);
    // Voter 1 stands and is elected with voter 2's vote.
    sim.step(4, 0, 0);
    while !sim.nodes[&1].core.is_leader() {
        sim.step(0, 0, 0);
    }
    sim.step(7, 0, 0);
    sim.step(6, 0, 0);
    sim.step(7, 0, 0);
    // Deliver everything, then let voters 2 and 3 fetch twice.
    for _ in 0..3 {
        while !sim.net.is_empty() {
            sim.step(0, 0, 0);
        }
        sim.step(5, 1, 0);
        sim.step(5, 2, 0);
    }
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    assert_eq!(sim.nodes[&1].core.high_watermark(), 2);
    assert_eq!(sim.committed.len(), 2);
    sim.step(8, 0, 0); // crash voter 1
    sim.step(4, 1, 0); // voter 2 stands
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    assert!(sim.nodes[&2].core.is_leader());
    assert_eq!(sim.nodes[&2].log.len(), 3);
}
