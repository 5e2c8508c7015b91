//! Node configuration: a Kafka-style `.properties` file, overridden by `KAFKA_`-prefixed
//! environment variables, exactly as the Confluent/Apache Docker images read them
//! (`KAFKA_NODE_ID` → `node.id`, `KAFKA_LOG_DIRS` → `log.dirs`, `___` → `-`, `__` → `_`).
//!
//! As in Kafka, a key Osprey does not know is reported as a warning that names it ("was
//! supplied but isn't a known config") and ignored, so compose files written for the
//! apache/kafka image start unchanged; an invalid value of a known key stops the node at
//! start-up with a message that names the key, so a typo in a value never silently falls
//! back to a default.
//!
//! Host names are kept as written (`localhost`, `broker-1`, an empty host for "every
//! address"): a listener's host is resolved when it is bound ([`NodeConfig::bind_addr`]) and
//! a peer's each time a connection is made, so a container that restarts with a new address
//! is found again.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// A configuration error, naming the setting at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("line {line}: expected `key=value`, found {text:?}")]
    Syntax { line: usize, text: String },
    #[error("invalid value for `{key}`: {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("missing required setting `{0}`")]
    Missing(&'static str),
}

/// A setting that was supplied but is not one Osprey knows: logged, then ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub source_name: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the configuration `{}` (from {}) was supplied but isn't a known config; ignored",
            self.key, self.source_name
        )
    }
}

/// A loaded configuration and what was ignored on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedConfig {
    pub config: NodeConfig,
    pub warnings: Vec<ConfigWarning>,
}

/// The security protocols Kafka names; Osprey serves PLAINTEXT only (a listener mapped to
/// another one is refused at start-up, naming it).
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

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
    /// `message.max.bytes`: the largest record batch a leader accepts, the default of every
    /// topic's `max.message.bytes` (Kafka's default 1048588).
    pub message_max_bytes: u64,
    /// `log.message.timestamp.type`: the default of every topic's `message.timestamp.type`
    /// (`CreateTime`, Kafka's default, or `LogAppendTime`).
    pub log_message_timestamp_type: crate::storage::TimestampType,
    /// `log.message.timestamp.before.max.ms` / `after.max.ms`: the defaults of the topics'
    /// bounds on CreateTime timestamps (Kafka 3.x: unbounded).
    pub log_message_timestamp_before_max_ms: i64,
    pub log_message_timestamp_after_max_ms: i64,
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
            message_max_bytes: DEFAULT_MESSAGE_MAX_BYTES,
            log_message_timestamp_type: crate::storage::TimestampType::CreateTime,
            log_message_timestamp_before_max_ms: i64::MAX,
            log_message_timestamp_after_max_ms: i64::MAX,
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

/// Kafka's `message.max.bytes` default: 1 MiB plus a batch's log overhead.
pub const DEFAULT_MESSAGE_MAX_BYTES: u64 = 1_048_588;

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

/// Environment variables of the Docker images that are not settings (JVM and logging
/// options of Kafka's start scripts).
const ENV_NOT_SETTINGS: &[&str] = &[
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_DEBUG",
];

/// The cluster id of a node configured without one and started on an unformatted directory.
pub const DEFAULT_CLUSTER_ID: &str = "osprey";

/// The apache/kafka image formats its storage with the cluster id in `CLUSTER_ID` (no
/// `KAFKA_` prefix); Osprey reads it as `cluster.id`.
const CLUSTER_ID_ENV: &str = "CLUSTER_ID";

