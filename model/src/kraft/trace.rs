//! Traces of the KRaft quorum model: JSON in the `osprey-trace/1` format with
//! `"protocol": "kraft"` (specs/trace-format.md), and a readable table.

use super::action::KraftAction;
use super::config::KraftConfig;
use super::model::KraftModel;
use super::state::*;
use crate::trace::TRACE_FORMAT;
use serde::{Deserialize, Serialize};

/// A voter's role, or `down` while crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoterRole {
    Unattached,
    Voted,
    /// KIP-996: asking for pre-votes in its epoch.
    Prospective,
    Candidate,
    Leader,
    Follower,
    Resigned,
    Down,
}

/// One voter, as traces show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterView {
    pub id: VoterId,
    pub role: VoterRole,
    pub epoch: Epoch,
    pub voted_for: Option<VoterId>,
    pub leader: Option<VoterId>,
    /// The log as (record, epoch) pairs, offset = position; record 0 is LeaderChange.
    pub log: Vec<(RecordId, Epoch)>,
    pub log_end_offset: Offset,
    pub high_watermark: Offset,
    pub flushed_offset: Offset,
}

/// A state of the quorum, as traces show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KraftStateView {
    pub voters: Vec<VoterView>,
    /// Per offset, the committed entry (record, epoch) so far.
    pub committed: Vec<(RecordId, Epoch)>,
}

impl KraftStateView {
    pub fn of(model: &KraftModel, s: &KraftState) -> Self {
        let opt = |v: VoterId| (v != NO_VOTER).then_some(v);
        let voters = s.voters[..model.config.voters as usize]
            .iter()
            .enumerate()
            .map(|(id, v)| VoterView {
                id: id as VoterId,
                role: if !v.alive {
                    VoterRole::Down
                } else {
                    match v.role {
                        Role::Unattached => VoterRole::Unattached,
                        Role::Voted => VoterRole::Voted,
                        Role::Prospective => VoterRole::Prospective,
                        Role::Candidate => VoterRole::Candidate,
                        Role::Leader => VoterRole::Leader,
                        Role::Follower => VoterRole::Follower,
                        Role::Resigned => VoterRole::Resigned,
                    }
                },
                epoch: v.epoch,
                voted_for: opt(v.voted_for),
                leader: opt(v.leader),
                log: v
                    .log
                    .entries()
                    .iter()
                    .map(|e| (e.record, e.epoch))
                    .collect(),
                log_end_offset: v.log.end_offset(),
                high_watermark: v.high_watermark,
                flushed_offset: v.flushed,
            })
            .collect();
        let committed = s
            .ghost
            .committed
            .iter()
            .map_while(|c| c.map(|(e, _)| (e.record, e.epoch)))
            .collect();
        KraftStateView { voters, committed }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KraftTraceStep {
    pub index: usize,
    pub action: Option<KraftAction>,
    pub state: KraftStateView,
}

/// A run of the KRaft quorum model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KraftTrace {
    pub format: String,
    pub protocol: String,
    pub config: KraftConfig,
    /// The always-properties violated in the last state.
    pub violated: Vec<String>,
    pub steps: Vec<KraftTraceStep>,
}

impl KraftTrace {
    /// The trace of `actions` from the initial state; fails on the first one not enabled.
    pub fn from_actions(model: &KraftModel, actions: &[KraftAction]) -> Result<Self, String> {
        let mut state = model.initial_state();
        let mut steps = vec![KraftTraceStep {
            index: 0,
            action: None,
            state: KraftStateView::of(model, &state),
        }];
        for (i, a) in actions.iter().enumerate() {
            state = model
                .step(&state, *a)
                .ok_or_else(|| format!("step {}: {} is not enabled", i + 1, a.describe()))?;
            steps.push(KraftTraceStep {
                index: i + 1,
                action: Some(*a),
                state: KraftStateView::of(model, &state),
            });
        }
        Ok(KraftTrace {
            format: TRACE_FORMAT.to_string(),
            protocol: "kraft".to_string(),
            config: model.config,
            violated: super::properties::violated(model, &state),
            steps,
        })
    }

    pub fn actions(&self) -> Vec<KraftAction> {
        self.steps.iter().filter_map(|s| s.action).collect()
    }

    /// Checks that this trace is a run of the model, state by state.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != TRACE_FORMAT || self.protocol != "kraft" {
            return Err(format!(
                "not a kraft trace: format '{}', protocol '{}'",
                self.format, self.protocol
            ));
        }
        self.config.validate().map_err(|e| e.to_string())?;
        let replayed = KraftTrace::from_actions(&KraftModel::new(self.config), &self.actions())?;
        if replayed.steps.len() != self.steps.len() {
            return Err("the trace has steps the model does not".to_string());
        }
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

    /// The trace as a table: step, action, and per voter role, epoch, vote, high watermark
    /// and log; then the committed entries.
    pub fn table(&self) -> String {
        let mut header = vec!["step".to_string(), "action".to_string()];
        for v in 0..self.config.voters {
            header.push(format!("voter {v}"));
        }
        header.push("committed".to_string());
        let mut rows = vec![header];
        for step in &self.steps {
            let mut row = vec![
                step.index.to_string(),
                step.action
                    .map(|a| a.describe())
                    .unwrap_or_else(|| "initial state".to_string()),
            ];
            row.extend(step.state.voters.iter().map(voter_cell));
            row.push(log_text(&step.state.committed));
            rows.push(row);
        }
        crate::trace::render_table(&rows)
    }
}

fn log_text(log: &[(RecordId, Epoch)]) -> String {
    let entries: Vec<String> = log
        .iter()
        .map(|&(r, e)| {
            if r == LEADER_CHANGE {
                format!("LC@{e}")
            } else {
                format!("r{r}@{e}")
            }
        })
        .collect();
    format!("[{}]", entries.join(" "))
}

fn voter_cell(v: &VoterView) -> String {
    let role = match v.role {
        VoterRole::Unattached => "U",
        VoterRole::Voted => "V",
        VoterRole::Prospective => "P",
        VoterRole::Candidate => "C",
        VoterRole::Leader => "L",
        VoterRole::Follower => "F",
        VoterRole::Resigned => "R",
        VoterRole::Down => "DOWN",
    };
    let vote = v
        .voted_for
        .map(|b| format!(" vote v{b}"))
        .unwrap_or_default();
    format!(
        "{role} e{}{vote} hw{} {}",
        v.epoch,
        v.high_watermark,
        log_text(&v.log)
    )
}
