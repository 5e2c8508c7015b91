//! The guarantee matrix: what each combination of Kafka's durability settings guarantees when
//! brokers crash and disks lose their unflushed tail, decided by the replication model.
//!
//! A [`Cell`] is one combination (replication factor, `min.insync.replicas`, acks, unclean
//! election, flush policy, eligible leader replicas, crashes). Each cell is checked twice by
//! the one checker path ([`crate::check`]) over a [`GridModel`], which runs the replication
//! model unchanged and only chooses the properties:
//!
//! - **safety** (always): `AckedNeverLost` (no write acknowledged under the cell's acks is
//!   ever missing from a later leader) and `ConsumedNeverLost` (nothing that was below a high
//!   watermark, so readable by a consumer, is ever lost);
//! - **availability** (sometimes): after one broker is lost, an acks=all write can still be
//!   acknowledged. The run starts by losing a broker: no record is produced before a broker
//!   has crashed, and crashed brokers never come back, so a witness is an acknowledgement
//!   given without that broker.

use crate::action::Action;
use crate::check::{check, CheckOptions, Engine, Protocol};
use crate::config::{AcksChoice, FlushPolicy, ModelConfig, Variant};
use crate::properties::consumed_never_lost;
use crate::replication::PartitionModel;
use crate::state::{PartitionState, RecordStatus};
use crate::trace::Trace;
use serde::{Deserialize, Serialize};
use stateright::{Model, Property};

/// One combination of settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    /// Replication factor: the partition's replicas, one per broker.
    pub rf: u8,
    pub min_isr: u8,
    /// acks=all (true) or acks=1 (false).
    pub acks_all: bool,
    pub unclean: bool,
    pub flush_every: bool,
    /// Eligible leader replicas and the min-ISR high-watermark guard (KIP-966, Kafka 4.x);
    /// off is Kafka 3.x.
    pub elr: bool,
    /// Broker faults (crashes, or a broker cut off from the controller).
    pub crashes: u8,
}

impl Cell {
    /// The replication model's configuration for this cell, at the grid's bounds: one record
    /// is enough for every loss the matrix shows, leader epochs up to 2 allow two failovers.
    pub fn config(&self, bounds: GridBounds) -> ModelConfig {
        ModelConfig {
            brokers: self.rf,
            records: 1,
            max_epoch: bounds.max_epoch,
            max_crashes: self.crashes,
            max_isr_changes: bounds.max_isr_changes,
            min_isr: self.min_isr,
            unclean: self.unclean,
            flush: if self.flush_every {
                FlushPolicy::Every
            } else {
                FlushPolicy::Never
            },
            acks: if self.acks_all {
                AcksChoice::All
            } else {
                AcksChoice::Both
            },
            fetch: crate::config::FetchDelivery::Atomic,
            variant: (!self.elr).then_some(Variant::LastReplicaStanding),
            max_log_failures: 0,
        }
    }

    /// A short label: `rf3 min2 acks=all unclean=off flush=never elr=on crashes=1`.
    pub fn label(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "rf{} min{} acks={} unclean={} flush={} elr={} crashes={}",
            self.rf,
            self.min_isr,
            if self.acks_all { "all" } else { "1" },
            on(self.unclean),
            if self.flush_every { "every" } else { "never" },
            on(self.elr),
            self.crashes
        )
    }
}

/// The bounds every cell is checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GridBounds {
    pub max_epoch: u8,
    pub max_isr_changes: u8,
}

impl Default for GridBounds {
    fn default() -> Self {
        GridBounds {
            max_epoch: 2,
            max_isr_changes: 2,
        }
    }
}

