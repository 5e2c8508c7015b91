//! Node configuration: a Kafka-style `.properties` file, overridden by `KAFKA_`-prefixed
//! environment variables, exactly as the Confluent/Apache Docker images read them
//! (`KAFKA_NODE_ID` → `node.id`, `KAFKA_LOG_DIRS` → `log.dirs`, `___` → `-`, `__` → `_`).
//!
//! Every key is known: an unknown or invalid setting stops the node at start-up with a
//! message that names it, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration error, naming the setting at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("line {line}: expected `key=value`, found {text:?}")]
    Syntax { line: usize, text: String },
    #[error("unknown setting `{key}` (from {source_name})")]
    Unknown { key: String, source_name: String },
    #[error("invalid value for `{key}`: {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("missing required setting `{0}`")]
    Missing(&'static str),
}

/// `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// One entry of `listeners` / `advertised.listeners`: `NAME://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Every setting a node reads, with Kafka's names and Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub node_id: i32,
    pub process_roles: ProcessRoles,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: String,
    pub listener_security_protocol_map: BTreeMap<String, String>,
    pub controller_quorum_voters: Vec<Voter>,
    pub log_dirs: Vec<PathBuf>,
    pub cluster_id: Option<String>,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub unclean_leader_election_enable: bool,
    pub replica_lag_time_max_ms: u64,
    pub log_retention_ms: Option<i64>,
    pub log_retention_bytes: i64,
    pub log_segment_bytes: u64,
    pub log_flush_interval_messages: Option<u64>,
    pub log_flush_interval_ms: Option<u64>,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    pub broker_heartbeat_interval_ms: u64,
    /// `controller.quorum.election.timeout.ms`: how long a voter without a leader waits
    /// (plus up to as much again, at random) before standing for election. Kafka's default
    /// is 1000; Osprey's 400 keeps a controller failover well under 2 s.
    pub controller_quorum_election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a follower that has not fetched from the
    /// leader for this long (plus up to the election timeout, at random) stands for
    /// election. Kafka's default is 2000; Osprey's 500.
    pub controller_quorum_fetch_timeout_ms: u64,
    /// `metadata.log.segment.bytes`: the metadata log's segment size. Segments wholly
    /// below the latest snapshot are deleted, so this bounds what a snapshot can free.
    /// Kafka's default is 1 GiB (with a floor of 8 MiB); Osprey accepts down to 1024 so
    /// that tests see segments go.
    pub metadata_log_segment_bytes: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`: a node writes a new snapshot of
    /// its committed metadata once this many bytes of record batches have been committed
    /// since its last one (Kafka's default 20 MiB).
    pub metadata_log_max_record_bytes_between_snapshots: u64,
    pub broker_session_timeout_ms: u64,
    pub socket_request_max_bytes: usize,
    pub group_initial_rebalance_delay_ms: u64,
    pub replica_fetch_wait_max_ms: u64,
    pub replica_fetch_max_bytes: usize,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: -1,
            process_roles: ProcessRoles {
                broker: true,
                controller: false,
            },
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            advertised_listeners: Vec::new(),
            controller_listener_names: vec!["CONTROLLER".into()],
            inter_broker_listener_name: "PLAINTEXT".into(),
            listener_security_protocol_map: BTreeMap::new(),
            controller_quorum_voters: Vec::new(),
            log_dirs: vec![PathBuf::from("/tmp/kraft-combined-logs")],
            cluster_id: None,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            replica_lag_time_max_ms: 30_000,
            log_retention_ms: Some(168 * 3_600_000),
            log_retention_bytes: -1,
            log_segment_bytes: 1 << 30,
            log_flush_interval_messages: None,
            log_flush_interval_ms: None,
            auto_create_topics_enable: true,
            num_partitions: 1,
            offsets_topic_replication_factor: 3,
            offsets_topic_num_partitions: 50,
            broker_heartbeat_interval_ms: 2_000,
            controller_quorum_election_timeout_ms: 400,
            controller_quorum_fetch_timeout_ms: 500,
            metadata_log_segment_bytes: 1 << 30,
            metadata_log_max_record_bytes_between_snapshots: 20 * 1024 * 1024,
            broker_session_timeout_ms: 9_000,
            socket_request_max_bytes: 100 * 1024 * 1024,
            group_initial_rebalance_delay_ms: 3_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1024 * 1024,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
        }
    }
}

/// Settings accepted for compatibility with the seed's compose file and Kafka's images, that
/// Osprey reads but has no use for (transaction-log settings: Osprey has no transactions).
const ACCEPTED_AND_IGNORED: &[&str] = &[
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "log.retention.check.interval.ms",
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
];

/// Environment variables of the Docker images that are not settings.
const ENV_NOT_SETTINGS: &[&str] = &[
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
];

impl NodeConfig {
    /// The cluster id every listener uses: `cluster.id`, or "osprey" when none is set (Kafka
    /// always has one, from `kafka-storage format`). Brokers register with it and the
    /// controllers refuse quorum requests and registrations naming another.
    pub fn effective_cluster_id(&self) -> String {
        self.cluster_id
            .clone()
            .unwrap_or_else(|| "osprey".to_string())
    }

    /// Reads `path` (if any) and then the `KAFKA_*` variables of `env`, the later winning.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<NodeConfig, ConfigError> {
        let mut settings: Vec<(String, String, String)> = Vec::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let source = path.display().to_string();
            for (k, v) in parse_properties(&text)? {
                settings.push((k, v, source.clone()));
            }
        }
        for (name, value) in env {
            if let Some(key) = env_to_key(&name) {
                settings.push((key, value, format!("environment variable {name}")));
            }
        }
        let mut config = NodeConfig::default();
        for (key, value, source) in &settings {
            config.set(key, value, source)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a properties text alone (no environment).
    pub fn from_properties(text: &str) -> Result<NodeConfig, ConfigError> {
        let mut config = NodeConfig::default();
        for (k, v) in parse_properties(text)? {
            config.set(&k, &v, "config file")?;
        }
        config.validate()?;
        Ok(config)
    }

    fn set(&mut self, key: &str, value: &str, source: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        match key {
            "node.id" | "broker.id" => self.node_id = parse_num(key, value)?,
            "process.roles" => {
                let mut roles = ProcessRoles {
                    broker: false,
                    controller: false,
                };
                for r in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match r {
                        "broker" => roles.broker = true,
                        "controller" => roles.controller = true,
                        _ => return Err(invalid("roles are `broker` and `controller`")),
                    }
                }
                if !roles.broker && !roles.controller {
                    return Err(invalid("at least one role is needed"));
                }
                self.process_roles = roles;
            }
            "listeners" => self.listeners = parse_listeners(key, value)?,
            "advertised.listeners" => self.advertised_listeners = parse_listeners(key, value)?,
            "controller.listener.names" => self.controller_listener_names = parse_list(value),
            "inter.broker.listener.name" => self.inter_broker_listener_name = value.to_string(),
            "listener.security.protocol.map" => {
                let mut map = BTreeMap::new();
                for entry in parse_list(value) {
                    let (name, proto) = entry
                        .split_once(':')
                        .ok_or_else(|| invalid("expected NAME:PROTOCOL pairs"))?;
                    if proto != "PLAINTEXT" {
                        return Err(invalid("only PLAINTEXT is supported"));
                    }
                    map.insert(name.to_string(), proto.to_string());
                }
                self.listener_security_protocol_map = map;
            }
            "controller.quorum.voters" => self.controller_quorum_voters = parse_voters(key, value)?,
            "log.dirs" | "log.dir" => {
                let dirs: Vec<PathBuf> = parse_list(value).into_iter().map(PathBuf::from).collect();
                if dirs.is_empty() {
                    return Err(invalid("at least one directory is needed"));
                }
                self.log_dirs = dirs;
            }
            "cluster.id" | "cluster_id" | "kafka.cluster.id" => {
                self.cluster_id = Some(value.to_string())
            }
            "default.replication.factor" => {
                self.default_replication_factor = parse_positive(key, value)?
            }
            "min.insync.replicas" => self.min_insync_replicas = parse_positive(key, value)?,
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = parse_bool(key, value)?
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse_positive(key, value)?,
            "log.retention.hours" => {
                let h: i64 = parse_num(key, value)?;
                self.log_retention_ms = (h >= 0).then_some(h * 3_600_000);
            }
            "log.retention.minutes" => {
                let m: i64 = parse_num(key, value)?;
                self.log_retention_ms = (m >= 0).then_some(m * 60_000);
            }
            "log.retention.ms" => {
                let ms: i64 = parse_num(key, value)?;
                self.log_retention_ms = (ms >= 0).then_some(ms);
            }
            "log.retention.bytes" => self.log_retention_bytes = parse_num(key, value)?,
            "log.segment.bytes" => {
                let b: u64 = parse_positive(key, value)?;
                if b < 1024 {
                    return Err(invalid("must be at least 1024"));
                }
                self.log_segment_bytes = b;
            }
            "metadata.log.segment.bytes" => {
                let b: u64 = parse_positive(key, value)?;
                if b < 1024 {
                    return Err(invalid("must be at least 1024"));
                }
                self.metadata_log_segment_bytes = b.min(i32::MAX as u64);
            }
            "metadata.log.max.record.bytes.between.snapshots" => {
                self.metadata_log_max_record_bytes_between_snapshots = parse_positive(key, value)?
            }
            "log.flush.interval.messages" => {
                self.log_flush_interval_messages = Some(parse_positive(key, value)?)
            }
            "log.flush.interval.ms" => {
                self.log_flush_interval_ms = Some(parse_num(key, value)?);
            }
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse_bool(key, value)?,
            "num.partitions" => self.num_partitions = parse_positive(key, value)?,
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = parse_positive(key, value)?
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_num_partitions = parse_positive(key, value)?
            }
            "controller.quorum.election.timeout.ms" => {
                self.controller_quorum_election_timeout_ms = parse_positive(key, value)?
            }
            "controller.quorum.fetch.timeout.ms" => {
                self.controller_quorum_fetch_timeout_ms = parse_positive(key, value)?
            }
            "broker.heartbeat.interval.ms" => {
                self.broker_heartbeat_interval_ms = parse_positive(key, value)?
            }
            "broker.session.timeout.ms" => {
                self.broker_session_timeout_ms = parse_positive(key, value)?
            }
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = parse_positive(key, value)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = parse_num(key, value)?
            }
            "replica.fetch.wait.max.ms" => {
                self.replica_fetch_wait_max_ms = parse_positive(key, value)?
            }
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes = parse_positive(key, value)?,
            "auto.leader.rebalance.enable" => {
                self.auto_leader_rebalance_enable = parse_bool(key, value)?
            }
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds = parse_positive(key, value)?
            }
            k if ACCEPTED_AND_IGNORED.contains(&k) => {}
            _ => {
                return Err(ConfigError::Unknown {
                    key: key.to_string(),
                    source_name: source.to_string(),
                })
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id < 0 {
            return Err(ConfigError::Missing("node.id"));
        }
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value,
            reason: reason.to_string(),
        };
        if self.controller_quorum_voters.is_empty() {
            return Err(ConfigError::Missing("controller.quorum.voters"));
        }
        if self.process_roles.controller {
            if !self
                .controller_quorum_voters
                .iter()
                .any(|v| v.id == self.node_id)
            {
                return Err(invalid(
                    "controller.quorum.voters",
                    self.voters_string(),
                    "a node with the controller role must be one of the voters",
                ));
            }
            if self.controller_listener().is_none() {
                return Err(invalid(
                    "listeners",
                    self.listeners_string(),
                    "a controller needs a listener named in controller.listener.names",
                ));
            }
        }
        if self.process_roles.broker && self.broker_listener().is_none() {
            return Err(invalid(
                "listeners",
                self.listeners_string(),
                "a broker needs a listener that is not a controller listener",
            ));
        }
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms {
            return Err(invalid(
                "broker.session.timeout.ms",
                self.broker_session_timeout_ms.to_string(),
                "must be larger than broker.heartbeat.interval.ms",
            ));
        }
        let mut ports: Vec<u16> = self.listeners.iter().map(|l| l.port).collect();
        ports.sort_unstable();
        if ports.windows(2).any(|w| w[0] == w[1] && w[0] != 0) {
            return Err(invalid(
                "listeners",
                self.listeners_string(),
                "two listeners share a port",
            ));
        }
        Ok(())
    }

    /// The listener clients and other brokers connect to (not a controller listener).
    pub fn broker_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| l.name == self.inter_broker_listener_name)
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|l| !self.controller_listener_names.contains(&l.name))
            })
    }

    /// The listener the controller role serves on.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// What this broker tells clients to connect to: the advertised listener of the broker
    /// listener's name, or the listener itself.
    pub fn advertised_broker_listener(&self) -> Option<Listener> {
        let listener = self.broker_listener()?;
        Some(
            self.advertised_listeners
                .iter()
                .find(|l| l.name == listener.name)
                .cloned()
                .unwrap_or_else(|| listener.clone()),
        )
    }

    /// The first log directory (Osprey keeps every partition of a node in one directory).
    pub fn log_dir(&self) -> &Path {
        &self.log_dirs[0]
    }

    /// Socket address to bind for a listener.
    pub fn bind_addr(listener: &Listener) -> Result<SocketAddr, ConfigError> {
        let host = if listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &listener.host
        };
        format!("{host}:{}", listener.port)
            .parse()
            .map_err(|_| ConfigError::Invalid {
                key: "listeners".into(),
                value: format!("{}://{}:{}", listener.name, listener.host, listener.port),
                reason: "the host must be an IP address".into(),
            })
    }

    fn listeners_string(&self) -> String {
        self.listeners
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn voters_string(&self) -> String {
        self.controller_quorum_voters
            .iter()
            .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `KAFKA_LOG_DIRS` → `log.dirs`; `KAFKA_A___B` → `a-b`; `KAFKA_A__B` → `a_b`. Returns
/// `None` for variables that are not settings.
fn env_to_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix("KAFKA_")?;
    if ENV_NOT_SETTINGS.contains(&name) || rest.is_empty() {
        return None;
    }
    let lower = rest.to_ascii_lowercase();
    Some(
        lower
            .replace("___", "\u{1}")
            .replace("__", "\u{2}")
            .replace('_', ".")
            .replace('\u{1}', "-")
            .replace('\u{2}', "_"),
    )
}

/// `key=value` or `key: value` lines; `#` and `!` start comments.
fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).ok_or_else(|| ConfigError::Syntax {
            line: i + 1,
            text: line.to_string(),
        })?;
        let (k, v) = line.split_at(split);
        out.push((k.trim().to_string(), v[1..].trim().to_string()));
    }
    Ok(out)
}

