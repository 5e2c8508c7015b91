//! Traces: a run of the partition model as JSON (the format of `specs/trace-format.md`), and as
//! a readable table. Counterexamples are written in this format and the conformance suite
//! replays them against the broker.

use crate::action::Action;
use crate::config::ModelConfig;
use crate::replication::PartitionModel;
use crate::state::*;
use crate::types::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The version tag every trace file carries.
pub const TRACE_FORMAT: &str = "osprey-trace/1";

/// A broker's role as it sees itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
    /// Alive but following nobody (the partition is offline, or it just restarted).
    None,
    Down,
}

/// One broker, seen through the abstraction the conformance suite compares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    pub id: BrokerId,
    pub role: Role,
    /// The leader this broker follows (itself when it leads).
    pub leader: Option<BrokerId>,
    pub leader_epoch: Epoch,
    /// The log as (record, leader epoch) pairs, offset = position.
    pub log: Vec<(RecordId, Epoch)>,
    pub log_end_offset: Offset,
    pub high_watermark: Offset,
    pub flushed_offset: Offset,
    /// The leader-epoch cache as (epoch, start offset) pairs.
    pub epoch_cache: Vec<(Epoch, Offset)>,
    /// Leader only: the ISR it uses and the AlterPartition it has in flight.
    pub isr: Vec<BrokerId>,
    pub pending_isr: Option<Vec<BrokerId>>,
    pub partition_epoch: u8,
}

/// The controller's partition state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerView {
    pub leader: Option<BrokerId>,
    pub leader_epoch: Epoch,
    pub partition_epoch: u8,
    pub isr: Vec<BrokerId>,
    pub elr: Vec<BrokerId>,
    pub fenced: Vec<BrokerId>,
    /// Replicas whose log failed (`LogFails`); absent from traces that have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_logs: Vec<BrokerId>,
}

/// A state of the model, as traces show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateView {
    pub brokers: Vec<BrokerView>,
    pub controller: ControllerView,
    /// Per record id (1-based, in order): what the producer was told.
    pub records: Vec<RecordStatus>,
}

impl StateView {
    pub fn of(model: &PartitionModel, s: &PartitionState) -> Self {
        let n = model.config.brokers;
        let opt = |b: BrokerId| (b != NO_BROKER).then_some(b);
        let brokers = (0..n)
            .map(|b| {
                let r = s.replica(b);
                let role = if !r.alive {
                    Role::Down
                } else if r.leader == b {
                    Role::Leader
                } else if r.leader == NO_BROKER {
                    Role::None
                } else {
                    Role::Follower
                };
                let leading = role == Role::Leader;
                BrokerView {
                    id: b,
                    role,
                    leader: opt(r.leader),
                    leader_epoch: r.leader_epoch,
                    log: r
                        .log
                        .entries()
                        .iter()
                        .map(|e| (e.record, e.epoch))
                        .collect(),
                    log_end_offset: r.log_end_offset(),
                    high_watermark: r.high_watermark,
                    flushed_offset: r.flushed,
                    epoch_cache: r.epoch_cache.entries().to_vec(),
                    isr: if leading { r.isr.to_vec() } else { vec![] },
                    pending_isr: if leading {
                        r.pending_isr.map(|p| p.to_vec())
                    } else {
                        None
                    },
                    partition_epoch: if leading { r.partition_epoch } else { 0 },
                }
            })
            .collect();
        let c = &s.controller;
        StateView {
            brokers,
            controller: ControllerView {
                leader: opt(c.leader),
                leader_epoch: c.leader_epoch,
                partition_epoch: c.partition_epoch,
                isr: c.isr.to_vec(),
                elr: c.elr.to_vec(),
                fenced: c.fenced.to_vec(),
                offline_logs: c.offline_logs.to_vec(),
            },
            records: s.ghost.records[..model.config.records as usize].to_vec(),
        }
    }
}

/// One step of a trace: the action taken (none for the initial state) and the state after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    pub index: usize,
    pub action: Option<Action>,
    pub state: StateView,
}

/// A run of the partition model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub format: String,
    pub protocol: String,
    pub config: ModelConfig,
    /// The properties violated in the last state (empty for a trace that breaks nothing).
    pub violated: Vec<String>,
    pub steps: Vec<TraceStep>,
}