impl NodeConfig {
    /// The cluster id every listener uses: `cluster.id`, or "osprey" when none is set (Kafka
    /// always has one, from `kafka-storage format`). Brokers register with it and the
    /// controllers refuse quorum requests and registrations naming another.
    pub fn effective_cluster_id(&self) -> String {
        self.cluster_id
            .clone()
            .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_string())
    }

    /// Reads `path` (if any) and then the `KAFKA_*` variables (and `CLUSTER_ID`) of `env`,
    /// the later winning.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LoadedConfig, ConfigError> {
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
            let key = if name == CLUSTER_ID_ENV {
                Some("cluster.id".to_string())
            } else {
                env_to_key(&name)
            };
            if let Some(key) = key {
                settings.push((key, value, format!("environment variable {name}")));
            }
        }
        Self::from_settings(settings)
    }

    /// Parses a properties text alone (no environment).
    pub fn from_properties(text: &str) -> Result<LoadedConfig, ConfigError> {
        let settings = parse_properties(text)?
            .into_iter()
            .map(|(k, v)| (k, v, "config file".to_string()))
            .collect();
        Self::from_settings(settings)
    }

    fn from_settings(settings: Vec<(String, String, String)>) -> Result<LoadedConfig, ConfigError> {
        let mut config = NodeConfig::default();
        let mut warnings = Vec::new();
        for (key, value, source) in &settings {
            if !config.set(key, value)? {
                warnings.push(ConfigWarning {
                    key: key.clone(),
                    source_name: source.clone(),
                });
            }
        }
        config.validate()?;
        Ok(LoadedConfig { config, warnings })
    }

    /// Applies one setting; `Ok(false)` when the key is not one Osprey knows.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
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
                    let proto = proto.trim().to_ascii_uppercase();
                    if !SECURITY_PROTOCOLS.contains(&proto.as_str()) {
                        return Err(invalid(
                            "the protocols are PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL",
                        ));
                    }
                    map.insert(name.trim().to_string(), proto);
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
            "log.message.timestamp.before.max.ms" => {
                self.log_message_timestamp_before_max_ms = parse_non_negative(key, value)?
            }
            "log.message.timestamp.after.max.ms" => {
                self.log_message_timestamp_after_max_ms = parse_non_negative(key, value)?
            }
            "log.message.timestamp.type" => {
                self.log_message_timestamp_type =
                    crate::controller::topic_config::parse_timestamp_type(value)
                        .ok_or_else(|| invalid("must be CreateTime or LogAppendTime"))?
            }
            "message.max.bytes" => {
                let b: u64 = parse_positive(key, value)?;
                if b > i32::MAX as u64 {
                    return Err(invalid("must be at most 2147483647"));
                }
                self.message_max_bytes = b;
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
            _ => return Ok(false),
        }
        Ok(true)
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
        for listener in &self.listeners {
            match self.security_protocol(&listener.name) {
                Some("PLAINTEXT") => {}
                Some(other) => {
                    return Err(invalid(
                        "listeners",
                        self.listeners_string(),
                        &format!(
                            "listener {} uses {other}; Osprey serves PLAINTEXT listeners only",
                            listener.name
                        ),
                    ))
                }
                None => {
                    return Err(invalid(
                        "listener.security.protocol.map",
                        self.protocol_map_string(),
                        &format!(
                            "no security protocol defined for listener {}",
                            listener.name
                        ),
                    ))
                }
            }
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

    /// The security protocol of a listener, as Kafka resolves it: the map's entry; without a
    /// map, a listener named after a protocol uses it and the controller listeners use
    /// PLAINTEXT (what compose files that leave the map out of controllers rely on).
    pub fn security_protocol(&self, listener_name: &str) -> Option<&str> {
        if let Some(proto) = self.listener_security_protocol_map.get(listener_name) {
            return Some(proto);
        }
        if !self.listener_security_protocol_map.is_empty() {
            return None;
        }
        if let Some(p) = SECURITY_PROTOCOLS.iter().find(|p| **p == listener_name) {
            return Some(p);
        }
        self.controller_listener_names
            .iter()
            .any(|n| n == listener_name)
            .then_some("PLAINTEXT")
    }

    /// The listener other brokers connect to: `inter.broker.listener.name`, or the first
    /// listener that is not a controller listener.
    pub fn broker_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| l.name == self.inter_broker_listener_name)
            .or_else(|| self.broker_listeners().next())
    }

    /// Every listener the broker role serves clients on (all but the controller listeners).
    pub fn broker_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// The listener the controller role serves on.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// The name the broker listener is known by in metadata (its inter-broker name).
    pub fn inter_broker_listener(&self) -> Option<&str> {
        self.broker_listener().map(|l| l.name.as_str())
    }

    /// What this broker tells clients to connect to on the inter-broker listener.
    pub fn advertised_broker_listener(&self) -> Option<Listener> {
        let name = &self.broker_listener()?.name;
        self.advertised_broker_listeners()
            .into_iter()
            .find(|l| &l.name == name)
    }

    /// What this broker registers, one entry per broker listener: the advertised listener of
    /// the same name, or the listener itself. A listener bound to every address (empty host
    /// or `0.0.0.0`) and not advertised is advertised under this machine's host name, as
    /// Kafka advertises its canonical host name (in a container, the container's name).
    pub fn advertised_broker_listeners(&self) -> Vec<Listener> {
        self.broker_listeners()
            .map(|listener| {
                let mut advertised = self
                    .advertised_listeners
                    .iter()
                    .find(|l| l.name == listener.name)
                    .cloned()
                    .unwrap_or_else(|| listener.clone());
                if advertised.host.is_empty() || advertised.host == "0.0.0.0" {
                    advertised.host = local_host_name();
                }
                advertised
            })
            .collect()
    }

    /// The first log directory (Osprey keeps every partition of a node in one directory).
    pub fn log_dir(&self) -> &Path {
        &self.log_dirs[0]
    }

    /// Socket address to bind for a listener: an empty host binds every address, a name is
    /// resolved (its first IPv4 address, else its first address), so `localhost` binds the
    /// loopback only and `broker-1` the address the container network gave that name.
    pub fn bind_addr(listener: &Listener) -> Result<SocketAddr, ConfigError> {
        let host = if listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &listener.host
        };
        let invalid = |reason: String| ConfigError::Invalid {
            key: "listeners".into(),
            value: format!("{}://{}:{}", listener.name, listener.host, listener.port),
            reason,
        };
        let addrs: Vec<SocketAddr> = (host, listener.port)
            .to_socket_addrs()
            .map_err(|e| invalid(format!("cannot resolve host `{host}`: {e}")))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| invalid(format!("host `{host}` has no address")))
    }

    fn protocol_map_string(&self) -> String {
        self.listener_security_protocol_map
            .iter()
            .map(|(n, p)| format!("{n}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
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

/// This machine's host name (`/etc/hostname`, else `$HOSTNAME`, else `localhost`): what a
/// listener bound to every address is advertised as. In a container it is the name the
/// container network resolves to it.
fn local_host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
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

fn parse_non_negative(key: &str, value: &str) -> Result<i64, ConfigError> {
    let n: i64 = parse_num(key, value)?;
    if n < 0 {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: "must not be negative".into(),
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
        let c = NodeConfig::from_properties(SEED).unwrap().config;
        assert_eq!(c.node_id, 1);
        assert!(c.process_roles.broker && c.process_roles.controller);
        assert_eq!(c.controller_quorum_voters.len(), 3);
        assert_eq!(c.controller_listener().unwrap().port, 19093);
        assert_eq!(c.broker_listener().unwrap().port, 19092);
        assert_eq!(c.advertised_broker_listener().unwrap().host, "localhost");
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.default_replication_factor, 3);
        assert_eq!(c.message_max_bytes, 1_048_588, "Kafka's default");
        let c = NodeConfig::from_properties(&format!("{SEED}message.max.bytes=2000000\n"))
            .unwrap()
            .config;
        assert_eq!(c.message_max_bytes, 2_000_000);
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
        let c = NodeConfig::load(Some(&path), env).unwrap().config;
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
    fn an_unknown_setting_is_warned_by_name_and_ignored() {
        let loaded = NodeConfig::from_properties(&format!("{SEED}min.insync.replica=2\n")).unwrap();
        assert_eq!(
            loaded.config.min_insync_replicas, 2,
            "the known value stays"
        );
        assert_eq!(loaded.warnings.len(), 1);
        let warning = loaded.warnings[0].to_string();
        assert!(warning.contains("min.insync.replica`"), "{warning}");
        assert!(warning.contains("isn't a known config"), "{warning}");

        // The seed's compose file sets KAFKA_KRAFT_MODE, which no Kafka knows either.
        let env = vec![
            ("KAFKA_KRAFT_MODE".to_string(), "true".to_string()),
            ("KAFKA_NODE_ID".to_string(), "1".to_string()),
            (
                "KAFKA_CONTROLLER_QUORUM_VOTERS".to_string(),
                "1@localhost:9093".to_string(),
            ),
        ];
        let loaded = NodeConfig::load(None, env).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert_eq!(loaded.warnings[0].key, "kraft.mode");
        assert!(loaded.warnings[0]
            .to_string()
            .contains("environment variable KAFKA_KRAFT_MODE"));
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
            (
                "log.message.timestamp.type=Now",
                "log.message.timestamp.type",
            ),
            (
                "log.message.timestamp.after.max.ms=-5",
                "log.message.timestamp.after.max.ms",
            ),
            ("message.max.bytes=0", "message.max.bytes"),
            ("message.max.bytes=3000000000", "message.max.bytes"),
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

    /// The seed's compose file, as the apache/kafka image reads it: every variable is taken,
    /// `localhost` listeners bind the loopback, and only `KAFKA_KRAFT_MODE` is warned about.
    #[test]
    fn the_seeds_compose_environment_is_accepted() {
        let env: Vec<(String, String)> = [
            ("KAFKA_KRAFT_MODE", "true"),
            ("KAFKA_PROCESS_ROLES", "controller,broker"),
            ("KAFKA_NODE_ID", "1"),
            ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093"),
            (
                "KAFKA_LISTENERS",
                "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
            ),
            (
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
            ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
            ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://localhost:9092"),
            ("KAFKA_LOG_DIRS", "/var/lib/kafka/data"),
            ("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
            ("KAFKA_LOG_RETENTION_HOURS", "168"),
            ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
            ("CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qk"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let LoadedConfig { config, warnings } = NodeConfig::load(None, env).unwrap();
        assert_eq!(
            warnings.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(),
            ["kraft.mode"]
        );
        assert!(config.process_roles.broker && config.process_roles.controller);
        assert_eq!(config.controller_quorum_voters[0].host, "localhost");
        assert_eq!(config.log_dir(), Path::new("/var/lib/kafka/data"));
        assert_eq!(config.offsets_topic_replication_factor, 1);
        assert_eq!(config.group_initial_rebalance_delay_ms, 0);
        assert_eq!(config.log_retention_ms, Some(168 * 3_600_000));
        assert_eq!(config.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
        let broker = config.broker_listener().unwrap();
        assert_eq!(
            NodeConfig::bind_addr(broker).unwrap(),
            "127.0.0.1:9092".parse().unwrap()
        );
        let controller = config.controller_listener().unwrap();
        assert_eq!(
            NodeConfig::bind_addr(controller).unwrap(),
            "127.0.0.1:9093".parse().unwrap()
        );
    }

    #[test]
    fn host_names_are_resolved_when_bound_and_an_empty_host_binds_every_address() {
        let listener = |host: &str| Listener {
            name: "PLAINTEXT".into(),
            host: host.into(),
            port: 9092,
        };
        assert_eq!(
            NodeConfig::bind_addr(&listener("")).unwrap(),
            "0.0.0.0:9092".parse().unwrap()
        );
        assert_eq!(
            NodeConfig::bind_addr(&listener("0.0.0.0")).unwrap(),
            "0.0.0.0:9092".parse().unwrap()
        );
        assert!(NodeConfig::bind_addr(&listener("localhost"))
            .unwrap()
            .ip()
            .is_loopback());
        let err = NodeConfig::bind_addr(&listener("no-such-host.invalid")).unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        assert!(err.to_string().contains("listeners"), "{err}");
    }

    #[test]
    fn an_empty_listener_host_parses_and_is_advertised_by_host_name() {
        let text = format!(
            "{}listeners=PLAINTEXT://:9092,CONTROLLER://:9093\nadvertised.listeners=\n",
            SEED.lines()
                .filter(|l| !l.starts_with("listeners") && !l.starts_with("advertised"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        let c = NodeConfig::from_properties(&text).unwrap().config;
        assert_eq!(c.broker_listener().unwrap().host, "");
        let advertised = c.advertised_broker_listener().unwrap();
        assert!(!advertised.host.is_empty() && advertised.host != "0.0.0.0");
        assert_eq!(advertised.port, 9092);
    }

    /// Compose clusters give brokers one listener for the container network and one
    /// published on the host; each is registered with its advertised address.
    #[test]
    fn several_broker_listeners_are_each_advertised() {
        let text = SEED
            .replace(
                "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
                "listeners=PLAINTEXT://:19092,CONTROLLER://:19093,PLAINTEXT_HOST://:29092",
            )
            .replace(
                "advertised.listeners=PLAINTEXT://localhost:19092",
                "advertised.listeners=PLAINTEXT://broker-1:19092,PLAINTEXT_HOST://localhost:29092",
            )
            .replace(
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
            );
        let c = NodeConfig::from_properties(&text).unwrap().config;
        let advertised = c.advertised_broker_listeners();
        let names: Vec<(&str, &str, u16)> = advertised
            .iter()
            .map(|l| (l.name.as_str(), l.host.as_str(), l.port))
            .collect();
        assert_eq!(
            names,
            [
                ("PLAINTEXT", "broker-1", 19092),
                ("PLAINTEXT_HOST", "localhost", 29092)
            ]
        );
        assert_eq!(c.advertised_broker_listener().unwrap().host, "broker-1");
    }

    #[test]
    fn a_listener_without_a_protocol_or_with_one_not_served_is_refused_by_name() {
        let text = SEED.replace(
            "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
            "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,INTERNAL://127.0.0.1:19094",
        );
        let err = NodeConfig::from_properties(&text).unwrap_err().to_string();
        assert!(err.contains("listener.security.protocol.map"), "{err}");
        assert!(err.contains("INTERNAL"), "{err}");

        let text = SEED.replace(
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "PLAINTEXT:SSL,CONTROLLER:PLAINTEXT",
        );
        let err = NodeConfig::from_properties(&text).unwrap_err().to_string();
        assert!(err.contains("SSL"), "{err}");

        // Without a map, controller listeners are PLAINTEXT (Kafka's default).
        let text = SEED.replace(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n",
            "",
        );
        NodeConfig::from_properties(&text).unwrap();
    }
}
