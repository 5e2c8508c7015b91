//! The replication protocol for the one checker path (`crate::check`): the partition model,
//! its configuration and its traces.

use super::PartitionModel;
use crate::action::Action;
use crate::check::{Engine, Protocol};
use crate::config::ModelConfig;
use crate::state::PartitionState;
use crate::trace::Trace;

/// The replication protocol: one partition replicated on N brokers with its controller.
pub struct Replication;

impl Protocol for Replication {
    const NAME: &'static str = "replication";
    type Config = ModelConfig;
    type State = PartitionState;
    type Action = Action;
    type Model = PartitionModel;
    type Trace = Trace;

    fn model(config: ModelConfig) -> PartitionModel {
        PartitionModel::new(config)
    }
    fn variant(config: &ModelConfig) -> Option<String> {
        config.variant.map(|v| v.name().to_string())
    }
    fn auto_engine(config: &ModelConfig) -> Engine {
        if config.variant.is_some() || config.unclean {
            Engine::Bfs
        } else {
            Engine::DfsSymmetry
        }
    }
    fn trace(model: &PartitionModel, actions: Vec<Action>) -> Option<Trace> {
        // The checker's transitions take eager steps with them; traces list every step.
        Trace::from_actions(model, &model.with_eager_steps(&actions)).ok()
    }
}