/// Every cell for replication factors `rfs`: min.insync.replicas 1..=RF, acks 1 and all,
/// unclean off and on, flush never and every, ELR on and off, 1 and 2 crashes.
pub fn grid(rfs: &[u8]) -> Vec<Cell> {
    let mut cells = Vec::new();
    let bools = [false, true];
    for &rf in rfs {
        for min_isr in 1..=rf {
            for acks_all in [true, false] {
                for unclean in bools {
                    for flush_every in bools {
                        for elr in [true, false] {
                            for crashes in [1, 2] {
                                cells.push(Cell {
                                    rf,
                                    min_isr,
                                    acks_all,
                                    unclean,
                                    flush_every,
                                    elr,
                                    crashes,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    cells
}

/// What a cell's run checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Question {
    /// AckedNeverLost and ConsumedNeverLost, over every run.
    Safety,
    /// Whether an acks=all write can be acknowledged after a broker is lost.
    Availability,
}

/// The configuration of one grid run: the model's, which acknowledgements count, and the
/// question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GridConfig {
    pub model: ModelConfig,
    /// The acknowledgements AckedNeverLost promises: acks=all only, or acks=1 only.
    pub acks_all: bool,
    pub question: Question,
}

/// The replication model with the grid's properties (and, for availability, the run that
/// starts by losing a broker).
#[derive(Clone, Debug)]
pub struct GridModel {
    pub inner: PartitionModel,
    pub acks_all: bool,
    pub question: Question,
}

/// Whether a broker has crashed (it never restarts in an availability run).
fn broker_lost(m: &GridModel, s: &PartitionState) -> bool {
    (0..m.inner.config.brokers).any(|b| !s.replica(b).alive)
}

/// Every record acknowledged with the cell's acks is at its offset in the log of every leader
/// of its epoch or a later one.
pub fn acked_never_lost(m: &GridModel, s: &PartitionState) -> bool {
    s.ghost.records[..m.inner.config.records as usize]
        .iter()
        .enumerate()
        .all(|(i, st)| match *st {
            RecordStatus::Acked {
                offset,
                epoch,
                acks_all,
            } if acks_all == m.acks_all => (0..m.inner.config.brokers).all(|b| {
                let r = s.replica(b);
                !(r.is_leader(b) && r.leader_epoch >= epoch)
                    || r.log.get(offset).map(|e| e.record) == Some(i as u8 + 1)
            }),
            _ => true,
        })
}

/// Witness: with a broker lost, an acks=all write was acknowledged.
pub fn available(m: &GridModel, s: &PartitionState) -> bool {
    broker_lost(m, s)
        && s.ghost.records[..m.inner.config.records as usize]
            .iter()
            .any(|st| matches!(st, RecordStatus::Acked { acks_all: true, .. }))
}

impl Model for GridModel {
    type State = PartitionState;
    type Action = Action;

    fn init_states(&self) -> Vec<PartitionState> {
        vec![self.inner.initial_state()]
    }

    fn actions(&self, s: &PartitionState, out: &mut Vec<Action>) {
        self.inner.enabled_actions(s, out);
        if self.question == Question::Availability {
            let lost = broker_lost(self, s);
            out.retain(|a| match a {
                Action::Produce { .. } => lost,
                Action::Restart { .. } => false,
                _ => true,
            });
        }
    }

    fn next_state(&self, s: &PartitionState, a: Action) -> Option<PartitionState> {
        self.inner.successor(s, a)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        match self.question {
            Question::Safety => vec![
                Property::always("AckedNeverLost", acked_never_lost),
                Property::always("ConsumedNeverLost", |m: &GridModel, s| {
                    consumed_never_lost(&m.inner, s)
                }),
            ],
            Question::Availability => vec![Property::sometimes("Available", available)],
        }
    }

    fn format_action(&self, action: &Action) -> String {
        action.describe()
    }
}

/// The grid's runs for the one checker path.
pub struct Grid;

impl Protocol for Grid {
    const NAME: &'static str = "replication";
    type Config = GridConfig;
    type State = PartitionState;
    type Action = Action;
    type Model = GridModel;
    type Trace = Trace;

    fn model(config: GridConfig) -> GridModel {
        GridModel {
            inner: PartitionModel::new(config.model),
            acks_all: config.acks_all,
            question: config.question,
        }
    }
    fn variant(config: &GridConfig) -> Option<String> {
        config.model.variant.map(|v| v.name().to_string())
    }
    fn auto_engine(_: &GridConfig) -> Engine {
        Engine::DfsSymmetry
    }
    fn trace(model: &GridModel, actions: Vec<Action>) -> Option<Trace> {
        let inner = &model.inner;
        Trace::from_actions(inner, &inner.with_eager_steps(&actions)).ok()
    }
}

/// The one-line story of a counterexample: the steps that matter, in order ("b0 appended r1
/// (acks=1), r1 acknowledged, leadership moved to b1 without the record").
pub fn story(trace: &Trace) -> String {
    let mut parts: Vec<String> = Vec::new();
    for w in trace.steps.windows(2) {
        let (before, after) = (&w[0].state, &w[1].state);
        let Some(a) = w[1].action else { continue };
        let part = match a {
            Action::Produce { leader, acks_all } => Some(format!(
                "b{leader} appended r1 ({})",
                if acks_all { "acks=all" } else { "acks=1" }
            )),
            Action::AlterPartition { .. } | Action::FenceBroker { .. } => {
                let isr = &after.controller.isr;
                (isr != &before.controller.isr).then(|| {
                    let mut s = format!("ISR became {{{}}}", join(isr));
                    if let Action::FenceBroker { broker, .. } = a {
                        s = format!("b{broker} fenced, {s}");
                    }
                    if after.controller.leader != before.controller.leader {
                        s.push_str(&leader_text(after, after.controller.leader));
                    }
                    s
                })
            }
            Action::Crash {
                broker,
                clean,
                kept,
            } => Some(if clean {
                format!("b{broker} shut down")
            } else if (kept as usize) < before.brokers[broker as usize].log.len() {
                format!("b{broker} crashed and its disk lost the unflushed tail")
            } else {
                format!("b{broker} crashed")
            }),
            Action::ElectLeader { broker, unclean } => Some(format!(
                "{}b{broker} elected{}",
                if unclean { "unclean election: " } else { "" },
                missing_record(after, broker)
            )),
            Action::MoveLeader { to } => Some(format!(
                "leadership moved to b{to}{}",
                missing_record(after, to)
            )),
            Action::HandleFetchResponse { follower } => {
                let lost = before.brokers[follower as usize].log.len()
                    > after.brokers[follower as usize].log.len();
                lost.then(|| format!("b{follower} truncated its log to the new leader's"))
            }
            _ => None,
        };
        if let Some(p) = part {
            parts.push(p);
        }
        let acked = after
            .records
            .iter()
            .zip(&before.records)
            .any(|(n, o)| n != o && matches!(n, RecordStatus::Acked { .. }));
        if acked {
            parts.push("r1 acknowledged".to_string());
        }
    }
    parts.join(", ")
}

fn leader_text(s: &crate::trace::StateView, leader: Option<u8>) -> String {
    match leader {
        Some(l) => format!(", b{l} elected{}", missing_record(s, l)),
        None => ", the partition went offline".to_string(),
    }
}

fn missing_record(s: &crate::trace::StateView, b: u8) -> &'static str {
    if s.brokers[b as usize].log.is_empty() {
        " without the record"
    } else {
        ""
    }
}

fn join(set: &[u8]) -> String {
    set.iter()
        .map(|b| format!("b{b}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the model says of one cell.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub acked_never_lost: bool,
    pub consumed_never_lost: bool,
    /// An acks=all write can be acknowledged after one broker is lost.
    pub available: bool,
    /// Both runs explored every state within the bounds.
    pub exhaustive: bool,
    /// States explored, over every run.
    pub states: usize,
    /// The safety properties violated, and the shortest run that violates one.
    pub violated: Vec<String>,
    pub counterexample: Option<Trace>,
}

/// Checks one cell: the safety run (depth-first with the reductions, to the end, so that each
/// property's verdict is exhaustive on its own; then breadth-first for the shortest
/// counterexample if one fails) and the availability run.
pub fn check_cell(cell: Cell, bounds: GridBounds, threads: usize) -> Verdict {
    let safety = GridConfig {
        model: cell.config(bounds),
        acks_all: cell.acks_all,
        question: Question::Safety,
    };
    let dfs = CheckOptions {
        threads,
        engine: Engine::DfsSymmetry,
        stop_at_first_violation: false,
    };
    let report = check::<Grid>(safety, &dfs, |_| {});
    let mut states = report.unique_states;
    let mut counterexample = None;
    if report.violated() {
        let bfs = CheckOptions {
            engine: Engine::Bfs,
            stop_at_first_violation: true,
            ..dfs.clone()
        };
        let shortest = check::<Grid>(safety, &bfs, |_| {});
        states += shortest.unique_states;
        counterexample = shortest.counterexample.or(report.counterexample.clone());
    }
    let holds = |name: &str| report.properties.iter().any(|p| p.name == name && p.holds);
    let availability = GridConfig {
        question: Question::Availability,
        acks_all: true,
        ..safety
    };
    let avail = check::<Grid>(availability, &dfs, |_| {});
    states += avail.unique_states;
    Verdict {
        acked_never_lost: holds("AckedNeverLost"),
        consumed_never_lost: holds("ConsumedNeverLost"),
        available: avail.properties.iter().all(|p| p.holds),
        exhaustive: report.complete && avail.complete,
        states,
        violated: report
            .properties
            .iter()
            .filter(|p| !p.holds)
            .map(|p| p.name.clone())
            .collect(),
        counterexample,
    }
}
