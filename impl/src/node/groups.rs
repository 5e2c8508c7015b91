//! temporary
use super::{view::ClusterView, NodeShared};
use crate::config::NodeConfig;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use std::sync::Arc;
pub struct GroupService;
impl GroupService {
    pub fn new(_c: &NodeConfig) -> Self {
        GroupService
    }
    pub async fn handle(&self, _v: i16, _r: RequestKind) -> anyhow::Result<Option<ResponseKind>> {
        Ok(None)
    }
    pub fn on_metadata(&self, _s: &NodeShared, _v: &ClusterView) {}
    pub fn tick(&self, _s: &NodeShared, _now: u64) {}
}
pub async fn run(_s: Arc<NodeShared>) {}
