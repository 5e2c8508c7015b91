//! Random runs of a simulated quorum: voters exchange messages through a network that
//! delivers them in any order or loses them, time out whenever the schedule says, crash
//! (losing what the leader had not flushed) and restart from their quorum state. After
//! every step the model's safety properties must hold: at most one leader per epoch,
//! a committed entry is never lost (every later leader has it, nothing different is ever
//! committed at its offset), and log matching (two logs with an entry of the same epoch at
//! an offset agree up to it).
//!
//! Snapshots (KIP-630) happen too: a voter snapshots its committed prefix and deletes part
//! of its log below it; a leader answers a fetch below its log start with its snapshot id,
//! and the follower fetches the snapshot (FetchSnapshot) and installs it. A node's `log`
//! here keeps the entries a snapshot stands for, so the checks compare whole histories;
//! `start` is where its stored log begins, and no Fetch may read below it.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// A log entry as the simulation stores it: the epoch and a unique record id (0 is a
/// LeaderChange record).
type Entry = (i32, u64);

/// `controller.quorum.election.timeout.ms` and `controller.quorum.fetch.timeout.ms` at
/// Kafka's defaults, for the timed runs.
const ELECTION_MS: u64 = 1_000;
const FETCH_MS: u64 = 2_000;

enum Msg {
    Request(ReplicaId, ReplicaId, Request),
    Vote(ReplicaId, ReplicaId, VoteResponse),
    Epoch(ReplicaId, EpochResponse),
    Fetch(ReplicaId, ReplicaId, FetchRequest),
    FetchResponse(ReplicaId, FetchResponse),
    FetchSnapshot(ReplicaId, ReplicaId, FetchSnapshotRequest),
    /// The answer to a FetchSnapshot: the leader's epoch and id, and the snapshot's
    /// entries when served.
    SnapshotResponse(
        ReplicaId,
        i32,
        Option<ReplicaId>,
        Result<(SnapshotId, Vec<Entry>), i16>,
    ),
}

struct Node {
    core: QuorumCore,
    log: Vec<Entry>,
    flushed: usize,
    state: QuorumState,
    alive: bool,
    /// The stored log starts here; below it only the snapshot remains.
    start: usize,
    /// The latest snapshot and the entries it stands for.
    snapshot: Option<(SnapshotId, Vec<Entry>)>,
    /// A fetched snapshot, until the core installs it.
    installing: Option<(SnapshotId, Vec<Entry>)>,
    /// Snapshots installed (for the test that wants to see one).
    installs: usize,
    /// When the armed timer fires ([`Sim::run_for`] only; random schedules time out at will).
    deadline: Option<u64>,
}

struct Sim {
    voters: Vec<ReplicaId>,
    nodes: BTreeMap<ReplicaId, Node>,
    net: Vec<Msg>,
    next_record: u64,
    leader_of_epoch: BTreeMap<i32, ReplicaId>,
    /// Per offset: the committed entry and the epoch of the leader that first committed it.
    committed: Vec<(Entry, i32)>,
    /// Whether the voters run Pre-Vote (KIP-996).
    pre_vote: bool,
    /// Simulated time in ms ([`Sim::run_for`]).
    now: u64,
}

impl Sim {
    fn new(n: i32) -> Sim {
        Sim::with_pre_vote(n, true)
    }

