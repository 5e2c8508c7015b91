//! The shape of a local cluster: node ids, roles, ports, and each node's Kafka-style
//! `.properties` file. Pure: no files or processes here, so it is unit-tested directly.
//!
//! Layout (like KRaft's quick-start): controllers get ids `1..=C`, brokers `C+1..=C+B`;
//! with `--combined` every node is `controller,broker` with ids `1..=B`. Node `k`
//! (0-based, in id order) owns the port pair `base + 2k` (PLAINTEXT, client and
//! inter-broker traffic) and `base + 2k + 1` (CONTROLLER, the KRaft quorum), and only
//! listens on the ones its roles need.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The listener that clients and brokers use.
pub const BROKER_LISTENER: &str = "PLAINTEXT";
/// The listener of the KRaft controller quorum.
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";
/// Every node binds and advertises on loopback: the cluster is for one machine.
pub const HOST: &str = "127.0.0.1";

/// A node's `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Roles {
    Controller,
    Broker,
    Combined,
}

impl Roles {
    /// The `process.roles` value.
    pub fn as_property(self) -> &'static str {
        match self {
            Roles::Controller => "controller",
            Roles::Broker => "broker",
            Roles::Combined => "controller,broker",
        }
    }

    pub fn is_controller(self) -> bool {
        matches!(self, Roles::Controller | Roles::Combined)
    }

    pub fn is_broker(self) -> bool {
        matches!(self, Roles::Broker | Roles::Combined)
    }
}

/// What `osprey cluster up` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub brokers: u16,
    /// Ignored with `combined` (every broker is also a controller).
    pub controllers: u16,
    pub combined: bool,
    pub base_port: u16,
}

/// One node of the planned cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    pub id: i32,
    pub roles: Roles,
    /// The PLAINTEXT port, for brokers.
    pub broker_port: Option<u16>,
    /// The CONTROLLER port, for controllers.
    pub controller_port: Option<u16>,
}

impl NodePlan {
    /// Every port the node listens on.
    pub fn ports(&self) -> Vec<u16> {
        self.broker_port
            .into_iter()
            .chain(self.controller_port)
            .collect()
    }
}

/// Why a spec cannot be laid out.
#[derive(Debug, PartialEq, Eq)]
pub enum LayoutError {
    NoBrokers,
    NoControllers,
    PortsOverflow { base: u16, needed: u32 },
}

impl std::error::Error for LayoutError {}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::NoBrokers => write!(f, "a cluster needs at least one broker"),
            LayoutError::NoControllers => write!(f, "a cluster needs at least one controller"),
            LayoutError::PortsOverflow { base, needed } => write!(
                f,
                "base port {base} leaves no room for the {needed} ports the cluster needs"
            ),
        }
    }
}

/// Plans the nodes of `spec`, in id order.
pub fn plan(spec: &ClusterSpec) -> Result<Vec<NodePlan>, LayoutError> {
    if spec.brokers == 0 {
        return Err(LayoutError::NoBrokers);
    }
    if !spec.combined && spec.controllers == 0 {
        return Err(LayoutError::NoControllers);
    }
    let roles: Vec<Roles> = if spec.combined {
        vec![Roles::Combined; usize::from(spec.brokers)]
    } else {
        std::iter::repeat_n(Roles::Controller, usize::from(spec.controllers))
            .chain(std::iter::repeat_n(
                Roles::Broker,
                usize::from(spec.brokers),
            ))
            .collect()
    };
    let needed = 2 * roles.len() as u32;
    if u32::from(spec.base_port) + needed - 1 > u32::from(u16::MAX) {
        return Err(LayoutError::PortsOverflow {
            base: spec.base_port,
            needed,
        });
    }
    Ok(roles
        .into_iter()
        .enumerate()
        .map(|(k, roles)| {
            let pair = spec.base_port + 2 * k as u16;
            NodePlan {
                id: k as i32 + 1,
                roles,
                broker_port: roles.is_broker().then_some(pair),
                controller_port: roles.is_controller().then_some(pair + 1),
            }
        })
        .collect())
}

