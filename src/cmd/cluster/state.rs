//! `cluster.json`: what `osprey cluster up` started, so `down`, `kill` and `start` can find
//! the nodes again from another process.

use super::layout::{NodePlan, Roles};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name under the cluster directory.
pub const STATE_FILE: &str = "cluster.json";

/// One node as started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: i32,
    pub roles: Roles,
    /// The PLAINTEXT port (brokers).
    pub broker_port: Option<u16>,
    /// The CONTROLLER port (controllers).
    pub controller_port: Option<u16>,
    /// The process id while running; `None` after `kill --node` or when it failed to start.
    pub pid: Option<u32>,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl NodeRecord {
    pub fn new(plan: &NodePlan, config: PathBuf, log: PathBuf) -> Self {
        NodeRecord {
            id: plan.id,
            roles: plan.roles,
            broker_port: plan.broker_port,
            controller_port: plan.controller_port,
            pid: None,
            config,
            log,
        }
    }

    /// Every port the node listens on.
    pub fn ports(&self) -> Vec<u16> {
        self.broker_port
            .into_iter()
            .chain(self.controller_port)
            .collect()
    }
}

/// The whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Comma-separated broker addresses, for clients.
    pub bootstrap_servers: String,
    pub nodes: Vec<NodeRecord>,
}

impl ClusterState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    pub fn node(&self, id: i32) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: i32) -> Option<&mut NodeRecord> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn from_json(s: &str) -> Result<Self> {
        Ok(serde_json::from_str(s)?)
    }

    /// Reads `dir/cluster.json`; `None` if there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(s) => Self::from_json(&s)
                .with_context(|| format!("parsing {}", path.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes `dir/cluster.json` atomically (temporary file, then rename), so a reader
    /// never sees half a file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_json()? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterState {
        ClusterState {
            bootstrap_servers: "127.0.0.1:19094".into(),
            nodes: vec![
                NodeRecord {
                    id: 1,
                    roles: Roles::Controller,
                    broker_port: None,
                    controller_port: Some(19093),
                    pid: Some(4242),
                    config: "d/node-1.properties".into(),
                    log: "d/node-1.log".into(),
                },
                NodeRecord {
                    id: 2,
                    roles: Roles::Broker,
                    broker_port: Some(19094),
                    controller_port: None,
                    pid: None,
                    config: "d/node-2.properties".into(),
                    log: "d/node-2.log".into(),
                },
            ],
        }
    }

    #[test]
    fn json_round_trips() {
        let s = sample();
        let json = s.to_json().unwrap();
        assert_eq!(ClusterState::from_json(&json).unwrap(), s);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["nodes"][0]["roles"], "controller");
        assert_eq!(v["nodes"][0]["pid"], 4242);
        assert_eq!(v["nodes"][1]["pid"], serde_json::Value::Null);
    }

    #[test]
    fn saved_files_load_back_and_missing_files_are_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(ClusterState::load(tmp.path()).unwrap(), None);
        let mut s = sample();
        s.save(tmp.path()).unwrap();
        assert_eq!(ClusterState::load(tmp.path()).unwrap(), Some(s.clone()));
        s.node_mut(2).unwrap().pid = Some(7);
        s.save(tmp.path()).unwrap();
        let back = ClusterState::load(tmp.path()).unwrap().unwrap();
        assert_eq!(back.node(2).unwrap().pid, Some(7));
        assert_eq!(back.node(1).unwrap().ports(), vec![19093]);
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(ClusterState::path(tmp.path()), "{nope").unwrap();
        assert!(ClusterState::load(tmp.path()).is_err());
    }
}
