//! The faults and their seeded schedule. Each step picks one fault, sometimes two of
//! different classes at once (a process fault during a network partition, a disk error on a
//! paused cluster...), holds them for a few seconds, then heals everything: disks cleared,
//! network healed, paused nodes resumed, dead nodes restarted. Every fault and every heal is
//! a history line with its time; the same seed gives the same sequence of choices.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde_json::json;

use super::cluster::{Cluster, Layout, ProcState, Role};
use super::history::History;
use super::observe::Latest;
use osprey_lazyfs::Faults;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// kill -9 of a broker (dedicated layout).
    KillBroker,
    /// kill -9 of the active controller (the quorum leader).
    KillController,
    /// kill -9 of a combined controller+broker node (combined layout).
    KillCombined,
    /// SIGTERM: a controlled shutdown.
    Stop,
    /// SIGSTOP for the fault's duration, then SIGCONT.
    Pause,
    /// One node cut off from every other node and from the clients.
    Isolate,
    /// A minority of the nodes cut off from the majority.
    Split,
    /// Two sides that cannot see each other and one node that sees both.
    Bridge,
    /// The active controller cut off from the brokers only (it still sees the controllers).
    ControllerLeaderCut,
    /// kill -9 and a power cut of its disk: what was never fsynced is lost.
    PowerCut,
    /// Writes or fsyncs on one node's disk fail with EIO.
    DiskEio,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillBroker => "kill-broker",
            FaultKind::KillController => "kill-controller",
            FaultKind::KillCombined => "kill-combined",
            FaultKind::Stop => "stop",
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::Split => "split",
            FaultKind::Bridge => "bridge",
            FaultKind::ControllerLeaderCut => "controller-leader-cut",
            FaultKind::PowerCut => "power-cut",
            FaultKind::DiskEio => "disk-eio",
        }
    }

    /// Faults of one class conflict (two partitions at once are one partition).
    fn class(self) -> u8 {
        match self {
            FaultKind::Isolate
            | FaultKind::Split
            | FaultKind::Bridge
            | FaultKind::ControllerLeaderCut => 1,
            FaultKind::DiskEio => 2,
            _ => 0,
        }
    }

    /// The faults that make sense on a layout.
    pub fn for_layout(layout: Layout) -> Vec<FaultKind> {
        use FaultKind::*;
        match layout {
            Layout::Dedicated => vec![
                KillBroker,
                KillController,
                Stop,
                Pause,
                Isolate,
                Split,
                Bridge,
                ControllerLeaderCut,
                PowerCut,
                DiskEio,
            ],
            Layout::Combined => vec![
                KillCombined,
                KillController,
                Stop,
                Pause,
                Isolate,
                Split,
                Bridge,
                PowerCut,
                DiskEio,
            ],
        }
    }
}

/// How long faults last and how long the cluster rests between them.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub hold: (u64, u64),
    pub rest: (u64, u64),
}

impl Timing {
    pub fn hold(&self, rng: &mut StdRng) -> Duration {
        Duration::from_millis(rng.random_range(self.hold.0..=self.hold.1))
    }
    pub fn rest(&self, rng: &mut StdRng) -> Duration {
        Duration::from_millis(rng.random_range(self.rest.0..=self.rest.1))
    }
}

/// Applies and heals faults on one cluster.
pub struct Nemesis<'a> {
    pub cluster: &'a mut Cluster,
    pub history: History,
    pub latest: Arc<Mutex<Latest>>,
    pub rng: StdRng,
    pub kinds: Vec<FaultKind>,
    next_id: u64,
    /// Faults applied and not healed yet: (id, kind).
    active: Vec<(u64, FaultKind)>,
}

impl<'a> Nemesis<'a> {
    pub fn new(
        cluster: &'a mut Cluster,
        history: History,
        latest: Arc<Mutex<Latest>>,
        rng: StdRng,
        kinds: Vec<FaultKind>,
    ) -> Self {
        Nemesis {
            cluster,
            history,
            latest,
            rng,
            kinds,
            next_id: 1,
            active: Vec::new(),
        }
    }