/// `controller.quorum.voters`: `id@host:port` for every controller, comma-separated.
pub fn quorum_voters(nodes: &[NodePlan]) -> String {
    nodes
        .iter()
        .filter_map(|n| n.controller_port.map(|p| format!("{}@{HOST}:{p}", n.id)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The bootstrap servers clients use: every broker's PLAINTEXT address.
pub fn bootstrap_servers(nodes: &[NodePlan]) -> String {
    nodes
        .iter()
        .filter_map(|n| n.broker_port.map(|p| format!("{HOST}:{p}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where node `id`'s files go under the cluster directory.
pub fn config_path(dir: &Path, id: i32) -> PathBuf {
    dir.join(format!("node-{id}.properties"))
}

pub fn log_path(dir: &Path, id: i32) -> PathBuf {
    dir.join(format!("node-{id}.log"))
}

pub fn data_dir(dir: &Path, id: i32) -> PathBuf {
    dir.join(format!("node-{id}-data"))
}

/// The replication settings shared by every node, derived from the number of brokers:
/// replication factor 3 (or every broker if fewer) and `min.insync.replicas` one less
/// than it (at least 1), so one broker may be down without refusing acks=all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationDefaults {
    pub replication_factor: u16,
    pub min_insync_replicas: u16,
}

impl ReplicationDefaults {
    pub fn for_brokers(brokers: u16) -> Self {
        let replication_factor = brokers.clamp(1, 3);
        ReplicationDefaults {
            replication_factor,
            min_insync_replicas: replication_factor.saturating_sub(1).max(1),
        }
    }
}

/// Node `node`'s `.properties` file, with Kafka's keys. `data_dir` becomes `log.dirs`.
pub fn properties(
    node: &NodePlan,
    nodes: &[NodePlan],
    data_dir: &Path,
    defaults: ReplicationDefaults,
) -> String {
    let mut listeners = Vec::new();
    if let Some(p) = node.broker_port {
        listeners.push(format!("{BROKER_LISTENER}://{HOST}:{p}"));
    }
    if let Some(p) = node.controller_port {
        listeners.push(format!("{CONTROLLER_LISTENER}://{HOST}:{p}"));
    }
    let mut out = String::new();
    let mut put = |k: &str, v: &str| {
        let _ = writeln!(out, "{k}={v}");
    };
    put("node.id", &node.id.to_string());
    put("process.roles", node.roles.as_property());
    put("listeners", &listeners.join(","));
    if let Some(p) = node.broker_port {
        put(
            "advertised.listeners",
            &format!("{BROKER_LISTENER}://{HOST}:{p}"),
        );
        put("inter.broker.listener.name", BROKER_LISTENER);
    }
    put("controller.listener.names", CONTROLLER_LISTENER);
    put(
        "listener.security.protocol.map",
        &format!("{BROKER_LISTENER}:PLAINTEXT,{CONTROLLER_LISTENER}:PLAINTEXT"),
    );
    put("controller.quorum.voters", &quorum_voters(nodes));
    put("log.dirs", &data_dir.display().to_string());
    let rf = defaults.replication_factor.to_string();
    put("default.replication.factor", &rf);
    put(
        "min.insync.replicas",
        &defaults.min_insync_replicas.to_string(),
    );
    put("offsets.topic.replication.factor", &rf);
    put("unclean.leader.election.enable", "false");
    put("replica.lag.time.max.ms", "30000");
    put("num.partitions", "1");
    put("auto.create.topics.enable", "true");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(brokers: u16, controllers: u16, combined: bool) -> ClusterSpec {
        ClusterSpec {
            brokers,
            controllers,
            combined,
            base_port: 19092,
        }
    }

    /// The `key=value` pairs of a properties file.
    fn parse(props: &str) -> std::collections::BTreeMap<String, String> {
        props
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn separate_controllers_come_first_and_own_only_the_controller_port() {
        let nodes = plan(&spec(3, 1, false)).unwrap();
        let ids: Vec<_> = nodes.iter().map(|n| (n.id, n.roles)).collect();
        assert_eq!(
            ids,
            vec![
                (1, Roles::Controller),
                (2, Roles::Broker),
                (3, Roles::Broker),
                (4, Roles::Broker)
            ]
        );
        assert_eq!(nodes[0].ports(), vec![19093]);
        assert_eq!(nodes[1].ports(), vec![19094]);
        assert_eq!(nodes[3].ports(), vec![19098]);
        assert_eq!(quorum_voters(&nodes), "1@127.0.0.1:19093");
        assert_eq!(
            bootstrap_servers(&nodes),
            "127.0.0.1:19094,127.0.0.1:19096,127.0.0.1:19098"
        );
    }

    #[test]
    fn combined_nodes_are_all_voters_and_brokers() {
        let nodes = plan(&spec(3, 7, true)).unwrap();
        assert_eq!(nodes.len(), 3, "--controllers is ignored with --combined");
        assert!(nodes.iter().all(|n| n.roles == Roles::Combined));
        assert_eq!(nodes[0].ports(), vec![19092, 19093]);
        assert_eq!(
            quorum_voters(&nodes),
            "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
        );
        assert_eq!(
            bootstrap_servers(&nodes),
            "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
        );
    }

    #[test]
    fn no_ports_are_shared() {
        let nodes = plan(&spec(5, 3, false)).unwrap();
        let mut ports: Vec<u16> = nodes.iter().flat_map(NodePlan::ports).collect();
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n);
    }

    #[test]
    fn impossible_specs_are_refused() {
        assert_eq!(plan(&spec(0, 1, false)), Err(LayoutError::NoBrokers));
        assert_eq!(plan(&spec(1, 0, false)), Err(LayoutError::NoControllers));
        assert!(plan(&spec(1, 0, true)).is_ok());
        let high = ClusterSpec {
            base_port: 65_530,
            ..spec(3, 1, false)
        };
        assert_eq!(
            plan(&high),
            Err(LayoutError::PortsOverflow {
                base: 65_530,
                needed: 8
            })
        );
    }

    #[test]
    fn broker_properties_have_every_kafka_key() {
        let nodes = plan(&spec(3, 1, false)).unwrap();
        let d = ReplicationDefaults::for_brokers(3);
        let p = parse(&properties(&nodes[1], &nodes, Path::new("/d/n2"), d));
        let get = |k: &str| p.get(k).map(String::as_str);
        assert_eq!(get("node.id"), Some("2"));
        assert_eq!(get("process.roles"), Some("broker"));
        assert_eq!(get("listeners"), Some("PLAINTEXT://127.0.0.1:19094"));
        assert_eq!(
            get("advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:19094")
        );
        assert_eq!(get("inter.broker.listener.name"), Some("PLAINTEXT"));
        assert_eq!(get("controller.listener.names"), Some("CONTROLLER"));
        assert_eq!(
            get("listener.security.protocol.map"),
            Some("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
        );
        assert_eq!(get("controller.quorum.voters"), Some("1@127.0.0.1:19093"));
        assert_eq!(get("log.dirs"), Some("/d/n2"));
        assert_eq!(get("default.replication.factor"), Some("3"));
        assert_eq!(get("min.insync.replicas"), Some("2"));
        assert_eq!(get("offsets.topic.replication.factor"), Some("3"));
        assert_eq!(get("unclean.leader.election.enable"), Some("false"));
        assert_eq!(get("replica.lag.time.max.ms"), Some("30000"));
        assert_eq!(get("num.partitions"), Some("1"));
        assert_eq!(get("auto.create.topics.enable"), Some("true"));
    }

    #[test]
    fn controller_and_combined_listeners() {
        let nodes = plan(&spec(1, 1, false)).unwrap();
        let d = ReplicationDefaults::for_brokers(1);
        let c = parse(&properties(&nodes[0], &nodes, Path::new("/d"), d));
        assert_eq!(
            c.get("listeners").map(String::as_str),
            Some("CONTROLLER://127.0.0.1:19093")
        );
        assert!(!c.contains_key("advertised.listeners"));
        assert!(!c.contains_key("inter.broker.listener.name"));
        assert_eq!(c.get("min.insync.replicas").map(String::as_str), Some("1"));

        let nodes = plan(&spec(2, 0, true)).unwrap();
        let b = parse(&properties(&nodes[1], &nodes, Path::new("/d"), d));
        assert_eq!(
            b.get("listeners").map(String::as_str),
            Some("PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095")
        );
        assert_eq!(
            b.get("process.roles").map(String::as_str),
            Some("controller,broker")
        );
    }

    #[test]
    fn replication_defaults_follow_the_broker_count() {
        let d = |b| {
            let r = ReplicationDefaults::for_brokers(b);
            (r.replication_factor, r.min_insync_replicas)
        };
        assert_eq!(d(1), (1, 1));
        assert_eq!(d(2), (2, 1));
        assert_eq!(d(3), (3, 2));
        assert_eq!(d(5), (3, 2));
    }
}
