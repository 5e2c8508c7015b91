//! The quorum protocol for the one checker path (`crate::check`): the KRaft model, its
//! configuration and its traces.

use super::action::KraftAction;
use super::config::KraftConfig;
use super::model::KraftModel;
use super::state::KraftState;
use super::trace::KraftTrace;
use crate::check::{CheckReport, Engine, Protocol};
use crate::config::FlushPolicy;

/// The report of a quorum check.
pub type KraftCheckReport = CheckReport<KraftConfig, KraftTrace>;

/// The KRaft controller quorum (KIP-595).
pub struct Quorum;

impl Protocol for Quorum {
    const NAME: &'static str = "quorum";
    type Config = KraftConfig;
    type State = KraftState;
    type Action = KraftAction;
    type Model = KraftModel;
    type Trace = KraftTrace;

    fn model(config: KraftConfig) -> KraftModel {
        KraftModel::new(config)
    }
    fn variant(config: &KraftConfig) -> Option<String> {
        config.variant.map(|v| v.name().to_string())
    }
    fn auto_engine(config: &KraftConfig) -> Engine {
        if config.variant.is_some() || config.flush == FlushPolicy::Never {
            Engine::Bfs
        } else {
            Engine::DfsSymmetry
        }
    }
    fn trace(model: &KraftModel, actions: Vec<KraftAction>) -> Option<KraftTrace> {
        KraftTrace::from_actions(model, &actions).ok()
    }
}

impl crate::check::Counterexample for KraftTrace {
    fn step_count(&self) -> usize {
        self.steps.len() - 1
    }
    fn violated_properties(&self) -> &[String] {
        &self.violated
    }
    fn render(&self) -> String {
        self.table()
    }
}