    /// Chooses this step's faults: one, or with probability 1/3 two of different classes.
    pub fn choose(&mut self) -> Vec<FaultKind> {
        let first = *self
            .kinds
            .choose(&mut self.rng)
            .expect("at least one fault kind");
        let mut out = vec![first];
        if self.rng.random_range(0..3) == 0 {
            let others: Vec<_> = self
                .kinds
                .iter()
                .copied()
                .filter(|k| k.class() != first.class())
                .collect();
            if let Some(second) = others.choose(&mut self.rng) {
                out.push(*second);
            }
        }
        out
    }

    fn running(&self, filter: impl Fn(Role) -> bool) -> Vec<i32> {
        self.cluster
            .nodes
            .iter()
            .filter(|n| n.state == ProcState::Running && filter(n.role))
            .map(|n| n.id)
            .collect()
    }

    fn quorum_leader(&self) -> Option<i32> {
        let leader = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .quorum_leader;
        leader.filter(|id| self.cluster.node(*id).state == ProcState::Running)
    }

    fn pick(&mut self, ids: Vec<i32>) -> Option<i32> {
        ids.choose(&mut self.rng).copied()
    }

    /// Applies one fault now and records it; `None` when it had no target (e.g. every
    /// broker already down), which is recorded too.
    pub fn apply(&mut self, kind: FaultKind) -> Result<Option<u64>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut detail = json!({});
        let nodes: Vec<i32> = match kind {
            FaultKind::KillBroker | FaultKind::KillCombined => {
                let target = self.pick(self.running(|r| r.is_broker()));
                if let Some(t) = target {
                    self.cluster.kill(t)?;
                }
                target.into_iter().collect()
            }
            FaultKind::KillController => {
                let target = self
                    .quorum_leader()
                    .or_else(|| self.pick(self.running(|r| r.is_controller())));
                if let Some(t) = target {
                    self.cluster.kill(t)?;
                }
                target.into_iter().collect()
            }
            FaultKind::Stop => {
                let target = self.pick(self.running(|_| true));
                if let Some(t) = target {
                    let clean = self.cluster.stop(t, Duration::from_secs(15))?;
                    detail = json!({"clean": clean});
                }
                target.into_iter().collect()
            }
            FaultKind::Pause => {
                let target = self.pick(self.running(|_| true));
                if let Some(t) = target {
                    self.cluster.pause(t);
                }
                target.into_iter().collect()
            }
            FaultKind::PowerCut => {
                let all = self.cluster.ids();
                let target = self.pick(all);
                if let Some(t) = target {
                    self.cluster.kill(t)?;
                    let report = self.cluster.node(t).disk.crash();
                    detail = json!({
                        "files_reverted": report.files_reverted,
                        "bytes_dropped": report.bytes_dropped,
                        "entries_vanished": report.entries_vanished,
                    });
                }
                target.into_iter().collect()
            }
            FaultKind::DiskEio => {
                let all = self.cluster.ids();
                let target = self.pick(all);
                if let Some(t) = target {
                    let fsync = self.rng.random_bool(0.5);
                    self.cluster.node(t).disk.set_faults(Faults {
                        fsync_eio: fsync,
                        write_eio: !fsync,
                    });
                    detail = json!({"mode": if fsync { "fsync" } else { "write" }});
                }
                target.into_iter().collect()
            }
            FaultKind::Isolate => {
                let all = self.cluster.ids();
                let target = self.pick(all.clone());
                if let Some(t) = target {
                    let rest: Vec<i32> = all.into_iter().filter(|i| *i != t).collect();
                    self.cluster.net.partition(&[vec![t], rest], &[t])?;
                }
                target.into_iter().collect()
            }
            FaultKind::Split => {
                // A minority of the controllers with some brokers, against the rest.
                let mut controllers = self.cluster.controller_ids();
                let mut brokers: Vec<i32> = self
                    .cluster
                    .broker_ids()
                    .into_iter()
                    .filter(|b| !controllers.contains(b))
                    .collect();
                controllers.shuffle(&mut self.rng);
                brokers.shuffle(&mut self.rng);
                let k = controllers.len().saturating_sub(1) / 2;
                let k = k.max(1);
                let b = self.rng.random_range(0..=brokers.len());
                let minority: Vec<i32> = controllers[..k]
                    .iter()
                    .chain(&brokers[..b])
                    .copied()
                    .collect();
                let majority: Vec<i32> = self
                    .cluster
                    .ids()
                    .into_iter()
                    .filter(|i| !minority.contains(i))
                    .collect();
                self.cluster
                    .net
                    .partition(&[minority.clone(), majority.clone()], &[])?;
                detail = json!({"minority": minority, "majority": majority});
                minority
            }
            FaultKind::Bridge => {
                let mut all = self.cluster.ids();
                all.shuffle(&mut self.rng);
                let bridge = all[0];
                let rest = &all[1..];
                let half = rest.len() / 2;
                let (a, c) = rest.split_at(half.max(1));
                let pairs: Vec<(i32, i32)> = a
                    .iter()
                    .flat_map(|x| c.iter().map(move |y| (*x, *y)))
                    .collect();
                self.cluster.net.cut_pairs(&pairs)?;
                detail = json!({"bridge": bridge, "side_a": a, "side_b": c});
                vec![bridge]
            }
            FaultKind::ControllerLeaderCut => {
                let leader = self.quorum_leader();
                if let Some(l) = leader {
                    let pairs: Vec<(i32, i32)> = self
                        .cluster
                        .broker_ids()
                        .into_iter()
                        .filter(|b| *b != l)
                        .map(|b| (l, b))
                        .collect();
                    self.cluster.net.cut_pairs(&pairs)?;
                }
                leader.into_iter().collect()
            }
        };
        self.history.record(json!({
            "op": "fault",
            "id": id,
            "kind": kind.name(),
            "nodes": nodes,
            "detail": detail,
            "applied": !nodes.is_empty(),
        }));
        if nodes.is_empty() {
            return Ok(None);
        }
        self.active.push((id, kind));
        Ok(Some(id))
    }

    /// Ends every active fault and brings every node back.
    pub fn heal(&mut self) -> Result<()> {
        for n in &self.cluster.nodes {
            n.disk.set_faults(Faults::default());
        }
        self.cluster.net.heal()?;
        self.note_exits();
        for id in self.cluster.ids() {
            match self.cluster.node(id).state {
                ProcState::Paused => {
                    self.cluster.resume(id);
                }
                ProcState::Down => self.cluster.start(id)?,
                ProcState::Running => {}
            }
        }
        for (id, kind) in std::mem::take(&mut self.active) {
            self.history
                .record(json!({"op": "heal", "id": id, "kind": kind.name()}));
        }
        Ok(())
    }

    /// Waits (at most `within`) until the brokers report every partition led and fully
    /// replicated, and records how long that took. Without it faults pile up faster than
    /// the cluster recovers: a follower killed before the previous victim rejoined the ISR
    /// leaves one replica, and killing that one takes the partition offline for good (a
    /// broker back from a crash is not eligible, KIP-966), which ends what the run can
    /// measure.
    pub fn wait_until_recovered(&mut self, within: Duration) -> bool {
        let start = super::history::now_ms();
        let deadline = std::time::Instant::now() + within;
        loop {
            let l = *self.latest.lock().unwrap_or_else(|e| e.into_inner());
            // Only an observation made after the heal counts.
            if l.healthy && l.healthy_at > start + 500 {
                self.history.record(json!({
                    "op": "recovered",
                    "after_ms": super::history::now_ms() - start,
                }));
                return true;
            }
            if std::time::Instant::now() > deadline {
                self.history.record(json!({
                    "op": "not-recovered",
                    "after_ms": super::history::now_ms() - start,
                }));
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
            self.note_exits();
        }
    }

    /// Records nodes whose process exited by itself (a disk error, or a crash to look at).
    pub fn note_exits(&mut self) {
        for id in self.cluster.ids() {
            if let Some(status) = self.cluster.exited(id) {
                let disk = self.cluster.node(id).disk.faults();
                self.history.record(json!({
                    "op": "node-exited",
                    "node": id,
                    "status": status.to_string(),
                    "disk_fault": disk.fsync_eio || disk.write_eio,
                    "log_tail": self.cluster.log_tail(id, 5),
                }));
            }
        }
    }
}