fn parse_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: "not a number in range".into(),
    })
}

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(
    key: &str,
    value: &str,
) -> Result<T, ConfigError> {
    let n: T = parse_num(key, value)?;
    if n <= T::default() {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: "must be positive".into(),
        });
    }
    Ok(n)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: "expected true or false".into(),
        }),
    }
}

fn parse_host_port(key: &str, entry: &str) -> Result<(String, u16), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        key: key.to_string(),
        value: entry.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected host:port"))?;
    let port = port.parse().map_err(|_| invalid("bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    parse_list(value)
        .iter()
        .map(|entry| {
            let (name, addr) = entry
                .split_once("://")
                .ok_or_else(|| ConfigError::Invalid {
                    key: key.to_string(),
                    value: entry.clone(),
                    reason: "expected NAME://host:port".into(),
                })?;
            let (host, port) = parse_host_port(key, addr)?;
            Ok(Listener {
                name: name.to_string(),
                host,
                port,
            })
        })
        .collect()
}

fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let voters: Vec<Voter> = parse_list(value)
        .iter()
        .map(|entry| {
            let (id, addr) = entry.split_once('@').ok_or_else(|| ConfigError::Invalid {
                key: key.to_string(),
                value: entry.clone(),
                reason: "expected id@host:port".into(),
            })?;
            let id = parse_num(key, id)?;
            let (host, port) = parse_host_port(key, addr)?;
            Ok(Voter { id, host, port })
        })
        .collect::<Result<_, ConfigError>>()?;
    let mut ids: Vec<i32> = voters.iter().map(|v| v.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: "duplicate voter id".into(),
        });
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "\
# as in the seed's compose file
node.id=1
process.roles=controller,broker
listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093
advertised.listeners=PLAINTEXT://localhost:19092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093
log.dirs=/tmp/osprey-1
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
transaction.state.log.replication.factor=3
";

    #[test]
    fn reads_the_seed_layout() {
        let c = NodeConfig::from_properties(SEED).unwrap();
        assert_eq!(c.node_id, 1);
        assert!(c.process_roles.broker && c.process_roles.controller);
        assert_eq!(c.controller_quorum_voters.len(), 3);
        assert_eq!(c.controller_listener().unwrap().port, 19093);
        assert_eq!(c.broker_listener().unwrap().port, 19092);
        assert_eq!(c.advertised_broker_listener().unwrap().host, "localhost");
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.default_replication_factor, 3);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.properties");
        std::fs::write(&path, SEED).unwrap();
        let env = vec![
            ("KAFKA_MIN_INSYNC_REPLICAS".to_string(), "1".to_string()),
            ("KAFKA_HEAP_OPTS".to_string(), "-Xmx1G".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = NodeConfig::load(Some(&path), env).unwrap();
        assert_eq!(c.min_insync_replicas, 1);
    }

    #[test]
    fn env_names_map_like_the_docker_images() {
        assert_eq!(env_to_key("KAFKA_NODE_ID").as_deref(), Some("node.id"));
        assert_eq!(
            env_to_key("KAFKA_CONTROLLER_QUORUM_VOTERS").as_deref(),
            Some("controller.quorum.voters")
        );
        assert_eq!(env_to_key("KAFKA_A___B__C").as_deref(), Some("a-b_c"));
        assert_eq!(env_to_key("KAFKA_OPTS"), None);
        assert_eq!(env_to_key("HOME"), None);
    }

    #[test]
    fn unknown_setting_is_named() {
        let err =
            NodeConfig::from_properties(&format!("{SEED}min.insync.replica=2\n")).unwrap_err();
        assert!(err.to_string().contains("min.insync.replica"), "{err}");
        let env = vec![("KAFKA_UNCLEAN_ELECTION".to_string(), "true".to_string())];
        let err = NodeConfig::load(None, env).unwrap_err();
        assert!(err.to_string().contains("KAFKA_UNCLEAN_ELECTION"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        for (line, key) in [
            ("min.insync.replicas=0", "min.insync.replicas"),
            (
                "unclean.leader.election.enable=yes",
                "unclean.leader.election.enable",
            ),
            ("listeners=PLAINTEXT:/x", "listeners"),
            ("controller.quorum.voters=1@a", "controller.quorum.voters"),
            ("process.roles=zookeeper", "process.roles"),
            ("num.partitions=-3", "num.partitions"),
        ] {
            let err = NodeConfig::from_properties(&format!("{SEED}{line}\n")).unwrap_err();
            assert!(err.to_string().contains(key), "{line}: {err}");
        }
    }

    #[test]
    fn controller_must_be_a_voter() {
        let text = SEED.replace("node.id=1", "node.id=7");
        let err = NodeConfig::from_properties(&text).unwrap_err();
        assert!(
            err.to_string().contains("controller.quorum.voters"),
            "{err}"
        );
    }

    #[test]
    fn node_id_is_required() {
        let text = SEED.replace("node.id=1\n", "");
        assert_eq!(
            NodeConfig::from_properties(&text).unwrap_err(),
            ConfigError::Missing("node.id")
        );
    }
}