impl Trace {
    /// The trace of `actions` taken from the initial state. Fails on the first action that is
    /// not enabled, naming it.
    pub fn from_actions(model: &PartitionModel, actions: &[Action]) -> Result<Trace, String> {
        let mut state = model.initial_state();
        let mut steps = vec![TraceStep {
            index: 0,
            action: None,
            state: StateView::of(model, &state),
        }];
        for (i, a) in actions.iter().enumerate() {
            state = model
                .step(&state, *a)
                .ok_or_else(|| format!("step {}: {} is not enabled", i + 1, a.describe()))?;
            steps.push(TraceStep {
                index: i + 1,
                action: Some(*a),
                state: StateView::of(model, &state),
            });
        }
        let violated = violated_properties(model, &state);
        Ok(Trace {
            format: TRACE_FORMAT.to_string(),
            protocol: "partition".to_string(),
            config: model.config,
            violated,
            steps,
        })
    }

    pub fn actions(&self) -> Vec<Action> {
        self.steps.iter().filter_map(|s| s.action).collect()
    }

    /// Checks that this trace is a run of the model: every action is enabled where it is taken
    /// and every recorded state is the model's. Returns the index of the first step that is not.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != TRACE_FORMAT {
            return Err(format!(
                "unknown trace format '{}': expected '{TRACE_FORMAT}'",
                self.format
            ));
        }
        self.config.validate().map_err(|e| e.to_string())?;
        let model = PartitionModel::new(self.config);
        let replayed = Trace::from_actions(&model, &self.actions())?;
        for (a, b) in replayed.steps.iter().zip(&self.steps) {
            if a.state != b.state {
                return Err(format!(
                    "step {}: the recorded state is not the model's",
                    b.index
                ));
            }
        }
        Ok(())
    }

    /// The trace as a table: step, action, and per broker role, epoch, ISR, high watermark,
    /// log end offset and log; then the controller.
    pub fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let n = self.config.brokers as usize;
        let mut header = vec!["step".to_string(), "action".to_string()];
        for b in 0..n {
            header.push(format!("broker {b}"));
        }
        header.push("controller".to_string());
        rows.push(header);
        for step in &self.steps {
            let mut row = vec![
                step.index.to_string(),
                step.action
                    .map(|a| a.describe())
                    .unwrap_or_else(|| "initial state".to_string()),
            ];
            for b in &step.state.brokers {
                row.push(broker_cell(b));
            }
            row.push(controller_cell(&step.state.controller));
            rows.push(row);
        }
        render_table(&rows)
    }
}

fn fmt_ids(ids: &[BrokerId]) -> String {
    ids.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn broker_cell(b: &BrokerView) -> String {
    let log: Vec<String> = b.log.iter().map(|(r, e)| format!("r{r}@{e}")).collect();
    let role = match b.role {
        Role::Leader => format!("L e{} isr{{{}}}", b.leader_epoch, fmt_ids(&b.isr)),
        Role::Follower => format!("F e{}", b.leader_epoch),
        Role::None => format!("- e{}", b.leader_epoch),
        Role::Down => "DOWN".to_string(),
    };
    format!(
        "{role} hw{} leo{} [{}]",
        b.high_watermark,
        b.log_end_offset,
        log.join(" ")
    )
}

fn controller_cell(c: &ControllerView) -> String {
    let leader = c
        .leader
        .map(|l| format!("b{l}"))
        .unwrap_or_else(|| "none".to_string());
    let mut s = format!(
        "leader {leader} e{} pe{} isr{{{}}}",
        c.leader_epoch,
        c.partition_epoch,
        fmt_ids(&c.isr)
    );
    if !c.elr.is_empty() {
        let _ = write!(s, " elr{{{}}}", fmt_ids(&c.elr));
    }
    if !c.fenced.is_empty() {
        let _ = write!(s, " fenced{{{}}}", fmt_ids(&c.fenced));
    }
    if !c.offline_logs.is_empty() {
        let _ = write!(s, " offline{{{}}}", fmt_ids(&c.offline_logs));
    }
    s
}

pub(crate) fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("-+-"));
            out.push('\n');
        }
    }
    out
}

/// The always-properties that `s` violates.
pub fn violated_properties(model: &PartitionModel, s: &PartitionState) -> Vec<String> {
    crate::properties::all()
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Always && !(p.condition)(model, s))
        .map(|p| p.name.to_string())
        .collect()
}