    fn with_pre_vote(n: i32, pre_vote: bool) -> Sim {
        let voters: Vec<ReplicaId> = (1..=n).collect();
        let mut sim = Sim {
            voters: voters.clone(),
            nodes: BTreeMap::new(),
            net: Vec::new(),
            next_record: 1,
            leader_of_epoch: BTreeMap::new(),
            committed: Vec::new(),
            pre_vote,
            now: 0,
        };
        for &id in &voters {
            let core = QuorumCore::restart(
                id,
                voters.clone(),
                QuorumState::default(),
                LogSummary::default(),
            )
            .with_pre_vote(pre_vote);
            sim.nodes.insert(
                id,
                Node {
                    core,
                    log: Vec::new(),
                    flushed: 0,
                    state: QuorumState::default(),
                    alive: true,
                    start: 0,
                    snapshot: None,
                    installing: None,
                    installs: 0,
                    deadline: None,
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
                        assert!(to as usize >= node.start, "truncated below the log start");
                        node.log.truncate(to as usize);
                        node.flushed = node.flushed.min(node.log.len());
                    }
                    Effect::InstallSnapshot(sid) => {
                        let (i, entries) = node.installing.take().expect("a fetched snapshot");
                        assert_eq!(i, sid);
                        node.log = entries.clone();
                        node.flushed = node.log.len();
                        node.start = node.log.len();
                        node.snapshot = Some((sid, entries));
                        node.installs += 1;
                    }
                    Effect::Send(to, r) => self.net.push(Msg::Request(id, to, r)),
                    Effect::HighWatermark(hw) => self.check_commit(id, hw as usize),
                    Effect::SetTimer(t) => {
                        // Kafka's defaults: election timeout 1 s, fetch timeout 2 s, each plus
                        // up to 1 s of jitter (as the driver draws it); the jitter is a fixed
                        // function of voter and time.
                        let jitter = (id as u64 * 7919 + self.now * 31) % ELECTION_MS;
                        node.deadline = match t {
                            Timer::Off => None,
                            Timer::Election => Some(self.now + ELECTION_MS + jitter),
                            Timer::Fetch => Some(self.now + FETCH_MS + jitter),
                            Timer::Backoff => Some(self.now + jitter / 2),
                        };
                    }
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
                assert_eq!(node.core.log().start_offset() as usize, node.start);
                if let Some((sid, entries)) = &node.snapshot {
                    assert_eq!(node.core.log().snapshot(), Some(*sid));
                    assert_eq!(&node.log[..entries.len()], &entries[..]);
                }
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

    /// As [`Sim::weighted`], with snapshots, FetchSnapshot and more crashes, so that voters
    /// fall behind a leader's log start and catch up through its snapshot.
    fn weighted_with_snapshots(kind: u8) -> u8 {
        // Fewer timeouts than `weighted`: leaders last long enough to commit, snapshot and
        // delete their log while a crashed voter is away.
        match kind % 64 {
            0..=27 => 0,
            28 => 3,
            29 => 4,
            30..=41 => 5,
            42..=47 => 6,
            48..=52 => 7,
            53..=55 => 8,
            56..=59 => 9,
            _ => 10,
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
                    // The snapshot file is durable on its own: a log that lost its unflushed
                    // tail below the snapshot's end restarts at the snapshot (the driver's
                    // `open_snapshot`).
                    if let Some((sid, entries)) = &node.snapshot {
                        if node.log.len() < sid.end_offset as usize {
                            node.log = entries.clone();
                            node.flushed = node.log.len();
                            node.start = node.log.len();
                        }
                    }
                    let snapshot = node.snapshot.as_ref().map(|(sid, _)| *sid);
                    node.core = QuorumCore::restart(
                        id,
                        voters,
                        node.state,
                        Self::summary(&node.log, node.flushed)
                            .with_snapshot(node.start as i64, snapshot),
                    )
                    .with_pre_vote(self.pre_vote);
                    self.run_effects(id);
                }
            }
            // Snapshot the committed prefix and delete some of the log below it (whole
            // segments: anywhere between the old start and the snapshot's end).
            9 if self.alive(id) => {
                let node = self.nodes.get_mut(&id).unwrap();
                let hw = node.core.high_watermark() as usize;
                let newer = node
                    .snapshot
                    .as_ref()
                    .is_none_or(|(s, _)| (s.end_offset as usize) < hw);
                if hw > 0 && newer {
                    let sid = SnapshotId {
                        end_offset: hw as i64,
                        epoch: node.log[hw - 1].0,
                    };
                    // Half the time everything below the snapshot goes.
                    let start = if y.is_multiple_of(2) {
                        hw
                    } else {
                        (node.start + y / 2 % (hw - node.start + 1)).min(hw)
                    };
                    node.core.snapshot_taken(sid, start as i64);
                    node.snapshot = Some((sid, node.log[..hw].to_vec()));
                    node.start = start;
                    self.run_effects(id);
                }
            }
            // Every voter waiting for a snapshot asks for it.
            10 => {
                for (&id, node) in &self.nodes {
                    if let Some((to, req)) = node.core.snapshot_request().filter(|_| node.alive) {
                        self.net.push(Msg::FetchSnapshot(id, to, req));
                    }
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

    /// Voter 1 times out and every message is delivered: it leads.
    fn elect_first(&mut self) {
        self.step(4, 0, 0);
        while !self.net.is_empty() {
            self.step(0, 0, 0);
        }
    }

    /// The voters a message travels between (`None`: unknown, the answer's sender).
    fn endpoints(msg: &Msg) -> (Option<ReplicaId>, ReplicaId) {
        match msg {
            Msg::Request(from, to, _)
            | Msg::Vote(from, to, _)
            | Msg::Fetch(from, to, _)
            | Msg::FetchSnapshot(from, to, _) => (Some(*from), *to),
            Msg::Epoch(to, _) | Msg::FetchResponse(to, _) | Msg::SnapshotResponse(to, ..) => {
                (None, *to)
            }
        }
    }

    /// Runs `ms` of simulated time in 10 ms ticks, as the driver would: timers fire at their
    /// deadlines, followers fetch every 50 ms, the leader flushes at once, re-sends
    /// BeginQuorumEpoch every 200 ms and checks its quorum every 1.5 fetch timeouts, and
    /// every message is delivered within its tick, except those to or from a voter in
    /// `cut` (a network partition), which are lost. `inject` may add requests each tick.
    fn run_for(&mut self, ms: u64, cut: &[ReplicaId], mut inject: impl FnMut(&mut Sim)) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            for id in self.voters.clone() {
                let node = self.nodes.get_mut(&id).unwrap();
                if !node.alive {
                    continue;
                }
                if node.deadline.is_some_and(|d| d <= self.now) {
                    node.deadline = None;
                    node.core.timeout();
                }
                if node.core.is_leader() {
                    node.flushed = node.log.len();
                    let end = node.log.len() as i64;
                    node.core.flushed(end);
                    if self.now.is_multiple_of(200) {
                        node.core.send_begin_quorum_epoch();
                    }
                    if self.now.is_multiple_of(FETCH_MS * 3 / 2) {
                        node.core.check_quorum();
                    }
                }
                self.run_effects(id);
                if self.now.is_multiple_of(50) {
                    if let Some((to, req)) = self.nodes[&id].core.fetch_request() {
                        self.net.push(Msg::Fetch(id, to, req));
                    }
                }
            }
            inject(self);
            while !self.net.is_empty() {
                let msg = self.net.remove(0);
                let (from, to) = Self::endpoints(&msg);
                if cut.contains(&to) || from.is_some_and(|f| cut.contains(&f)) {
                    continue;
                }
                self.deliver(msg);
            }
            self.check();
        }
    }

    /// The leader that every live voter agrees on, with its epoch.
    fn agreed_leader(&self) -> Option<(ReplicaId, i32)> {
        let leader = self
            .nodes
            .iter()
            .find(|(_, n)| n.alive && n.core.is_leader())?;
        let (id, epoch) = (*leader.0, leader.1.core.epoch());
        self.nodes
            .values()
            .filter(|n| n.alive)
            .all(|n| n.core.epoch() == epoch && n.core.leader() == Some(id))
            .then_some((id, epoch))
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
                let start = node.start as i64;
                let resp = answer
                    .into_response(&req, |from, to| {
                        assert!(from >= start, "a fetch reads below the log start");
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
            Msg::FetchSnapshot(from, to, req) => {
                if !self.alive(to) {
                    return;
                }
                let node = self.nodes.get_mut(&to).unwrap();
                let reply = match node.core.handle_fetch_snapshot(req) {
                    FetchSnapshotAnswer::Serve {
                        epoch,
                        leader,
                        snapshot,
                    } => {
                        let (sid, entries) = node.snapshot.clone().expect("a served snapshot");
                        assert_eq!(sid, snapshot);
                        Msg::SnapshotResponse(from, epoch, Some(leader), Ok((sid, entries)))
                    }
                    FetchSnapshotAnswer::Error {
                        code,
                        epoch,
                        leader,
                    } => Msg::SnapshotResponse(from, epoch, leader, Err(code)),
                };
                self.run_effects(to);
                self.net.push(reply);
            }
            Msg::SnapshotResponse(to, epoch, leader, result) => {
                if !self.alive(to) {
                    return;
                }
                let node = self.nodes.get_mut(&to).unwrap();
                node.core.handle_fetch_snapshot_response(
                    epoch,
                    leader,
                    result.as_ref().map(|_| ()).map_err(|c| *c),
                );
                if let Ok((sid, entries)) = result {
                    let wanted = node.core.snapshot_request().map(|(_, r)| r.snapshot);
                    if wanted == Some(sid) {
                        node.installing = Some((sid, entries));
                        assert!(node.core.install_snapshot(sid));
                    }
                }
                self.run_effects(to);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_schedules_keep_the_quorum_safe(
        voters in 1i32..=5,
        pre_vote in any::<bool>(),
        steps in prop::collection::vec((any::<u8>(), any::<u8>() , any::<u8>()), 1..400),
    ) {
        let mut sim = Sim::with_pre_vote(voters, pre_vote);
        for (kind, x, y) in steps {
            sim.step(Sim::weighted(kind), x as usize, y as usize);
        }
    }
}

proptest! {
    // More cases: a voter falling behind a leader's log start needs a crash, commits and a
    // snapshot in the right order.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_schedules_with_snapshots_keep_the_quorum_safe(
        voters in 2i32..=5,
        pre_vote in any::<bool>(),
        steps in prop::collection::vec((any::<u8>(), any::<u8>() , any::<u8>()), 1..1000),
    ) {
        let mut sim = Sim::with_pre_vote(voters, pre_vote);
        // Start with a leader, so that runs get to commit and snapshot.
        sim.elect_first();
        for (kind, x, y) in steps {
            sim.step(Sim::weighted_with_snapshots(kind), x as usize, y as usize);
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
                       // Voter 3's fetch timer fires (its pre-votes are lost): it no longer hears from a
                       // leader, so it grants pre-votes; then voter 2 stands.
    sim.step(4, 2, 0);
    sim.net.clear();
    sim.step(4, 1, 0);
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    assert!(sim.nodes[&2].core.is_leader());
    assert_eq!(sim.nodes[&2].log.len(), 3);
}

/// A follower that was down while the leader snapshotted and deleted its log catches up
/// through the snapshot, then through ordinary fetches.
#[test]
fn a_follower_behind_the_log_start_catches_up_through_the_snapshot() {
    let mut sim = Sim::new(3);
    sim.step(4, 0, 0);
    while !sim.nodes[&1].core.is_leader() {
        sim.step(0, 0, 0);
    }
    sim.step(8, 2, 0); // voter 3 crashes
    for _ in 0..5 {
        sim.step(6, 0, 0);
        sim.step(7, 0, 0);
        while !sim.net.is_empty() {
            sim.step(0, 0, 0);
        }
        sim.step(5, 1, 0);
        while !sim.net.is_empty() {
            sim.step(0, 0, 0);
        }
    }
    sim.step(5, 1, 0);
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    let hw = sim.nodes[&1].core.high_watermark();
    assert_eq!(hw, 6);
    // The leader snapshots at its high watermark and deletes everything below it.
    sim.step(9, 0, 0);
    assert_eq!(sim.nodes[&1].core.log().start_offset(), 6);
    sim.step(8, 2, 0); // voter 3 returns with an empty log
                       // The leader tells it again who leads (the driver resends BeginQuorumEpoch).
    sim.nodes
        .get_mut(&1)
        .unwrap()
        .core
        .send_begin_quorum_epoch();
    sim.run_effects(1);
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    sim.step(5, 2, 0);
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    assert!(sim.nodes[&3].core.snapshot_request().is_some());
    sim.step(10, 2, 0);
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    assert_eq!(sim.nodes[&3].installs, 1);
    assert_eq!(sim.nodes[&3].core.log().start_offset(), 6);
    sim.step(6, 0, 0);
    sim.step(7, 0, 0);
    sim.step(5, 2, 0);
    while !sim.net.is_empty() {
        sim.step(0, 0, 0);
    }
    assert_eq!(sim.nodes[&3].log, sim.nodes[&1].log);
}

/// The partition: one follower cut off from the quorum for a minute of simulated
/// time, then reconnected. Returns the agreed leader and epoch before the cut and after
/// healing, and the cut voter's highest epoch while it was away.
fn isolate_a_follower_for_a_minute(
    pre_vote: bool,
) -> ((ReplicaId, i32), Option<(ReplicaId, i32)>, i32) {
    let mut sim = Sim::with_pre_vote(3, pre_vote);
    sim.run_for(5_000, &[], |_| {});
    let before = sim.agreed_leader().expect("a leader within 5 s");
    let cut = *sim
        .voters
        .iter()
        .find(|&&v| v != before.0)
        .expect("a follower");
    let mut highest = 0;
    for _ in 0..60 {
        sim.run_for(1_000, &[cut], |_| {});
        highest = highest.max(sim.nodes[&cut].core.epoch());
        // The rest of the quorum keeps its leader throughout.
        assert!(sim.nodes[&before.0].core.is_leader());
    }
    sim.run_for(10_000, &[], |_| {});
    (before, sim.agreed_leader(), highest)
}

#[test]
fn with_pre_vote_a_voter_cut_off_for_a_minute_deposes_no_one() {
    let (before, after, highest) = isolate_a_follower_for_a_minute(true);
    assert_eq!(highest, before.1, "the cut-off voter stayed in its epoch");
    assert_eq!(
        after,
        Some(before),
        "same leader, same epoch, the voter follows it again"
    );
}

#[test]
fn without_pre_vote_a_voter_cut_off_for_a_minute_deposes_the_leader() {
    let (before, after, highest) = isolate_a_follower_for_a_minute(false);
    assert!(
        highest > before.1 + 10,
        "the cut-off voter raised its epoch: {highest}"
    );
    let (_, epoch) = after.expect("a leader again after healing");
    assert!(
        epoch > highest - 1 && epoch > before.1,
        "the leader of {before:?} was deposed"
    );
}

/// A flood of forged Votes from a live voter's id (voter 3), 100 a second with a rising
/// epoch, for a minute. Returns how many leader changes the quorum saw and how many records
/// the leader committed during it.
fn flood_of_forged_votes(pre_vote: bool) -> (usize, i64) {
    let mut sim = Sim::with_pre_vote(3, pre_vote);
    sim.run_for(5_000, &[], |_| {});
    let (leader, epoch) = sim.agreed_leader().expect("a leader within 5 s");
    let mut forged_epoch = epoch;
    let mut leaders = vec![(leader, epoch)];
    let hw_before = sim.nodes[&leader].core.high_watermark();
    for _ in 0..60 {
        sim.run_for(1_000, &[], |sim| {
            forged_epoch += 1;
            let vote = VoteRequest {
                pre_vote: false,
                candidate_epoch: forged_epoch,
                candidate_id: 3,
                last_epoch: 0,
                end_offset: 0,
            };
            for to in [1, 2] {
                sim.net.push(Msg::Request(3, to, Request::Vote(vote)));
            }
        });
        // The active controller writes a record a second.
        if let Some((l, e)) = sim.agreed_leader() {
            if leaders.last() != Some(&(l, e)) {
                leaders.push((l, e));
            }
            sim.step(6, (l - 1) as usize, 0);
        }
    }
    let hw = sim
        .agreed_leader()
        .map_or(0, |(l, _)| sim.nodes[&l].core.high_watermark());
    (leaders.len() - 1, hw - hw_before)
}

#[test]
fn with_pre_vote_a_flood_of_forged_votes_keeps_the_leader() {
    let (changes, committed) = flood_of_forged_votes(true);
    assert_eq!(changes, 0);
    assert!(committed >= 55, "records kept committing: {committed}");
}

#[test]
fn without_pre_vote_a_flood_of_forged_votes_stalls_the_quorum() {
    let (changes, committed) = flood_of_forged_votes(false);
    assert!(
        changes > 0 || committed < 10,
        "{changes} changes, {committed} committed"
    );
}

/// Liveness at Kafka's default timeouts: the leader dies (for good) and the two others elect
/// a new one. With Pre-Vote the first follower to time out is refused by the other, which
/// still waits for its own fetch timer; it must not take that refusal as proof that the dead
/// leader lives. Returns the time to the new leader.
fn a_dead_leader_is_replaced(pre_vote: bool) -> u64 {
    let mut sim = Sim::with_pre_vote(3, pre_vote);
    sim.run_for(5_000, &[], |_| {});
    let (leader, epoch) = sim.agreed_leader().expect("a leader within 5 s");
    sim.nodes.get_mut(&leader).unwrap().alive = false;
    let died = sim.now;
    while sim.now - died < 20_000 {
        sim.run_for(10, &[], |_| {});
        let new = sim
            .nodes
            .iter()
            .find(|(_, n)| n.alive && n.core.is_leader())
            .map(|(id, n)| (*id, n.core.epoch()));
        if let Some((id, e)) = new {
            assert!(id != leader && e > epoch);
            return sim.now - died;
        }
    }
    panic!("no new leader 20 s after leader {leader} died");
}

#[test]
fn a_dead_leader_is_replaced_within_a_few_timeouts() {
    for pre_vote in [true, false] {
        let took = a_dead_leader_is_replaced(pre_vote);
        // The fetch timeout (2-3 s) and a pre-vote round or two (election timeout 1-2 s).
        assert!(
            took <= FETCH_MS + 4 * ELECTION_MS,
            "pre_vote {pre_vote}: {took} ms"
        );
    }
}
